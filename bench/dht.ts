/**
 * The DHT of 64 and 128 nodes on 127.0.0.1: carrier's `node.dht` against
 * js-libp2p's `@libp2p/kad-dht` (`bench/_kad_dht.ts`), the same workloads in
 * one run, printed as Markdown tables with the ratios carrier ÷ kad-dht.
 *
 * Each network runs in a subprocess of its own (all its nodes in one event
 * loop), one after the other: for each size, carrier, then kad-dht; each
 * process exits before the next starts, so a network's sockets, timers and
 * memory never overlap with another's, and each reports its own RSS.
 *
 * **Setup**, the same for both (timed from the first node's creation until
 * the routing tables have settled):
 *
 * 1. Every node listens on 127.0.0.1:0. Node i > 0 joins through one
 *    earlier node, node (i − 1) mod min(i, {@linkcode SEEDS}), so that no
 *    seed takes more inbound connections than carrier's default
 *    `maxInbound` (64) allows. carrier: `createNode({ bootstrap })`, which
 *    connects and then looks up its own id; kad-dht: `dial(seed)`, after
 *    which the node's self-query and its start-up routing-table refresh (a
 *    lookup of a random id per bucket) run by themselves.
 * 2. Once every node has joined (carrier: connected; kad-dht: its first
 *    self-query done), every node refreshes its routing table once, as late
 *    joiners are otherwise unknown to early ones: carrier
 *    `refreshRoutingTable()`, kad-dht `refreshRoutingTable()`.
 * 3. The bench waits until the sum of routing-table sizes and the number of
 *    connections stay unchanged for {@linkcode STABLE} ms (10 s).
 *
 * carrier runs with its defaults (k = 20, α = 3, `puzzleDifficulty: 0` as in
 * the other benches). kad-dht runs with its defaults (k = 20, α = 10, 10
 * disjoint paths; `--kad-alpha=N` sets α and the paths) as a LAN DHT server:
 * `clientMode: false`, `removePublicAddressesMapper` (its default mapper
 * drops 127.0.0.1 addresses), the `/ipfs/lan/kad/1.0.0` protocol, the first
 * self-query as soon as the table has a peer (`initialQuerySelfInterval: 0`
 * instead of 1 s), and a validator and selector accepting the bench's
 * `/bench/…` records. Its periodic refresh and self-query run every 5 min,
 * longer than a network lives here, so no random walk runs during the
 * measurements. libp2p's connection monitor is off: in one process of 128
 * nodes its pings time out and abort connections wholesale (see
 * `createKadDhtNode`), which says nothing about the DHT.
 *
 * **Workloads**, one operation at a time, each from a node picked at random
 * (the same seeded picks and keys for both libraries), after
 * `--warmup` operations of each kind that are not counted:
 *
 * - **lookup**: the closest peers of a random key. carrier
 *   `node.dht.lookup(key)`; kad-dht `dht.getClosestPeers(key)` drained, as
 *   `peerRouting.getClosestPeers` does. Both hash the key with SHA-256.
 * - **put**: a {@linkcode VALUE_SIZE}-byte value under a new key. carrier
 *   `node.dht.put(key, value)`; kad-dht `dht.put(key, value)` drained, as
 *   `contentRouting.put` does (a closest-peers query, then PUT_VALUE to
 *   each peer found).
 * - **get**: each key put, from another random node. carrier
 *   `node.dht.get(key)`; kad-dht `dht.get(key)` until its value, as
 *   `contentRouting.get` does (it yields the value once its query has run to
 *   the end). A getter may hold the value itself (it is one of the
 *   replicas); kad-dht's events tell, carrier's result does not.
 *
 * What each side exposes about a lookup, reported as is: carrier's
 * `hops` and `queries` from the lookup's result; kad-dht's `SEND_QUERY`
 * events (queries sent), `PEER_RESPONSE` events (answers) and the referral
 * depth derived from them (a starting peer is at depth 1, a peer first named
 * by a peer at depth d is at depth d + 1; see `bench/_kad_dht.ts`), and its
 * `QUERY_ERROR` events (requests that failed: reset streams, timeouts). Both
 * lookups are checked against the true 20 closest nodes to the key (by XOR
 * distance, the asking node excluded).
 *
 * Latencies are from just before the call until it resolves; all nodes share
 * the process's event loop, so they include every node's CPU work, not only
 * loopback latency. RSS is the network process's after setup (garbage
 * collected, `--expose-gc`), less its RSS before the first node.
 *
 * Run: `deno task bench:dht` (`--n=64,128 --ops=50 --warmup=10`,
 * `--libraries=carrier,kad-dht`, `--kad-alpha=N`), about 7 min on 2 CPUs,
 * most of it kad-dht's 128 nodes (progress on stderr). `--allow-run` starts
 * the network processes. A network of n nodes may hold a connection between
 * every pair, two descriptors each in one process: about 16,300 at 128
 * nodes, so the file descriptor limit must allow that. Under Deno,
 * js-libp2p keeps the process alive after `stop()` (see `bench/peers.ts`),
 * so the script and its network processes end with `Deno.exit`.
 *
 * @module
 */

