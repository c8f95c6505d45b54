/**
 * A replica's storage: records with expiry, prepared atomic writes, patch
 * history and locks, with every rule a replica applies to what peers ask. No
 * I/O: the DHT decodes requests, calls this, and answers with what it
 * returns or NACKs with the {@linkcode Refusal} it throws.
 *
 * Rules:
 *
 * - **STORE**: a valid record (see `recordProblem`) replaces the held one when
 *   its version is higher; the same version with the same value refreshes its
 *   expiry; a lower version, or the same version with another value, is
 *   refused (`VERSION_CONFLICT`, with the held record). A key held owned only
 *   takes records of the same owner (`FORBIDDEN`).
 * - **Atomic writes** (compare-and-swap and patch) in two phases: PREPARE
 *   reserves the key for one proposal when the replica holds the expected
 *   version and no other live reservation (else `VERSION_CONFLICT`, `busy`
 *   when reserved); COMMIT stores the prepared record, and only while the
 *   proposal's reservation is live (a COMMIT repeated after it took effect is
 *   acknowledged again; any other is refused `VERSION_CONFLICT`, even with an
 *   equal value: a replica that missed the PREPARE gets the value by read
 *   repair); ABORT drops the reservation. A reservation lapses after
 *   `reservationTime`.
 * - **Patch history**: each committed patch is kept (at most
 *   `historyLength` per key); any other write clears the history, since the
 *   chain of patches no longer leads to the value.
 * - **Locks**: one holder at a time per key until its lease lapses; tokens
 *   per key strictly increase, also across holders, and are remembered after
 *   release (a lock forgotten to stay within `maxLocks` raises a floor no
 *   later token goes below).
 * - **Limits**: what the store keeps is its own copy (never a view into a
 *   received frame), counted as `bytes` says; records and reservations
 *   count against `maxRecords` and `maxBytes` alike. Each peer (by address)
 *   has quotas of records, bytes, live reservations and leases; past one, or
 *   when the store is full and no farther key can be evicted, a request is
 *   refused `RATE_LIMITED` with a message naming the limit. A PREPARE is
 *   admitted for the record its COMMIT will store, so a COMMIT is never
 *   refused for a limit.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  ByteSpliceSchema,
  type CasRequest,
  type ChangesReply,
  ChangesReplySchema,
  type LockGrant,
  LockGrantSchema,
  LockHeldSchema,
  type LockRequest,
  type Patch,
  type PatchRequest,
  PatchSchema,
  type Record,
  RecordSchema,
  type StoreReply,
  StoreReplySchema,
  VersionConflictSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason } from "../../gen/carrier/v1/frame_pb.ts";
import { toBinary } from "@bufbuild/protobuf";
import { bytesEqual, toHex } from "../_bytes.ts";
import { type Clock, systemClock } from "../clock.ts";
import { PatchError, Refusal } from "../errors.ts";
import { formatAddress, parseAddress } from "../identity/address.ts";
import { compareDistance } from "../identity/node_id.ts";
import { applyPatch } from "./patch.ts";

export { applyPatch, splicesOf } from "./patch.ts";
import {
  DEFAULT_MAX_VALUE_SIZE,
  DHT_KEY_LENGTH,
  type RecordProblem,
  recordProblem,
} from "./record.ts";

/**
 * Bytes a held record or a reservation is counted for beyond its own bytes
 * (key, value, owner and signature): the objects that hold it (the entry,
 * the record message, its typed arrays and their buffers, the map slot, the
 * key's hex id and the value's SHA-256), so that `maxBytes` bounds memory
 * even for records of a few bytes. Deno 2.9 (V8) allocates about 550 bytes
 * for them (measured over 50,000 records); this leaves room for other
 * engines and versions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_ENTRY_OVERHEAD, DhtStore } from "./store.ts";
 * import { createRecord, dhtKey } from "./record.ts";
 * const store = new DhtStore();
 * store.store(createRecord({ key: dhtKey("k"), value: new Uint8Array(10), version: 1 }));
 * assert.equal(store.bytes, DHT_ENTRY_OVERHEAD + 32 + 10); // overhead, key, value
 * ```
 */
export const DHT_ENTRY_OVERHEAD = 1024;

/**
 * Bytes a patch kept in a key's history (or carried by a reservation) is
 * counted for beyond its own bytes (JSON text as UTF-16, splice inserts,
 * hash and signature); each splice adds {@linkcode DHT_SPLICE_OVERHEAD}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_PATCH_OVERHEAD, DHT_SPLICE_OVERHEAD } from "./store.ts";
 * assert.ok(DHT_PATCH_OVERHEAD > DHT_SPLICE_OVERHEAD);
 * ```
 */
export const DHT_PATCH_OVERHEAD = 512;

/**
 * Bytes each splice of a kept patch is counted for beyond its insert.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_SPLICE_OVERHEAD } from "./store.ts";
 * assert.equal(DHT_SPLICE_OVERHEAD, 256);
 * ```
 */
export const DHT_SPLICE_OVERHEAD = 256;

/** The defaults of a replica store's limits (see {@linkcode DhtStoreOptions}). */
export const DHT_STORE_LIMITS = {
  maxRecords: 10_000,
  maxBytes: 64 * 1024 * 1024,
  maxLocks: 10_000,
  maxRecordsPerPeer: 1_000,
  maxBytesPerPeer: 8 * 1024 * 1024,
  maxReservationsPerPeer: 16,
  maxLocksPerPeer: 64,
} as const;

