#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net
/**
 * The `carrier` command line. Imports only `mod.ts`; its parts are in `cli/`.
 *
 *   carrier demo                                    what carrier does, on this machine
 *   carrier keygen --out FILE                       make a key file (mode 0600)
 *   carrier id --key FILE                           print a key file's address and NodeId
 *   carrier run --listen HOST:PORT                  run a node; commands on standard input
 *   carrier ping ADDRESS@HOST:PORT                  measure the round-trip time to a node
 *   carrier shout --bootstrap PEER TEXT             join, SHOUT to the network, leave
 *   carrier whisper --bootstrap PEER ADDRESS TEXT   join, WHISPER to one node, leave
 *   carrier dht get --bootstrap PEER KEY            join, act on the DHT (get, put, cas,
 *                                                   lock, unlock, patch, changes), leave
 *   carrier help [COMMAND]                          a command's options
 *
 * `carrier run` reads commands from standard input, one per line (`help`
 * lists them): the table `NODE_COMMANDS` (`cli/node_commands.ts`). The
 * one-shot commands (`shout`, `whisper`, `dht …`) run an entry of that same
 * table on a short-lived outbound-only node.
 *
 * Exit codes: see {@linkcode EXIT_CODES}.
 *
 * @module
 */
import { main } from "./cli/main.ts";

export { EXIT_CODES } from "./cli/errors.ts";
export type { CliOutput } from "./cli/output.ts";
export { main };

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