import { sha256 } from "@noble/hashes/sha2.js";
import { createNode, type Node } from "../mod.ts";
import { LIBP2P_PACKAGES } from "./_libp2p.ts";
import { bytesEqual } from "../lib/_bytes.ts";
import { delay, lines, until } from "./_util.ts";
import { Rng } from "./_sim_clock.ts";
import {
  closestPeers,
  createKadDhtNode,
  getValue,
  KAD_DHT_PACKAGES,
  type KadDhtNode,
  kadId,
  putValue,
  recordKey,
  routingTableSize,
} from "./_kad_dht.ts";

/** Network sizes, unless `--n`. */
const DEFAULT_SIZES = [64, 128];
/** Measured operations of each kind per network, unless `--ops`. */
const DEFAULT_OPS = 50;
/** Warm-up operations of each kind per network, unless `--warmup`. */
const DEFAULT_WARMUP = 10;
/** Nodes that later nodes join through. */
const SEEDS = 4;
/** Bytes of each value put. */
const VALUE_SIZE = 256;
/** Contacts a lookup returns (k, both libraries' default). */
const K = 20;
/** Ms an operation may take before it counts as failed. */
const OP_TIMEOUT = 30_000;
/**
 * Ms the routing tables and connections must stay unchanged to count as
 * settled (long enough that a busy event loop's bursts of updates are not
 * taken for quiet).
 */
const STABLE = 10_000;
/** Ms the setup may take. */
const SETUP_TIMEOUT = 300_000;
/** Prefix of the line a network process reports on (anything else on stdout is ignored). */
const REPORT = "@@bench ";

type Library = "carrier" | "kad-dht";
const LIBRARIES: readonly Library[] = ["carrier", "kad-dht"];

/** The node that node `i` > 0 joins through. */
function seedOf(i: number): number {
  return (i - 1) % Math.min(i, SEEDS);
}

