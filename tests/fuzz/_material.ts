/**
 * What every part of the campaign derives from the seed: the node's
 * identity, the fuzz identities (with their Noise static keys), the signers
 * of SHOUTs and records, and the shared DHT keys. The same seed gives the
 * same material in the campaign, its workers and the node process.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { type Identity, identityFromSecretKey } from "../../mod.ts";
import { verifyPuzzle } from "../../protocol.ts";
import { x25519KeyPairFromPrivateKey } from "../../lib/secure/noise.ts";
import { type FuzzIdentity, fuzzIdentity } from "./_harness.ts";
import { Rng } from "./_rng.ts";

const encoder = new TextEncoder();

/** The node's identity for `seed`: the first derived key passing difficulty 8. */
export function nodeIdentity(seed: number): Identity {
  for (let k = 0;; k++) {
    const secret = sha256(encoder.encode(`carrier fuzz node ${seed} ${k}`));
    const identity = identityFromSecretKey(secret);
    if (verifyPuzzle(identity.publicKey, 8)) return identity;
  }
}

/** `count` identities derived from (`seed`, `label`) that pass difficulty 8 (or, `weak`, fail it). */
function identities(
  seed: number,
  label: string,
  count: number,
  puzzle: boolean,
  weak = false,
): Identity[] {
  const out: Identity[] = [];
  for (let k = 0; out.length < count; k++) {
    const identity = identityFromSecretKey(
      sha256(encoder.encode(`carrier fuzz ${label} ${seed} ${k}`)),
    );
    const passes = verifyPuzzle(identity.publicKey, 8);
    if (!puzzle || (weak ? !passes : passes)) out.push(identity);
  }
  return out;
}

function withStaticKey(identity: Identity, seed: number, i: number): FuzzIdentity {
  const secret = sha256(encoder.encode(`carrier fuzz static ${seed} ${i}`));
  return fuzzIdentity(identity, x25519KeyPairFromPrivateKey(secret));
}

/** The campaign's identities and keys. */
export interface Material {
  /** Identities that pass the node's puzzle (difficulty 8), with static keys. */
  ids: FuzzIdentity[];
  /** Identities that fail it. */
  weak: FuzzIdentity[];
  /** Signers of SHOUTs and owners of records. */
  signers: Identity[];
  /** Shared DHT keys. */
  keys: Uint8Array[];
}

/** The material of `seed`. */
export function material(seed: number): Material {
  const keyRng = new Rng(seed, 77);
  return {
    ids: identities(seed, "id", 48, true).map((id, i) => withStaticKey(id, seed, i)),
    weak: identities(seed, "weak", 4, true, true).map((id, i) => withStaticKey(id, seed, 1000 + i)),
    signers: identities(seed, "signer", 16, false),
    keys: Array.from({ length: 24 }, () => keyRng.bytes(32)),
  };
}
