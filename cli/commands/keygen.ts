/**
 * `carrier keygen --out FILE`: generate an identity and write its key file.
 *
 * @module
 */
import { DEFAULT_PUZZLE_DIFFICULTY, generateIdentity, saveKeyFile } from "../../mod.ts";
import type { Command } from "../command.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
import { defaultedInteger, flagOf, noPositionals, stringOf } from "../options.ts";

/** The command `carrier keygen`. */
export const keygenCommand: Command = {
  summary: "generate an identity and write it to a key file (mode 0600)",
  synopsis: "--out FILE [--difficulty N] [--force]",
  options: {
    out: { type: "string", short: "o", value: "FILE", help: "the key file to write (required)" },
    difficulty: {
      type: "string",
      value: "N",
      help: "static puzzle difficulty the key must pass",
      default: String(DEFAULT_PUZZLE_DIFFICULTY),
    },
    force: { type: "boolean", help: "overwrite an existing file" },
  },
  async run(parsed, { io }) {
    noPositionals(parsed);
    const out = stringOf(parsed, "out");
    if (!out) throw new UsageError("--out FILE is required");
    const difficulty = defaultedInteger(parsed, "difficulty");
    const identity = await generateIdentity({ difficulty });
    await saveKeyFile(out, identity, { overwrite: flagOf(parsed, "force") });
    io.out(identity.address);
    return EXIT_CODES.OK;
  },
};
