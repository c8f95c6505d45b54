/**
 * SHOUT and WHISPER in a message-level discrete-event simulation, printed as
 * Markdown tables: `deno task sim`.
 *
 * For n ∈ {10, 100, 1,000, 10,000} nodes (k = 20), each node's routing table
 * is filled by simulated FIND_NODE lookups (see `_sim_overlay.ts`). Then
 * broadcasts from random live origins run over an event queue
 * (`_sim_clock.ts`), each node forwarding with `planForward` and falling back
 * with `nextInBucket` from `lib/overlay/broadcast.ts`, the code the node
 * runs. One-way latency per message is uniform in [10, 50) ms; the ACK
 * timeout is 200 ms (twice the largest round trip). Crashed nodes (10%,
 * chosen at random) fail without notice: they stay in every table and
 * swallow what is sent to them, and nobody learns from the timeouts between
 * broadcasts (the worst case; one setting, "timed-out peers skipped later",
 * lets each node remember the peers it timed out on).
 *
 * Three tables: the default setting against the targets and the seed's
 * flood formulas; every setting measured (β peers per bucket with or without
 * ACK, balanced or uniform choice within a bucket); and what building the
 * tables cost, WHISPER's greedy routing with 10% crashed, time and RSS.
 *
 * No sockets and no cryptography: no Noise handshake, no signatures, and
 * NodeIds are seeded random 256-bit values.
 *
 * Options: `--n=10,100` (the sizes), `--broadcasts=10` (per size and
 * setting), `--refresh=0` (refresh rounds after the joins), `--seed=1`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type BucketChoice, nextInBucket, planForward } from "../lib/overlay/broadcast.ts";
import { HeapClock, Rng } from "./_sim_clock.ts";
import { SimOverlay } from "./_sim_overlay.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string", default: "10,100,1000,10000" },
    broadcasts: { type: "string", default: "10" },
    refresh: { type: "string", default: "0" },
    seed: { type: "string", default: "1" },
  },
});
const SIZES = args.n.split(",").map(Number);
const BROADCASTS = Number(args.broadcasts);
const REFRESH_ROUNDS = Number(args.refresh);
const SEED = Number(args.seed);
const K = 20;
const LATENCY: [number, number] = [10, 50];
const ACK_TIMEOUT = 200;
const CRASHED = 0.1;
const WHISPER_PAIRS = 1000;
const FLOOD_ELL = 8;

/** A forwarding rule to measure. */
interface Setting {
  name: string;
  redundancy: number;
  ack: boolean;
  /** A node that gets a copy with a greater height forwards the buckets it adds. */
  upgrade: boolean;
  choice: BucketChoice;
  /** A node skips peers that timed out in later broadcasts (as `RoutingTable.remove` would). */
  remember?: boolean;
}

const DEFAULT: Setting = {
  name: "β = 1 + ACK, fallback (default)",
  redundancy: 1,
  ack: true,
  upgrade: true,
  choice: "balanced",
};
const SETTINGS: Setting[] = [
  { ...DEFAULT, name: "β = 1, no ACK (plain Kadcast)", ack: false },
  {
    ...DEFAULT,
    name: "β = 2, no ACK, duplicates dropped",
    redundancy: 2,
    ack: false,
    upgrade: false,
  },
  { ...DEFAULT, name: "β = 2, no ACK, upgrades forwarded", redundancy: 2, ack: false },
  {
    ...DEFAULT,
    name: "β = 3, no ACK, duplicates dropped",
    redundancy: 3,
    ack: false,
    upgrade: false,
  },
  DEFAULT,
  { ...DEFAULT, name: "β = 1 + ACK, fallback, uniform choice", choice: "uniform" },
  { ...DEFAULT, name: "β = 1 + ACK, fallback, timed-out peers skipped later", remember: true },
];

/** Totals over the broadcasts of one setting. */
interface Tally {
  broadcasts: number;
  shouts: number;
  acks: number;
  timeouts: number;
  duplicates: number;
  delivered: number;
  expected: number;
  hopsSum: number;
  hopsMax: number;
  msSum: number;
  msMax: number;
  /** SHOUTs sent per node, over all broadcasts. */
  sentBy: Uint32Array;
}

function newTally(n: number): Tally {
  return {
    sentBy: new Uint32Array(n),
    broadcasts: 0,
    shouts: 0,
    acks: 0,
    timeouts: 0,
    duplicates: 0,
    delivered: 0,
    expected: 0,
    hopsSum: 0,
    hopsMax: 0,
    msSum: 0,
    msMax: 0,
  };
}

