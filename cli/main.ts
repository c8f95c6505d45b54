/**
 * `COMMANDS`, the table of `carrier` commands, and `main`, which runs one.
 *
 * @module
 */
import { CarrierError } from "../mod.ts";
import {
  type CliContext,
  type Command,
  commandHelp,
  type CommandTable,
  groupHelp,
  isCommandGroup,
  overview,
  usageLine,
} from "./command.ts";
import { demoCommand } from "./commands/demo.ts";
import { dhtNodeCommands } from "./commands/dht.ts";
import { helpCommand } from "./commands/help.ts";
import { idCommand } from "./commands/id.ts";
import { keygenCommand } from "./commands/keygen.ts";
import { natCommand } from "./commands/nat.ts";
import { pingCommand } from "./commands/ping.ts";
import { runCommand } from "./commands/run.ts";
import { shoutNodeCommand } from "./commands/shout.ts";
import { whisperNodeCommand } from "./commands/whisper.ts";
import { EXIT_CODES, exitCodeOf, UsageError } from "./errors.ts";
import { oneShot, oneShots } from "./one_shot.ts";
import { flagOf, type Parsed, parseWith } from "./options.ts";
import { type CliOutput, consoleOutput, Printer } from "./output.ts";

/** The `carrier` commands, in the order `carrier --help` lists them. */
const COMMANDS: CommandTable = {
  demo: demoCommand,
  keygen: keygenCommand,
  id: idCommand,
  run: runCommand,
  ping: pingCommand,
  nat: natCommand,
  shout: oneShot(
    "shout",
    shoutNodeCommand,
    "join through a bootstrap node, SHOUT TEXT to the network, leave",
  ),
  whisper: oneShot(
    "whisper",
    whisperNodeCommand,
    "join through a bootstrap node, WHISPER TEXT to the node ADDRESS, leave",
  ),
  dht: {
    summary:
      "join through a bootstrap node, use the DHT (get, put, cas, lock, unlock, patch, changes), leave",
    subcommands: oneShots("dht", dhtNodeCommands),
  },
  help: helpCommand(() => COMMANDS),
};

/**
 * Runs the command line with `args`; resolves the exit code. `carrier run`
 * reads its commands from `input` (standard input unless given).
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * Deno.exit(await main(["demo"]));
 * ```
 */
export async function main(
  args: string[],
  io: CliOutput = consoleOutput,
  input?: ReadableStream<Uint8Array>,
): Promise<number> {
  let [name, ...rest] = args;
  if (name === undefined) {
    io.err(overview(COMMANDS));
    return EXIT_CODES.USAGE;
  }
  if (name === "--help" || name === "-h") {
    io.out(overview(COMMANDS));
    return EXIT_CODES.OK;
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    io.err(`carrier: unknown command "${name}"\n\n${overview(COMMANDS)}`);
    return EXIT_CODES.USAGE;
  }
  const entry = COMMANDS[name];
  let command: Command;
  if (isCommandGroup(entry)) {
    const [sub, ...more] = rest;
    if (sub === "--help" || sub === "-h") {
      io.out(groupHelp(name, entry));
      return EXIT_CODES.OK;
    }
    if (sub === undefined || !Object.hasOwn(entry.subcommands, sub)) {
      const problem = sub === undefined ? "COMMAND is missing" : `unknown command "${name} ${sub}"`;
      io.err(`carrier ${name}: ${problem}\n\n${groupHelp(name, entry)}`);
      return EXIT_CODES.USAGE;
    }
    name = `${name} ${sub}`;
    command = entry.subcommands[sub];
    rest = more;
  } else command = entry;
  const context: CliContext = { io, input: () => input ?? Deno.stdin.readable };
  let parsed: Parsed | undefined;
  try {
    parsed = parseWith(command.options, rest);
    if (flagOf(parsed, "help")) {
      io.out(commandHelp(name, command));
      return EXIT_CODES.OK;
    }
    return await command.run(parsed, context);
  } catch (err) {
    const usage = err instanceof UsageError ? err.usage ?? usageLine(name, command) : undefined;
    if (command.jsonErrors && (parsed ? flagOf(parsed, "json") : rest.includes("--json"))) {
      new Printer(io, true).failure(name, err, usage);
    } else if (usage !== undefined) {
      io.err(
        `carrier ${name}: ${
          (err as Error).message
        }\n${usage}\nRun \`carrier help ${name}\` for its options.`,
      );
    } else {
      const prefix = err instanceof CarrierError ? `${err.name}: ` : "";
      io.err(`carrier ${name}: ${prefix}${(err as Error).message}`);
    }
    return exitCodeOf(err);
  }
}
