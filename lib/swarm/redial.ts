/**
 * Persistent peers (bootstrap peers, `ConnectOptions.persistent`): redialed
 * whenever their connection drops or a dial fails, after a delay that starts
 * at `reconnectDelay` and doubles to `maxReconnectDelay`, with ±20 % jitter.
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import { IdentityMismatchError } from "../secure/errors.ts";
import type { PeerAddress } from "../overlay/peer_address.ts";
import { DEFAULT_MAX_RECONNECT_DELAY, DEFAULT_RECONNECT_DELAY } from "./limits.ts";

interface Persistent {
  peer: PeerAddress;
  attempt: number;
  timer?: number;
}

/** What the redialer asks of the manager. */
export interface RedialHost {
  /** Source of time (the timers). */
  readonly clock: Clock;
  /** Whether the manager runs (no redial otherwise). */
  running(): boolean;
  /** Whether `address` (base58) is connected now. */
  connected(address: string): boolean;
  /** Dials `peer`. */
  connect(peer: PeerAddress): Promise<unknown>;
}

/** The persistent peers and their redial timers. */
export class Redialer {
  readonly #host: RedialHost;
  readonly #base: number;
  readonly #max: number;
  readonly #peers = new Map<string, Persistent>();

  constructor(
    host: RedialHost,
    options: { reconnectDelay?: number; maxReconnectDelay?: number },
  ) {
    this.#host = host;
    this.#base = options.reconnectDelay ?? DEFAULT_RECONNECT_DELAY;
    this.#max = options.maxReconnectDelay ?? DEFAULT_MAX_RECONNECT_DELAY;
  }

  /** Whether `address` (base58) is a persistent peer. */
  has(address: string): boolean {
    return this.#peers.has(address);
  }

  /** Makes `peer` persistent (once; a later call keeps the first address). */
  add(peer: PeerAddress): void {
    if (!this.#peers.has(peer.address)) this.#peers.set(peer.address, { peer, attempt: 0 });
  }

  /** `address` connected: its next drop is redialed after the first delay again. */
  connected(address: string): void {
    const p = this.#peers.get(address);
    if (p) p.attempt = 0;
  }

  /** Redials `address` after its backoff delay, if it is persistent and not already waiting. */
  schedule(address: string): void {
    const p = this.#peers.get(address);
    const host = this.#host;
    if (!p || !host.running() || p.timer !== undefined) return;
    const delay = Math.min(this.#max, this.#base * 2 ** p.attempt) * (0.8 + 0.4 * Math.random());
    p.attempt++;
    p.timer = host.clock.setTimeout(() => {
      p.timer = undefined;
      if (!host.running() || host.connected(address)) return;
      host.connect(p.peer).catch((err) => {
        // A wrong identity at that address will not fix itself by waiting less.
        if (err instanceof IdentityMismatchError) p.attempt++;
        this.schedule(address);
      });
    }, delay);
  }

  /** Stops redialing `address`. */
  forget(address: string): void {
    const p = this.#peers.get(address);
    if (p?.timer !== undefined) this.#host.clock.clearTimeout(p.timer);
    this.#peers.delete(address);
  }

  /** Stops redialing every peer. */
  clear(): void {
    for (const p of this.#peers.values()) {
      if (p.timer !== undefined) this.#host.clock.clearTimeout(p.timer);
    }
    this.#peers.clear();
  }
}
