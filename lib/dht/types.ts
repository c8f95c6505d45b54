/**
 * The DHT's public shapes: what it needs of its host
 * ({@linkcode DhtHost}), its options, the options of each call and what
 * each call returns. The calls are `Dht`'s (`client.ts`); the guarantees
 * are in `dht.ts`.
 *
 * @module
 */
import type { ServiceHost } from "../service.ts";
import type { DhtStoreOptions } from "./defaults.ts";
import type { JsonPatchOperation } from "./json_operations.ts";
import type { Splice } from "./splice.ts";

/**
 * What the DHT uses of the node that carries it: a narrow
 * {@linkcode ServiceHost}. Its identity (to sign owned records) is
 * optional; `signal` aborting closes the DHT (every call then rejects with
 * its reason, the node's `NodeClosedError`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { DhtHost } from "./dht.ts";
 * import { dht } from "../services/dht.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const host: DhtHost = {
 *   contact: contactOf(identity.publicKey, identity.address, ["mem:me"]), // it listens: a replica
 *   identity,
 *   table: new RoutingTable(identity.nodeId),
 *   clock: new ManualClock(),
 *   signal: new AbortController().signal,
 *   request: () => Promise.reject(new Error("no peers")),
 *   error: (error, source) => console.error(source, error),
 * };
 * const service = dht()(host); // alone: it is the only replica
 * await service.client.put("key", "value");
 * assert.equal((await service.client.get("key"))?.version, 1);
 * ```
 */
export type DhtHost =
  & Pick<ServiceHost, "contact" | "table" | "clock" | "signal" | "request" | "error">
  & Partial<Pick<ServiceHost, "identity">>;

/**
 * Options of a node's DHT (`NodeOptions.dht`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const dht: DhtOptions = { replicas: 3, readQuorum: 2, requestTimeout: 2_000 };
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"], dht });
 * const { replicas } = await node.dht.put("config", "v1");
 * assert.equal(replicas, 1); // a network of one: this node is the only replica
 * ```
 */
export interface DhtOptions extends Omit<DhtStoreOptions, "clock" | "nodeId" | "address"> {
  /** Replicas per key (R). @default {k (20)} */
  replicas?: number;
  /** Queries in flight per lookup path (α). @default {3} */
  alpha?: number;
  /** Disjoint lookup paths (S/Kademlia's d). @default {1} */
  disjointPaths?: number;
  /** Time each DHT request has for its reply, in ms. @default {5_000} */
  requestTimeout?: number;
  /** Agreeing copies of a value after which `get` with `consistency: "any"` stops looking. @default {3} */
  readQuorum?: number;
  /** How often this node re-stores the records it wrote, in ms. @default {defaultTtl / 2} (30 min) */
  republishInterval?: number;
  /** Records this node republishes at most (the most recent writes). @default {1_000} */
  maxPublished?: number;
}

/**
 * Options of every DHT call.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtCallOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const options: DhtCallOptions = { signal: AbortSignal.abort(new Error("cancelled")) };
 * await assert.rejects(node.dht.get("config", options), { message: "cancelled" });
 * ```
 */
export interface DhtCallOptions {
  /** Cancels the call. */
  signal?: AbortSignal;
}

/**
 * Options of {@linkcode Dht.get}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtGetOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("config", "v1");
 * const fast: DhtGetOptions = { consistency: "any" }; // may be older; stops early
 * assert.equal((await node.dht.get("config", fast))?.version, 1);
 * ```
 */
export interface DhtGetOptions extends DhtCallOptions {
  /**
   * `"linearizable"`: every replica asked, the newest copy written back to a
   * majority before it is returned. `"any"`: stop once `readQuorum` replicas
   * agree (faster; may return an older value).
   * @default {"linearizable"}
   */
  consistency?: "linearizable" | "any";
}

/**
 * Options of {@linkcode Dht.put}, {@linkcode Dht.cas} and {@linkcode Dht.patch}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtWriteOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const options: DhtWriteOptions = { owned: true, ttl: 60_000 };
 * await node.dht.cas("name", "alice", 0, options); // claims the name if nobody has
 * assert.equal((await node.dht.get("name"))?.owner, node.address);
 * ```
 */
export interface DhtWriteOptions extends DhtCallOptions {
  /** Sign the record as this node's: replicas then refuse other writers. @default {false} */
  owned?: boolean;
  /**
   * Time to live at the replicas, in ms: an integer from 0 to 2^53 − 1
   * (anything else is a {@linkcode RecordError} before anything is sent). 0
   * stands for the replicas' default. A replica caps a longer one at its
   * `maxTtl` (24 h by default), as it caps a lease at `maxLockTtl`: the
   * record is sent with the ttl asked and each replica grants what it allows,
   * so a record put with 25 h expires 24 h after a default replica stored
   * it (this node republishes what it wrote every `republishInterval`).
   *
   * @default {0 (the replicas' default, 1 h)}
   */
  ttl?: number;
}

/**
 * Options of {@linkcode Dht.put}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtPutOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const options: DhtPutOptions = { version: 10, owned: true, ttl: 60_000 };
 * assert.equal((await node.dht.put("config", "v10", options)).version, 10);
 * assert.equal((await node.dht.get("config"))?.owner, node.address);
 * ```
 */