/** One broadcast from `origin`, run to the end of its events, added to `tally`. */
function broadcast(
  overlay: SimOverlay,
  origin: number,
  dead: Uint8Array,
  setting: Setting,
  rng: Rng,
  tally: Tally,
  timedOut: Map<number, Set<string>>,
): void {
  const clock = new HeapClock();
  const excludeFor = (x: number) => {
    const known = setting.remember ? timedOut.get(x) : undefined;
    return known && ((address: string) => known.has(address));
  };
  const { nodes } = overlay;
  const n = nodes.length;
  const seed = rng.bytes(32); // the message id
  const forwarded = new Int16Array(n).fill(-1); // highest height forwarded for; -1: not received
  const latency = (): number => rng.between(LATENCY[0], LATENCY[1]);

  const send = (from: number, to: number, height: number, hops: number, tried: Set<string>) => {
    tally.shouts++;
    tally.sentBy[from]++;
    let acked = false;
    if (!dead[to]) {
      clock.setTimeout(() => receive(to, height, hops, () => (acked = true)), latency());
    }
    if (!setting.ack) return;
    clock.setTimeout(() => {
      if (acked) return;
      tally.timeouts++;
      const address = nodes[to].contact.address;
      timedOut.set(from, (timedOut.get(from) ?? new Set()).add(address));
      const next = nextInBucket({
        self: nodes[from].contact.nodeId,
        candidates: nodes[from].table,
        bucket: height,
        tried,
        exclude: excludeFor(from),
        choice: setting.choice,
        seed,
      });
      if (!next) return;
      tried.add(next.address);
      send(from, overlay.indexOf(next), height, hops, tried);
    }, ACK_TIMEOUT);
  };

  const forward = (x: number, height: number | "origin", hops: number, previous: number) => {
    const plan = planForward({
      self: nodes[x].contact.nodeId,
      height,
      previousHeight: previous,
      candidates: nodes[x].table,
      redundancy: setting.redundancy,
      exclude: excludeFor(x),
      choice: setting.choice,
      seed,
    });
    const tried = new Map<number, Set<string>>(); // per bucket
    for (const { contact, height: h } of plan) {
      const set = tried.get(h) ?? new Set<string>();
      tried.set(h, set.add(contact.address));
    }
    for (const { contact, height: h } of plan) {
      send(x, overlay.indexOf(contact), h, hops + 1, tried.get(h)!);
    }
  };

  const receive = (x: number, height: number, hops: number, ack: () => void) => {
    if (setting.ack) {
      tally.acks++;
      clock.setTimeout(ack, latency());
    }
    const before = forwarded[x];
    if (before >= 0) {
      tally.duplicates++;
      if (!setting.upgrade || height <= before) return;
      forwarded[x] = height; // forward only the buckets this copy adds
      forward(x, height, hops, before);
      return;
    }
    forwarded[x] = height;
    tally.delivered++;
    tally.hopsSum += hops;
    tally.hopsMax = Math.max(tally.hopsMax, hops);
    tally.msSum += clock.now();
    tally.msMax = Math.max(tally.msMax, clock.now());
    forward(x, height, hops, 0);
  };

  forwarded[origin] = 256;
  forward(origin, "origin", 0, 0);
  clock.run();
  let live = 0;
  for (let i = 0; i < n; i++) if (!dead[i]) live++;
  tally.expected += live - 1;
  tally.broadcasts++;
}

/** Figures for one n. */
interface Row {
  n: number;
  buildMs: number;
  findNodesPerNode: number;
  pingsPerNode: number;
  meanTable: number;
  rssMiB: number;
  results: Map<string, { healthy: Tally; crashed: Tally }>;
  whisper: { healthy: RouteTally; crashed: RouteTally };
  runMs: number;
}

interface RouteTally {
  routes: number;
  ok: number;
  hopsSum: number;
  hopsMax: number;
  timeouts: number;
}

function whisper(overlay: SimOverlay, dead: Uint8Array, rng: Rng, pairs: number): RouteTally {
  const n = overlay.nodes.length;
  const tally: RouteTally = { routes: 0, ok: 0, hopsSum: 0, hopsMax: 0, timeouts: 0 };
  if (n < 2) return tally;
  for (let p = 0; p < pairs; p++) {
    let s: number, t: number;
    do {
      s = rng.int(n);
      t = rng.int(n);
    } while (s === t || dead[s] || dead[t]);
    const r = overlay.route(s, t, dead);
    tally.routes++;
    tally.timeouts += r.timeouts;
    if (!r.ok) continue;
    tally.ok++;
    tally.hopsSum += r.hops;
    tally.hopsMax = Math.max(tally.hopsMax, r.hops);
  }
  return tally;
}

