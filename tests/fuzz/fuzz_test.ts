// The CI slice of the fuzz campaign (tools/fuzz.ts, `deno task fuzz`): the
// same targets and code, a fixed seed and a small budget (about two minutes
// on the 2-core development machine), against a node in a child process.
import assert from "node:assert/strict";
import { formatReport, runCampaign, targetNames } from "./_campaign.ts";

const SEED = 11;

Deno.test("fuzz campaign slice: every target runs, nothing crashes or hangs, every legit PING is answered", async () => {
  const report = await runCampaign({
    seed: SEED,
    inputs: 4_000,
    duration: 100,
    workers: 1,
    log: () => {},
  });
  const text = formatReport(report);
  console.log(text);
  const failed = () => `\n${text}`;
  assert.deepEqual(report.targets.map((t) => t.name), targetNames(), failed());
  for (const t of report.targets) {
    assert(t.inputs > 0, `${t.name} fed no input${failed()}`);
    assert.equal(t.crashes, 0, `${t.name}: ${t.crashes} crashes${failed()}`);
    assert.equal(t.hangs, 0, `${t.name}: ${t.hangs} hangs${failed()}`);
  }
  assert(report.pings.attempts >= 30, `only ${report.pings.attempts} legit pings${failed()}`);
  assert.equal(report.pings.failures, 0, `legit pings failed${failed()}`);
});
