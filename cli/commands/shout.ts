/**
 * `shout [--topic T] TEXT`: SHOUT to every node of the network.
 *
 * @module
 */
import { CarrierError } from "../../mod.ts";
import type { NodeCommand } from "../node_command.ts";
import { defaultedString, textOf, TOPIC_OPTION } from "../options.ts";

/** The node command `shout`; `carrier shout` is its one-shot form. */
export const shoutNodeCommand: NodeCommand = {
  summary: "SHOUT TEXT to every node of the network (signed, delivered once each)",
  synopsis: "[--topic T] TEXT",
  options: { topic: TOPIC_OPTION },
  prepare(parsed) {
    const text = textOf(parsed);
    const topic = defaultedString(parsed, "topic");
    return {
      async run(node, signal) {
        const { id, sent } = await node.shout(text, { topic, signal });
        if (sent === 0) {
          throw new CarrierError(
            `No peer acknowledged SHOUT ${id}: ${node.peers().length} peers connected`,
          );
        }
        return {
          fields: { id, topic, sent },
          text: `shouted ${id.slice(0, 16)}…: ${sent} first ${
            sent === 1 ? "hop" : "hops"
          } acknowledged`,
        };
      },
    };
  },
};
