/**
 * A replica's storage: records with expiry, prepared atomic writes, patch
 * history and locks, with every rule a replica applies to what peers ask. No
 * I/O: the DHT decodes requests, calls this, and answers with what it
 * returns or NACKs with the `NackError` it throws (`refusal.ts`).
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
 * The bookkeeping is `records.ts` (records, reservations, limits),
 * `lock_table.ts` (locks) and `quotas.ts` (what each peer holds);
 * `footprint.ts` says what each thing held is counted for.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type CasRequest,
  type ChangesReply,
  ChangesReplySchema,
  type LockGrant,
  type LockRequest,
  type Patch,
  type PatchRequest,
  type Record,
  RecordSchema,
  type StoreReply,
  StoreReplySchema,
  VersionConflictSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { bytesEqual, toHex } from "../_bytes.ts";
import { type Clock, systemClock } from "../clock.ts";
import type { NackError } from "../errors.ts";
import { PatchError } from "./errors.ts";
import { formatAddress } from "../identity/address.ts";
import type { DhtStoreOptions } from "./defaults.ts";
import { LockTable } from "./lock_table.ts";
import { applyPatch } from "./patch.ts";
import { PeerQuotas } from "./quotas.ts";
import { refusal } from "./refusal.ts";
import {
  DEFAULT_MAX_VALUE_SIZE,
  DHT_KEY_LENGTH,
  PROPOSAL_LENGTH,
  type RecordProblem,
  recordProblem,
} from "./record.ts";
import { type Entry, type Pending, RecordTable } from "./records.ts";

/** The refusal of each way a record is not valid (README, Refusals: `store-*`). */
const RECORD_REFUSALS: Readonly<{ [P in RecordProblem]: NackReason }> = {
  "malformed": NackReason.MALFORMED,
  "too-large": NackReason.TOO_LARGE,
  "bad-signature": NackReason.BAD_SIGNATURE,
};

/** A replica's records and locks. */
export class DhtStore {
  readonly #maxValueSize: number;
  readonly #self: string | undefined;
  readonly #records: RecordTable;
  readonly #locks: LockTable;

