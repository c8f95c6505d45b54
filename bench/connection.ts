/**
 * End-to-end figures of a carrier connection over TCP on 127.0.0.1, against
 * a raw `Deno.connect` baseline measured in the same run, printed as a
 * Markdown table:
 *
 * - throughput: a raw byte pump (64 KiB writes) against `PeerConnection.send`
 *   of 64 KiB frames, counted by the receiver's `onFrame`;
 * - round trips: a raw 256 B ping-pong against 256 B `request` → ACK (the ACK
 *   echoes the 256 B), one outstanding at a time;
 * - handshakes per second: dial + Noise XX on both sides, no requests;
 * - connect + handshake + first reply (a PING), in loopback round trips:
 *   (wall time − crypto time) / raw round-trip time. The crypto time is the
 *   same connection made over the in-memory transport (both channel sides,
 *   no sockets), measured alternately with the TCP one; the difference is the
 *   median of the paired differences. The protocol needs 3: the TCP SYN,
 *   Noise XX messages 1–2, and message 3 with the PING riding behind it.
 *
 * Two setups, each with its own raw baseline: both endpoints in this process
 * (one event loop, one thread for both sides' JavaScript), and the listening
 * side in a subprocess of this script (`--serve`), so that each endpoint has
 * an event loop of its own, as between two nodes.
 *
 * Run: `deno task bench:connection` (or `deno run -A bench/connection.ts`;
 * `--one-process` or `--two-processes` runs one setup only).
 *
 * @module
 */

import { generateIdentity, type Identity } from "../lib/identity/keys.ts";
import { PeerConnection } from "../lib/peer/connection.ts";
import { secureInbound, secureOutbound } from "../lib/secure/channel.ts";
import {
  aesGcmImplementation,
  createHandshake,
  generateX25519KeyPair,
} from "../lib/secure/noise.ts";
import { MemoryNetwork } from "../lib/transport/memory.ts";
import type { Transport } from "../lib/transport/types.ts";
import { TcpTransport } from "../lib/transport/tcp.ts";
import type { Frame } from "../lib/wire/frame.ts";

/** Application opcodes of the bench's server. */
const ECHO = 1000; // request: ACK echoes the payload
const SINK = 1001; // one-way: the server counts payload bytes
const SYNC = 1002; // request: ACK carries the bytes counted since the last SYNC

const PUMP_BYTES = 256 * 1024 * 1024;
const MESSAGE = 64 * 1024;
const SMALL = 256;
const REPETITIONS = 5;
/** Duration of one round-trip or handshake repetition, in ms. */
const SLICE = 400;
const HANDSHAKE_CONCURRENCY = 4;
const FIRST_REPLY_SAMPLES = 25;

interface Ports {
  rawSink: number;
  rawEcho: number;
  carrier: number;
  handshake: number;
}

interface Server {
  ports: Ports;
  close(): void;
}

// ---------------------------------------------------------------------------
// The listening side (in this process, or in a `--serve` subprocess).

