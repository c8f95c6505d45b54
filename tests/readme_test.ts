// The README's protocol tables are part of the specification: keep them true.
import assert from "node:assert/strict";
import { resourceBudget } from "../lib/budget.ts";
import { PROTOCOL_OPCODES } from "../lib/wire/opcodes.ts";

const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));

function tableBetween(start: string, end: string): string[][] {
  const from = readme.indexOf(start);
  const to = readme.indexOf(end, from);
  assert.ok(from >= 0 && to > from, `README has no ${start} … ${end} section`);
  return readme.slice(from, to).split("\n")
    .filter((line) => line.startsWith("|") && !/^\|\s*-+:?\s*\|/.test(line))
    .slice(1) // header row
    .map((line) => line.split("|").slice(1, -1).map((cell) => cell.trim().replaceAll("`", "")));
}

function shortName(typeName: string | undefined): string {
  return typeName?.replace(/^carrier\.v1\./, "") ?? "";
}

Deno.test("README opcode table matches the opcodes and schemas from proto/", () => {
  const rows = tableBetween("<!-- opcode-table", "<!-- /opcode-table -->");
  const expected = PROTOCOL_OPCODES.map((s) => [
    String(s.opcode),
    s.name,
    shortName(s.request.typeName),
    s.oneWay ? "(no reply)" : shortName(s.reply?.typeName),
    s.oneWay ? "(no reply)" : shortName(s.nack?.typeName),
  ]);
  assert.deepEqual(rows, expected);
});

Deno.test("README starts with the two commands that do everything", () => {
  const top = readme.split("\n").slice(0, 40).join("\n");
  assert.match(top, /npx -y deno@2\.9\.6 task demo/);
  assert.match(top, /npx -y deno@2\.9\.6 task test/);
});

Deno.test("README resource budget table is resourceBudget() with the defaults", () => {
  const rows = tableBetween("<!-- budget-table", "<!-- /budget-table -->");
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
