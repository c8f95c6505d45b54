/**
 * carrier against js-libp2p (TCP + Noise + Yamux, see `bench/_libp2p.ts`),
 * the same workloads in one run on 127.0.0.1, printed as a Markdown table
 * with the ratios and the targets of the issue:
 *
 * - **64 KiB transfer, MB/s** (10⁶ bytes): 64 MiB as 1,024 × 64 KiB messages
 *   per repetition, timed from the first write until the receiver has
 *   counted every byte. carrier: `PeerConnection.send` of a one-way
 *   application opcode, counted by the listener's `message` event (the
 *   plain public path: no component, no protobuf decode). js-libp2p:
 *   `stream.send` on one long-lived stream of a sink protocol (waiting for
 *   `drain` when asked), counted by the handler's `message` events.
 * - **256 B request/reply, round trips/s**, one outstanding: carrier
 *   `node.request` of an opcode whose handler returns the request (a
 *   `BytesValue` of 256 B); js-libp2p: a length-prefixed echo
 *   (`lpStream`) on one long-lived stream. Also each library's built-in
 *   ping: carrier's PING frame on the open connection, `@libp2p/ping`
 *   (which opens a stream per ping).
 * - **connect + handshake + first reply, ms**: a fresh dialer each time
 *   (created outside the timing): carrier `connect` + `ping`, js-libp2p
 *   `dial` + `@libp2p/ping`.
 * - **memory per idle connection**: the listener in one subprocess, the
 *   dialers in another, one node per connection (carrier keeps one
 *   connection per pair of peers; js-libp2p gets the same, 1,000 distinct
 *   peers). After 16 warm-up connections, and after 1,000 more (each
 *   dialed and pinged once), each process settles (GC three times with
 *   `--expose-gc`) and reports `Deno.memoryUsage()`; the difference over
 *   1,000 is the cost of one connection. The target is judged on the
 *   listener's RSS; the dialer side includes a whole node.
 *
 * Throughput, round trips and connects run both endpoints in this process
 * (one event loop does both sides' work, for both libraries), alternating
 * which library goes first in each repetition so that a change in machine
 * load hits both; the figure is the median of the repetitions after
 * warm-up, with the range in parentheses.
 *
 * js-libp2p runs with its defaults except the connection manager's limits
 * (raised like carrier's `maxInbound`), and its ping waits for the previous
 * ping stream to close (see `pingInTurn`).
 *
 * Run: `deno task bench:peers`, under a minute (`--allow-run` starts the
 * memory subprocesses, with `--v8-flags=--expose-gc`; each holds about
 * 1,020 sockets, so the file descriptor limit must allow that).
 *
 * Under Deno, js-libp2p keeps the process alive after `stop()` (see the end
 * of this file), so the script ends with `Deno.exit`.
 *
 * @module
 */

import { create } from "@bufbuild/protobuf";
import { BytesValueSchema } from "@bufbuild/protobuf/wkt";
import { delay, lines, until } from "./_util.ts";
import { createNode, defineOpcode, type Node } from "../mod.ts";
import {
  createLibp2pNode,
  LIBP2P_PACKAGES,
  type Libp2pNode,
  openEcho,
  openSink,
  parseMultiaddr,
  pingInTurn,
  serveBenchProtocols,
} from "./_libp2p.ts";

const MESSAGE = 64 * 1024;
const TRANSFER_MESSAGES = 1024;
const SMALL = 256;
const WARMUP = 2;
const REPETITIONS = 9;
/** Duration of one round-trip repetition, in ms. */
const SLICE = 500;
const CONNECT_WARMUP = 3;
const CONNECT_SAMPLES = 31;
const IDLE_CONNECTIONS = 1_000;
const IDLE_WARMUP = 16;
const DIAL_CONCURRENCY = 32;

const ECHO = defineOpcode(1000, {
  name: "BENCH_ECHO",
  request: BytesValueSchema,
  reply: BytesValueSchema,
});
/** One-way opcode of the transfer (no handler: frames become `message` events). */
const SINK = 1001;

/** Prefix of the lines a subprocess reports on (anything else on stdout is ignored). */
const REPORT = "@@bench ";