/**
 * Limits and times of a {@linkcode DhtStore}.
 *
 * Memory is bounded by `maxBytes` (everything held, counted as
 * {@linkcode DhtStore.bytes} says) and `maxLocks`; one peer (by address)
 * holds at most `maxRecordsPerPeer` records and `maxBytesPerPeer` bytes of
 * records and reservations, `maxReservationsPerPeer` live reservations and
 * `maxLocksPerPeer` leases. This node's own requests (`address`) are exempt
 * from the per-peer quotas, not from the store's limits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtStoreOptions, MemoryNetwork, RecordError } from "@carrier/p2p";
 * const dht: DhtStoreOptions = { maxValueSize: 16, maxRecords: 100, maxRecordsPerPeer: 10 };
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"], dht });
 * await node.dht.put("small", new Uint8Array(16));
 * await assert.rejects(node.dht.put("large", new Uint8Array(17)), RecordError);
 * ```
 */
export interface DhtStoreOptions {
  /** Source of time. @default {systemClock} */
  clock?: Clock;
  /** Largest value stored, in bytes. @default {DEFAULT_MAX_VALUE_SIZE} (64 KiB) */
  maxValueSize?: number;
  /** Records held at most, reservations of keys not held yet included. @default {10_000} */
  maxRecords?: number;
  /**
   * Bytes held at most: each record's key, value, owner and signature, its
   * patch history, and every reservation (prepared write), each counted
   * with {@linkcode DHT_ENTRY_OVERHEAD} (a patch with
   * {@linkcode DHT_PATCH_OVERHEAD}) more.
   *
   * @default {64 MiB}
   */
  maxBytes?: number;
  /** Time to live of a record that asks for none, in ms. @default {3_600_000} (1 h) */
  defaultTtl?: number;
  /** Longest time to live granted, in ms. @default {86_400_000} (24 h) */
  maxTtl?: number;
  /** Patches kept per key. @default {32} */
  historyLength?: number;
  /** How long a prepared write holds its key, in ms; a repeated PREPARE does not extend it. @default {5_000} */
  reservationTime?: number;
  /** Locks remembered at most (held ones and released ones' highest tokens). @default {10_000} */
  maxLocks?: number;
  /** Longest lease granted, in ms. @default {300_000} */
  maxLockTtl?: number;
  /**
   * This node's NodeId. When the store is full, a record whose key is
   * closer to it (XOR) than the farthest key held evicts the farthest keys
   * it needs room for, as Kademlia keeps the closest; keys reserved by a
   * live write or locked are never evicted. Without it a full store refuses
   * new keys.
   *
   * @default {none (a node's DHT passes its own)}
   */
  nodeId?: Uint8Array;
  /** This node's address: its own requests are exempt from the per-peer quotas. @default {none (a node's DHT passes its own)} */
  address?: string;
  /** Records held that one peer stored (the peer that wrote the version held). @default {1_000} */
  maxRecordsPerPeer?: number;
  /** Bytes (counted as `maxBytes` counts them) of records and reservations one peer stored. @default {8 MiB} */
  maxBytesPerPeer?: number;
  /** Live reservations (prepared writes not committed or aborted) one peer holds. @default {16} */
  maxReservationsPerPeer?: number;
  /** Leases one peer holds. @default {64} */
  maxLocksPerPeer?: number;
}

interface Pending {
  proposal: string;
  record: Record;
  patch?: Patch;
  expiresAt: number;
  /** The peer that prepared it (undefined: this node). */
  peer?: string;
  /** Bytes counted for it. */
  bytes: number;
}

interface Entry {
  record: Record;
  hash: Uint8Array;
  expiresAt: number;
  /** Patches that led to the value, oldest first (replaced, never changed in place). */
  history: readonly Patch[];
  historyBytes: number;
  /** Bytes counted for the record and its history. */
  bytes: number;
  /** The peer that stored the version held (undefined: this node). */
  peer?: string;
  pending?: Pending;
  /** The proposal whose COMMIT wrote the version held, if an atomic write did. */
  committedBy?: string;
}

interface LockState {
  holder?: string;
  token: number;
  expiresAt: number;
  highest: number;
}

/** What one peer holds here; dropped when it holds nothing. */
interface PeerUsage {
  records: number;
  bytes: number;
  /** Ids of the keys it holds reservations of. */
  reservations: Set<string>;
  /** Ids of the keys it holds leases of (lapsed ones are pruned when its quota is reached). */
  leases: Set<string>;
}

/** What a write needs: record slots and bytes, globally and for its peer. */
interface Need {
  slots: number;
  bytes: number;
  peerRecords: number;
  peerBytes: number;
}

const NO_HISTORY: readonly Patch[] = Object.freeze([]);

/** The refusal of each way a record is not valid (README, Refusals: `store-*`). */
const RECORD_REFUSALS: Readonly<{ [P in RecordProblem]: NackReason }> = {
  "malformed": NackReason.MALFORMED,
  "too-large": NackReason.TOO_LARGE,
  "bad-signature": NackReason.BAD_SIGNATURE,
};