/** XOR distance of `a` and `b`, compared as big-endian numbers. */
function compareXor(target: Uint8Array, a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < target.length; i++) {
    const d = (a[i] ^ target[i]) - (b[i] ^ target[i]);
    if (d !== 0) return d;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// One library's network, behind a common shape.

/** What a lookup found, in the terms both sides share. */
interface Lookup {
  /** Node indexes found, closest first. */
  closest: number[];
  /** Queries sent. */
  queries: number;
  /** carrier: `hops`; kad-dht: referral depth. */
  hops: number;
  /** kad-dht: answers received (carrier does not say). */
  responses?: number;
  /** kad-dht: `QUERY_ERROR` events (carrier does not say). */
  errors?: number;
}

/** What a put or a get showed besides its result. */
interface Counted {
  /** kad-dht: `QUERY_ERROR` events (carrier does not say). */
  errors?: number;
}

/** A DHT network under test: nodes 0…n − 1. */
interface Network {
  /** Node ids (32 bytes, the DHT's distance space), by index. */
  readonly ids: Uint8Array[];
  lookup(from: number, key: string, signal: AbortSignal): Promise<Lookup>;
  /** Resolves the replicas that acknowledged. */
  put(
    from: number,
    key: string,
    value: Uint8Array,
    signal: AbortSignal,
  ): Promise<Counted & { replicas: number }>;
  get(
    from: number,
    key: string,
    signal: AbortSignal,
  ): Promise<Counted & { value?: Uint8Array; local?: boolean }>;
  /** Contacts in each node's routing table. */
  tableSizes(): number[];
  /** Peers each node is connected to. */
  connections(): number[];
  close(): Promise<void>;
}

/** Waits until table sizes and connections have not changed for {@linkcode STABLE} ms. */
async function settle(network: Network): Promise<void> {
  const state = () =>
    `${network.tableSizes().reduce((a, b) => a + b, 0)}/${
      network.connections().reduce((a, b) => a + b, 0)
    }`;
  const started = performance.now();
  let last = state();
  let since = performance.now();
  while (performance.now() - since < STABLE) {
    if (performance.now() - started > SETUP_TIMEOUT) throw new Error("Timed out settling");
    await delay(250);
    const now = state();
    if (now !== last) {
      last = now;
      since = performance.now();
    }
  }
}

async function carrierNetwork(n: number): Promise<Network> {
  const nodes: Node[] = [await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 })];
  for (let i = 1; i < n; i++) {
    nodes.push(
      await createNode({
        listen: ["127.0.0.1:0"],
        puzzleDifficulty: 0,
        bootstrap: [nodes[seedOf(i)].peerAddresses[0]],
      }),
    );
  }
  progress("created");
  await until(() => nodes.every((node) => node.peers().length > 0), "carrier bootstraps", {
    timeout: SETUP_TIMEOUT,
    interval: 50,
  });
  progress("connected");
  await Promise.all(nodes.map((node) => node.refreshRoutingTable()));
  progress("refreshed");
  const index = new Map(nodes.map((node, i) => [node.address, i]));
  /** `ADDRESS` or `ADDRESS@HOST:PORT` to a node index (-1 if unknown). */
  const indexOf = (address: string) => index.get(address.split("@")[0]) ?? -1;
  const network: Network = {
    ids: nodes.map((node) => node.identity.nodeId),
    async lookup(from, key, signal) {
      const result = await nodes[from].dht.lookup(key, { signal });
      return { closest: result.closest.map(indexOf), queries: result.queries, hops: result.hops };
    },
    async put(from, key, value, signal) {
      return { replicas: (await nodes[from].dht.put(key, value, { signal })).replicas };
    },
    async get(from, key, signal) {
      return { value: (await nodes[from].dht.get(key, { signal }))?.value };
    },
    tableSizes: () => nodes.map((node) => node.routingTable.size),
    connections: () => nodes.map((node) => node.peers().length),
    async close() {
      await Promise.all(nodes.map((node) => node.close()));
    },
  };
  await settle(network);
  return network;
}

