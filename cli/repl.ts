/**
 * `carrier run`'s standard input: a stream of lines, each a command of
 * `NODE_COMMANDS` in words split at whitespace (a quoted word keeps its
 * spaces).
 *
 * @module
 */
import type { Node } from "../mod.ts";
import { UsageError } from "./errors.ts";
import { type NodeCommand, nodeCommandHelp, resolveNodeCommand } from "./node_command.ts";
import { NODE_COMMANDS } from "./node_commands.ts";
import { flagOf, parseWith } from "./options.ts";
import type { Printer } from "./output.ts";

/** The longest command line `carrier run` reads (a value or text of up to about 1 MiB). */
const MAX_COMMAND_LINE = 1 << 20;

/**
 * Splits a command line into words at whitespace. A word that starts with
 * `"` or `'` runs to the matching quote (spaces kept; `\"` and `\\` escape
 * inside `"…"`); any other word is literal, so `it's` and `{"n":1}` need no
 * quoting.
 */
function tokenize(line: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < line.length) {
    if (/\s/.test(line[i])) {
      i++;
      continue;
    }
    let word = "";
    const quote = line[i];
    if (quote === '"' || quote === "'") {
      for (i++;; i++) {
        if (i >= line.length) throw new UsageError(`unterminated ${quote} quote`);
        const c = line[i];
        if (c === quote) break;
        if (c === "\\" && quote === '"' && (line[i + 1] === '"' || line[i + 1] === "\\")) {
          word += line[++i];
        } else word += c;
      }
      i++;
    }
    while (i < line.length && !/\s/.test(line[i])) word += line[i++];
    tokens.push(word);
  }
  return tokens;
}

/** A line of input: a whole one, or (`overlong`) the start of one too long to read. */
interface InputLine {
  text: string;
  overlong?: true;
}

/**
 * Splits text into lines at `\n` (dropping a trailing `\r`). A line still
 * unfinished past `maxLength` characters comes out as its start, marked
 * `overlong`, and the rest of it is dropped; the last line needs no `\n`.
 */
class LineSplitter extends TransformStream<string, InputLine> {
  constructor(maxLength: number) {
    let buffer = "";
    let skipping = false; // the rest of an overlong line
    super({
      transform(chunk, controller) {
        const lines = (buffer + chunk).split("\n");
        buffer = lines.pop()!;
        if (skipping && lines.length > 0) {
          lines.shift();
          skipping = false;
        }
        for (const line of lines) controller.enqueue({ text: line.replace(/\r$/, "") });
        if (buffer.length > maxLength) {
          controller.enqueue({ text: buffer, overlong: true });
          buffer = "";
          skipping = true;
        }
      },
      flush(controller) {
        if (!skipping && buffer !== "") controller.enqueue({ text: buffer.replace(/\r$/, "") });
      },
    });
  }
}

/**
 * Runs one line of `carrier run`'s standard input and prints its result or
 * its error; resolves `true` when the session should end. Never throws: a
 * bad line is reported and the node keeps running.
 */
async function runLine(
  node: Node,
  line: string,
  printer: Printer,
  signal: AbortSignal,
): Promise<boolean> {
  const trimmed = line.trim();
  if (trimmed === "" || trimmed.startsWith("#")) return false;
  let name = trimmed.split(/\s+/, 1)[0];
  let command: NodeCommand | undefined;
  try {
    const resolved = resolveNodeCommand(NODE_COMMANDS, tokenize(trimmed));
    name = resolved.name;
    command = resolved.command;
    const parsed = parseWith(command.options, resolved.args);
    if (flagOf(parsed, "help")) {
      const help = nodeCommandHelp(name, command);
      printer.result(name, { fields: { name, help }, text: help });
      return false;
    }
    const outcome = await command.prepare(parsed, "line").run(node, signal);
    printer.result(name, outcome);
    return outcome.quit === true;
  } catch (err) {
    const usage = err instanceof UsageError
      ? err.usage ?? (command ? `${name} ${command.synopsis}`.trimEnd() : undefined)
      : undefined;
    printer.failure(name, err, usage);
    return false;
  }
}

/** Reads commands from `input` line by line until `quit`, its end, or `signal`. */
export async function serveCommands(
  input: ReadableStream<Uint8Array>,
  node: Node,
  printer: Printer,
  signal: AbortSignal,
): Promise<void> {
  const reader = input
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new LineSplitter(MAX_COMMAND_LINE))
    .getReader();
  const cancel = () => void reader.cancel().catch(() => {});
  signal.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { value: line, done } = await reader.read();
      if (done || signal.aborted) return;
      if (line.overlong) {
        printer.failure(
          line.text.trim().split(/\s+/, 1)[0],
          new UsageError(`line longer than ${MAX_COMMAND_LINE} characters: ignored`),
        );
      } else if (await runLine(node, line.text, printer, signal)) return;
    }
  } finally {
    signal.removeEventListener("abort", cancel);
    cancel();
  }
}