/** A replica's records and locks. */
export class DhtStore {
  readonly #clock: Clock;
  readonly #maxValueSize: number;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #defaultTtl: number;
  readonly #maxTtl: number;
  readonly #historyLength: number;
  readonly #reservationTime: number;
  readonly #maxLocks: number;
  readonly #maxLockTtl: number;
  readonly #nodeId: Uint8Array | undefined;
  readonly #self: string | undefined;
  readonly #maxRecordsPerPeer: number;
  readonly #maxBytesPerPeer: number;
  readonly #maxReservationsPerPeer: number;
  readonly #maxLocksPerPeer: number;
  readonly #entries = new Map<string, Entry>();
  readonly #locks = new Map<string, LockState>();
  /** Reservations of keys not held yet (expected version 0). */
  readonly #pendingFirst = new Map<string, Pending>();
  readonly #peers = new Map<string, PeerUsage>();
  /** Records held plus reservations of keys not held yet. */
  #slots = 0;
  #bytes = 0;
  #reservations = 0;
  /** The highest token of every lock forgotten: no lock is granted a token at or below it. */
  #tokenFloor = 0;

  /** Creates an empty store. */
  constructor(options: DhtStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#maxValueSize = options.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE;
    this.#maxRecords = options.maxRecords ?? DHT_STORE_LIMITS.maxRecords;
    this.#maxBytes = options.maxBytes ?? DHT_STORE_LIMITS.maxBytes;
    this.#defaultTtl = options.defaultTtl ?? 3_600_000;
    this.#maxTtl = options.maxTtl ?? 86_400_000;
    this.#historyLength = options.historyLength ?? 32;
    this.#reservationTime = options.reservationTime ?? 5_000;
    this.#maxLocks = options.maxLocks ?? DHT_STORE_LIMITS.maxLocks;
    this.#maxLockTtl = options.maxLockTtl ?? 300_000;
    this.#nodeId = options.nodeId?.slice();
    this.#self = options.address;
    this.#maxRecordsPerPeer = options.maxRecordsPerPeer ?? DHT_STORE_LIMITS.maxRecordsPerPeer;
    this.#maxBytesPerPeer = options.maxBytesPerPeer ?? DHT_STORE_LIMITS.maxBytesPerPeer;
    this.#maxReservationsPerPeer = options.maxReservationsPerPeer ??
      DHT_STORE_LIMITS.maxReservationsPerPeer;
    this.#maxLocksPerPeer = options.maxLocksPerPeer ?? DHT_STORE_LIMITS.maxLocksPerPeer;
  }

  /** Records held (expired ones included until touched or swept). */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Bytes held, as `maxBytes` counts them: records (key, value, owner,
   * signature), patch history and reservations, each with its fixed
   * overhead ({@linkcode DHT_ENTRY_OVERHEAD}, {@linkcode DHT_PATCH_OVERHEAD}).
   */
  get bytes(): number {
    return this.#bytes;
  }

  /** Reservations held (lapsed ones included until touched or swept). */
  get reservations(): number {
    return this.#reservations;
  }

  /** Locks remembered (held ones and released ones' highest tokens). */
  get locks(): number {
    return this.#locks.size;
  }

  /** The largest value stored, in bytes. */
  get maxValueSize(): number {
    return this.#maxValueSize;
  }

  /**
   * The size of every buffer behind the bytes held (each distinct
   * `ArrayBuffer` once): records, hashes, patches and reservations. Since
   * the store copies what it keeps, this never exceeds
   * {@linkcode DhtStore.bytes}: no received frame is retained.
   */
  retainedBytes(): number {
    const buffers = new Set<ArrayBufferLike>();
    const addRecord = (r: Record) => {
      for (const b of [r.key, r.value, r.owner, r.signature]) buffers.add(b.buffer);
    };
    const addPatch = (p: Patch) => {
      buffers.add(p.valueHash.buffer);
      buffers.add(p.signature.buffer);
      for (const s of p.splices) buffers.add(s.insert.buffer);
    };
    const addPending = (p: Pending) => {
      addRecord(p.record);
      if (p.patch) addPatch(p.patch);
    };
    for (const entry of this.#entries.values()) {
      addRecord(entry.record);
      buffers.add(entry.hash.buffer);
      entry.history.forEach(addPatch);
      if (entry.pending) addPending(entry.pending);
    }
    this.#pendingFirst.forEach(addPending);
    let total = 0;
    for (const b of buffers) total += b.byteLength;
    return total;
  }

  /** The live record of `key`, if held. */
  get(key: Uint8Array): Record | undefined {
    return this.#live(toHex(key))?.record;
  }

  /** Every live record (for handing values to newly joined nodes). */
  *records(): Generator<Record> {
    for (const [id] of this.#entries) {
      const entry = this.#live(id);
      if (entry) yield entry.record;
    }
  }

  /** Drops expired records and lapsed reservations. */
  sweep(): void {
    this.#sweep(undefined);
  }

  /** STORE from `requester` (an address; this node's own or none: exempt from quotas). */
  store(record: Record, requester?: string): StoreReply {
    this.#check(record);
    const id = toHex(record.key);
    const entry = this.#live(id);
    if (entry) {
      this.#checkOwner(entry.record, record.owner);
      const order = compareVersion(record, entry);
      if (order < 0) throw this.#conflict(entry, "a newer version is held");
      if (order === 0) {
        entry.expiresAt = this.#expiry(record);
        return create(StoreReplySchema, { version: record.version });
      }
    }
    this.#put(id, record, undefined, this.#peerOf(requester));
    return create(StoreReplySchema, { version: record.version });
  }

