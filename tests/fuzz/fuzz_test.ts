// The CI slice of the fuzz campaign (tools/fuzz.ts, `deno task fuzz`): the
// same targets and code, a fixed seed and a small budget (about two minutes
// on the 2-core development machine), against a node in a child process.
import assert from "node:assert/strict";
import { formatReport, runCampaign, targetNames } from "./_campaign.ts";

const SEED = 11;

/**
 * Crashes the campaign found whose fix is pending, each with the ignored
 * regression test in regression_test.ts that reproduces it. The slice
 * reports them and fails on any other crash; remove an entry once its bug
 * is fixed (and the regression test is no longer ignored).
 */
const KNOWN_BUGS: { match: RegExp; regression: string }[] = [];

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
    const unknown = t.findings.filter((f) =>
      f.kind !== "hang" && !KNOWN_BUGS.some((b) => b.match.test(`${f.message}\n${f.stack ?? ""}`))
    );
    const known = t.findings.filter((f) => f.kind !== "hang").length - unknown.length;
    if (known > 0) {
      console.log(`${t.name}: ${known} crashes of known, pending bugs (see KNOWN_BUGS)`);
    }
    assert.equal(unknown.length, 0, `${t.name}: ${unknown.length} new crashes${failed()}`);
    assert(t.crashes === 0 || known > 0, `${t.name}: ${t.crashes} crashes${failed()}`);
    assert.equal(t.hangs, 0, `${t.name}: ${t.hangs} hangs${failed()}`);
  }
  assert(report.pings.attempts >= 30, `only ${report.pings.attempts} legit pings${failed()}`);
  assert.equal(report.pings.failures, 0, `legit pings failed${failed()}`);
});
