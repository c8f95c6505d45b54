/**
 * Kademlia's iterative node lookup, independent of how a query travels: the
 * caller supplies `query(contact)`, which asks one contact for the contacts
 * it knows closest to the target (FIND_NODE, or FIND_VALUE with the value on
 * the side).
 *
 * The lookup keeps a shortlist of the closest contacts seen and keeps α
 * queries in flight to the closest it has not asked yet (a new query starts
 * as soon as one answers, not by rounds). It ends when the k closest it
 * knows have all been asked (answered or failed), when `maxQueries` is
 * reached, or when `stop()` says so (a value lookup that has its value).
 *
 * With `disjointPaths` d > 1 (S/Kademlia), the seeds are dealt to d paths
 * that each run their own shortlist and never query a contact another path
 * has claimed: an attacker on one path cannot capture the others. The
 * results are merged.
 *
 * **Hops**: a seed is one hop away; a contact learned from a contact h hops
 * away is h + 1 hops away. A lookup's hops are those of the closest contact
 * that answered: the length of the chain of requests that found it.
 *
 * @module
 */
import { compareDistance } from "../identity/node_id.ts";
import { type Contact, DEFAULT_K } from "./routing_table.ts";

/** Kademlia's α: FIND_NODE requests in flight during a lookup. */
export const DEFAULT_ALPHA = 3;

/**
 * Options of {@linkcode iterativeLookup}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { iterativeLookup, type LookupOptions } from "./lookup.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf } from "@carrier/p2p/protocol";
 * const ids = Array.from({ length: 30 }, () => generateIdentitySync({ difficulty: 0 }));
 * const contacts = ids.map((id) => contactOf(id.publicKey, id.address));
 * const options: LookupOptions = { k: 3, alpha: 1, maxQueries: 5 };
 * const query = () => Promise.resolve(contacts); // every contact knows everyone
 * const result = await iterativeLookup(ids[0].nodeId, contacts.slice(1, 3), query, options);
 * assert(result.queries <= 5 && result.closest.length <= 3);
 * ```
 */
