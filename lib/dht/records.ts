/**
 * A replica's records and reservations, and what they are counted for: the
 * store's own copies, their expiry, the patch history of each key, the
 * store's limits (`maxRecords`, `maxBytes`, evicting the keys farthest from
 * this node when full) and each peer's quotas of records, bytes and
 * reservations. The rules of what a request may do are the store's
 * (`store.ts`); this is the bookkeeping they rely on.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import type { Patch, Record } from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, type Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import type { Clock } from "../clock.ts";
import { compareDistance } from "../identity/node_id.ts";
import { DHT_DEFAULTS, DHT_STORE_LIMITS, type DhtStoreOptions } from "./defaults.ts";
import { ownPatch, ownRecord, patchBytes, recordBytes } from "./footprint.ts";
import type { PeerQuotas } from "./quotas.ts";
import { refusal } from "./refusal.ts";

/** A reservation: the write a PREPARE admitted, until its COMMIT or ABORT. */
export interface Pending {
  proposal: string;
  record: Record;
  patch?: Patch;
  expiresAt: number;
  /** The peer that prepared it (undefined: this node). */
  peer?: string;
  /** Bytes counted for it. */
  bytes: number;
}

/** A held record, its history and its reservation. */
export interface Entry {
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

/** What a write needs: record slots and bytes, globally and for its peer. */
interface Need {
  slots: number;
  bytes: number;
  peerRecords: number;
  peerBytes: number;
}

const NO_HISTORY: readonly Patch[] = Object.freeze([]);

/** The records and reservations of a replica's store. */
export class RecordTable {
  readonly #clock: Clock;
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  readonly #defaultTtl: number;
  readonly #maxTtl: number;
  readonly #historyLength: number;
  readonly #reservationTime: number;
  readonly #nodeId: Uint8Array | undefined;
  readonly #maxRecordsPerPeer: number;
  readonly #maxBytesPerPeer: number;
  readonly #maxReservationsPerPeer: number;
  readonly #quotas: PeerQuotas;
  /** Whether the key of an id is locked now (a locked key is never evicted). */
  readonly #locked: (id: string, now: number) => boolean;
  readonly #entries = new Map<string, Entry>();
  /** Reservations of keys not held yet (expected version 0). */
  readonly #pendingFirst = new Map<string, Pending>();
  /** Records held plus reservations of keys not held yet. */
  #slots = 0;
  #bytes = 0;
  #reservations = 0;

  /** Creates an empty table counting into `quotas`. */
  constructor(
    options: DhtStoreOptions & { clock: Clock },
    quotas: PeerQuotas,
    locked: (id: string, now: number) => boolean,
  ) {
    this.#clock = options.clock;
    this.#maxRecords = options.maxRecords ?? DHT_STORE_LIMITS.maxRecords;
    this.#maxBytes = options.maxBytes ?? DHT_STORE_LIMITS.maxBytes;
    this.#defaultTtl = options.defaultTtl ?? DHT_DEFAULTS.defaultTtl;
    this.#maxTtl = options.maxTtl ?? DHT_DEFAULTS.maxTtl;
    this.#historyLength = options.historyLength ?? DHT_DEFAULTS.historyLength;
    this.#reservationTime = options.reservationTime ?? DHT_DEFAULTS.reservationTime;
    this.#nodeId = options.nodeId?.slice();
    this.#maxRecordsPerPeer = options.maxRecordsPerPeer ?? DHT_STORE_LIMITS.maxRecordsPerPeer;
    this.#maxBytesPerPeer = options.maxBytesPerPeer ?? DHT_STORE_LIMITS.maxBytesPerPeer;
    this.#maxReservationsPerPeer = options.maxReservationsPerPeer ??
      DHT_STORE_LIMITS.maxReservationsPerPeer;
    this.#quotas = quotas;
    this.#locked = locked;
  }

  /** Records held (expired ones included until touched or swept). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes held, as `maxBytes` counts them. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Reservations held (lapsed ones included until touched or swept). */
  get reservations(): number {
    return this.#reservations;
  }

  /** Every live record. */
  *records(): Generator<Record> {
    for (const [id] of this.#entries) {
      const entry = this.live(id);
      if (entry) yield entry.record;
    }
  }

