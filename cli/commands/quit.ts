/**
 * `quit`: close the node and end the session.
 *
 * @module
 */
import type { NodeCommand } from "../node_command.ts";
import { noPositionals } from "../options.ts";

/** The node command `quit`. */
export const quitNodeCommand: NodeCommand = {
  summary: "close the node and exit (so does the end of input)",
  synopsis: "",
  options: {},
  prepare(parsed) {
    noPositionals(parsed);
    return { run: () => Promise.resolve({ fields: {}, text: "closing", quit: true }) };
  },
};
