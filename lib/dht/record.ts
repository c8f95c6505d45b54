/**
 * DHT keys and records: how a key is derived, what makes a record valid, and
 * how an owned record is signed.
 *
 * - A **key** is 32 bytes in the NodeId space. Text keys are hashed:
 *   `SHA-256(UTF-8(text))`.
 * - A **record** holds a value (at most {@linkcode DEFAULT_MAX_VALUE_SIZE}
 *   bytes unless a node says otherwise) and a version from 1 to 2^53 − 1.
 * - An **owned** record carries its owner's address and the owner's Ed25519
 *   signature over `"carrier/v1 record:" ‖ key ‖ version (8 bytes, big
 *   endian) ‖ SHA-256(value)`; replicas refuse it if the signature does not
 *   verify, and refuse another owner's record for a key they hold owned.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { type Record, RecordSchema } from "../../gen/carrier/v1/dht_pb.ts";
import { concatBytes } from "../_bytes.ts";
import { RecordError } from "./errors.ts";
import { type Identity, sign, verify } from "../identity/keys.ts";

/**
 * Length of a DHT key, in bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dhtKey, RecordError } from "@carrier/p2p";
 * import { DHT_KEY_LENGTH } from "@carrier/p2p/protocol";
 * assert.equal(dhtKey("config").length, DHT_KEY_LENGTH);
 * assert.throws(() => dhtKey(new Uint8Array(DHT_KEY_LENGTH - 1)), RecordError);
 * ```
 */
export const DHT_KEY_LENGTH = 32;

/** Length of an atomic write's proposal id (a DHT_CAS or DHT_PATCH `proposal`), in bytes. */
export const PROPOSAL_LENGTH = 16;

/**
 * The default largest value a node stores, in bytes (64 KiB).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, DEFAULT_MAX_VALUE_SIZE, RecordError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("big", new Uint8Array(DEFAULT_MAX_VALUE_SIZE));
 * const tooBig = new Uint8Array(DEFAULT_MAX_VALUE_SIZE + 1);
 * await assert.rejects(node.dht.put("bigger", tooBig), RecordError);
 * ```
 */
export const DEFAULT_MAX_VALUE_SIZE = 64 * 1024;

/**
 * A DHT key: 32 bytes, or text (hashed with SHA-256).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtKey, dhtKey } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const byName: DhtKey = "config";
 * const byBytes: DhtKey = dhtKey(byName); // SHA-256 of the text
 * await node.dht.put(byName, "v1");
 * assert.equal((await node.dht.get(byBytes))?.version, 1); // the same key
 * ```
 */
export type DhtKey = Uint8Array | string;

const RECORD_CONTEXT = new TextEncoder().encode("carrier/v1 record:");

/**
 * The 32-byte key for `key`: text is hashed with SHA-256, bytes are checked.
 *
 * @throws {RecordError} when bytes are not 32 long.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dhtKey } from "@carrier/p2p";
 * assert.equal(dhtKey("config").length, 32);
 * ```
 */
export function dhtKey(key: DhtKey): Uint8Array {
  if (typeof key === "string") return sha256(new TextEncoder().encode(key));
  if (!(key instanceof Uint8Array) || key.length !== DHT_KEY_LENGTH) {
    throw new RecordError(
      `A DHT key is ${DHT_KEY_LENGTH} bytes or a string, got ${
        key instanceof Uint8Array ? `${key.length} bytes` : typeof key
      }`,
    );
  }
  return key;
}

/** The bytes an owner signs for a record: context, key, version, SHA-256 of the value. */
export function recordSigningBytes(
  key: Uint8Array,
  version: bigint,
  valueHash: Uint8Array,
): Uint8Array {
  const v = new Uint8Array(8);
  new DataView(v.buffer).setBigUint64(0, version);
  return concatBytes([RECORD_CONTEXT, key, v, valueHash]);
}

/** Fields of a record to create. */
export interface RecordInit {
  /** The 32-byte key. */
  key: Uint8Array;
  /** The value. */
  value: Uint8Array;
  /** The version. */
  version: number;
  /** The owner, for an owned record (signs it). */
  owner?: Identity;
  /**
   * Time to live at replicas, in ms: an integer from 0 to 2^53 − 1. 0: their
   * default (1 h); a replica caps a longer one at its maximum (24 h).
   */
  ttl?: number;
}

