/**
 * `limits`: a node's resource budget, every bound on what peers can make it
 * hold; and the default options' budget, for `carrier run --help`.
 *
 * @module
 */
import { type ResourceBudget, resourceBudget } from "../../mod.ts";
import type { NodeCommand } from "../node_command.ts";
import { noPositionals } from "../options.ts";

/** The node command `limits`. */
export const limitsNodeCommand: NodeCommand = {
  summary: "print this node's resource budget: every bound on what peers can make it hold",
  synopsis: "",
  options: {},
  prepare(parsed) {
    noPositionals(parsed);
    return {
      run(node) {
        const budget = node.budget();
        return Promise.resolve({ fields: { ...budget }, text: budgetText(budget).join("\n") });
      },
    };
  },
};

/** The resource budget of a node with the default options, as {@linkcode limitsNodeCommand} prints one. */
export function defaultBudgetText(): string[] {
  return budgetText(resourceBudget());
}

/** A resource budget as a table, one line per bound, then the total. */
function budgetText(budget: ResourceBudget): string[] {
  const mib = (bytes: number) => bytes === 0 ? "-" : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  const rows = budget.lines.map((l) => [
    l.resource,
    l.option,
    String(l.limit),
    l.perPeer === undefined ? "-" : String(l.perPeer),
    l.perIp === undefined ? "-" : String(l.perIp),
    mib(l.bytes),
  ]);
  const header = ["resource", "option", "limit", "per peer", "per IP", "memory"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd();
  return [
    `  ${line(header)}`,
    ...rows.map((r) => `  ${line(r)}`),
    `  total: ${mib(budget.totalBytes)} with every connection slot taken`,
  ];
}
