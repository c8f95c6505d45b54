/**
 * `whisper ADDRESS [--plain] [--topic T] TEXT`: WHISPER to one node, routed
 * through the network.
 *
 * @module
 */
import type { NodeCommand } from "../node_command.ts";
import { addressOf, defaultedString, flagOf, textOf, TOPIC_OPTION } from "../options.ts";
import { hex } from "../output.ts";

/** The node command `whisper`; `carrier whisper` is its one-shot form. */
export const whisperNodeCommand: NodeCommand = {
  summary: "WHISPER TEXT to one node, routed through the network (sealed unless --plain)",
  synopsis: "ADDRESS [--plain] [--topic T] TEXT",
  options: {
    plain: { type: "boolean", help: "signed but not encrypted", otherwise: "sealed end to end" },
    topic: TOPIC_OPTION,
  },
  prepare(parsed) {
    const to = addressOf(parsed, 0);
    const text = textOf(parsed, 1);
    const encrypted = !flagOf(parsed, "plain");
    const topic = defaultedString(parsed, "topic");
    return {
      reach: to,
      async run(node, signal) {
        const { hash, hops } = await node.whisper(to, text, { encrypted, topic, signal });
        return {
          fields: { to, topic, encrypted, hops, hash: hex(hash) },
          text: `whispered to ${to} (${encrypted ? "sealed" : "signed, in the clear"}): ${hops} ${
            hops === 1 ? "hop" : "hops"
          }, acknowledged with hash ${hex(hash).slice(0, 16)}…`,
        };
      },
    };
  },
};
