/**
 * The in-process targets: pure parsers driven at high rate (the five
 * compression decoders, JSON Patch and byte splices, the frame decoder) and
 * DISCONNECT through a {@linkcode PeerConnection} over an in-memory channel,
 * and (`_local_noise.ts`) the Noise handshake state machine and cipher states.
 * Each input checks invariants, not just "no exception": the error type a
 * parser may throw, the bound on its output, and the result against a
 * reference where there is one (round trips, a naive splice, diffJson).
 * A broken invariant throws {@linkcode Violation}; the worker
 * (`_local_worker.ts`) runs these under a watchdog that catches hangs.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { DisconnectSchema } from "../../lib/protocol.ts";
import { ByteSpliceSchema } from "../../lib/protocol.ts";
import { CompressionError, FrameDecodeError, FrameTooLargeError } from "../../lib/errors.ts";
import { PatchError } from "../../lib/dht/errors.ts";
import { compress, decompress } from "../../lib/wire/compression.ts";
import {
  applyJsonPatch,
  applyJsonPatchToBytes,
  applySplices,
  diffJson,
  parseJsonPatch,
} from "../../lib/dht/patch.ts";
import { splicesOf } from "../../lib/dht/patch.ts";
import {
  createFrame,
  decodeFrameMessage,
  encodeFrame,
  type Frame,
  FrameDecoder,
} from "../../lib/wire/frame.ts";
import { PeerConnection } from "../../lib/peer/connection.ts";
import type { SecureChannel } from "../../lib/secure/channel.ts";
import { ManualClock } from "../../lib/clock.ts";
import { Opcode } from "../../lib/protocol.ts";
import { generateBytes } from "./_generate.ts";
import { concat, mutateBytes, mutateProto } from "./_mutate.ts";
import { NOISE_INPUTS, prepareNoise } from "./_local_noise.ts";
import { Violation } from "./_violation.ts";
import { Rng } from "./_rng.ts";
import { jsonPatchText, nested, randomJson, spliceList } from "./_seeds.ts";

export { Violation };

const encoder = new TextEncoder();

/** One input: returns an outcome key (counted), throws {@linkcode Violation} for a finding. */
export type LocalInput = (rng: Rng, index: number, seed: number) => string | Promise<string>;

// ---- compression ----

const SETTINGS = { bz2: 0, gzip: 1, lzma: 2, zlib: 3, snappy: 4 } as const;

interface Sample {
  data: Uint8Array;
  packed: Uint8Array;
}

const samples = new Map<number, Sample[]>();
const bombs = new Map<number, Uint8Array>();

function sampleData(rng: Rng, size: number): Uint8Array {
  return rng.weighted<() => Uint8Array>([
    [3, () => rng.bytes(size)],
    [2, () => new Uint8Array(size)],
    [3, () => {
      const words = ["carrier", "peer", "frame", '{"k":', "1234", " ", "\n", "ACK"];
      let s = "";
      while (s.length < size) s += rng.pick(words);
      return encoder.encode(s.slice(0, size));
    }],
    [2, () => {
      const period = rng.range(1, 300);
      const unit = rng.bytes(period);
      const out = new Uint8Array(size);
      for (let i = 0; i < size; i++) out[i] = unit[i % period];
      return out;
    }],
  ])();
}

function samplesOf(setting: number, rng: Rng): Sample[] {
  let list = samples.get(setting);
  if (list === undefined) {
    list = [];
    for (let i = 0; i < 48; i++) {
      const size = i < 6
        ? [0, 1, 2, 3, 100, 512][i]
        : i < 40
        ? rng.range(4, 2048)
        : i < 46
        ? rng.range(2048, 16_384)
        : rng.range(16_384, 70_000);
      const data = sampleData(rng, size);
      list.push({ data, packed: compress(setting, data) });
    }
    samples.set(setting, list);
  }
  return list;
}

function bombOf(setting: number): Uint8Array {
  let bomb = bombs.get(setting);
  if (bomb === undefined) {
    bomb = compress(setting, new Uint8Array(setting === 2 ? 1 << 21 : 1 << 23));
    bombs.set(setting, bomb);
  }
  return bomb;
}

