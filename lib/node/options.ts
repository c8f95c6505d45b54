/**
 * The options of a node ({@linkcode NodeOptions}).
 *
 * @module
 */
import type { Clock } from "../clock.ts";
import type { DhtOptions } from "../dht/dht.ts";
import type { Identity } from "../identity/keys.ts";
import { DEFAULT_PUZZLE_DIFFICULTY } from "../identity/puzzle.ts";
import type { ConnectionManagerOptions } from "../swarm/mod.ts";
import { TcpTransport } from "../transport/tcp.ts";
import type { PeerAddress } from "../overlay/peer_address.ts";
import type { ServiceFactory } from "../service.ts";
import type { NatInit } from "../services/nat.ts";
import type { HolePunchInit } from "../services/holepunch.ts";
import type { RelayInit } from "../services/relay.ts";
import type { ShoutInit } from "../services/shout.ts";
import type { SpeakInit } from "../services/speak.ts";
import type { WhisperInit } from "../services/whisper.ts";
import type { Transport } from "../transport/types.ts";

/**
 * Options of {@linkcode createNode}. Every limit has a default. The
 * connection options (`listen`, ℓ as `maxOutbound`, `maxInbound`, timeouts,
 * what the handshake announces…) are the connection manager's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type NodeOptions } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork(); // in-process; `new TcpTransport()` by default
 * const options: NodeOptions = { transport: net.transport(), listen: ["mem:0"], maxOutbound: 4 };
 * await using node = await createNode(options);
 * assert.equal(node.peerAddresses[0], `${node.address}@${node.listenAddrs[0]}`);
 * ```
 */
export interface NodeOptions extends
  Pick<
    ConnectionManagerOptions,
    | "listen"
    | "maxOutbound"
    | "maxInbound"
    | "maxPendingHandshakes"
    | "maxPendingHandshakesPerIp"
    | "maxInboundPerIp"
    | "limitLoopback"
    | "dialTimeout"
    | "handshakeTimeout"
    | "reconnectDelay"
    | "maxReconnectDelay"
    | "ephemeralIdleTimeout"
    | "preferredCompression"
    | "maxFrameSize"
    | "agent"
    | "connection"
  > {
  /** The node's identity. @default {a new one, passing the puzzle at `puzzleDifficulty`} */
  identity?: Identity;
  /** Peers to connect to and keep connected (redialed with backoff): `ADDRESS@HOST:PORT`. @default {[]} */
  bootstrap?: readonly (string | PeerAddress)[];
  /**
   * Addresses to announce instead of the listen addresses (`HOST:PORT`): a
   * port forwarded by hand, a public address in front of a container.
   * External addresses from port mapping still come first.
   * @default {undefined} (the listen addresses, wildcard hosts expanded to this host's interfaces)
   */
  announce?: string[];
  /**
   * Whether the node accepts inbound connections as far as its peers are
   * told: `auto` asks peers to dial it back (DIAL_BACK) and says `false`
   * when none arrives; `public` and `private` say so without asking.
   * @default {"auto"}
   */
  reachability?: "auto" | "public" | "private";
  /** Answer peers' DIAL_BACK requests. @default {true} */
  serveDialBack?: boolean;
  /**
   * NAT port mapping (UPnP IGD, NAT-PMP, PCP) of the TCP listen ports on a
   * wildcard or private host, or `false` for none.
   * @default {{}} (on, every protocol: see NatInit)
   */
  nat?: NatInit | false;
  /**
   * Relayed connections: `serve` makes this node a relay for others (off by
   * default); a node that does not accept connections holds reservations at
   * relays it is connected to (`maxRelays`, 2 by default) and can then be
   * connected to by its key alone.
   * @default {{}} (no relaying for others; reservations when unreachable)
   */
  relay?: RelayInit;
  /**
   * Hole punching (see `holepunch.proto`): over a relayed connection this
   * node is the target of, it tries a direct connection through both NATs
   * and moves to it; `false` neither starts nor answers one.
   * @default {{}} (on, a 10 s window)
   */
  holePunch?: HolePunchInit | false;
  /** The transport. @default {new TcpTransport()} */
  transport?: Transport;
  /** More transports, one per address scheme (with `transport`, if given): each address is dialed and listened on with the one of its scheme. @default {[]} */
  transports?: readonly Transport[];
  /** S/Kademlia static puzzle difficulty `c1` required of every key, this node's included. @default {DEFAULT_PUZZLE_DIFFICULTY} (8) */
  puzzleDifficulty?: number;
  /**
   * Services beyond the built-in ones (SHOUT, WHISPER, SPEAK, METRICS, the
   * DHT, which always run): plugins and optional protocols, each a factory
   * over the node's `ServiceHost`, in the order their hooks run
   * (after the built-ins'). @default {[]}
   */
  services?: readonly ServiceFactory[];
  /** Answer peers' METRICS requests (otherwise NACK `FORBIDDEN`). @default {false} */
  serveMetrics?: boolean;
  /** Forward SPEAK messages whose ttl allows it (to every other peer, once). @default {false} */
  forwardSpeak?: boolean;
  /** Frames held per peer while it is locked by receive-then-lock. @default {256} */
  maxHeldMessages?: number;
  /** Time a SHOUT's next hop has to acknowledge it before the next peer of its bucket is tried, in ms. @default {2_000} */
  shoutAckTimeout?: number;
  /** SHOUTs accepted per origin per second; more get NACK `RATE_LIMITED`. @default {100} */
  maxShoutsPerSecond?: number;
  /**
   * SHOUT frames taken from one connected peer per second, whatever their
   * origins (origins cost nothing to make), in bursts of as many. More are
   * not refused but paced: their processing waits for the peer's share, and
   * since a connection stops being read while `maxInboundRequests` frames are
   * in hand, the pace reaches back to the sender as TCP backpressure.
   * @default {1_000}
   */
  maxShoutsPerPeerPerSecond?: number;
  /** How old (or how far in the future, by the origin's clock) a SHOUT may be, in ms. @default {600_000} */
  maxShoutAge?: number;
  /** How old (or how far in the future, by the sender's clock) a WHISPER delivered here may be, in ms. @default {600_000} */
  maxWhisperAge?: number;
  /** The largest WHISPER body delivered here; a larger one gets NACK `TOO_LARGE`. @default {1_048_576} */
  maxWhisperBodySize?: number;
  /** Kademlia's k: contacts per routing-table bucket, and peers per FIND_NODE reply. @default {20} */
  k?: number;
  /** Routing-table repair: stale buckets are looked up and ℓ refilled this often, in ms. @default {60_000} */
  refreshInterval?: number;
  /** Whether this node's WHISPERs are encrypted end to end unless a call says otherwise. @default {true} */
  encryptWhispers?: boolean;
  /** The DHT's replication, timeouts and storage limits. @default {see DhtOptions} */
  dht?: DhtOptions;
  /** Source of time. @default {systemClock} */
  clock?: Clock;
}