  /** DHT_CAS: one phase of a compare-and-swap (or the commit or abort of a patch). */
  cas(request: CasRequest, requester?: string): StoreReply {
    const record = request.record;
    if (!record || record.key.length !== DHT_KEY_LENGTH) {
      throw new Refusal(NackReason.MALFORMED, `DHT_CAS needs a record with a 32-byte key`);
    }
    if (request.proposal.length !== 16) {
      throw new Refusal(NackReason.MALFORMED, `DHT_CAS proposal must be 16 bytes`);
    }
    const id = toHex(record.key);
    const proposal = toHex(request.proposal);
    const entry = this.#live(id);
    const peer = this.#peerOf(requester);
    switch (request.phase) {
      case 1: { // PREPARE
        this.#check(record);
        if (record.version <= request.expectedVersion) {
          throw new Refusal(
            NackReason.MALFORMED,
            `CAS version ${record.version} is not above the expected ${request.expectedVersion}`,
          );
        }
        this.#reserve(id, entry, request.expectedVersion, proposal, record, undefined, peer);
        return create(StoreReplySchema, { version: record.version });
      }
      case 2: { // COMMIT
        if (entry?.pending?.proposal === proposal) {
          const prepared = entry.pending;
          this.#unreserve(id, prepared);
          if (prepared.record.version > entry.record.version) {
            this.#put(id, prepared.record, prepared.patch, prepared.peer, proposal);
          }
          return create(StoreReplySchema, { version: this.#live(id)!.record.version });
        }
        const first = this.#pendingFirst.get(id); // live: #live dropped a lapsed one
        if (!entry && first?.proposal === proposal) {
          this.#put(id, first.record, undefined, first.peer, proposal);
          return create(StoreReplySchema, { version: first.record.version });
        }
        // The same COMMIT again (a retry): done already.
        if (entry?.committedBy === proposal) {
          return create(StoreReplySchema, { version: entry.record.version });
        }
        // Not prepared here, or the reservation lapsed (another write may
        // have taken the version since): only a live reservation commits.
        throw entry
          ? this.#conflict(entry, "the COMMIT's proposal holds no live reservation here")
          : new Refusal(
            NackReason.VERSION_CONFLICT,
            "the COMMIT's proposal holds no live reservation here",
            toBinary(VersionConflictSchema, create(VersionConflictSchema, { currentVersion: 0n })),
          );
      }
      case 3: { // ABORT
        const pending = entry ? entry.pending : this.#pendingFirst.get(id);
        if (pending?.proposal === proposal) this.#unreserve(id, pending);
        return create(StoreReplySchema, { version: entry?.record.version ?? 0n });
      }
      default:
        throw new Refusal(NackReason.MALFORMED, `DHT_CAS phase ${request.phase} is not valid`);
    }
  }

  /** DHT_PATCH: the PREPARE of a patch (committed or aborted by {@linkcode DhtStore.cas}). */
  preparePatch(request: PatchRequest, requester?: string): StoreReply {
    const patch = request.patch;
    if (request.key.length !== DHT_KEY_LENGTH || !patch) {
      throw new Refusal(NackReason.MALFORMED, "DHT_PATCH needs a 32-byte key and a patch");
    }
    if (request.proposal.length !== 16) {
      throw new Refusal(NackReason.MALFORMED, `DHT_PATCH proposal must be 16 bytes`);
    }
    if (patch.version <= patch.baseVersion) {
      throw new Refusal(NackReason.MALFORMED, "A patch's version must be above its base version");
    }
    const id = toHex(request.key);
    const entry = this.#live(id);
    if (!entry || entry.record.version !== patch.baseVersion) {
      throw entry
        ? this.#conflict(entry, `the patch is against version ${patch.baseVersion}`)
        : new Refusal(
          NackReason.VERSION_CONFLICT,
          "no value to patch",
          toBinary(VersionConflictSchema, create(VersionConflictSchema, { currentVersion: 0n })),
        );
    }
    let value: Uint8Array;
    try {
      value = applyPatch(entry.record.value, patch, this.#maxValueSize);
    } catch (err) {
      if (!(err instanceof PatchError)) throw err;
      throw new Refusal(NackReason.MALFORMED, err.message);
    }
    if (!bytesEqual(sha256(value), patch.valueHash)) {
      throw new Refusal(
        NackReason.VERSION_CONFLICT,
        "the patched value's hash differs from the patch's (replicas diverged)",
        toBinary(VersionConflictSchema, this.#conflictData(entry)),
      );
    }
    const record = create(RecordSchema, {
      key: request.key,
      value,
      version: patch.version,
      owner: request.owner,
      signature: patch.signature,
      ttlMs: request.ttlMs,
    });
    this.#check(record);
    const peer = this.#peerOf(requester);
    this.#reserve(id, entry, patch.baseVersion, toHex(request.proposal), record, patch, peer);
    return create(StoreReplySchema, { version: record.version });
  }

  /** DHT_CHANGES: the patches since a version, or the whole record when they are gone. */
  changes(key: Uint8Array, since: bigint): ChangesReply {
    if (key.length !== DHT_KEY_LENGTH) {
      throw new Refusal(NackReason.MALFORMED, "DHT_CHANGES needs a 32-byte key");
    }
    const entry = this.#live(toHex(key));
    if (!entry) return create(ChangesReplySchema, { currentVersion: 0n });
    const current = entry.record.version;
    if (since >= current) return create(ChangesReplySchema, { currentVersion: current });
    const start = entry.history.findIndex((p) => p.baseVersion === since);
    if (start < 0) {
      return create(ChangesReplySchema, { currentVersion: current, record: entry.record });
    }
    return create(ChangesReplySchema, {
      currentVersion: current,
      patches: entry.history.slice(start),
    });
  }

  /** DHT_LOCK: acquire (token 0) or renew a lease for `requester` (an address). */
  lock(request: LockRequest, requester: string): LockGrant {
    if (request.key.length !== DHT_KEY_LENGTH) {
      throw new Refusal(NackReason.MALFORMED, "DHT_LOCK needs a 32-byte key");
    }
    if (request.minFencingToken > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new Refusal(NackReason.MALFORMED, "min_fencing_token is above 2^53 - 1");
    }
    const now = this.#clock.now();
    const ttl = Math.min(Number(request.ttlMs) || 10_000, this.#maxLockTtl);
    const id = toHex(request.key);
    let state = this.#locks.get(id);
    const held = state?.holder !== undefined && state.expiresAt > now;
    if (held && state!.holder !== requester) throw this.#held(state!, now);
    if (request.fencingToken !== 0n) {
      if (!held || BigInt(state!.token) !== request.fencingToken) {
        throw new Refusal(NackReason.VERSION_CONFLICT, "the lease was lost (expired or released)");
      }
      state!.expiresAt = now + ttl;
      return create(LockGrantSchema, { fencingToken: BigInt(state!.token), ttlMs: BigInt(ttl) });
    }
    const min = Number(request.minFencingToken);
    const peer = this.#peerOf(requester);
    if (!held && peer !== undefined) this.#checkLeases(peer, now);
    if (!state) {
      this.#evictLocks();
      state = { token: 0, expiresAt: 0, highest: this.#tokenFloor };
    }
    this.#locks.delete(id); // re-insert: most recently used last
    this.#locks.set(id, state);
    if (!held && state.holder !== undefined) this.#unlease(state.holder, id); // a lapsed lease
    state.token = held ? Math.max(state.token, min) : Math.max(state.highest + 1, min);
    state.highest = Math.max(state.highest, state.token);
    state.holder = requester;
    state.expiresAt = now + ttl;
    if (peer !== undefined) this.#usage(peer).leases.add(id);
    return create(LockGrantSchema, { fencingToken: BigInt(state.token), ttlMs: BigInt(ttl) });
  }

  /** DHT_UNLOCK: releases `requester`'s lease; returns whether there was one to release. */
  unlock(key: Uint8Array, fencingToken: bigint, requester: string): boolean {
    if (key.length !== DHT_KEY_LENGTH) {
      throw new Refusal(NackReason.MALFORMED, "DHT_UNLOCK needs a 32-byte key");
    }
    const now = this.#clock.now();
    const id = toHex(key);
    const state = this.#locks.get(id);
    if (!state || state.holder === undefined || state.expiresAt <= now) return false;
    if (state.holder !== requester) throw this.#held(state, now);
    if (fencingToken !== 0n && BigInt(state.token) !== fencingToken) return false; // an older lease
    this.#unlease(state.holder, id);
    state.holder = undefined;
    return true;
  }

  // ---- internals ----

  /** The peer a request is counted against: none for this node's own. */
  #peerOf(requester: string | undefined): string | undefined {
    return requester === this.#self ? undefined : requester;
  }

  #reserve(
    id: string,
    entry: Entry | undefined,
    expected: bigint,
    proposal: string,
    record: Record,
    patch: Patch | undefined,
    peer: string | undefined,
  ): void {
    if (entry) this.#checkOwner(entry.record, record.owner);
    const current = entry?.record.version ?? 0n;
    if (current !== expected) throw this.#conflict(entry, `version ${expected} was expected`);
    // Live, if any: #live dropped a lapsed one.
    const pending = entry ? entry.pending : this.#pendingFirst.get(id);
    if (pending && pending.proposal !== proposal) {
      throw this.#conflict(entry, "another write is in progress", true);
    }
    if (peer !== undefined && pending?.peer !== peer) this.#checkReservations(peer);
    const kept = ownRecord(record).record;
    const keptPatch = patch && ownPatch(patch);
    const bytes = recordBytes(kept) + (keptPatch ? patchBytes(keptPatch) : 0);
    const freed = pending?.bytes ?? 0;
    this.#admit(id, record.key, peer, {
      slots: entry || pending ? 0 : 1,
      bytes: bytes - freed,
      // The record the COMMIT will count for the peer: refused now, not then.
      peerRecords: entry?.peer === peer ? 0 : 1,
      peerBytes: bytes - (pending && pending.peer === peer ? freed : 0),
    });
    // A PREPARE repeated for the same proposal keeps its deadline: a
    // reservation is never extended past reservationTime.
    const expiresAt = pending?.expiresAt ?? this.#clock.now() + this.#reservationTime;
    if (pending) this.#unreserve(id, pending);
    const reservation: Pending = {
      proposal,
      record: kept,
      patch: keptPatch,
      expiresAt,
      peer,
      bytes,
    };
    if (entry) {
      entry.pending = reservation;
    } else {
      this.#pendingFirst.set(id, reservation);
      this.#slots++;
    }
    this.#bytes += bytes;
    this.#reservations++;
    if (peer !== undefined) {
      const usage = this.#usage(peer);
      usage.bytes += bytes;
      usage.reservations.add(id);
    }
  }

  /** Drops a reservation (of a held key or a first version) and what it counted. */
  #unreserve(id: string, pending: Pending): void {
    const entry = this.#entries.get(id);
    if (entry?.pending === pending) {
      entry.pending = undefined;
    } else if (this.#pendingFirst.get(id) === pending) {
      this.#pendingFirst.delete(id);
      this.#slots--;
    } else {
      return;
    }
    this.#bytes -= pending.bytes;
    this.#reservations--;
    if (pending.peer !== undefined) {
      const usage = this.#peers.get(pending.peer);
      if (usage) {
        usage.bytes -= pending.bytes;
        usage.reservations.delete(id);
        this.#tidy(pending.peer, usage);
      }
    }
  }

  /** Refuses a new reservation by `peer` when it holds its quota of live ones. */
  #checkReservations(peer: string): void {
    const usage = this.#peers.get(peer);
    if (!usage || usage.reservations.size < this.#maxReservationsPerPeer) return;
    for (const id of [...usage.reservations]) this.#live(id); // drops the lapsed ones
    if (usage.reservations.size >= this.#maxReservationsPerPeer) {
      throw new Refusal(
        NackReason.RATE_LIMITED,
        `Peer ${peer} holds ${usage.reservations.size} live reservations here, its quota ` +
          `(maxReservationsPerPeer ${this.#maxReservationsPerPeer})`,
      );
    }
  }

  /** Refuses a new lease for `peer` when it holds its quota of live ones. */
  #checkLeases(peer: string, now: number): void {
    const usage = this.#peers.get(peer);
    if (!usage || usage.leases.size < this.#maxLocksPerPeer) return;
    for (const id of [...usage.leases]) {
      const state = this.#locks.get(id);
      if (!state || state.holder !== peer || state.expiresAt <= now) usage.leases.delete(id);
    }
    if (usage.leases.size >= this.#maxLocksPerPeer) {
      throw new Refusal(
        NackReason.RATE_LIMITED,
        `Peer ${peer} holds ${usage.leases.size} leases here, its quota ` +
          `(maxLocksPerPeer ${this.#maxLocksPerPeer})`,
      );
    }
    this.#tidy(peer, usage);
  }

  #unlease(holder: string, id: string): void {
    const usage = this.#peers.get(holder);
    if (!usage) return;
    usage.leases.delete(id);
    this.#tidy(holder, usage);
  }

