/**
 * The connection manager: listens and dials, runs the secure handshake,
 * enforces the connection limits, keeps exactly one connection per pair of
 * nodes, and redials persistent peers with backoff.
 *
 * Limits (all in {@linkcode ConnectionManagerOptions}):
 *
 * - ℓ, `maxOutbound`: connections this node initiated (dials in flight
 *   count). A dial over it fails with {@linkcode ConnectionLimitError}.
 * - `maxPendingHandshakes`: inbound handshakes in progress. When they are all
 *   taken, a new socket evicts the oldest pending handshake whose peer has
 *   sent no message yet, else the oldest (silent sockets cannot lock new
 *   peers out); one IP address (an IPv6 /64) has at most
 *   `maxPendingHandshakesPerIp` of them, and a socket over that share is
 *   closed before any handshake work.
 * - `maxInbound`: connections others initiated. When they are all taken, a
 *   newly authenticated peer evicts the least useful inbound peer: from the
 *   subnet (/24, /48) with the most inbound peers, the one idle longest
 *   (KEEPALIVE traffic is not activity); peers redialed as persistent,
 *   peers with requests of this node pending, and up to half of `maxInbound`
 *   useful peers (`isUseful`: the node's routing-table contacts, longest
 *   connected first) are kept. When none can go, the
 *   socket is closed before any handshake work. One IP address has at most
 *   `maxInboundPerIp` inbound peers.
 * - The per-IP shares do not apply to loopback addresses unless
 *   `limitLoopback` is set (a swarm on one host shares 127.0.0.1), as
 *   go-libp2p's resource manager exempts them.
 *
 * One connection per pair: when a second connection to the same node
 * completes (two nodes dialing each other at once), both nodes keep the
 * connection *initiated by the node with the lower address* (bytewise order of
 * the public keys) and close the other with DISCONNECT `DUPLICATE_CONNECTION`.
 * When both were initiated by the same node, the older one stays. Both sides
 * apply the same rule, so they agree without talking.
 *
 * @module
 */
import { DisconnectReason } from "../../gen/carrier/v1/control_pb.ts";
import { compareBytes } from "../_bytes.ts";
import { type Clock, systemClock } from "../clock.ts";
import {
  ConnectionLimitError,
  IdentityMismatchError,
  ListenError,
  NodeClosedError,
} from "../errors.ts";
import type { Identity } from "../identity/keys.ts";
import { type CloseInfo, PeerConnection, type PeerConnectionOptions } from "../peer/connection.ts";
import { type SecureChannel, secureInbound, secureOutbound } from "../secure/channel.ts";
import { generateX25519KeyPair, type X25519KeyPair } from "../secure/noise.ts";
import type { Frame } from "../wire/frame.ts";
import type { ByteStream, Listener, Transport } from "../transport/types.ts";
import type { PeerAddress } from "./peer_address.ts";
import { hostPrefixOf, isLoopback, subnetOf } from "../transport/ip.ts";

/** The connection limits' defaults (see {@linkcode ConnectionManagerOptions}). */
export const CONNECTION_LIMITS = {
  maxOutbound: 8,
  maxInbound: 64,
  maxInboundPerIp: 8,
  maxPendingHandshakes: 16,
  maxPendingHandshakesPerIp: 4,
} as const;

/**
 * Options of a {@linkcode ConnectionManager}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectionManagerOptions, createNode, MemoryNetwork } from "@carrier/p2p";
 * // A node takes the connection manager's options (all but identity, transport and callbacks).
 * type Limits = Pick<ConnectionManagerOptions, "maxInbound" | "maxPendingHandshakes">;
 * const limits: Limits = { maxInbound: 1, maxPendingHandshakes: 4 };
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"], ...limits });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * assert.equal(b.peers().length, 1);
 * ```
 */
