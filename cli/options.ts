/**
 * Options and arguments: one table per command declares each flag once (its
 * type, default and help line), and both the `parseArgs` configuration and
 * the option lines of `--help` are generated from it.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { DEFAULT_PUZZLE_DIFFICULTY, parseAddress } from "../mod.ts";
import { UsageError } from "./errors.ts";

/** One option: how `parseArgs` reads it and how `--help` shows it. */
export interface OptionSpec {
  /** What `parseArgs` reads: a value, or a flag. */
  type: "string" | "boolean";
  /** A one-letter alias, `-k` for `--key`. */
  short?: string;
  /** Repeatable: its values are a list. */
  multiple?: boolean;
  /** The value's name in help, e.g. `HOST:PORT`. */
  value?: string;
  /** Its line in `--help`, before the default. */
  help: string;
  /**
   * The value when the option is absent: `parseArgs` fills it in, and
   * `--help` shows it as `[default: …]`.
   */
  default?: string;
  /**
   * What applies when the option is absent where the command line fills in
   * no value (the library's default, or a behaviour such as "a fresh
   * identity"): `--help` shows it as `[default: …]`.
   */
  otherwise?: string;
}

/** A command's options by name (without the leading `--`). */
export type OptionSpecs = Record<string, OptionSpec>;

/** Flags and positionals as `parseArgs` returned them. */
export interface Parsed {
  /** The options, defaults filled in. */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  /** The arguments that are not options, in order. */
  positionals: string[];
}

/** `--help`, which every command has. */
const HELP_OPTION: OptionSpecs = {
  help: { type: "boolean", short: "h", help: "show this help" },
};

/** `--key FILE` of the commands that run a node. */
export const KEY_OPTION: OptionSpec = {
  type: "string",
  short: "k",
  value: "FILE",
  help: "key file; created (mode 0600) if missing",
  otherwise: "a fresh identity",
};

/** `--difficulty N` of the commands that run a node. */
export const DIFFICULTY_OPTION: OptionSpec = {
  type: "string",
  value: "N",
  help: "puzzle difficulty of a new key, required of peers",
  default: String(DEFAULT_PUZZLE_DIFFICULTY),
};

/** `--json` of the commands that print results. */
export const JSON_OPTION: OptionSpec = { type: "boolean", help: "print one JSON object per line" };

/** `--topic T` of the messaging commands. */
export const TOPIC_OPTION: OptionSpec = {
  type: "string",
  value: "T",
  help: "the message's topic",
  default: "",
};

/** Parses `args` against `options` (and `--help`); parse failures become usage errors. */
export function parseWith(options: OptionSpecs, args: string[]): Parsed {
  const config: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean; default?: string }
  > = {};
  for (const [name, o] of Object.entries({ ...options, ...HELP_OPTION })) {
    config[name] = { type: o.type };
    if (o.short !== undefined) config[name].short = o.short;
    if (o.multiple) config[name].multiple = true;
    if (o.default !== undefined) config[name].default = o.default;
  }
  try {
    const { values, positionals } = parseArgs({
      args,
      options: config,
      strict: true,
      allowPositionals: true,
    });
    return { values, positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** The option lines of `--help`, aligned. */
export function optionLines(options: OptionSpecs): string[] {
  const entries = Object.entries({ ...options, ...HELP_OPTION });
  const left = entries.map(([name, o]) =>
    `${o.short ? `-${o.short}, ` : "    "}--${name}${o.value ? ` ${o.value}` : ""}`
  );
  const width = Math.max(...left.map((l) => l.length));
  return entries.map(([, o], i) => {
    const fallback = o.default === "" ? '""' : o.default ?? o.otherwise;
    const help = fallback === undefined ? o.help : `${o.help} [default: ${fallback}]`;
    return `  ${left[i].padEnd(width)}  ${help}`;
  });
}

/** A string option's value, if given (or its default). */
export function stringOf(parsed: Parsed, name: string): string | undefined {
  const value = parsed.values[name];
  return typeof value === "string" ? value : undefined;
}

/** A string option that has a `default` in its table: its value, never missing. */
export function defaultedString(parsed: Parsed, name: string): string {
  const value = stringOf(parsed, name);
  if (value === undefined) throw new Error(`--${name} has no default in its option table`);
  return value;
}

/** A repeatable string option's values. */
export function stringsOf(parsed: Parsed, name: string): string[] {
  const value = parsed.values[name];
  return Array.isArray(value) ? value.map(String) : typeof value === "string" ? [value] : [];
}

/** Whether a boolean option is given. */
export function flagOf(parsed: Parsed, name: string): boolean {
  return parsed.values[name] === true;
}

/** `text` as the value of `--NAME`: a usage error unless it is an integer >= `min`. */
function parseInteger(name: string, text: string, min: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n < min) {
    const wanted = min === 0 ? "a non-negative integer" : `an integer >= ${min}`;
    throw new UsageError(`--${name} must be ${wanted}, got "${text}"`);
  }
  return n;
}

/** An integer option's value, if given: a usage error unless it is an integer >= `min`. */
export function optionalInteger(parsed: Parsed, name: string, min = 0): number | undefined {
  const text = stringOf(parsed, name);
  return text === undefined ? undefined : parseInteger(name, text, min);
}

/** An integer option that has a `default` in its table: its value (an integer >= `min`). */
export function defaultedInteger(parsed: Parsed, name: string, min = 0): number {
  return parseInteger(name, defaultedString(parsed, name), min);
}

/** Throws a usage error if there are positionals. */
export function noPositionals(parsed: Parsed): void {
  if (parsed.positionals.length > 0) {
    throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
  }
}

/** The positionals from `from` on, joined by spaces: a message's text. */
export function textOf(parsed: Parsed, from = 0, what = "TEXT"): string {
  if (parsed.positionals.length <= from) throw new UsageError(`${what} is missing`);
  return parsed.positionals.slice(from).join(" ");
}

/** The positional at `index`, an address (base58); a malformed one is an `AddressError`. */
export function addressOf(parsed: Parsed, index: number): string {
  const address = parsed.positionals[index];
  if (address === undefined) throw new UsageError("ADDRESS is missing");
  parseAddress(address);
  return address;
}

/** The KEY positional (text, hashed by the DHT); `count`: the exact number of positionals. */
export function keyOf(parsed: Parsed, count?: number): string {
  const key = parsed.positionals[0];
  if (key === undefined) throw new UsageError("KEY is missing");
  if (count !== undefined && parsed.positionals.length > count) {
    throw new UsageError(`unexpected argument "${parsed.positionals[count]}"`);
  }
  return key;
}

/** A summary as a sentence: capitalized, with a full stop. */
export function sentence(summary: string): string {
  return `${summary[0].toUpperCase()}${summary.slice(1)}.`;
}

/** `text` broken into lines of at most `width` characters. */
export function wrap(text: string, width = 88): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}
