/**
 * `peers`: list the open connections.
 *
 * @module
 */
import type { NodeCommand } from "../node_command.ts";
import { noPositionals } from "../options.ts";

/** The node command `peers`. */
export const peersNodeCommand: NodeCommand = {
  summary: "list the open connections",
  synopsis: "",
  options: {},
  prepare(parsed) {
    noPositionals(parsed);
    return {
      run(node) {
        const peers = node.peers().map((p) => ({
          address: p.address,
          direction: p.channel.initiator ? "outbound" : "inbound",
          listen: p.channel.remote.listenAddrs,
          rtt_ms: p.counters.rtt,
        }));
        const contacts = node.routingTable.size;
        const width = Math.max(0, ...peers.map((p) => p.listen.join(",").length));
        const lines = [
          `${peers.length} ${peers.length === 1 ? "peer" : "peers"}, ${contacts} routing-table ${
            contacts === 1 ? "contact" : "contacts"
          }`,
          ...peers.map((p) =>
            `  ${p.address}  ${p.direction.padEnd(8)}  ${
              (p.listen.join(",") || "-").padEnd(width)
            }  rtt ${p.rtt_ms.toFixed(3)} ms`
          ),
        ];
        return Promise.resolve({ fields: { peers, contacts }, text: lines.join("\n") });
      },
    };
  },
};
