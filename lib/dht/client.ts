/**
 * The DHT's client, {@linkcode Dht}: what a node's `node.dht` is. Its calls
 * are built from `quorum.ts` (lookups, replica sets, atomic writes) and
 * `lease.ts` (locks); `dht.ts` states what each guarantees.
 *
 * Every call rejects with the node's `NodeClosedError` (its host's
 * `signal.reason`) once the node has begun to close, and one in flight when
 * it does rejects with it at once.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  CasPhase,
  CasRequestSchema,
  ChangesRequestSchema,
  PatchRequestSchema,
  type Record,
  StoreRequestSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { toHex } from "../_bytes.ts";
import { NackError } from "../errors.ts";
import { RecordError, ReplicationError, VersionConflictError } from "./errors.ts";
import type { LookupResult } from "../overlay/lookup.ts";
import type { Contact } from "../overlay/routing_table.ts";
import { patchMessage, readChanges } from "./changes.ts";
import { DHT_DEFAULTS } from "./defaults.ts";
import * as leases from "./lease.ts";
import { applyPatch } from "./patch.ts";
import { Quorum } from "./quorum.ts";
import { checkTtl, checkVersion, createRecord, type DhtKey, dhtKey } from "./record.ts";
import { errorText, failure, majority } from "./replies.ts";
import type { DhtReplica } from "./replica.ts";
import type {
  DhtCallOptions,
  DhtChanges,
  DhtGetOptions,
  DhtHost,
  DhtLease,
  DhtLockOptions,
  DhtLookup,
  DhtOptions,
  DhtPatch,
  DhtPutOptions,
  DhtValue,
  DhtWriteOptions,
  DhtWriteResult,
} from "./types.ts";

/**
 * A node's DHT: see the module doc of `dht.ts` for what each call
 * guarantees. Reach it as `node.dht`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode } from "@carrier/p2p";
 * await using a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
 * await using b = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
 * await b.connect(a.peerAddresses[0]);
 * await a.dht.put("greeting", new TextEncoder().encode("hello"));
 * const found = await b.dht.get("greeting");
 * assert.equal(new TextDecoder().decode(found?.value), "hello");
 * ```
 */
export class Dht {
  readonly #host: DhtHost;
  readonly #replica: DhtReplica;
  readonly #quorum: Quorum;
  readonly #maxPublished: number;
  /** Records this node wrote, to republish (insertion-ordered, bounded). */
  readonly #published = new Map<string, Record>();
  /** Replicas of each lease (to renew and release at the same nodes). */
  readonly #leaseReplicas = new WeakMap<DhtLease, readonly Contact[]>();

  /**
   * Creates the client of a node's DHT over its host and its own replica
   * (the DHT service, `dht(init)(host)`, does this).
   */
  constructor(host: DhtHost, replica: DhtReplica, options: DhtOptions = {}) {
    this.#host = host;
    this.#replica = replica;
    this.#quorum = new Quorum(host, replica, options);
    this.#maxPublished = options.maxPublished ?? DHT_DEFAULTS.maxPublished;
  }

  /** Records this node holds as a replica. */
  get size(): number {
    return this.#replica.store.size;
  }

  /**
   * Bytes this node holds as a replica, as `maxBytes` counts them: records,
   * patch history and reservations, each with a fixed overhead.
   */
  get bytes(): number {
    return this.#replica.store.bytes;
  }

  /**
   * The size of every buffer behind what this node holds as a replica (each
   * `ArrayBuffer` once). At most {@linkcode Dht.bytes}: a replica keeps
   * copies, never views into the frames it received.
   */
  retainedBytes(): number {
    return this.#replica.store.retainedBytes();
  }