const MAGIC: Record<number, Uint8Array> = {
  0: encoder.encode("BZh9"),
  1: Uint8Array.of(0x1f, 0x8b, 8, 0),
  2: Uint8Array.of(0x5d, 0, 0, 1, 0),
  3: Uint8Array.of(0x78, 0x9c),
  4: Uint8Array.of(0xff, 0xff, 0x03),
};

function compressionInput(setting: number): LocalInput {
  return (rng) => {
    const all = samplesOf(setting, rng);
    const pick = () => (rng.chance(0.9) ? all[rng.int(40)] : rng.pick(all));
    let expected: Uint8Array | undefined;
    const data = rng.weighted<() => Uint8Array>([
      [550, () => mutateBytes(rng, pick().packed, 80_000, 4)],
      [100, () => {
        const s = pick();
        expected = s.data;
        return s.packed;
      }],
      [10, () => bombOf(setting)],
      [10, () => mutateBytes(rng, bombOf(setting), 1 << 22, 2)],
      [50, () => concat([pick().packed, pick().packed])],
      [50, () => {
        const packed = pick().packed;
        return packed.subarray(0, rng.int(packed.length));
      }],
      [130, () => concat([MAGIC[setting], rng.bytes(rng.length(2000))])],
      [100, () => rng.bytes(rng.length(4096))],
    ])();
    const maxOutputSize = rng.pick([0, 1, 100, 4096, 65_536, 1 << 20]);
    let out: Uint8Array;
    try {
      out = decompress(setting, data, { maxOutputSize });
    } catch (err) {
      if (!(err instanceof CompressionError)) {
        throw new Violation(
          `decompress(${setting}) threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
          data,
          { cause: err },
        );
      }
      if (expected !== undefined && expected.length <= maxOutputSize) {
        throw new Violation(`decompress(${setting}) refused its own encoder's output`, data, {
          cause: err,
        });
      }
      return err.name;
    }
    if (out.length > maxOutputSize) {
      throw new Violation(
        `decompress(${setting}) returned ${out.length} bytes > ${maxOutputSize}`,
        data,
      );
    }
    if (expected !== undefined && !equalBytes(out, expected)) {
      throw new Violation(`decompress(${setting}) round trip differs`, data);
    }
    return "ok";
  };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

// ---- patches ----

