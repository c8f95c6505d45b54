import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { FrameSchema } from "../../lib/protocol.ts";
import fc from "fast-check";
import { Compression } from "../../lib/protocol.ts";
import {
  createFrame,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  type Frame,
  FrameDecoder,
  isCompressed,
} from "../../lib/wire/frame.ts";
import { CarrierError, FrameDecodeError, FrameTooLargeError } from "../../lib/errors.ts";
import { ArgumentError } from "../../lib/errors.ts";

/** The Frame fields of a decoded frame, without protobuf-es's $typeName. */
function plain(frame: Frame): Frame {
  const { id, opcode, flags, payload, compression } = frame;
  return { id, opcode, flags, payload, compression };
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Splits bytes at the given cut points (any order, duplicates allowed). */
function chunk(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((
    a,
    b,
  ) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

const frameArb = fc.record({
  id: fc.nat({ max: 0xffff_ffff }),
  opcode: fc.oneof(
    fc.nat({ max: 127 }),
    fc.integer({ min: 1000, max: 0xffff_ffff }),
  ),
  payload: fc.uint8Array({ maxLength: 2048 }),
  compression: fc.option(fc.constantFrom(...[0, 1, 2, 3, 4] as Compression[]), {
    nil: undefined,
  }),
}).map((init) => createFrame(init));

Deno.test("encodeFrame writes a varint length then the Frame message", () => {
  const frame = createFrame({
    opcode: 2,
    id: 300,
    payload: new Uint8Array([1, 2, 3]),
  });
  const bytes = encodeFrame(frame);
  // id 300 = 0xac 0x02; opcode 2; payload field 4 with 3 bytes.
  assert.deepEqual(
    [...bytes],
    [10, 0x08, 0xac, 0x02, 0x10, 0x02, 0x22, 0x03, 1, 2, 3],
  );
});

Deno.test("createFrame sets the compressed flag only with a compression setting", () => {
  assert.equal(isCompressed(createFrame({ opcode: 5 })), false);
  const bz2 = createFrame({ opcode: 5, compression: Compression.BZ2 });
  assert.equal(isCompressed(bz2), true);
  assert.equal(bz2.compression, Compression.BZ2);
});

Deno.test("createFrame rejects ids and opcodes outside uint32", () => {
  assert.throws(
    () => createFrame({ opcode: -1 }),
    /Frame opcode must be an integer/,
  );
  assert.throws(
    () => createFrame({ opcode: 1, id: 2 ** 32 }),
    /Frame id must be an integer/,
  );
  assert.throws(() => createFrame({ opcode: 1.5 }), ArgumentError);
});

Deno.test("FrameDecoder round-trips every frame under random chunking", () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { minLength: 1, maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (frames, cuts) => {
        const stream = concat(frames.map((f) => encodeFrame(f)));
        const decoder = new FrameDecoder();
        const out: Frame[] = [];
        for (const part of chunk(stream, cuts)) out.push(...decoder.push(part));
        decoder.end();
        assert.equal(out.length, frames.length);
        for (let i = 0; i < frames.length; i++) {
          assert.deepEqual(plain(out[i]), frames[i], `frame ${i} differs`);
        }
        assert.equal(decoder.bufferedBytes, 0);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("FrameDecoder decodes byte-at-a-time input", () => {
  const frames = [
    createFrame({ opcode: 1000, id: 1, payload: new Uint8Array(200).fill(7) }),
  ];
  frames.push(createFrame({ opcode: 0 }));
  const stream = concat(frames.map((f) => encodeFrame(f)));
  const decoder = new FrameDecoder();
  const out: Frame[] = [];
  for (let i = 0; i < stream.length; i++) {
    out.push(...decoder.push(stream.subarray(i, i + 1)));
  }
  assert.equal(out.length, 2);
  assert.equal(out[0].payload.length, 200);
  assert.equal(out[1].opcode, 0);
});

Deno.test("FrameDecoder yields a typed error or frames for any random bytes", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 512 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (
        bytes,
        cuts,
      ) => {
        const decoder = new FrameDecoder({ maxFrameSize: 256 });
        try {
          for (const part of chunk(bytes, cuts)) decoder.push(part);
          decoder.end();
        } catch (err) {
          assert.ok(err instanceof CarrierError, `untyped error: ${err}`);
          assert.ok(
            err instanceof FrameDecodeError ||
              err instanceof FrameTooLargeError,
          );
        }
      },
    ),
    { numRuns: 1000 },
  );
});

Deno.test("FrameDecoder rejects a length over the maximum as soon as the prefix shows it", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 1000 });
  // 0xe9 0x07 = 1001: the first byte alone (0x69 = 105, continuing) is not yet over.
  assert.deepEqual(decoder.push(new Uint8Array([0xe9])), []);
  assert.throws(
    () => decoder.push(new Uint8Array([0x07])),
    (err: unknown) =>
      err instanceof FrameTooLargeError &&
      err.message ===
        "Cannot decode frame: length 1001 exceeds maxFrameSize 1000",
  );
  // The decoder stays failed.
  assert.throws(() => decoder.push(new Uint8Array([0])), FrameTooLargeError);
});