  /**
   * The k nodes closest to `key` (iterative FIND_NODE lookup).
   *
   * @throws {RecordError} for a key that is neither text nor 32 bytes.
   */
  lookup(key: DhtKey, options: DhtCallOptions = {}): Promise<DhtLookup> {
    return this.#call(options, async (signal) => {
      const result = await this.#quorum.findClosest(dhtKey(key), signal);
      return {
        closest: result.closest.map((c) => c.address),
        hops: result.hops,
        queries: result.queries,
      };
    });
  }

  /** The k contacts closest to a 32-byte target, by iterative FIND_NODE. */
  findClosest(
    target: Uint8Array,
    options: DhtCallOptions & { alpha?: number } = {},
  ): Promise<LookupResult> {
    return this.#call(options, (signal) => this.#quorum.findClosest(target, signal, options.alpha));
  }

  /**
   * One FIND_NODE: the contacts `contact` knows closest to `target` (up to
   * k, closest first, never the asker).
   *
   * @throws {NackError} (`MALFORMED`) when `target` is not 32 bytes.
   */
  findNode(
    contact: Contact,
    target: Uint8Array,
    options: DhtCallOptions & { timeout?: number } = {},
  ): Promise<Contact[]> {
    return this.#call(
      options,
      (signal) => this.#quorum.findNode(contact, target, signal, options.timeout),
    );
  }

  /**
   * Reads a value. By default (`consistency: "linearizable"`) it asks every
   * replica of the key (the R closest nodes that accept connections), takes
   * the newest copy of their answers, and, when fewer than a majority of
   * them hold it, writes it back until a majority does before returning (as
   * in ABD): a read never returns a value older than one whose write or read
   * completed before it began. `consistency: "any"` stops once `readQuorum`
   * replicas agree on the newest copy and repairs the others in the
   * background: faster, but it may return an older value. Copies with a bad
   * signature or the wrong key are ignored; an open record a single replica
   * claims loses to one that two agree on (one lying replica is outvoted).
   *
   * @returns The value, or `undefined` when no replica holds the key.
   * @throws {QuorumError} when the newest copy cannot be written back to a majority.
   */
  get(key: DhtKey, options: DhtGetOptions = {}): Promise<DhtValue | undefined> {
    return this.#call(options, (signal) => {
      const consistency = options.consistency ?? "linearizable";
      if (consistency !== "linearizable" && consistency !== "any") {
        throw new TypeError(`consistency must be "linearizable" or "any", got ${consistency}`);
      }
      return this.#quorum.read(dhtKey(key), consistency === "any", signal);
    });
  }

  /**
   * Writes a value (bytes, or text as UTF-8) at every replica (last writer
   * wins by version).
   *
   * @returns The version written and how many replicas stored it (at least `minReplicas`).
   * @throws {VersionConflictError} when no replica took it because they hold a newer version.
   * @throws {ReplicationError} when fewer than `minReplicas` (default: a majority) stored it.
   * @throws {QuorumError} when no replica could be reached.
   * @throws {RecordError} for a bad key, an oversized value or a bad version.
   */
  put(
    key: DhtKey,
    value: Uint8Array | string,
    options: DhtPutOptions = {},
  ): Promise<DhtWriteResult> {
    return this.#call(options, async (signal) => {
      const k = dhtKey(key);
      const bytes = this.#checkValue(value);
      checkTtl(options.ttl ?? 0);
      if (options.version !== undefined) checkVersion(options.version);
      if (options.minReplicas !== undefined) checkVersion(options.minReplicas, "minReplicas");
      const { best, found } = await this.#quorum.findValue(k, signal, false);
      const version = options.version ?? Number(best?.version ?? 0n) + 1;
      checkVersion(version);
      const record = this.#record(k, bytes, version, options);
      const replicas = this.#quorum.replicaSet(k, found);
      const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
      const results = await this.#quorum.sendAll(replicas, Opcode.STORE, payload, signal);
      signal.throwIfAborted();
      const stored = results.filter((r) => r.status === "fulfilled").length;
      const needed = options.minReplicas ?? majority(replicas.length);
      if (stored === 0) throw failure(results, replicas.length, "put", needed);
      if (stored < needed) {
        const cause = results.find((r) => r.status === "rejected")?.reason;
        throw new ReplicationError(
          `The put of version ${version} reached ${stored} of ${replicas.length} replicas; ` +
            `${needed} needed (minReplicas)${cause ? `; one failed: ${errorText(cause)}` : ""}`,
          { version, replicas: stored, needed, asked: replicas.length, cause },
        );
      }
      this.#publish(record);
      return { version, replicas: stored };
    });
  }

  /**
   * Atomic compare-and-swap: writes `value` at version `expectedVersion + 1`
   * if the replicas hold `expectedVersion` (0: no value yet). Succeeds only
   * when a majority of the replicas agreed (see the module doc).
   *
   * @throws {VersionConflictError} when it lost (with the version the replicas hold).
   * @throws {QuorumError} when too few replicas answered.
   */
  cas(
    key: DhtKey,
    value: Uint8Array | string,
    expectedVersion: number,
    options: DhtWriteOptions = {},
  ): Promise<DhtWriteResult> {
    return this.#call(options, async (signal) => {
      const k = dhtKey(key);
      const bytes = this.#checkValue(value);
      if (expectedVersion !== 0) checkVersion(expectedVersion, "expectedVersion");
      const record = this.#record(k, bytes, expectedVersion + 1, options);
      const expected = BigInt(expectedVersion);
      const result = await this.#quorum.atomic(record, expected, signal, (proposal) => [
        Opcode.DHT_CAS,
        toBinary(
          CasRequestSchema,
          create(CasRequestSchema, {
            record,
            expectedVersion: expected,
            proposal,
            phase: CasPhase.PREPARE,
          }),
        ),
      ]);
      this.#publish(record);
      return result;
    });
  }

  /**
   * Applies a patch to the value at `baseVersion`, atomically (as
   * {@linkcode Dht.cas}): the new value is at `baseVersion + 1` and the
   * patch joins the key's history.
   *
   * @throws {VersionConflictError} when the value is not at `baseVersion`.
   * @throws {PatchError} when the patch does not apply to the value.
   * @throws {QuorumError} when too few replicas answered.
   */
  patch(
    key: DhtKey,
    patch: DhtPatch,
    baseVersion: number,
    options: DhtWriteOptions = {},
  ): Promise<DhtWriteResult> {
    return this.#call(options, async (signal) => {
      const k = dhtKey(key);
      checkVersion(baseVersion, "baseVersion");
      checkTtl(options.ttl ?? 0);
      const current = await this.#quorum.read(k, false, signal);
      if (!current || current.version !== baseVersion) {
        throw new VersionConflictError(
          `Cannot patch version ${baseVersion}: the DHT holds ${current?.version ?? "no value"}`,
          { currentVersion: current?.version ?? 0, currentValue: current?.value },
        );
      }
      const message = patchMessage(patch, baseVersion);
      const value = applyPatch(current.value, message, this.#quorum.maxValueSize);
      message.valueHash = sha256(value);
      const record = this.#record(k, value, baseVersion + 1, options);
      message.signature = record.signature;
      const result = await this.#quorum.atomic(record, BigInt(baseVersion), signal, (p) => [
        Opcode.DHT_PATCH,
        toBinary(
          PatchRequestSchema,
          create(PatchRequestSchema, {
            key: k,
            patch: message,
            proposal: p,
            owner: record.owner,
            ttlMs: record.ttlMs,
          }),
        ),
      ]);
      this.#publish(record);
      return result;
    });
  }

  /**
   * The changes to a key since `sinceVersion`, from the closest replicas
   * (the one holding the newest version answers): the patches in order, or
   * the whole value when that history is gone (each replica keeps the last
   * `historyLength` patches). Apply them with `applyChanges`.
   */
  changes(key: DhtKey, sinceVersion: number, options: DhtCallOptions = {}): Promise<DhtChanges> {
    return this.#call(options, async (signal) => {
      const k = dhtKey(key);
      if (!Number.isSafeInteger(sinceVersion) || sinceVersion < 0) {
        throw new RecordError(`sinceVersion must be an integer from 0, got ${sinceVersion}`);
      }
      const replicas = (await this.#quorum.replicasOf(k, signal))
        .slice(0, DHT_DEFAULTS.changesReplicas);
      const payload = toBinary(
        ChangesRequestSchema,
        create(ChangesRequestSchema, { key: k, sinceVersion: BigInt(sinceVersion) }),
      );
      const results = await this.#quorum.sendAll(replicas, Opcode.DHT_CHANGES, payload, signal);
      signal.throwIfAborted();
      let best: DhtChanges | undefined;
      for (const r of results) {
        if (r.status !== "fulfilled") continue;
        const changes = readChanges(k, sinceVersion, r.value);
        if (changes && (!best || changes.currentVersion > best.currentVersion)) best = changes;
      }
      if (!best) throw failure(results, replicas.length, "changes");
      return best;
    });
  }

  /**
   * Acquires a lock: granted when a majority of the key's replicas grant it.
   *
   * @throws {LockHeldError} when another node holds it (its address, token and remaining lease).
   * @throws {QuorumError} when too few replicas answered.
   */
  lock(key: DhtKey, options: DhtLockOptions = {}): Promise<DhtLease> {
    return this.#call(options, async (signal) => {
      const k = dhtKey(key);
      const ttl = options.ttl ?? DHT_DEFAULTS.lockTtl;
      if (!Number.isSafeInteger(ttl) || ttl < 1) {
        throw new RecordError(`Lock ttl must be a positive integer of ms, got ${ttl}`);
      }
      const replicas = await this.#quorum.replicasOf(k, signal);
      const lease = await leases.acquire(this.#quorum, this.#host.clock, k, ttl, replicas, signal);
      this.#leaseReplicas.set(lease, replicas);
      return lease;
    });
  }

  /**
   * Renews a lease for `ttl` more from now.
   *
   * @throws {LockHeldError} or {@linkcode QuorumError} when the lease was lost.
   */
  renew(lease: DhtLease, options: DhtLockOptions = {}): Promise<DhtLease> {
    return this.#call(options, async (signal) => {
      const ttl = options.ttl ?? lease.ttl;
      const replicas = await this.#replicasOfLease(lease, signal);
      const renewed = await leases.renew(
        this.#quorum,
        this.#host.clock,
        lease,
        ttl,
        replicas,
        signal,
      );
      this.#leaseReplicas.set(renewed, replicas);
      return renewed;
    });
  }

  /**
   * Releases a lease at every replica that answers. A lease that lapsed or
   * was released already is no error.
   *
   * @returns Whether a replica still held the lease (false: it had lapsed or was released already).
   * @throws {LockHeldError} when a majority of the replicas say another node holds the lock (a lease of another identity).
   */
  unlock(lease: DhtLease, options: DhtCallOptions = {}): Promise<boolean> {
    return this.#call(options, async (signal) => {
      const replicas = await this.#replicasOfLease(lease, signal);
      return await leases.unlock(this.#quorum, lease, replicas, signal);
    });
  }

  /**
   * Stores again, at the current replicas, every record this node wrote, so
   * that they outlive their TTL and reach nodes that joined since. Runs
   * every `republishInterval`; a record another writer has superseded is
   * dropped from the list.
   */
  republish(options: DhtCallOptions = {}): Promise<number> {
    return this.#call(options, async (signal) => {
      let sent = 0;
      for (const [id, record] of [...this.#published]) {
        signal.throwIfAborted();
        const replicas = await this.#quorum.replicasOf(record.key, signal);
        const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
        const results = await this.#quorum.sendAll(replicas, Opcode.STORE, payload, signal);
        const stored = results.filter((r) => r.status === "fulfilled").length;
        sent += stored;
        const superseded = results.some((r) =>
          r.status === "rejected" && r.reason instanceof NackError &&
          (r.reason.reason === NackReason.VERSION_CONFLICT ||
            r.reason.reason === NackReason.FORBIDDEN)
        );
        if (superseded && stored === 0) this.#published.delete(id);
      }
      return sent;
    });
  }

  // ---- internals ----

  /**
   * Runs a call with a signal that aborts when the caller's does or the node
   * closes: refused at once after the node began to close, and rejected with
   * its `NodeClosedError` as soon as it does.
   */
  #call<T>(options: DhtCallOptions, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const closed = this.#host.signal;
    if (closed.aborted) return Promise.reject(closed.reason);
    const signal = options.signal ? AbortSignal.any([closed, options.signal]) : closed;
    return new Promise<T>((resolve, reject) => {
      const onClose = () => reject(closed.reason);
      closed.addEventListener("abort", onClose, { once: true });
      const done = () => closed.removeEventListener("abort", onClose);
      let work: Promise<T>;
      try {
        work = run(signal);
      } catch (err) {
        work = Promise.reject(err);
      }
      work.then(
        (value) => {
          done();
          resolve(value);
        },
        (err) => {
          done();
          reject(closed.aborted ? closed.reason : err);
        },
      );
    });
  }

  /** The replicas a lease was granted by, or (a lease of another client) the key's. */
  async #replicasOfLease(lease: DhtLease, signal: AbortSignal): Promise<readonly Contact[]> {
    return this.#leaseReplicas.get(lease) ?? await this.#quorum.replicasOf(lease.key, signal);
  }

  #record(key: Uint8Array, value: Uint8Array, version: number, options: DhtWriteOptions): Record {
    if (options.owned && !this.#host.identity) {
      throw new RecordError("This node has no identity to sign an owned record with");
    }
    return createRecord({
      key,
      value,
      version,
      ttl: options.ttl,
      owner: options.owned ? this.#host.identity : undefined,
    });
  }

  /** A value as bytes (text is UTF-8), within the size limit. */
  #checkValue(value: Uint8Array | string): Uint8Array {
    if (typeof value === "string") value = new TextEncoder().encode(value);
    if (!(value instanceof Uint8Array)) {
      throw new RecordError("A DHT value is a Uint8Array or a string");
    }
    if (value.length > this.#quorum.maxValueSize) {
      throw new RecordError(
        `The value is ${value.length} bytes, over the limit of ${this.#quorum.maxValueSize}`,
      );
    }
    return value;
  }

  #publish(record: Record): void {
    const id = toHex(record.key);
    this.#published.delete(id);
    this.#published.set(id, record);
    if (this.#published.size > this.#maxPublished) {
      this.#published.delete(this.#published.keys().next().value!);
    }
  }
}
