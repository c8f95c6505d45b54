/**
 * `deno task jepsen [--seeds N] [--seconds S] [--from SEED] [--mixes a,b] [--save DIR]`:
 * Jepsen-style runs of the DHT (issue 12). For every fault mix, seeds
 * FROM … FROM + N − 1 each build a swarm on the in-memory network, run
 * concurrent clients for S seconds under the mix's faults, heal, and check
 * the history (tests/jepsen/history.ts). Prints a table per mix: runs,
 * histories (one per key per run), operations, violations by kind, and the
 * latency of `get` (median / p95) for linearizable reads and for
 * `consistency: "any"`; then every violating seed with the command that
 * replays it. With `--save DIR`, each violating history is written there as
 * JSON lines (`historyFromLines`, then `checkHistory` checks it again). Exits 1 when any violation was
 * found.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  FAULT_MIXES,
  type FaultMix,
  MIX_DESCRIPTIONS,
  runJepsen,
} from "../tests/jepsen/_workload.ts";
import { historyToLines, type ViolationKind } from "../tests/jepsen/history.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seeds: { type: "string", default: "8" },
    seconds: { type: "string", default: "4" },
    from: { type: "string", default: "1" },
    mixes: { type: "string", default: FAULT_MIXES.join(",") },
    save: { type: "string" },
    verbose: { type: "boolean", default: false },
  },
});
const seeds = Number(values.seeds);
const seconds = Number(values.seconds);
const from = Number(values.from);
const mixes = values.mixes.split(",") as FaultMix[];
for (const mix of mixes) {
  if (!FAULT_MIXES.includes(mix)) {
    console.error(`Unknown mix ${mix}: expected one of ${FAULT_MIXES.join(", ")}`);
    Deno.exit(2);
  }
}
if (!Number.isSafeInteger(seeds) || seeds < 1 || !(seconds > 0) || !Number.isSafeInteger(from)) {
  console.error("--seeds and --from take integers (seeds ≥ 1), --seconds a positive number");
  Deno.exit(2);
}
if (values.save) await Deno.mkdir(values.save, { recursive: true });

interface Row {
  mix: FaultMix;
  runs: number;
  histories: number;
  ops: number;
  violations: Map<ViolationKind, number>;
  failing: number[];
  uncounted: number;
  unconverged: number;
  indeterminate: number;
  crashed: number;
  restarted: number;
  slow: number;
  linearizable: number[];
  any: number[];
  seconds: number;
}

const rows: Row[] = [];
const started = performance.now();
for (const mix of mixes) {
  const row: Row = {
    mix,
    runs: 0,
    histories: 0,
    ops: 0,
    violations: new Map(),
    failing: [],
    uncounted: 0,
    unconverged: 0,
    indeterminate: 0,
    crashed: 0,
    restarted: 0,
    slow: 0,
    linearizable: [],
    any: [],
    seconds: 0,
  };
  rows.push(row);
  for (let seed = from; seed < from + seeds; seed++) {
    const result = await runJepsen({
      seed,
      mix,
      seconds,
      log: values.verbose ? (line) => console.error(line) : undefined,
    });
    const { check } = result;
    row.runs++;
    row.histories += check.keys;
    row.ops += check.ops;
    row.uncounted += check.uncounted.length;
    if (result.rounds === 0) row.unconverged++;
    row.indeterminate += result.history.ops.filter((op) =>
      op.outcome !== "ok" && op.outcome !== "fail"
    )
      .length;
    row.crashed += result.faults.crashed;
    row.restarted += result.faults.restarted;
    row.slow += result.faults.slow;
    row.linearizable.push(...result.latency.linearizable);
    row.any.push(...result.latency.any);
    row.seconds += result.elapsed / 1_000;
    for (const v of check.violations) {
      row.violations.set(v.kind, (row.violations.get(v.kind) ?? 0) + 1);
    }
    const kinds = [...new Set(check.violations.map((v) => v.kind))];
    console.error(
      `${mix} seed ${seed}: ${check.keys} histories, ${check.ops} operations, ` +
        `${check.violations.length} violations${kinds.length ? ` (${kinds.join(", ")})` : ""}, ` +
        `${(result.elapsed / 1_000).toFixed(1)} s`,
    );
    if (check.violations.length > 0) {
      row.failing.push(seed);
      if (values.save) {
        const path = `${values.save}/${mix}-${seed}.jsonl`;
        await Deno.writeTextFile(
          path,
          historyToLines(result.history.toJSON(), { violations: check.violations }),
        );
      }
    }
  }
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function latency(samples: number[]): string {
  const sorted = samples.slice().sort((a, b) => a - b);
  if (sorted.length === 0) return "—";
  return `${quantile(sorted, 0.5).toFixed(1)} / ${quantile(sorted, 0.95).toFixed(1)}`;
}

const table = [
  [
    "mix",
    "runs",
    "histories",
    "operations",
    "indeterminate",
    "violations",
    "by kind",
    "crashed / restarted / slow",
    "get ms, median / p95",
    'get { consistency: "any" } ms',
    "s per run",
  ],
  ...rows.map((r) => [
    r.mix,
    String(r.runs),
    String(r.histories),
    r.ops.toLocaleString("en-US"),
    r.indeterminate.toLocaleString("en-US"),
    String([...r.violations.values()].reduce((a, b) => a + b, 0)),
    [...r.violations].map(([k, n]) => `${k} ${n}`).join(", ") || "—",
    `${r.crashed} / ${r.restarted} / ${r.slow}`,
    latency(r.linearizable),
    latency(r.any),
    (r.seconds / r.runs).toFixed(1),
  ]),
];
const totals = rows.reduce(
  (t, r) => ({
    runs: t.runs + r.runs,
    histories: t.histories + r.histories,
    ops: t.ops + r.ops,
    violations: t.violations + [...r.violations.values()].reduce((a, b) => a + b, 0),
  }),
  { runs: 0, histories: 0, ops: 0, violations: 0 },
);
const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
const line = (cells: string[]) =>
  `| ${
    cells.map((c, i) => i === 0 || i === 6 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(
      " | ",
    )
  } |`;
console.log(
  `\nJepsen-style DHT histories: seeds ${from}–${from + seeds - 1}, ${seconds} s of clients each\n`,
);
console.log(line(table[0]));
console.log(
  `| ${
    widths.map((w, i) => i === 0 || i === 6 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`).join(" | ")
  } |`,
);
for (const row of table.slice(1)) console.log(line(row));
console.log(
  `\n${totals.runs} runs, ${totals.histories} histories, ${totals.ops.toLocaleString("en-US")} ` +
    `operations, ${totals.violations} violations, in ${
      ((performance.now() - started) / 1_000).toFixed(0)
    } s`,
);
console.log("\nMixes:");
for (const mix of mixes) console.log(`- ${mix}: ${MIX_DESCRIPTIONS[mix]}`);
const unconverged = rows.reduce((n, r) => n + r.unconverged, 0);
if (unconverged > 0) {
  console.log(
    `\n${unconverged} runs started before every node saw the same replica sets (4 refresh rounds)`,
  );
}
const uncounted = rows.reduce((n, r) => n + r.uncounted, 0);
if (uncounted > 0) {
  console.log(`\n${uncounted} counter histories had no final read (their counts were not checked)`);
}
const failing = rows.filter((r) => r.failing.length > 0);
if (failing.length > 0) {
  console.log(
    "\nViolating seeds (replay: deno task jepsen --mixes MIX --from SEED --seeds 1 --seconds S):",
  );
  for (const r of failing) console.log(`- ${r.mix}: ${r.failing.join(", ")}`);
  Deno.exit(1);
}