  #usage(peer: string): PeerUsage {
    let usage = this.#peers.get(peer);
    if (!usage) {
      usage = { records: 0, bytes: 0, reservations: new Set(), leases: new Set() };
      this.#peers.set(peer, usage);
    }
    return usage;
  }

  #tidy(peer: string, usage: PeerUsage): void {
    if (
      usage.records === 0 && usage.bytes === 0 && usage.reservations.size === 0 &&
      usage.leases.size === 0
    ) this.#peers.delete(peer);
  }

  /** Counts a held record's change for its peer. */
  #charge(peer: string | undefined, records: number, bytes: number): void {
    if (peer === undefined) return;
    const usage = this.#usage(peer);
    usage.records += records;
    usage.bytes += bytes;
    this.#tidy(peer, usage);
  }

  /**
   * Checks that a write fits: the peer's quotas, then the store's limits,
   * after dropping what expired and, when still full, evicting the keys
   * farthest from this node if they are farther than `key`. Throws a
   * `RATE_LIMITED` refusal naming the limit; evicts only when the write fits.
   */
  #admit(id: string, key: Uint8Array, peer: string | undefined, need: Need): void {
    if (peer !== undefined && this.#overQuota(peer, need)) {
      this.#sweep(id); // records of the peer's that expired no longer count
      const usage = this.#peers.get(peer);
      const records = usage?.records ?? 0;
      if (need.peerRecords > 0 && records + need.peerRecords > this.#maxRecordsPerPeer) {
        throw new Refusal(
          NackReason.RATE_LIMITED,
          `Peer ${peer} stored ${records} records held here, its quota ` +
            `(maxRecordsPerPeer ${this.#maxRecordsPerPeer})`,
        );
      }
      const bytes = usage?.bytes ?? 0;
      if (need.peerBytes > 0 && bytes + need.peerBytes > this.#maxBytesPerPeer) {
        throw new Refusal(
          NackReason.RATE_LIMITED,
          `Peer ${peer} stored ${bytes} bytes held here; ${need.peerBytes} more would pass ` +
            `its quota (maxBytesPerPeer ${this.#maxBytesPerPeer})`,
        );
      }
    }
    const fits = (slots: number, bytes: number): boolean =>
      slots <= this.#maxRecords && bytes <= this.#maxBytes;
    if (fits(this.#slots + need.slots, this.#bytes + need.bytes)) return;
    this.#sweep(id);
    let slots = this.#slots + need.slots;
    let bytes = this.#bytes + need.bytes;
    if (fits(slots, bytes)) return;
    const victims: [string, Entry][] = [];
    const self = this.#nodeId;
    if (self) {
      const now = this.#clock.now();
      const farther: [string, Entry][] = [];
      for (const [other, entry] of this.#entries) {
        if (other === id || entry.pending || this.#locked(other, now)) continue;
        if (compareDistance(self, entry.record.key, key) > 0) farther.push([other, entry]);
      }
      farther.sort((a, b) => compareDistance(self, b[1].record.key, a[1].record.key));
      for (const victim of farther) {
        if (fits(slots, bytes)) break;
        victims.push(victim);
        slots--;
        bytes -= victim[1].bytes;
      }
    }
    if (!fits(slots, bytes)) {
      throw new Refusal(
        NackReason.RATE_LIMITED,
        `This node holds ${this.#slots} records (maxRecords ${this.#maxRecords}) and ` +
          `${this.#bytes} bytes (maxBytes ${this.#maxBytes}); no key farther from it ` +
          `can make way`,
      );
    }
    for (const [other, entry] of victims) this.#drop(other, entry);
  }

  #overQuota(peer: string, need: Need): boolean {
    const usage = this.#peers.get(peer);
    return (need.peerRecords > 0 &&
      (usage?.records ?? 0) + need.peerRecords > this.#maxRecordsPerPeer) ||
      (need.peerBytes > 0 && (usage?.bytes ?? 0) + need.peerBytes > this.#maxBytesPerPeer);
  }

  #locked(id: string, now: number): boolean {
    const state = this.#locks.get(id);
    return state?.holder !== undefined && state.expiresAt > now;
  }

  #sweep(except: string | undefined): void {
    for (const id of [...this.#entries.keys()]) if (id !== except) this.#live(id);
    const now = this.#clock.now();
    for (const [id, pending] of [...this.#pendingFirst]) {
      if (id !== except && pending.expiresAt <= now) this.#unreserve(id, pending);
    }
  }

  /** The live entry of `id`: expired records and lapsed reservations are dropped on the way. */
  #live(id: string): Entry | undefined {
    const now = this.#clock.now();
    const entry = this.#entries.get(id);
    if (entry && entry.expiresAt <= now) {
      this.#drop(id, entry);
      return undefined;
    }
    if (entry?.pending && entry.pending.expiresAt <= now) this.#unreserve(id, entry.pending);
    if (!entry) {
      const first = this.#pendingFirst.get(id);
      if (first && first.expiresAt <= now) this.#unreserve(id, first);
    }
    return entry;
  }

  /** Holds a copy of `record` for `peer`, with `patch` (the store's own) joining the history. */
  #put(
    id: string,
    received: Record,
    patch: Patch | undefined,
    peer: string | undefined,
    committedBy?: string,
  ): void {
    const { record, extra: hash } = ownRecord(received, 32);
    hash.set(sha256(record.value));
    const old = this.#entries.get(id);
    const first = this.#pendingFirst.get(id);
    let history: readonly Patch[] = NO_HISTORY;
    let historyBytes = 0;
    if (old && patch) {
      const longer = [...old.history, patch];
      historyBytes = old.historyBytes + patchBytes(patch);
      while (longer.length > this.#historyLength) historyBytes -= patchBytes(longer.shift()!);
      history = longer;
    }
    const bytes = recordBytes(record) + historyBytes;
    // A reservation of a later version outlives this write; any other goes.
    const kept = old?.pending && old.pending.record.version > record.version
      ? old.pending
      : undefined;
    const dropped = old?.pending && !kept ? old.pending : undefined;
    const freed = [
      ...(old ? [{ peer: old.peer, bytes: old.bytes }] : []),
      ...[first, dropped].filter((p) => p !== undefined),
    ];
    // A COMMIT stores what its PREPARE was admitted for (the reservation's
    // bytes are freed for it): it is never refused for a quota, so a write a
    // majority prepared is not lost between the phases.
    const committing = committedBy !== undefined;
    this.#admit(id, record.key, peer, {
      slots: 1 - (old ? 1 : 0) - (first ? 1 : 0),
      bytes: bytes - freed.reduce((n, f) => n + f.bytes, 0),
      peerRecords: committing || (old && old.peer === peer) ? 0 : 1,
      peerBytes: committing
        ? 0
        : bytes - freed.reduce((n, f) => n + (f.peer === peer ? f.bytes : 0), 0),
    });
    if (first) this.#unreserve(id, first);
    if (dropped) this.#unreserve(id, dropped);
    if (old) {
      this.#entries.delete(id);
      this.#slots--;
      this.#bytes -= old.bytes;
      this.#charge(old.peer, -1, -old.bytes);
    }
    this.#entries.set(id, {
      record,
      hash,
      expiresAt: this.#expiry(record),
      history,
      historyBytes,
      bytes,
      peer,
      pending: kept,
      committedBy,
    });
    this.#slots++;
    this.#bytes += bytes;
    this.#charge(peer, 1, bytes);
  }

  #drop(id: string, entry: Entry): void {
    if (entry.pending) this.#unreserve(id, entry.pending);
    this.#entries.delete(id);
    this.#slots--;
    this.#bytes -= entry.bytes;
    this.#charge(entry.peer, -1, -entry.bytes);
  }

  #expiry(record: Record): number {
    const ttl = Number(record.ttlMs) || this.#defaultTtl;
    return this.#clock.now() + Math.min(ttl, this.#maxTtl);
  }

  /** Refuses a record that is not valid here: MALFORMED, TOO_LARGE or BAD_SIGNATURE. */
  #check(record: Record): void {
    const found = recordProblem(record, this.#maxValueSize);
    if (found) throw new Refusal(RECORD_REFUSALS[found.problem], found.message);
  }

  #checkOwner(held: Record, owner: Uint8Array): void {
    if (held.owner.length > 0 && !bytesEqual(held.owner, owner)) {
      throw new Refusal(
        NackReason.FORBIDDEN,
        `the key is owned by ${formatAddress(held.owner)}`,
      );
    }
  }

  #conflictData(entry: Entry | undefined, busy = false) {
    return create(VersionConflictSchema, {
      currentVersion: entry?.record.version ?? 0n,
      current: entry?.record,
      busy,
    });
  }

  #conflict(entry: Entry | undefined, why: string, busy = false): Refusal {
    return new Refusal(
      NackReason.VERSION_CONFLICT,
      `Version conflict: ${why}; the replica holds version ${entry?.record.version ?? 0n}`,
      toBinary(VersionConflictSchema, this.#conflictData(entry, busy)),
    );
  }

  #held(state: LockState, now: number): Refusal {
    const holder = state.holder!;
    const data = create(LockHeldSchema, {
      holder: parseAddress(holder),
      fencingToken: BigInt(state.token),
      expiresInMs: BigInt(Math.max(0, Math.ceil(state.expiresAt - now))),
    });
    return new Refusal(
      NackReason.LOCK_HELD,
      `The lock is held by ${holder} for ${Math.ceil(state.expiresAt - now)} ms more`,
      toBinary(LockHeldSchema, data),
    );
  }

  /**
   * Makes room for one more lock: forgets the least recently used lock not
   * held. Its highest token raises the store's floor, so that a lock created
   * later for that key (or any) is never granted a token it granted.
   */
  #evictLocks(): void {
    if (this.#locks.size < this.#maxLocks) return;
    const now = this.#clock.now();
    for (const [id, state] of this.#locks) {
      // Oldest first; a held lock is never forgotten.
      if (state.holder === undefined || state.expiresAt <= now) {
        if (state.holder !== undefined) this.#unlease(state.holder, id);
        this.#tokenFloor = Math.max(this.#tokenFloor, state.highest);
        this.#locks.delete(id);
        if (this.#locks.size < this.#maxLocks) return;
      }
    }
    throw new Refusal(
      NackReason.RATE_LIMITED,
      `This node holds ${this.#maxLocks} locks (maxLocks)`,
    );
  }
}

