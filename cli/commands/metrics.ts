/**
 * `metrics [ADDRESS]`: this node's counters, or a peer's.
 *
 * @module
 */
import type { NodeMetrics } from "../../mod.ts";
import { UsageError } from "../errors.ts";
import type { NodeCommand } from "../node_command.ts";
import { addressOf } from "../options.ts";

/** The node command `metrics`. */
export const metricsNodeCommand: NodeCommand = {
  summary: "print this node's counters, or a peer's (if it runs with --serve-metrics)",
  synopsis: "[ADDRESS]",
  options: {},
  prepare(parsed) {
    const address = parsed.positionals.length > 0 ? addressOf(parsed, 0) : undefined;
    if (parsed.positionals.length > 1) {
      throw new UsageError(`unexpected argument "${parsed.positionals[1]}"`);
    }
    return {
      async run(node, signal) {
        if (address !== undefined) {
          const metrics = await node.requestMetrics(address, { signal });
          return { fields: { address, metrics }, text: metricsText(metrics) };
        }
        const metrics = node.metrics();
        const contacts = node.routingTable.size;
        return {
          fields: { metrics, contacts },
          text: `${metricsText(metrics)}\nrouting      ${contacts} contacts`,
        };
      },
    };
  },
};

function metricsText(m: NodeMetrics): string {
  const t = m.totals;
  return [
    `connections  ${m.connections.outbound} outbound, ${m.connections.inbound} inbound, ${m.connections.dialing} dialing, ${m.connections.rejectedHandshakes} refused`,
    `sent         ${t.framesSent} frames, ${t.bytesSent} bytes`,
    `received     ${t.framesReceived} frames, ${t.bytesReceived} bytes, ${t.drops} dropped`,
    `shouts       ${m.shouts.originated} originated, ${m.shouts.delivered} delivered, ${m.shouts.sent} sent, ${m.shouts.duplicates} duplicates, ${m.shouts.rejected} rejected`,
    `whispers     ${m.whispers.delivered} delivered, ${m.whispers.relayed} relayed, ${m.whispers.rejected} rejected`,
  ].join("\n");
}