Deno.test("FrameDecoder rejects a huge declared length without allocating it", () => {
  const decoder = new FrameDecoder();
  // A 5-byte varint declaring 4 GiB - 1.
  assert.throws(
    () => decoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f])),
    FrameTooLargeError,
  );
  assert.equal(decoder.bufferedBytes, 0);
});

Deno.test("FrameDecoder holds only bytes received for a declared frame", () => {
  const decoder = new FrameDecoder();
  // Declares DEFAULT_MAX_FRAME_SIZE, sends 10 bytes of it.
  const prefix = new Uint8Array(3);
  let v = DEFAULT_MAX_FRAME_SIZE;
  for (let i = 0; i < 3; i++) {
    prefix[i] = (v & 0x7f) | (i < 2 ? 0x80 : 0);
    v = Math.floor(v / 128);
  }
  decoder.push(prefix);
  decoder.push(new Uint8Array(10));
  assert.equal(decoder.bufferedBytes, 13);
  assert.throws(
    () => decoder.end(),
    /stream ended after 10 of 1048576 body bytes/,
  );
});

Deno.test("FrameDecoder rejects an overlong varint", () => {
  const decoder = new FrameDecoder({ maxFrameSize: 64 * 1024 * 1024 });
  assert.throws(
    () => decoder.push(new Uint8Array([0x80, 0x80, 0x80, 0x80, 0x80])),
    /length varint longer than 5 bytes/,
  );
});

Deno.test("FrameDecoder.end reports a truncated varint", () => {
  const decoder = new FrameDecoder();
  decoder.push(new Uint8Array([0x80]));
  assert.throws(() => decoder.end(), /stream ended inside a length varint/);
});

Deno.test("FrameDecoder rejects a body that is not a Frame", () => {
  const decoder = new FrameDecoder();
  // Length 2, then field 1 with wire type 7 (invalid).
  assert.throws(
    () => decoder.push(new Uint8Array([2, 0x0f, 0x00])),
    FrameDecodeError,
  );
});

Deno.test("encodeFrame refuses a frame over maxFrameSize", () => {
  const frame = createFrame({ opcode: 1000, payload: new Uint8Array(100) });
  assert.throws(
    () => encodeFrame(frame, { maxFrameSize: 64 }),
    FrameTooLargeError,
  );
  assert.throws(
    () => new FrameDecoder({ maxFrameSize: 8 }),
    /maxFrameSize must be an integer/,
  );
});

Deno.test("a zero-length frame decodes to the default Frame", () => {
  const decoder = new FrameDecoder();
  const [frame] = decoder.push(new Uint8Array([0]));
  assert.deepEqual(plain(frame), createFrame({ opcode: 0 }));
});

Deno.test("encodeFrame matches protoc-gen-es's toBinary byte for byte", () => {
  fc.assert(
    fc.property(frameArb, (frame) => {
      const expected = toBinary(FrameSchema, create(FrameSchema, frame));
      const bytes = encodeFrame(frame);
      const prefix = bytes.length - expected.length;
      assert.deepEqual(bytes.subarray(prefix), expected);
    }),
    { numRuns: 300 },
  );
});