function patchJsonInput(rng: Rng): string {
  const doc = rng.weighted<() => unknown>([
    [6, () => randomJson(rng)],
    [1, () => nested(rng.pick([10, 255, 256]))],
    [1, () => ({ a: Array.from({ length: 300 }, (_, i) => i), b: { c: "x".repeat(2000) } })],
  ])();
  const before = JSON.stringify(doc);
  if (rng.chance(0.1)) {
    // diffJson against a mutated copy: the patch must turn one into the other.
    const target = rng.chance(0.5) ? randomJson(rng) : JSON.parse(before);
    if (rng.chance(0.5) && target !== null && typeof target === "object") {
      (target as Record<string, unknown>)[rng.pick(["a", "z", "0"])] = randomJson(rng);
    }
    let ops;
    try {
      ops = diffJson(doc, target);
    } catch (err) {
      if (err instanceof PatchError) return "diff PatchError";
      throw new Violation(`diffJson threw ${(err as Error)?.name}`, before, { cause: err });
    }
    const result = applyJsonPatch(doc, ops);
    if (JSON.stringify(sortKeys(result)) !== JSON.stringify(sortKeys(target))) {
      throw new Violation(`applyJsonPatch(doc, diffJson(doc, to)) is not to`, before);
    }
    return "diff ok";
  }
  const text = jsonPatchText(rng, doc as never);
  let ops;
  try {
    ops = parseJsonPatch(text);
  } catch (err) {
    if (err instanceof PatchError) return "parse PatchError";
    throw new Violation(
      `parseJsonPatch threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
      text,
      {
        cause: err,
      },
    );
  }
  const maxSize = rng.pick([64, 4096, 65_536, 1 << 20]);
  const value = rng.chance(0.05)
    ? mutateBytes(rng, encoder.encode(before), 1 << 20, 2)
    : encoder.encode(before);
  let out: Uint8Array;
  try {
    out = applyJsonPatchToBytes(value, ops, maxSize);
  } catch (err) {
    if (!(err instanceof PatchError)) {
      throw new Violation(
        `applyJsonPatchToBytes threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
        text,
        { cause: err },
      );
    }
    if (JSON.stringify(doc) !== before) {
      throw new Violation("a failed patch changed its document", text);
    }
    return "apply PatchError";
  }
  if (out.length > maxSize) throw new Violation(`result ${out.length} > maxSize ${maxSize}`, text);
  try {
    JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(out));
  } catch {
    throw new Violation("the patched value is not UTF-8 JSON", text);
  }
  if (JSON.stringify(doc) !== before) throw new Violation("applying changed the document", text);
  return "apply ok";
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** The obvious splice, for comparison. */
function naiveSplices(
  value: Uint8Array,
  splices: { offset: number; deleteCount: number; insert: Uint8Array }[],
): Uint8Array | undefined {
  let bytes = value;
  for (const s of splices) {
    if (s.offset > bytes.length || s.deleteCount > bytes.length - s.offset) return undefined;
    const next = new Uint8Array(bytes.length - s.deleteCount + s.insert.length);
    next.set(bytes.subarray(0, s.offset));
    next.set(s.insert, s.offset);
    next.set(bytes.subarray(s.offset + s.deleteCount), s.offset + s.insert.length);
    bytes = next;
    if (bytes.length > 1 << 21) return undefined;
  }
  return bytes;
}

