/**
 * The one-shot commands: `carrier NAME --bootstrap PEER ...` runs the node
 * command NAME once on a short-lived, outbound-only node.
 *
 * @module
 */
import {
  createNode,
  type Node,
  nodeIdOf,
  parseAddress,
  parsePeerAddress,
  TimeoutError,
} from "../mod.ts";
import type { CliContext, Command } from "./command.ts";
import { EXIT_CODES, UsageError } from "./errors.ts";
import { identityFor } from "./identity.ts";
import type { NodeCommand, NodeCommandGroup, Outcome } from "./node_command.ts";
import {
  defaultedInteger,
  DIFFICULTY_OPTION,
  flagOf,
  JSON_OPTION,
  KEY_OPTION,
  type OptionSpecs,
  type Parsed,
  stringOf,
  stringsOf,
  wrap,
} from "./options.ts";
import { Printer } from "./output.ts";

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
export function oneShot(name: string, command: NodeCommand, summary: string): Command {
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

/** The node commands of `group` (`dht`) as one-shots: `carrier dht get --bootstrap PEER KEY`… */
export function oneShots(name: string, group: NodeCommandGroup): Record<string, Command> {
  const commands: Record<string, Command> = {};
  for (const [sub, command] of Object.entries(group.subcommands)) {
    const summary = `join through a bootstrap node, ${command.summary}, leave`;
    commands[sub] = { ...oneShot(`${name} ${sub}`, command, summary), listing: command.summary };
  }
  return commands;
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
  const timeout = defaultedInteger(parsed, "timeout", 1);
  const difficulty = defaultedInteger(parsed, "difficulty");
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
        await node.findClosest(target, { signal: deadline.signal });
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
