/**
 * The DHT in a message-level simulation, printed as a Markdown table:
 * `deno task sim:dht`.
 *
 * Every simulated node runs the library's own {@linkcode Dht} (lookups,
 * replica store, quorum rules, hand-off to newcomers, republishing) and
 * {@linkcode RoutingTable}; only the transport is simulated: a request is a
 * function call to the target replica's `serve` (both sides learn each other, as
 * a connection does), and a request to a crashed node fails at once (a
 * timeout without the wait). No sockets, no handshakes, no latency: the
 * figures are hops and delivery, not time.
 *
 * The run, for each n: nodes join one by one through a random live node
 * (a lookup for their own id, then one for a random id in every bucket
 * farther than their closest neighbour), 100 values are put from random
 * nodes, 200 lookups for random keys measure hops; then
 *
 * - **crash**: 30% of the nodes fail without notice, and every value is
 *   read from a random live node;
 * - **churn** (starting again from the full network): in ten rounds, 5% of
 *   the original nodes leave and as many new nodes join each round (50% in
 *   all); the publishers still alive republish once; every value is read
 *   from a random live node.
 *
 * Options: `--n=1000` (sizes, comma-separated), `--values=100`, `--seed=1`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { simulate } from "./_dht_sim.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    n: { type: "string", default: "1000" },
    values: { type: "string", default: "100" },
    seed: { type: "string", default: "1" },
  },
});
const SIZES = args.n.split(",").map(Number);
const VALUES = Number(args.values);
const SEED = Number(args.seed);
const K = 20;
const LOOKUPS = 200;

const fixed = (x: number, d = 2) => x.toFixed(d);
const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const mark = (ok: boolean) => (ok ? "✓" : "✗");

console.log(
  `# DHT: message-level simulation\n\nThe library's Dht and RoutingTable over a function-call ` +
    `transport (no sockets, no latency). k = R = ${K}, α = 3. ${VALUES} values put from random ` +
    `nodes; ${LOOKUPS} lookups for random keys from random nodes. Crash: 30% fail without ` +
    `notice. Churn: 50% of the nodes replaced in ten rounds (5% leave, as many join), then one ` +
    `republish by the publishers still alive. Reads from random live nodes.\n`,
);
console.log(
  "| n | lookup hops mean / max | ⌈log₂n⌉ | replicas per put | readable after 30% crash | " +
    "readable after 50% churn | requests per join | mean contacts | tables (s) | RSS (MiB) |",
);
console.log("|" + " --- |".repeat(10));
const checks: string[] = [];
for (const n of SIZES) {
  const row = await simulate(n, { values: VALUES, seed: SEED });
  const log2 = Math.ceil(Math.log2(n));
  console.log(
    `| ${n.toLocaleString("en")} | ${fixed(row.hopsMean)} / ${row.hopsMax} | ${log2} | ${
      fixed(row.putReplicas, 1)
    } | ${pct(row.crashRead)} | ${pct(row.churnRead)} | ${fixed(row.requestsPerJoin, 0)} | ${
      fixed(row.meanTable, 0)
    } | ${fixed(row.buildS, 1)} | ${fixed(row.rssMiB, 0)} |`,
  );
  checks.push(
    `- n = ${n.toLocaleString("en")}: lookup hops ≤ ${log2} ${mark(row.hopsMax <= log2)}, ` +
      `every value readable after 30% crash ${mark(row.crashRead === 1)}, after 50% churn ${
        mark(row.churnRead === 1)
      }`,
  );
}
console.log(`\nTargets:\n\n${checks.join("\n")}`);
