#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net
/**
 * The `carrier` command line. Imports only `mod.ts`.
 *
 *   carrier demo                                    what carrier does, on this machine
 *   carrier keygen --out FILE                       make a key file (mode 0600)
 *   carrier id --key FILE                           print a key file's address and NodeId
 *   carrier run --listen HOST:PORT                  run a node; commands on standard input
 *   carrier ping ADDRESS@HOST:PORT                  measure the round-trip time to a node
 *   carrier shout --bootstrap PEER TEXT             join, SHOUT to the network, leave
 *   carrier whisper --bootstrap PEER ADDRESS TEXT   join, WHISPER to one node, leave
 *   carrier dht get --bootstrap PEER KEY            join, act on the DHT (get, put, cas,
 *                                                   lock, unlock, patch, changes), leave
 *   carrier help [COMMAND]                          a command's options
 *
 * `carrier run` reads commands from standard input, one per line (`help`
 * lists them): the table `NODE_COMMANDS`. The one-shot commands (`shout`,
 * `whisper`, `dht …`) run an entry of that same table on a short-lived
 * outbound-only node.
 *
 * Exit codes: see {@linkcode EXIT_CODES}.
 *
 * @module
 */
import {
  CarrierError,
  createNode,
  DEFAULT_PUZZLE_DIFFICULTY,
  generateIdentity,
  type Identity,
  KeyFileError,
  loadKeyFile,
  type Node,
  nodeIdOf,
  Opcode,
  parseAddress,
  parsePeerAddress,
  puzzleWork,
  saveKeyFile,
  TimeoutError,
} from "./mod.ts";
import {
  type CliContext,
  type Command,
  type CommandGroup,
  commandHelp,
  groupHelp,
  isCommandGroup,
  overview,
  usageLine,
} from "./cli/command.ts";
import { EXIT_CODES, exitCodeOf, UsageError } from "./cli/errors.ts";
import {
  type NodeCommand,
  type NodeCommandGroup,
  nodeCommandsHelp,
  type Outcome,
} from "./cli/node_command.ts";
import {
  DIFFICULTY_OPTION,
  flagOf,
  integerOf,
  JSON_OPTION,
  KEY_OPTION,
  noPositionals,
  type OptionSpecs,
  type Parsed,
  parseWith,
  stringOf,
  stringsOf,
  wrap,
} from "./cli/options.ts";
import {
  bytesFields,
  type CliOutput,
  consoleOutput,
  hex,
  opcodeName,
  Printer,
  shown,
} from "./cli/output.ts";

import { NODE_COMMANDS } from "./cli/node_commands.ts";
import { serveCommands } from "./cli/repl.ts";
import { demoCommand } from "./cli/commands/demo.ts";
import { defaultBudgetText } from "./cli/commands/limits.ts";

export { EXIT_CODES } from "./cli/errors.ts";
export type { CliOutput } from "./cli/output.ts";

// ---- output of `carrier run` and the one-shots ----

// ---- the `carrier` commands ----

/** The options every one-shot command adds to its node command's. */
const ONE_SHOT_OPTIONS: OptionSpecs = {
  bootstrap: {
    type: "string",
    short: "b",
    multiple: true,
    value: "ADDRESS@HOST:PORT",
    help: "join through this node (required; repeatable)",
  },
  key: KEY_OPTION,
  difficulty: DIFFICULTY_OPTION,
  timeout: {
    type: "string",
    short: "t",
    value: "MS",
    help: "give up after this long, exit code 6",
    default: "10000",
  },
  json: JSON_OPTION,
};

/** What a one-shot command's exit codes mean, where they differ from or add to `ONE_SHOT_EXIT_CODES`. */
const ONE_SHOT_EXITS: Record<string, Record<number, string>> = {
  "dht get": { 1: "no value under KEY (found: false), or another failure" },
  "dht put": { 8: "the replicas hold a newer version than --version" },
  "dht cas": { 8: "KEY is not at version --expect (the compare-and-swap lost)" },
  "dht patch": { 8: "KEY is not at version --base" },
  "dht lock": { 9: "another node holds the lock" },
  "dht unlock": {
    9: "another node holds the lock (it was taken with another --key, or lapsed and was taken again)",
  },
};

