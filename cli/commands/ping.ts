/**
 * `ping ADDRESS`: PING a direct peer.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import type { NodeCommand } from "../node_command.ts";
import { addressOf } from "../options.ts";

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
