/**
 * SHOUT forwarding: who a node sends a network-wide broadcast to, as a pure
 * function of its routing table. No transport, no timers, no state: the node
 * calls {@linkcode planForward} when a SHOUT arrives (or when it originates
 * one) and {@linkcode nextInBucket} when a peer it sent to does not
 * acknowledge in time.
 *
 * ## The tree: Kadcast
 *
 * Forwarding follows the Kademlia bucket tree, as in Kadcast (Rohrer and
 * Tschorsch, 2019). The origin sends the SHOUT to one peer of each occupied
 * bucket `i` with `height = i`; a node that receives it with height `h`
 * sends it to one peer of each occupied bucket `j < h`, with `height = j`.
 * Bucket `i` of a node is the subtree of the keyspace that shares the node's
 * id above bit `i` and differs at bit `i`, and the buckets `j < i` of any
 * node of that subtree partition the rest of it. So with one live peer per
 * non-empty subtree in every table, each node receives the message exactly
 * once: n − 1 SHOUTs per broadcast, and the height falls by at least one per
 * hop, so a path has at most as many hops as there are occupied bucket
 * levels (about log₂ n; in the simulation the mean is about ½·log₂ n).
 *
 * ## Redundancy: per-hop ACK with fallback (the default)
 *
 * A crashed forwarder would cut its whole subtree. Kadcast's own answer is
 * to send to β peers per bucket (plus forward error correction); that costs
 * more than β·(n − 1) SHOUTs (a node forwards below the height of its first
 * copy, and of two racing copies the first tends to carry the greater
 * height), and still loses subtrees when all β picks are dead. carrier
 * instead acknowledges every SHOUT hop by hop: the receiver answers the
 * SHOUT request with a bare ACK (no payload, a few bytes), and a sender that
 * sees no ACK within its timeout sends the same SHOUT, with the same height
 * and hop count, to {@linkcode nextInBucket} of the same bucket. The subtree
 * is still covered exactly once unless every contact of that bucket is dead.
 * Cost: n − 1 SHOUTs and n − 1 ACKs with no failures; with dead contacts,
 * one SHOUT per dead pick more, and each dead pick delays its subtree by one
 * timeout. The seed advises against ACKing a SHOUT because in a flood an ACK
 * per copy doubles an O(ℓ·n) bill; on a tree there is one copy per node, so
 * the ACK costs one small frame per node.
 *
 * Measured by `deno task sim` (n = 10,000, k = 20, tables built by FIND_NODE
 * lookups, 10 broadcasts per row; "crashed": 10% of the nodes fail without
 * notice and stay in everyone's table; ACK timeout 200 ms over 10–50 ms
 * links):
 *
 * | setting               | SHOUTs÷(n−1) | ACKs÷(n−1) | delivery     | max hops | ms, mean/max |
 * | --------------------- | ------------ | ---------- | ------------ | -------- | ------------ |
 * | β = 1, no ACK         | 1.00; 0.54   | 0          | 100%; 54.0%  | 12       | 189 / 437    |
 * | β = 2, no ACK         | 2.52; 2.28   | 0          | 100%; 98.87% | 11       | 124 / 290    |
 * | β = 3, no ACK         | 4.19; 3.74   | 0          | 100%; 99.90% | 10       | 99 / 208     |
 * | β = 1, ACK + fallback | 1.00; 1.06   | 1.00; 0.90 | 100%; 100%   | 13       | 185 / 439    |
 *
 * (Each cell: healthy; crashed. The latency is the healthy one; with 10%
 * crashed the default's is 304 / 2480 ms, the tail being paths that meet
 * several dead picks, 200 ms each.) Only the ACK meets both targets,
 * m ≤ 1.1·(n − 1) and ≥ 99.9% delivery with 10% crashed, with one
 * configuration, so it is the default, with `redundancy` 1. `redundancy` > 1
 * remains for links that drop messages silently, and buys latency (fewer
 * hops) with bandwidth. A node that gets a copy of a SHOUT it has seen (an
 * ACK that came after its timeout, or β > 1) ACKs it again and forwards
 * only the buckets the new copy adds, passing the highest height it already
 * forwarded for as `previousHeight`, so that the union of the trees stays
 * complete. A node should also drop a peer that timed out from its table
 * (`RoutingTable.remove`), so the next broadcast does not wait for it again.
 *
 * ## Why Kadcast rather than Plumtree
 *
 * Plumtree (Leitão, Pereira and Rodrigues, 2007) builds a spanning tree over
 * a random overlay by eager push on tree links and lazy push (IHAVE) on all
 * other links, repairing with GRAFT/PRUNE. It needs a membership protocol of
 * its own (HyParView), its first broadcasts flood until duplicates prune the
 * tree, the tree suits the source it formed around, and every broadcast
 * still sends an IHAVE over each non-tree link ((degree − 1)·n small
 * messages). Kadcast needs nothing beyond the Kademlia routing table the DHT
 * keeps anyway and no per-tree state (only the seen cache), and gives every
 * origin a tree of depth O(log n) from the first message. What Kadcast
 * lacks, crash tolerance, the per-hop ACK supplies at one small frame per
 * node instead of Plumtree's one per link.
 *
 * ## Choosing within a bucket
 *
 * Which peer of a bucket forwards does not change the message count, but it
 * changes the depth. The default, `"balanced"`, takes the peer on the larger
 * side of every split of the bucket's contacts: that peer then covers the
 * bigger half itself, and only the smaller half waits one hop more. It
 * trades evenness of the work for depth: at n = 10,000 the deepest node is
 * 13 hops away (mean 6.3) against 14 (mean 6.6) with `"uniform"`, a
 * per-message shuffle, while the busiest node sends 6.7 SHOUTs per broadcast
 * against 5.5 (n = 1,000: 9 against 11 hops, 6.3 against 3.4 SHOUTs). Both
 * are deterministic: the same table, options and `seed` (the message id)
 * give the same plan, and with a seed the plan does not depend on the order
 * of the candidates.
 *
 * ## In the node
 *
 * On a SHOUT: check the signature; look the message id up in the seen cache
 * (and the highest height forwarded for it); ACK; deliver it if new; then
 * send a SHOUT with `hops + 1` to each target of `planForward({ self,
 * height, previousHeight, candidates: table, seed: messageId })`, each as a
 * request with the ACK timeout (derive it from the peer's measured RTT),
 * keeping one `tried` set per bucket for {@linkcode nextInBucket}. The
 * origin does the same with `height: "origin"`.
 *
 * @module
 */
