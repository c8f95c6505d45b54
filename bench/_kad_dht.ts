/**
 * The js-libp2p side of `bench/dht.ts`: a node of `bench/_libp2p.ts` (TCP +
 * Noise + Yamux) with `@libp2p/identify`, `@libp2p/ping` and
 * `@libp2p/kad-dht` configured as a LAN DHT server, and the three operations
 * the bench times, each counting what its query events show. The packages
 * are pinned in `bench/deno.json`, like those of `bench/_libp2p.ts`;
 * {@linkcode KAD_DHT_PACKAGES} reads their versions from there.
 *
 * `@libp2p/kad-dht` 16.4.5 depends on the same `@libp2p/interface` ^3.3.0,
 * `@libp2p/interface-internal` ^3.1.13, `@libp2p/utils` ^7.4.1 and
 * `@libp2p/ping` ^3.1.13 as libp2p 3.3.11 and `bench/_libp2p.ts`.
 *
 * @module
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { type Identify, identify } from "@libp2p/identify";
import {
  type KadDHT,
  kadDHT,
  type KadDHTInit,
  type QueryEvent,
  removePublicAddressesMapper,
  type SingleKadDHT,
} from "@libp2p/kad-dht";
import { type Ping, ping } from "@libp2p/ping";
import { createLibp2p, type Libp2p } from "libp2p";
import { libp2pBaseOptions, pinnedVersions } from "./_libp2p.ts";

/** The packages this file adds to `LIBP2P_PACKAGES`, and their versions (from `bench/deno.json`). */
export const KAD_DHT_PACKAGES: Readonly<Record<string, string>> = pinnedVersions([
  "@libp2p/kad-dht",
  "@libp2p/identify",
]);

/** The DHT protocol of the bench nodes: the LAN DHT's, as in kad-dht's README. */
export const KAD_PROTOCOL = "/ipfs/lan/kad/1.0.0";

/** The record namespace of the bench's values (`/bench/<name>`), accepted as is. */
const NAMESPACE = "bench";

/** A node made by {@linkcode createKadDhtNode}. */
export type KadDhtNode = Libp2p<{ identify: Identify; ping: Ping; dht: KadDHT }>;

/**
 * The kad-dht settings of the bench: its defaults (k = 20, α = 10, as many
 * disjoint paths as α, 6-bit bucket prefix, the routing table refreshed
 * once at start and every 5 min, the self-query every 5 min) except for
 * what a LAN DHT on 127.0.0.1 needs and what the bench times.
 */
export function kadDhtOptions(overrides: Partial<KadDHTInit> = {}): KadDHTInit {
  return {
    protocol: KAD_PROTOCOL,
    // Serve queries from the start (the default waits for a public address).
    clientMode: false,
    // Keep 127.0.0.1 addresses in the peer records (the default drops them).
    peerInfoMapper: removePublicAddressesMapper,
    // The first self-query (which every query waits for) runs as soon as the
    // routing table has a peer, instead of 1 s after start.
    initialQuerySelfInterval: 0,
    // Accept the bench's records: any value under /bench/ (the defaults
    // know only /pk/ and /ipns/ keys).
    validators: { [NAMESPACE]: () => {} },
    selectors: { [NAMESPACE]: () => 0 },
    ...overrides,
  };
}

/**
 * Creates a started node listening on 127.0.0.1: TCP, Noise, Yamux,
 * identify (the DHT learns from it which peers speak its protocol), ping
 * (the routing table pings a contact before adding it, and old contacts
 * before evicting them) and kad-dht with {@linkcode kadDhtOptions}.
 *
 * libp2p's connection monitor is off. It pings every connection of a node
 * every 10 s, a stream per ping, and aborts the connection when a ping
 * takes longer than its timeout (at least 5 s). With 128 nodes on one event
 * loop, those bursts and the DHT's handshakes keep the loop busy for
 * seconds at a time, pings time out, and connections are aborted en masse
 * (seen: from about 45 connections per node to under 1, and lookups of 5
 * to 15 s as they redial). That is an artefact of running every node in one
 * process, not of the DHT, so the bench leaves the monitor out.
 */
export async function createKadDhtNode(
  overrides: Partial<KadDHTInit> = {},
): Promise<KadDhtNode> {
  return await createLibp2p({
    ...libp2pBaseOptions(true),
    connectionMonitor: { enabled: false },
    services: { identify: identify(), ping: ping(), dht: kadDHT(kadDhtOptions(overrides)) },
  });
}

/** Contacts in `node`'s routing table. */
export function routingTableSize(node: KadDhtNode): number {
  return (node.services.dht as SingleKadDHT).routingTable.size;
}