async function startServer(identity: Identity): Promise<Server> {
  const listen = () => Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const rawSink = listen();
  const rawEcho = listen();
  const transport = new TcpTransport();
  const carrier = await transport.listen("127.0.0.1:0");
  const handshake = await transport.listen("127.0.0.1:0");
  const conns = new Set<Deno.Conn>();
  const peers = new Set<PeerConnection>();

  const acceptRaw = async (
    listener: Deno.Listener,
    serve: (conn: Deno.Conn) => Promise<void>,
  ) => {
    for await (const conn of listener) {
      (conn as Deno.TcpConn).setNoDelay(true);
      conns.add(conn);
      serve(conn).catch(() => {}).finally(() => {
        conns.delete(conn);
        closeQuietly(conn);
      });
    }
  };
  // Sink: an 8-byte count, then that many bytes, answered with one byte; repeated.
  acceptRaw(rawSink, async (conn) => {
    const buffer = new Uint8Array(256 * 1024);
    const header = new Uint8Array(8);
    while (await readFull(conn, header)) {
      let left = Number(new DataView(header.buffer).getBigUint64(0));
      while (left > 0) {
        const n = await conn.read(buffer.subarray(0, Math.min(buffer.length, left)));
        if (n === null) return;
        left -= n;
      }
      await writeAll(conn, Uint8Array.of(1));
    }
  }).catch(() => {});
  // Echo: 256 B in, the same 256 B out.
  acceptRaw(rawEcho, async (conn) => {
    const buffer = new Uint8Array(SMALL);
    while (await readFull(conn, buffer)) await writeAll(conn, buffer);
  }).catch(() => {});

  (async () => {
    for await (const stream of carrier) {
      secureInbound(stream, { identity }).then((channel) => {
        let counted = 0;
        const peer = new PeerConnection(channel, {
          onFrame(frame: Frame, connection: PeerConnection) {
            if (frame.opcode === SINK) counted += frame.payload.length;
            else if (frame.opcode === ECHO) return connection.ack(frame, frame.payload);
            else if (frame.opcode === SYNC) {
              const data = new Uint8Array(8);
              new DataView(data.buffer).setFloat64(0, counted);
              counted = 0;
              return connection.ack(frame, data);
            }
          },
        });
        peers.add(peer);
        peer.closed.then(() => peers.delete(peer));
      }).catch(() => {});
    }
  })().catch(() => {});
  // Handshake only: the server closes the channel once its side is done.
  (async () => {
    for await (const stream of handshake) {
      secureInbound(stream, { identity }).then((channel) => channel.close()).catch(() => {});
    }
  })().catch(() => {});

  const port = (address: string) => Number(address.slice(address.lastIndexOf(":") + 1));
  return {
    ports: {
      rawSink: (rawSink.addr as Deno.NetAddr).port,
      rawEcho: (rawEcho.addr as Deno.NetAddr).port,
      carrier: port(carrier.address),
      handshake: port(handshake.address),
    },
    close() {
      closeQuietly(rawSink);
      closeQuietly(rawEcho);
      for (const conn of conns) closeQuietly(conn);
      for (const peer of peers) peer.close().catch(() => {});
      transport.close();
    },
  };
}

async function serveForParent(): Promise<void> {
  const server = await startServer(await generateIdentity({ difficulty: 0 }));
  await writeAll(Deno.stdout, new TextEncoder().encode(JSON.stringify(server.ports) + "\n"));
  // Serve until the parent closes our stdin.
  const sink = new Uint8Array(64);
  while (await Deno.stdin.read(sink) !== null) { /* nothing to read */ }
  server.close();
  Deno.exit(0);
}