/**
 * The connection manager's options from a node's: its transports (TCP when
 * none is given), listen addresses and limits, and the puzzle difficulty
 * the node requires.
 */
export function connectionOptions(
  options: NodeOptions,
): Omit<ConnectionManagerOptions, "identity"> {
  const given = [...(options.transport ? [options.transport] : []), ...(options.transports ?? [])];
  return {
    transports: given.length > 0 ? given : [new TcpTransport()],
    listen: options.listen ?? [],
    maxOutbound: options.maxOutbound,
    maxInbound: options.maxInbound,
    maxPendingHandshakes: options.maxPendingHandshakes,
    maxPendingHandshakesPerIp: options.maxPendingHandshakesPerIp,
    maxInboundPerIp: options.maxInboundPerIp,
    limitLoopback: options.limitLoopback,
    dialTimeout: options.dialTimeout,
    handshakeTimeout: options.handshakeTimeout,
    puzzleDifficulty: options.puzzleDifficulty ?? DEFAULT_PUZZLE_DIFFICULTY,
    reconnectDelay: options.reconnectDelay,
    maxReconnectDelay: options.maxReconnectDelay,
    ephemeralIdleTimeout: options.ephemeralIdleTimeout,
    preferredCompression: options.preferredCompression,
    maxFrameSize: options.maxFrameSize,
    agent: options.agent,
    connection: options.connection,
  };
}

/** The built-in services' options from a node's (flat, as `NodeOptions` has them). */
export function serviceInits(
  options: NodeOptions,
): { shout: ShoutInit; whisper: WhisperInit; speak: SpeakInit } {
  const { maxFrameSize } = options;
  return {
    shout: {
      ackTimeout: options.shoutAckTimeout,
      maxPerOriginPerSecond: options.maxShoutsPerSecond,
      maxPerPeerPerSecond: options.maxShoutsPerPeerPerSecond,
      maxAge: options.maxShoutAge,
      maxFrameSize,
    },
    whisper: {
      encrypt: options.encryptWhispers,
      maxAge: options.maxWhisperAge,
      maxBodySize: options.maxWhisperBodySize,
      maxFrameSize,
    },
    speak: { forward: options.forwardSpeak, maxFrameSize },
  };
}