/** What every one-shot command's exit codes mean. */
const ONE_SHOT_EXIT_CODES: Record<number, string> = {
  [EXIT_CODES.OK]: "done",
  [EXIT_CODES.FAILURE]: "failure",
  [EXIT_CODES.USAGE]: "usage",
  [EXIT_CODES.BAD_KEY_FILE]: "bad key file",
  [EXIT_CODES.BAD_ADDRESS]: "bad address",
  [EXIT_CODES.UNREACHABLE]: "bootstrap unreachable",
  [EXIT_CODES.TIMEOUT]: "timeout",
  [EXIT_CODES.IDENTITY_MISMATCH]: "the bootstrap node proved another identity",
};

/** `carrier NAME --bootstrap PEER ...`: the node command NAME on a short-lived node. */
function oneShot(name: string, command: NodeCommand, summary: string): Command {
  const first = name.startsWith("dht ")
    ? "looks up KEY's replicas"
    : name === "whisper"
    ? "looks up the recipient's neighbourhood"
    : "looks up its neighbourhood";
  const exits = Object.entries({
    ...ONE_SHOT_EXIT_CODES,
    ...(name === "whisper"
      ? { [EXIT_CODES.UNREACHABLE]: "bootstrap or recipient unreachable" }
      : {}),
    ...ONE_SHOT_EXITS[name],
  }).map(([code, meaning]) => `${code} ${meaning}`);
  return {
    summary,
    synopsis:
      `--bootstrap ADDRESS@HOST:PORT [--key FILE] [--difficulty N] [--timeout MS] [--json] ${
        (command.oneShotSynopsis ?? command.synopsis).replace("ADDRESS|--all", "ADDRESS")
      }`,
    options: { ...command.options, ...ONE_SHOT_OPTIONS },
    details: () => [
      ...wrap(
        `The node dials out only and uses a fresh identity unless --key is given. It connects to the bootstrap node, ${first}, acts and leaves.`,
      ),
      ...wrap(`Exit codes: ${exits.join(", ")}.`),
      ...wrap(
        'With --json the result is one line {"command":"' + name +
          '","ok":true,...} and a failure one line {"command":"' + name +
          '","ok":false,"error":{"name","message",...}} on standard output, as `carrier run --json` prints them.',
      ),
    ],
    jsonErrors: true,
    run: (parsed, context) => runOneShot(name, command, parsed, context),
  };
}

/** The `dht` node commands as one-shots: `carrier dht get --bootstrap PEER KEY`… */
function dhtOneShots(): Record<string, Command> {
  const group = NODE_COMMANDS.dht as NodeCommandGroup;
  const commands: Record<string, Command> = {};
  for (const [sub, command] of Object.entries(group.subcommands)) {
    const summary = `join through a bootstrap node, ${command.summary}, leave`;
    commands[sub] = { ...oneShot(`dht ${sub}`, command, summary), listing: command.summary };
  }
  return commands;
}

