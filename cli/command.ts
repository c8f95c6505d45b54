/**
 * The `carrier` commands: what one is, what it runs with, and the help of a
 * table of them.
 *
 * @module
 */
import { optionLines, type OptionSpecs, type Parsed, sentence } from "./options.ts";
import type { CliOutput } from "./output.ts";

/** What a command runs with: its output, and standard input for `carrier run`. */
export interface CliContext {
  /** Where it prints. */
  io: CliOutput;
  /** Its input: standard input unless `main` was given another. */
  input(): ReadableStream<Uint8Array>;
}

/** A `carrier` command: `carrier NAME [options]`. */
export interface Command {
  /** What it does, in a line. */
  summary: string;
  /** Its arguments, after `carrier NAME`. */
  synopsis: string;
  /** Its options. */
  options: OptionSpecs;
  /** More help, after the options. */
  details?(): string[];
  /** With `--json`, its failures are JSON lines on standard output too (the one-shots). */
  jsonErrors?: boolean;
  /** Its line in its group's help. @default {summary} */
  listing?: string;
  /** Runs it; resolves the exit code. */
  run(parsed: Parsed, context: CliContext): Promise<number>;
}

/** Commands under one name: `carrier dht get`, `carrier dht put`… */
export interface CommandGroup {
  /** What the group does, in a line. */
  summary: string;
  /** Its commands by name. */
  subcommands: Record<string, Command>;
}

/** `carrier` commands by name: a table such as `COMMANDS`. */
export type CommandTable = Record<string, Command | CommandGroup>;

/** Whether `entry` is a group of commands. */
export function isCommandGroup(entry: Command | CommandGroup): entry is CommandGroup {
  return "subcommands" in entry;
}

/** `carrier --help`: the commands of `table`. */
export function overview(table: CommandTable): string {
  const width = Math.max(...Object.keys(table).map((n) => n.length));
  return [
    "carrier: peer-to-peer networking (Ed25519 addresses, Noise, Protobuf frames)",
    "",
    "Usage: carrier <command> [options]",
    "",
    "Commands:",
    ...Object.entries(table).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `carrier help <command>` or `carrier <command> --help` for a command's options.",
  ].join("\n");
}

/** Help of a group of commands: their list. */
export function groupHelp(name: string, group: CommandGroup): string {
  const subs = Object.entries(group.subcommands);
  const width = Math.max(...subs.map(([sub]) => sub.length));
  return [
    `Usage: carrier ${name} <${Object.keys(group.subcommands).join("|")}> [options]`,
    "",
    sentence(group.summary),
    "",
    "Options:",
    ...optionLines({}),
    "",
    "Commands:",
    ...subs.map(([sub, c]) => `  ${sub.padEnd(width)}  ${c.listing ?? c.summary}`),
    "",
    `Run \`carrier help ${name} <command>\` or \`carrier ${name} <command> --help\` for a command's options.`,
  ].join("\n");
}

/** `Usage: carrier NAME SYNOPSIS`. */
export function usageLine(name: string, command: Command): string {
  return `Usage: carrier ${name} ${command.synopsis}`.trimEnd();
}

/** A command's help: its usage, summary, options and details. */
export function commandHelp(name: string, command: Command): string {
  return [
    usageLine(name, command),
    "",
    sentence(command.summary),
    "",
    "Options:",
    ...optionLines(command.options),
    ...(command.details ? ["", ...command.details()] : []),
  ].join("\n");
}
