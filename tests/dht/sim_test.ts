// The DHT simulation's targets (bench/dht_sim.ts prints the same figures).
import assert from "node:assert/strict";
import { simulate } from "../../bench/_dht_sim.ts";

Deno.test({
  name: "DHT simulation, n = 1,000: lookup hops ≤ ⌈log₂ n⌉; values survive 30% crash and 50% churn",
  // The handoff yields to the event loop with timers of its own.
  sanitizeOps: false,
  fn: async () => {
    const n = 1_000;
    const row = await simulate(n, { values: 50, seed: 7 });
    assert.ok(row.hopsMax <= Math.ceil(Math.log2(n)), `max hops ${row.hopsMax}`);
    assert.equal(row.putReplicas, 20);
    assert.equal(row.crashRead, 1, `readable after 30% crash: ${row.crashRead}`);
    assert.equal(row.churnRead, 1, `readable after 50% churn: ${row.churnRead}`);
  },
});