export interface ConnectionManagerOptions {
  /** This node's identity. */
  identity: Identity;
  /** Where connections come from. */
  transport: Transport;
  /** Addresses to listen on; none makes an outbound-only node. @default {[]} */
  listen?: readonly string[];
  /** ℓ: connections this node initiates, at most. @default {8} */
  maxOutbound?: number;
  /** Connections others initiate, at most. @default {64} */
  maxInbound?: number;
  /** Inbound handshakes in progress, at most (the oldest is evicted for a new one). @default {16} */
  maxPendingHandshakes?: number;
  /** Inbound handshakes in progress from one IP address (an IPv6 /64), at most. @default {4} */
  maxPendingHandshakesPerIp?: number;
  /** Inbound connections from one IP address (an IPv6 /64), at most. @default {8} */
  maxInboundPerIp?: number;
  /** Apply the per-IP shares to loopback addresses too. @default {false} */
  limitLoopback?: boolean;
  /**
   * Whether an inbound peer is useful to keep (the node's routing-table
   * contacts): up to half of `maxInbound` such peers are never evicted.
   * @default {none is}
   */
  isUseful?: (connection: PeerConnection) => boolean;
  /** Time for a dial (TCP connect), in ms. @default {5_000} */
  dialTimeout?: number;
  /** Time for the Noise handshake, in ms. @default {10_000} */
  handshakeTimeout?: number;
  /** Static puzzle difficulty required of peers' keys. @default {0} */
  puzzleDifficulty?: number;
  /** First redial delay for persistent peers, in ms; doubles to `maxReconnectDelay`. @default {500} */
  reconnectDelay?: number;
  /** Longest redial delay, in ms. @default {30_000} */
  maxReconnectDelay?: number;
  /** Idle time after which an ephemeral connection closes, in ms. @default {10_000} */
  ephemeralIdleTimeout?: number;
  /** Announced in the handshake: compression settings decoded. @default {all five} */
  compressions?: number[];
  /** Announced in the handshake: preferred compression. @default {undefined} */
  preferredCompression?: number;
  /** Announced in the handshake: largest frame accepted. @default {1 MiB} */
  maxFrameSize?: number;
  /** Announced in the handshake: software name. @default {"carrier"} */
  agent?: string;
  /** Options of every {@linkcode PeerConnection} (`onFrame` and `isOneWay` are the manager's). */
  connection?: Omit<PeerConnectionOptions, "onFrame" | "clock" | "isOneWay">;
  /** Source of time. @default {systemClock} */
  clock?: Clock;
  /** Frames for the layer above (see {@linkcode PeerConnectionOptions.onFrame}). */
  onFrame?: (frame: Frame, connection: PeerConnection) => void | Promise<void>;
  /** Which opcodes are one-way (see {@linkcode PeerConnectionOptions.isOneWay}). */
  isOneWay?: (opcode: number) => boolean;
  /** A connection was established and registered. */
  onConnect?: (connection: PeerConnection) => void;
  /** A registered connection closed. */
  onDisconnect?: (connection: PeerConnection, info: CloseInfo) => void;
  /** An inbound connection was refused or its handshake failed. */
  onRejected?: (reason: Error, remoteAddress: string) => void;
  /**
   * A listener failed (`address` is where it listened). The manager listens
   * there again, after 100 ms doubling to 5 s while it keeps failing.
   */
  onListenError?: (error: Error, address: string) => void;
}

/**
 * Options of {@linkcode ConnectionManager.connect}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectOptions, createNode, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const options: ConnectOptions = { persistent: true }; // redialed with backoff if it drops
 * const peer = await b.connect(a.peerAddresses[0], options);
 * assert.equal(peer.address, a.address);
 * ```
 */
export interface ConnectOptions {
  /** Cancels the dial and handshake. */
  signal?: AbortSignal;
  /** Redial with backoff whenever the connection drops (bootstrap peers). @default {false} */
  persistent?: boolean;
  /**
   * A short-lived connection (for lookup queries): not counted against ℓ,
   * and closed once idle for `ephemeralIdleTimeout`. Connecting to the same
   * peer without `ephemeral` later makes it a regular connection.
   * @default {false}
   */
  ephemeral?: boolean;
}

