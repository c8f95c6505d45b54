/**
 * Micro benchmarks of the five compression settings on a realistic 64 KiB
 * payload: newline-delimited JSON log records of a p2p node (timestamps,
 * levels, events, peer addresses from a pool of 32, numbers), generated
 * deterministically. Not all zeros, not random bytes.
 *
 * `zlib` (node:zlib, native) is the baseline of each group. At load the
 * module prints each setting's compression ratio on the payload.
 *
 * Run: `deno bench --allow-read --allow-env bench/compression_bench.ts`
 *
 * @module
 */

import { COMPRESSION_SETTINGS, type CompressionName, getCodec } from "../lib/wire/compression.ts";

/** Payload size of every benchmark: 64 KiB. */
export const PAYLOAD_SIZE = 64 * 1024;

/**
 * Returns exactly `size` bytes of newline-delimited JSON log records, the
 * same bytes on every call.
 */
export function logRecords(size: number): Uint8Array {
  let seed = 0x2545f491;
  const rand = (): number => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
  const alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
  const peers = Array.from(
    { length: 32 },
    () => Array.from({ length: 44 }, () => pick([...alphabet])).join(""),
  );
  const levels = ["debug", "info", "info", "info", "warn", "error"] as const;
  const events = [
    "dial",
    "handshake",
    "ping",
    "store",
    "find_node",
    "shout",
    "whisper",
    "disconnect",
  ] as const;
  const encoder = new TextEncoder();
  const out = new Uint8Array(size);
  let length = 0;
  let ts = Date.UTC(2025, 0, 1);
  while (length < size) {
    ts += Math.floor(rand() * 250);
    const record = {
      ts: new Date(ts).toISOString(),
      level: pick(levels),
      event: pick(events),
      peer: pick(peers),
      rttMs: Math.round(rand() * 12000) / 100,
      bytes: Math.floor(rand() * 65536),
      frame: Math.floor(rand() * 1e6),
      ok: rand() > 0.05,
    };
    const line = encoder.encode(JSON.stringify(record) + "\n");
    const n = Math.min(line.length, size - length);
    out.set(line.subarray(0, n), length);
    length += n;
  }
  return out;
}

const payload = logRecords(PAYLOAD_SIZE);
const names = Object.keys(COMPRESSION_SETTINGS) as CompressionName[];
const packed = new Map(
  names.map((name) => [
    name,
    getCodec(COMPRESSION_SETTINGS[name]).compress(payload),
  ]),
);

/** Compressed size and ratio (original / compressed) of each setting. */
export function ratioTable(): {
  name: CompressionName;
  compressedBytes: number;
  ratio: number;
}[] {
  return names.map((name) => {
    const compressedBytes = packed.get(name)!.length;
    return {
      name,
      compressedBytes,
      ratio: Math.round((payload.length / compressedBytes) * 100) / 100,
    };
  });
}

// deno-lint-ignore no-console
console.log(
  `compression ratio on ${PAYLOAD_SIZE} bytes of JSON log records:\n` +
    ratioTable()
      .map((r) =>
        `  ${r.name.padEnd(6)} ${String(r.compressedBytes).padStart(6)} bytes` +
        `  ratio ${r.ratio.toFixed(2)}`
      )
      .join("\n"),
);

for (const name of names) {
  const codec = getCodec(COMPRESSION_SETTINGS[name]);
  const data = packed.get(name)!;
  Deno.bench({
    name: `${name} compress 64 KiB`,
    group: "compress",
    baseline: name === "zlib",
    fn() {
      codec.compress(payload);
    },
  });
  Deno.bench({
    name: `${name} decompress 64 KiB`,
    group: "decompress",
    baseline: name === "zlib",
    fn() {
      codec.decompress(data, { maxOutputSize: PAYLOAD_SIZE });
    },
  });
}