/** Starts `--serve` in a subprocess and reads its ports from its first line of output. */
async function startSubprocessServer(): Promise<Server> {
  const config = new URL("./deno.json", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-read",
      "--allow-env",
      // The server gets the AES-GCM backend this process has (OpenSSL when FFI is granted).
      ...(Deno.permissions.querySync({ name: "ffi" }).state === "granted" ? ["--allow-ffi"] : []),
      "--config",
      config.pathname,
      import.meta.filename!,
      "--serve",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The --serve subprocess exited before printing its ports");
    line += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const writer = child.stdin.getWriter();
  return {
    ports: JSON.parse(line),
    close() {
      writer.close().catch(() => {});
    },
  };
}

// ---------------------------------------------------------------------------
// The dialing side: raw baseline.

async function rawConnect(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

/** Bytes per second of a raw pump of `total` bytes in 64 KiB writes. */
async function rawPump(conn: Deno.Conn, total: number): Promise<number> {
  const chunk = crypto.getRandomValues(new Uint8Array(MESSAGE));
  const header = new Uint8Array(8);
  new DataView(header.buffer).setBigUint64(0, BigInt(total));
  const done = new Uint8Array(1);
  const started = performance.now();
  await writeAll(conn, header);
  for (let sent = 0; sent < total; sent += MESSAGE) await writeAll(conn, chunk);
  if (!await readFull(conn, done)) throw new Error("raw sink closed early");
  return total / ((performance.now() - started) / 1000);
}

/** Round trips per second of a raw 256 B ping-pong during `SLICE` ms. */
async function rawPingPong(conn: Deno.Conn, slice = SLICE): Promise<number> {
  const out = crypto.getRandomValues(new Uint8Array(SMALL));
  const back = new Uint8Array(SMALL);
  const started = performance.now();
  let count = 0;
  let now = started;
  while (now - started < slice) {
    await writeAll(conn, out);
    if (!await readFull(conn, back)) throw new Error("raw echo closed early");
    count++;
    if ((count & 15) === 0) now = performance.now();
  }
  return count / ((performance.now() - started) / 1000);
}

// ---------------------------------------------------------------------------
// The dialing side: carrier.

async function carrierConnect(
  transport: TcpTransport,
  port: number,
  identity: Identity,
): Promise<PeerConnection> {
  const stream = await transport.dial(`127.0.0.1:${port}`);
  return new PeerConnection(await secureOutbound(stream, { identity }));
}

/** Payload bytes per second of `total` bytes sent as 64 KiB frames. */
async function carrierPump(peer: PeerConnection, total: number): Promise<number> {
  const payload = crypto.getRandomValues(new Uint8Array(MESSAGE));
  const started = performance.now();
  for (let sent = 0; sent < total; sent += MESSAGE) await peer.send(SINK, payload);
  const reply = await peer.request(SYNC, new Uint8Array(0));
  const seconds = (performance.now() - started) / 1000;
  const counted = new DataView(reply.buffer, reply.byteOffset, 8).getFloat64(0);
  if (counted !== total) throw new Error(`carrier sink counted ${counted} of ${total} bytes`);
  return total / seconds;
}

/** 256 B request → ACK round trips per second during `SLICE` ms. */
async function carrierRoundTrips(peer: PeerConnection, slice = SLICE): Promise<number> {
  const payload = crypto.getRandomValues(new Uint8Array(SMALL));
  const started = performance.now();
  let count = 0;
  let now = started;
  while (now - started < slice) {
    const reply = await peer.request(ECHO, payload);
    if (reply.length !== SMALL) throw new Error(`ECHO replied ${reply.length} bytes`);
    count++;
    if ((count & 15) === 0) now = performance.now();
  }
  return count / ((performance.now() - started) / 1000);
}

/** Handshakes per second: `HANDSHAKE_CONCURRENCY` loops of dial + XX, both sides finished. */
async function handshakes(
  transport: TcpTransport,
  port: number,
  identity: Identity,
  slice = SLICE,
): Promise<number> {
  const started = performance.now();
  let count = 0;
  const loop = async () => {
    while (performance.now() - started < slice) {
      const stream = await transport.dial(`127.0.0.1:${port}`);
      const channel = await secureOutbound(stream, { identity });
      // The server closes once its side of the handshake is done.
      if (await channel.read() !== null) throw new Error("handshake server sent data");
      channel.close();
      count++;
    }
  };
  await Promise.all(Array.from({ length: HANDSHAKE_CONCURRENCY }, loop));
  return count / ((performance.now() - started) / 1000);
}

/** Wall time of dial + handshake + PING → ACK, in ms. */
async function firstReply(
  transport: TcpTransport,
  port: number,
  identity: Identity,
): Promise<number> {
  const started = performance.now();
  const peer = await carrierConnect(transport, port, identity);
  await peer.ping();
  const wall = performance.now() - started;
  await peer.close();
  return wall;
}

/**
 * The in-memory twin of {@linkcode firstReply}: both sides of a channel
 * handshake plus a PING → ACK over the in-memory transport (no sockets), so
 * its time is the crypto and the code, without the network.
 */
async function firstReplyInMemory(
  transport: Transport,
  address: string,
  identity: Identity,
): Promise<number> {
  const started = performance.now();
  const stream = await transport.dial(address);
  const peer = new PeerConnection(await secureOutbound(stream, { identity }));
  await peer.ping();
  const wall = performance.now() - started;
  await peer.close();
  return wall;
}

/** Serves {@linkcode firstReplyInMemory} as the bench's server does over TCP. */
async function memoryServer(identity: Identity): Promise<{ net: MemoryNetwork; address: string }> {
  const net = new MemoryNetwork();
  const listener = await net.transport().listen("mem:0");
  (async () => {
    for await (const stream of listener) {
      secureInbound(stream, { identity }).then((channel) => new PeerConnection(channel))
        .catch(() => {});
    }
  })().catch(() => {});
  return { net, address: listener.address };
}

/** Time of both sides of a bare Noise XX handshake (no identities, no payloads), in ms. */
async function noiseXXCrypto(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < FIRST_REPLY_SAMPLES + 5; i++) {
    const started = performance.now();
    const alice = createHandshake({
      pattern: "XX",
      initiator: true,
      staticKeyPair: generateX25519KeyPair(),
    });
    const bob = createHandshake({
      pattern: "XX",
      initiator: false,
      staticKeyPair: generateX25519KeyPair(),
    });
    await bob.readMessage(await alice.writeMessage());
    await alice.readMessage(await bob.writeMessage());
    await bob.readMessage(await alice.writeMessage());
    alice.split();
    bob.split();
    if (i >= 5) samples.push(performance.now() - started);
  }
  return median(samples);
}

// ---------------------------------------------------------------------------
// Running and printing.

interface Figures {
  setup: string;
  rawPump: number;
  carrierPump: number;
  rawRoundTrips: number;
  carrierRoundTrips: number;
  handshakes: number;
  firstReplyWall: number;
  firstReplyInMemory: number;
  /** Median of the paired differences TCP − in memory. */
  firstReplyNetwork: number;
  noiseCrypto: number;
}

async function measure(
  setup: string,
  server: Server,
  identities: [Identity, Identity],
): Promise<Figures> {
  const { ports } = server;
  const client = identities[0];
  const log = (what: string) => console.error(`  ${setup}: ${what}`);

  log("raw pump");
  const sink = await rawConnect(ports.rawSink);
  await rawPump(sink, PUMP_BYTES / 8); // warm-up
  const rawPumps = await repeat(() => rawPump(sink, PUMP_BYTES));
  sink.close();

  log("raw ping-pong");
  const echo = await rawConnect(ports.rawEcho);
  await rawPingPong(echo, SLICE / 2);
  const rawTrips = await repeat(() => rawPingPong(echo));
  echo.close();

  const transport = new TcpTransport();
  try {
    log("carrier 64 KiB frames");
    const peer = await carrierConnect(transport, ports.carrier, client);
    await carrierPump(peer, PUMP_BYTES / 8);
    const carrierPumps = await repeat(() => carrierPump(peer, PUMP_BYTES));

    log("carrier 256 B request → ACK");
    await carrierRoundTrips(peer, SLICE / 2);
    const carrierTrips = await repeat(() => carrierRoundTrips(peer));
    await peer.close();

    log("handshakes");
    await handshakes(transport, ports.handshake, client, SLICE / 2);
    const handshakeRates = await repeat(() => handshakes(transport, ports.handshake, client));

    log("connect + handshake + first reply, over TCP and in memory, interleaved");
    const memory = await memoryServer(identities[1]);
    const walls: number[] = [];
    const inMemory: number[] = [];
    const differences: number[] = [];
    try {
      for (let i = 0; i < FIRST_REPLY_SAMPLES + 5; i++) {
        const wall = await firstReply(transport, ports.carrier, client);
        const local = await firstReplyInMemory(memory.net.transport(), memory.address, client);
        if (i < 5) continue;
        walls.push(wall);
        inMemory.push(local);
        differences.push(wall - local);
      }
    } finally {
      memory.net.close();
    }
    return {
      setup,
      rawPump: median(rawPumps),
      carrierPump: median(carrierPumps),
      rawRoundTrips: median(rawTrips),
      carrierRoundTrips: median(carrierTrips),
      handshakes: median(handshakeRates),
      firstReplyWall: median(walls),
      firstReplyInMemory: median(inMemory),
      firstReplyNetwork: median(differences),
      noiseCrypto: await noiseXXCrypto(),
    };
  } finally {
    transport.close();
  }
}

async function repeat(run: () => Promise<number>): Promise<number[]> {
  const results: number[] = [];
  for (let i = 0; i < REPETITIONS; i++) results.push(await run());
  return results;
}

function report(all: Figures[]): string {
  const mb = (bytesPerSecond: number) => (bytesPerSecond / 1e6).toFixed(0);
  const int = (value: number) => value.toFixed(0);
  const pct = (ratio: number) => `${(ratio * 100).toFixed(0)} %`;
  const met = (ok: boolean) => ok ? "met" : "not met";
  const rows: string[][] = [];
  for (const f of all) {
    const pumpRatio = f.carrierPump / f.rawPump;
    const tripRatio = f.carrierRoundTrips / f.rawRoundTrips;
    const rtt = 1000 / f.rawRoundTrips; // ms
    const roundTrips = f.firstReplyNetwork / rtt;
    rows.push(
      [
        f.setup,
        "throughput, 64 KiB messages (MB/s)",
        mb(f.rawPump),
        mb(f.carrierPump),
        pct(pumpRatio),
        `≥ 60 %: ${met(pumpRatio >= 0.6)}`,
      ],
      [
        f.setup,
        "256 B round trips/s (one outstanding)",
        int(f.rawRoundTrips),
        int(f.carrierRoundTrips),
        pct(tripRatio),
        `≥ 50 %: ${met(tripRatio >= 0.5)}`,
      ],
      [
        f.setup,
        `handshakes/s (dial + XX, ${HANDSHAKE_CONCURRENCY} at a time)`,
        "",
        int(f.handshakes),
        "",
        "",
      ],
      [
        f.setup,
        "connect + handshake + first reply",
        `RTT ${(rtt * 1000).toFixed(1)} µs`,
        `${f.firstReplyWall.toFixed(2)} ms wall, ${f.firstReplyInMemory.toFixed(2)} ms in memory`,
        `${roundTrips.toFixed(1)} RTT (protocol: 3)`,
        `≤ 3 RTT + crypto: ${met(roundTrips <= 3)}`,
      ],
    );
  }
  const header = ["setup", "figure", "raw TCP", "carrier", "carrier / raw", "target"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  const crypto = all.map((f) =>
    `${f.setup}: ${f.firstReplyNetwork.toFixed(2)} ms of ${
      f.firstReplyWall.toFixed(2)
    } ms (bare Noise XX, both sides, no identities: ${f.noiseCrypto.toFixed(2)} ms)`
  );
  return [
    line(header),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...rows.map(line),
    "",
    "Connect + handshake + first reply: dial, Noise XX and a PING → ACK over TCP, against the" +
    " same over the in-memory transport (the crypto and the code, no sockets), interleaved" +
    " sample by sample. Its network time is the median of the paired differences; in round" +
    " trips, that divided by the raw 256 B ping-pong round trip of the same setup." +
    ` Network time: ${crypto.join("; ")}.`,
  ].join("\n");
}

async function machine(): Promise<string> {
  let nproc = String(navigator.hardwareConcurrency);
  try {
    const out = await new Deno.Command("nproc", { stdout: "piped" }).output();
    nproc = new TextDecoder().decode(out.stdout).trim();
  } catch {
    // No nproc: hardwareConcurrency it is.
  }
  let cpu = "";
  try {
    // Deno reads /proc/cpuinfo only with --allow-all; grep needs --allow-run only.
    const out = await new Deno.Command("grep", {
      args: ["-m1", "^model name", "/proc/cpuinfo"],
      stdout: "piped",
    }).output();
    cpu = new TextDecoder().decode(out.stdout).replace(/^model name\s*:\s*/, "").trim();
  } catch {
    // Not Linux.
  }
  return `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.target}, nproc ${nproc}` +
    (cpu ? `, ${cpu}` : "");
}

async function main(): Promise<void> {
  const started = performance.now();
  const identities = await Promise.all([
    generateIdentity({ difficulty: 0 }),
    generateIdentity({ difficulty: 0 }),
  ]) as [Identity, Identity];
  const setups: [string, () => Promise<Server>][] = [];
  if (!Deno.args.includes("--two-processes")) {
    setups.push(["one process", () => startServer(identities[1])]);
  }
  if (!Deno.args.includes("--one-process")) {
    setups.push(["two processes", startSubprocessServer]);
  }
  const all: Figures[] = [];
  for (const [setup, start] of setups) {
    console.error(`${setup}:`);
    const server = await start();
    try {
      all.push(await measure(setup, server, identities));
    } finally {
      server.close();
    }
  }
  console.log(`\n${await machine()}\n`);
  console.log(`AES-256-GCM: ${aesGcmImplementation()} (OpenSSL needs --allow-ffi).\n`);
  console.log(
    `TCP on 127.0.0.1, Nagle off on both sides; median of ${REPETITIONS} repetitions after a` +
      ` warm-up; pump ${PUMP_BYTES / 1024 / 1024} MiB per repetition; MB = 10^6 bytes.` +
      ` "one process": both endpoints on one event loop, so every figure pays both sides'` +
      ` JavaScript on one thread. "two processes": the listener in a subprocess, one event loop` +
      ` per endpoint, as between two nodes: the fairer setup, and the headline; but its raw` +
      ` round trip also pays a cross-process wake-up on each side, so the one-process round-trip` +
      ` ratio is the stricter test of carrier's own overhead.\n`,
  );
  console.log(report(all));
  console.log(`\nTotal bench time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}

// ---------------------------------------------------------------------------
// Helpers.

interface Reader {
  read(buffer: Uint8Array): Promise<number | null>;
}

interface Writer {
  write(data: Uint8Array): Promise<number>;
}

async function readFull(conn: Reader, buffer: Uint8Array): Promise<boolean> {
  let got = 0;
  while (got < buffer.length) {
    const n = await conn.read(buffer.subarray(got));
    if (n === null) {
      if (got === 0) return false;
      throw new Error(`stream ended after ${got} of ${buffer.length} bytes`);
    }
    got += n;
  }
  return true;
}

async function writeAll(conn: Writer, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await conn.write(data.subarray(offset));
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed.
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

if (import.meta.main) {
  if (Deno.args.includes("--serve")) await serveForParent();
  else await main();
}
