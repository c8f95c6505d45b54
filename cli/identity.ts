/**
 * The identity a command's node runs with: `--key FILE`'s, or a fresh one.
 *
 * @module
 */
import { generateIdentity, type Identity, KeyFileError, loadKeyFile, saveKeyFile } from "../mod.ts";
import type { CliOutput } from "./output.ts";

/** Loads `--key FILE`, creating it (mode 0600) if it does not exist; else a fresh identity. */
export async function identityFor(
  keyFile: string | undefined,
  difficulty: number,
  io: CliOutput,
  json: boolean,
): Promise<Identity> {
  if (keyFile === undefined) return await generateIdentity({ difficulty });
  try {
    return await loadKeyFile(keyFile);
  } catch (err) {
    if (!(err instanceof KeyFileError && err.cause instanceof Deno.errors.NotFound)) throw err;
  }
  const identity = await generateIdentity({ difficulty });
  await saveKeyFile(keyFile, identity);
  if (json) io.out(JSON.stringify({ event: "keygen", address: identity.address, key: keyFile }));
  else io.err(`created key file ${keyFile} for ${identity.address}`);
  return identity;
}