const COMMANDS: Record<string, Command | CommandGroup> = {
  demo: demoCommand,
  keygen: {
    summary: "generate an identity and write it to a key file (mode 0600)",
    synopsis: "--out FILE [--difficulty N] [--force]",
    options: {
      out: { type: "string", short: "o", value: "FILE", help: "the key file to write (required)" },
      difficulty: {
        type: "string",
        value: "N",
        help: "static puzzle difficulty the key must pass",
        default: String(DEFAULT_PUZZLE_DIFFICULTY),
      },
      force: { type: "boolean", help: "overwrite an existing file" },
    },
    run: runKeygen,
  },
  id: {
    summary: "print the address and NodeId of a key file",
    synopsis: "--key FILE [--json]",
    options: {
      key: { type: "string", short: "k", value: "FILE", help: "the key file to read (required)" },
      json: JSON_OPTION,
    },
    run: runId,
  },
  run: {
    summary: "run a node, reading commands from standard input until `quit` or its end",
    synopsis:
      "[--listen HOST:PORT]... [--no-listen] [--bootstrap ADDRESS@HOST:PORT]... [--key FILE] [--difficulty N] [--serve-metrics] [--no-stdin] [--json]",
    options: {
      listen: {
        type: "string",
        short: "l",
        multiple: true,
        value: "HOST:PORT",
        help: "accept connections here (repeatable)",
        otherwise: "0.0.0.0:0",
      },
      "no-listen": { type: "boolean", help: "accept no connections: dial out only" },
      bootstrap: {
        type: "string",
        short: "b",
        multiple: true,
        value: "ADDRESS@HOST:PORT",
        help: "connect to this node and keep the connection (repeatable)",
      },
      key: KEY_OPTION,
      difficulty: DIFFICULTY_OPTION,
      "serve-metrics": { type: "boolean", help: "answer peers' METRICS requests" },
      "no-stdin": {
        type: "boolean",
        help: "read no commands: run until SIGINT or SIGTERM (for services)",
      },
      json: JSON_OPTION,
    },
    details: () => [
      "Commands on standard input, one per line. A word that starts with ' or \" runs to the",
      "matching quote: quote text whose spaces matter, and JSON with spaces, that way.",
      ...nodeCommandsHelp(NODE_COMMANDS),
      "`COMMAND --help` shows a command's options. `quit`, the end of input, SIGINT and SIGTERM",
      "close the node.",
      "",
      "Output: events (connections, messages received) and command results, as text; with",
      '--json one object per line: {"event":"listening"|"peer:connect"|"peer:disconnect"|',
      '"shout"|"speak"|"whisper"|"message"|"error"|"closed",...} for events and',
      '{"command":NAME,"ok":true,...} or {"command":NAME,"ok":false,"error":{"name","message",...}}',
      "for command results. Errors in text mode go to standard error.",
      "",
      "Resource budget with the default options (what peers can make the node hold; `limits`",
      "prints the running node's):",
      ...defaultBudgetText(),
    ],
    run: runNode,
  },
  ping: {
    summary: "connect to a node and print the round-trip time",
    synopsis: "ADDRESS@HOST:PORT [--count N] [--timeout MS] [--key FILE] [--difficulty N] [--json]",
    options: {
      count: { type: "string", short: "c", value: "N", help: "PINGs to send", default: "1" },
      timeout: {
        type: "string",
        short: "t",
        value: "MS",
        help: "time for the connection and each reply, exit code 6",
        default: "5000",
      },
      key: KEY_OPTION,
      difficulty: DIFFICULTY_OPTION,
      json: JSON_OPTION,
    },
    run: runPing,
  },
  shout: oneShot(
    "shout",
    NODE_COMMANDS.shout as NodeCommand,
    "join through a bootstrap node, SHOUT TEXT to the network, leave",
  ),
  whisper: oneShot(
    "whisper",
    NODE_COMMANDS.whisper as NodeCommand,
    "join through a bootstrap node, WHISPER TEXT to the node ADDRESS, leave",
  ),
  dht: {
    summary:
      "join through a bootstrap node, use the DHT (get, put, cas, lock, unlock, patch, changes), leave",
    subcommands: dhtOneShots(),
  },
  help: {
    summary: "list the commands, or show one command's options",
    synopsis: "[COMMAND [SUBCOMMAND]]",
    options: {},
    run(parsed, { io }) {
      const [name, sub, extra] = parsed.positionals;
      if (name === undefined) {
        io.out(overview(COMMANDS));
        return Promise.resolve(EXIT_CODES.OK);
      }
      if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`);
      const entry = COMMANDS[name];
      if (!isCommandGroup(entry) || sub === undefined) {
        const unexpected = isCommandGroup(entry) ? extra : sub;
        if (unexpected !== undefined) throw new UsageError(`unexpected argument "${unexpected}"`);
        io.out(isCommandGroup(entry) ? groupHelp(name, entry) : commandHelp(name, entry));
        return Promise.resolve(EXIT_CODES.OK);
      }
      if (!Object.hasOwn(entry.subcommands, sub)) {
        throw new UsageError(`unknown command "${name} ${sub}"`);
      }
      if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
      io.out(commandHelp(`${name} ${sub}`, entry.subcommands[sub]));
      return Promise.resolve(EXIT_CODES.OK);
    },
  },
};

async function runKeygen(parsed: Parsed, { io }: CliContext): Promise<number> {
  noPositionals(parsed);
  const out = stringOf(parsed, "out");
  if (!out) throw new UsageError("--out FILE is required");
  const difficulty = integerOf(parsed, "difficulty");
  const identity = await generateIdentity({ difficulty });
  await saveKeyFile(out, identity, { overwrite: flagOf(parsed, "force") });
  io.out(identity.address);
  return EXIT_CODES.OK;
}

async function runId(parsed: Parsed, { io }: CliContext): Promise<number> {
  noPositionals(parsed);
  const key = stringOf(parsed, "key");
  if (!key) throw new UsageError("--key FILE is required");
  const identity = await loadKeyFile(key);
  const info = {
    address: identity.address,
    nodeId: hex(identity.nodeId),
    puzzleBits: puzzleWork(identity.publicKey),
  };
  if (flagOf(parsed, "json")) io.out(JSON.stringify(info));
  else {
    io.out(`address  ${info.address}`);
    io.out(`node id  ${info.nodeId}`);
    io.out(`puzzle   ${info.puzzleBits} leading zero bits`);
  }
  return EXIT_CODES.OK;
}

/** Loads `--key FILE`, creating it (mode 0600) if it does not exist; else a fresh identity. */
async function identityFor(
  keyFile: string | undefined,
  difficulty: number,
  io: CliOutput,
  json: boolean,
): Promise<Identity> {
  if (keyFile === undefined) return await generateIdentity({ difficulty });
  try {
    return await loadKeyFile(keyFile);
  } catch (err) {
    if (!(err instanceof KeyFileError && err.cause instanceof Deno.errors.NotFound)) throw err;
  }
  const identity = await generateIdentity({ difficulty });
  await saveKeyFile(keyFile, identity);
  if (json) io.out(JSON.stringify({ event: "keygen", address: identity.address, key: keyFile }));
  else io.err(`created key file ${keyFile} for ${identity.address}`);
  return identity;
}

async function runNode(parsed: Parsed, { io, input }: CliContext): Promise<number> {
  noPositionals(parsed);
  const json = flagOf(parsed, "json");
  const difficulty = integerOf(parsed, "difficulty");
  const listenFlags = stringsOf(parsed, "listen");
  if (flagOf(parsed, "no-listen") && listenFlags.length > 0) {
    throw new UsageError("--listen and --no-listen exclude each other");
  }
  const bootstrap = stringsOf(parsed, "bootstrap");
  for (const peer of bootstrap) parsePeerAddress(peer); // a malformed one: exit code 4
  const listen = flagOf(parsed, "no-listen")
    ? []
    : (listenFlags.length > 0 ? listenFlags : ["0.0.0.0:0"]);
  const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
  const node = await createNode({
    identity,
    listen,
    bootstrap,
    puzzleDifficulty: difficulty,
    serveMetrics: flagOf(parsed, "serve-metrics"),
  });
  const printer = new Printer(io, json);
  printer.event(
    "listening",
    { address: node.address, listen: node.listenAddrs },
    node.listenAddrs.length > 0
      ? `listening as ${node.address} on ${node.listenAddrs.join(", ")}`
      : `running as ${node.address} (outbound only)`,
  );
  node.addEventListener(
    "peer:connect",
    (e) =>
      printer.event("peer:connect", { address: e.detail.address }, `connected ${e.detail.address}`),
  );
  node.addEventListener("peer:disconnect", (e) =>
    printer.event(
      "peer:disconnect",
      { address: e.detail.address, reason: e.detail.info?.error?.message ?? "" },
      `disconnected ${e.detail.address}`,
    ));
  node.addEventListener("message", (e) => {
    const { name, fields, human } = describeMessage(e.detail);
    printer.event(name, fields, human);
  });
  node.addEventListener("error", (e) =>
    printer.event(
      "error",
      { source: e.detail.source, error: e.detail.error.message },
      `error (${e.detail.source}): ${e.detail.error.message}`,
    ));

  const stop = new AbortController();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const onSignal = () => stop.abort(new CarrierError("Interrupted"));
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  const stopped = new Promise<void>((resolve) =>
    stop.signal.addEventListener("abort", () => resolve(), { once: true })
  );
  try {
    if (flagOf(parsed, "no-stdin")) await stopped;
    else await Promise.race([serveCommands(input(), node, printer, stop.signal), stopped]);
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
    stop.abort();
    await node.close();
    printer.event("closed", {}, "closed");
  }
  return EXIT_CODES.OK;
}

/** A `message` event as printed: `shout`, `speak`, `whisper`, or `message` for other opcodes. */
function describeMessage(
  detail: {
    from: string;
    opcode: number;
    topic: string;
    body: Uint8Array;
    hops?: number;
    encrypted?: boolean;
  },
): { name: string; fields: Record<string, unknown>; human: string } {
  const { from, opcode, topic, body, hops, encrypted } = detail;
  const content = bytesFields("body", body);
  const text = shown(content);
  const onTopic = topic ? ` on "${topic}"` : "";
  switch (opcode) {
    case Opcode.SHOUT:
      return {
        name: "shout",
        fields: { from, topic, ...content, hops },
        human: `shout from ${from}${onTopic} (${hops ?? 0} hops): ${text}`,
      };
    case Opcode.SPEAK:
      return {
        name: "speak",
        fields: { from, topic, ...content },
        human: `speak from ${from}${onTopic}: ${text}`,
      };
    case Opcode.WHISPER:
      return {
        name: "whisper",
        fields: { from, topic, ...content, encrypted: encrypted === true },
        human: `whisper from ${from}${onTopic} (${encrypted ? "sealed" : "in the clear"}): ${text}`,
      };
    default:
      return {
        name: "message",
        fields: { from, opcode, topic, ...content },
        human: `message ${opcodeName(opcode)} from ${from}: ${text}`,
      };
  }
}

/**
 * A one-shot command: an outbound-only node joins through `--bootstrap`,
 * looks up its neighbourhood (or the node the command addresses), runs the
 * node command `name` once, prints its result and closes.
 */
async function runOneShot(
  name: string,
  command: NodeCommand,
  parsed: Parsed,
  { io }: CliContext,
): Promise<number> {
  const action = command.prepare(parsed, "one-shot");
  const bootstraps = stringsOf(parsed, "bootstrap");
  if (bootstraps.length === 0) throw new UsageError("--bootstrap ADDRESS@HOST:PORT is required");
  const peers = bootstraps.map((b) => parsePeerAddress(b));
  const timeout = integerOf(parsed, "timeout", 1);
  const difficulty = integerOf(parsed, "difficulty");
  const json = flagOf(parsed, "json");
  const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new TimeoutError(`carrier ${name} did not finish within ${timeout} ms (--timeout)`),
      ),
    timeout,
  );
  let node: Node | undefined;
  try {
    node = await createNode({
      identity,
      listen: [],
      puzzleDifficulty: difficulty,
      dialTimeout: timeout,
      handshakeTimeout: timeout,
    });
    const joining = node;
    const joined = await Promise.allSettled(
      peers.map((peer) => joining.connect(peer, { signal: deadline.signal })),
    );
    const failed = joined.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed && joined.every((r) => r.status === "rejected")) {
      throw deadline.signal.aborted ? deadline.signal.reason : failed.reason;
    }
    // Fill the routing table: around the recipient (a route to it), else
    // around this node's own id, as a joining node does (the SHOUT's tree).
    // The bootstrap node is a route on its own, so a failed lookup is not
    // fatal; a timeout is.
    // (A DHT command looks up its key itself.)
    if (!action.routesItself) {
      const target = action.reach ? nodeIdOf(parseAddress(action.reach)) : node.identity.nodeId;
      try {
        await node.lookup(target, { signal: deadline.signal });
      } catch {
        if (deadline.signal.aborted) throw deadline.signal.reason;
      }
    }
    let outcome: Outcome;
    try {
      outcome = await action.run(node, deadline.signal);
    } catch (err) {
      throw deadline.signal.aborted ? deadline.signal.reason : err;
    }
    new Printer(io, json).result(name, outcome);
    return outcome.exitCode ?? EXIT_CODES.OK;
  } finally {
    clearTimeout(timer);
    await node?.close();
  }
}

async function runPing(parsed: Parsed, { io }: CliContext): Promise<number> {
  if (parsed.positionals.length !== 1) throw new UsageError("expected one ADDRESS@HOST:PORT");
  const count = integerOf(parsed, "count");
  const timeout = integerOf(parsed, "timeout", 1);
  const difficulty = integerOf(parsed, "difficulty");
  const json = flagOf(parsed, "json");
  const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
  let node: Node | undefined;
  try {
    node = await createNode({
      identity,
      puzzleDifficulty: difficulty,
      dialTimeout: timeout,
      handshakeTimeout: timeout,
    });
    const peer = await node.connect(parsed.positionals[0]);
    for (let i = 0; i < count; i++) {
      const rtt = await node.ping(peer.address, { timeout });
      io.out(
        json
          ? JSON.stringify({ event: "pong", address: peer.address, rtt_ms: rtt })
          : `pong from ${peer.address}: rtt ${rtt.toFixed(3)} ms`,
      );
    }
  } finally {
    await node?.close();
  }
  return EXIT_CODES.OK;
}

/**
 * Runs the command line with `args`; resolves the exit code. `carrier run`
 * reads its commands from `input` (standard input unless given).
 *
 * @example
 * ```ts ignore
 * import {
  main,
} from "./cli.ts";
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

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
