/**
 * What each peer (by address) holds at a replica, for its quotas: records
 * and bytes it stored, reservations and leases it holds. The records table
 * and the lock table count into one {@linkcode PeerQuotas}; this node's own
 * requests are counted nowhere (their peer is `undefined`).
 *
 * @module
 */

/** What one peer holds here; dropped when it holds nothing. */
export interface PeerUsage {
  records: number;
  bytes: number;
  /** Ids of the keys it holds reservations of. */
  reservations: Set<string>;
  /** Ids of the keys it holds leases of (lapsed ones are pruned when its quota is reached). */
  leases: Set<string>;
}

/** The usage of every peer that holds something here. */
export class PeerQuotas {
  readonly #peers = new Map<string, PeerUsage>();

  /** What `peer` holds, if anything. */
  get(peer: string): PeerUsage | undefined {
    return this.#peers.get(peer);
  }

  /** What `peer` holds, counted from now on (created empty). */
  usage(peer: string): PeerUsage {
    let usage = this.#peers.get(peer);
    if (!usage) {
      usage = { records: 0, bytes: 0, reservations: new Set(), leases: new Set() };
      this.#peers.set(peer, usage);
    }
    return usage;
  }

  /** Forgets `peer` once it holds nothing. */
  tidy(peer: string, usage: PeerUsage): void {
    if (
      usage.records === 0 && usage.bytes === 0 && usage.reservations.size === 0 &&
      usage.leases.size === 0
    ) this.#peers.delete(peer);
  }

  /** Counts a held record's change for its peer. */
  charge(peer: string | undefined, records: number, bytes: number): void {
    if (peer === undefined) return;
    const usage = this.usage(peer);
    usage.records += records;
    usage.bytes += bytes;
    this.tidy(peer, usage);
  }

  /** `holder` no longer holds the lease of `id`. */
  unlease(holder: string, id: string): void {
    const usage = this.#peers.get(holder);
    if (!usage) return;
    usage.leases.delete(id);
    this.tidy(holder, usage);
  }
}