  /** The live reservation of a key not held yet, if any (after {@linkcode RecordTable.live}). */
  first(id: string): Pending | undefined {
    return this.#pendingFirst.get(id);
  }

  /**
   * The size of every buffer behind the bytes held (each distinct
   * `ArrayBuffer` once): records, hashes, patches and reservations. Since
   * the store copies what it keeps, this never exceeds
   * {@linkcode RecordTable.bytes}: no received frame is retained.
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

  /** Drops expired records and lapsed reservations, but those of `except`. */
  sweep(except: string | undefined): void {
    for (const id of [...this.#entries.keys()]) if (id !== except) this.live(id);
    const now = this.#clock.now();
    for (const [id, pending] of [...this.#pendingFirst]) {
      if (id !== except && pending.expiresAt <= now) this.unreserve(id, pending);
    }
  }

  /** The live entry of `id`: expired records and lapsed reservations are dropped on the way. */
  live(id: string): Entry | undefined {
    const now = this.#clock.now();
    const entry = this.#entries.get(id);
    if (entry && entry.expiresAt <= now) {
      this.#drop(id, entry);
      return undefined;
    }
    if (entry?.pending && entry.pending.expiresAt <= now) this.unreserve(id, entry.pending);
    if (!entry) {
      const first = this.#pendingFirst.get(id);
      if (first && first.expiresAt <= now) this.unreserve(id, first);
    }
    return entry;
  }

  /**
   * Holds a copy of `record` for `peer`, with `patch` (the store's own)
   * joining the history, for a request of `opcode` (STORE, or a COMMIT).
   */
  put(
    opcode: Opcode,
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
    this.#admit(opcode, id, record.key, peer, {
      slots: 1 - (old ? 1 : 0) - (first ? 1 : 0),
      bytes: bytes - freed.reduce((n, f) => n + f.bytes, 0),
      peerRecords: committing || (old && old.peer === peer) ? 0 : 1,
      peerBytes: committing
        ? 0
        : bytes - freed.reduce((n, f) => n + (f.peer === peer ? f.bytes : 0), 0),
    });
    if (first) this.unreserve(id, first);
    if (dropped) this.unreserve(id, dropped);
    if (old) {
      this.#entries.delete(id);
      this.#slots--;
      this.#bytes -= old.bytes;
      this.#quotas.charge(old.peer, -1, -old.bytes);
    }
    this.#entries.set(id, {
      record,
      hash,
      expiresAt: this.expiry(record),
      history,
      historyBytes,
      bytes,
      peer,
      pending: kept,
      committedBy,
    });
    this.#slots++;
    this.#bytes += bytes;
    this.#quotas.charge(peer, 1, bytes);
  }

