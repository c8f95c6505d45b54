/**
 * Inbound admission: which accepted socket may start a handshake, which
 * pending handshake makes room for it, and which inbound peer makes room for
 * a newly authenticated one (the limits of `ConnectionManagerOptions`; the
 * rules are in `manager.ts`'s module doc).
 *
 * @module
 */
import { ConnectionLimitError } from "../errors.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { hostPrefixOf, isLoopback, subnetOf } from "../transport/ip.ts";
import type { ByteStream } from "../transport/types.ts";
import { CONNECTION_LIMITS } from "./limits.ts";
import type { ConnectionManagerOptions } from "./options.ts";

/** What admission reads of the manager's registry. */
export interface Registry {
  /** The registered connections, by base58 address, in the order they were made. */
  readonly connections: ReadonlyMap<string, PeerConnection>;
  /** Whether `address` is redialed as a persistent peer. */
  isPersistent(address: string): boolean;
}

/** What {@linkcode Admission.admit} decided about an accepted socket. */
export type Verdict =
  | { refused: string }
  | { refused?: undefined; evicted?: { stream: ByteStream; reason: Error } };

type Limits = Pick<
  ConnectionManagerOptions,
  | "maxInbound"
  | "maxInboundPerIp"
  | "maxPendingHandshakes"
  | "maxPendingHandshakesPerIp"
  | "limitLoopback"
  | "isUseful"
>;

/** The inbound limits' state: the pending handshakes, and the decisions. */
export class Admission {
  readonly #o: Limits;
  readonly #registry: Registry;
  /** Inbound handshakes in progress, oldest first: the IP each counts against, and whether its first message came. */
  readonly #pending = new Map<ByteStream, { ip: string | undefined; progressed: boolean }>();
  /** The per-IP key of each stream seen, so a remote address is parsed once. */
  readonly #ips = new WeakMap<ByteStream, string | undefined>();

  constructor(options: Limits, registry: Registry) {
    this.#o = options;
    this.#registry = registry;
  }

  /** The most inbound connections. */
  get maxInbound(): number {
    return this.#o.maxInbound ?? CONNECTION_LIMITS.maxInbound;
  }

  /** Inbound handshakes in progress. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Whether `stream`'s handshake is pending (it was neither evicted nor finished). */
  isPending(stream: ByteStream): boolean {
    return this.#pending.has(stream);
  }

  /** The handshake of `stream` is over (done, failed or evicted). */
  done(stream: ByteStream): void {
    this.#pending.delete(stream);
  }

  /** A handshake message came on `stream`: it is no longer silent. */
  progressed(stream: ByteStream): void {
    const state = this.#pending.get(stream);
    if (state) state.progressed = true;
  }

  /** Registered inbound connections. */
  inboundCount(): number {
    let n = 0;
    for (const c of this.#registry.connections.values()) if (!c.channel.initiator) n++;
    return n;
  }

  /**
   * Decides on an accepted socket: refused (why), or admitted as a pending
   * handshake, evicting the oldest silent one (else the oldest) when every
   * slot is taken.
   */
  admit(stream: ByteStream): Verdict {
    const from = stream.remoteAddress;
    const ip = this.#ipOf(stream);
    if (ip !== undefined) {
      const share = this.#o.maxPendingHandshakesPerIp ??
        CONNECTION_LIMITS.maxPendingHandshakesPerIp;
      const pending = [...this.#pending.values()].filter((p) => p.ip === ip).length;
      if (pending >= share) {
        return {
          refused:
            `Refused ${from}: ${pending} handshakes pending from ${ip} (maxPendingHandshakesPerIp ${share})`,
        };
      }
      const inboundShare = this.#o.maxInboundPerIp ?? CONNECTION_LIMITS.maxInboundPerIp;
      const inbound = this.#inboundFrom(ip);
      if (inbound >= inboundShare) {
        return {
          refused:
            `Refused ${from}: ${inbound} inbound connections from ${ip} (maxInboundPerIp ${inboundShare})`,
        };
      }
    }
    const maxInbound = this.maxInbound;
    const inbound = this.inboundCount();
    if (inbound >= maxInbound && this.evictionCandidate() === undefined) {
      return {
        refused:
          `Refused ${from}: ${inbound} inbound connections (maxInbound ${maxInbound}), none of them evictable`,
      };
    }
    let evicted: { stream: ByteStream; reason: Error } | undefined;
    const maxPending = this.#o.maxPendingHandshakes ?? CONNECTION_LIMITS.maxPendingHandshakes;
    if (this.#pending.size >= maxPending) {
      // Room for the newcomer: the oldest handshake whose peer has sent
      // nothing yet goes, else the oldest.
      let victim: ByteStream | undefined;
      for (const [pending, state] of this.#pending) {
        victim ??= pending;
        if (!state.progressed) {
          victim = pending;
          break;
        }
      }
      const silent = !this.#pending.get(victim!)!.progressed;
      this.#pending.delete(victim!);
      evicted = {
        stream: victim!,
        reason: new ConnectionLimitError(
          `Evicted ${victim!.remoteAddress}, the oldest ${
            silent ? "silent " : ""
          }of ${maxPending} handshakes pending (maxPendingHandshakes ${maxPending})`,
        ),
      };
    }
    this.#pending.set(stream, { ip, progressed: false });
    return { evicted };
  }

  /** The IP address (an IPv6 /64) a per-IP share counts `stream` against, if any. */
  #ipOf(stream: ByteStream): string | undefined {
    if (this.#ips.has(stream)) return this.#ips.get(stream);
    const address = stream.remoteAddress;
    const ip = !this.#o.limitLoopback && isLoopback(address) ? undefined : hostPrefixOf(address);
    this.#ips.set(stream, ip);
    return ip;
  }

  #inboundFrom(ip: string): number {
    let n = 0;
    for (const c of this.#registry.connections.values()) {
      if (!c.channel.initiator && this.#ipOf(c.channel.stream) === ip) n++;
    }
    return n;
  }

  /**
   * The inbound connection to close for a newcomer when inbound is full: from
   * the subnet with the most inbound connections, the one idle longest.
   * Persistent peers, connections with requests of this node pending, and up
   * to half of `maxInbound` useful peers stay.
   */
  evictionCandidate(): PeerConnection | undefined {
    const groups = new Map<string, PeerConnection[]>();
    let useful = Math.floor(this.maxInbound / 2);
    for (const [address, c] of this.#registry.connections) {
      if (c.channel.initiator || c.busy || this.#registry.isPersistent(address)) continue;
      if (useful > 0 && this.#o.isUseful?.(c)) {
        useful--; // the map keeps connections in the order they were made
        continue;
      }
      const key = subnetOf(c.channel.stream.remoteAddress) ?? "";
      const group = groups.get(key);
      if (group) group.push(c);
      else groups.set(key, [c]);
    }
    let largest: PeerConnection[] = [];
    for (const group of groups.values()) if (group.length > largest.length) largest = group;
    let victim: PeerConnection | undefined;
    for (const c of largest) if (!victim || c.lastActive < victim.lastActive) victim = c;
    return victim;
  }
}
