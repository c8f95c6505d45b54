/**
 * The DHT's errors: records and patches that are malformed, writes that lost
 * (a version conflict, a lock held), quorums not reached.
 *
 * @module
 */
import { CarrierError, type CarrierErrorOptions } from "../errors.ts";

/**
 * A DHT key or record is invalid: a key that is not 32 bytes, a value over the size limit, a bad owner signature, a version out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dhtKey, RecordError } from "@carrier/p2p";
 * assert.throws(() => dhtKey(new Uint8Array(20)), RecordError); // a key is text or 32 bytes
 * ```
 */
export class RecordError extends CarrierError {}

/**
 * A patch does not apply: a JSON Patch operation fails, a splice is out of range, the result is too large or not what the patch's hash says.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PatchError } from "@carrier/p2p";
 * import { applyJsonPatch } from "@carrier/p2p/protocol";
 * assert.throws(() => applyJsonPatch({ a: 1 }, [{ op: "remove", path: "/b" }]), PatchError);
 * ```
 */
export class PatchError extends CarrierError {}

/**
 * Options of {@linkcode VersionConflictError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VersionConflictError, type VersionConflictErrorOptions } from "@carrier/p2p";
 * const currentValue = new Uint8Array([7]);
 * const options: VersionConflictErrorOptions = { currentVersion: 3, currentValue };
 * const error = new VersionConflictError("Cannot write version 2: the replicas hold 3", options);
 * assert.equal(error.currentVersion, 3);
 * assert.equal(error.currentValue, currentValue);
 * ```
 */
export interface VersionConflictErrorOptions extends CarrierErrorOptions {
  /** The version the replicas hold. */
  currentVersion: number;
  /** The value the replicas hold, when they sent it. */
  currentValue?: Uint8Array;
}

/**
 * A compare-and-swap or a patch lost: the key is not at the expected version (or another write is in progress).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, VersionConflictError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("counter", "1");
 * const error = await node.dht.cas("counter", "2", 0).catch((e) => e); // expects no value yet
 * assert(error instanceof VersionConflictError && error.currentVersion === 1);
 * ```
 */
export class VersionConflictError extends CarrierError {
  /** The version the replicas hold. */
  readonly currentVersion: number;
  /** The value the replicas hold, when they sent it. */
  readonly currentValue: Uint8Array | undefined;
  /** Creates the error. */
  constructor(message: string, options: VersionConflictErrorOptions) {
    super(message, options);
    this.currentVersion = options.currentVersion;
    this.currentValue = options.currentValue;
  }
}

/**
 * Options of {@linkcode LockHeldError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, LockHeldError, type LockHeldErrorOptions } from "@carrier/p2p";
 * const holder = generateIdentitySync({ difficulty: 0 }).address;
 * const options: LockHeldErrorOptions = { holder, fencingToken: 7, expiresIn: 2_500 };
 * const error = new LockHeldError(`The lock is held by ${holder}`, options);
 * assert.deepEqual([error.holder, error.fencingToken, error.expiresIn], [holder, 7, 2_500]);
 * ```
 */
export interface LockHeldErrorOptions extends CarrierErrorOptions {
  /** The holder's address (base58). */
  holder: string;
  /** The holder's fencing token. */
  fencingToken: number;
  /** Time until the holder's lease expires, in ms. */
  expiresIn: number;
}

/**
 * A DHT lock is held by another node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, LockHeldError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const lease = await a.dht.lock("job");
 * const error = await b.dht.lock("job").catch((e) => e);
 * assert(error instanceof LockHeldError && error.holder === a.address);
 * await a.dht.unlock(lease);
 * ```
 */
export class LockHeldError extends CarrierError {
  /** The holder's address (base58). */
  readonly holder: string;
  /** The holder's fencing token. */
  readonly fencingToken: number;
  /** Time until the holder's lease expires, in ms. */
  readonly expiresIn: number;
  /** Creates the error. */
  constructor(message: string, options: LockHeldErrorOptions) {
    super(message, options);
    this.holder = options.holder;
    this.fencingToken = options.fencingToken;
    this.expiresIn = options.expiresIn;
  }
}

/**
 * Too few DHT replicas answered or agreed for the operation to count.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, QuorumError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport() }); // listens: no replica
 * await assert.rejects(node.dht.put("key", "value"), QuorumError);
 * ```
 */
export class QuorumError extends CarrierError {}

/**
 * Options of {@linkcode ReplicationError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReplicationError, type ReplicationErrorOptions } from "@carrier/p2p";
 * const options: ReplicationErrorOptions = { version: 3, replicas: 1, needed: 2, asked: 3 };
 * const error = new ReplicationError("The put of version 3 reached 1 of 3 replicas", options);
 * assert.deepEqual([error.version, error.replicas, error.needed], [3, 1, 2]);
 * ```
 */
export interface ReplicationErrorOptions extends CarrierErrorOptions {
  /** The version written. */
  version: number;
  /** Replicas that stored it. */
  replicas: number;
  /** Replicas it needed (`minReplicas`). */
  needed: number;
  /** Replicas asked. */
  asked: number;
}

/**
 * A DHT put stored its record at fewer replicas than its minimum
 * (`minReplicas`, by default a majority of the replica set): those that
 * stored it keep it (nothing is rolled back; this node does not republish
 * it), the others refused or did not answer (`cause`: one of their
 * failures). A {@linkcode QuorumError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, QuorumError, ReplicationError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const error = await node.dht.put("key", "value", { minReplicas: 2 }).catch((e) => e);
 * assert(error instanceof ReplicationError && error instanceof QuorumError);
 * assert.deepEqual([error.replicas, error.needed], [1, 2]); // a network of one
 * ```
 */
export class ReplicationError extends QuorumError {
  /** The version written. */
  readonly version: number;
  /** Replicas that stored it. */
  readonly replicas: number;
  /** Replicas it needed. */
  readonly needed: number;
  /** Replicas asked. */
  readonly asked: number;
  /** Creates the error. */
  constructor(message: string, options: ReplicationErrorOptions) {
    super(message, options);
    this.version = options.version;
    this.replicas = options.replicas;
    this.needed = options.needed;
    this.asked = options.asked;
  }
}