type Library = "carrier" | "js-libp2p";

/** One library's side of the in-process workloads. */
interface Contender {
  readonly name: Library;
  /** Sends `messages` × 64 KiB; resolves the ms until the receiver has counted all. */
  transfer(messages: number): Promise<number>;
  /** Sequential 256 B request/reply for about `ms`; resolves round trips per second. */
  roundTrips(ms: number): Promise<number>;
  /** Sequential built-in pings for about `ms`; resolves pings per second. */
  pings(ms: number): Promise<number>;
  /** A fresh dialer: resolves the ms of connect + handshake + first reply. */
  firstReply(): Promise<number>;
  close(): Promise<void>;
}

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65_536) crypto.getRandomValues(bytes.subarray(i, i + 65_536));
  return bytes;
}

/** Runs `step` one at a time for about `ms`; resolves steps per second. */
async function perSecond(ms: number, step: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  let now = started;
  let n = 0;
  do {
    await step();
    n++;
    now = performance.now();
  } while (now - started < ms);
  return n / ((now - started) / 1000);
}

async function carrierContender(): Promise<Contender> {
  const listener = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const dialer = await createNode({ puzzleDifficulty: 0 });
  listener.handle(ECHO, (message) => message);
  let received = 0;
  let expected = Infinity;
  let done = () => {};
  listener.addEventListener("message", (event) => {
    if (event.detail.opcode !== SINK) return;
    received += event.detail.body.length;
    if (received >= expected) done();
  });
  const peer = await dialer.connect(listener.peerAddresses[0]);
  const chunk = randomBytes(MESSAGE);
  const echo = create(BytesValueSchema, { value: randomBytes(SMALL) });
  return {
    name: "carrier",
    async transfer(messages) {
      received = 0;
      expected = messages * MESSAGE;
      const all = new Promise<void>((resolve) => done = resolve);
      const started = performance.now();
      for (let i = 0; i < messages; i++) await peer.send(SINK, chunk);
      await all;
      return performance.now() - started;
    },
    roundTrips: (ms) =>
      perSecond(ms, async () => {
        const reply = await dialer.request(listener.address, ECHO, echo);
        if (reply?.value.length !== SMALL) throw new Error("carrier echo: wrong reply length");
      }),
    pings: (ms) => perSecond(ms, () => peer.ping()),
    async firstReply() {
      const fresh = await createNode({ puzzleDifficulty: 0 });
      try {
        const started = performance.now();
        await fresh.connect(listener.peerAddresses[0]);
        await fresh.ping(listener.address);
        return performance.now() - started;
      } finally {
        await fresh.close();
      }
    },
    async close() {
      await dialer.close();
      await listener.close();
    },
  };
}

async function libp2pContender(): Promise<Contender> {
  const listener = await createLibp2pNode(true);
  const dialer = await createLibp2pNode(false);
  let received = 0;
  let expected = Infinity;
  let done = () => {};
  await serveBenchProtocols(listener, (n) => {
    received += n;
    if (received >= expected) done();
  });
  const address = listener.getMultiaddrs()[0];
  await dialer.dial(address);
  const sink = await openSink(dialer, listener);
  const echo = await openEcho(dialer, listener);
  const chunk = randomBytes(MESSAGE);
  const message = randomBytes(SMALL);
  return {
    name: "js-libp2p",
    async transfer(messages) {
      received = 0;
      expected = messages * MESSAGE;
      const all = new Promise<void>((resolve) => done = resolve);
      const started = performance.now();
      for (let i = 0; i < messages; i++) await sink.write(chunk);
      await all;
      return performance.now() - started;
    },
    roundTrips: (ms) =>
      perSecond(ms, async () => {
        if (await echo.roundTrip(message) !== SMALL) {
          throw new Error("js-libp2p echo: wrong reply length");
        }
      }),
    pings: (ms) => perSecond(ms, () => pingInTurn(dialer, listener)),
    async firstReply() {
      const fresh = await createLibp2pNode(false);
      try {
        const started = performance.now();
        const connection = await fresh.dial(address);
        await fresh.services.ping.ping(connection.remotePeer);
        return performance.now() - started;
      } finally {
        await fresh.stop();
      }
    },
    async close() {
      await sink.close();
      await echo.close();
      await dialer.stop();
      await listener.stop();
    },
  };
}

