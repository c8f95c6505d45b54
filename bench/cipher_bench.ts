/**
 * AES-256-GCM per message size: WebCrypto (`crypto.subtle`, async, native)
 * against `@noble/ciphers` (sync, pure TypeScript), and the `auto` backend
 * that picks one of them by size (`AES_GCM_WEBCRYPTO_THRESHOLD`). One group
 * per size and direction, noble as the baseline.
 *
 * Run: `deno bench bench/cipher_bench.ts`
 *
 * @module
 */

import {
  AES_GCM_WEBCRYPTO_THRESHOLD,
  type AesGcmBackend,
  CipherState,
  createAesGcm,
} from "../lib/secure/noise.ts";

const SIZES: [label: string, bytes: number][] = [
  ["64 B", 64],
  ["1 KiB", 1024],
  ["16 KiB", 16 * 1024],
  ["64 KiB", 64 * 1024],
];
const BACKENDS: AesGcmBackend[] = ["noble", "webcrypto", "auto"];

const key = crypto.getRandomValues(new Uint8Array(32));
// A bench may reuse one nonce: nothing here is secret or sent anywhere.
const NONCE = 42n;

for (const [label, size] of SIZES) {
  const plaintext = crypto.getRandomValues(new Uint8Array(size));
  const sealed = await createAesGcm(key, { backend: "noble" }).encrypt(
    NONCE,
    plaintext,
  );
  for (const backend of BACKENDS) {
    const aead = createAesGcm(key, { backend });
    const suffix = backend === "auto" ? ` (threshold ${AES_GCM_WEBCRYPTO_THRESHOLD} B)` : "";
    Deno.bench({
      name: `encrypt ${label} ${backend}${suffix}`,
      group: `encrypt ${label}`,
      baseline: backend === "noble",
      async fn() {
        await aead.encrypt(NONCE, plaintext);
      },
    });
    Deno.bench({
      name: `decrypt ${label} ${backend}${suffix}`,
      group: `decrypt ${label}`,
      baseline: backend === "noble",
      async fn() {
        await aead.decrypt(NONCE, sealed);
      },
    });
  }
  // The transport path as the peer layer sees it: CipherState on top of auto
  // (serialization, nonce bookkeeping), capped at the largest Noise plaintext.
  const message = plaintext.subarray(0, Math.min(size, 65519));
  const state = new CipherState(key);
  Deno.bench({
    name: `encrypt ${label} CipherState (auto)`,
    group: `encrypt ${label}`,
    async fn() {
      await state.encrypt(message);
    },
  });
}
