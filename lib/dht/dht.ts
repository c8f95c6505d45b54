/**
 * The DHT: Kademlia's FIND_NODE, FIND_VALUE and STORE, and carrier's
 * extensions, quorum compare-and-swap, locks with fencing tokens and
 * diff-based changes. It has two sides, which the DHT service
 * (`lib/services/dht.ts`) puts on a node over a {@linkcode DhtHost}:
 *
 * - the client, {@linkcode Dht} (`client.ts`, with `quorum.ts`, `lease.ts`,
 *   `replies.ts` and `changes.ts`): `get`, `put`, `cas`, `lock`, `unlock`,
 *   `patch`, `changes`, what `node.dht` is;
 * - the replica (`replica.ts`): answering peers from this node's store
 *   (`store.ts`, with `records.ts`, `lock_table.ts`, `quotas.ts`,
 *   `footprint.ts`), refusing with a `NackError` (`refusal.ts`), and handing
 *   records to contacts that join near their keys.
 *
 * Its opcodes are `opcodes.ts`'s, its defaults `defaults.ts`'s, its types
 * `types.ts`'s, and its patch formats `patch.ts`'s.
 *
 * The replicas of a key are the R nodes closest to it (R = `replicas`,
 * default k = 20) that accept connections, this node included, found by an
 * iterative lookup. A **majority** is ⌊R′/2⌋ + 1 of the R′ replicas found.
 *
 * Guarantees, and their limits:
 *
 * - **put** stores a record at every replica that accepts it (a higher
 *   version than theirs); it is last-writer-wins by version, not atomic. It
 *   fails with {@linkcode ReplicationError} when fewer than `minReplicas` (a
 *   majority by default) stored it; those that did keep it.
 * - **cas** is atomic among writers that find the same replica set: a write
 *   is prepared at every replica, which reserves itself for one write per
 *   version; only a write that a majority reserved is committed, so two
 *   writers can never both succeed at one version, and a write that fails
 *   stored nothing. If the commit itself reaches fewer than a majority
 *   (replicas crashed between the phases) the outcome is uncertain and
 *   {@linkcode QuorumError} says so.
 * - **lock** is granted when a majority of replicas grant it; the fencing
 *   token is the largest they granted, confirmed at that majority in a second
 *   round, so tokens strictly increase per key across holders. A lease is
 *   timed by each replica's clock from when it received the request and by
 *   the holder's clock from before it sent it, so the holder's view ends
 *   first as long as clock rates agree; use the token to fence writes
 *   anyway (a paused holder may act after its lease).
 * - **Churn and partitions** move the replica set: writers that see
 *   different sets (a partition, a lookup cut short) can each reach "a
 *   majority" of their own set. Kademlia is not a consensus protocol; the
 *   guarantees above hold while membership near a key is stable.
 *
 * @module
 */
export { applyChanges } from "./changes.ts";
export { Dht } from "./client.ts";
export type {
  DhtCallOptions,
  DhtChange,
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
