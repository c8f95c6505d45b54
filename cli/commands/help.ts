/**
 * `help [COMMAND]`, as a line of `carrier run`'s input.
 *
 * @module
 */
import {
  isGroup,
  type NodeCommand,
  nodeCommandHelp,
  nodeCommandList,
  nodeCommandsHelp,
  type NodeCommandTable,
  resolveNodeCommand,
} from "../node_command.ts";

/** The node command `help`, listing the commands of the table `commands` returns. */
export function nodeHelpCommand(commands: () => NodeCommandTable): NodeCommand {
  return {
    summary: "list the commands, or show one command's options",
    synopsis: "[COMMAND]",
    options: {},
    prepare(parsed) {
      const tokens = parsed.positionals;
      return {
        run() {
          const table = commands();
          const group = tokens.length === 1 && Object.hasOwn(table, tokens[0]) &&
            isGroup(table[tokens[0]]);
          if (tokens.length === 0 || group) {
            const prefix = group ? `${tokens[0]} ` : "";
            const list = nodeCommandList(table).filter(([name]) => name.startsWith(prefix)).map((
              [name, c],
            ) => ({
              name,
              synopsis: c.synopsis,
              summary: c.summary,
            }));
            const text = [
              "Commands, one per line:",
              ...nodeCommandsHelp(table, prefix),
              "`help COMMAND` or `COMMAND --help` shows a command's options.",
            ].join("\n");
            return Promise.resolve({ fields: { commands: list }, text });
          }
          const { name, command } = resolveNodeCommand(table, tokens);
          const help = nodeCommandHelp(name, command);
          return Promise.resolve({ fields: { name, help }, text: help });
        },
      };
    },
  };
}
