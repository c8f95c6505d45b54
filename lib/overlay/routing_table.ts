/**
 * The Kademlia routing table: 256 k-buckets over NodeId (SHA-256 of the
 * address), bucket `i` holding contacts whose XOR distance from this node has
 * its highest set bit at `i` (see `bucketIndex`).
 *
 * - Each bucket holds at most `k` contacts, least recently seen first, plus a
 *   bounded replacement cache. A contact offered to a full bucket waits in the
 *   cache; {@linkcode RoutingTable.add} reports the least recently seen
 *   contact so that the caller can check its liveness (PING) and
 *   {@linkcode RoutingTable.remove} it when it is dead, which promotes the
 *   newest replacement. Kademlia's preference for old, proven contacts makes
 *   the table hard to flush.
 * - At most `maxPerSubnet` contacts of one IPv4 /24 or IPv6 /48 per bucket
 *   (default 2), so one network cannot fill a table (S/Kademlia). Loopback
 *   addresses are exempt unless `limitLoopback` is set, so a local swarm works.
 *
 * @module
 */
import type { RelayHint } from "../secure/_handshake_payload.ts";
import { type Clock, systemClock } from "../clock.ts";
import { bucketIndex, compareDistance, NODE_ID_BITS, nodeIdOf } from "../identity/node_id.ts";
import { isLoopback, subnetOf } from "../transport/ip.ts";
import { ArgumentError } from "../errors.ts";

/**
 * A node the table knows.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Contact, generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * const me = generateIdentitySync({ difficulty: 0 });
 * const other = generateIdentitySync({ difficulty: 0 });
 * const table = new RoutingTable(me.nodeId);
 * table.add(contactOf(other.publicKey, other.address, ["10.0.0.1:4000"]));
 * const contact: Contact | undefined = table.get(other.address);
 * assert.deepEqual(contact?.nodeId, other.nodeId);
 * assert.deepEqual(contact?.listenAddrs, ["10.0.0.1:4000"]);
 * ```
 */
export interface Contact {
  /** Its 32-byte Ed25519 public key. */
  readonly identityKey: Uint8Array;
  /** The same, base58. */
  readonly address: string;
  /** SHA-256 of the key. */
  readonly nodeId: Uint8Array;
  /** Where it accepts connections (`HOST:PORT`); empty if it accepts none. */
  listenAddrs: string[];
  /** When it was last heard from (clock milliseconds). */
  lastSeen: number;
  /** Relays it holds reservations at (how to reach one that accepts no connections). */
  relays?: RelayHint[];
}

/**
 * Kademlia's k: contacts per bucket, peers per FIND_NODE reply, replicas
 * per key (`NodeOptions.k`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_K } from "@carrier/p2p/protocol";
 * assert.equal(DEFAULT_K, 20);
 * ```
 */
export const DEFAULT_K = 20;

/**
 * Options of a {@linkcode RoutingTable}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, type RoutingTableOptions } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const me = generateIdentitySync({ difficulty: 0 });
 * const options: RoutingTableOptions = { k: 4, maxPerSubnet: 1, clock: new ManualClock() };
 * const table = new RoutingTable(me.nodeId, options);
 * for (let i = 0; i < 16; i++) {
 *   const other = generateIdentitySync({ difficulty: 0 });
 *   table.add(contactOf(other.publicKey, other.address));
 * }
 * assert.equal(table.k, 4);
 * assert(table.occupiedBuckets().every((i) => table.bucket(i).length <= 4));
 * ```
 */
export interface RoutingTableOptions {
  /** Kademlia's k: contacts per bucket. @default {20} */
  k?: number;
  /** Contacts of one IPv4 /24 or IPv6 /48 per bucket. @default {2} */
  maxPerSubnet?: number;
  /** Replacement cache entries per bucket. @default {k} */
  replacements?: number;
  /** Apply the subnet limit to loopback addresses too (127/8, ::1). @default {false} */
  limitLoopback?: boolean;
  /** Source of time. @default {systemClock} */
  clock?: Clock;
}

/**
 * What {@linkcode RoutingTable.add} did.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type AddResult, generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * const [me, other] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * const table = new RoutingTable(me.nodeId);
 * const add = (id: typeof me): AddResult => table.add(contactOf(id.publicKey, id.address));
 * assert.equal(add(me).status, "self");
 * assert.equal(add(other).status, "added");
 * assert.equal(add(other).status, "updated");
 * ```
 */
