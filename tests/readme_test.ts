// The README's protocol tables are part of the specification: keep them true.
import assert from "node:assert/strict";
import { resourceBudget } from "../lib/budget.ts";
import { README, tableBetween } from "./conformance/_spec.ts";

// The protocol tables (opcodes, refusals) are checked against proto/, the
// opcode registry and a live node by tests/conformance/.
const readme = README;

Deno.test("README starts with the two commands that do everything", () => {
  const top = readme.split("\n").slice(0, 40).join("\n");
  assert.match(top, /npx -y deno@2\.9\.6 task demo/);
  assert.match(top, /npx -y deno@2\.9\.6 task test/);
});

Deno.test("README resource budget table is resourceBudget() with the defaults", () => {
  const rows = tableBetween(readme, "<!-- budget-table", "<!-- /budget-table -->");
  const mib = (bytes: number) => bytes === 0 ? "—" : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const budget = resourceBudget();
  const expected = budget.lines.map((l) => [
    l.resource,
    l.option,
    String(l.limit),
    String(l.perPeer ?? "—"),
    String(l.perIp ?? "—"),
    mib(l.bytes),
  ]);
  expected.push(["**total**", "", "", "", "", `**${mib(budget.totalBytes)}**`]);
  assert.deepEqual(rows, expected);
});