async function kadDhtNetwork(n: number, alpha?: number): Promise<Network> {
  const options = alpha === undefined ? {} : { alpha, disjointPaths: alpha };
  const nodes: KadDhtNode[] = [];
  const selfQueried = new Set<number>();
  const dials: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const node = await createKadDhtNode(options);
    // The DHT's own event, re-dispatched on the node (not in libp2p's event map).
    (node as EventTarget).addEventListener("kad-dht:query:self", () => selfQueried.add(i));
    if (i > 0) dials.push(node.dial(nodes[seedOf(i)].getMultiaddrs()[0]));
    nodes.push(node);
  }
  await Promise.all(dials);
  progress("created and dialed");
  await until(() => selfQueried.size === n, "kad-dht self-queries", {
    timeout: SETUP_TIMEOUT,
    interval: 50,
  });
  progress("self-queries done");
  await Promise.all(nodes.map((node) => node.services.dht.refreshRoutingTable()));
  const index = new Map(nodes.map((node, i) => [node.peerId.toString(), i]));
  const network: Network = {
    ids: nodes.map(kadId),
    async lookup(from, key, signal) {
      const result = await closestPeers(nodes[from], new TextEncoder().encode(key), { signal });
      return {
        closest: result.closest.map((peer) => index.get(peer) ?? -1),
        queries: result.queries,
        hops: result.depth,
        responses: result.responses,
        errors: result.errors,
      };
    },
    async put(from, key, value, signal) {
      const { replicas, errors } = await putValue(nodes[from], recordKey(key), value, { signal });
      return { replicas, errors };
    },
    async get(from, key, signal) {
      const { value, local, errors } = await getValue(nodes[from], recordKey(key), { signal });
      return { value, local, errors };
    },
    tableSizes: () => nodes.map(routingTableSize),
    connections: () =>
      nodes.map((node) => new Set(node.getConnections().map((c) => c.remotePeer.toString())).size),
    async close() {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
  await settle(network);
  return network;
}

// ---------------------------------------------------------------------------
// A network process: builds one network, runs the workloads, reports.

/** The keys and picks of one network's workloads (the same for both libraries). */
interface Plan {
  lookups: { from: number; key: string }[];
  puts: { from: number; key: string; value: Uint8Array }[];
  /** Parallel to `puts`: who gets each key. */
  getters: number[];
}

function plan(n: number, count: number, seed: number, tag: string): Plan {
  const rng = new Rng(seed);
  const pick = () => rng.next();
  const node = () => Math.floor(pick() * n);
  const word = () => Math.floor(pick() * 2 ** 32).toString(16).padStart(8, "0");
  const lookups = Array.from({ length: count }, () => ({ from: node(), key: `${tag}-${word()}` }));
  const puts = Array.from({ length: count }, () => {
    const value = new Uint8Array(VALUE_SIZE);
    for (let i = 0; i < VALUE_SIZE; i++) value[i] = Math.floor(pick() * 256);
    return { from: node(), key: `${tag}-${word()}${word()}`, value };
  });
  const getters = puts.map(({ from }) => {
    for (;;) {
      const to = node();
      if (to !== from) return to;
    }
  });
  return { lookups, puts, getters };
}

/** What one network measured; the lists hold one entry per measured operation. */
interface Outcome {
  library: Library;
  nodes: number;
  setupMs: number;
  /** Bytes, after setup (garbage collected), less the process's before the first node. */
  rss: number;
  heapUsed: number;
  /** Bytes, after the workloads, less the same. */
  rssAfter: number;
  tables: number[];
  connections: number[];
  connectionsAfter: number[];
  lookupMs: number[];
  lookupQueries: number[];
  lookupHops: number[];
  lookupResponses: number[];
  /** Of the true K closest (the asker excluded), how many each lookup returned. */
  lookupFound: number[];
  /** kad-dht: `QUERY_ERROR` events of each lookup, put and get. */
  lookupErrors: number[];
  putErrors: number[];
  getErrors: number[];
  putMs: number[];
  putReplicas: number[];
  getMs: number[];
  /** Gets that returned the value put. */
  gotRight: number;
  /** Gets that returned nothing. */
  gotNothing: number;
  /** Gets answered by the getter's own store (kad-dht only). */
  gotLocal?: number;
  /** Operations that threw, by kind, with the first few messages. */
  failures: { lookup: number; put: number; get: number; messages: string[] };
}

const gc = (globalThis as { gc?: () => void }).gc;

/** A progress line on stderr: `[library n] what`. */
let progress = (_what: string) => {};

async function settledMemory(): Promise<Deno.MemoryUsage> {
  await delay(200);
  for (let i = 0; i < 3; i++) {
    gc?.();
    await delay(20);
  }
  return Deno.memoryUsage();
}

/** An outcome with nothing measured yet: counters at `zero` (NaN for a missing column). */
function emptyOutcome(library: Library, nodes: number, zero: number): Outcome {
  return {
    library,
    nodes,
    setupMs: zero,
    rss: zero,
    heapUsed: zero,
    rssAfter: zero,
    tables: [],
    connections: [],
    connectionsAfter: [],
    lookupMs: [],
    lookupQueries: [],
    lookupHops: [],
    lookupResponses: [],
    lookupFound: [],
    lookupErrors: [],
    putErrors: [],
    getErrors: [],
    putMs: [],
    putReplicas: [],
    getMs: [],
    gotRight: zero,
    gotNothing: zero,
    failures: { lookup: zero, put: zero, get: zero, messages: [] },
  };
}

/** `--network LIBRARY N OPS WARMUP SEED [ALPHA]`: one network; prints its {@linkcode Outcome}. */
async function runNetwork(
  library: Library,
  n: number,
  ops: number,
  warmup: number,
  seed: number,
  alpha?: number,
): Promise<Outcome> {
  progress = (what) => console.error(`[${library} ${n}] ${what}`);
  const base = await settledMemory();
  const started = performance.now();
  const network = library === "carrier" ? await carrierNetwork(n) : await kadDhtNetwork(n, alpha);
  const setupMs = performance.now() - started;
  progress(`set up in ${(setupMs / 1000).toFixed(1)} s`);
  const memory = await settledMemory();
  const outcome: Outcome = {
    ...emptyOutcome(library, n, 0),
    setupMs,
    rss: memory.rss - base.rss,
    heapUsed: memory.heapUsed - base.heapUsed,
    tables: network.tableSizes(),
    connections: network.connections(),
    gotLocal: library === "kad-dht" ? 0 : undefined,
  };
  const fail = (kind: "lookup" | "put" | "get", err: unknown) => {
    outcome.failures[kind]++;
    if (outcome.failures.messages.length < 5) {
      const e = err as Error;
      outcome.failures.messages.push(`${kind}: ${e?.name}: ${e?.message ?? String(err)}`);
    }
  };
  const trueClosest = (key: string, from: number) => {
    const target = sha256(new TextEncoder().encode(key));
    return network.ids.map((id, i) => ({ id, i })).filter(({ i }) => i !== from)
      .sort((a, b) => compareXor(target, a.id, b.id)).slice(0, K).map(({ i }) => i);
  };

  const phases = [
    { plan: plan(n, warmup, seed ^ 0x5eed, "warmup"), measured: false },
    { plan: plan(n, ops, seed, "bench"), measured: true },
  ];
  try {
    for (const { plan, measured } of phases) {
      for (const { from, key } of plan.lookups) {
        const t = performance.now();
        try {
          const result = await network.lookup(from, key, AbortSignal.timeout(OP_TIMEOUT));
          const ms = performance.now() - t;
          if (!measured) continue;
          const truth = new Set(trueClosest(key, from));
          outcome.lookupMs.push(ms);
          outcome.lookupQueries.push(result.queries);
          outcome.lookupHops.push(result.hops);
          if (result.responses !== undefined) outcome.lookupResponses.push(result.responses);
          if (result.errors !== undefined) outcome.lookupErrors.push(result.errors);
          outcome.lookupFound.push(result.closest.filter((i) => truth.has(i)).length);
        } catch (err) {
          if (measured) fail("lookup", err);
        }
      }
      progress(`${plan.lookups.length} ${measured ? "measured" : "warm-up"} lookups done`);
      for (const { from, key, value } of plan.puts) {
        const t = performance.now();
        try {
          const put = await network.put(from, key, value, AbortSignal.timeout(OP_TIMEOUT));
          if (!measured) continue;
          outcome.putMs.push(performance.now() - t);
          outcome.putReplicas.push(put.replicas);
          if (put.errors !== undefined) outcome.putErrors.push(put.errors);
        } catch (err) {
          if (measured) fail("put", err);
        }
      }
      progress(`${plan.puts.length} ${measured ? "measured" : "warm-up"} puts done`);
      for (const [i, { key, value }] of plan.puts.entries()) {
        const t = performance.now();
        try {
          const got = await network.get(plan.getters[i], key, AbortSignal.timeout(OP_TIMEOUT));
          if (!measured) continue;
          outcome.getMs.push(performance.now() - t);
          if (got.value === undefined) outcome.gotNothing++;
          else if (bytesEqual(got.value, value)) outcome.gotRight++;
          if (got.local) outcome.gotLocal!++;
          if (got.errors !== undefined) outcome.getErrors.push(got.errors);
        } catch (err) {
          if (measured) fail("get", err);
        }
      }
      progress(`${plan.puts.length} ${measured ? "measured" : "warm-up"} gets done`);
    }
    outcome.connectionsAfter = network.connections();
  } finally {
    await network.close();
  }
  outcome.rssAfter = (await settledMemory()).rss - base.rss;
  return outcome;
}

// ---------------------------------------------------------------------------
// The parent: runs the network processes and prints the tables.

/** Runs one network in a subprocess of this script; resolves its report. */
async function spawnNetwork(args: string[]): Promise<Outcome> {
  const child = new Deno.Command(Deno.execPath(), {
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
      "--network",
      ...args,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let outcome: Outcome | undefined;
  for await (const line of lines(child.stdout)) {
    if (line.startsWith(REPORT)) outcome = JSON.parse(line.slice(REPORT.length)) as Outcome;
  }
  const status = await child.status;
  if (outcome === undefined) {
    throw new Error(`Network ${args.join(" ")} exited with code ${status.code} before reporting`);
  }
  return outcome;
}

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

const median = (values: readonly number[]) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const mean = (values: readonly number[]) =>
  values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;

const fixed = (value: number, digits: number) =>
  Number.isNaN(value) ? "—" : value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });

const MIB = 2 ** 20;

/** The largest value, NaN for none. */
const largest = (values: readonly number[]) => values.length === 0 ? NaN : Math.max(...values);

/** `min–max (mean m)`. */
function range(values: readonly number[]): string {
  if (values.length === 0) return "—";
  return `${Math.min(...values)}–${Math.max(...values)} (mean ${fixed(mean(values), 1)})`;
}

/** A row of two figures; with `target`, the ratio carrier ÷ kad-dht and whether it is ≤ target. */
function row(
  metric: string,
  carrier: string,
  kad: string,
  ratio?: { c: number; k: number; atMost?: number },
): string {
  let r = "—";
  let verdict = "—";
  if (ratio !== undefined && !Number.isNaN(ratio.c) && !Number.isNaN(ratio.k) && ratio.k > 0) {
    const x = ratio.c / ratio.k;
    r = `${x.toFixed(2)}×`;
    if (ratio.atMost !== undefined) {
      verdict = `${x <= ratio.atMost ? "**yes**" : "no"} (≤ ${ratio.atMost}×)`;
    }
  }
  return `| ${metric} | ${carrier} | ${kad} | ${r} | ${verdict} |`;
}

function latencyRows(what: string, c: readonly number[], k: readonly number[]): string[] {
  const [cm, km, cp, kp] = [median(c), median(k), quantile(c, 0.95), quantile(k, 0.95)];
  return [
    row(`${what} latency, median, ms`, fixed(cm, 1), fixed(km, 1), { c: cm, k: km, atMost: 0.5 }),
    row(`${what} latency, p95, ms`, fixed(cp, 1), fixed(kp, 1), { c: cp, k: kp, atMost: 0.5 }),
  ];
}

/** The comparison table of one network size (a missing side prints as —). */
function table(c: Outcome | undefined, k: Outcome | undefined, ops: number): string {
  const empty = emptyOutcome("carrier", 0, NaN);

  const C = c ?? empty, D = k ?? empty;
  const n = (c ?? k)!.nodes;
  const both = (f: (o: Outcome) => number, digits: number) =>
    [fixed(f(C), digits), fixed(f(D), digits)] as const;
  const ratioOf = (f: (o: Outcome) => number) => ({ c: f(C), k: f(D) });
  const mib = (bytes: number) => bytes / MIB;
  const failures = (o: Outcome) =>
    Number.isNaN(o.failures.lookup)
      ? "—"
      : `${o.failures.lookup} / ${o.failures.put} / ${o.failures.get}`;
  const gets = (o: Outcome) =>
    Number.isNaN(o.gotRight) ? "—" : `${o.gotRight} of ${o.getMs.length + o.failures.get}`;
  return [
    `| ${n} nodes | carrier | kad-dht | ratio (carrier ÷ kad-dht) | target met? |`,
    "| --- | ---: | ---: | ---: | --- |",
    row(
      "setup: join, refresh, settle, s",
      ...both((o) => o.setupMs / 1000, 1),
      ratioOf((o) => o.setupMs),
    ),
    row("routing-table contacts per node", range(C.tables), range(D.tables)),
    row("connections per node, after setup", range(C.connections), range(D.connections)),
    row(
      "connections per node, after the workloads",
      range(C.connectionsAfter),
      range(D.connectionsAfter),
    ),
    row(
      "process RSS after setup, MiB (GC'd, less the empty process)",
      ...both((o) => mib(o.rss), 0),
      ratioOf((o) => o.rss),
    ),
    row("… per node, MiB", ...both((o) => mib(o.rss) / n, 2), ratioOf((o) => o.rss)),
    row("… JS heap used, MiB", ...both((o) => mib(o.heapUsed), 0), ratioOf((o) => o.heapUsed)),
    row("process RSS after the workloads, MiB", ...both((o) => mib(o.rssAfter), 0)),
    ...latencyRows("lookup", C.lookupMs, D.lookupMs),
    row(
      "lookup: queries sent, median (mean)",
      `${fixed(median(C.lookupQueries), 0)} (${fixed(mean(C.lookupQueries), 1)})`,
      `${fixed(median(D.lookupQueries), 0)} (${fixed(mean(D.lookupQueries), 1)})`,
      ratioOf((o) => mean(o.lookupQueries)),
    ),
    row(
      "lookup: kad-dht answers received (PEER_RESPONSE), mean",
      "—",
      fixed(mean(D.lookupResponses), 1),
    ),
    row(
      "lookup: hops, median (max): carrier `hops` / kad-dht referral depth",
      `${fixed(median(C.lookupHops), 0)} (${fixed(largest(C.lookupHops), 0)})`,
      `${fixed(median(D.lookupHops), 0)} (${fixed(largest(D.lookupHops), 0)})`,
    ),
    row(
      `lookup: of the true ${K} closest, found, mean`,
      ...both((o) => mean(o.lookupFound), 1),
    ),
    ...latencyRows("put", C.putMs, D.putMs),
    row("put: replicas that acknowledged, median", ...both((o) => median(o.putReplicas), 0)),
    ...latencyRows("get", C.getMs, D.getMs),
    row("gets that returned the value put", gets(C), gets(D)),
    row(
      "… of which from the getter's own store",
      "not exposed",
      k?.gotLocal === undefined ? "—" : String(k.gotLocal),
    ),
    row("gets that found nothing", ...both((o) => o.gotNothing, 0)),
    row(
      "kad-dht QUERY_ERROR events per operation, mean: lookup / put / get",
      "not exposed",
      k === undefined
        ? "—"
        : [k.lookupErrors, k.putErrors, k.getErrors].map((e) => fixed(mean(e), 1))
          .join(" / "),
    ),
    row(`failed operations (of ${ops} each): lookup / put / get`, failures(C), failures(D)),
  ].join("\n");
}

interface Flags {
  sizes: number[];
  ops: number;
  warmup: number;
  libraries: Library[];
  alpha?: number;
}

function parseFlags(args: readonly string[]): Flags {
  const flags: Flags = {
    sizes: DEFAULT_SIZES,
    ops: DEFAULT_OPS,
    warmup: DEFAULT_WARMUP,
    libraries: [...LIBRARIES],
  };
  for (const arg of args) {
    const [name, value = ""] = arg.split("=", 2);
    const positive = (text: string) => {
      const x = Number(text);
      if (!Number.isInteger(x) || x < 1) throw new Error(`${name}: expected a positive integer`);
      return x;
    };
    if (name === "--n") flags.sizes = value.split(",").map(positive);
    else if (name === "--ops") flags.ops = positive(value);
    else if (name === "--warmup") flags.warmup = Number(value) === 0 ? 0 : positive(value);
    else if (name === "--kad-alpha") flags.alpha = positive(value);
    else if (name === "--libraries") {
      flags.libraries = value.split(",").map((l) => {
        if (!LIBRARIES.includes(l as Library)) throw new Error(`Unknown library ${l}`);
        return l as Library;
      });
    } else throw new Error(`Unknown argument ${arg}`);
  }
  return flags;
}

async function main(): Promise<void> {
  const started = performance.now();
  const flags = parseFlags(Deno.args);
  const packages = { ...LIBP2P_PACKAGES, ...KAD_DHT_PACKAGES };
  const used = [
    "libp2p",
    "@libp2p/kad-dht",
    "@libp2p/tcp",
    "@chainsafe/libp2p-noise",
    "@chainsafe/libp2p-yamux",
    "@libp2p/identify",
    "@libp2p/ping",
  ];
  console.log(
    `# DHT, carrier vs js-libp2p kad-dht, ${flags.sizes.join(" and ")} nodes, 127.0.0.1\n`,
  );
  console.log("| package | version |\n| --- | --- |");
  for (const name of used) console.log(`| ${name} | ${packages[name]} |`);
  console.log(
    `\nkad-dht: ${
      flags.alpha === undefined
        ? "k = 20, α = 10, 10 disjoint paths (its defaults)"
        : `k = 20, α = ${flags.alpha}, ${flags.alpha} disjoint paths`
    }; LAN server mode (clientMode false, 127.0.0.1 addresses kept), first self-query at once, ` +
      "a validator for /bench/ records, libp2p's connection monitor off; no periodic walk during the run (every 5 min). " +
      "carrier: defaults (k = 20, α = 3), puzzleDifficulty 0. See bench/_kad_dht.ts and the header of bench/dht.ts.",
  );
  console.log(
    `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, load average ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }.`,
  );
  console.log(
    `Per network: ${flags.warmup} warm-up then ${flags.ops} measured operations of each kind (lookups, puts of ${VALUE_SIZE} B, gets of each key from another node), ` +
      `one at a time from random nodes (the same picks for both); every node joins through one of the first ${SEEDS}; ` +
      "each network in its own process, one after the other, all its nodes on one event loop.\n",
  );

  for (const [s, n] of flags.sizes.entries()) {
    const seed = 0xd47 + s;
    const outcomes = new Map<Library, Outcome>();
    for (const library of flags.libraries) {
      const t = performance.now();
      const args = [library, String(n), String(flags.ops), String(flags.warmup), String(seed)];
      if (library === "kad-dht" && flags.alpha !== undefined) args.push(String(flags.alpha));
      outcomes.set(library, await spawnNetwork(args));
      console.error(`${library}, ${n} nodes: ${((performance.now() - t) / 1000).toFixed(0)} s`);
    }
    console.log(table(outcomes.get("carrier"), outcomes.get("kad-dht"), flags.ops));
    for (const o of outcomes.values()) {
      if (o.failures.messages.length > 0) {
        console.log(`\n${o.library} failures: ${o.failures.messages.join("; ")}`);
      }
    }
    console.log("");
  }
  console.log(
    "Latencies: from just before the call until it resolves, every node's work on one event loop. " +
      "carrier `hops` and `queries` are what `node.dht.lookup` returns; kad-dht queries are SEND_QUERY events, " +
      "its depth the longest chain of referrals among the peers queried. A lookup's true closest: the 20 nodes nearest to SHA-256(key) " +
      "by XOR (the asker excluded; kad-dht ids are SHA-256 of the peer id). kad-dht's get runs its query to the end before it yields the value " +
      "(as contentRouting.get does); a getter that is itself a replica still runs it.",
  );
  console.log(`\nTotal time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}

if (import.meta.main) {
  if (Deno.args[0] === "--network") {
    const [library, n, ops, warmup, seed, alpha] = Deno.args.slice(1);
    const outcome = await runNetwork(
      library as Library,
      Number(n),
      Number(ops),
      Number(warmup),
      Number(seed),
      alpha === undefined ? undefined : Number(alpha),
    );
    console.log(REPORT + JSON.stringify(outcome));
  } else {
    await main();
  }
  // js-libp2p keeps the process alive after stop() under Deno (mortice's
  // BroadcastChannel has no `unref` in Deno; see bench/peers.ts).
  Deno.exit(0);
}
