import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type Codec,
  compress,
  COMPRESSION_SETTINGS,
  type CompressionName,
  decompress,
  getCodec,
} from "../../lib/wire/compression.ts";
import {
  CompressionError,
  DecompressionLimitError,
  UnsupportedCompressionError,
} from "../../lib/errors.ts";
import { ArgumentError } from "../../lib/errors.ts";

const NAMES = Object.keys(COMPRESSION_SETTINGS) as CompressionName[];
const CODECS: Codec[] = NAMES.map((name) => getCodec(COMPRESSION_SETTINGS[name]));
const MiB = 1024 * 1024;

const encoder = new TextEncoder();

function hex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g)!, (byte) => parseInt(byte, 16));
}

/** Deterministic pseudo-random bytes (xorshift32). */
function noise(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function runs(): Uint8Array {
  // Runs around bzip2's RLE1 edges (3, 4, 5, 255, 256, 259 and longer).
  const parts: number[] = [];
  [1, 3, 4, 5, 254, 255, 256, 259, 1000, 4].forEach((n, i) => {
    for (let k = 0; k < n; k++) parts.push(i % 3 === 0 ? 0 : 0x41 + i);
  });
  return Uint8Array.from(parts);
}

const SAMPLES: Record<string, Uint8Array> = {
  "empty input": new Uint8Array(0),
  "one byte": new Uint8Array([42]),
  "every byte value": Uint8Array.from({ length: 256 }, (_, i) => i),
  "JSON text": encoder.encode(
    Array.from(
      { length: 400 },
      (_, i) => `{"id":${i},"peer":"node-${i % 13}","ok":${i % 4 !== 0}}`,
    ).join("\n"),
  ),
  "100 KiB of zeros": new Uint8Array(100 * 1024),
  "10 KiB of noise": noise(10 * 1024, 7),
  "runs of equal bytes": runs(),
};

function assertBytesEqual(actual: Uint8Array, expected: Uint8Array): void {
  assert.equal(actual.length, expected.length);
  assert.ok(actual.every((b, i) => b === expected[i]), "bytes differ");
}

/** Calls `fn` and returns what it threw, failing if it did not throw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  assert.fail("expected an error");
}

Deno.test("COMPRESSION_SETTINGS holds the protocol's frozen wire values", () => {
  assert.deepEqual({ ...COMPRESSION_SETTINGS }, {
    bz2: 0,
    gzip: 1,
    lzma: 2,
    zlib: 3,
    snappy: 4,
  });
  assert.ok(Object.isFrozen(COMPRESSION_SETTINGS));
});

Deno.test("getCodec returns the codec named by each wire value", () => {
  for (const name of NAMES) {
    const codec = getCodec(COMPRESSION_SETTINGS[name]);
    assert.equal(codec.name, name);
    assert.equal(codec.setting, COMPRESSION_SETTINGS[name]);
    assert.equal(getCodec(codec.setting), codec);
  }
});

Deno.test("getCodec throws UnsupportedCompressionError naming unknown settings", () => {
  for (const setting of [5, -1, 1.5, NaN, 1000]) {
    const error = thrown(() => getCodec(setting));
    assert.ok(error instanceof UnsupportedCompressionError);
    assert.equal(error.name, "UnsupportedCompressionError");
    assert.match(error.message, new RegExp(`setting ${setting}\\b`));
    assert.ok(
      thrown(() => compress(setting, new Uint8Array(1))) instanceof
        UnsupportedCompressionError,
    );
    assert.ok(
      thrown(() => decompress(setting, new Uint8Array(1), { maxOutputSize: 1 })) instanceof
        UnsupportedCompressionError,
    );
  }
});

Deno.test("compress writes the documented container formats", () => {
  const data = SAMPLES["JSON text"];
  const bz2 = compress(COMPRESSION_SETTINGS.bz2, data);
  assert.deepEqual([...bz2.subarray(0, 3)], [0x42, 0x5a, 0x68]); // "BZh"
  assert.ok(bz2[3] >= 0x31 && bz2[3] <= 0x39);

  const gzip = compress(COMPRESSION_SETTINGS.gzip, data);
  assert.deepEqual([...gzip.subarray(0, 3)], [0x1f, 0x8b, 8]); // RFC 1952, deflate

  const lzma = compress(COMPRESSION_SETTINGS.lzma, data);
  assert.equal(lzma[0], 0x5d); // lc=3 lp=0 pb=2
  const view = new DataView(lzma.buffer, lzma.byteOffset, 13);
  assert.equal(view.getUint32(1, true), 64 * 1024); // dictionary size
  assert.equal(view.getBigUint64(5, true), BigInt(data.length)); // known size

  const zlib = compress(COMPRESSION_SETTINGS.zlib, data);
  assert.equal(zlib[0] & 0x0f, 8); // RFC 1950, deflate
  assert.equal((zlib[0] * 256 + zlib[1]) % 31, 0);

  const snappy = compress(COMPRESSION_SETTINGS.snappy, data);
  let length = 0;
  for (let i = 0, shift = 0;; i++, shift += 7) {
    length += (snappy[i] & 0x7f) * 2 ** shift;
    if (snappy[i] < 0x80) break;
  }
  assert.equal(length, data.length); // raw block: varint length preamble
});

// Written by Python 3.11.2 (the bz2, gzip with mtime=0, lzma with
// format=FORMAT_ALONE, i.e. unknown size and an end marker, and zlib modules)
// and python-snappy 0.5.3 (`snappy.compress`), all for this text.
const PYTHON_TEXT = encoder.encode(
  "carrier compression test vector: hello hello hello hello!\n".repeat(4),
);
const PYTHON_VECTORS: Record<CompressionName, string> = {
  bz2:
    "425a6839314159265359a63b1d49000017d9800010600000102a67dd00200070534c8c4c4c40aaa64d302687a933c286ce367c4ca182c5cc90761b2c60a84c82c1e86848345cb9f152a41820c9d091a3248fc5dc914e1424298ec75240",
  gzip:
    "1f8b08000000000002034b4e2c2aca4c2d5248cecf2d284a2d2ececccf5328492d2e51284b4d2ec92fb252c848cdc9c9c72415b99287944e00d8ddda8be8000000",
  lzma:
    "5d00008000ffffffffffffffff0031984abdf55db46a3962b3272694cf2338355d4a63f4270ac4fae21254896ad2eb4f84859ef4b16761232131d882fffffc678000",
  zlib:
    "789c4b4e2c2aca4c2d5248cecf2d284a2d2ececccf5328492d2e51284b4d2ec92fb252c848cdc9c9c72415b99287944e008e0d5609",
  snappy:
    "e801986361727269657220636f6d7072657373696f6e207465737420766563746f723a2068656c6c6f2042060004210afe3a00fe3a00b63a00",
};

for (const codec of CODECS) {
  const { name } = codec;

  Deno.test(`${name} round-trips sample data`, () => {
    for (const [label, data] of Object.entries(SAMPLES)) {
      const packed = codec.compress(data);
      const back = codec.decompress(packed, { maxOutputSize: data.length });
      assert.equal(back.length, data.length, label);
      assertBytesEqual(back, data);
      assertBytesEqual(
        decompress(codec.setting, compress(codec.setting, data), {
          maxOutputSize: data.length,
        }),
        data,
      );
    }
  });

  Deno.test(`${name} round-trips arbitrary bytes`, () => {
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 2048 }),
      // Low-entropy input exercises matches, runs and repeated symbols.
      fc.array(fc.constantFrom(0, 1, 97, 255), { maxLength: 4096 }).map((a) => Uint8Array.from(a)),
    );
    fc.assert(
      fc.property(bytes, (data) => {
        const back = codec.decompress(codec.compress(data), {
          maxOutputSize: data.length,
        });
        assertBytesEqual(back, data);
      }),
      { numRuns: 60 },
    );
  });

  Deno.test(`${name} decompress reads data written by Python`, () => {
    const out = codec.decompress(hex(PYTHON_VECTORS[name]), {
      maxOutputSize: 4096,
    });
    assertBytesEqual(out, PYTHON_TEXT);
  });

  Deno.test(`${name} decompress allows exactly maxOutputSize bytes and no more`, () => {
    const data = SAMPLES["JSON text"];
    const packed = codec.compress(data);
    assertBytesEqual(
      codec.decompress(packed, { maxOutputSize: data.length }),
      data,
    );
    const error = thrown(() => codec.decompress(packed, { maxOutputSize: data.length - 1 }));
    assert.ok(error instanceof DecompressionLimitError);
    assert.match(
      error.message,
      new RegExp(`maxOutputSize ${data.length - 1}\\b`),
    );
    const empty = codec.compress(new Uint8Array(0));
    assert.equal(codec.decompress(empty, { maxOutputSize: 0 }).length, 0);
    assert.ok(
      thrown(() =>
        codec.decompress(codec.compress(new Uint8Array(1)), {
          maxOutputSize: 0,
        })
      ) instanceof DecompressionLimitError,
    );
  });

  Deno.test(`${name} decompress refuses a 10 MiB bomb with DecompressionLimitError`, () => {
    const bomb = codec.compress(new Uint8Array(10 * MiB));
    assert.ok(bomb.length < MiB);
    const error = thrown(() => codec.decompress(bomb, { maxOutputSize: 64 * 1024 }));
    assert.ok(error instanceof DecompressionLimitError);
    assert.ok(error instanceof CompressionError);
    assert.equal(error.name, "DecompressionLimitError");
    assert.match(
      error.message,
      new RegExp(`^Cannot decompress ${name} data: .*maxOutputSize 65536$`),
    );
  });

  Deno.test(`${name} decompress throws CompressionError for garbage, truncated and trailing input`, () => {
    const packed = codec.compress(SAMPLES["JSON text"]);
    const bad: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["one byte", new Uint8Array([0xff])],
      ["noise", noise(300, 99)],
      [
        "text",
        encoder.encode("definitely not compressed data, definitely not"),
      ],
      ["trailing bytes", Uint8Array.from([...packed, 1, 2, 3])],
    ];
    for (
      let cut = 0;
      cut < packed.length;
      cut += Math.max(1, packed.length >> 6)
    ) {
      bad.push([`truncated to ${cut} bytes`, packed.subarray(0, cut)]);
    }
    bad.push(["last byte missing", packed.subarray(0, packed.length - 1)]);
    for (const [label, data] of bad) {
      const error = thrown(() => codec.decompress(data, { maxOutputSize: MiB }));
      assert.ok(error instanceof CompressionError, `${label}: ${error}`);
      assert.match(
        error.message,
        new RegExp(`^Cannot decompress ${name} data: `),
        label,
      );
    }
  });

  Deno.test(`${name} decompress throws only CompressionError for arbitrary bytes`, () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (data) => {
        try {
          const out = codec.decompress(data, { maxOutputSize: 64 * 1024 });
          assert.ok(out instanceof Uint8Array && out.length <= 64 * 1024);
        } catch (error) {
          assert.ok(error instanceof CompressionError, String(error));
        }
      }),
      { numRuns: 300 },
    );
  });
}

Deno.test("lzma decompress enforces the bound on streams of unknown size", () => {
  const bomb = compress(COMPRESSION_SETTINGS.lzma, new Uint8Array(MiB));
  const unknown = bomb.slice();
  unknown.fill(0xff, 5, 13); // size unknown: the decoder relies on the end marker
  const whole = decompress(COMPRESSION_SETTINGS.lzma, unknown, {
    maxOutputSize: MiB,
  });
  assert.equal(whole.length, MiB);
  const error = thrown(() =>
    decompress(COMPRESSION_SETTINGS.lzma, unknown, { maxOutputSize: 1000 })
  );
  assert.ok(error instanceof DecompressionLimitError);
  assert.equal(
    error.message,
    "Cannot decompress lzma data: output exceeds maxOutputSize 1000",
  );
});

Deno.test("lzma and snappy decompress refuse a declared size above the bound before decoding", () => {
  // Headers that declare 4 GiB - 1 bytes of output, followed by nothing.
  const lzma = hex("5d00000100ffffffff0000000000");
  const snappy = hex("ffffffff0f");
  for (const [setting, data] of [[2, lzma], [4, snappy]] as const) {
    const error = thrown(() => decompress(setting, data, { maxOutputSize: MiB }));
    assert.ok(error instanceof DecompressionLimitError);
    assert.match(
      error.message,
      /header declares 4294967295 bytes, more than maxOutputSize 1048576$/,
    );
  }
});

Deno.test("gzip and zlib decompress map node:zlib's limit error, keeping it as cause", () => {
  for (
    const setting of [COMPRESSION_SETTINGS.gzip, COMPRESSION_SETTINGS.zlib]
  ) {
    const bomb = compress(setting, new Uint8Array(MiB));
    const error = thrown(() => decompress(setting, bomb, { maxOutputSize: 4096 }));
    assert.ok(error instanceof DecompressionLimitError);
    assert.equal(
      (error.cause as { code?: string }).code,
      "ERR_BUFFER_TOO_LARGE",
    );
  }
});

Deno.test("gzip and zlib decompress wrap node:zlib's errors as cause", () => {
  for (
    const setting of [COMPRESSION_SETTINGS.gzip, COMPRESSION_SETTINGS.zlib]
  ) {
    const error = thrown(() => decompress(setting, noise(64, 3), { maxOutputSize: MiB }));
    assert.ok(error instanceof CompressionError);
    assert.ok(error.cause instanceof Error);
    assert.match(
      error.message,
      /^Cannot decompress (gzip|zlib) data: incorrect header check$/,
    );
  }
});

Deno.test("snappy decompress refuses a declared length the input cannot hold", () => {
  // 100 000 bytes declared, 3 bytes of elements: at most 64 bytes of output.
  const error = thrown(() =>
    decompress(COMPRESSION_SETTINGS.snappy, hex("a08d06fe0100"), {
      maxOutputSize: MiB,
    })
  );
  assert.ok(
    error instanceof CompressionError &&
      !(error instanceof DecompressionLimitError),
  );
  assert.match(
    error.message,
    /header declares 100000 bytes, more than 3 bytes of input can hold$/,
  );
});

Deno.test("bz2 decompress refuses a block of long runs past a small bound", () => {
  // 900 000 equal bytes are 17 650 entries after RLE1 and a few run symbols
  // after MTF; _bzip2_decode.ts refuses them once 5/4 × 100 + 5 entries are exceeded.
  const packed = compress(
    COMPRESSION_SETTINGS.bz2,
    new Uint8Array(900_000).fill(7),
  );
  assert.ok(packed.length < 100);
  const error = thrown(() => decompress(COMPRESSION_SETTINGS.bz2, packed, { maxOutputSize: 100 }));
  assert.ok(error instanceof DecompressionLimitError);
  assert.equal(
    error.message,
    "Cannot decompress bz2 data: output exceeds maxOutputSize 100",
  );
});

Deno.test("bz2 and gzip decompress read concatenated streams", () => {
  const a = encoder.encode("first stream, ".repeat(20));
  const b = encoder.encode("second stream.".repeat(20));
  for (const setting of [COMPRESSION_SETTINGS.bz2, COMPRESSION_SETTINGS.gzip]) {
    const joined = Uint8Array.from([
      ...compress(setting, a),
      ...compress(setting, b),
    ]);
    const out = decompress(setting, joined, {
      maxOutputSize: a.length + b.length,
    });
    assertBytesEqual(out, Uint8Array.from([...a, ...b]));
    assert.ok(
      thrown(() =>
        decompress(setting, joined, { maxOutputSize: a.length + b.length - 1 })
      ) instanceof
        DecompressionLimitError,
    );
  }
});

Deno.test("decompress rejects a missing or invalid maxOutputSize with ArgumentError", () => {
  const packed = compress(COMPRESSION_SETTINGS.zlib, new Uint8Array(10));
  for (const maxOutputSize of [-1, 1.5, NaN, Infinity, undefined]) {
    const error = thrown(() =>
      decompress(
        COMPRESSION_SETTINGS.zlib,
        packed,
        { maxOutputSize } as { maxOutputSize: number },
      )
    );
    assert.ok(error instanceof ArgumentError);
    assert.match(
      error.message,
      /maxOutputSize must be a non-negative safe integer/,
    );
  }
});

Deno.test("compress and decompress reject input that is not a Uint8Array", () => {
  for (const codec of CODECS) {
    const error = thrown(() => codec.compress("text" as unknown as Uint8Array));
    assert.ok(error instanceof ArgumentError);
    assert.equal(error.message, "expected Uint8Array, got string");
  }
});