export interface DhtPutOptions extends DhtWriteOptions {
  /** The version to write. @default {one above the highest version found} */
  version?: number;
  /**
   * Replicas that must store the record for the put to succeed; fewer
   * gives {@linkcode ReplicationError}.
   *
   * @default {a majority of the replicas found (⌊R′/2⌋ + 1, as cas)}
   */
  minReplicas?: number;
}

/**
 * Options of {@linkcode Dht.lock} and {@linkcode Dht.renew}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtLockOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const options: DhtLockOptions = { ttl: 2_000 };
 * const lease = await node.dht.lock("job", options);
 * assert.equal(lease.ttl, 2_000);
 * await node.dht.unlock(lease);
 * ```
 */
export interface DhtLockOptions extends DhtCallOptions {
  /** Lease time, in ms (replicas cap it at `maxLockTtl`). @default {10_000} */
  ttl?: number;
}

/**
 * A value read from the DHT.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, dhtKey, type DhtValue } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("greeting", "hello");
 * const found: DhtValue | undefined = await node.dht.get("greeting");
 * assert.deepEqual(found?.key, dhtKey("greeting"));
 * assert.equal(new TextDecoder().decode(found?.value), "hello");
 * assert.equal(found?.version, 1);
 * ```
 */
export interface DhtValue {
  /** The 32-byte key. */
  key: Uint8Array;
  /** The value. */
  value: Uint8Array;
  /** Its version. */
  version: number;
  /** The owner's address, for an owned record. */
  owner?: string;
}

/**
 * What a write did.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtWriteResult } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const result: DhtWriteResult = await node.dht.cas("counter", "1", 0);
 * assert.deepEqual(result, { version: 1, replicas: 1 });
 * ```
 */
export interface DhtWriteResult {
  /** The version written. */
  version: number;
  /** Replicas that stored it. */
  replicas: number;
}

/**
 * A lock held by this node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtLease } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * const lease: DhtLease = await node.dht.lock("job");
 * await node.dht.unlock(lease);
 * const next = await node.dht.lock("job");
 * assert(next.fencingToken > lease.fencingToken); // tokens only grow
 * await node.dht.unlock(next);
 * ```
 */
export interface DhtLease {
  /** The lock's 32-byte key. */
  key: Uint8Array;
  /** The fencing token: strictly increasing per key; pass it to what the lock protects. */
  fencingToken: number;
  /** The lease time granted, in ms. */
  ttl: number;
  /** When the lease ends by this node's clock (ms, the node's clock). */
  expiresAt: number;
}

/**
 * A patch: RFC 6902 JSON Patch operations (JSON values) or byte splices (binary values).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtPatch } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("doc", JSON.stringify({ n: 1 }));
 * const patch: DhtPatch = { json: [{ op: "replace", path: "/n", value: 2 }] };
 * assert.equal((await node.dht.patch("doc", patch, 1)).version, 2);
 * assert.equal(new TextDecoder().decode((await node.dht.get("doc"))?.value), '{"n":2}');
 * ```
 */
export type DhtPatch = { json: JsonPatchOperation[] } | { splices: Splice[] };

/**
 * One change in a key's history.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtChange } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("log", new Uint8Array([1, 2, 3]));
 * const append = { offset: 3, deleteCount: 0, insert: new Uint8Array([4]) };
 * await node.dht.patch("log", { splices: [append] }, 1);
 * const [change]: DhtChange[] = (await node.dht.changes("log", 1)).changes;
 * assert.deepEqual([change.baseVersion, change.version], [1, 2]);
 * assert("splices" in change.patch);
 * ```
 */
export interface DhtChange {
  /** The version it applies to. */
  baseVersion: number;
  /** The version it produces. */
  version: number;
  /** The patch. */
  patch: DhtPatch;
  /** SHA-256 of the value it produces. */
  valueHash: Uint8Array;
}

/**
 * What {@linkcode Dht.changes} found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyChanges, createNode, type DhtChanges } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await node.dht.put("doc", "[1]");
 * const base = await node.dht.get("doc");
 * await node.dht.patch("doc", { json: [{ op: "add", path: "/-", value: 2 }] }, 1);
 * const changes: DhtChanges = await node.dht.changes("doc", 1);
 * assert.equal(changes.currentVersion, 2);
 * assert.equal(new TextDecoder().decode(applyChanges(base, changes)?.value), "[1,2]");
 * ```
 */
export interface DhtChanges {
  /** The version the replica holds (0: no value). */
  currentVersion: number;
  /** The changes since the version asked, oldest first (empty when `value` is given). */
  changes: DhtChange[];
  /** The whole value, when the history since the version asked is gone. */
  value?: DhtValue;
}

/**
 * What {@linkcode Dht.lookup} found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtLookup } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const found: DhtLookup = await b.dht.lookup("config");
 * assert.deepEqual(found.closest, [a.address]);
 * assert.equal(found.hops, 1);
 * ```
 */
export interface DhtLookup {
  /** Addresses of up to k nodes closest to the key that answered, closest first. */
  closest: string[];
  /** Hops to the closest. */
  hops: number;
  /** Queries made. */
  queries: number;
}
