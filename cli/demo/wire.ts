/**
 * The demo's first part, without a network: an identity, frames, and the
 * compression settings.
 *
 * @module
 */
import { type CompressionName, generateIdentity, Opcode } from "../../mod.ts";
import {
  compress,
  COMPRESSION_SETTINGS,
  createFrame,
  decompress,
  encodeFrame,
  FrameDecoder,
  puzzleWork,
} from "../../protocol.ts";
import { type CliOutput, hex, opcodeName } from "../output.ts";

/** Part of the demo: an Ed25519 key that passes the static puzzle. */
export async function demoIdentity(io: CliOutput): Promise<void> {
  io.out(
    "== Identity: an Ed25519 key that passes the S/Kademlia static puzzle",
  );
  const difficulty = 12;
  const started = performance.now();
  const me = await generateIdentity({ difficulty });
  const ms = performance.now() - started;
  io.out(`address     ${me.address}  (base58 of the 32-byte public key)`);
  io.out(`node id     ${hex(me.nodeId)}  (SHA-256 of the address)`);
  io.out(
    `puzzle      SHA-256(SHA-256(key)) has ${
      puzzleWork(me.publicKey)
    } leading zero bits (needed ${difficulty}; ~${
      2 ** difficulty
    } keys tried on average), found in ${ms.toFixed(0)} ms`,
  );
}

/** Part of the demo: three frames encoded, and decoded from 5-byte chunks. */
export function demoFrames(io: CliOutput): void {
  io.out("== Frames: size-delimited carrier.v1.Frame messages");
  const frames = [
    createFrame({ opcode: Opcode.PING, id: 1 }),
    createFrame({
      opcode: 1000,
      id: 2,
      payload: new TextEncoder().encode("hello, carrier"),
    }),
    createFrame({ opcode: Opcode.ACK, id: 1 }),
  ];
  const encoded = frames.map((f) => encodeFrame(f));
  for (const [i, bytes] of encoded.entries()) {
    io.out(
      `${opcodeName(frames[i].opcode).padEnd(8)} id=${frames[i].id}  ${bytes.length} bytes  ${
        hex(bytes)
      }`,
    );
  }
  const stream = concat(encoded);
  const decoder = new FrameDecoder();
  const decoded = [];
  for (let i = 0; i < stream.length; i += 5) {
    decoded.push(...decoder.push(stream.subarray(i, i + 5)));
  }
  decoder.end();
  io.out(
    `decoded ${decoded.length} frames from ${stream.length} bytes fed in 5-byte chunks: ${
      decoded.map((f) => `${opcodeName(f.opcode)}#${f.id}`).join(", ")
    }`,
  );
}

/** Part of the demo: every compression setting on the same sample. */
export function demoCompression(io: CliOutput): void {
  io.out("== Compression settings on a 64 KiB sample (JSON log records)");
  const sample = sampleLogRecords(64 * 1024);
  io.out(
    `${"setting".padEnd(8)} ${"value".padStart(5)} ${"bytes".padStart(8)} ${
      "ratio".padStart(7)
    }  round trip`,
  );
  for (
    const [name, setting] of Object.entries(COMPRESSION_SETTINGS) as [
      CompressionName,
      number,
    ][]
  ) {
    const packed = compress(setting, sample);
    const back = decompress(setting, packed, { maxOutputSize: sample.length });
    const ok = back.length === sample.length &&
      back.every((b, i) => b === sample[i]);
    io.out(
      `${name.padEnd(8)} ${String(setting).padStart(5)} ${String(packed.length).padStart(8)} ${
        (sample.length / packed.length).toFixed(1).padStart(6)
      }x  ${ok ? "ok" : "MISMATCH"}`,
    );
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Deterministic JSON log lines: realistic, compressible, not trivial. */
function sampleLogRecords(size: number): Uint8Array {
  const levels = ["info", "debug", "warn", "error"];
  const lines: string[] = [];
  let length = 0;
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; length < size; i++) {
    const line = JSON.stringify({
      ts: 1_763_700_000_000 + i * 137,
      level: levels[next() % 4],
      peer: `12D3KooW${(next() % 1e9).toString(36)}`,
      msg: [
        "frame received",
        "handshake complete",
        "ping",
        "store accepted",
      ][next() % 4],
      bytes: next() % 65536,
      rtt_ms: (next() % 5000) / 100,
    });
    lines.push(line);
    length += line.length + 1;
  }
  return new TextEncoder().encode(lines.join("\n")).subarray(0, size);
}
