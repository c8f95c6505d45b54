/**
 * The DHT: Kademlia's FIND_NODE, FIND_VALUE and STORE, and carrier's
 * extensions, quorum compare-and-swap, locks with fencing tokens and
 * diff-based changes. A {@linkcode Dht} is both sides: it answers peers'
 * requests from its {@linkcode DhtStore} (`serve`) and runs the client
 * operations (`get`, `put`, `cas`, `lock`, `unlock`, `patch`, `changes`)
 * through a {@linkcode DhtHost}, the node that carries its requests.
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
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  ByteSpliceSchema,
  CasPhase,
  CasRequestSchema,
  ChangesReplySchema,
  ChangesRequestSchema,
  FindNodeReplySchema,
  FindNodeRequestSchema,
  FindValueReplySchema,
  FindValueRequestSchema,
  LockGrantSchema,
  type LockHeld,
  LockHeldSchema,
  LockRequestSchema,
  type Patch,
  PatchFormat,
  PatchRequestSchema,
  PatchSchema,
  type PeerInfo,
  PeerInfoSchema,
  type Record,
  StoreReplySchema,
  StoreRequestSchema,
  UnlockReplySchema,
  UnlockRequestSchema,
  VersionConflictSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { bytesEqual, toHex } from "../_bytes.ts";
import type { Clock } from "../clock.ts";
import {
  LockHeldError,
  NackError,
  PatchError,
  QuorumError,
  RecordError,
  ReplicationError,
  VersionConflictError,
} from "../errors.ts";
import { formatAddress } from "../identity/address.ts";
import type { Identity } from "../identity/keys.ts";
import { compareDistance, NODE_ID_LENGTH } from "../identity/node_id.ts";
import { iterativeLookup, type LookupResult } from "../overlay/lookup.ts";
import { type Contact, contactOf, type RoutingTable } from "../overlay/routing_table.ts";
import { decodePayload } from "../wire/opcodes.ts";
import { type JsonPatchOperation, parseJsonPatch, type Splice } from "./patch.ts";
import {
  checkRecord,
  checkTtl,
  checkVersion,
  createRecord,
  type DhtKey,
  dhtKey,
} from "./record.ts";
import { isDhtOpcode } from "./opcodes.ts";
import { refusal } from "./refusal.ts";
import { DhtStore } from "./store.ts";
import type { DhtStoreOptions } from "./defaults.ts";
import { applyPatch, splicesOf } from "./patch.ts";

/**
 * What the DHT needs from the node that carries it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   contactOf,
 *   Dht,
 *   type DhtHost,
 *   generateIdentitySync,
 *   ManualClock,
 *   RoutingTable,
 * } from "@carrier/p2p";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const host: DhtHost = {
 *   contact: contactOf(identity.publicKey, identity.address, ["mem:me"]), // it listens: a replica
 *   identity,
 *   table: new RoutingTable(identity.nodeId),
 *   clock: new ManualClock(),
 *   request: () => Promise.reject(new Error("no peers")),
 * };
 * const dht = new Dht(host); // alone: it is the only replica
 * await dht.put("key", "value");
 * assert.equal((await dht.get("key"))?.version, 1);
 * ```
 */
export interface DhtHost {
  /** This node as a contact (its listen addresses say whether it can be a replica). */
  readonly contact: Contact;
  /** This node's identity, to sign owned records. */
  readonly identity?: Identity;
  /** The routing table: lookups start from it. */
  readonly table: RoutingTable;
  /** Source of time. */
  readonly clock: Clock;
  /**
   * Sends a request to a contact (over its connection, or a short-lived one)
   * and resolves the ACK's data.
   *
   * @throws {NackError} when the contact answers NACK.
   */
  request(
    contact: Contact,
    opcode: number,
    payload: Uint8Array,
    options: { signal?: AbortSignal; timeout?: number },
  ): Promise<Uint8Array>;
}