import { assertNodeId, bucketIndex, NODE_ID_BITS } from "../identity/node_id.ts";
import { type Contact, RoutingTable } from "./routing_table.ts";
import { ArgumentError } from "../errors.ts";

/**
 * The height of a SHOUT at its origin: every bucket lies below it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ORIGIN_HEIGHT } from "./broadcast.ts";
 * assert.equal(ORIGIN_HEIGHT, 256);
 * ```
 */
export const ORIGIN_HEIGHT: number = NODE_ID_BITS;

/**
 * Where a node may forward: its routing table, or any list of contacts (for
 * example every node, in a test with complete knowledge).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type BroadcastCandidates, planForward } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 * const ids = Array.from({ length: 8 }, () => generateIdentitySync({ difficulty: 0 }));
 * const everyone: BroadcastCandidates = ids.map((id) => contactOf(id.publicKey, id.address));
 * const table: BroadcastCandidates = new RoutingTable(ids[0].nodeId);
 * for (const contact of everyone) table.add(contact);
 * const plan = (candidates: BroadcastCandidates) =>
 *   planForward({ self: ids[0].nodeId, height: "origin", candidates }).map((t) => t.contact);
 * assert.deepEqual(plan(everyone), plan(table)); // a list plans like a table holding it
 * ```
 */
export type BroadcastCandidates = RoutingTable | readonly Contact[];

/**
 * One SHOUT to send: to `contact`, carrying `height`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ForwardTarget, planForward } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { bucketIndex, contactOf } from "@carrier/p2p/protocol";
 * const [me, ...others] = Array.from(Array(16), () => generateIdentitySync({ difficulty: 0 }));
 * const candidates = others.map((id) => contactOf(id.publicKey, id.address));
 * const targets: ForwardTarget[] = planForward({ self: me.nodeId, height: "origin", candidates });
 * for (const { contact, height } of targets) {
 *   assert.equal(bucketIndex(me.nodeId, contact.nodeId), height); // one peer per occupied bucket
 * }
 * ```
 */
export interface ForwardTarget {
  /** The peer to send to. */
  readonly contact: Contact;
  /** The `height` field of the SHOUT sent to it: the bucket it was chosen from. */
  readonly height: number;
}

