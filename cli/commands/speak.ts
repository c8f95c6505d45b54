/**
 * `speak ADDRESS|--all [--topic T] TEXT`: SPEAK to one direct peer, or to all.
 *
 * @module
 */
import { type Node, Opcode } from "../../mod.ts";
import { PROTOCOL_OPCODES } from "../../protocol.ts";
import type { NodeCommand } from "../node_command.ts";
import { addressOf, defaultedString, flagOf, textOf, TOPIC_OPTION } from "../options.ts";

/** The SPEAK opcode's definition: `speak ADDRESS` sends it to one peer with `node.send`. */
const SPEAK = PROTOCOL_OPCODES.find((s) => s.opcode === Opcode.SPEAK)!;

/** The node command `speak`. */
export const speakNodeCommand: NodeCommand = {
  summary: "SPEAK TEXT to one direct peer, or with --all to every direct peer",
  synopsis: "ADDRESS|--all [--topic T] TEXT",
  options: {
    all: { type: "boolean", help: "to every direct peer instead of one ADDRESS" },
    topic: TOPIC_OPTION,
  },
  prepare(parsed) {
    const topic = defaultedString(parsed, "topic");
    if (flagOf(parsed, "all")) {
      const text = textOf(parsed);
      return {
        async run(node, signal) {
          const sent = await node.speak(text, { topic, signal });
          return {
            fields: { all: true, topic, sent },
            text: `spoke to ${sent} direct ${sent === 1 ? "peer" : "peers"}`,
          };
        },
      };
    }
    const to = addressOf(parsed, 0);
    const text = textOf(parsed, 1);
    return {
      async run(node, signal) {
        const message = {
          $typeName: SPEAK.request.typeName,
          topic,
          body: new TextEncoder().encode(text),
          ttl: 0,
        } as Parameters<Node["send"]>[2];
        await node.send(to, SPEAK, message, { signal });
        return { fields: { to, topic, sent: 1 }, text: `spoke to ${to}` };
      },
    };
  },
};