export type AddResult =
  | { status: "added" | "updated" | "self" | "subnet-full" }
  /** The bucket is full: `contact` waits as a replacement; check `oldest`'s liveness. */
  | { status: "full"; oldest: Contact };

/**
 * Creates a contact from a key and its listen addresses.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf } from "@carrier/p2p/protocol";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const contact = contactOf(identity.publicKey, identity.address, ["10.0.0.1:4000"]);
 * assert.deepEqual(contact.nodeId, identity.nodeId); // SHA-256 of the key
 * assert.equal(contact.lastSeen, 0);
 * ```
 */
export function contactOf(
  identityKey: Uint8Array,
  address: string,
  listenAddrs: string[] = [],
  lastSeen = 0,
  relays: RelayHint[] = [],
): Contact {
  const contact: Contact = {
    identityKey,
    address,
    nodeId: nodeIdOf(identityKey),
    listenAddrs,
    lastSeen,
  };
  if (relays.length > 0) contact.relays = relays;
  return contact;
}

interface Bucket {
  contacts: Contact[]; // least recently seen first
  replacements: Contact[]; // newest last
  refreshed: number;
}

/**
 * k-buckets over NodeId.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * const me = generateIdentitySync({ difficulty: 0 });
 * const table = new RoutingTable(me.nodeId, { k: 20 });
 * const other = generateIdentitySync({ difficulty: 0 });
 * table.add(contactOf(other.publicKey, other.address, ["10.0.0.1:4000"]));
 * assert.equal(table.closest(other.nodeId, 1)[0].address, other.address);
 * ```
 */
export class RoutingTable {
  readonly #self: Uint8Array;
  readonly #k: number;
  readonly #maxPerSubnet: number;
  readonly #maxReplacements: number;
  readonly #limitLoopback: boolean;
  readonly #clock: Clock;
  readonly #buckets: Bucket[];
  readonly #index = new Map<string, number>(); // address -> bucket