/**
 * How a node chooses among the peers of one bucket:
 *
 * - `"balanced"`: the peer on the larger side of each split of the bucket's
 *   contacts (from the highest bit down), which keeps the tree shallow: a
 *   forwarder deep inside the bigger half leaves only the smaller half one
 *   hop further. Ties go the seed's way.
 * - `"uniform"`: a per-message shuffle (needs `seed`), which spreads the
 *   forwarding work evenly over the nodes at the price of about one more
 *   hop at the tail.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type BucketChoice, planForward } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf } from "@carrier/p2p/protocol";
 * const ids = Array.from({ length: 16 }, () => generateIdentitySync({ difficulty: 0 }));
 * const candidates = ids.map((id) => contactOf(id.publicKey, id.address));
 * const seed = crypto.getRandomValues(new Uint8Array(32)); // the message id
 * const self = ids[0].nodeId;
 * const heights = (choice: BucketChoice) =>
 *   planForward({ self, height: "origin", candidates, choice, seed }).map((t) => t.height);
 * assert.deepEqual(heights("balanced"), heights("uniform")); // one peer per bucket either way
 * ```
 */
export type BucketChoice = "balanced" | "uniform";

/**
 * Options of {@linkcode planForward}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { planForward, type PlanForwardOptions } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf } from "@carrier/p2p/protocol";
 * const [me, ...others] = Array.from(Array(32), () => generateIdentitySync({ difficulty: 0 }));
 * const candidates = others.map((id) => contactOf(id.publicKey, id.address));
 * const options: PlanForwardOptions = {
 *   self: me.nodeId,
 *   height: "origin",
 *   candidates,
 *   redundancy: 2,
 * };
 * const farthest = planForward(options).filter((t) => t.height === 255);
 * assert.equal(farthest.length, 2); // β = 2 peers of the farthest bucket (half of the network)
 * ```
 */
export interface PlanForwardOptions {
  /** This node's NodeId (the table's own id). */
  self: Uint8Array;
  /**
   * `"origin"` when this node originates the broadcast, else the `height` of
   * the SHOUT it received: only buckets below it are planned.
   */
  height: number | "origin";
  /** The routing table, or the contacts to choose from. */
  candidates: BroadcastCandidates;
  /** β: peers per bucket. @default {1} */
  redundancy?: number;
  /**
   * The highest height this node already forwarded this message for (from an
   * earlier copy): buckets below it are skipped, so a copy with a greater
   * height forwards only what it adds. @default {0}
   */
  previousHeight?: number;
  /** Peers not to send to (known dead, the sender, …). @default {none} */
  exclude?: (address: string) => boolean;
  /** How to choose within a bucket. @default {"balanced"} */
  choice?: BucketChoice;
  /**
   * 32 bytes that vary per message (use the message id): they break the
   * balanced rule's ties, or shuffle the uniform rule's order. Without
   * them, the candidates' own order breaks ties. @default {undefined}
   */
  seed?: Uint8Array;
}

/**
 * Options of {@linkcode nextInBucket}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextInBucket, type NextInBucketOptions } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { bucketIndex, contactOf } from "@carrier/p2p/protocol";
 * const [me, ...others] = Array.from(Array(16), () => generateIdentitySync({ difficulty: 0 }));
 * const candidates = others.map((id) => contactOf(id.publicKey, id.address));
 * const tried = new Set<string>();
 * const options: NextInBucketOptions = { self: me.nodeId, candidates, bucket: 255, tried };
 * // Nobody acknowledges: every contact of the bucket is tried, once.
 * for (let next; (next = nextInBucket(options)) !== undefined;) tried.add(next.address);
 * const bucket = candidates.filter((c) => bucketIndex(me.nodeId, c.nodeId) === 255);
 * assert.equal(tried.size, bucket.length);
 * ```
 */
export interface NextInBucketOptions {
  /** This node's NodeId (the table's own id). */
  self: Uint8Array;
  /** The routing table, or the contacts to choose from. */
  candidates: BroadcastCandidates;
  /** The bucket to choose from: the `height` of the SHOUT that was not acknowledged. */
  bucket: number;
  /** Addresses already sent this message in this bucket. */
  tried: ReadonlySet<string>;
  /** Peers not to send to. @default {none} */
  exclude?: (address: string) => boolean;
  /** The same rule as given to {@linkcode planForward}. @default {"balanced"} */
  choice?: BucketChoice;
  /** The same seed as given to {@linkcode planForward}. @default {undefined} */
  seed?: Uint8Array;
}