/** The record key of the bench's value `name`: `/bench/<name>`. */
export function recordKey(name: string): Uint8Array {
  return new TextEncoder().encode(`/${NAMESPACE}/${name}`);
}

/** The 32-byte Kademlia id of `node` (SHA-256 of its peer id's multihash). */
export function kadId(node: KadDhtNode): Uint8Array {
  return sha256(node.peerId.toMultihash().bytes);
}

/** What the events of one kad-dht query show. */
export interface QueryCounts {
  /** Requests sent (`SEND_QUERY` events). */
  queries: number;
  /** Requests answered (`PEER_RESPONSE` events). */
  responses: number;
  /** Requests that failed (`QUERY_ERROR` events). */
  errors: number;
  /**
   * The longest chain of referrals among the peers queried: a peer the
   * query started with is at depth 1, a peer first named in the answer of
   * a peer at depth d is at depth d + 1.
   */
  depth: number;
}

/** Counts the events of a query (see {@linkcode QueryCounts}). */
class QueryCounter implements QueryCounts {
  queries = 0;
  responses = 0;
  errors = 0;
  depth = 0;
  readonly #depths = new Map<string, number>();

  observe(event: QueryEvent): void {
    if (event.name === "SEND_QUERY") {
      this.queries++;
      const to = event.to.toString();
      const depth = this.#depths.get(to) ?? 1;
      this.#depths.set(to, depth);
      this.depth = Math.max(this.depth, depth);
    } else if (event.name === "PEER_RESPONSE") {
      this.responses++;
      const next = (this.#depths.get(event.from.toString()) ?? 1) + 1;
      for (const peer of event.closer) {
        const id = peer.id.toString();
        this.#depths.set(id, Math.min(this.#depths.get(id) ?? Infinity, next));
      }
    } else if (event.name === "QUERY_ERROR") {
      this.errors++;
    }
  }

  counts(): QueryCounts {
    const { queries, responses, errors, depth } = this;
    return { queries, responses, errors, depth };
  }
}

/** What {@linkcode closestPeers} found. */
export interface ClosestPeers extends QueryCounts {
  /** The peers found, as strings, closest first (kad-dht's `FINAL_PEER` events). */
  closest: string[];
}

/** `dht.getClosestPeers(key)` to the end, as `peerRouting.getClosestPeers` runs it. */
export async function closestPeers(
  node: KadDhtNode,
  key: Uint8Array,
  options: { signal?: AbortSignal } = {},
): Promise<ClosestPeers> {
  const counter = new QueryCounter();
  const closest: string[] = [];
  for await (const event of node.services.dht.getClosestPeers(key, options)) {
    counter.observe(event);
    if (event.name === "FINAL_PEER") closest.push(event.peer.id.toString());
  }
  return { ...counter.counts(), closest };
}

/** What {@linkcode putValue} did. */
export interface PutCounts extends QueryCounts {
  /** Peers that acknowledged the record (answered PUT_VALUE with it). */
  replicas: number;
}

/**
 * `dht.put(key, value)` to the end, as `contentRouting.put` runs it: the
 * closest-peers query, then PUT_VALUE to each peer it found.
 */
export async function putValue(
  node: KadDhtNode,
  key: Uint8Array,
  value: Uint8Array,
  options: { signal?: AbortSignal } = {},
): Promise<PutCounts> {
  const counter = new QueryCounter();
  let replicas = 0;
  for await (const event of node.services.dht.put(key, value, options)) {
    if (event.name === "PEER_RESPONSE" && event.messageName === "PUT_VALUE") {
      if (event.record !== undefined) replicas++;
      continue;
    }
    counter.observe(event);
  }
  return { ...counter.counts(), replicas };
}

/** What {@linkcode getValue} found. */
export interface GetResult extends QueryCounts {
  /** The value, if found. */
  value?: Uint8Array;
  /** Whether the value came from the node's own store (it is one of the replicas). */
  local: boolean;
}

/**
 * `dht.get(key)` until its first value, as `contentRouting.get` runs it (the
 * query stops there): the node's own store, then GET_VALUE queries.
 */
export async function getValue(
  node: KadDhtNode,
  key: Uint8Array,
  options: { signal?: AbortSignal } = {},
): Promise<GetResult> {
  const counter = new QueryCounter();
  for await (const event of node.services.dht.get(key, options)) {
    if (event.name === "VALUE") {
      return { ...counter.counts(), value: event.value, local: event.from.equals(node.peerId) };
    }
    counter.observe(event);
  }
  return { ...counter.counts(), local: false };
}