  /** Creates an empty table for the node with id `self`. */
  constructor(self: Uint8Array, options: RoutingTableOptions = {}) {
    this.#self = self;
    this.#k = options.k ?? DEFAULT_K;
    this.#maxPerSubnet = options.maxPerSubnet ?? 2;
    this.#maxReplacements = options.replacements ?? this.#k;
    this.#limitLoopback = options.limitLoopback ?? false;
    this.#clock = options.clock ?? systemClock;
    if (!Number.isInteger(this.#k) || this.#k < 1) {
      throw new ArgumentError(`k must be a positive integer, got ${this.#k}`);
    }
    const now = this.#clock.now();
    this.#buckets = Array.from({ length: NODE_ID_BITS }, () => ({
      contacts: [],
      replacements: [],
      refreshed: now,
    }));
  }

  /** Contacts in the table (replacements excluded). */
  get size(): number {
    return this.#index.size;
  }

  /** Kademlia's k. */
  get k(): number {
    return this.#k;
  }

  /**
   * Offers a contact (heard from, or learned of). An existing contact is
   * updated and becomes the most recently seen.
   */
  add(contact: Contact): AddResult {
    const i = bucketIndex(this.#self, contact.nodeId);
    if (i < 0) return { status: "self" };
    const bucket = this.#buckets[i];
    contact.lastSeen ||= this.#clock.now();
    const at = bucket.contacts.findIndex((c) => c.address === contact.address);
    if (at >= 0) {
      const existing = bucket.contacts[at];
      existing.lastSeen = Math.max(existing.lastSeen, contact.lastSeen);
      if (contact.listenAddrs.length > 0) existing.listenAddrs = contact.listenAddrs;
      if (contact.relays?.length) existing.relays = contact.relays;
      bucket.contacts.splice(at, 1);
      bucket.contacts.push(existing);
      return { status: "updated" };
    }
    if (!this.#subnetAllows(bucket.contacts, contact)) return { status: "subnet-full" };
    if (bucket.contacts.length < this.#k) {
      bucket.contacts.push(contact);
      this.#index.set(contact.address, i);
      bucket.replacements = bucket.replacements.filter((c) => c.address !== contact.address);
      return { status: "added" };
    }
    bucket.replacements = bucket.replacements.filter((c) => c.address !== contact.address);
    bucket.replacements.push(contact);
    if (bucket.replacements.length > this.#maxReplacements) bucket.replacements.shift();
    return { status: "full", oldest: bucket.contacts[0] };
  }

  /**
   * Replaces where a contact says it accepts connections (an IDENTIFY);
   * `[]` when it no longer accepts any; and the relays it named. Nothing for
   * an unknown contact.
   */
  setListenAddrs(address: string, listenAddrs: string[], relays: RelayHint[] = []): void {
    const i = this.#index.get(address);
    if (i === undefined) return;
    const contact = this.#buckets[i].contacts.find((c) => c.address === address);
    if (!contact) return;
    contact.listenAddrs = listenAddrs;
    if (relays.length > 0) contact.relays = relays;
    else delete contact.relays;
  }

  /** Marks a contact as just heard from. */
  touch(address: string): void {
    const i = this.#index.get(address);
    if (i === undefined) return;
    const bucket = this.#buckets[i];
    const at = bucket.contacts.findIndex((c) => c.address === address);
    const [contact] = bucket.contacts.splice(at, 1);
    contact.lastSeen = this.#clock.now();
    bucket.contacts.push(contact);
  }

  /** Removes a contact (dead, or misbehaving); the newest replacement takes its place. */
  remove(address: string): boolean {
    const i = this.#index.get(address);
    if (i === undefined) return false;
    const bucket = this.#buckets[i];
    bucket.contacts = bucket.contacts.filter((c) => c.address !== address);
    this.#index.delete(address);
    while (bucket.replacements.length > 0) {
      const next = bucket.replacements.pop()!;
      if (this.#subnetAllows(bucket.contacts, next)) {
        bucket.contacts.push(next);
        this.#index.set(next.address, i);
        break;
      }
    }
    return true;
  }

  /** The contact with this address, if present. */
  get(address: string): Contact | undefined {
    const i = this.#index.get(address);
    return i === undefined
      ? undefined
      : this.#buckets[i].contacts.find((c) => c.address === address);
  }

  /** The contacts of bucket `i`, least recently seen first. */
  bucket(i: number): readonly Contact[] {
    return this.#buckets[i]?.contacts ?? [];
  }

  /** Indices of the non-empty buckets, highest (farthest) first. */
  occupiedBuckets(): number[] {
    const out: number[] = [];
    for (let i = NODE_ID_BITS - 1; i >= 0; i--) {
      if (this.#buckets[i].contacts.length > 0) out.push(i);
    }
    return out;
  }

  /** Every contact. */
  all(): Contact[] {
    return this.#buckets.flatMap((b) => b.contacts);
  }

  /** Up to `count` contacts closest to `target` by XOR distance, closest first. */
  closest(
    target: Uint8Array,
    count: number = this.#k,
    filter?: (c: Contact) => boolean,
  ): Contact[] {
    const candidates = filter ? this.all().filter(filter) : this.all();
    return candidates.sort((a, b) => compareDistance(target, a.nodeId, b.nodeId)).slice(0, count);
  }

  /** Marks bucket `i` as refreshed (a lookup in its range was just made). */
  markRefreshed(i: number): void {
    this.#buckets[i].refreshed = this.#clock.now();
  }

  /** Buckets not refreshed for `age` ms, up to and including the highest occupied one. */
  staleBuckets(age: number): number[] {
    const cutoff = this.#clock.now() - age;
    const top = this.occupiedBuckets()[0] ?? -1;
    const out: number[] = [];
    for (let i = top; i >= 0; i--) if (this.#buckets[i].refreshed <= cutoff) out.push(i);
    return out;
  }

  #subnetOf(address: string): string | undefined {
    if (!this.#limitLoopback && isLoopback(address)) return undefined;
    return subnetOf(address);
  }

  #subnetAllows(contacts: readonly Contact[], contact: Contact): boolean {
    const subnets = new Set(
      contact.listenAddrs.map((a) => this.#subnetOf(a)).filter((s) => s !== undefined),
    );
    if (subnets.size === 0) return true;
    for (const subnet of subnets) {
      let count = 0;
      for (const c of contacts) {
        if (c.listenAddrs.some((a) => this.#subnetOf(a) === subnet)) count++;
      }
      if (count >= this.#maxPerSubnet) return false;
    }
    return true;
  }
}
