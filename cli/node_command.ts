/**
 * The commands of a running node: what one is (a line on `carrier run`'s
 * standard input, or a one-shot `carrier NAME --bootstrap PEER ...`), how a
 * line finds its command in a table, and their help.
 *
 * @module
 */
import type { Node } from "../mod.ts";
import { UsageError } from "./errors.ts";
import { optionLines, type OptionSpecs, type Parsed, sentence } from "./options.ts";

/** What a node command did: its fields for `--json` and its text for people. */
export interface Outcome {
  /** The result's fields, for `--json`. */
  fields: Record<string, unknown>;
  /** The result, for people. */
  text: string;
  /** The session ends after this command (`quit`). */
  quit?: boolean;
  /** The one-shot form's exit code when not 0 (`dht get` finding nothing: 1). */
  exitCode?: number;
}

/** A node command with its arguments checked: ready to run. */
export interface NodeAction {
  /** An address the one-shot form looks up before running, so that a route to it is known. */
  reach?: string;
  /**
   * The command makes its own lookups (the DHT's): the one-shot form does
   * not look up its neighbourhood first.
   */
  routesItself?: boolean;
  /** Runs the command on `node`. */
  run(node: Node, signal: AbortSignal): Promise<Outcome>;
}

/**
 * A command of a running node: a line on `carrier run`'s standard input, or
 * a one-shot `carrier NAME --bootstrap PEER ...`.
 */
export interface NodeCommand {
  /** What it does, in a line. */
  summary: string;
  /** Its arguments, after its name. */
  synopsis: string;
  /** Its arguments as a one-shot command, when they differ. */
  oneShotSynopsis?: string;
  /** Its options. */
  options: OptionSpecs;
  /**
   * Checks the arguments (throwing {@linkcode UsageError}, `AddressError`…):
   * for a line of `carrier run`'s input, or for the one-shot form.
   */
  prepare(parsed: Parsed, form: "line" | "one-shot"): NodeAction;
}

/** A family of node commands under one name: `dht get KEY`, `dht put KEY VALUE`… */
export interface NodeCommandGroup {
  /** What the family does, in a line. */
  summary: string;
  /** Its commands by name. */
  subcommands: Record<string, NodeCommand>;
}

/** Node commands by name: a table such as `NODE_COMMANDS`. */
export type NodeCommandTable = Record<string, NodeCommand | NodeCommandGroup>;

/** Whether `entry` is a family of commands. */
export function isGroup(entry: NodeCommand | NodeCommandGroup): entry is NodeCommandGroup {
  return "subcommands" in entry;
}

/** Every node command of `table` with its full name (`dht get` for a group's). */
export function nodeCommandList(table: NodeCommandTable): [string, NodeCommand][] {
  const list: [string, NodeCommand][] = [];
  for (const [name, entry] of Object.entries(table)) {
    if (!isGroup(entry)) list.push([name, entry]);
    else {
      for (const [sub, c] of Object.entries(entry.subcommands)) list.push([`${name} ${sub}`, c]);
    }
  }
  return list;
}

/** Finds the node command of `table` that `tokens` start with; the rest are its arguments. */
export function resolveNodeCommand(
  table: NodeCommandTable,
  tokens: string[],
): { name: string; command: NodeCommand; args: string[] } {
  const [first, ...rest] = tokens;
  const entry = Object.hasOwn(table, first) ? table[first] : undefined;
  if (entry === undefined) {
    throw new UsageError(
      `unknown command "${first}"`,
      `one of ${Object.keys(table).join(", ")}; \`help\` describes them`,
    );
  }
  if (!isGroup(entry)) return { name: first, command: entry, args: rest };
  const [sub, ...args] = rest;
  if (sub === undefined || !Object.hasOwn(entry.subcommands, sub)) {
    throw new UsageError(
      sub === undefined ? `${first} needs a subcommand` : `unknown command "${first} ${sub}"`,
      Object.keys(entry.subcommands).map((s) => `${first} ${s}`).join(" | "),
    );
  }
  return { name: `${first} ${sub}`, command: entry.subcommands[sub], args };
}

/** Help lines of the node commands of `table` whose names start with `prefix`. */
export function nodeCommandsHelp(table: NodeCommandTable, prefix = ""): string[] {
  return nodeCommandList(table).filter(([name]) => name.startsWith(prefix)).flatMap((
    [name, c],
  ) => [
    `  ${name} ${c.synopsis}`.trimEnd(),
    `      ${c.summary}`,
  ]);
}

/** A node command's help: its usage, summary and options. */
export function nodeCommandHelp(name: string, command: NodeCommand): string {
  return [
    `Usage: ${name} ${command.synopsis}`.trimEnd(),
    "",
    sentence(command.summary),
    "",
    "Options:",
    ...optionLines(command.options),
  ].join("\n");
}
