/**
 * Micro benchmarks of `lib/overlay/whisper.ts`: sealing and opening a
 * WHISPER with a 256-byte body, end-to-end encrypted (one Noise `X` message:
 * three X25519 operations on each side, AES-256-GCM, one Ed25519 → X25519
 * conversion of the peer's address) against signed plaintext (one Ed25519
 * signature and one verification), which is the baseline.
 *
 * Run: `deno bench bench/whisper_bench.ts`
 *
 * @module
 */

import { generateIdentitySync } from "../lib/identity/keys.ts";
import { openWhisper } from "../lib/overlay/whisper_open.ts";
import { sealWhisper } from "../lib/overlay/whisper_seal.ts";

const alice = generateIdentitySync({ difficulty: 0 });
const bob = generateIdentitySync({ difficulty: 0 });
const body = crypto.getRandomValues(new Uint8Array(256));

const sealedEncrypted = await sealWhisper(alice, bob.publicKey, body);
const sealedPlaintext = await sealWhisper(alice, bob.publicKey, body, { encrypted: false });

Deno.bench("seal+open plaintext (signed), 256 B", {
  group: "whisper seal+open",
  baseline: true,
}, async () => {
  await openWhisper(bob, await sealWhisper(alice, bob.publicKey, body, { encrypted: false }));
});

Deno.bench("seal+open encrypted (Noise X), 256 B", { group: "whisper seal+open" }, async () => {
  await openWhisper(bob, await sealWhisper(alice, bob.publicKey, body));
});

Deno.bench(
  "seal plaintext (signed), 256 B",
  { group: "whisper seal", baseline: true },
  async () => {
    await sealWhisper(alice, bob.publicKey, body, { encrypted: false });
  },
);

Deno.bench("seal encrypted (Noise X), 256 B", { group: "whisper seal" }, async () => {
  await sealWhisper(alice, bob.publicKey, body);
});

Deno.bench(
  "open plaintext (signed), 256 B",
  { group: "whisper open", baseline: true },
  async () => {
    await openWhisper(bob, sealedPlaintext);
  },
);

Deno.bench("open encrypted (Noise X), 256 B", { group: "whisper open" }, async () => {
  await openWhisper(bob, sealedEncrypted);
});