/**
 * Connection counts and refusals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectionStats, createNode, MemoryNetwork } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const stats: ConnectionStats = b.metrics().connections;
 * assert.deepEqual([stats.outbound, stats.inbound, stats.dialing], [1, 0, 0]);
 * ```
 */
export interface ConnectionStats {
  /** Registered connections this node initiated. */
  outbound: number;
  /** Registered connections others initiated. */
  inbound: number;
  /** Outbound dials and handshakes in progress. */
  dialing: number;
  /** Inbound handshakes in progress. */
  pendingHandshakes: number;
  /** Inbound connections refused by a limit or a failed handshake, since start. */
  rejectedHandshakes: number;
}

/**
 * Which of two connections between the same pair survives (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { preferConnection } from "@carrier/p2p";
 * const low = new Uint8Array(32); // the lower address
 * const high = new Uint8Array(32).fill(1);
 * assert.equal(preferConnection({ initiator: high }, { initiator: low }), "incoming");
 * assert.equal(preferConnection({ initiator: low }, { initiator: high }), "existing");
 * ```
 */
export function preferConnection(
  existing: { initiator: Uint8Array },
  incoming: { initiator: Uint8Array },
): "existing" | "incoming" {
  const order = compareBytes(existing.initiator, incoming.initiator);
  if (order === 0) return "existing";
  return order < 0 ? "existing" : "incoming";
}

interface Persistent {
  peer: PeerAddress;
  attempt: number;
  timer?: number;
}

/**
 * Listens, dials and keeps the node's connections.
 *
 * @example
 * ```ts ignore
 * const manager = new ConnectionManager({ identity, transport: new TcpTransport(), listen: ["127.0.0.1:0"] });
 * await manager.start();
 * const peer = await manager.connect(parsePeerAddress("…@127.0.0.1:4000"));
 * ```
 */
export class ConnectionManager {
  readonly #o: ConnectionManagerOptions;
  readonly #clock: Clock;
  readonly #connections = new Map<string, PeerConnection>();
  readonly #dials = new Map<string, Promise<PeerConnection>>();
  readonly #persistent = new Map<string, Persistent>();
  readonly #listeners = new Set<Listener>();
  readonly #streams = new Set<ByteStream>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  // One Noise static key per node (per process): its identity signature is
  // made once and reused by every handshake; ephemeral keys still give each
  // connection fresh secrets.
  readonly #staticKey: X25519KeyPair = generateX25519KeyPair();
  /** Ephemeral connections (address → last use); not counted against ℓ. */
  readonly #ephemeral = new Map<string, number>();
  #sweepTimer: number | undefined;
  #listenAddrs: string[] = [];
  /** Inbound handshakes in progress, oldest first: the IP each counts against, and whether its first message came. */
  readonly #pending = new Map<ByteStream, { ip: string | undefined; progressed: boolean }>();
  #rejected = 0;
  #state: "new" | "running" | "closed" = "new";

  /** Creates a manager; {@linkcode ConnectionManager.start} starts listening. */
  constructor(options: ConnectionManagerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
  }

