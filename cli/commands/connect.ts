/**
 * `connect ADDRESS@HOST:PORT` or `connect ADDRESS`: connect to a node (by its
 * key alone: found in the DHT, reached directly or through a relay) and keep
 * the connection.
 *
 * @module
 */
import { parseAddress, parsePeerAddress } from "../../mod.ts";
import { UsageError } from "../errors.ts";
import type { NodeCommand } from "../node_command.ts";

/** The node command `connect`. */
export const connectNodeCommand: NodeCommand = {
  summary: "connect to a node and keep the connection",
  synopsis: "ADDRESS@HOST:PORT | ADDRESS",
  options: {},
  prepare(parsed) {
    if (parsed.positionals.length !== 1) {
      throw new UsageError("expected one ADDRESS@HOST:PORT or ADDRESS");
    }
    const text = parsed.positionals[0];
    const peer = text.includes("@") ? parsePeerAddress(text) : (parseAddress(text), text);
    return {
      async run(node, signal) {
        const connection = await node.connect(peer, { signal });
        const relay = connection.channel.stream.relay;
        return {
          fields: { address: connection.address, relay: relay ?? null },
          text: `connected to ${connection.address}${relay ? ` through the relay ${relay}` : ""}`,
        };
      },
    };
  },
};