function simulate(n: number): Row {
  const rng = new Rng(SEED * 1_000_003 + n);
  const started = performance.now();
  const overlay = new SimOverlay({
    n,
    k: K,
    refreshRounds: REFRESH_ROUNDS,
    rng,
    clock: new HeapClock(),
  });
  const buildMs = performance.now() - started;
  const healthy = new Uint8Array(n);
  const crashed = new Uint8Array(n);
  for (const i of rng.sample(n, Math.round(n * CRASHED))) crashed[i] = 1;
  const origins = (dead: Uint8Array): number[] =>
    Array.from({ length: BROADCASTS }, () => {
      let o: number;
      do o = rng.int(n); while (dead[o]);
      return o;
    });
  const results = new Map<string, { healthy: Tally; crashed: Tally }>();
  for (const setting of SETTINGS) {
    const entry = { healthy: newTally(n), crashed: newTally(n) };
    const timedOut = new Map<number, Set<string>>(); // per node
    for (const o of origins(healthy)) {
      broadcast(overlay, o, healthy, setting, rng, entry.healthy, timedOut);
    }
    for (const o of origins(crashed)) {
      broadcast(overlay, o, crashed, setting, rng, entry.crashed, timedOut);
    }
    results.set(setting.name, entry);
  }
  const row: Row = {
    n,
    buildMs,
    findNodesPerNode: overlay.findNodes / n,
    pingsPerNode: overlay.pings / n,
    meanTable: overlay.nodes.reduce((s, x) => s + x.table.size, 0) / n,
    rssMiB: Deno.memoryUsage().rss / 2 ** 20,
    results,
    whisper: {
      healthy: whisper(overlay, healthy, rng, WHISPER_PAIRS),
      crashed: whisper(overlay, crashed, rng, WHISPER_PAIRS),
    },
    runMs: 0,
  };
  row.runMs = performance.now() - started;
  return row;
}

// --- output ---

const log2ceil = (n: number): number => Math.ceil(Math.log2(n));
const fixed = (x: number, digits = 2): string => x.toFixed(digits);
const percent = (t: { delivered: number; expected: number }): string =>
  t.expected === 0 ? "–" : `${(100 * t.delivered / t.expected).toFixed(2)}%`;
const per = (x: number, t: Tally, n: number): string =>
  n < 2 ? "–" : fixed(x / t.broadcasts / (n - 1));
const floodMessages = (n: number): number => (2 * FLOOD_ELL - 1) * n + 1;
const floodLag = (n: number): number => Math.ceil(Math.max((n - 2) / FLOOD_ELL, 1));
/** SHOUTs the busiest node sent over all broadcasts, per broadcast. */
const busiest = (t: Tally): string => fixed(Math.max(...t.sentBy) / t.broadcasts, 1);
const mark = (ok: boolean): string => (ok ? "✓" : "✗");

console.log(
  `# SHOUT and WHISPER: message-level simulation\n\n` +
    `Discrete events, no sockets and no cryptography (no handshake, no signatures; NodeIds are ` +
    `seeded random 256-bit values). k = ${K}, α = 3; one-way latency uniform in ` +
    `[${LATENCY[0]}, ${LATENCY[1]}) ms; ACK timeout ${ACK_TIMEOUT} ms. Tables are built as the ` +
    `node will: nodes join one by one through one bootstrap node, each running an iterative ` +
    `FIND_NODE lookup for its own id and one for a random id in every bucket farther than its ` +
    `closest neighbour; ${REFRESH_ROUNDS} refresh round(s) afterwards. ${BROADCASTS} broadcasts ` +
    `from random live origins per n and setting; "10% crashed": that many nodes fail without ` +
    `notice after the tables formed and stay in every table. WHISPER: greedy XOR routing ` +
    `between ${WHISPER_PAIRS} random pairs of live nodes over the same tables. Flood: the ` +
    `seed's formulas for ℓ = ${FLOOD_ELL}, m = (2ℓ − 1)·n + 1 and lag ⌈max((n − 2)/ℓ, 1)⌉.\n`,
);

const rows: Row[] = [];
for (const n of SIZES) {
  const row = simulate(n);
  rows.push(row);
  console.error(
    `n = ${n}: tables in ${fixed(row.buildMs / 1000, 1)} s, all in ${
      fixed(row.runMs / 1000, 1)
    } s, RSS ${fixed(row.rssMiB, 0)} MiB`,
  );
}