/**
 * The SHOUTs a node sends for one message: for each occupied bucket `j`
 * below `height` (and at or above `previousHeight`), the first `redundancy`
 * peers of the bucket, each with `height = j`. Farthest buckets (largest
 * subtrees) come first. Deterministic: the same table, options and seed
 * give the same plan.
 *
 * @returns The targets, highest bucket first; empty when there is nobody
 *   below `height` (a leaf of the tree, or a network of one).
 * @throws {ArgumentError} When `height`, `previousHeight` or `redundancy` is out
 *   of range.
 * @throws {NodeIdError} When `self` or `seed` is not 32 bytes.
 *
 * @example A broadcast over four nodes
 * ```ts
 * import assert from "node:assert/strict";
 * import { planForward } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 *
 * const ids = Array.from({ length: 4 }, () => generateIdentitySync({ difficulty: 0 }));
 * const tables = ids.map((me) => {
 *   const table = new RoutingTable(me.nodeId);
 *   for (const other of ids) table.add(contactOf(other.publicKey, other.address));
 *   return table;
 * });
 * // The origin sends to one peer per occupied bucket, height = the bucket;
 * // each receiver forwards below the height it received.
 * const queue = planForward({ self: ids[0].nodeId, height: "origin", candidates: tables[0] });
 * let sent = 0;
 * while (queue.length > 0) {
 *   const { contact, height } = queue.shift()!;
 *   sent++;
 *   const i = ids.findIndex((id) => id.address === contact.address);
 *   queue.push(...planForward({ self: ids[i].nodeId, height, candidates: tables[i] }));
 * }
 * assert.equal(sent, ids.length - 1); // every node reached, once
 * ```
 */
export function planForward(options: PlanForwardOptions): ForwardTarget[] {
  const { self, candidates } = options;
  const rule = ruleOf(options, options.exclude);
  const height = options.height === "origin" ? ORIGIN_HEIGHT : options.height;
  if (!Number.isInteger(height) || height < 0 || height > ORIGIN_HEIGHT) {
    throw new ArgumentError(
      `Cannot plan a SHOUT: height must be "origin" or an integer in [0, ${ORIGIN_HEIGHT}], got ${options.height}`,
    );
  }
  const floor = options.previousHeight ?? 0;
  if (!Number.isInteger(floor) || floor < 0 || floor > ORIGIN_HEIGHT) {
    throw new ArgumentError(
      `Cannot plan a SHOUT: previousHeight must be an integer in [0, ${ORIGIN_HEIGHT}], got ${floor}`,
    );
  }
  const redundancy = options.redundancy ?? 1;
  if (!Number.isInteger(redundancy) || redundancy < 1) {
    throw new ArgumentError(
      `Cannot plan a SHOUT: redundancy must be a positive integer, got ${redundancy}`,
    );
  }
  const out: ForwardTarget[] = [];
  for (const [j, bucket] of bucketsBetween(self, candidates, floor, height)) {
    for (const contact of pick(bucket, j, redundancy, rule)) {
      out.push({ contact, height: j });
    }
  }
  return out;
}

/**
 * The fallback: the best peer of bucket `bucket` that has not been tried yet
 * (in the order {@linkcode planForward} ranks them), to send the SHOUT to
 * when an earlier pick did not acknowledge it. Send it with the same
 * `height` (= `bucket`).
 *
 * @returns The next peer, or undefined when the bucket is exhausted.
 * @throws {ArgumentError} When `bucket` is not an integer in [0, 255].
 * @throws {NodeIdError} When `self` or `seed` is not 32 bytes.
 *
 * @example Fall back when a peer does not acknowledge
 * ```ts
 * import assert from "node:assert/strict";
 * import { nextInBucket, planForward } from "./broadcast.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, RoutingTable } from "@carrier/p2p/protocol";
 *
 * const me = generateIdentitySync({ difficulty: 0 });
 * const table = new RoutingTable(me.nodeId);
 * for (let i = 0; i < 8; i++) {
 *   const other = generateIdentitySync({ difficulty: 0 });
 *   table.add(contactOf(other.publicKey, other.address));
 * }
 * const [first] = planForward({ self: me.nodeId, height: "origin", candidates: table });
 * const tried = new Set([first.contact.address]);
 * // No ACK from `first` within the timeout: try the next peer of its bucket.
 * const next = nextInBucket({ self: me.nodeId, candidates: table, bucket: first.height, tried });
 * assert.ok(next === undefined || !tried.has(next.address));
 * ```
 */
export function nextInBucket(options: NextInBucketOptions): Contact | undefined {
  const { self, candidates, bucket, tried, exclude } = options;
  const skip = (address: string): boolean => tried.has(address) || (exclude?.(address) ?? false);
  const rule = ruleOf(options, skip);
  if (!Number.isInteger(bucket) || bucket < 0 || bucket >= NODE_ID_BITS) {
    throw new ArgumentError(
      `Cannot pick a fallback: bucket must be an integer in [0, ${
        NODE_ID_BITS - 1
      }], got ${bucket}`,
    );
  }
  const contacts = [...bucketsBetween(self, candidates, bucket, bucket + 1)][0]?.[1] ?? [];
  return pick(contacts, bucket, 1, rule)[0];
}