  /** The addresses actually listened on (ports resolved). */
  get listenAddrs(): string[] {
    return [...this.#listenAddrs];
  }

  /** Whether this node accepts inbound connections. */
  get acceptsInbound(): boolean {
    return this.#listenAddrs.length > 0;
  }

  /** Connection counts. */
  get stats(): ConnectionStats {
    let outbound = 0, inbound = 0;
    for (const [address, c] of this.#connections) {
      if (!c.channel.initiator) inbound++;
      else if (!this.#ephemeral.has(address)) outbound++;
    }
    return {
      outbound,
      inbound,
      dialing: this.#dials.size,
      pendingHandshakes: this.#pending.size,
      rejectedHandshakes: this.#rejected,
    };
  }

  /** Starts listening on the configured addresses. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new NodeClosedError("ConnectionManager already started");
    this.#state = "running";
    for (const address of this.#o.listen ?? []) {
      const listener = await this.#o.transport.listen(address, { signal: this.#abort.signal });
      this.#listeners.add(listener);
      this.#listenAddrs.push(listener.address);
      this.#track(this.#serve(listener));
    }
  }

  /** The connection to `address` (base58), if there is one. */
  get(address: string): PeerConnection | undefined {
    return this.#connections.get(address);
  }

  /** Whether the connection to `address` is a short-lived one (see {@linkcode ConnectOptions.ephemeral}). */
  isEphemeral(address: string): boolean {
    return this.#ephemeral.has(address);
  }

  /** Every open connection. */
  all(): PeerConnection[] {
    return [...this.#connections.values()];
  }

  /**
   * Connects to `peer`, or returns the existing connection to it.
   *
   * @throws {ConnectionLimitError} when ℓ connections are already initiated.
   * @throws {DialError}, {@linkcode HandshakeError}, {@linkcode IdentityMismatchError},
   * {@linkcode TimeoutError} as the dial or handshake fails.
   */
  connect(peer: PeerAddress, options: ConnectOptions = {}): Promise<PeerConnection> {
    if (this.#state !== "running") {
      return Promise.reject(new NodeClosedError("Cannot connect: the node is not running"));
    }
    if (options.persistent && !this.#persistent.has(peer.address)) {
      this.#persistent.set(peer.address, { peer, attempt: 0 });
    }
    const maxOutbound = this.#o.maxOutbound ?? CONNECTION_LIMITS.maxOutbound;
    const stats = this.stats;
    const overLimit = () =>
      new ConnectionLimitError(
        `Cannot connect to ${peer.address}: ${stats.outbound} connections and ${stats.dialing} dials reach maxOutbound (ℓ) ${maxOutbound}`,
      );
    const existing = this.#connections.get(peer.address);
    if (existing) {
      if (options.ephemeral) {
        if (this.#ephemeral.has(peer.address)) this.#ephemeral.set(peer.address, this.#clock.now());
      } else if (this.#ephemeral.has(peer.address)) {
        // Promote a short-lived connection to a regular one, within ℓ.
        if (stats.outbound + stats.dialing >= maxOutbound) return Promise.reject(overLimit());
        this.#ephemeral.delete(peer.address);
      }
      return Promise.resolve(existing);
    }
    const inFlight = this.#dials.get(peer.address);
    if (inFlight) return inFlight;
    if (!options.ephemeral && stats.outbound + stats.dialing >= maxOutbound) {
      return Promise.reject(overLimit());
    }
    const dial = this.#dial(peer, options.signal).then((connection) => {
      if (options.ephemeral && connection.channel.initiator) this.#markEphemeral(peer.address);
      return connection;
    }).finally(() => this.#dials.delete(peer.address));
    this.#dials.set(peer.address, dial);
    // A persistent peer that cannot be reached now is retried with backoff.
    this.#track(dial.catch(() => this.#scheduleRedial(peer.address)));
    return dial;
  }

  #markEphemeral(address: string): void {
    this.#ephemeral.set(address, this.#clock.now());
    if (this.#sweepTimer !== undefined) return;
    const idle = this.#o.ephemeralIdleTimeout ?? 10_000;
    const sweep = () => {
      this.#sweepTimer = undefined;
      const now = this.#clock.now();
      for (const [address, lastUsed] of this.#ephemeral) {
        if (now - lastUsed < idle) continue;
        this.#ephemeral.delete(address);
        const connection = this.#connections.get(address);
        if (connection) {
          this.#track(
            connection.close(DisconnectReason.APPLICATION, "short-lived connection idle"),
          );
        }
      }
      if (this.#ephemeral.size > 0 && this.#state === "running") {
        this.#sweepTimer = this.#clock.setTimeout(sweep, idle);
      }
    };
    this.#sweepTimer = this.#clock.setTimeout(sweep, idle);
  }

  /** Stops redialing `address` (base58). */
  forget(address: string): void {
    const p = this.#persistent.get(address);
    if (p?.timer !== undefined) this.#clock.clearTimeout(p.timer);
    this.#persistent.delete(address);
  }

  /** Closes listeners, dials and connections (DISCONNECT `SHUTDOWN`), and stops redialing. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer);
    for (const p of this.#persistent.values()) {
      if (p.timer !== undefined) this.#clock.clearTimeout(p.timer);
    }
    this.#persistent.clear();
    this.#abort.abort(new NodeClosedError("The node is closing"));
    for (const listener of this.#listeners) listener.close();
    for (const stream of this.#streams) stream.close();
    await Promise.all(this.all().map((c) => c.close(DisconnectReason.SHUTDOWN)));
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  // ---- inbound ----

  /**
   * Accepts on `listener` for as long as the node runs. A listener that fails
   * is never lost silently: the failure is reported and the manager listens
   * on the same (resolved) address again, backing off while that fails.
   */
  async #serve(listener: Listener): Promise<void> {
    const address = listener.address;
    for (let failures = 0; this.#state === "running"; failures++) {
      let error: Error;
      try {
        if (await this.#accept(listener)) failures = 0;
        error = new ListenError(`Listener on ${address} stopped accepting`);
      } catch (err) {
        error = err instanceof Error ? err : new ListenError(String(err));
      }
      this.#listeners.delete(listener);
      listener.close();
      if (this.#state !== "running") return;
      this.#o.onListenError?.(error, address);
      for (;;) {
        if (!await this.#sleep(Math.min(5_000, 100 * 2 ** Math.min(failures, 6)))) return;
        try {
          listener = await this.#o.transport.listen(address, { signal: this.#abort.signal });
          break;
        } catch (err) {
          if (this.#state !== "running") return;
          failures++;
          this.#o.onListenError?.(err as Error, address);
        }
      }
      this.#listeners.add(listener);
    }
  }

  /** Waits `ms` on the clock; false when the manager closed meanwhile. */
  #sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const signal = this.#abort.signal;
      if (signal.aborted) return resolve(false);
      const onAbort = () => {
        this.#clock.clearTimeout(timer);
        resolve(false);
      };
      const timer = this.#clock.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Admits what `listener` accepts until it ends or throws; whether it accepted any. */
  async #accept(listener: Listener): Promise<boolean> {
    let accepted = false;
    for await (const stream of listener) {
      accepted = true;
      if (this.#state !== "running") {
        stream.close();
        continue;
      }
      const refusal = this.#admit(stream);
      if (refusal !== undefined) this.#refuse(stream, new ConnectionLimitError(refusal));
    }
    return accepted;
  }

  /** Starts the handshake of an accepted socket, or says why it is refused. */
  #admit(stream: ByteStream): string | undefined {
    const from = stream.remoteAddress;
    const ip = this.#ipOf(from);
    if (ip !== undefined) {
      const share = this.#o.maxPendingHandshakesPerIp ??
        CONNECTION_LIMITS.maxPendingHandshakesPerIp;
      const pending = [...this.#pending.values()].filter((p) => p.ip === ip).length;
      if (pending >= share) {
        return `Refused ${from}: ${pending} handshakes pending from ${ip} (maxPendingHandshakesPerIp ${share})`;
      }
      const inboundShare = this.#o.maxInboundPerIp ?? CONNECTION_LIMITS.maxInboundPerIp;
      const inbound = this.#inboundFrom(ip);
      if (inbound >= inboundShare) {
        return `Refused ${from}: ${inbound} inbound connections from ${ip} (maxInboundPerIp ${inboundShare})`;
      }
    }
    const maxInbound = this.#o.maxInbound ?? CONNECTION_LIMITS.maxInbound;
    const inbound = this.stats.inbound;
    if (inbound >= maxInbound && this.#evictionCandidate() === undefined) {
      return `Refused ${from}: ${inbound} inbound connections (maxInbound ${maxInbound}), none of them evictable`;
    }
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
      this.#refuse(
        victim!,
        new ConnectionLimitError(
          `Evicted ${victim!.remoteAddress}, the oldest ${
            silent ? "silent " : ""
          }of ${maxPending} handshakes pending (maxPendingHandshakes ${maxPending})`,
        ),
      );
    }
    this.#pending.set(stream, { ip, progressed: false });
    this.#track(this.#handshakeInbound(stream));
    return undefined;
  }

  /** The IP address (an IPv6 /64) a per-IP share counts `transportAddress` against, if any. */
  #ipOf(transportAddress: string): string | undefined {
    if (!this.#o.limitLoopback && isLoopback(transportAddress)) return undefined;
    return hostPrefixOf(transportAddress);
  }

  #inboundFrom(ip: string): number {
    let n = 0;
    for (const c of this.#connections.values()) {
      if (!c.channel.initiator && this.#ipOf(c.channel.stream.remoteAddress) === ip) n++;
    }
    return n;
  }

  /**
   * The inbound connection to close for a newcomer when inbound is full: from
   * the subnet with the most inbound connections, the one idle longest.
   * Persistent peers and connections with requests of this node pending stay.
   */
  #evictionCandidate(): PeerConnection | undefined {
    const groups = new Map<string, PeerConnection[]>();
    let useful = Math.floor((this.#o.maxInbound ?? CONNECTION_LIMITS.maxInbound) / 2);
    for (const [address, c] of this.#connections) {
      if (c.channel.initiator || c.busy || this.#persistent.has(address)) continue;
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

  #refuse(stream: ByteStream, reason: Error): void {
    // Cheap: no handshake work, the socket is closed at once.
    stream.close();
    this.#rejected++;
    this.#o.onRejected?.(reason, stream.remoteAddress);
  }

  async #handshakeInbound(stream: ByteStream): Promise<void> {
    this.#streams.add(stream);
    let channel: SecureChannel;
    try {
      channel = await secureInbound(stream, {
        ...this.#channelOptions(),
        onHandshakeMessage: () => {
          const state = this.#pending.get(stream);
          if (state) state.progressed = true;
        },
      });
    } catch (err) {
      // An evicted handshake was reported when it was evicted.
      if (this.#pending.has(stream)) {
        this.#rejected++;
        this.#o.onRejected?.(err as Error, stream.remoteAddress);
      }
      return;
    } finally {
      this.#pending.delete(stream);
      this.#streams.delete(stream);
    }
    if (this.#state !== "running") {
      channel.close();
      return;
    }
    const maxInbound = this.#o.maxInbound ?? CONNECTION_LIMITS.maxInbound;
    if (this.stats.inbound >= maxInbound && !this.#connections.has(channel.remote.address)) {
      const victim = this.#evictionCandidate();
      if (victim === undefined) {
        this.#rejected++;
        const connection = this.#wrap(channel);
        await connection.close(DisconnectReason.LIMIT_REACHED, "too many inbound connections");
        return;
      }
      this.#track(victim.close(DisconnectReason.LIMIT_REACHED, "evicted for a new peer"));
    }
    this.#register(channel);
  }

  // ---- outbound ----

  async #dial(peer: PeerAddress, signal?: AbortSignal): Promise<PeerConnection> {
    const timeout = this.#o.dialTimeout ?? 5_000;
    const timer = new AbortController();
    const handle = this.#clock.setTimeout(
      () =>
        timer.abort(
          new DOMException(
            `Dial to ${peer.transportAddress} timed out after ${timeout} ms`,
            "TimeoutError",
          ),
        ),
      timeout,
    );
    const signals = [this.#abort.signal, timer.signal];
    if (signal) signals.push(signal);
    let stream: ByteStream;
    try {
      stream = await this.#o.transport.dial(peer.transportAddress, {
        signal: AbortSignal.any(signals),
      });
    } finally {
      this.#clock.clearTimeout(handle);
    }
    this.#streams.add(stream);
    let channel: SecureChannel;
    try {
      channel = await secureOutbound(stream, {
        ...this.#channelOptions(),
        expectedRemote: peer.identityKey,
        signal: signal ? AbortSignal.any([this.#abort.signal, signal]) : this.#abort.signal,
      });
    } finally {
      this.#streams.delete(stream);
    }
    if (this.#state !== "running") {
      channel.close();
      throw new NodeClosedError("The node closed during the dial");
    }
    return this.#register(channel);
  }

  #channelOptions() {
    return {
      identity: this.#o.identity,
      noiseStaticKeyPair: this.#staticKey,
      acceptsInbound: this.#listenAddrs.length > 0,
      listenAddrs: this.#listenAddrs,
      compressions: this.#o.compressions,
      preferredCompression: this.#o.preferredCompression,
      maxFrameSize: this.#o.maxFrameSize,
      agent: this.#o.agent,
      puzzleDifficulty: this.#o.puzzleDifficulty ?? 0,
      handshakeTimeout: this.#o.handshakeTimeout,
      clock: this.#clock,
      signal: this.#abort.signal,
    };
  }

  // ---- registry ----

  #wrap(channel: SecureChannel): PeerConnection {
    return new PeerConnection(channel, {
      ...this.#o.connection,
      clock: this.#clock,
      onFrame: this.#o.onFrame,
      isOneWay: this.#o.isOneWay,
    });
  }

  /** Registers a new connection, resolving a duplicate by the pair rule; returns the survivor. */
  #register(channel: SecureChannel): PeerConnection {
    const address = channel.remote.address;
    const incoming = this.#wrap(channel);
    const existing = this.#connections.get(address);
    if (existing) {
      const initiatorOf = (c: PeerConnection) =>
        c.channel.initiator ? this.#o.identity.publicKey : c.identityKey;
      const keep = preferConnection(
        { initiator: initiatorOf(existing) },
        { initiator: initiatorOf(incoming) },
      );
      const loser = keep === "existing" ? incoming : existing;
      const winner = keep === "existing" ? existing : incoming;
      if (keep === "incoming") this.#adopt(address, incoming);
      this.#track(loser.close(DisconnectReason.DUPLICATE_CONNECTION, "one connection per pair"));
      return winner;
    }
    this.#adopt(address, incoming);
    this.#o.onConnect?.(incoming);
    return incoming;
  }