  #drop(id: string, entry: Entry): void {
    if (entry.pending) this.unreserve(id, entry.pending);
    this.#entries.delete(id);
    this.#slots--;
    this.#bytes -= entry.bytes;
    this.#quotas.charge(entry.peer, -1, -entry.bytes);
  }

  /** When `record` stored now expires: its ttl (or the default), capped at `maxTtl`. */
  expiry(record: Record): number {
    const ttl = Number(record.ttlMs) || this.#defaultTtl;
    return this.#clock.now() + Math.min(ttl, this.#maxTtl);
  }

  /**
   * Reserves `id` for `proposal` (its record, and its patch for a
   * DHT_PATCH): replaces `pending`, the live reservation of the same
   * proposal if any, and keeps its deadline. The caller checked the rules
   * (owner, expected version, no other live reservation).
   *
   * @throws {NackError} `RATE_LIMITED` past the peer's reservation quota or a limit.
   */
  reserve(
    opcode: Opcode,
    id: string,
    entry: Entry | undefined,
    pending: Pending | undefined,
    proposal: string,
    record: Record,
    patch: Patch | undefined,
    peer: string | undefined,
  ): void {
    if (peer !== undefined && pending?.peer !== peer) this.#checkReservations(opcode, peer);
    const kept = ownRecord(record).record;
    const keptPatch = patch && ownPatch(patch);
    const bytes = recordBytes(kept) + (keptPatch ? patchBytes(keptPatch) : 0);
    const freed = pending?.bytes ?? 0;
    this.#admit(opcode, id, record.key, peer, {
      slots: entry || pending ? 0 : 1,
      bytes: bytes - freed,
      // The record the COMMIT will count for the peer: refused now, not then.
      peerRecords: entry?.peer === peer ? 0 : 1,
      peerBytes: bytes - (pending && pending.peer === peer ? freed : 0),
    });
    // A PREPARE repeated for the same proposal keeps its deadline: a
    // reservation is never extended past reservationTime.
    const expiresAt = pending?.expiresAt ?? this.#clock.now() + this.#reservationTime;
    if (pending) this.unreserve(id, pending);
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
      const usage = this.#quotas.usage(peer);
      usage.bytes += bytes;
      usage.reservations.add(id);
    }
  }

  /** Drops a reservation (of a held key or a first version) and what it counted. */
  unreserve(id: string, pending: Pending): void {
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
      const usage = this.#quotas.get(pending.peer);
      if (usage) {
        usage.bytes -= pending.bytes;
        usage.reservations.delete(id);
        this.#quotas.tidy(pending.peer, usage);
      }
    }
  }

  /** Refuses a new reservation by `peer` when it holds its quota of live ones. */
  #checkReservations(opcode: Opcode, peer: string): void {
    const usage = this.#quotas.get(peer);
    if (!usage || usage.reservations.size < this.#maxReservationsPerPeer) return;
    for (const id of [...usage.reservations]) this.live(id); // drops the lapsed ones
    if (usage.reservations.size >= this.#maxReservationsPerPeer) {
      throw refusal(
        opcode,
        NackReason.RATE_LIMITED,
        `Peer ${peer} holds ${usage.reservations.size} live reservations here, its quota ` +
          `(maxReservationsPerPeer ${this.#maxReservationsPerPeer})`,
      );
    }
  }

  /**
   * Checks that a write fits: the peer's quotas, then the store's limits,
   * after dropping what expired and, when still full, evicting the keys
   * farthest from this node if they are farther than `key`. Throws a
   * `RATE_LIMITED` refusal naming the limit; evicts only when the write fits.
   */
  #admit(opcode: Opcode, id: string, key: Uint8Array, peer: string | undefined, need: Need): void {
    if (peer !== undefined && this.#overQuota(peer, need)) {
      this.sweep(id); // records of the peer's that expired no longer count
      const usage = this.#quotas.get(peer);
      const records = usage?.records ?? 0;
      if (need.peerRecords > 0 && records + need.peerRecords > this.#maxRecordsPerPeer) {
        throw refusal(
          opcode,
          NackReason.RATE_LIMITED,
          `Peer ${peer} stored ${records} records held here, its quota ` +
            `(maxRecordsPerPeer ${this.#maxRecordsPerPeer})`,
        );
      }
      const bytes = usage?.bytes ?? 0;
      if (need.peerBytes > 0 && bytes + need.peerBytes > this.#maxBytesPerPeer) {
        throw refusal(
          opcode,
          NackReason.RATE_LIMITED,
          `Peer ${peer} stored ${bytes} bytes held here; ${need.peerBytes} more would pass ` +
            `its quota (maxBytesPerPeer ${this.#maxBytesPerPeer})`,
        );
      }
    }
    const fits = (slots: number, bytes: number): boolean =>
      slots <= this.#maxRecords && bytes <= this.#maxBytes;
    if (fits(this.#slots + need.slots, this.#bytes + need.bytes)) return;
    this.sweep(id);
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
      throw refusal(
        opcode,
        NackReason.RATE_LIMITED,
        `This node holds ${this.#slots} records (maxRecords ${this.#maxRecords}) and ` +
          `${this.#bytes} bytes (maxBytes ${this.#maxBytes}); no key farther from it ` +
          `can make way`,
      );
    }
    for (const [other, entry] of victims) this.#drop(other, entry);
  }

  #overQuota(peer: string, need: Need): boolean {
    const usage = this.#quotas.get(peer);
    return (need.peerRecords > 0 &&
      (usage?.records ?? 0) + need.peerRecords > this.#maxRecordsPerPeer) ||
      (need.peerBytes > 0 && (usage?.bytes ?? 0) + need.peerBytes > this.#maxBytesPerPeer);
  }
}
