/**
 * A replica's storage: records with expiry, prepared atomic writes, patch
 * history and locks, with every rule a replica applies to what peers ask. No
 * I/O: the DHT decodes requests, calls this, and answers with what it
 * returns or NACKs with the {@linkcode Refusal} it throws.
 *
 * Rules:
 *
 * - **STORE**: a valid record (see `checkRecord`) replaces the held one when
 *   its version is higher; the same version with the same value refreshes its
 *   expiry; a lower version, or the same version with another value, is
 *   refused (`VERSION_CONFLICT`, with the held record). A key held owned only
 *   takes records of the same owner (`FORBIDDEN`).
 * - **Atomic writes** (compare-and-swap and patch) in two phases: PREPARE
 *   reserves the key for one proposal when the replica holds the expected
 *   version and no other live reservation (else `VERSION_CONFLICT`, `busy`
 *   when reserved); COMMIT stores the prepared record (or a carried record
 *   newer than the held one); ABORT drops the reservation. A reservation
 *   lapses after `reservationTime`.
 * - **Patch history**: each committed patch is kept (at most
 *   `historyLength` per key); any other write clears the history, since the
 *   chain of patches no longer leads to the value.
 * - **Locks**: one holder at a time per key until its lease lapses; tokens
 *   per key strictly increase, also across holders, and are remembered after
 *   release.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type ByteSplice,
  type CasRequest,
  type ChangesReply,
  ChangesReplySchema,
  type LockGrant,
  LockGrantSchema,
  LockHeldSchema,
  type LockRequest,
  type Patch,
  PatchFormat,
  type PatchRequest,
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
import { PatchError, RecordError, Refusal } from "../errors.ts";
import { formatAddress, parseAddress } from "../identity/address.ts";
import { applyJsonPatchToBytes, applySplices, parseJsonPatch, type Splice } from "./patch.ts";
import { checkRecord, DEFAULT_MAX_VALUE_SIZE, DHT_KEY_LENGTH } from "./record.ts";

/**
 * Limits and times of a {@linkcode DhtStore}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtStoreOptions, MemoryNetwork, RecordError } from "@carrier/p2p";
 * const dht: DhtStoreOptions = { maxValueSize: 16, maxRecords: 100 };
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
  /** Records held at most. @default {10_000} */
  maxRecords?: number;
  /** Bytes of values and patch history held at most. @default {64 MiB} */
  maxBytes?: number;
  /** Time to live of a record that asks for none, in ms. @default {3_600_000} (1 h) */
  defaultTtl?: number;
  /** Longest time to live granted, in ms. @default {86_400_000} (24 h) */
  maxTtl?: number;
  /** Patches kept per key. @default {32} */
  historyLength?: number;
  /** How long a prepared write holds its key, in ms. @default {5_000} */
  reservationTime?: number;
  /** Locks remembered at most (held ones and released ones' highest tokens). @default {10_000} */
  maxLocks?: number;
  /** Longest lease granted, in ms. @default {300_000} */
  maxLockTtl?: number;
}

interface Pending {
  proposal: string;
  record: Record;
  patch?: Patch;
  expiresAt: number;
}

interface Entry {
  record: Record;
  hash: Uint8Array;
  expiresAt: number;
  history: Patch[];
  historyBytes: number;
  pending?: Pending;
}