function patchSpliceInput(rng: Rng): string {
  const value = rng.bytes(rng.length(3000));
  const wire = spliceList(rng, value.length).map((s) => create(ByteSpliceSchema, s));
  let splices;
  try {
    splices = splicesOf(wire);
  } catch (err) {
    if (err instanceof PatchError) return "range PatchError";
    throw new Violation(`splicesOf threw ${(err as Error)?.name}`, "splices", { cause: err });
  }
  if (rng.chance(0.05)) {
    // What a careless caller might pass: not integers, negative, not bytes.
    const i = rng.int(Math.max(1, splices.length));
    const bad = rng.pick<unknown>([-1, 1.5, NaN, Infinity, "1", null, 2 ** 53]);
    if (splices[i]) {
      (splices[i] as unknown as Record<string, unknown>)[
        rng.pick(["offset", "deleteCount", "insert"])
      ] = bad;
    }
  }
  const maxSize = rng.pick([0, 100, 4096, 1 << 20]);
  const expected =
    splices.every((s) =>
        Number.isSafeInteger(s.offset) && s.offset >= 0 && Number.isSafeInteger(s.deleteCount) &&
        s.deleteCount >= 0 && s.insert instanceof Uint8Array
      ) && splices.length <= 1024
      ? naiveSplices(value, splices)
      : undefined;
  let out: Uint8Array;
  try {
    out = applySplices(value, splices, maxSize);
  } catch (err) {
    if (!(err instanceof PatchError)) {
      throw new Violation(
        `applySplices threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
        value,
        {
          cause: err,
        },
      );
    }
    if (expected !== undefined && expected.length <= maxSize) {
      throw new Violation(`applySplices refused splices that apply: ${err.message}`, value);
    }
    return "PatchError";
  }
  if (expected === undefined) throw new Violation("applySplices accepted invalid splices", value);
  if (!equalBytes(out, expected)) {
    throw new Violation("applySplices differs from the naive splice", value);
  }
  if (out.length > maxSize) throw new Violation(`result ${out.length} > maxSize ${maxSize}`, value);
  return "ok";
}

// ---- frames ----

function randomFrame(rng: Rng): Frame {
  const opcode = rng.weighted<() => number>([
    [6, () => rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 17, 18, 19, 64, 65, 66, 67, 68])],
    [2, () => rng.pick([1000, 2 ** 32 - 1, 127, 128])],
  ])();
  const frame = createFrame({
    opcode,
    id: rng.pick([0, 1, rng.u32()]),
    payload: rng.weighted<() => Uint8Array>([
      [6, () => rng.bytes(rng.length(300))],
      [1, () => new Uint8Array(0)],
      [1, () => rng.bytes(rng.pick([127, 128, 16_383, 16_384, 70_000]))],
    ])(),
  });
  if (rng.chance(0.1)) {
    frame.flags = rng.pick([1, 2, 3, 2 ** 32 - 1]);
    frame.compression = rng.int(6);
  }
  return frame;
}

function framesEqual(a: Frame, b: Frame): boolean {
  return a.id === b.id && a.opcode === b.opcode && a.flags === b.flags &&
    a.compression === b.compression && equalBytes(a.payload, b.payload);
}

function frameDecoderInput(rng: Rng): string {
  const frames = Array.from({ length: rng.range(0, 6) }, () => randomFrame(rng));
  const maxFrameSize = rng.pick([16, 64, 1000, 65_536, 1 << 20]);
  const encoded = frames.map((f) => encodeFrame(f, { maxFrameSize: 1 << 26 }));
  let stream = concat(encoded);
  const mutated = rng.chance(0.6);
  if (mutated) {
    stream = rng.chance(0.5) ? mutateBytes(rng, stream, 1 << 20) : mutateProto(rng, stream);
  }
  const truncated = !mutated && stream.length > 0 && rng.chance(0.1);
  if (truncated) stream = stream.subarray(0, rng.int(stream.length));
  const decoder = new FrameDecoder({ maxFrameSize });
  const out: Frame[] = [];
  let failure: unknown;
  let inPush = true;
  let offset = 0;
  try {
    while (offset < stream.length) {
      const n = rng.weighted<() => number>([
        [3, () => 1],
        [3, () => rng.range(1, 16)],
        [3, () => rng.range(1, 4096)],
        [1, () => stream.length],
      ])();
      out.push(...decoder.push(stream.subarray(offset, offset + n)));
      offset += n;
      if (decoder.bufferedBytes > maxFrameSize + 5) {
        throw new Violation(
          `decoder holds ${decoder.bufferedBytes} bytes > maxFrameSize ${maxFrameSize}`,
          stream,
        );
      }
    }
    inPush = false;
    decoder.end();
  } catch (err) {
    if (err instanceof Violation) throw err;
    if (!(err instanceof FrameDecodeError || err instanceof FrameTooLargeError)) {
      throw new Violation(
        `FrameDecoder threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
        stream,
        {
          cause: err,
        },
      );
    }
    failure = err;
    // After push() fails the decoder stays failed (the stream cannot resynchronise).
    if (inPush) {
      try {
        decoder.push(Uint8Array.of(0));
        throw new Violation("a failed decoder accepted more bytes", stream);
      } catch (again) {
        if (again instanceof Violation) throw again;
      }
    }
  }
  if (!mutated) {
    const fits = encoded.every((e) => e.length - varintLength(e) <= maxFrameSize);
    if (!truncated && fits) {
      if (failure !== undefined) {
        throw new Violation(
          `decoder refused a valid stream: ${(failure as Error).message}`,
          stream,
        );
      }
      if (out.length !== frames.length || !out.every((f, i) => framesEqual(f, frames[i]))) {
        throw new Violation("decoded frames differ from those encoded", stream);
      }
    }
    if (truncated && failure === undefined) {
      const whole = out.length === frames.length ||
        concat(encoded.slice(0, out.length)).length === stream.length;
      if (!whole) throw new Violation("a truncated stream ended without an error", stream);
    }
  }
  if (rng.chance(0.05)) {
    try {
      decodeFrameMessage(rng.bytes(rng.length(100)));
    } catch (err) {
      if (!(err instanceof FrameDecodeError)) {
        throw new Violation(`decodeFrameMessage threw ${(err as Error)?.name}`, stream, {
          cause: err,
        });
      }
    }
  }
  return failure === undefined
    ? `${out.length === 0 ? "no" : "some"} frames`
    : (failure as Error).name;
}