console.log("## Default: β = 1, per-hop ACK with fallback, balanced choice\n");
console.log(
  "| n | m÷(n−1) | ACKs÷(n−1) | mean hops | max hops | ⌈log₂n⌉+2 | delivery | " +
    "10% crashed: m÷(n−1) | delivery | max hops | WHISPER hops mean / max | ⌈log₂n⌉+1 | " +
    "flood m÷(n−1) | flood lag |",
);
console.log("|" + " --- |".repeat(14));
const checks: string[] = [];
for (const row of rows) {
  const { n } = row;
  const { healthy: h, crashed: c } = row.results.get(DEFAULT.name)!;
  const w = row.whisper.healthy;
  const wMean = w.ok ? fixed(w.hopsSum / w.ok) : "–";
  console.log(
    `| ${n.toLocaleString("en")} | ${per(h.shouts, h, n)} | ${per(h.acks, h, n)} | ${
      h.delivered ? fixed(h.hopsSum / h.delivered) : "–"
    } | ${h.hopsMax} | ${log2ceil(n) + 2} | ${percent(h)} | ${per(c.shouts, c, n)} | ${
      percent(c)
    } | ${c.hopsMax} | ${wMean} / ${w.hopsMax} | ${log2ceil(n) + 1} | ${
      n < 2 ? "–" : fixed(floodMessages(n) / (n - 1))
    } | ${floodLag(n)} |`,
  );
  const ratio = h.shouts / h.broadcasts / (n - 1);
  checks.push(
    `- n = ${n.toLocaleString("en")}: ` + [
      `m÷(n−1) ≤ 1.1 ${mark(ratio <= 1.1)}`,
      `max hops ≤ ${log2ceil(n) + 2} ${mark(h.hopsMax <= log2ceil(n) + 2)}`,
      `delivery 100% ${mark(h.delivered === h.expected)}`,
      `delivery ≥ 99.9% with 10% crashed ${mark(c.delivered >= 0.999 * c.expected)}`,
      `WHISPER max hops ≤ ${log2ceil(n) + 1} ${
        mark(w.ok === w.routes && w.hopsMax <= log2ceil(n) + 1)
      }`,
      `RSS ${fixed(row.rssMiB, 0)} MiB`,
    ].join(", "),
  );
}
console.log(`\nTargets:\n\n${checks.join("\n")}\n`);

console.log("## Redundancy options\n");
console.log(
  "| n | setting | m÷(n−1) | ACKs÷(n−1) | delivery | max hops | mean / max ms | busiest node | " +
    "10% crashed: m÷(n−1) | ACKs÷(n−1) | timeouts÷(n−1) | delivery | max hops | mean / max ms |",
);
console.log("|" + " --- |".repeat(14));
for (const row of rows) {
  const { n } = row;
  for (const setting of SETTINGS) {
    const { healthy: h, crashed: c } = row.results.get(setting.name)!;
    const ms = (t: Tally): string =>
      t.delivered ? `${fixed(t.msSum / t.delivered, 0)} / ${fixed(t.msMax, 0)}` : "–";
    console.log(
      `| ${n.toLocaleString("en")} | ${setting.name} | ${per(h.shouts, h, n)} | ${
        per(h.acks, h, n)
      } | ${percent(h)} | ${h.hopsMax} | ${ms(h)} | ${busiest(h)} | ${per(c.shouts, c, n)} | ${
        per(c.acks, c, n)
      } | ${per(c.timeouts, c, n)} | ${percent(c)} | ${c.hopsMax} | ${ms(c)} |`,
    );
  }
}

console.log("\n## Tables and WHISPER detail\n");
console.log(
  "| n | FIND_NODE per node | PING per node | mean contacts | WHISPER routed | " +
    "10% crashed: WHISPER routed | hops mean / max | timeouts per route | time (s) | RSS (MiB) |",
);
console.log("|" + " --- |".repeat(10));
for (const row of rows) {
  const { healthy: w, crashed: wc } = row.whisper;
  const ratio = (t: RouteTally): string =>
    t.routes ? `${(100 * t.ok / t.routes).toFixed(1)}%` : "–";
  console.log(
    `| ${row.n.toLocaleString("en")} | ${fixed(row.findNodesPerNode, 0)} | ${
      fixed(row.pingsPerNode, 0)
    } | ${fixed(row.meanTable, 0)} | ${ratio(w)} | ${ratio(wc)} | ${
      wc.ok ? fixed(wc.hopsSum / wc.ok) : "–"
    } / ${wc.hopsMax} | ${wc.routes ? fixed(wc.timeouts / wc.routes) : "–"} | ${
      fixed(row.runMs / 1000, 1)
    } | ${fixed(row.rssMiB, 0)} |`,
  );
}