/**
 * Creates a record, signed when it has an owner.
 *
 * @throws {RecordError} for a version not from 1 to 2^53 − 1 or a ttl not from 0 to 2^53 − 1.
 */
export function createRecord(init: RecordInit): Record {
  checkVersion(init.version);
  checkTtl(init.ttl ?? 0);
  const version = BigInt(init.version);
  const record = create(RecordSchema, {
    key: init.key,
    value: init.value,
    version,
    ttlMs: BigInt(init.ttl ?? 0),
  });
  if (init.owner) {
    record.owner = init.owner.publicKey;
    record.signature = sign(init.owner, recordSigningBytes(init.key, version, sha256(init.value)));
  }
  return record;
}

/**
 * What makes a record one a replica refuses, by the refusal it gets
 * (README, Refusals): `malformed` (`store-malformed`: the key is not 32
 * bytes, the version not from 1 to 2^53 − 1, or the owner and signature do
 * not pair: an open record with a signature, an owner not 32 bytes),
 * `too-large` (`store-too-large`) and `bad-signature` (`store-signature`: an
 * owned record's signature does not verify).
 */
export type RecordProblem = "malformed" | "too-large" | "bad-signature";

/**
 * The first thing wrong with a record, checked in the order of
 * {@linkcode RecordProblem} (the signature last: it costs the most), or
 * `undefined` when it is valid.
 */
export function recordProblem(
  record: Record,
  maxValueSize = DEFAULT_MAX_VALUE_SIZE,
): { problem: RecordProblem; message: string } | undefined {
  const malformed = (message: string) => ({ problem: "malformed" as const, message });
  if (record.key.length !== DHT_KEY_LENGTH) {
    return malformed(`Record key must be ${DHT_KEY_LENGTH} bytes, got ${record.key.length}`);
  }
  if (record.version < 1n || record.version > BigInt(Number.MAX_SAFE_INTEGER)) {
    return malformed(`Record version must be from 1 to 2^53 - 1, got ${record.version}`);
  }
  if (record.owner.length === 0 && record.signature.length !== 0) {
    return malformed("Open record carries a signature");
  }
  if (record.owner.length !== 0 && record.owner.length !== 32) {
    return malformed(`Record owner must be 32 bytes, got ${record.owner.length}`);
  }
  if (record.value.length > maxValueSize) {
    return {
      problem: "too-large",
      message: `Record value is ${record.value.length} bytes, over the limit of ${maxValueSize}`,
    };
  }
  if (record.owner.length === 0) return undefined;
  const message = recordSigningBytes(record.key, record.version, sha256(record.value));
  if (!verify(record.owner, message, record.signature)) {
    return {
      problem: "bad-signature",
      message: "Record signature does not verify against its owner",
    };
  }
  return undefined;
}

/**
 * Checks a record from a peer or a user: a 32-byte key, a version from 1 to
 * 2^53 − 1, for an owned record a 32-byte owner whose signature verifies (an
 * open record has no signature), and a value within `maxValueSize`.
 *
 * @throws {RecordError} naming what is wrong (see {@linkcode recordProblem}).
 */
export function checkRecord(record: Record, maxValueSize = DEFAULT_MAX_VALUE_SIZE): void {
  const found = recordProblem(record, maxValueSize);
  if (found) throw new RecordError(found.message);
}

/** Checks a version given by a user: an integer from 1 to 2^53 − 1. */
export function checkVersion(version: number, name = "version"): void {
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new RecordError(`${name} must be an integer from 1 to 2^53 - 1, got ${version}`);
  }
}

/**
 * Checks a record's time to live given by a user: an integer of ms from 0
 * (the replicas' default) to 2^53 − 1. A longer one than a replica grants is
 * not an error: the replica caps it (24 h by default).
 */
export function checkTtl(ttl: number): void {
  if (!Number.isSafeInteger(ttl) || ttl < 0) {
    throw new RecordError(`ttl must be an integer of ms from 0 to 2^53 - 1, got ${ttl}`);
  }
}