/**
 * Options of a node's DHT (`NodeOptions.dht`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type DhtOptions, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtCallOptions, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtGetOptions, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtWriteOptions, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtPutOptions, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtLockOptions, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, dhtKey, type DhtValue, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtWriteResult, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtLease, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtPatch, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtChange, MemoryNetwork } from "@carrier/p2p";
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
 * import { applyChanges, createNode, type DhtChanges, MemoryNetwork } from "@carrier/p2p";
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
 * import { createNode, type DhtLookup, MemoryNetwork } from "@carrier/p2p";
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

/**
 * A node's DHT: see the module doc for what each call guarantees. Reach it
 * as `node.dht`.
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
  readonly #store: DhtStore;
  readonly #replicas: number;
  readonly #alpha: number;
  readonly #paths: number;
  readonly #timeout: number;
  readonly #readQuorum: number;
  readonly #republishInterval: number;
  readonly #maxPublished: number;
  readonly #reservationTime: number;
  /** Records this node wrote, to republish (insertion-ordered, bounded). */
  readonly #published = new Map<string, Record>();
  /** Replicas of each lease (to renew and release at the same nodes). */
  readonly #leaseReplicas = new WeakMap<DhtLease, Contact[]>();
  /** Newly seen contacts waiting for the values they should hold. */
  readonly #handoffQueue: Contact[] = [];
  #handoffRunning = false;
  #republishTimer: number | undefined;
  #closed = false;

  /** Creates the DHT of a node (the node does this). */
  constructor(host: DhtHost, options: DhtOptions = {}) {
    this.#host = host;
    this.#store = new DhtStore({
      ...options,
      clock: host.clock,
      nodeId: host.contact.nodeId,
      address: host.contact.address,
    });
    this.#replicas = options.replicas ?? host.table.k;
    this.#alpha = options.alpha ?? 3;
    this.#paths = options.disjointPaths ?? 1;
    this.#timeout = options.requestTimeout ?? 5_000;
    this.#readQuorum = options.readQuorum ?? 3;
    this.#republishInterval = options.republishInterval ?? (options.defaultTtl ?? 3_600_000) / 2;
    this.#maxPublished = options.maxPublished ?? 1_000;
    this.#reservationTime = options.reservationTime ?? 5_000;
  }

  /** Records this node holds as a replica. */
  get size(): number {
    return this.#store.size;
  }

  /**
   * Bytes this node holds as a replica, as `maxBytes` counts them: records,
   * patch history and reservations, each with a fixed overhead.
   */
  get bytes(): number {
    return this.#store.bytes;
  }

  /**
   * The size of every buffer behind what this node holds as a replica (each
   * `ArrayBuffer` once). At most {@linkcode Dht.bytes}: a replica keeps
   * copies, never views into the frames it received.
   */
  retainedBytes(): number {
    return this.#store.retainedBytes();
  }

  /** Whether `opcode` is one the DHT answers ({@linkcode Dht.serve}). */
  static handles(opcode: number): boolean {
    return isDhtOpcode(opcode);
  }

  /** Starts republishing (the node calls this when it starts). */
  start(): void {
    if (this.#republishTimer !== undefined || this.#closed) return;
    const tick = () => {
      this.#republishTimer = this.#host.clock.setTimeout(() => {
        this.#republishTimer = undefined;
        if (this.#closed) return;
        this.republish().catch(() => {}).finally(() => {
          if (!this.#closed) tick();
        });
      }, this.#republishInterval);
    };
    tick();
  }

  /** Stops the timers and the hand-off work (the node calls this when it closes). */
  close(): void {
    this.#closed = true;
    if (this.#republishTimer !== undefined) this.#host.clock.clearTimeout(this.#republishTimer);
    this.#republishTimer = undefined;
    this.#handoffQueue.length = 0;
  }

  // ---- the replica side ----

  /**
   * Answers a DHT request from `from` (an address): returns the ACK's data.
   *
   * @throws {NackError} to answer NACK (its reason, message and typed data).
   */
  serve(opcode: number, payload: Uint8Array, from: string): Uint8Array {
    const decode = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (err) {
        throw refusal(opcode, NackReason.MALFORMED, (err as Error).message);
      }
    };
    switch (opcode) {
      case Opcode.FIND_NODE: {
        const { target } = decode(() => decodePayload(FindNodeRequestSchema, payload));
        checkTarget(opcode, target, "FIND_NODE target");
        const peers = this.#peerInfos(target, from);
        return toBinary(FindNodeReplySchema, create(FindNodeReplySchema, { peers }));
      }
      case Opcode.FIND_VALUE: {
        const { key } = decode(() => decodePayload(FindValueRequestSchema, payload));
        checkTarget(opcode, key, "FIND_VALUE key");
        const reply = create(FindValueReplySchema, {
          record: this.#store.get(key),
          peers: this.#peerInfos(key, from),
        });
        return toBinary(FindValueReplySchema, reply);
      }
      case Opcode.STORE: {
        const { record } = decode(() => decodePayload(StoreRequestSchema, payload));
        if (!record) throw refusal(opcode, NackReason.MALFORMED, "STORE without a record");
        return toBinary(StoreReplySchema, this.#store.store(record, from));
      }
      case Opcode.DHT_CAS: {
        const request = decode(() => decodePayload(CasRequestSchema, payload));
        return toBinary(StoreReplySchema, this.#store.cas(request, from));
      }
      case Opcode.DHT_PATCH: {
        const request = decode(() => decodePayload(PatchRequestSchema, payload));
        return toBinary(StoreReplySchema, this.#store.preparePatch(request, from));
      }
      case Opcode.DHT_CHANGES: {
        const request = decode(() => decodePayload(ChangesRequestSchema, payload));
        return toBinary(
          ChangesReplySchema,
          this.#store.changes(request.key, request.sinceVersion),
        );
      }
      case Opcode.DHT_LOCK: {
        const request = decode(() => decodePayload(LockRequestSchema, payload));
        return toBinary(LockGrantSchema, this.#store.lock(request, from));
      }
      case Opcode.DHT_UNLOCK: {
        const request = decode(() => decodePayload(UnlockRequestSchema, payload));
        const released = this.#store.unlock(request.key, request.fencingToken, from);
        return toBinary(UnlockReplySchema, create(UnlockReplySchema, { released }));
      }
      default:
        throw refusal(opcode, NackReason.UNKNOWN_OPCODE, `Opcode ${opcode} is not a DHT opcode`);
    }
  }

  /**
   * A contact joined the routing table: the records it should now hold are
   * handed to it, by the nodes among the three closest to each key (so a
   * newcomer gets each value about three times, not R times).
   */
  noticeContact(contact: Contact): void {
    if (this.#closed || contact.listenAddrs.length === 0 || this.#store.size === 0) return;
    if (this.#handoffQueue.length >= 256) this.#handoffQueue.shift();
    this.#handoffQueue.push(contact);
    if (!this.#handoffRunning) void this.#handoff();
  }

  async #handoff(): Promise<void> {
    this.#handoffRunning = true;
    try {
      while (this.#handoffQueue.length > 0 && !this.#closed) {
        const newcomer = this.#handoffQueue.shift()!;
        let n = 0;
        for (const record of [...this.#store.records()]) {
          if (++n % 64 === 0) await new Promise((r) => setTimeout(r, 0));
          if (this.#closed) return;
          const near = this.#host.table.closest(
            record.key,
            this.#replicas,
            (c) => c.listenAddrs.length > 0, // replicas accept connections
          );
          const index = near.findIndex((c) => c.address === newcomer.address);
          if (index < 0) continue; // not among the R closest
          const others = near.filter((c) => c !== near[index]).slice(0, 3);
          const self = this.#host.contact.nodeId;
          const closer = others.filter((c) => compareDistance(record.key, c.nodeId, self) < 0);
          if (closer.length >= 3) continue; // three others are closer: they hand it over
          const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
          await this.#send(newcomer, Opcode.STORE, payload).catch(() => {});
        }
      }
    } finally {
      this.#handoffRunning = false;
    }
  }

  // ---- the client side ----

  /**
   * The k nodes closest to `key` (iterative FIND_NODE lookup).
   *
   * @throws {RecordError} for a key that is neither text nor 32 bytes.
   */
  async lookup(key: DhtKey, options: DhtCallOptions = {}): Promise<DhtLookup> {
    const result = await this.findClosest(dhtKey(key), options);
    return {
      closest: result.closest.map((c) => c.address),
      hops: result.hops,
      queries: result.queries,
    };
  }

  /** The k contacts closest to a 32-byte target, by iterative FIND_NODE. */
  findClosest(
    target: Uint8Array,
    options: DhtCallOptions & { alpha?: number } = {},
  ): Promise<LookupResult> {
    return this.#lookup(
      target,
      options,
      (contact) => this.findNode(contact, target, options),
      undefined,
      options.alpha,
    );
  }

  /**
   * One FIND_NODE: the contacts `contact` knows closest to `target` (up to
   * k, closest first, never the asker).
   *
   * @throws {NackError} (`MALFORMED`) when `target` is not 32 bytes.
   */
  async findNode(
    contact: Contact,
    target: Uint8Array,
    options: DhtCallOptions & { timeout?: number } = {},
  ): Promise<Contact[]> {
    const payload = toBinary(FindNodeRequestSchema, create(FindNodeRequestSchema, { target }));
    const data = await this.#send(
      contact,
      Opcode.FIND_NODE,
      payload,
      options.signal,
      options.timeout,
    );
    return contactsOf(decodePayload(FindNodeReplySchema, data).peers);
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
  async get(key: DhtKey, options: DhtGetOptions = {}): Promise<DhtValue | undefined> {
    const k = dhtKey(key);
    const consistency = options.consistency ?? "linearizable";
    if (consistency !== "linearizable" && consistency !== "any") {
      throw new TypeError(`consistency must be "linearizable" or "any", got ${consistency}`);
    }
    const any = consistency === "any";
    const { found, copies } = await this.#findValue(k, options, any);
    const replicas = this.#replicaSet(k, found);
    const held = replicas.flatMap((c) => copies.has(c.address) ? [copies.get(c.address)!] : []);
    const best = chooseRecord(any ? [...copies.values()] : held);
    if (!best) return undefined;
    const same = (r: Record | undefined) =>
      r !== undefined && r.version === best.version && bytesEqual(r.value, best.value);
    const behind = replicas.filter((c) => !same(copies.get(c.address)));
    const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record: best }));
    if (any) {
      // Read repair in the background.
      for (const c of behind) this.#send(c, Opcode.STORE, payload).catch(() => {});
      return valueOf(best);
    }
    const quorum = majority(replicas.length);
    const holders = replicas.length - behind.length;
    if (holders < quorum) {
      const results = await Promise.allSettled(
        behind.map((c) => this.#send(c, Opcode.STORE, payload, options.signal)),
      );
      options.signal?.throwIfAborted();
      const written = results.filter((r) => r.status === "fulfilled").length;
      if (holders + written < quorum) {
        throw new QuorumError(
          `The read found version ${best.version} at ${holders} of ${replicas.length} replicas ` +
            `and wrote it back to ${written}; ${quorum} needed`,
        );
      }
    } else {
      for (const c of behind) this.#send(c, Opcode.STORE, payload).catch(() => {});
    }
    return valueOf(best);
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
  async put(
    key: DhtKey,
    value: Uint8Array | string,
    options: DhtPutOptions = {},
  ): Promise<DhtWriteResult> {
    const k = dhtKey(key);
    value = this.#checkValue(value);
    checkTtl(options.ttl ?? 0);
    if (options.version !== undefined) checkVersion(options.version);
    if (options.minReplicas !== undefined) checkVersion(options.minReplicas, "minReplicas");
    const { best, found } = await this.#findValue(k, options, false);
    const version = options.version ?? Number(best?.version ?? 0n) + 1;
    checkVersion(version);
    const record = this.#record(k, value, version, options);
    const replicas = this.#replicaSet(k, found);
    const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
    const results = await Promise.allSettled(
      replicas.map((c) => this.#send(c, Opcode.STORE, payload, options.signal)),
    );
    options.signal?.throwIfAborted();
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
  }

  /**
   * Atomic compare-and-swap: writes `value` at version `expectedVersion + 1`
   * if the replicas hold `expectedVersion` (0: no value yet). Succeeds only
   * when a majority of the replicas agreed (see the module doc).
   *
   * @throws {VersionConflictError} when it lost (with the version the replicas hold).
   * @throws {QuorumError} when too few replicas answered.
   */
  async cas(
    key: DhtKey,
    value: Uint8Array | string,
    expectedVersion: number,
    options: DhtWriteOptions = {},
  ): Promise<DhtWriteResult> {
    const k = dhtKey(key);
    value = this.#checkValue(value);
    if (expectedVersion !== 0) checkVersion(expectedVersion, "expectedVersion");
    const record = this.#record(k, value, expectedVersion + 1, options);
    return await this.#atomic(
      record,
      BigInt(expectedVersion),
      options,
      (p) => [
        Opcode.DHT_CAS,
        toBinary(
          CasRequestSchema,
          create(CasRequestSchema, {
            record,
            expectedVersion: BigInt(expectedVersion),
            proposal: p,
            phase: CasPhase.PREPARE,
          }),
        ),
      ],
    );
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
  async patch(
    key: DhtKey,
    patch: DhtPatch,
    baseVersion: number,
    options: DhtWriteOptions = {},
  ): Promise<DhtWriteResult> {
    const k = dhtKey(key);
    checkVersion(baseVersion, "baseVersion");
    checkTtl(options.ttl ?? 0);
    const current = await this.get(k, options);
    if (!current || current.version !== baseVersion) {
      throw new VersionConflictError(
        `Cannot patch version ${baseVersion}: the DHT holds ${current?.version ?? "no value"}`,
        { currentVersion: current?.version ?? 0, currentValue: current?.value },
      );
    }
    const message = patchMessage(patch, baseVersion);
    const value = applyPatch(current.value, message, this.#store.maxValueSize);
    message.valueHash = sha256(value);
    const record = this.#record(k, value, baseVersion + 1, options);
    message.signature = record.signature;
    return await this.#atomic(record, BigInt(baseVersion), options, (p) => [
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
  }

  /**
   * The changes to a key since `sinceVersion`, from the closest replicas
   * (the one holding the newest version answers): the patches in order, or
   * the whole value when that history is gone (each replica keeps the last
   * `historyLength` patches). Apply them with {@linkcode applyChanges}.
   */
  async changes(
    key: DhtKey,
    sinceVersion: number,
    options: DhtCallOptions = {},
  ): Promise<DhtChanges> {
    const k = dhtKey(key);
    if (!Number.isSafeInteger(sinceVersion) || sinceVersion < 0) {
      throw new RecordError(`sinceVersion must be an integer from 0, got ${sinceVersion}`);
    }
    const replicas = (await this.#replicasOf(k, options)).slice(0, 3);
    const payload = toBinary(
      ChangesRequestSchema,
      create(ChangesRequestSchema, { key: k, sinceVersion: BigInt(sinceVersion) }),
    );
    const results = await Promise.allSettled(
      replicas.map((c) => this.#send(c, Opcode.DHT_CHANGES, payload, options.signal)),
    );
    options.signal?.throwIfAborted();
    let best: DhtChanges | undefined;
    for (const r of results) {
      if (r.status !== "fulfilled") continue;
      const changes = readChanges(k, sinceVersion, r.value);
      if (changes && (!best || changes.currentVersion > best.currentVersion)) best = changes;
    }
    if (!best) throw failure(results, replicas.length, "changes");
    return best;
  }

  /**
   * Acquires a lock: granted when a majority of the key's replicas grant it.
   *
   * @throws {LockHeldError} when another node holds it (its address, token and remaining lease).
   * @throws {QuorumError} when too few replicas answered.
   */
  async lock(key: DhtKey, options: DhtLockOptions = {}): Promise<DhtLease> {
    const k = dhtKey(key);
    const ttl = options.ttl ?? 10_000;
    if (!Number.isSafeInteger(ttl) || ttl < 1) {
      throw new RecordError(`Lock ttl must be a positive integer of ms, got ${ttl}`);
    }
    const replicas = await this.#replicasOf(k, options);
    const quorum = majority(replicas.length);
    const started = this.#host.clock.now();
    const request = (min: number) =>
      toBinary(
        LockRequestSchema,
        create(LockRequestSchema, { key: k, ttlMs: BigInt(ttl), minFencingToken: BigInt(min) }),
      );
    const first = await Promise.allSettled(
      replicas.map((c) => this.#send(c, Opcode.DHT_LOCK, request(0), options.signal)),
    );
    const granted = replicas.filter((_, i) => first[i].status === "fulfilled");
    if (granted.length >= quorum) {
      const grants = first.flatMap((r) =>
        r.status === "fulfilled" ? [decodePayload(LockGrantSchema, r.value)] : []
      );
      const token = Math.max(...grants.map((g) => Number(g.fencingToken)));
      // Second round: the granting majority takes the largest token.
      const second = await Promise.allSettled(
        granted.map((c) => this.#send(c, Opcode.DHT_LOCK, request(token), options.signal)),
      );
      const confirmed = second.flatMap((r) =>
        r.status === "fulfilled" ? [decodePayload(LockGrantSchema, r.value)] : []
      ).filter((g) => Number(g.fencingToken) === token);
      if (confirmed.length >= quorum) {
        const leaseTtl = Math.min(...confirmed.map((g) => Number(g.ttlMs)));
        const lease = { key: k, fencingToken: token, ttl: leaseTtl, expiresAt: started + leaseTtl };
        this.#leaseReplicas.set(lease, replicas);
        return lease;
      }
    }
    // Lost: release what was granted, so that another acquirer can win.
    await this.#release(k, 0, granted);
    options.signal?.throwIfAborted();
    const held = heldBy(first);
    if (held.length > 0) throw lockHeldError(held);
    throw failure(first, replicas.length, "lock", quorum);
  }

  /**
   * Renews a lease for `ttl` more from now.
   *
   * @throws {LockHeldError} or {@linkcode QuorumError} when the lease was lost.
   */
  async renew(lease: DhtLease, options: DhtLockOptions = {}): Promise<DhtLease> {
    const ttl = options.ttl ?? lease.ttl;
    const replicas = this.#leaseReplicas.get(lease) ?? await this.#replicasOf(lease.key, options);
    const started = this.#host.clock.now();
    const payload = toBinary(
      LockRequestSchema,
      create(LockRequestSchema, {
        key: lease.key,
        ttlMs: BigInt(ttl),
        fencingToken: BigInt(lease.fencingToken),
      }),
    );
    const results = await Promise.allSettled(
      replicas.map((c) => this.#send(c, Opcode.DHT_LOCK, payload, options.signal)),
    );
    const grants = results.flatMap((r) =>
      r.status === "fulfilled" ? [decodePayload(LockGrantSchema, r.value)] : []
    );
    const quorum = majority(replicas.length);
    if (grants.length < quorum) {
      const held = heldBy(results);
      if (held.length > 0) throw lockHeldError(held);
      const lost = results.some((r) =>
        r.status === "rejected" && r.reason instanceof NackError &&
        r.reason.reason === NackReason.VERSION_CONFLICT
      );
      throw lost
        ? new QuorumError(
          `The lease (token ${lease.fencingToken}) was lost: it lapsed or was released`,
        )
        : failure(results, replicas.length, "renew", quorum);
    }
    const leaseTtl = Math.min(...grants.map((g) => Number(g.ttlMs)));
    const renewed = { ...lease, ttl: leaseTtl, expiresAt: started + leaseTtl };
    this.#leaseReplicas.set(renewed, replicas);
    return renewed;
  }

  /**
   * Releases a lease at every replica that answers. A lease that lapsed or
   * was released already is no error.
   *
   * @returns Whether a replica still held the lease (false: it had lapsed or was released already).
   * @throws {LockHeldError} when a majority of the replicas say another node holds the lock (a lease of another identity).
   */
  async unlock(lease: DhtLease, options: DhtCallOptions = {}): Promise<boolean> {
    const replicas = this.#leaseReplicas.get(lease) ?? await this.#replicasOf(lease.key, options);
    const results = await this.#release(lease.key, lease.fencingToken, replicas, options.signal);
    const held = heldBy(results);
    if (held.length >= majority(replicas.length)) throw lockHeldError(held);
    return results.some((r) =>
      r.status === "fulfilled" && decodePayload(UnlockReplySchema, r.value).released
    );
  }

  /**
   * Stores again, at the current replicas, every record this node wrote, so
   * that they outlive their TTL and reach nodes that joined since. Runs
   * every `republishInterval`; a record another writer has superseded is
   * dropped from the list.
   */
  async republish(options: DhtCallOptions = {}): Promise<number> {
    let sent = 0;
    for (const [id, record] of [...this.#published]) {
      if (this.#closed) break;
      const replicas = await this.#replicasOf(record.key, options);
      const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
      const results = await Promise.allSettled(
        replicas.map((c) => this.#send(c, Opcode.STORE, payload, options.signal)),
      );
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
  }

  // ---- internals ----

  /** FIND_VALUE lookup; with `early`, stops once `readQuorum` replicas agree on the newest copy. */
  async #findValue(
    key: Uint8Array,
    options: DhtCallOptions,
    early: boolean,
  ): Promise<{ best: Record | undefined; found: LookupResult; copies: Map<string, Record> }> {
    const copies = new Map<string, Record>();
    const own = this.#store.get(key);
    if (own) copies.set(this.#host.contact.address, own);
    let best: Record | undefined;
    const stop = () => {
      best = chooseRecord([...copies.values()]);
      if (!early || !best) return false;
      let agree = 0;
      for (const c of copies.values()) {
        if (c.version === best.version && bytesEqual(c.value, best.value)) agree++;
      }
      return agree >= this.#readQuorum;
    };
    const result = await this.#lookup(key, options, async (contact) => {
      const payload = toBinary(FindValueRequestSchema, create(FindValueRequestSchema, { key }));
      const data = await this.#send(contact, Opcode.FIND_VALUE, payload, options.signal);
      const reply = decodePayload(FindValueReplySchema, data);
      if (reply.record && bytesEqual(reply.record.key, key)) {
        try {
          checkRecord(reply.record, this.#store.maxValueSize);
          copies.set(contact.address, reply.record);
        } catch {
          // A forged or malformed copy: ignored.
        }
      }
      return contactsOf(reply.peers);
    }, stop);
    stop();
    return { best, found: result, copies };
  }

  #lookup(
    target: Uint8Array,
    options: DhtCallOptions,
    query: (contact: Contact) => Promise<Contact[]>,
    stop?: () => boolean,
    alpha?: number,
  ): Promise<LookupResult> {
    const self = this.#host.contact.address;
    const k = this.#host.table.k;
    // Only nodes that accept connections are asked, replicas, results or
    // voters: a node that only dials out answers over its connection to the
    // asker, and would take a slot that another asker does not see.
    const exclude = (c: Contact) => c.address === self || c.listenAddrs.length === 0;
    const seeds = this.#host.table.closest(target, k, (c) => !exclude(c));
    return iterativeLookup(target, seeds, query, {
      k,
      alpha: alpha ?? this.#alpha,
      disjointPaths: this.#paths,
      exclude,
      stop,
      signal: options.signal,
    });
  }

  /** The replicas of `key`: the R closest that accept connections, this node included. */
  async #replicasOf(key: Uint8Array, options: DhtCallOptions): Promise<Contact[]> {
    return this.#replicaSet(key, await this.findClosest(key, options));
  }

  /**
   * The replicas of `key` from a lookup: the R closest nodes that accept
   * connections, this node included when it is one of them, and those that
   * did not answer included too: they count as replicas that said no, so a
   * crashed replica does not let the next node in (which would move the
   * majority to a set another writer does not see).
   */
  #replicaSet(key: Uint8Array, found: Pick<LookupResult, "closest" | "unreachable">): Contact[] {
    const candidates = [...found.closest, ...found.unreachable].filter((c) =>
      c.listenAddrs.length > 0
    );
    if (this.#host.contact.listenAddrs.length > 0) candidates.push(this.#host.contact);
    candidates.sort((a, b) => compareDistance(key, a.nodeId, b.nodeId));
    return candidates.slice(0, this.#replicas);
  }

  /**
   * The two phases of an atomic write of `record`: PREPARE (built by
   * `prepare` for a proposal) at every replica of its key; COMMIT at all of
   * them if a majority prepared in time, else ABORT.
   */
  async #atomic(
    record: Record,
    expected: bigint,
    options: DhtCallOptions,
    prepare: (proposal: Uint8Array) => [number, Uint8Array],
  ): Promise<DhtWriteResult> {
    const replicas = await this.#replicasOf(record.key, options);
    if (replicas.length === 0) throw new QuorumError("No replica of the key can be reached");
    const proposal = crypto.getRandomValues(new Uint8Array(16));
    const quorum = majority(replicas.length);
    const started = this.#host.clock.now();
    const [opcode, payload] = prepare(proposal);
    const prepared = await Promise.allSettled(
      replicas.map((c) => this.#send(c, opcode, payload, options.signal)),
    );
    const reserved = replicas.filter((_, i) => prepared[i].status === "fulfilled");
    const phase = (p: CasPhase) =>
      toBinary(
        CasRequestSchema,
        create(CasRequestSchema, { record, expectedVersion: expected, proposal, phase: p }),
      );
    const inTime = this.#host.clock.now() - started < this.#reservationTime / 2;
    if (reserved.length >= quorum && inTime && !options.signal?.aborted) {
      const commit = phase(CasPhase.COMMIT);
      // Not cancellable: a decided write is committed everywhere it can be.
      const results = await Promise.allSettled(
        replicas.map((c) => this.#send(c, Opcode.DHT_CAS, commit)),
      );
      const committed = results.filter((r) => r.status === "fulfilled").length;
      if (committed >= quorum) {
        this.#publish(record);
        return { version: Number(record.version), replicas: committed };
      }
      throw new QuorumError(
        `The write was decided but only ${committed} of ${replicas.length} replicas committed ` +
          `it (${quorum} needed): its outcome is uncertain`,
      );
    }
    const abort = phase(CasPhase.ABORT);
    await Promise.allSettled(reserved.map((c) => this.#send(c, Opcode.DHT_CAS, abort)));
    options.signal?.throwIfAborted();
    throw failure(prepared, replicas.length, "write", quorum);
  }

  async #release(
    key: Uint8Array,
    token: number,
    replicas: readonly Contact[],
    signal?: AbortSignal,
  ): Promise<PromiseSettledResult<Uint8Array>[]> {
    const payload = toBinary(
      UnlockRequestSchema,
      create(UnlockRequestSchema, { key, fencingToken: BigInt(token) }),
    );
    return await Promise.allSettled(
      replicas.map((c) => this.#send(c, Opcode.DHT_UNLOCK, payload, signal)),
    );
  }

  /** One request: to this node's own store, or through the host. */
  async #send(
    contact: Contact,
    opcode: number,
    payload: Uint8Array,
    signal?: AbortSignal,
    timeout = this.#timeout,
  ): Promise<Uint8Array> {
    signal?.throwIfAborted();
    if (contact.address === this.#host.contact.address) {
      return this.serve(opcode, payload, contact.address);
    }
    return await this.#host.request(contact, opcode, payload, { signal, timeout });
  }

  #peerInfos(target: Uint8Array, except: string): PeerInfo[] {
    const k = this.#host.table.k;
    return this.#host.table.closest(
      target,
      k,
      (c) => c.address !== except && c.listenAddrs.length > 0,
    ).map((c) =>
      create(PeerInfoSchema, {
        address: c.identityKey,
        listenAddrs: c.listenAddrs,
        acceptsInbound: c.listenAddrs.length > 0,
      })
    );
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
    if (value.length > this.#store.maxValueSize) {
      throw new RecordError(
        `The value is ${value.length} bytes, over the limit of ${this.#store.maxValueSize}`,
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

/**
 * Applies what {@linkcode Dht.changes} returned to the value at the version
 * asked: the whole value when it was sent, else each patch in turn, checking
 * that each produces the value its hash names.
 *
 * @throws {PatchError} when a patch does not apply or its result differs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyChanges, dhtKey } from "@carrier/p2p";
 * const key = dhtKey("doc");
 * const base = { key, value: new TextEncoder().encode('{"n":1}'), version: 1 };
 * assert.equal(applyChanges(base, { currentVersion: 1, changes: [] }), base);
 * ```
 */
export function applyChanges(
  base: DhtValue | undefined,
  changes: DhtChanges,
  maxSize = Number.MAX_SAFE_INTEGER,
): DhtValue | undefined {
  if (changes.value) return changes.value;
  if (changes.changes.length === 0) return base;
  if (!base) throw new PatchError("Changes need the value they start from");
  let value = base.value;
  let version = base.version;
  for (const change of changes.changes) {
    if (change.baseVersion !== version) {
      throw new PatchError(`Change from version ${change.baseVersion} does not follow ${version}`);
    }
    value = applyPatch(value, patchMessage(change.patch, change.baseVersion), maxSize);
    if (!bytesEqual(sha256(value), change.valueHash)) {
      throw new PatchError(`Change to version ${change.version} produced another value`);
    }
    version = change.version;
  }
  return { ...base, value, version };
}

/** The wire form of a patch (hash and signature left empty). */
function patchMessage(patch: DhtPatch, baseVersion: number): Patch {
  const version = BigInt(baseVersion + 1);
  if ("json" in patch) {
    return create(PatchSchema, {
      baseVersion: BigInt(baseVersion),
      version,
      format: PatchFormat.JSON_PATCH,
      jsonPatch: JSON.stringify(patch.json),
    });
  }
  return create(PatchSchema, {
    baseVersion: BigInt(baseVersion),
    version,
    format: PatchFormat.BYTE_SPLICE,
    splices: patch.splices.map((s) =>
      create(ByteSpliceSchema, {
        offset: BigInt(s.offset),
        deleteCount: BigInt(s.deleteCount),
        insert: s.insert,
      })
    ),
  });
}

/** A replica's DHT_CHANGES reply, checked: a chain from `since` to its current version. */
function readChanges(key: Uint8Array, since: number, data: Uint8Array): DhtChanges | undefined {
  let reply;
  try {
    reply = decodePayload(ChangesReplySchema, data);
  } catch {
    return undefined;
  }
  const currentVersion = Number(reply.currentVersion);
  if (reply.record) {
    try {
      checkRecord(reply.record);
    } catch {
      return undefined;
    }
    if (!bytesEqual(reply.record.key, key) || reply.record.version !== reply.currentVersion) {
      return undefined;
    }
    return { currentVersion, changes: [], value: valueOf(reply.record) };
  }
  const changes: DhtChange[] = [];
  let version = since;
  for (const p of reply.patches) {
    if (Number(p.baseVersion) !== version || p.version <= p.baseVersion) return undefined;
    let patch: DhtPatch;
    try {
      patch = p.format === PatchFormat.JSON_PATCH
        ? { json: parseJsonPatch(p.jsonPatch) }
        : { splices: splicesOf(p.splices) };
    } catch {
      return undefined; // a replica's malformed patch
    }
    changes.push({
      baseVersion: Number(p.baseVersion),
      version: Number(p.version),
      patch,
      valueHash: p.valueHash,
    });
    version = Number(p.version);
  }
  if (changes.length > 0 && version !== currentVersion) return undefined;
  return { currentVersion, changes };
}

/**
 * The copy to believe: the newest version among owned (signed) copies and
 * open copies that two replicas agree on; when none qualifies, the newest.
 */
function chooseRecord(copies: Record[]): Record | undefined {
  if (copies.length === 0) return undefined;
  const groups = new Map<string, { record: Record; count: number }>();
  for (const r of copies) {
    const id = `${r.version}:${toHex(sha256(r.value))}:${toHex(r.owner)}`;
    const group = groups.get(id);
    if (group) group.count++;
    else groups.set(id, { record: r, count: 1 });
  }
  const all = [...groups.values()].sort((a, b) =>
    a.record.version === b.record.version
      ? b.count - a.count
      : (a.record.version < b.record.version ? 1 : -1)
  );
  const trusted = all.find((g) => g.record.owner.length > 0 || g.count >= 2 || copies.length === 1);
  return (trusted ?? all[0]).record;
}

/** What a caller gets: copies, so that changing them cannot change a replica's store. */
function valueOf(record: Record): DhtValue {
  const value: DhtValue = {
    key: record.key.slice(),
    value: record.value.slice(),
    version: Number(record.version),
  };
  if (record.owner.length > 0) value.owner = formatAddress(record.owner);
  return value;
}

/**
 * The contacts of a FIND_NODE or FIND_VALUE reply: only nodes that accept
 * connections are listed (a reply that lists one that does not, or one
 * without a listen address, has it dropped: it is no replica and cannot be
 * dialed).
 */
function contactsOf(peers: readonly PeerInfo[]): Contact[] {
  return peers.filter((p) =>
    p.address.length === 32 && p.acceptsInbound && p.listenAddrs.length > 0
  ).map((p) => contactOf(p.address, formatAddress(p.address), p.listenAddrs.slice(0, 4)));
}

function checkTarget(opcode: Opcode, target: Uint8Array, what: string): void {
  if (target.length !== NODE_ID_LENGTH) {
    throw refusal(
      opcode,
      NackReason.MALFORMED,
      `${what} must be ${NODE_ID_LENGTH} bytes, got ${target.length}`,
    );
  }
}

/** The `LockHeld` data of the replicas that answered NACK `LOCK_HELD`. */
function heldBy(results: readonly PromiseSettledResult<unknown>[]): LockHeld[] {
  return results.flatMap((r) =>
    r.status === "rejected" && r.reason instanceof NackError &&
      r.reason.reason === NackReason.LOCK_HELD
      ? [decodePayload(LockHeldSchema, r.reason.data)]
      : []
  );
}

/** The error naming the holder most replicas report (the highest token among them). */
function lockHeldError(held: readonly LockHeld[]): LockHeldError {
  const top = held.reduce((a, b) => (b.fencingToken > a.fencingToken ? b : a));
  const holder = formatAddress(top.holder);
  return new LockHeldError(
    `The lock is held by ${holder} (token ${top.fencingToken}) for ${top.expiresInMs} ms more`,
    { holder, fencingToken: Number(top.fencingToken), expiresIn: Number(top.expiresInMs) },
  );
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The error for a call that too few replicas took: the conflict if there was one. */
function failure(
  results: readonly PromiseSettledResult<unknown>[],
  asked: number,
  what: string,
  needed = 1,
): Error {
  const nacks = results.flatMap((r) =>
    r.status === "rejected" && r.reason instanceof NackError ? [r.reason] : []
  );
  const conflicts = nacks.filter((n) => n.reason === NackReason.VERSION_CONFLICT).flatMap((n) => {
    try {
      return [decodePayload(VersionConflictSchema, n.data)];
    } catch {
      return [];
    }
  });
  if (conflicts.length > 0) {
    const newest = conflicts.reduce((a, b) => (b.currentVersion > a.currentVersion ? b : a));
    const busy = conflicts.every((c) => c.busy);
    return new VersionConflictError(
      busy
        ? `The ${what} lost: another write to version ${newest.currentVersion + 1n} was in progress`
        : `The ${what} lost: the replicas hold version ${newest.currentVersion}`,
      { currentVersion: Number(newest.currentVersion), currentValue: newest.current?.value },
    );
  }
  const refused = nacks.find((n) => n.reason !== NackReason.VERSION_CONFLICT);
  const ok = results.filter((r) => r.status === "fulfilled").length;
  if (refused && ok === 0) return refused;
  return new QuorumError(
    `The ${what} reached ${ok} of ${asked} replicas; ${needed} needed`,
    { cause: results.find((r) => r.status === "rejected")?.reason },
  );
}