function varintLength(encoded: Uint8Array): number {
  let n = 0;
  while (encoded[n] & 0x80) n++;
  return n + 1;
}

// ---- DISCONNECT through a PeerConnection over an in-memory channel ----

const INFO = {
  identityKey: new Uint8Array(32).fill(7),
  address: "fuzz-peer",
  acceptsInbound: false,
  compressions: [0, 1, 2, 3, 4],
  maxFrameSize: 0,
  listenAddrs: [],
  observedAddr: "mem:fuzz",
  agent: "fuzz",
};

/** A SecureChannel stand-in: hands `plaintexts` to the reader, then ends; writes vanish. */
function fakeChannel(plaintexts: Uint8Array[]): SecureChannel {
  let closed = false;
  const queue = [...plaintexts];
  const channel = {
    local: INFO,
    remote: INFO,
    initiator: false,
    handshakeHash: new Uint8Array(32),
    stream: { remoteAddress: "mem:fuzz", localAddress: "mem:node" },
    get closed() {
      return closed;
    },
    read: () => Promise.resolve(closed ? null : queue.shift() ?? null),
    write: () => (closed ? Promise.reject(new Error("closed")) : Promise.resolve()),
    writeMany: () => (closed ? Promise.reject(new Error("closed")) : Promise.resolve()),
    closeWrite: () => Promise.resolve(),
    close: () => {
      closed = true;
    },
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  return channel as unknown as SecureChannel;
}

async function disconnectInput(rng: Rng): Promise<string> {
  const payload = rng.weighted<() => Uint8Array>([
    [
      3,
      () =>
        toBinary(
          DisconnectSchema,
          create(DisconnectSchema, { reason: rng.int(12), message: "bye" }),
        ),
    ],
    [
      4,
      () =>
        mutateProto(
          rng,
          toBinary(
            DisconnectSchema,
            create(DisconnectSchema, { reason: rng.int(9), message: "x".repeat(rng.int(300)) }),
          ),
        ),
    ],
    [3, () => generateBytes(rng, DisconnectSchema)],
    [1, () => rng.bytes(rng.length(1000))],
  ])();
  const compressed = rng.chance(0.1);
  const frame = createFrame({
    opcode: Opcode.DISCONNECT,
    id: rng.pick([0, 1, 2 ** 32 - 1]),
    payload: compressed ? mutateBytes(rng, compress(rng.int(5), payload), 4096, 1) : payload,
    compression: compressed ? rng.int(5) : undefined,
  });
  const bytes = encodeFrame(frame);
  const connection = new PeerConnection(fakeChannel([bytes]), { clock: new ManualClock() });
  const info = await connection.closed;
  return info.remote ? `closed by the peer (${info.reason})` : `closed here (${info.reason})`;
}

/** Builds what a target's inputs share (compressed samples, bombs, fixed handshakes) before timing starts. */
export async function prepareLocal(name: string, seed: number): Promise<void> {
  const setting = (SETTINGS as Record<string, number>)[name.replace("compression.", "")];
  if (name.startsWith("compression.") && setting !== undefined) {
    samplesOf(setting, new Rng(seed, 5));
    bombOf(setting);
  }
  if (name.startsWith("noise.")) await prepareNoise(seed);
}

/** The in-process targets by name. */
export const LOCAL_INPUTS: Record<string, LocalInput> = {
  "compression.bz2": compressionInput(SETTINGS.bz2),
  "compression.gzip": compressionInput(SETTINGS.gzip),
  "compression.lzma": compressionInput(SETTINGS.lzma),
  "compression.zlib": compressionInput(SETTINGS.zlib),
  "compression.snappy": compressionInput(SETTINGS.snappy),
  "patch.json": patchJsonInput,
  "patch.splice": patchSpliceInput,
  "frame.decoder": frameDecoderInput,
  "op.DISCONNECT": disconnectInput,
  ...NOISE_INPUTS,
};