interface LockState {
  holder?: string;
  token: number;
  expiresAt: number;
  highest: number;
}

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
  readonly #entries = new Map<string, Entry>();
  readonly #locks = new Map<string, LockState>();
  /** Reservations of keys not held yet (expected version 0). */
  readonly #pendingFirst = new Map<string, Pending>();
  #bytes = 0;

  /** Creates an empty store. */
  constructor(options: DhtStoreOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#maxValueSize = options.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE;
    this.#maxRecords = options.maxRecords ?? 10_000;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#defaultTtl = options.defaultTtl ?? 3_600_000;
    this.#maxTtl = options.maxTtl ?? 86_400_000;
    this.#historyLength = options.historyLength ?? 32;
    this.#reservationTime = options.reservationTime ?? 5_000;
    this.#maxLocks = options.maxLocks ?? 10_000;
    this.#maxLockTtl = options.maxLockTtl ?? 300_000;
  }

  /** Records held (expired ones included until touched or swept). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes of values and history held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The largest value stored, in bytes. */
  get maxValueSize(): number {
    return this.#maxValueSize;
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

  /** Drops expired records, lapsed reservations and released locks past the limit. */
  sweep(): void {
    for (const id of [...this.#entries.keys()]) this.#live(id);
  }

  /** STORE: see the module's rules. */
  store(record: Record): StoreReply {
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
    this.#put(id, record, undefined);
    return create(StoreReplySchema, { version: record.version });
  }

  /** DHT_CAS: one phase of a compare-and-swap (or the commit or abort of a patch). */
  cas(request: CasRequest): StoreReply {
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
    switch (request.phase) {
      case 1: { // PREPARE
        this.#check(record);
        if (record.version <= request.expectedVersion) {
          throw new Refusal(
            NackReason.MALFORMED,
            `CAS version ${record.version} is not above the expected ${request.expectedVersion}`,
          );
        }
        this.#reserve(id, entry, request.expectedVersion, proposal, record, undefined);
        return create(StoreReplySchema, { version: record.version });
      }
      case 2: { // COMMIT
        if (entry?.pending?.proposal === proposal) {
          const { record: prepared, patch } = entry.pending;
          entry.pending = undefined;
          if (prepared.version > entry.record.version) this.#put(id, prepared, patch);
          return create(StoreReplySchema, { version: this.#live(id)!.record.version });
        }
        const first = this.#pendingFirst.get(id);
        if (!entry && first?.proposal === proposal && first.expiresAt > this.#clock.now()) {
          this.#put(id, first.record, undefined);
          return create(StoreReplySchema, { version: first.record.version });
        }
        // Not prepared here (missed the PREPARE, or it lapsed): a decided
        // record newer than the held one is stored like STORE.
        return this.store(record);
      }
      case 3: { // ABORT
        if (entry?.pending?.proposal === proposal) entry.pending = undefined;
        else if (!entry && this.#pendingFirst.get(id)?.proposal === proposal) {
          this.#pendingFirst.delete(id);
        }
        return create(StoreReplySchema, { version: entry?.record.version ?? 0n });
      }
      default:
        throw new Refusal(NackReason.MALFORMED, `DHT_CAS phase ${request.phase} is not valid`);
    }
  }

  /** DHT_PATCH: the PREPARE of a patch (committed or aborted by {@linkcode DhtStore.cas}). */
  preparePatch(request: PatchRequest): StoreReply {
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
    this.#reserve(id, entry, patch.baseVersion, toHex(request.proposal), record, patch);
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
    if (!state) {
      this.#evictLocks();
      state = { token: 0, expiresAt: 0, highest: 0 };
    }
    this.#locks.delete(id); // re-insert: most recently used last
    this.#locks.set(id, state);
    const min = Number(request.minFencingToken);
    if (!Number.isSafeInteger(min)) {
      throw new Refusal(NackReason.MALFORMED, "min_fencing_token is out of range");
    }
    state.token = held ? Math.max(state.token, min) : Math.max(state.highest + 1, min);
    state.highest = Math.max(state.highest, state.token);
    state.holder = requester;
    state.expiresAt = now + ttl;
    return create(LockGrantSchema, { fencingToken: BigInt(state.token), ttlMs: BigInt(ttl) });
  }

  /** DHT_UNLOCK: releases `requester`'s lease; returns whether there was one to release. */
  unlock(key: Uint8Array, fencingToken: bigint, requester: string): boolean {
    if (key.length !== DHT_KEY_LENGTH) {
      throw new Refusal(NackReason.MALFORMED, "DHT_UNLOCK needs a 32-byte key");
    }
    const now = this.#clock.now();
    const state = this.#locks.get(toHex(key));
    if (!state || state.holder === undefined || state.expiresAt <= now) return false;
    if (state.holder !== requester) throw this.#held(state, now);
    if (fencingToken !== 0n && BigInt(state.token) !== fencingToken) return false; // an older lease
    state.holder = undefined;
    return true;
  }

  // ---- internals ----

  #reserve(
    id: string,
    entry: Entry | undefined,
    expected: bigint,
    proposal: string,
    record: Record,
    patch: Patch | undefined,
  ): void {
    const now = this.#clock.now();
    if (entry) this.#checkOwner(entry.record, record.owner);
    const current = entry?.record.version ?? 0n;
    if (current !== expected) throw this.#conflict(entry, `version ${expected} was expected`);
    const pending = entry ? entry.pending : this.#pendingFirst.get(id);
    if (pending && pending.expiresAt > now && pending.proposal !== proposal) {
      throw this.#conflict(entry, "another write is in progress", true);
    }
    const reservation = { proposal, record, patch, expiresAt: now + this.#reservationTime };
    if (entry) {
      entry.pending = reservation;
      return;
    }
    this.#pendingFirst.delete(id);
    if (this.#pendingFirst.size >= this.#maxRecords) {
      for (const [key, p] of this.#pendingFirst) {
        if (p.expiresAt <= now) this.#pendingFirst.delete(key);
      }
      if (this.#pendingFirst.size >= this.#maxRecords) {
        throw new Refusal(NackReason.RATE_LIMITED, "too many writes in progress");
      }
    }
    this.#pendingFirst.set(id, reservation);
  }

  /** The live entry of `id`: expired records and lapsed reservations are dropped on the way. */
  #live(id: string): Entry | undefined {
    const now = this.#clock.now();
    const entry = this.#entries.get(id);
    if (entry && entry.expiresAt <= now) {
      this.#drop(id, entry);
      return undefined;
    }
    if (entry?.pending && entry.pending.expiresAt <= now) entry.pending = undefined;
    if (!entry) {
      const first = this.#pendingFirst.get(id);
      if (first && first.expiresAt <= now) this.#pendingFirst.delete(id);
    }
    return entry;
  }

  #put(id: string, record: Record, patch: Patch | undefined): void {
    const old = this.#entries.get(id);
    const first = this.#pendingFirst.get(id);
    let history: Patch[] = [];
    let historyBytes = 0;
    if (old && patch) {
      history = old.history;
      historyBytes = old.historyBytes;
      history.push(patch);
      historyBytes += patchBytes(patch);
      while (history.length > this.#historyLength) historyBytes -= patchBytes(history.shift()!);
    }
    const before = old ? old.record.value.length + old.historyBytes : 0;
    const after = record.value.length + historyBytes;
    if (!old && this.#entries.size >= this.#maxRecords) {
      this.sweep();
      if (this.#entries.size >= this.#maxRecords) {
        throw new Refusal(NackReason.RATE_LIMITED, `this node holds ${this.#maxRecords} records`);
      }
    }
    if (this.#bytes - before + after > this.#maxBytes) {
      throw new Refusal(NackReason.RATE_LIMITED, `this node holds ${this.#maxBytes} bytes`);
    }
    this.#bytes += after - before;
    if (first && first.record.version <= record.version) this.#pendingFirst.delete(id);
    const pending = old?.pending && old.pending.record.version > record.version
      ? old.pending
      : undefined;
    this.#entries.set(id, {
      record,
      hash: sha256(record.value),
      expiresAt: this.#expiry(record),
      history,
      historyBytes,
      pending,
    });
  }

  #drop(id: string, entry: Entry): void {
    this.#entries.delete(id);
    this.#bytes -= entry.record.value.length + entry.historyBytes;
  }

  #expiry(record: Record): number {
    const ttl = Number(record.ttlMs) || this.#defaultTtl;
    return this.#clock.now() + Math.min(ttl, this.#maxTtl);
  }

  #check(record: Record): void {
    try {
      checkRecord(record, this.#maxValueSize);
    } catch (err) {
      if (!(err instanceof RecordError)) throw err;
      const reason = record.value.length > this.#maxValueSize
        ? NackReason.TOO_LARGE
        : /signature/.test(err.message)
        ? NackReason.BAD_SIGNATURE
        : NackReason.MALFORMED;
      throw new Refusal(reason, err.message);
    }
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

  #evictLocks(): void {
    if (this.#locks.size < this.#maxLocks) return;
    const now = this.#clock.now();
    for (const [id, state] of this.#locks) {
      // Oldest first; a held lock is never forgotten.
      if (state.holder === undefined || state.expiresAt <= now) {
        this.#locks.delete(id);
        if (this.#locks.size < this.#maxLocks) return;
      }
    }
    throw new Refusal(NackReason.RATE_LIMITED, `this node holds ${this.#maxLocks} locks`);
  }
}

/** Applies a patch message to a value (either format); throws PatchError. */
export function applyPatch(value: Uint8Array, patch: Patch, maxSize: number): Uint8Array {
  switch (patch.format) {
    case PatchFormat.BYTE_SPLICE:
      return applySplices(value, splicesOf(patch.splices), maxSize);
    case PatchFormat.JSON_PATCH:
      return applyJsonPatchToBytes(value, parseJsonPatch(patch.jsonPatch), maxSize);
    default:
      throw new PatchError(`Unknown patch format ${patch.format}`);
  }
}

/** Splices from the wire; throws PatchError for an offset or length beyond 2^53 − 1. */
export function splicesOf(splices: readonly ByteSplice[]): Splice[] {
  const max = BigInt(Number.MAX_SAFE_INTEGER);
  return splices.map((s) => {
    if (s.offset > max || s.deleteCount > max) {
      throw new PatchError(`Splice offset or length out of range`);
    }
    return { offset: Number(s.offset), deleteCount: Number(s.deleteCount), insert: s.insert };
  });
}

/** Negative, zero or positive: `record`'s version against the held one (same version, same value: 0). */
function compareVersion(record: Record, entry: Entry): number {
  if (record.version !== entry.record.version) {
    return record.version < entry.record.version ? -1 : 1;
  }
  if (bytesEqual(sha256(record.value), entry.hash)) return 0;
  return -1; // a reused version with another value
}

function patchBytes(patch: Patch): number {
  return patch.jsonPatch.length + patch.splices.reduce((n, s) => n + s.insert.length + 16, 0) +
    64;
}
