/**
 * `ping`: as a line of `carrier run`'s input, PING a direct peer; as
 * `carrier ping ADDRESS@HOST:PORT`, connect to a node and PING it.
 *
 * @module
 */
import { createNode, type Node } from "../../mod.ts";
import type { Command } from "../command.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
import { identityFor } from "../identity.ts";
import type { NodeCommand } from "../node_command.ts";
import {
  addressOf,
  defaultedInteger,
  DIFFICULTY_OPTION,
  flagOf,
  JSON_OPTION,
  KEY_OPTION,
  stringOf,
} from "../options.ts";

/** The node command `ping`. */
export const pingNodeCommand: NodeCommand = {
  summary: "PING a direct peer and print the round-trip time",
  synopsis: "ADDRESS",
  options: {},
  prepare(parsed) {
    const address = addressOf(parsed, 0);
    if (parsed.positionals.length > 1) {
      throw new UsageError(`unexpected argument "${parsed.positionals[1]}"`);
    }
    return {
      async run(node, signal) {
        const rtt = await node.ping(address, { signal });
        return {
          fields: { address, rtt_ms: rtt },
          text: `pong from ${address}: rtt ${rtt.toFixed(3)} ms`,
        };
      },
    };
  },
};

/** The command `carrier ping`. */
export const pingCommand: Command = {
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
  async run(parsed, { io }) {
    if (parsed.positionals.length !== 1) throw new UsageError("expected one ADDRESS@HOST:PORT");
    const count = defaultedInteger(parsed, "count");
    const timeout = defaultedInteger(parsed, "timeout", 1);
    const difficulty = defaultedInteger(parsed, "difficulty");
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
  },
};
