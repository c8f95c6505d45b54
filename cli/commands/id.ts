/**
 * `carrier id --key FILE`: a key file's address and NodeId.
 *
 * @module
 */
import { loadKeyFile } from "../../mod.ts";
import { puzzleWork } from "../../protocol.ts";
import type { Command } from "../command.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
import { flagOf, JSON_OPTION, noPositionals, stringOf } from "../options.ts";
import { hex } from "../output.ts";

/** The command `carrier id`. */
export const idCommand: Command = {
  summary: "print the address and NodeId of a key file",
  synopsis: "--key FILE [--json]",
  options: {
    key: { type: "string", short: "k", value: "FILE", help: "the key file to read (required)" },
    json: JSON_OPTION,
  },
  async run(parsed, { io }) {
    noPositionals(parsed);
    const key = stringOf(parsed, "key");
    if (!key) throw new UsageError("--key FILE is required");
    const identity = await loadKeyFile(key);
    const info = {
      address: identity.address,
      nodeId: hex(identity.nodeId),
      puzzleBits: puzzleWork(identity.publicKey),
    };
    if (flagOf(parsed, "json")) io.out(JSON.stringify(info));
    else {
      io.out(`address  ${info.address}`);
      io.out(`node id  ${info.nodeId}`);
      io.out(`puzzle   ${info.puzzleBits} leading zero bits`);
    }
    return EXIT_CODES.OK;
  },
};
