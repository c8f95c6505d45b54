/**
 * The overlay of `bench/sim.ts`: n simulated nodes, each with a real
 * {@linkcode RoutingTable}, filled the way a Kademlia node fills it, at the
 * level of messages (who asks whom, who learns whom), without sockets,
 * handshakes or signatures:
 *
 * - **Join** (Kademlia §2.3). Nodes join one after another. A joining node
 *   knows one bootstrap node (node 0), runs an iterative FIND_NODE lookup for
 *   its own id, then refreshes every bucket farther than its closest
 *   neighbour with a lookup for a random id in that bucket's range.
 * - **Lookup.** α = 3 parallel FIND_NODE requests per round to the closest
 *   contacts not yet asked, until the k closest known have all answered. The
 *   node asked answers with the k closest contacts of its own table; both
 *   sides learn each other (`RoutingTable.add`). A full bucket PINGs its
 *   least recently seen contact, which answers (nobody is down while tables
 *   form) and stays; the newcomer waits in the replacement cache.
 * - **Refresh rounds** (optional): afterwards every node refreshes its
 *   buckets again, as the periodic (hourly) refresh would.
 *
 * NodeIds are random 256-bit values from a seeded generator (standing in for
 * SHA-256 of fresh Ed25519 keys); addresses are `n0`, `n1`, ….
 *
 * @module
 */
import type { Clock } from "../lib/clock.ts";
import { type Contact, RoutingTable } from "../lib/overlay/routing_table.ts";
import type { Rng } from "./_sim_clock.ts";

/** One simulated node. */
export interface SimNode {
  /** Its position in {@linkcode SimOverlay.nodes}. */
  readonly index: number;
  /** How others store it (one shared object per node, to save memory). */
  readonly contact: Contact;
  /** Its routing table. */
  readonly table: RoutingTable;
}

/** Options of a {@linkcode SimOverlay}. */
export interface SimOverlayOptions {
  /** Nodes. */
  n: number;
  /** Kademlia's k. @default {20} */
  k?: number;
  /** Kademlia's α. @default {3} */
  alpha?: number;
  /** Refresh rounds after everyone joined. @default {0} */
  refreshRounds?: number;
  /** Randomness (ids, refresh targets). */
  rng: Rng;
  /** The tables' clock. */
  clock: Clock;
}

const WORDS = 8; // 256-bit ids as 8 big-endian 32-bit words

/**
 * n nodes whose routing tables were filled by simulated FIND_NODE lookups.
 *
 * @example
 * ```ts
 * import { HeapClock, Rng } from "./_sim_clock.ts";
 * import { SimOverlay } from "./_sim_overlay.ts";
 * const overlay = new SimOverlay({ n: 50, rng: new Rng(1), clock: new HeapClock() });
 * console.assert(overlay.route(0, 49).ok);
 * ```
 */
export class SimOverlay {
  /** The nodes, in join order (node 0 is the bootstrap node). */
  readonly nodes: SimNode[];
  /** FIND_NODE requests sent while the tables formed. */
  findNodes = 0;
  /** PINGs of least recently seen contacts of full buckets. */
  pings = 0;
  readonly #k: number;
  readonly #alpha: number;
  readonly #rng: Rng;
  readonly #words: Uint32Array;
  readonly #asked: Int32Array;
  readonly #listed: Int32Array;
  #stamp = 0;