export interface LookupOptions {
  /** Contacts to return (Kademlia's k). @default {20} */
  k?: number;
  /** Queries in flight at once, per path (Kademlia's α). @default {3} */
  alpha?: number;
  /** Disjoint paths (S/Kademlia's d). @default {1} */
  disjointPaths?: number;
  /** Queries at most, in all. @default {k * 8} */
  maxQueries?: number;
  /** The contacts never to query nor return (this node). */
  exclude?: (contact: Contact) => boolean;
  /** Checked after every answer: `true` ends the lookup early. */
  stop?: () => boolean;
  /** Cancels the lookup: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * What {@linkcode iterativeLookup} found.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { iterativeLookup } from "./lookup.ts";
 * import { generateIdentitySync, type LookupResult } from "@carrier/p2p";
 * import { contactOf } from "@carrier/p2p/protocol";
 * const ids = Array.from({ length: 10 }, () => generateIdentitySync({ difficulty: 0 }));
 * const contacts = ids.map((id) => contactOf(id.publicKey, id.address));
 * const query = () => Promise.resolve(contacts); // every contact knows everyone
 * // The target is not a seed: it is learned from the seed, one hop further.
 * const result: LookupResult = await iterativeLookup(ids[5].nodeId, [contacts[0]], query);
 * assert.equal(result.closest[0].address, ids[5].address);
 * assert.equal(result.hops, 2);
 * ```
 */
export interface LookupResult {
  /** Up to k contacts that answered, closest to the target first. */
  closest: Contact[];
  /**
   * Contacts asked that did not answer (failed or timed out) and are closer
   * than the last of `closest` (all of them, up to k, when fewer than k
   * answered), closest first: the DHT counts them as replicas that voted no,
   * so that a crashed replica does not let the next node in.
   */
  unreachable: Contact[];
  /** Queries made. */
  queries: number;
  /** Hops to the closest contact that answered (see the module doc). */
  hops: number;
  /**
   * The node whose id is the target itself, as the first reply that named it
   * gave it, asked or not (a node that accepts no connections is never asked,
   * but its contact names its relays): how to find a node by its key.
   */
  target?: Contact;
}

type State = "queried" | "answered" | "failed";

/**
 * Finds the k contacts closest to `target`, starting from `seeds`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { iterativeLookup } from "./lookup.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf } from "@carrier/p2p/protocol";
 * const ids = Array.from({ length: 50 }, () => generateIdentitySync({ difficulty: 0 }));
 * const contacts = ids.map((id) => contactOf(id.publicKey, id.address));
 * // Every contact knows everyone: one hop finds the answer.
 * const result = await iterativeLookup(ids[7].nodeId, contacts.slice(0, 3), (c) =>
 *   Promise.resolve(contacts.filter((x) => x !== c)), { k: 5 });
 * assert.equal(result.closest[0].address, ids[7].address);
 * ```
 */
export async function iterativeLookup(
  target: Uint8Array,
  seeds: readonly Contact[],
  query: (contact: Contact) => Promise<Contact[]>,
  options: LookupOptions = {},
): Promise<LookupResult> {
  const k = options.k ?? DEFAULT_K;
  const alpha = options.alpha ?? DEFAULT_ALPHA;
  const paths = Math.max(1, Math.floor(options.disjointPaths ?? 1));
  const maxQueries = options.maxQueries ?? k * 8;
  const exclude = options.exclude ?? (() => false);
  const stop = options.stop ?? (() => false);
  const byDistance = (a: Contact, b: Contact) => compareDistance(target, a.nodeId, b.nodeId);

  /** Every contact's state, across paths: a contact is queried by one path only. */
  const state = new Map<string, State>();
  const hops = new Map<string, number>();
  let queries = 0;
  let stopped = false;
  let targetContact: Contact | undefined;

  const ordered = seeds.filter((c) => !exclude(c)).sort(byDistance);
  const runPath = async (pathSeeds: Contact[]): Promise<Contact[]> => {
    const known = new Map<string, Contact>();
    for (const c of pathSeeds) {
      known.set(c.address, c);
      hops.set(c.address, Math.min(hops.get(c.address) ?? 1, 1));
    }
    let inFlight = 0;
    const { promise: finished, resolve, reject } = Promise.withResolvers<void>();
    const shortlist = () =>
      [...known.values()].filter((c) => state.get(c.address) !== "failed").sort(byDistance)
        .slice(0, k);
    const pump = (): void => {
      if (options.signal?.aborted) return reject(options.signal.reason);
      if (stopped || queries >= maxQueries) {
        if (inFlight === 0) resolve();
        return;
      }
      const next = shortlist().filter((c) => !state.has(c.address));
      for (const contact of next) {
        if (inFlight >= alpha || queries >= maxQueries) break;
        state.set(contact.address, "queried");
        queries++;
        inFlight++;
        const depth = hops.get(contact.address) ?? 1;
        query(contact).then((found) => {
          state.set(contact.address, "answered");
          for (const c of found) {
            if (targetContact === undefined && compareDistance(target, c.nodeId, target) === 0) {
              targetContact = c;
            }
            if (exclude(c)) continue;
            if (!known.has(c.address) && !state.has(c.address)) known.set(c.address, c);
            if (!hops.has(c.address)) hops.set(c.address, depth + 1);
          }
          if (stop()) stopped = true;
        }, () => {
          state.set(contact.address, "failed");
        }).finally(() => {
          inFlight--;
          pump();
        });
      }
      if (inFlight === 0) resolve();
    };
    pump();
    await finished;
    return [...known.values()];
  };

  const groups: Contact[][] = Array.from({ length: paths }, () => []);
  ordered.forEach((c, i) => groups[i % paths].push(c));
  const found = await Promise.all(groups.filter((g) => g.length > 0).map(runPath));
  options.signal?.throwIfAborted();
  const merged = new Map<string, Contact>();
  for (const list of found) for (const c of list) merged.set(c.address, c);
  const sorted = [...merged.values()].sort(byDistance);
  const closest = sorted.filter((c) => state.get(c.address) === "answered").slice(0, k);
  const last = closest.at(-1);
  const unreachable = sorted.filter((c) =>
    state.get(c.address) === "failed" &&
    (closest.length < k || last === undefined || byDistance(c, last) < 0)
  ).slice(0, k);
  return {
    closest,
    unreachable,
    ...(targetContact ? { target: targetContact } : {}),
    queries,
    hops: closest.length > 0 ? hops.get(closest[0].address)! : 0,
  };
}
