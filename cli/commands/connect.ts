/**
 * `connect ADDRESS@HOST:PORT`: connect to a node and keep the connection.
 *
 * @module
 */
import { parsePeerAddress } from "../../mod.ts";
import { UsageError } from "../errors.ts";
import type { NodeCommand } from "../node_command.ts";

/** The node command `connect`. */
export const connectNodeCommand: NodeCommand = {
  summary: "connect to a node and keep the connection",
  synopsis: "ADDRESS@HOST:PORT",
  options: {},
  prepare(parsed) {
    if (parsed.positionals.length !== 1) throw new UsageError("expected one ADDRESS@HOST:PORT");
    const peer = parsePeerAddress(parsed.positionals[0]);
    return {
      async run(node, signal) {
        const connection = await node.connect(peer, { signal });
        return {
          fields: { address: connection.address },
          text: `connected to ${connection.address}`,
        };
      },
    };
  },
};