  /** Creates an empty store. */
  constructor(options: DhtStoreOptions = {}) {
    const clock: Clock = options.clock ?? systemClock;
    const quotas = new PeerQuotas();
    this.#maxValueSize = options.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE;
    this.#self = options.address;
    this.#locks = new LockTable({ ...options, clock }, quotas);
    this.#records = new RecordTable(
      { ...options, clock },
      quotas,
      (id, now) => this.#locks.locked(id, now),
    );
  }

  /** Records held (expired ones included until touched or swept). */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Bytes held, as `maxBytes` counts them: records (key, value, owner,
   * signature), patch history and reservations, each with its fixed
   * overhead (`DHT_ENTRY_OVERHEAD`, `DHT_PATCH_OVERHEAD`).
   */
  get bytes(): number {
    return this.#records.bytes;
  }

  /** Reservations held (lapsed ones included until touched or swept). */
  get reservations(): number {
    return this.#records.reservations;
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
    return this.#records.retainedBytes();
  }

  /** The live record of `key`, if held. */
  get(key: Uint8Array): Record | undefined {
    return this.#records.live(toHex(key))?.record;
  }

  /** Every live record (for handing values to newly joined nodes). */
  records(): Generator<Record> {
    return this.#records.records();
  }

  /** Drops expired records and lapsed reservations. */
  sweep(): void {
    this.#records.sweep(undefined);
  }

  /** STORE from `requester` (an address; this node's own or none: exempt from quotas). */
  store(record: Record, requester?: string): StoreReply {
    this.#check(Opcode.STORE, record);
    const id = toHex(record.key);
    const entry = this.#records.live(id);
    if (entry) {
      this.#checkOwner(Opcode.STORE, entry.record, record.owner);
      const order = compareVersion(record, entry);
      if (order < 0) throw this.#conflict(Opcode.STORE, entry, "a newer version is held");
      if (order === 0) {
        entry.expiresAt = this.#records.expiry(record);
        return create(StoreReplySchema, { version: record.version });
      }
    }
    this.#records.put(Opcode.STORE, id, record, undefined, this.#peerOf(requester));
    return create(StoreReplySchema, { version: record.version });
  }

  /** DHT_CAS: one phase of a compare-and-swap (or the commit or abort of a patch). */
  cas(request: CasRequest, requester?: string): StoreReply {
    const record = request.record;
    if (!record || record.key.length !== DHT_KEY_LENGTH) {
      throw refusal(
        Opcode.DHT_CAS,
        NackReason.MALFORMED,
        `DHT_CAS needs a record with a 32-byte key`,
      );
    }
    if (request.proposal.length !== PROPOSAL_LENGTH) {
      throw refusal(
        Opcode.DHT_CAS,
        NackReason.MALFORMED,
        `DHT_CAS proposal must be ${PROPOSAL_LENGTH} bytes`,
      );
    }
    const id = toHex(record.key);
    const proposal = toHex(request.proposal);
    const entry = this.#records.live(id);
    const peer = this.#peerOf(requester);
    switch (request.phase) {
      case 1: { // PREPARE
        this.#check(Opcode.DHT_CAS, record);
        if (record.version <= request.expectedVersion) {
          throw refusal(
            Opcode.DHT_CAS,
            NackReason.MALFORMED,
            `CAS version ${record.version} is not above the expected ${request.expectedVersion}`,
          );
        }
        this.#reserve(
          Opcode.DHT_CAS,
          id,
          entry,
          request.expectedVersion,
          proposal,
          record,
          undefined,
          peer,
        );
        return create(StoreReplySchema, { version: record.version });
      }
      case 2: { // COMMIT
        if (entry?.pending?.proposal === proposal) {
          const prepared = entry.pending;
          this.#records.unreserve(id, prepared);
          if (prepared.record.version > entry.record.version) {
            this.#records.put(
              Opcode.DHT_CAS,
              id,
              prepared.record,
              prepared.patch,
              prepared.peer,
              proposal,
            );
          }
          return create(StoreReplySchema, { version: this.#records.live(id)!.record.version });
        }
        const first = this.#records.first(id); // live: #live dropped a lapsed one
        if (!entry && first?.proposal === proposal) {
          this.#records.put(Opcode.DHT_CAS, id, first.record, undefined, first.peer, proposal);
          return create(StoreReplySchema, { version: first.record.version });
        }
        // The same COMMIT again (a retry): done already.
        if (entry?.committedBy === proposal) {
          return create(StoreReplySchema, { version: entry.record.version });
        }
        // Not prepared here, or the reservation lapsed (another write may
        // have taken the version since): only a live reservation commits.
        throw entry
          ? this.#conflict(
            Opcode.DHT_CAS,
            entry,
            "the COMMIT's proposal holds no live reservation here",
          )
          : refusal(
            Opcode.DHT_CAS,
            NackReason.VERSION_CONFLICT,
            "the COMMIT's proposal holds no live reservation here",
            toBinary(VersionConflictSchema, create(VersionConflictSchema, { currentVersion: 0n })),
          );
      }
      case 3: { // ABORT
        const pending = entry ? entry.pending : this.#records.first(id);
        if (pending?.proposal === proposal) this.#records.unreserve(id, pending);
        return create(StoreReplySchema, { version: entry?.record.version ?? 0n });
      }
      default:
        throw refusal(
          Opcode.DHT_CAS,
          NackReason.MALFORMED,
          `DHT_CAS phase ${request.phase} is not valid`,
        );
    }
  }

  /** DHT_PATCH: the PREPARE of a patch (committed or aborted by {@linkcode DhtStore.cas}). */
  preparePatch(request: PatchRequest, requester?: string): StoreReply {
    const patch = request.patch;
    if (request.key.length !== DHT_KEY_LENGTH || !patch) {
      throw refusal(
        Opcode.DHT_PATCH,
        NackReason.MALFORMED,
        "DHT_PATCH needs a 32-byte key and a patch",
      );
    }
    if (request.proposal.length !== PROPOSAL_LENGTH) {
      throw refusal(
        Opcode.DHT_PATCH,
        NackReason.MALFORMED,
        `DHT_PATCH proposal must be ${PROPOSAL_LENGTH} bytes`,
      );
    }
    if (patch.version <= patch.baseVersion) {
      throw refusal(
        Opcode.DHT_PATCH,
        NackReason.MALFORMED,
        "A patch's version must be above its base version",
      );
    }
    const id = toHex(request.key);
    const entry = this.#records.live(id);
    if (!entry || entry.record.version !== patch.baseVersion) {
      throw entry
        ? this.#conflict(
          Opcode.DHT_PATCH,
          entry,
          `the patch is against version ${patch.baseVersion}`,
        )
        : refusal(
          Opcode.DHT_PATCH,
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
      throw refusal(Opcode.DHT_PATCH, NackReason.MALFORMED, err.message);
    }
    if (!bytesEqual(sha256(value), patch.valueHash)) {
      throw refusal(
        Opcode.DHT_PATCH,
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
    this.#check(Opcode.DHT_PATCH, record);
    const peer = this.#peerOf(requester);
    this.#reserve(
      Opcode.DHT_PATCH,
      id,
      entry,
      patch.baseVersion,
      toHex(request.proposal),
      record,
      patch,
      peer,
    );
    return create(StoreReplySchema, { version: record.version });
  }

  /** DHT_CHANGES: the patches since a version, or the whole record when they are gone. */
  changes(key: Uint8Array, since: bigint): ChangesReply {
    if (key.length !== DHT_KEY_LENGTH) {
      throw refusal(Opcode.DHT_CHANGES, NackReason.MALFORMED, "DHT_CHANGES needs a 32-byte key");
    }
    const entry = this.#records.live(toHex(key));
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
    return this.#locks.lock(request, requester, this.#peerOf(requester));
  }

  /** DHT_UNLOCK: releases `requester`'s lease; returns whether there was one to release. */
  unlock(key: Uint8Array, fencingToken: bigint, requester: string): boolean {
    return this.#locks.unlock(key, fencingToken, requester);
  }

  // ---- internals ----

  /** The peer a request is counted against: none for this node's own. */
  #peerOf(requester: string | undefined): string | undefined {
    return requester === this.#self ? undefined : requester;
  }

  /** The rules of a PREPARE (owner, expected version, one write at a time), then the reservation. */
  #reserve(
    opcode: Opcode,
    id: string,
    entry: Entry | undefined,
    expected: bigint,
    proposal: string,
    record: Record,
    patch: Patch | undefined,
    peer: string | undefined,
  ): void {
    if (entry) this.#checkOwner(opcode, entry.record, record.owner);
    const current = entry?.record.version ?? 0n;
    if (current !== expected) {
      throw this.#conflict(opcode, entry, `version ${expected} was expected`);
    }
    // Live, if any: live() dropped a lapsed one.
    const pending: Pending | undefined = entry ? entry.pending : this.#records.first(id);
    if (pending && pending.proposal !== proposal) {
      throw this.#conflict(opcode, entry, "another write is in progress", true);
    }
    this.#records.reserve(opcode, id, entry, pending, proposal, record, patch, peer);
  }

  /** Refuses a record that is not valid here: MALFORMED, TOO_LARGE or BAD_SIGNATURE. */
  #check(opcode: Opcode, record: Record): void {
    const found = recordProblem(record, this.#maxValueSize);
    if (found) throw refusal(opcode, RECORD_REFUSALS[found.problem], found.message);
  }

  #checkOwner(opcode: Opcode, held: Record, owner: Uint8Array): void {
    if (held.owner.length > 0 && !bytesEqual(held.owner, owner)) {
      throw refusal(
        opcode,
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

  #conflict(opcode: Opcode, entry: Entry | undefined, why: string, busy = false): NackError {
    return refusal(
      opcode,
      NackReason.VERSION_CONFLICT,
      `Version conflict: ${why}; the replica holds version ${entry?.record.version ?? 0n}`,
      toBinary(VersionConflictSchema, this.#conflictData(entry, busy)),
    );
  }
}

/** Negative, zero or positive: `record`'s version against the held one (same version, same value: 0). */
function compareVersion(record: Record, entry: Entry): number {
  if (record.version !== entry.record.version) {
    return record.version < entry.record.version ? -1 : 1;
  }
  if (bytesEqual(sha256(record.value), entry.hash)) return 0;
  return -1; // a reused version with another value
}
