/**
 * The DHT's defaults, one place each: its parameters and times
 * ({@linkcode DHT_DEFAULTS}), a replica's limits
 * ({@linkcode DHT_STORE_LIMITS}), and the options of a replica's store
 * ({@linkcode DhtStoreOptions}) whose `@default`s they are. A node
 * republishes what it wrote every `defaultTtl / 2` unless told otherwise.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { DEFAULT_ALPHA } from "../overlay/lookup.ts";

/**
 * The defaults of the DHT's parameters and times (see `DhtOptions` and
 * {@linkcode DhtStoreOptions}): the lookup's α and paths, a request's
 * timeout, the early read's quorum, how many written records are
 * republished, a lease asked for and granted, and a replica's record,
 * history and reservation times.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_DEFAULTS } from "./defaults.ts";
 * assert.equal(DHT_DEFAULTS.lockTtl, 10_000); // a lease asked for without a ttl
 * assert.ok(DHT_DEFAULTS.lockTtl <= DHT_DEFAULTS.maxLockTtl);
 * ```
 */
export const DHT_DEFAULTS = Object.freeze(
  {
    /** Queries in flight per lookup path (α). */
    alpha: DEFAULT_ALPHA,
    /** Disjoint lookup paths (S/Kademlia's d). */
    disjointPaths: 1,
    /** Time each DHT request has for its reply, in ms. */
    requestTimeout: 5_000,
    /** Agreeing copies after which a `consistency: "any"` read stops looking. */
    readQuorum: 3,
    /** Records a node republishes at most (its most recent writes). */
    maxPublished: 1_000,
    /** Replicas asked for a key's changes (the closest). */
    changesReplicas: 3,
    /** A lease asked for without a ttl (and granted for a request of 0), in ms. */
    lockTtl: 10_000,
    /** The longest lease a replica grants, in ms. */
    maxLockTtl: 300_000,
    /** Time to live of a record that asks for none, in ms (1 h). */
    defaultTtl: 3_600_000,
    /** The longest time to live a replica grants, in ms (24 h). */
    maxTtl: 86_400_000,
    /** Patches a replica keeps per key. */
    historyLength: 32,
    /** How long a prepared write holds its key at a replica, in ms. */
    reservationTime: 5_000,
  } as const,
);

/**
 * The defaults of a replica store's limits (see {@linkcode DhtStoreOptions}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_STORE_LIMITS } from "./defaults.ts";
 * assert.equal(DHT_STORE_LIMITS.maxBytes, 64 * 1024 * 1024);
 * ```
 */
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
 * Limits and times of a replica's store (`DhtStore`), as a node's
 * `DhtOptions` pass them.
 *
 * Memory is bounded by `maxBytes` (everything held, counted as the DHT's
 * `bytes` says) and `maxLocks`; one peer (by address) holds at most
 * `maxRecordsPerPeer` records and `maxBytesPerPeer` bytes of records and
 * reservations, `maxReservationsPerPeer` live reservations and
 * `maxLocksPerPeer` leases. This node's own requests (`address`) are exempt
 * from the per-peer quotas, not from the store's limits.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtStoreOptions, RecordError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
   * with `DHT_ENTRY_OVERHEAD` (a patch with `DHT_PATCH_OVERHEAD`)
   * more.
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
