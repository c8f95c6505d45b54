// Issue 12: Jepsen-style histories of the DHT under faults (the CI subset of
// `deno task jepsen`), and a history captured from the code before the fix
// on which the checker reports the violations.
import assert from "node:assert/strict";
import { FAULT_MIXES, type FaultMix, runJepsen } from "./_workload.ts";
import { checkHistory, historyFromLines, type Violation } from "./history.ts";

/** Seeds per mix for CI: fixed, so that a failure names a seed that replays it. */
const CI_SEEDS: Readonly<Record<FaultMix, readonly number[]>> = {
  none: [1, 2],
  outbound: [1, 2, 3],
  crash: [1, 2, 3, 4],
  slow: [1, 2, 3],
  restart: [1, 2, 3, 4],
  mixed: [1, 2, 3],
};
const CI_SECONDS = 3;

const totals = { runs: 0, histories: 0, ops: 0 };

for (const mix of FAULT_MIXES) {
  Deno.test(`jepsen ${mix}: DHT histories have no violations with a majority of every replica set up`, async () => {
    const found: { seed: number; violations: Violation[] }[] = [];
    let histories = 0;
    let ops = 0;
    for (const seed of CI_SEEDS[mix]) {
      const { check } = await runJepsen({ seed, mix, seconds: CI_SECONDS });
      histories += check.keys;
      ops += check.ops;
      assert.deepEqual(check.uncounted, [], `seed ${seed}: every counter had a final read`);
      if (check.violations.length > 0) found.push({ seed, violations: check.violations });
    }
    totals.runs += CI_SEEDS[mix].length;
    totals.histories += histories;
    totals.ops += ops;
    console.log(
      `${mix}: ${histories} histories, ${ops} operations checked; ` +
        `so far ${totals.histories} histories, ${totals.ops} operations in ${totals.runs} runs`,
    );
    assert.deepEqual(
      found.map(({ seed, violations }) => ({
        seed,
        violations: violations.slice(0, 5).map((v) =>
          `${v.kind} ${v.key} [${v.ops}]: ${v.message}`
        ),
      })),
      [],
      `replay with: deno task jepsen --mixes ${mix} --from SEED --seeds 1 --seconds ${CI_SECONDS}`,
    );
  });
}

Deno.test("jepsen checker reports the violations of a history captured from the code before the fix", async () => {
  // Two CAS acknowledged at version 1, reads older than acknowledged CAS, a
  // final count one short of the acknowledged increments, two puts
  // acknowledged at one version: issue 12 on ccb117f (outbound-only nodes).
  const { head, ...history } = historyFromLines(
    await Deno.readTextFile(new URL("./regression_ccb117f.jsonl", import.meta.url)),
  );
  const expected = head.expected as Pick<Violation, "kind" | "key" | "ops">[];
  const { violations } = checkHistory(history);
  for (const e of expected) {
    assert.ok(
      violations.some((v) => v.kind === e.kind && v.key === e.key && v.ops.join() === e.ops.join()),
      `${e.kind} on ${e.key} [${e.ops}] reported`,
    );
  }
  assert.deepEqual(
    [...new Set(violations.map((v) => v.kind))].sort(),
    ["duplicate-version", "lost-increment", "stale-read"],
  );
});
