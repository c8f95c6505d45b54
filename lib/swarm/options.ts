/**
 * The connection manager's options, and the shapes of what it reports.
 *
 * @module
 */
import type { AddressBook } from "./addresses.ts";
import type { SecureChannel } from "../secure/channel.ts";
import type { Clock } from "../clock.ts";
import type { Identity } from "../identity/keys.ts";
import type { CloseInfo, PeerConnection, PeerConnectionOptions } from "../peer/connection.ts";
import type { Transport } from "../transport/types.ts";

/**
 * Options of a {@linkcode ConnectionManager}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectionManagerOptions, createNode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * // A node takes the connection manager's options (all but identity, transports and callbacks).
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
  /**
   * Where connections come from: one transport, or several, one per address
   * scheme (each must declare its `schemes`), combined as a
   * {@linkcode MultiTransport} that dials and listens on each address with
   * the one whose scheme matches.
   */
  transports: readonly Transport[];
  /** Addresses to listen on; none makes an outbound-only node. @default {[]} */
  listen?: readonly string[];
  /** ℓ: connections this node initiates, at most. @default {CONNECTION_LIMITS.maxOutbound} (8) */
  maxOutbound?: number;
  /** Connections others initiate, at most. @default {CONNECTION_LIMITS.maxInbound} (64) */
  maxInbound?: number;
  /** Inbound handshakes in progress, at most (the oldest is evicted for a new one). @default {CONNECTION_LIMITS.maxPendingHandshakes} (16) */
  maxPendingHandshakes?: number;
  /** Inbound handshakes in progress from one IP address (an IPv6 /64), at most. @default {CONNECTION_LIMITS.maxPendingHandshakesPerIp} (4) */
  maxPendingHandshakesPerIp?: number;
  /** Inbound connections from one IP address (an IPv6 /64), at most. @default {CONNECTION_LIMITS.maxInboundPerIp} (8) */
  maxInboundPerIp?: number;
  /** Apply the per-IP shares to loopback addresses too. @default {false} */
  limitLoopback?: boolean;
  /**
   * Whether an inbound peer is useful to keep (the node's routing-table
   * contacts): up to half of `maxInbound` such peers are never evicted.
   * @default {none is}
   */
  isUseful?: (connection: PeerConnection) => boolean;
  /** Time for a dial (TCP connect), in ms. @default {DEFAULT_DIAL_TIMEOUT} (5_000) */
  dialTimeout?: number;
  /** Time for the Noise handshake, in ms. @default {DEFAULT_HANDSHAKE_TIMEOUT} (10_000) */
  handshakeTimeout?: number;
  /** Static puzzle difficulty required of peers' keys. @default {0} */
  puzzleDifficulty?: number;
  /** First redial delay for persistent peers, in ms; doubles to `maxReconnectDelay`. @default {DEFAULT_RECONNECT_DELAY} (500) */
  reconnectDelay?: number;
  /** Longest redial delay, in ms. @default {DEFAULT_MAX_RECONNECT_DELAY} (30_000) */
  maxReconnectDelay?: number;
  /** Idle time after which an ephemeral connection closes, in ms. @default {DEFAULT_EPHEMERAL_IDLE_TIMEOUT} (10_000) */
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
  onFrame?: PeerConnectionOptions["onFrame"];
  /** Which opcodes are one-way (see {@linkcode PeerConnectionOptions.isOneWay}). */
  isOneWay?: (opcode: number) => boolean;
  /** A connection was established and registered. */
  onConnect?: (connection: PeerConnection) => void;
  /** A registered connection closed. */
  onDisconnect?: (connection: PeerConnection, info: CloseInfo) => void;
  /**
   * A direct connection replaced the pair's relayed one (hole punching, or
   * a dial that reached the peer directly): `to` is the connection now, and
   * `from` closes soon (see `holepunch.proto`, migration).
   */
  onMigrate?: (from: PeerConnection, to: PeerConnection) => void;
  /** A connection replaced by {@linkcode ConnectionManagerOptions.onMigrate} closed. */
  onRetired?: (connection: PeerConnection, info: CloseInfo) => void;
  /**
   * What the handshake announces (listen addresses, `accepts_inbound`).
   *
   * @default {new AddressBook()} (the bound addresses, wildcards expanded)
   */
  addresses?: AddressBook;
  /**
   * A dial-back probe arrived with `nonce` (from the node `address`) and
   * was closed after its handshake (see {@linkcode ConnectionManager.probe}).
   */
  onDialBack?: (nonce: Uint8Array, address: string) => void;
  /**
   * A circuit connection arrived (`relay_circuit` in its handshake; see
   * `relay.proto`): the callee owns `channel`. Without it, such a
   * connection is closed after its handshake.
   */
  onCircuit?: (channel: SecureChannel) => void;
  /** Announced in handshakes: this node relays for others. @default {false} */
  servesRelay?: boolean;
  /** An inbound connection was refused or its handshake failed. */
  onRejected?: (reason: Error, remoteAddress: string) => void;
  /**
   * A listener failed (`address` is where it listened). The manager listens
   * there again, after `LISTEN_RETRY_DELAY` (100 ms) doubling to
   * `MAX_LISTEN_RETRY_DELAY` (5 s) while it keeps failing.
   */
  onListenError?: (error: Error, address: string) => void;
}

/**
 * Options of {@linkcode ConnectionManager.connect}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ConnectOptions } from "./mod.ts";
 * import { createNode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
  /**
   * Over a relayed connection to the peer, dial its address anyway: the
   * direct connection replaces the relayed one (migration). Otherwise the
   * relayed connection is returned, as any open one.
   * @default {false}
   */
  direct?: boolean;
}

/**
 * Connection counts and refusals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectionStats, createNode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