/**
 * The store's own copy of a record, its bytes in one new buffer (nothing in
 * it is a view into a received frame, and one buffer costs less than four),
 * with `extra` bytes after them for the caller.
 */
function ownRecord(record: Record, extra = 0): { record: Record; extra: Uint8Array } {
  const parts = [record.key, record.value, record.owner, record.signature];
  const buffer = new Uint8Array(parts.reduce((n, p) => n + p.length, extra));
  let at = 0;
  const [key, value, owner, signature] = parts.map((p) => {
    buffer.set(p, at);
    return buffer.subarray(at, at += p.length);
  });
  const copy = create(RecordSchema, {
    key,
    value,
    version: record.version,
    owner,
    signature,
    ttlMs: record.ttlMs,
  });
  return { record: copy, extra: buffer.subarray(at) };
}

/** The store's own copy of a patch, its bytes in one new buffer. */
function ownPatch(patch: Patch): Patch {
  const parts = [patch.valueHash, patch.signature, ...patch.splices.map((s) => s.insert)];
  const buffer = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  const [valueHash, signature, ...inserts] = parts.map((p) => {
    buffer.set(p, at);
    return buffer.subarray(at, at += p.length);
  });
  return create(PatchSchema, {
    baseVersion: patch.baseVersion,
    version: patch.version,
    format: patch.format,
    jsonPatch: patch.jsonPatch,
    valueHash,
    signature,
    splices: patch.splices.map((s, i) =>
      create(ByteSpliceSchema, {
        offset: s.offset,
        deleteCount: s.deleteCount,
        insert: inserts[i],
      })
    ),
  });
}

function recordBytes(record: Record): number {
  return DHT_ENTRY_OVERHEAD + record.key.length + record.value.length + record.owner.length +
    record.signature.length;
}

function patchBytes(patch: Patch): number {
  return DHT_PATCH_OVERHEAD + 2 * patch.jsonPatch.length + patch.valueHash.length +
    patch.signature.length +
    patch.splices.reduce((n, s) => n + DHT_SPLICE_OVERHEAD + s.insert.length, 0);
}

/** Negative, zero or positive: `record`'s version against the held one (same version, same value: 0). */
function compareVersion(record: Record, entry: Entry): number {
  if (record.version !== entry.record.version) {
    return record.version < entry.record.version ? -1 : 1;
  }
  if (bytesEqual(sha256(record.value), entry.hash)) return 0;
  return -1; // a reused version with another value
}