  /** Creates the nodes and runs the joins (and refresh rounds). */
  constructor(options: SimOverlayOptions) {
    const { n, rng, clock } = options;
    this.#k = options.k ?? 20;
    this.#alpha = options.alpha ?? 3;
    this.#rng = rng;
    this.#words = new Uint32Array(n * WORDS);
    this.#asked = new Int32Array(n);
    this.#listed = new Int32Array(n);
    this.nodes = [];
    for (let i = 0; i < n; i++) {
      const id = rng.bytes(32);
      const view = new DataView(id.buffer);
      for (let w = 0; w < WORDS; w++) this.#words[i * WORDS + w] = view.getUint32(4 * w);
      const contact: Contact = {
        identityKey: id,
        address: `n${i}`,
        nodeId: id,
        listenAddrs: [],
        lastSeen: 0,
      };
      this.nodes.push({ index: i, contact, table: new RoutingTable(id, { k: this.#k, clock }) });
    }
    for (let u = 1; u < n; u++) {
      this.#learn(u, 0);
      this.lookup(u, this.#idWords(u));
      this.#refresh(u);
    }
    for (let round = 0; round < (options.refreshRounds ?? 0); round++) {
      for (const u of rng.sample(n, n)) this.#refresh(u);
    }
  }

  /** The index of a contact's node. */
  indexOf(contact: Contact): number {
    return Number(contact.address.slice(1));
  }

  /**
   * An iterative FIND_NODE lookup by node `u` for `target` (8 words):
   * returns the k closest nodes it found, closest first. `dead` nodes do not
   * answer.
   */
  lookup(u: number, target: Uint32Array, dead?: Uint8Array): number[] {
    const stamp = ++this.#stamp;
    let list = this.closest(u, target, this.#k);
    for (const v of list) this.#listed[v] = stamp;
    for (;;) {
      const batch: number[] = [];
      for (const v of list) {
        if (this.#asked[v] !== stamp) batch.push(v);
        if (batch.length === this.#alpha) break;
      }
      if (batch.length === 0) break;
      for (const v of batch) {
        this.#asked[v] = stamp;
        this.findNodes++;
        if (dead?.[v]) continue;
        this.#learn(v, u);
        this.#learn(u, v);
        for (const w of this.closest(v, target, this.#k)) {
          if (w !== u && this.#listed[w] !== stamp) {
            this.#listed[w] = stamp;
            list.push(w);
          }
        }
      }
      list = list.filter((v) => !dead?.[v] || this.#asked[v] !== stamp);
      this.#sortByDistance(list, target);
      if (list.length > this.#k) list.length = this.#k;
    }
    return list;
  }

  /**
   * The `count` contacts of node `v`'s table closest to `target`, closest
   * first: what `RoutingTable.closest` returns, computed bucket by bucket
   * (bucket b of the target first, then the buckets below it, then the
   * buckets above it in ascending order) instead of sorting the whole table.
   */
  closest(v: number, target: Uint32Array, count: number): number[] {
    const table = this.nodes[v].table;
    const b = this.#bucketOf(v, target);
    const out: number[] = [];
    const take = (contacts: number[]): void => {
      this.#sortByDistance(contacts, target);
      for (const c of contacts) {
        if (out.length === count) return;
        out.push(c);
      }
    };
    if (b >= 0) take(table.bucket(b).map((c) => this.indexOf(c)));
    if (out.length < count) {
      const below: number[] = [];
      for (let j = 0; j < b; j++) for (const c of table.bucket(j)) below.push(this.indexOf(c));
      take(below);
    }
    for (let j = b + 1; j < 256 && out.length < count; j++) {
      const bucket = table.bucket(j);
      if (bucket.length > 0) take(bucket.map((c) => this.indexOf(c)));
    }
    return out;
  }

  /**
   * Greedy XOR routing (WHISPER) from node `s` to node `t`: each hop goes to
   * the contact closest to `t` that is closer than the current node; a
   * `dead` contact costs one timeout and the next closest is tried.
   */
  route(s: number, t: number, dead?: Uint8Array): { ok: boolean; hops: number; timeouts: number } {
    const target = this.#idWords(t);
    let cur = s;
    let hops = 0;
    let timeouts = 0;
    while (cur !== t && hops < 64) {
      let next = -1;
      for (const c of this.closest(cur, target, this.#k)) {
        if (this.#compare(target, c, cur) >= 0) break; // not closer than cur
        if (dead?.[c]) {
          timeouts++;
          continue;
        }
        next = c;
        break;
      }
      if (next < 0) return { ok: false, hops, timeouts };
      cur = next;
      hops++;
    }
    return { ok: cur === t, hops, timeouts };
  }

  #refresh(u: number): void {
    const [nearest] = this.closest(u, this.#idWords(u), 1);
    if (nearest === undefined) return;
    for (let i = this.#bucketOf(u, this.#idWords(nearest)) + 1; i < 256; i++) {
      this.lookup(u, this.#randomInBucket(u, i));
    }
  }

  #learn(at: number, about: number): void {
    const table = this.nodes[at].table;
    const result = table.add(this.nodes[about].contact);
    if (result.status === "full") {
      this.pings++;
      table.touch(result.oldest.address); // it answers; the newcomer waits
    }
  }

  #idWords(v: number): Uint32Array {
    return this.#words.slice(v * WORDS, v * WORDS + WORDS);
  }

  /** A random id in bucket `i` of node `u`: u's bits above i, bit i flipped, random below. */
  #randomInBucket(u: number, i: number): Uint32Array {
    const t = this.#idWords(u);
    const w = WORDS - 1 - (i >> 5);
    const bit = i & 31;
    const low = bit === 0 ? 0 : 0xffffffff >>> (32 - bit);
    t[w] = ((t[w] ^ (2 ** bit)) & ~low) | (this.#rng.uint32() & low);
    for (let x = w + 1; x < WORDS; x++) t[x] = this.#rng.uint32();
    return t;
  }

  #bucketOf(v: number, target: Uint32Array): number {
    const o = v * WORDS;
    for (let w = 0; w < WORDS; w++) {
      const x = (this.#words[o + w] ^ target[w]) >>> 0;
      if (x !== 0) return (WORDS - 1 - w) * 32 + 31 - Math.clz32(x);
    }
    return -1;
  }

  /** Negative when node a is closer to `target` than node b. */
  #compare(target: Uint32Array, a: number, b: number): number {
    const oa = a * WORDS;
    const ob = b * WORDS;
    for (let w = 0; w < WORDS; w++) {
      const da = (this.#words[oa + w] ^ target[w]) >>> 0;
      const db = (this.#words[ob + w] ^ target[w]) >>> 0;
      if (da !== db) return da < db ? -1 : 1;
    }
    return 0;
  }

  #sortByDistance(list: number[], target: Uint32Array): void {
    list.sort((a, b) => this.#compare(target, a, b));
  }
}
