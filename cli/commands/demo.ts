/**
 * `carrier demo`: what carrier does, on this machine (the parts are in `cli/demo/`).
 *
 * @module
 */
import type { Command } from "../command.ts";
import { demoCompression, demoFrames, demoIdentity } from "../demo/wire.ts";
import { demoNodes } from "../demo/nodes.ts";
import { demoSwarm } from "../demo/swarm.ts";
import { EXIT_CODES } from "../errors.ts";
import { noPositionals } from "../options.ts";

/** The command `carrier demo`. */
export const demoCommand: Command = {
  summary: "show what carrier does, on this machine",
  synopsis: "",
  options: {},
  async run(parsed, { io }) {
    noPositionals(parsed);
    await demoIdentity(io);
    io.out("");
    demoFrames(io);
    io.out("");
    demoCompression(io);
    io.out("");
    await demoNodes(io);
    io.out("");
    await demoSwarm(io);
    io.out("");
    io.out("Not yet built: NAT port mapping (see the README's status table).");
    return EXIT_CODES.OK;
  },
};
