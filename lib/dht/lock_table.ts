/**
 * A replica's locks: one holder at a time per key until its lease lapses,
 * fencing tokens that strictly increase per key (also across holders, and
 * remembered after release), at most `maxLocks` remembered (forgetting one
 * raises a floor no later token goes below) and `maxLocksPerPeer` leases per
 * peer.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type LockGrant,
  LockGrantSchema,
  LockHeldSchema,
  type LockRequest,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { toHex } from "../_bytes.ts";
import type { Clock } from "../clock.ts";
import type { NackError } from "../errors.ts";
import { parseAddress } from "../identity/address.ts";
import { DHT_DEFAULTS, DHT_STORE_LIMITS, type DhtStoreOptions } from "./defaults.ts";
import type { PeerQuotas } from "./quotas.ts";
import { DHT_KEY_LENGTH } from "./record.ts";
import { refusal } from "./refusal.ts";

interface LockState {
  holder?: string;
  token: number;
  expiresAt: number;
  highest: number;
}

/** The locks of a replica's store. */
export class LockTable {
  readonly #clock: Clock;
  readonly #maxLocks: number;
  readonly #maxLockTtl: number;
  readonly #maxLocksPerPeer: number;
  readonly #quotas: PeerQuotas;
  readonly #locks = new Map<string, LockState>();
  /** The highest token of every lock forgotten: no lock is granted a token at or below it. */
  #tokenFloor = 0;

  /** Creates an empty table counting leases into `quotas`. */
  constructor(options: DhtStoreOptions & { clock: Clock }, quotas: PeerQuotas) {
    this.#clock = options.clock;
    this.#maxLocks = options.maxLocks ?? DHT_STORE_LIMITS.maxLocks;
    this.#maxLockTtl = options.maxLockTtl ?? DHT_DEFAULTS.maxLockTtl;
    this.#maxLocksPerPeer = options.maxLocksPerPeer ?? DHT_STORE_LIMITS.maxLocksPerPeer;
    this.#quotas = quotas;
  }

  /** Locks remembered (held ones and released ones' highest tokens). */
  get size(): number {
    return this.#locks.size;
  }

  /** Whether the key of `id` is held by a live lease at `now`. */
  locked(id: string, now: number): boolean {
    const state = this.#locks.get(id);
    return state?.holder !== undefined && state.expiresAt > now;
  }

  /**
   * DHT_LOCK: acquire (token 0) or renew a lease for `requester` (an
   * address), counted against `peer`'s quota (none for this node's own).
   */
  lock(request: LockRequest, requester: string, peer: string | undefined): LockGrant {
    if (request.key.length !== DHT_KEY_LENGTH) {
      throw refusal(Opcode.DHT_LOCK, NackReason.MALFORMED, "DHT_LOCK needs a 32-byte key");
    }
    if (request.minFencingToken > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw refusal(Opcode.DHT_LOCK, NackReason.MALFORMED, "min_fencing_token is above 2^53 - 1");
    }
    const now = this.#clock.now();
    const ttl = Math.min(Number(request.ttlMs) || DHT_DEFAULTS.lockTtl, this.#maxLockTtl);
    const id = toHex(request.key);
    let state = this.#locks.get(id);
    const held = state?.holder !== undefined && state.expiresAt > now;
    if (held && state!.holder !== requester) throw this.#held(Opcode.DHT_LOCK, state!, now);
    if (request.fencingToken !== 0n) {
      if (!held || BigInt(state!.token) !== request.fencingToken) {
        throw refusal(
          Opcode.DHT_LOCK,
          NackReason.VERSION_CONFLICT,
          "the lease was lost (expired or released)",
        );
      }
      state!.expiresAt = now + ttl;
      return create(LockGrantSchema, { fencingToken: BigInt(state!.token), ttlMs: BigInt(ttl) });
    }
    const min = Number(request.minFencingToken);
    if (!held && peer !== undefined) this.#checkLeases(peer, now);
    if (!state) {
      this.#evictLocks();
      state = { token: 0, expiresAt: 0, highest: this.#tokenFloor };
    }
    this.#locks.delete(id); // re-insert: most recently used last
    this.#locks.set(id, state);
    if (!held && state.holder !== undefined) this.#quotas.unlease(state.holder, id); // a lapsed lease
    state.token = held ? Math.max(state.token, min) : Math.max(state.highest + 1, min);
    state.highest = Math.max(state.highest, state.token);
    state.holder = requester;
    state.expiresAt = now + ttl;
    if (peer !== undefined) this.#quotas.usage(peer).leases.add(id);
    return create(LockGrantSchema, { fencingToken: BigInt(state.token), ttlMs: BigInt(ttl) });
  }

  /** DHT_UNLOCK: releases `requester`'s lease; returns whether there was one to release. */
  unlock(key: Uint8Array, fencingToken: bigint, requester: string): boolean {
    if (key.length !== DHT_KEY_LENGTH) {
      throw refusal(Opcode.DHT_UNLOCK, NackReason.MALFORMED, "DHT_UNLOCK needs a 32-byte key");
    }
    const now = this.#clock.now();
    const id = toHex(key);
    const state = this.#locks.get(id);
    if (!state || state.holder === undefined || state.expiresAt <= now) return false;
    if (state.holder !== requester) throw this.#held(Opcode.DHT_UNLOCK, state, now);
    if (fencingToken !== 0n && BigInt(state.token) !== fencingToken) return false; // an older lease
    this.#quotas.unlease(state.holder, id);
    state.holder = undefined;
    return true;
  }

  /** Refuses a new lease for `peer` when it holds its quota of live ones. */
  #checkLeases(peer: string, now: number): void {
    const usage = this.#quotas.get(peer);
    if (!usage || usage.leases.size < this.#maxLocksPerPeer) return;
    for (const id of [...usage.leases]) {
      const state = this.#locks.get(id);
      if (!state || state.holder !== peer || state.expiresAt <= now) usage.leases.delete(id);
    }
    if (usage.leases.size >= this.#maxLocksPerPeer) {
      throw refusal(
        Opcode.DHT_LOCK,
        NackReason.RATE_LIMITED,
        `Peer ${peer} holds ${usage.leases.size} leases here, its quota ` +
          `(maxLocksPerPeer ${this.#maxLocksPerPeer})`,
      );
    }
    this.#quotas.tidy(peer, usage);
  }

  #held(opcode: Opcode, state: LockState, now: number): NackError {
    const holder = state.holder!;
    const data = create(LockHeldSchema, {
      holder: parseAddress(holder),
      fencingToken: BigInt(state.token),
      expiresInMs: BigInt(Math.max(0, Math.ceil(state.expiresAt - now))),
    });
    return refusal(
      opcode,
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
        if (state.holder !== undefined) this.#quotas.unlease(state.holder, id);
        this.#tokenFloor = Math.max(this.#tokenFloor, state.highest);
        this.#locks.delete(id);
        if (this.#locks.size < this.#maxLocks) return;
      }
    }
    throw refusal(
      Opcode.DHT_LOCK,
      NackReason.RATE_LIMITED,
      `This node holds ${this.#maxLocks} locks (maxLocks)`,
    );
  }
}