/** The non-empty buckets `j` with `lo ≤ j < hi`, highest first, with their contacts. */
function* bucketsBetween(
  self: Uint8Array,
  candidates: BroadcastCandidates,
  lo: number,
  hi: number,
): Generator<[number, readonly Contact[]]> {
  if (candidates instanceof RoutingTable) {
    if (hi === lo + 1) {
      if (candidates.bucket(lo).length > 0) yield [lo, candidates.bucket(lo)];
      return;
    }
    for (const j of candidates.occupiedBuckets()) {
      if (j < hi && j >= lo) yield [j, candidates.bucket(j)];
    }
    return;
  }
  const buckets = new Map<number, Contact[]>();
  for (const contact of candidates) {
    const j = bucketIndex(self, contact.nodeId);
    if (j < lo || j >= hi) continue; // j = -1: self
    const list = buckets.get(j);
    if (list) list.push(contact);
    else buckets.set(j, [contact]);
  }
  for (const j of [...buckets.keys()].sort((a, b) => b - a)) yield [j, buckets.get(j)!];
}

/**
 * The first `count` contacts of bucket `j` that `skip` lets through, best
 * first, by the `choice` rule (see {@linkcode BucketChoice}).
 */
function pick(
  bucket: readonly Contact[],
  j: number,
  count: number,
  rule: Rule,
): Contact[] {
  const pool: Contact[] = [];
  const seen = new Set<string>();
  for (const contact of bucket) {
    if (seen.has(contact.address) || rule.skip?.(contact.address)) continue;
    seen.add(contact.address);
    pool.push(contact);
  }
  if (rule.choice === "uniform") return sortUniform(pool, rule.seed).slice(0, count);
  const out: Contact[] = [];
  let rest = pool;
  while (out.length < count && rest.length > 0) {
    const best = balanced(rest, j, rule.seed);
    out.push(best);
    rest = rest.filter((c) => c !== best);
  }
  return out;
}

function ruleOf(
  options: { self: Uint8Array; choice?: BucketChoice; seed?: Uint8Array },
  skip: Rule["skip"],
): Rule {
  assertNodeId(options.self, "NodeId (self)");
  const { seed } = options;
  if (seed !== undefined) assertNodeId(seed, "seed");
  const choice = options.choice ?? "balanced";
  if (choice !== "balanced" && choice !== "uniform") {
    throw new ArgumentError(
      `Cannot plan a SHOUT: choice must be "balanced" or "uniform", got ${String(choice)}`,
    );
  }
  return { choice, seed, skip };
}

interface Rule {
  choice: BucketChoice;
  seed: Uint8Array | undefined;
  skip: ((address: string) => boolean) | undefined;
}

/**
 * The balanced pick among contacts of bucket `j` (which all agree on bits
 * ≥ j): from bit j − 1 down, keep the half with more contacts (on a tie, the
 * half on the seed's side, or without a seed the half holding the earlier
 * contact), until one contact is left.
 */
function balanced(pool: readonly Contact[], j: number, seed: Uint8Array | undefined): Contact {
  let set = pool;
  for (let b = j - 1; b >= 0 && set.length > 1; b--) {
    const ones = set.filter((c) => bitOf(c.nodeId, b) === 1);
    if (ones.length === 0 || ones.length === set.length) continue;
    const zeros = set.filter((c) => bitOf(c.nodeId, b) === 0);
    if (ones.length !== zeros.length) set = ones.length > zeros.length ? ones : zeros;
    else if (seed) set = bitOf(seed, b) === 1 ? ones : zeros;
    else set = bitOf(set[0].nodeId, b) === 1 ? ones : zeros;
  }
  return set[0];
}

/** Bit `b` of a NodeId, numbered as in `bucketIndex` (255: top bit of byte 0). */
function bitOf(id: Uint8Array, b: number): number {
  return (id[31 - (b >> 3)] >> (b & 7)) & 1;
}

/**
 * A per-message shuffle: by the last 32 bits of the NodeId XOR those of the
 * seed (bits that say nothing about a node's place in the bucket tree), ties
 * by address; the candidates' order without a seed.
 */
function sortUniform(pool: Contact[], seed: Uint8Array | undefined): Contact[] {
  if (!seed) return pool;
  const mask = low32(seed);
  const key = new Map(pool.map((c) => [c, (low32(c.nodeId) ^ mask) >>> 0]));
  return pool.sort((a, b) =>
    key.get(a)! - key.get(b)! || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0)
  );
}

function low32(id: Uint8Array): number {
  return ((id[28] << 24) | (id[29] << 16) | (id[30] << 8) | id[31]) >>> 0;
}
