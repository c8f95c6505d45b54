/**
 * Kademlia's iterative node lookup, independent of how a query travels: the
 * caller supplies `query(contact)`, which asks one contact for the contacts
 * it knows closest to the target (FIND_NODE).
 *
 * The lookup keeps a shortlist of the closest contacts seen, queries the α
 * closest it has not queried yet in parallel, merges what they return, and
 * stops when the k closest it knows have all been asked (answered or failed)
 * or `maxQueries` is reached.
 *
 * @module
 */
import { compareDistance } from "../identity/node_id.ts";
import type { Contact } from "./routing_table.ts";

/** Options of {@linkcode iterativeLookup}. */
export interface LookupOptions {
  /** Contacts to return (Kademlia's k). @default {20} */
  k?: number;
  /** Queries in flight at once (Kademlia's α). @default {3} */
  alpha?: number;
  /** Queries at most, in all. @default {k * 8} */
  maxQueries?: number;
  /** The contacts never to query nor return (this node). */
  exclude?: (contact: Contact) => boolean;
  /** Cancels the lookup: it rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What {@linkcode iterativeLookup} found. */
export interface LookupResult {
  /** Up to k contacts that answered, closest to the target first. */
  closest: Contact[];
  /** Queries made. */
  queries: number;
  /** Rounds of parallel queries: the lookup's length in hops. */
  rounds: number;
}

/**
 * Finds the k contacts closest to `target`, starting from `seeds`.
 *
 * @example
 * ```ts
 * import { contactOf, generateIdentitySync, iterativeLookup } from "@carrier/p2p";
 * const ids = Array.from({ length: 50 }, () => generateIdentitySync({ difficulty: 0 }));
 * const contacts = ids.map((id) => contactOf(id.publicKey, id.address));
 * // Every contact knows everyone: one round finds the answer.
 * const result = await iterativeLookup(ids[7].nodeId, contacts.slice(0, 3), (c) =>
 *   Promise.resolve(contacts.filter((x) => x !== c)), { k: 5 });
 * console.assert(result.closest[0].address === ids[7].address);
 * ```
 */
export async function iterativeLookup(
  target: Uint8Array,
  seeds: readonly Contact[],
  query: (contact: Contact) => Promise<Contact[]>,
  options: LookupOptions = {},
): Promise<LookupResult> {
  const k = options.k ?? 20;
  const alpha = options.alpha ?? 3;
  const maxQueries = options.maxQueries ?? k * 8;
  const exclude = options.exclude ?? (() => false);
  const byDistance = (a: Contact, b: Contact) => compareDistance(target, a.nodeId, b.nodeId);

  const known = new Map<string, Contact>();
  const state = new Map<string, "queried" | "answered" | "failed">();
  for (const c of seeds) if (!exclude(c)) known.set(c.address, c);

  let queries = 0;
  let rounds = 0;
  for (;;) {
    options.signal?.throwIfAborted();
    const shortlist = [...known.values()].filter((c) => state.get(c.address) !== "failed")
      .sort(byDistance).slice(0, k);
    const next = shortlist.filter((c) => !state.has(c.address)).slice(0, alpha);
    if (next.length === 0 || queries >= maxQueries) break;
    rounds++;
    await Promise.all(next.map(async (contact) => {
      state.set(contact.address, "queried");
      queries++;
      try {
        const found = await query(contact);
        state.set(contact.address, "answered");
        for (const c of found) {
          if (!exclude(c) && !known.has(c.address)) known.set(c.address, c);
        }
      } catch {
        state.set(contact.address, "failed");
      }
    }));
  }
  options.signal?.throwIfAborted();
  const closest = [...known.values()].filter((c) => state.get(c.address) === "answered")
    .sort(byDistance).slice(0, k);
  return { closest, queries, rounds };
}