  #adopt(address: string, connection: PeerConnection): void {
    this.#connections.set(address, connection);
    const p = this.#persistent.get(address);
    if (p) p.attempt = 0;
    this.#track(connection.closed.then((info) => {
      if (this.#connections.get(address) !== connection) return;
      this.#connections.delete(address);
      this.#ephemeral.delete(address);
      this.#o.onDisconnect?.(connection, info);
      this.#scheduleRedial(address);
    }));
  }

  #scheduleRedial(address: string): void {
    const p = this.#persistent.get(address);
    if (!p || this.#state !== "running" || p.timer !== undefined) return;
    const base = this.#o.reconnectDelay ?? 500;
    const max = this.#o.maxReconnectDelay ?? 30_000;
    const delay = Math.min(max, base * 2 ** p.attempt) * (0.8 + 0.4 * Math.random());
    p.attempt++;
    p.timer = this.#clock.setTimeout(() => {
      p.timer = undefined;
      if (this.#state !== "running" || this.#connections.has(address)) return;
      this.connect(p.peer).catch((err) => {
        // A wrong identity at that address will not fix itself by waiting less.
        if (err instanceof IdentityMismatchError) p.attempt++;
        this.#scheduleRedial(address);
      });
    }, delay);
  }

  #track<T>(task: Promise<T>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task)).catch(() => {});
  }
}
