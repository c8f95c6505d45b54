/**
 * `help [COMMAND]`, as a line of `carrier run`'s input and as `carrier help`.
 *
 * @module
 */
import {
  type Command,
  commandHelp,
  type CommandTable,
  groupHelp,
  isCommandGroup,
  overview,
} from "../command.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
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

/** The command `carrier help`, describing the commands of the table `commands` returns. */
export function helpCommand(commands: () => CommandTable): Command {
  return {
    summary: "list the commands, or show one command's options",
    synopsis: "[COMMAND [SUBCOMMAND]]",
    options: {},
    run(parsed, { io }) {
      const table = commands();
      const [name, sub, extra] = parsed.positionals;
      if (name === undefined) {
        io.out(overview(table));
        return Promise.resolve(EXIT_CODES.OK);
      }
      if (!Object.hasOwn(table, name)) throw new UsageError(`unknown command "${name}"`);
      const entry = table[name];
      if (!isCommandGroup(entry) || sub === undefined) {
        const unexpected = isCommandGroup(entry) ? extra : sub;
        if (unexpected !== undefined) throw new UsageError(`unexpected argument "${unexpected}"`);
        io.out(isCommandGroup(entry) ? groupHelp(name, entry) : commandHelp(name, entry));
        return Promise.resolve(EXIT_CODES.OK);
      }
      if (!Object.hasOwn(entry.subcommands, sub)) {
        throw new UsageError(`unknown command "${name} ${sub}"`);
      }
      if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
      io.out(commandHelp(`${name} ${sub}`, entry.subcommands[sub]));
      return Promise.resolve(EXIT_CODES.OK);
    },
  };
}