/**
 * Measures every contender `warmup + repetitions` times, alternating which
 * goes first; resolves the samples after warm-up, per contender.
 */
async function compare(
  contenders: readonly Contender[],
  warmup: number,
  repetitions: number,
  measure: (contender: Contender) => Promise<number>,
): Promise<number[][]> {
  const samples = contenders.map((): number[] => []);
  for (let i = 0; i < warmup + repetitions; i++) {
    const order = contenders.map((_, j) => j);
    if (i % 2 === 1) order.reverse();
    for (const j of order) {
      const value = await measure(contenders[j]);
      if (i >= warmup) samples[j].push(value);
    }
  }
  return samples;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ---------------------------------------------------------------------------
// Memory per idle connection: a listener and a dialer subprocess per library.

interface Memory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  connections: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Lets stragglers finish, collects garbage, and reads the process's memory. */
async function settledMemory(connections: number): Promise<Memory> {
  if (!gc) throw new Error("Run with --v8-flags=--expose-gc");
  await delay(500);
  for (let i = 0; i < 3; i++) {
    gc();
    await delay(20);
  }
  const { rss, heapTotal, heapUsed, external } = Deno.memoryUsage();
  return { rss, heapTotal, heapUsed, external, connections };
}

function report(value: unknown): void {
  console.log(REPORT + JSON.stringify(value));
}

/**
 * `--idle-listener LIBRARY`: reports its peer address, then, for each line
 * N on stdin, waits for N connections and reports its memory.
 */
async function idleListener(library: Library): Promise<never> {
  let count: () => number;
  let address: string;
  if (library === "carrier") {
    const node = await createNode({
      listen: ["127.0.0.1:0"],
      puzzleDifficulty: 0,
      maxInbound: 2 * IDLE_CONNECTIONS,
      maxPendingHandshakes: 2 * DIAL_CONCURRENCY,
    });
    count = () => node.peers().length;
    address = node.peerAddresses[0];
  } else {
    const node = await createLibp2pNode(true);
    count = () => node.getConnections().length;
    address = node.getMultiaddrs()[0].toString();
  }
  report({ address });
  for await (const line of lines(Deno.stdin.readable)) {
    const wanted = Number(line);
    await until(() => count() >= wanted, `${wanted} inbound connections`, { interval: 10 });
    report(await settledMemory(count()));
  }
  Deno.exit(0);
}

/**
 * `--idle-dialers LIBRARY ADDRESS`: for each line N on stdin, makes N more
 * nodes, each connecting to ADDRESS and pinging once, then reports its memory.
 */
async function idleDialers(library: Library, address: string): Promise<never> {
  const carrierNodes: Node[] = [];
  const libp2pNodes: Libp2pNode[] = [];
  let dial: () => Promise<void>;
  if (library === "carrier") {
    const listenerAddress = address.slice(0, address.indexOf("@"));
    dial = async () => {
      const node = await createNode({ puzzleDifficulty: 0 });
      carrierNodes.push(node);
      await node.connect(address);
      await node.ping(listenerAddress);
    };
  } else {
    const target = parseMultiaddr(address);
    dial = async () => {
      const node = await createLibp2pNode(false);
      libp2pNodes.push(node);
      const connection = await node.dial(target);
      await node.services.ping.ping(connection.remotePeer);
    };
  }
  let connections = 0;
  for await (const line of lines(Deno.stdin.readable)) {
    let left = Number(line);
    const worker = async () => {
      while (left > 0) {
        left--;
        await dial();
        connections++;
      }
    };
    await Promise.all(Array.from({ length: DIAL_CONCURRENCY }, worker));
    report(await settledMemory(connections));
  }
  Deno.exit(0);
}

/** A subprocess of this script in one of the roles above. */
class Role {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reports: AsyncGenerator<string>;
  readonly #what: string;

  constructor(args: string[]) {
    this.#what = args.join(" ");
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net",
        "--allow-env",
        "--allow-read",
        "--allow-sys",
        "--v8-flags=--expose-gc",
        "--config",
        new URL("./deno.json", import.meta.url).pathname,
        new URL(import.meta.url).pathname,
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#reports = lines(this.#child.stdout);
  }

  /** Sends `line` (if any) and resolves the next report. */
  async ask<T>(line?: string): Promise<T> {
    if (line !== undefined) await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
    for (;;) {
      const { value, done } = await this.#reports.next();
      if (done) throw new Error(`${this.#what}: exited before reporting`);
      if (value.startsWith(REPORT)) return JSON.parse(value.slice(REPORT.length)) as T;
    }
  }

  async close(): Promise<void> {
    await this.#stdin.close();
    for await (const _ of this.#reports); // drain stdout
    await this.#child.status;
  }
}

/** Bytes per connection. */
type PerConnection = Omit<Memory, "connections">;

interface IdleCost {
  /** In the listener's process. */
  listener: PerConnection;
  /** In the dialers' process (a node each). */
  dialer: PerConnection;
}

async function idleCost(library: Library): Promise<IdleCost> {
  const listener = new Role(["--idle-listener", library]);
  const dialers = new Role([
    "--idle-dialers",
    library,
    (await listener.ask<{ address: string }>()).address,
  ]);
  try {
    const d0 = await dialers.ask<Memory>(String(IDLE_WARMUP));
    const l0 = await listener.ask<Memory>(String(IDLE_WARMUP));
    const d1 = await dialers.ask<Memory>(String(IDLE_CONNECTIONS));
    const l1 = await listener.ask<Memory>(String(IDLE_WARMUP + IDLE_CONNECTIONS));
    const n = l1.connections - l0.connections;
    if (n !== IDLE_CONNECTIONS || d1.connections - d0.connections !== IDLE_CONNECTIONS) {
      throw new Error(`${library}: expected ${IDLE_CONNECTIONS} more connections, saw ${n}`);
    }
    const per = (a: Memory, b: Memory): PerConnection => ({
      rss: (b.rss - a.rss) / n,
      heapTotal: (b.heapTotal - a.heapTotal) / n,
      heapUsed: (b.heapUsed - a.heapUsed) / n,
      external: (b.external - a.external) / n,
    });
    return { listener: per(l0, l1), dialer: per(d0, d1) };
  } finally {
    await dialers.close();
    await listener.close();
  }
}

// ---------------------------------------------------------------------------
// The table.

interface Row {
  metric: string;
  carrier: string;
  libp2p: string;
  ratio: string;
  target: string;
}

const fixed = (x: number, digits = 0) =>
  x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function spread(samples: readonly number[], digits: number): string {
  return `${fixed(median(samples), digits)} (${fixed(Math.min(...samples), digits)}–${
    fixed(Math.max(...samples), digits)
  })`;
}

/** A row comparing medians, with a target on the ratio carrier / js-libp2p. */
function ratioRow(
  metric: string,
  [carrier, libp2p]: number[][],
  digits: number,
  target?: { atLeast?: number; atMost?: number },
): Row {
  const ratio = median(carrier) / median(libp2p);
  let verdict = "—";
  if (target?.atLeast !== undefined) {
    verdict = `${ratio >= target.atLeast ? "**yes**" : "no"} (≥ ${target.atLeast}×)`;
  } else if (target?.atMost !== undefined) {
    verdict = `${ratio <= target.atMost ? "**yes**" : "no"} (≤ ${target.atMost}×)`;
  }
  return {
    metric,
    carrier: spread(carrier, digits),
    libp2p: spread(libp2p, digits),
    ratio: `${ratio.toFixed(2)}×`,
    target: verdict,
  };
}

const KIB = 1024;

function table(rows: readonly Row[]): string {
  const out = [
    "| metric | carrier | js-libp2p | ratio (carrier / js-libp2p) | target met? |",
    "| --- | ---: | ---: | ---: | --- |",
  ];
  for (const r of rows) {
    out.push(`| ${r.metric} | ${r.carrier} | ${r.libp2p} | ${r.ratio} | ${r.target} |`);
  }
  return out.join("\n");
}

async function main(): Promise<void> {
  const started = performance.now();
  console.log("# carrier vs js-libp2p, 127.0.0.1\n");
  console.log(
    `js-libp2p: ${
      Object.entries(LIBP2P_PACKAGES).map(([name, version]) => `${name}@${version}`).join(", ")
    }; TCP + Noise XX + Yamux, defaults except connection limits (see bench/_libp2p.ts).`,
  );
  console.log(
    `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, load average ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }.`,
  );
  console.log(
    `Medians after warm-up (range in parentheses): transfer ${REPETITIONS} × ${
      TRANSFER_MESSAGES * MESSAGE / 2 ** 20
    } MiB, round trips ${REPETITIONS} × ${SLICE} ms, connects ${CONNECT_SAMPLES} fresh dialers; memory from ${IDLE_CONNECTIONS} idle connections.\n`,
  );

  const contenders = [await carrierContender(), await libp2pContender()];
  const rows: Row[] = [];
  try {
    const transfers = await compare(
      contenders,
      WARMUP,
      REPETITIONS,
      (c) => c.transfer(TRANSFER_MESSAGES),
    );
    const bytes = TRANSFER_MESSAGES * MESSAGE;
    const mbps = transfers.map((s) => s.map((ms) => bytes / 1e6 / (ms / 1000)));
    rows.push(ratioRow("64 KiB transfer, MB/s", mbps, 0, { atLeast: 2 }));

    const trips = await compare(contenders, 1, REPETITIONS, (c) => c.roundTrips(SLICE));
    rows.push(ratioRow("256 B request/reply, round trips/s", trips, 0, { atLeast: 2 }));

    const pings = await compare(contenders, 1, REPETITIONS, (c) => c.pings(SLICE));
    rows.push(
      ratioRow("built-in ping, round trips/s (libp2p: a stream per ping)", pings, 0),
    );

    const connects = await compare(
      contenders,
      CONNECT_WARMUP,
      CONNECT_SAMPLES,
      (c) => c.firstReply(),
    );
    rows.push(
      ratioRow("connect + handshake + first reply, ms", connects, 1, { atMost: 0.5 }),
    );
  } finally {
    for (const c of contenders) await c.close();
  }

  const carrierIdle = await idleCost("carrier");
  const libp2pIdle = await idleCost("js-libp2p");
  const kib = (bytes: number) => `${fixed(bytes / KIB, 1)} KiB`;
  const idleRow = (metric: string, pick: (cost: IdleCost) => number, target: boolean): Row => {
    const c = pick(carrierIdle), l = pick(libp2pIdle);
    return {
      metric,
      carrier: kib(c),
      libp2p: kib(l),
      ratio: `${(c / l).toFixed(2)}×`,
      target: target ? `${c <= 64 * KIB ? "**yes**" : "no"} (≤ 64 KiB)` : "—",
    };
  };
  rows.push(
    idleRow("memory per idle connection (listener), RSS", (c) => c.listener.rss, true),
    idleRow("… JS heap reserved (heapTotal)", (c) => c.listener.heapTotal, false),
    idleRow("… JS heap used", (c) => c.listener.heapUsed, false),
    idleRow("… ArrayBuffers etc. (external)", (c) => c.listener.external, false),
    idleRow("dialer node + its connection, RSS", (c) => c.dialer.rss, false),
    idleRow(
      "dialer node + its connection, JS heap + external",
      (c) => c.dialer.heapUsed + c.dialer.external,
      false,
    ),
  );

  console.log(table(rows));
  console.log(`\nTotal time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}

if (import.meta.main) {
  const [role, library, address] = Deno.args;
  if (role === "--idle-listener") await idleListener(library as Library);
  else if (role === "--idle-dialers") await idleDialers(library as Library, address);
  else {
    await main();
    // js-libp2p keeps the process alive after stop() under Deno: its peer
    // store's lock (mortice) opens a BroadcastChannel and calls `unref?.()`,
    // which Node's BroadcastChannel has and Deno's does not.
    Deno.exit(0);
  }
}
