/**
 * Routing-table upkeep: every connected peer is offered to the table; stale
 * buckets are looked up on a timer; outbound connections are topped up to
 * ℓ across the buckets.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { bucketIndex, randomIdInBucket } from "../identity/node_id.ts";
import type { PeerConnection } from "../peer/connection.ts";
import type { LookupResult } from "./lookup.ts";
import type { PeerAddress } from "./peer_address.ts";
import { type AddResult, type Contact, contactOf, type RoutingTable } from "./routing_table.ts";

/** How often stale buckets are looked up and ℓ refilled, in ms (`NodeOptions.refreshInterval`). */
export const DEFAULT_REFRESH_INTERVAL = 60_000;

/** What {@linkcode TableUpkeep} works with. */
export interface TableUpkeepOptions {
  /** The node's NodeId. */
  readonly self: Uint8Array;
  /** The table kept. */
  readonly table: RoutingTable;
  /** The node's connections. */
  readonly connections: {
    get(address: string): PeerConnection | undefined;
    isEphemeral(address: string): boolean;
    canDial(transportAddress: string): boolean;
    connect(peer: PeerAddress): Promise<PeerConnection>;
    readonly stats: { readonly outbound: number };
  };
  /** Kademlia's iterative lookup of a target. */
  lookup(target: Uint8Array, signal: AbortSignal): Promise<LookupResult>;
  /** A contact joined the table. */
  added(contact: Contact): void;
  /** Reports a failure that does not stop the node. */
  error(error: unknown, source: string): void;
  /** Aborted when the node closes: upkeep stops. */
  readonly signal: AbortSignal;
  /** Source of time. */
  readonly clock: Clock;
  /** ℓ: outbound connections kept. */
  readonly maxOutbound: number;
  /** Stale-bucket refresh period, in ms. @default {DEFAULT_REFRESH_INTERVAL} */
  readonly refreshInterval?: number;
}

/** Keeps a node's routing table filled and live (see the module documentation). */
export class TableUpkeep {
  readonly #o: TableUpkeepOptions;
  readonly #interval: number;
  #timer: number | undefined;

  /** Creates the upkeep; {@linkcode TableUpkeep.schedule} starts its timer. */
  constructor(options: TableUpkeepOptions) {
    this.#o = options;
    this.#interval = options.refreshInterval ?? DEFAULT_REFRESH_INTERVAL;
    options.signal.addEventListener("abort", () => {
      if (this.#timer !== undefined) this.#o.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }, { once: true });
  }

  /**
   * Offers a newly connected peer to the table. A peer whose handshake says
   * it accepts no connections is no replica and is never listed in
   * FIND_NODE/FIND_VALUE replies, whatever addresses it names. When its
   * bucket is full and the oldest contact is not connected, the live
   * newcomer takes its place.
   */
  learn(peer: PeerConnection): void {
    const { remote } = peer.channel;
    const contact = contactOf(
      peer.identityKey,
      peer.address,
      remote.acceptsInbound ? [...remote.listenAddrs] : [],
      this.#o.clock.now(),
      remote.relays,
    );
    const result = this.offer(contact);
    if (result.status === "full" && !this.#o.connections.get(result.oldest.address)) {
      this.#o.table.remove(result.oldest.address);
      this.offer(contact);
    }
  }

  /** Adds a contact to the table; a new one is announced to `added`. */
  offer(contact: Contact): AddResult {
    const result = this.#o.table.add(contact);
    if (result.status === "added") this.#o.added(contact);
    return result;
  }

  /**
   * Looks up `targets` (default: a random id in each bucket not refreshed
   * for `refreshInterval`, at most 8), then tops outbound connections up to ℓ.
   */
  async refresh(targets?: Uint8Array[]): Promise<void> {
    const { table, self, signal } = this.#o;
    const stale = targets ??
      table.staleBuckets(this.#interval).slice(0, 8).map((i) => randomIdInBucket(self, i));
    for (const target of stale) {
      if (signal.aborted) return;
      try {
        await this.#o.lookup(target, signal);
        const i = bucketIndex(self, target);
        if (i >= 0) table.markRefreshed(i);
      } catch (err) {
        if (!signal.aborted) this.#o.error(err, "routing table refresh");
      }
    }
    await this.fillOutbound();
  }

  /**
   * Every bucket now: this node's own id and a random id in every bucket up
   * to the farthest occupied one (at most 16 lookups), then ℓ.
   */
  refreshAll(): Promise<void> {
    const { table, self } = this.#o;
    const top = table.occupiedBuckets()[0] ?? -1;
    const targets = [self];
    for (let i = top; i >= 0 && targets.length < 16; i--) targets.push(randomIdInBucket(self, i));
    return this.refresh(targets);
  }

  /** Opens outbound connections to table contacts until ℓ, one per bucket first, farthest first. */
  async fillOutbound(): Promise<void> {
    const { table, connections, signal, maxOutbound } = this.#o;
    // Connected for good: short-lived lookup connections do not count.
    const held = (address: string) =>
      connections.get(address) !== undefined && !connections.isEphemeral(address);
    const tried = new Set<string>();
    for (let pass = 0; pass < 4; pass++) {
      let opened = false;
      for (const i of table.occupiedBuckets()) {
        if (signal.aborted || connections.stats.outbound >= maxOutbound) return;
        const bucket = table.bucket(i);
        if (pass === 0 && bucket.some((c) => held(c.address))) continue;
        const dialable = (c: Contact) => c.listenAddrs.find((a) => connections.canDial(a));
        const contact = bucket.find((c) =>
          !held(c.address) && !tried.has(c.address) && dialable(c) !== undefined
        );
        if (!contact) continue;
        tried.add(contact.address);
        try {
          await connections.connect({
            identityKey: contact.identityKey,
            address: contact.address,
            transportAddress: dialable(contact)!,
          });
          opened = true;
        } catch {
          table.remove(contact.address);
        }
      }
      if (!opened) return;
    }
  }

  /** Refreshes stale buckets every `refreshInterval`, through `track`, until the signal aborts. */
  schedule(track: (task: Promise<unknown>) => void): void {
    if (this.#o.signal.aborted) return;
    this.#timer = this.#o.clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#o.signal.aborted) return;
      track(this.refresh().finally(() => this.schedule(track)));
    }, this.#interval);
  }
}
