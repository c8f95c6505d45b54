/**
 * Micro benchmarks of `lib/identity/`: key generation (with and without the
 * static puzzle), signing, verification and the puzzle hash. The signature
 * group also times Deno's native WebCrypto Ed25519 (async only) on the same
 * key and message, as a reference for carrier's synchronous `node:crypto`
 * figures (plus its strict-verification checks).
 *
 * Run: `deno bench bench/identity_bench.ts`
 *
 * @module
 */

import { generateIdentitySync, identityFromSecretKey, sign, verify } from "../lib/identity/keys.ts";
import { nodeIdOf } from "../lib/identity/node_id.ts";
import { puzzleHash } from "../lib/identity/puzzle.ts";
import { formatAddress, parseAddress } from "../lib/identity/address.ts";

const identity = generateIdentitySync({ difficulty: 0 });
const message = new Uint8Array(256).fill(7);
const signature = sign(identity, message);
const address = identity.address;

/** PKCS #8 prefix for a raw 32-byte Ed25519 seed (RFC 8410). */
const PKCS8_ED25519_PREFIX = Uint8Array.of(
  0x30,
  0x2e,
  0x02,
  0x01,
  0x00,
  0x30,
  0x05,
  0x06,
  0x03,
  0x2b,
  0x65,
  0x70,
  0x04,
  0x22,
  0x04,
  0x20,
);
const pkcs8 = new Uint8Array(48);
pkcs8.set(PKCS8_ED25519_PREFIX);
pkcs8.set(identity.secretKey, 16);
const webPrivate = await crypto.subtle.importKey(
  "pkcs8",
  pkcs8,
  { name: "Ed25519" },
  false,
  ["sign"],
);
const webPublic = await crypto.subtle.importKey(
  "raw",
  new Uint8Array(identity.publicKey),
  { name: "Ed25519" },
  false,
  ["verify"],
);
const webSignature = new Uint8Array(
  await crypto.subtle.sign("Ed25519", webPrivate, message),
);
if (!verify(identity.publicKey, message, webSignature)) {
  throw new Error("WebCrypto and noble disagree on the signature");
}

Deno.bench("generate key (difficulty 0)", {
  group: "keygen",
  baseline: true,
}, () => {
  generateIdentitySync({ difficulty: 0 });
});

Deno.bench(
  "generate key (difficulty 4, ~16 tries)",
  { group: "keygen" },
  () => {
    generateIdentitySync({ difficulty: 4 });
  },
);

Deno.bench("generate key (default difficulty 8, ~256 tries)", {
  group: "keygen",
  n: 50,
}, () => {
  generateIdentitySync();
});

Deno.bench("identityFromSecretKey", { group: "keygen" }, () => {
  identityFromSecretKey(identity.secretKey);
});

Deno.bench("sign 256 B", { group: "signature", baseline: true }, () => {
  sign(identity, message);
});

Deno.bench("verify 256 B", { group: "signature" }, () => {
  verify(identity.publicKey, message, signature);
});

Deno.bench(
  "WebCrypto sign 256 B (native)",
  { group: "signature" },
  async () => {
    await crypto.subtle.sign("Ed25519", webPrivate, message);
  },
);

Deno.bench(
  "WebCrypto verify 256 B (native)",
  { group: "signature" },
  async () => {
    await crypto.subtle.verify("Ed25519", webPublic, webSignature, message);
  },
);

Deno.bench(
  "puzzle hash (2x SHA-256)",
  { group: "hash", baseline: true },
  () => {
    puzzleHash(identity.publicKey);
  },
);

Deno.bench("nodeIdOf (SHA-256)", { group: "hash" }, () => {
  nodeIdOf(identity.publicKey);
});

Deno.bench("parseAddress + formatAddress", { group: "address" }, () => {
  formatAddress(parseAddress(address));
});
