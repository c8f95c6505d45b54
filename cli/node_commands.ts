/**
 * `NODE_COMMANDS`: the commands `carrier run` reads on standard input, one
 * per line. The one-shot commands (`carrier shout`, `carrier whisper`,
 * `carrier dht …`) run entries of this same table.
 *
 * @module
 */
import { connectNodeCommand } from "./commands/connect.ts";
import { dhtNodeCommands } from "./commands/dht.ts";
import { nodeHelpCommand } from "./commands/help.ts";
import { limitsNodeCommand } from "./commands/limits.ts";
import { metricsNodeCommand } from "./commands/metrics.ts";
import { peersNodeCommand } from "./commands/peers.ts";
import { pingNodeCommand } from "./commands/ping.ts";
import { quitNodeCommand } from "./commands/quit.ts";
import { shoutNodeCommand } from "./commands/shout.ts";
import { speakNodeCommand } from "./commands/speak.ts";
import { whisperNodeCommand } from "./commands/whisper.ts";
import type { NodeCommandTable } from "./node_command.ts";

/**
 * The commands `carrier run` reads on standard input. A new one (a family
 * such as `dht get|put|…` is a `NodeCommandGroup`) is one more
 * entry; `help` and `run --help` list it from here.
 */
export const NODE_COMMANDS: NodeCommandTable = {
  shout: shoutNodeCommand,
  speak: speakNodeCommand,
  whisper: whisperNodeCommand,
  connect: connectNodeCommand,
  ping: pingNodeCommand,
  peers: peersNodeCommand,
  metrics: metricsNodeCommand,
  limits: limitsNodeCommand,
  dht: dhtNodeCommands,
  help: nodeHelpCommand(() => NODE_COMMANDS),
  quit: quitNodeCommand,
};
