/**
 * The node: the composition root. A {@linkcode Node} owns a connection
 * manager, the opcode registry, the components (plugins), the application
 * handlers, receive-then-lock and SPEAK, and reports typed events.
 *
 * How an incoming frame travels (after the connection layer has answered
 * ACK, NACK, PING, KEEPALIVE, SET_CONNECTION_OPT and DISCONNECT itself):
 *
 * 1. **Receive-then-lock.** If a handler waits on this peer for this opcode,
 *    the frame goes to it. While a peer is locked, its other frames are held
 *    (at most `maxHeldMessages`; beyond, requests get NACK `RATE_LIMITED` and
 *    one-way frames are dropped) and delivered in order on release.
 * 2. **Components**, in the order given, each `receive` in turn; the first
 *    that returns `true` claims the frame and it goes no further. A component
 *    that throws is reported as an `error` event and skipped.
 * 3. **Built-ins and handlers:** SPEAK becomes a `message` event (and is
 *    forwarded when `forwardSpeak` is on and its ttl allows); METRICS is
 *    answered when `serveMetrics` is on; an application opcode goes to its
 *    handler; anything else gets NACK `UNKNOWN_OPCODE` (requests) or becomes
 *    a `message` event (one-way frames).
 *
 * Component hooks run in this order: `startup` (registration order) once the
 * node listens and before it dials its bootstrap peers; `peerConnect` and
 * `peerDisconnect` (registration order) as connections come and go, before
 * the matching events; `cleanup` (reverse order) at close, after every
 * connection has closed.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type ConnectionMetrics,
  ConnectionMetricsSchema,
  CountersSchema,
  MetricsRequestSchema,
  MetricsSchema,
} from "../gen/carrier/v1/control_pb.ts";
import { NackReason, Opcode } from "../gen/carrier/v1/frame_pb.ts";
import {
  ShoutEnvelopeSchema,
  ShoutSchema,
  SpeakSchema,
  WhisperAckSchema,
  WhisperSchema,
} from "../gen/carrier/v1/messaging_pb.ts";
import { openWhisper, sealWhisper, type Whisper } from "./overlay/whisper.ts";
import type { Dht, DhtHost, DhtOptions } from "./dht/dht.ts";
import { DHT_OPCODES, isDhtOpcode } from "./dht/opcodes.ts";
import { dht, type DhtService } from "./services/dht.ts";

import type { MessageOf, Schema } from "./_protobuf.ts";
import { type Clock, systemClock } from "./clock.ts";
import type {
  ErrorEventDetail,
  MessageEventDetail,
  NodeEventMap,
  PeerEventDetail,
} from "./events.ts";
import {
  CarrierError,
  ConnectionClosedError,
  DialError,
  NackError,
  NodeClosedError,
  PayloadDecodeError,
  TimeoutError,
  WhisperError,
  type WhisperProblem,
} from "./errors.ts";
import { formatAddress, parseAddress } from "./identity/address.ts";
import { generateIdentity, type Identity } from "./identity/keys.ts";
import { DEFAULT_PUZZLE_DIFFICULTY } from "./identity/puzzle.ts";
import {
  CONNECTION_LIMITS,
  ConnectionManager,
  type ConnectionManagerOptions,
  type ConnectionStats,
} from "./overlay/connections.ts";
import { parsePeerAddress, type PeerAddress } from "./overlay/peer_address.ts";
import { SeenCache } from "./overlay/seen_cache.ts";
import { type AddResult, type Contact, contactOf, RoutingTable } from "./overlay/routing_table.ts";
import type { LookupResult } from "./overlay/lookup.ts";
import {
  type ForwardTarget,
  nextInBucket,
  ORIGIN_HEIGHT,
  planForward,
} from "./overlay/broadcast.ts";
import { bytesEqual, concatBytes, toHex } from "./_bytes.ts";
import { sign, verify } from "./identity/keys.ts";
import { bucketIndex, compareDistance, nodeIdOf, randomIdInBucket } from "./identity/node_id.ts";
import type {
  CloseInfo,
  ConnectionCounters,
  PeerConnection,
  RequestOptions,
} from "./peer/connection.ts";
import { NODE_LIMITS, type ResourceBudget, resourceBudget } from "./budget.ts";
import { TcpTransport } from "./transport/tcp.ts";
import type { Transport } from "./transport/types.ts";
import type { Frame } from "./wire/frame.ts";
import { decodePayload, OpcodeRegistry, type OpcodeSpec } from "./wire/opcodes.ts";

/**
 * Options of {@linkcode createNode}. Every limit has a default. The
 * connection options (`listen`, ℓ as `maxOutbound`, `maxInbound`, timeouts,
 * what the handshake announces…) are the connection manager's.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, type NodeOptions } from "@carrier/p2p";
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
  /** The transport. @default {new TcpTransport()} */
  transport?: Transport;
  /** S/Kademlia static puzzle difficulty `c1` required of every key, this node's included. @default {DEFAULT_PUZZLE_DIFFICULTY} (8) */
  puzzleDifficulty?: number;
  /** Plugins, in the order their hooks run. @default {[]} */
  components?: readonly Component[];
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
 * What a component's `receive` sees.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Component, createNode, MemoryNetwork, type ReceiveContext } from "@carrier/p2p";
 * const seen = Promise.withResolvers<ReceiveContext>();
 * const tap: Component = { receive: (context) => void seen.resolve(context) }; // sees frames first
 * await using net = new MemoryNetwork();
 * const components = [tap];
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"], components });
 * await using b = await createNode({ transport: net.transport() });
 * await (await b.connect(a.peerAddresses[0])).send(1000, new Uint8Array([42]));
 * const { peer, frame } = await seen.promise;
 * assert.equal(peer.address, b.address);
 * assert.deepEqual(frame.payload, new Uint8Array([42]));
 * ```
 */
export interface ReceiveContext {
  /** The node. */
  readonly node: Node;
  /** The connection the frame came on. */
  readonly peer: PeerConnection;
  /** The frame, payload decompressed. */
  readonly frame: Frame;
}

/**
 * A plugin: hooks into the node's life and sees incoming frames first. Every
 * hook is optional. A hook that throws is reported as an `error` event and
 * does not stop the node or the other components.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type Component, createNode, MemoryNetwork } from "@carrier/p2p";
 * const started: string[] = [];
 * const logger: Component = { name: "logger", startup: (node) => void started.push(node.address) };
 * await using net = new MemoryNetwork();
 * await using node = await createNode({ transport: net.transport(), components: [logger] });
 * assert.deepEqual(started, [node.address]);
 * ```
 */
export interface Component {
  /** A name for error reports. @default {"component"} */
  readonly name?: string;
  /** The node listens (if it does) and has not dialed yet. */
  startup?(node: Node): void | Promise<void>;
  /** An incoming frame; return `true` to claim it (a request must then be answered via `context.peer`). */
  receive?(context: ReceiveContext): boolean | void | Promise<boolean | void>;
  /** The node has closed every connection and is shutting down. */
  cleanup?(node: Node): void | Promise<void>;
  /** A connection to a peer was established. */
  peerConnect?(peer: PeerConnection): void;
  /** A connection to a peer closed. */
  peerDisconnect?(peer: PeerConnection, info: CloseInfo): void;
}

/**
 * What an application handler receives besides the message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { createNode, defineOpcode, type HandlerContext, MemoryNetwork } from "@carrier/p2p";
 * const WHO = defineOpcode(1000, { request: StringValueSchema, reply: StringValueSchema });
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * a.handle(WHO, (_message, context: HandlerContext) => {
 *   return create(StringValueSchema, { value: context.peer.address });
 * });
 * await b.connect(a.peerAddresses[0]);
 * const reply = await b.request(a.address, WHO, create(StringValueSchema));
 * assert.equal(reply?.value, b.address); // "you are …"
 * ```
 */
export interface HandlerContext {
  /** The node. */
  readonly node: Node;
  /** The connection the request came on. */
  readonly peer: PeerConnection;
  /** The request frame. */
  readonly frame: Frame;
}

/**
 * Handles one application opcode: returns the ACK's data (or nothing), or throws to NACK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { createNode, defineOpcode, type Handler, MemoryNetwork } from "@carrier/p2p";
 * const ECHO = defineOpcode(1000, { request: StringValueSchema, reply: StringValueSchema });
 * const upper: Handler<typeof StringValueSchema, typeof StringValueSchema> = (message) =>
 *   create(StringValueSchema, { value: message.value.toUpperCase() });
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * a.handle(ECHO, upper);
 * await b.connect(a.peerAddresses[0]);
 * const reply = await b.request(a.address, ECHO, create(StringValueSchema, { value: "hi" }));
 * assert.equal(reply?.value, "HI");
 * ```
 */
export type Handler<Request extends Schema, Reply extends Schema> = (
  message: MessageOf<Request>,
  context: HandlerContext,
) => MessageOf<Reply> | void | Promise<MessageOf<Reply> | void>;

/**
 * SHOUT counters of a node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, type ShoutCounters } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const heard = new Promise((resolve) => a.addEventListener("message", resolve));
 * await b.connect(a.peerAddresses[0]);
 * await b.shout("hello everyone");
 * await heard;
 * const shouts: ShoutCounters = b.metrics().shouts;
 * assert.equal(shouts.originated, 1);
 * assert.equal(a.metrics().shouts.delivered, 1);
 * ```
 */
export interface ShoutCounters {
  /** SHOUTs this node originated. */
  originated: number;
  /** SHOUTs delivered to this node's application (each message once). */
  delivered: number;
  /** SHOUT frames sent and acknowledged (originated or forwarded). */
  sent: number;
  /** Copies of already-seen SHOUTs received. */
  duplicates: number;
  /** Sends that got no ACK in time (the next peer of the bucket was tried). */
  unacknowledged: number;
  /** SHOUTs refused: bad signature, malformed, or too old. */
  rejected: number;
  /** SHOUTs refused because their origin exceeded `maxShoutsPerSecond`. */
  rateLimited: number;
  /** SHOUTs whose processing waited for the sending peer's share (`maxShoutsPerPeerPerSecond`). */
  paced: number;
}

/**
 * A node's counters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, type NodeMetrics } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * await b.ping(a.address);
 * const metrics: NodeMetrics = b.metrics();
 * assert.equal(metrics.connections.outbound, 1);
 * assert.deepEqual(metrics.peers.map((p) => p.address), [a.address]);
 * assert(metrics.totals.framesReceived >= 1);
 * ```
 */
export interface NodeMetrics {
  /** Totals over every connection the node has had. */
  totals: ConnectionCounters;
  /** Connection counts and refused handshakes. */
  connections: ConnectionStats;
  /** Each open connection's counters. */
  peers: { address: string; counters: ConnectionCounters }[];
  /** SHOUT counters (zero in metrics read from a peer). */
  shouts: ShoutCounters;
  /** WHISPERs delivered here, relayed for others, refused (tampered, forged, misaddressed). */
  whispers: { delivered: number; relayed: number; rejected: number };
}

/**
 * Options of {@linkcode Node.receiveLock}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   createNode,
 *   ManualClock,
 *   MemoryNetwork,
 *   type ReceiveLockOptions,
 *   TimeoutError,
 * } from "@carrier/p2p";
 * const clock = new ManualClock();
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"], clock });
 * await using b = await createNode({ transport: net.transport() });
 * const joined = new Promise((resolve) => a.addEventListener("peer:connect", resolve));
 * await b.connect(a.peerAddresses[0]);
 * await joined;
 * const options: ReceiveLockOptions = { timeout: 1_000 };
 * const waiting = a.receiveLock(b.address, 1001, options);
 * clock.advance(1_000);
 * await assert.rejects(waiting, TimeoutError);
 * ```
 */
export interface ReceiveLockOptions {
  /** Time to wait for the message, in ms. @default {the connection's request timeout (10 s)} */
  timeout?: number;
  /** Cancels the wait. */
  signal?: AbortSignal;
}

/**
 * A peer locked by {@linkcode Node.receiveLock}: its first awaited frame,
 * and a way to await more; the peer's other frames wait until `release()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, MemoryNetwork, type ReceiveLock } from "@carrier/p2p";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const joined = new Promise((resolve) => a.addEventListener("peer:connect", resolve));
 * const peer = await b.connect(a.peerAddresses[0]);
 * await joined;
 * const locking = a.receiveLock(b.address, 1001);
 * for (const step of [1, 2]) await peer.send(1001, new Uint8Array([step]));
 * using lock: ReceiveLock = await locking;
 * assert.equal(lock.frame.payload[0], 1);
 * assert.equal((await lock.next()).payload[0], 2);
 * ```
 */
export interface ReceiveLock extends Disposable {
  /** The locked peer's address (base58). */
  readonly address: string;
  /** The connection. */
  readonly peer: PeerConnection;
  /** The frame that was awaited (payload decompressed). */
  readonly frame: Frame;
  /** Waits for the peer's next frame of `opcode` (default: the lock's opcode). */
  next(opcode?: number, options?: ReceiveLockOptions): Promise<Frame>;
  /** Releases the peer: held frames are delivered, in order. Idempotent. */
  release(): void;
}

interface LockWaiter {
  opcode: number;
  resolve(frame: Frame): void;
  reject(err: Error): void;
}

interface PeerLock {
  locked: boolean;
  waiters: LockWaiter[];
  held: { frame: Frame; peer: PeerConnection }[];
}

type AnyHandler = (message: unknown, context: HandlerContext) => unknown;

/**
 * A carrier node. Create one with {@linkcode createNode}.
 *
 * @example
 * ```ts
 * import { createNode } from "@carrier/p2p";
 * await using a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
 * await using b = await createNode({ puzzleDifficulty: 0 }); // dials out only
 * await b.connect(`${a.address}@${a.listenAddrs[0]}`);
 * console.log(`${await b.ping(a.address)} ms`);
 * ```
 */
export class Node extends EventTarget implements AsyncDisposable {
  /** This node's identity. */
  readonly identity: Identity;
  /** The DHT: `get`, `put`, `cas`, `lock`, `unlock`, `patch`, `changes` (see {@linkcode Dht}). */
  readonly dht: Dht;
  readonly #dhtService: DhtService;
  /** Aborted (a NodeClosedError) as the node starts closing: what services see as `host.signal`. */
  readonly #closing = new AbortController();
  readonly #manager: ConnectionManager;
  readonly #registry = new OpcodeRegistry(DHT_OPCODES);
  readonly #handlers = new Map<number, AnyHandler>();
  readonly #components: readonly Component[];
  readonly #locks = new Map<string, PeerLock>();
  readonly #speakSeen: SeenCache;
  readonly #table: RoutingTable;
  /** SHOUT ids seen (hex), with the highest height forwarded; insertion-ordered, bounded. */
  readonly #shoutHeights = new Map<string, number>();
  /** SHOUTs per origin in the current one-second window; bounded. */
  readonly #shoutRate = new Map<string, RateWindow>();
  readonly #shoutPace = new WeakMap<PeerConnection, Pace>();
  #shoutSequence = 0n;
  /** WHISPERs delivered (sender and nonce) and relayed (envelope hash); bounded. */
  readonly #whisperSeen: SeenCache;
  /**
   * Envelopes (hashes) this node is relaying or sending and still waits on:
   * a copy that comes back meanwhile is a loop. Bounded by the work in hand
   * (connections × maxInboundRequests) plus this node's own whispers.
   */
  readonly #whisperInFlight = new Set<string>();
  readonly #whisperCounters = { delivered: 0, relayed: 0, rejected: 0 };
  readonly #shoutCounters: ShoutCounters = noShouts();
  readonly #tasks = new Set<Promise<unknown>>();
  #refreshTimer: number | undefined;
  readonly #options: NodeOptions;
  readonly #clock: Clock;
  readonly #totals: ConnectionCounters = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
    drops: 0,
    rtt: 0,
  };
  #state: "new" | "running" | "closing" | "closed" = "new";

  /** Use {@linkcode createNode}. */
  constructor(identity: Identity, options: NodeOptions = {}) {
    super();
    this.identity = identity;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#components = [...(options.components ?? [])];
    const maxEntries = NODE_LIMITS.seenEntries;
    this.#speakSeen = new SeenCache({ clock: this.#clock, maxEntries });
    this.#whisperSeen = new SeenCache({ clock: this.#clock, maxEntries });
    this.#table = new RoutingTable(identity.nodeId, {
      k: options.k ?? 20,
      clock: this.#clock,
      limitLoopback: options.limitLoopback,
    });
    this.#manager = new ConnectionManager({
      identity,
      transport: options.transport ?? new TcpTransport(),
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
      clock: this.#clock,
      isOneWay: (opcode) => this.#registry.get(opcode)?.oneWay ?? false,
      onFrame: (frame, peer) => this.#onFrame(frame, peer),
      onConnect: (peer) => this.#onConnect(peer),
      onDisconnect: (peer, info) => this.#onDisconnect(peer, info),
      onListenError: (error, address) => this.#error(error, `listener ${address}`),
      isUseful: (peer) => this.#table.get(peer.address) !== undefined,
    });
    const manager = this.#manager;
    const self = contactOf(identity.publicKey, identity.address);
    const host: DhtHost = {
      get contact() {
        self.listenAddrs = manager.listenAddrs; // known once the node listens
        return self;
      },
      identity,
      table: this.#table,
      clock: this.#clock,
      signal: this.#closing.signal,
      request: (contact, opcode, payload, options) =>
        this.#requestContact(contact, opcode, payload, options ?? {}),
      error: (error, source) => this.#error(error, source),
    };
    this.#dhtService = dht(options.dht)(host);
    this.dht = this.#dhtService.client;
  }

  /** Listens for one of the node's events ({@linkcode NodeEventMap}). */
  override addEventListener<K extends keyof NodeEventMap>(
    type: K,
    listener: (event: NodeEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /** Listens for an event by name. */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: ((event: never) => void) | EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /** Stops listening for an event. */
  override removeEventListener<K extends keyof NodeEventMap>(
    type: K,
    listener: (event: NodeEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Stops listening for an event by name. */
  override removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  override removeEventListener(
    type: string,
    listener: ((event: never) => void) | EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void {
    super.removeEventListener(type, listener as EventListenerOrEventListenerObject | null, options);
  }

  /** This node's address (base58 of its public key). */
  get address(): string {
    return this.identity.address;
  }

  /** Where this node accepts connections (`HOST:PORT`); empty for an outbound-only node. */
  get listenAddrs(): string[] {
    return this.#manager.listenAddrs;
  }

  /** `ADDRESS@HOST:PORT` for each listen address: what others pass to `connect`. */
  get peerAddresses(): string[] {
    return this.listenAddrs.map((a) => `${this.address}@${a}`);
  }

  /** The opcode registry (protocol opcodes and the application's). */
  get registry(): OpcodeRegistry {
    return this.#registry;
  }

  /**
   * The Kademlia routing table. Every connected peer is offered to it; when
   * a bucket is full, a connected (so live) oldest contact stays and the
   * newcomer waits as a replacement, else the oldest makes way.
   */
  get routingTable(): RoutingTable {
    return this.#table;
  }

  /**
   * Asks a connected peer for the contacts it knows closest to `target`
   * (FIND_NODE): up to k, closest first, never the asker itself.
   *
   * @throws {NackError} (`MALFORMED`) when `target` is not 32 bytes.
   */
  findNode(
    address: string,
    target: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Contact[]> {
    const peer = this.#connected(address);
    const contact = contactOf(peer.identityKey, peer.address, [...peer.channel.remote.listenAddrs]);
    return this.dht.findNode(contact, target, options);
  }

  /** Open connections. */
  peers(): PeerConnection[] {
    return this.#manager.all();
  }

  /** The connection to `address` (base58), if any. */
  peer(address: string): PeerConnection | undefined {
    return this.#manager.get(address);
  }

  /** Starts listening, runs component startups, dials bootstrap peers. Called by {@linkcode createNode}. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new NodeClosedError("Node already started");
    this.#state = "running";
    await this.#manager.start();
    this.#dhtService.startup();
    for (const component of this.#components) {
      try {
        await component.startup?.(this);
      } catch (err) {
        this.#error(err, `component ${component.name ?? "component"} startup`);
      }
    }
    const bootstraps = (this.#options.bootstrap ?? []).map((entry) => {
      const peer = typeof entry === "string" ? parsePeerAddress(entry) : entry;
      return this.#manager.connect(peer, { persistent: true }).catch((err) =>
        this.#error(err, `bootstrap ${peer.address}@${peer.transportAddress}`)
      );
    });
    if (bootstraps.length > 0) {
      // Then find our neighbourhood (FIND_NODE on our own id) and open
      // outbound connections across the buckets.
      this.#track(Promise.all(bootstraps).then(() => this.#refresh([this.identity.nodeId])));
    }
    this.#scheduleRefresh();
  }

  /**
   * Kademlia's iterative lookup: the k contacts closest to `target` (a
   * 32-byte NodeId) that accept connections, α FIND_NODE requests in flight. Contacts that are not
   * connected are asked over a short-lived connection (not counted against
   * ℓ, closed once idle for 10 s). Every contact that answers joins the
   * routing table.
   */
  async lookup(
    target: Uint8Array,
    options: { signal?: AbortSignal; alpha?: number } = {},
  ): Promise<LookupResult> {
    const result = await this.dht.findClosest(target, options);
    for (const c of result.closest) this.#offer({ ...c, lastSeen: this.#clock.now() });
    return result;
  }

  /**
   * One request to a contact, over its connection or a short-lived one (the
   * DHT's transport, and SHOUT's hops). A contact that cannot be reached and is not connected
   * leaves the routing table (its newest replacement takes its place): the
   * liveness check.
   */
  async #requestContact(
    contact: Contact,
    opcode: number,
    payload: Uint8Array,
    options: { signal?: AbortSignal; timeout?: number },
  ): Promise<Uint8Array> {
    const { signal } = options;
    for (let attempt = 0;; attempt++) {
      try {
        const peer = await this.#reach(contact, signal);
        return await peer.request(opcode, payload, options);
      } catch (err) {
        // The connection closed under the request (a simultaneous dial from
        // the other side replaced it, a short-lived one timed out): again.
        if (err instanceof ConnectionClosedError && attempt < 2 && !signal?.aborted) continue;
        if (
          !signal?.aborted && !(err instanceof NackError) && !this.#manager.get(contact.address)
        ) {
          this.#table.remove(contact.address);
        }
        throw err;
      }
    }
  }

  /**
   * Repairs the routing table now: looks up this node's own id and a random
   * id in every bucket up to the farthest occupied one (at most 16 lookups),
   * then tops outbound connections up to ℓ. The node also does this for
   * stale buckets every `refreshInterval`.
   */
  async refreshRoutingTable(options: { signal?: AbortSignal } = {}): Promise<void> {
    const top = this.#table.occupiedBuckets()[0] ?? -1;
    const targets = [this.identity.nodeId];
    for (let i = top; i >= 0 && targets.length < 16; i--) {
      targets.push(randomIdInBucket(this.identity.nodeId, i));
    }
    options.signal?.throwIfAborted();
    await this.#refresh(targets);
  }

  /**
   * Table repair: looks up `targets` (default: a random id in each bucket not
   * refreshed for `refreshInterval`), then tops outbound connections up to ℓ,
   * one contact per bucket, farthest buckets first.
   */
  async #refresh(targets?: Uint8Array[]): Promise<void> {
    const interval = this.#options.refreshInterval ?? 60_000;
    const stale = targets ??
      this.#table.staleBuckets(interval).slice(0, 8).map((i) =>
        randomIdInBucket(this.identity.nodeId, i)
      );
    for (const target of stale) {
      if (this.#state !== "running") return;
      try {
        await this.lookup(target);
        const i = bucketIndex(this.identity.nodeId, target);
        if (i >= 0) this.#table.markRefreshed(i);
      } catch (err) {
        if (err instanceof NodeClosedError) return; // the DHT refuses once the node closes
        this.#error(err, "routing table refresh");
      }
    }
    await this.#fillOutbound();
  }

  /** Opens outbound connections to routing-table contacts until ℓ, spanning the buckets. */
  async #fillOutbound(): Promise<void> {
    const max = this.#options.maxOutbound ?? CONNECTION_LIMITS.maxOutbound;
    // Connected for good: short-lived lookup connections do not count.
    const held = (address: string) =>
      this.#manager.get(address) !== undefined && !this.#manager.isEphemeral(address);
    const tried = new Set<string>();
    for (let pass = 0; pass < 4; pass++) {
      let opened = false;
      for (const i of this.#table.occupiedBuckets()) {
        if (this.#state !== "running" || this.#manager.stats.outbound >= max) return;
        const bucket = this.#table.bucket(i);
        // First pass: one connection per bucket; later passes: more.
        if (pass === 0 && bucket.some((c) => held(c.address))) continue;
        const contact = bucket.find((c) =>
          !held(c.address) && !tried.has(c.address) && c.listenAddrs.length > 0
        );
        if (!contact) continue;
        tried.add(contact.address);
        try {
          await this.#manager.connect({
            identityKey: contact.identityKey,
            address: contact.address,
            transportAddress: contact.listenAddrs[0],
          });
          opened = true;
        } catch {
          this.#table.remove(contact.address);
        }
      }
      if (!opened) return;
    }
  }

  #scheduleRefresh(): void {
    const interval = this.#options.refreshInterval ?? 60_000;
    this.#refreshTimer = this.#clock.setTimeout(() => {
      this.#refreshTimer = undefined;
      if (this.#state !== "running") return;
      this.#track(this.#refresh().finally(() => this.#scheduleRefresh()));
    }, interval);
  }

  #track(task: Promise<unknown>): void {
    this.#tasks.add(task);
    task.catch(() => {}).finally(() => this.#tasks.delete(task));
  }

  /**
   * Connects to a peer (`ADDRESS@HOST:PORT`), or returns the open connection.
   *
   * @throws {PeerAddressError} for a malformed peer address.
   * @throws {ConnectionLimitError} when ℓ outbound connections exist.
   */
  connect(
    peer: string | PeerAddress,
    options: { signal?: AbortSignal; persistent?: boolean } = {},
  ): Promise<PeerConnection> {
    const target = typeof peer === "string" ? parsePeerAddress(peer) : peer;
    return this.#manager.connect(target, options);
  }

  /** Sends PING to a connected peer; resolves the round-trip time in ms. */
  ping(address: string, options: RequestOptions = {}): Promise<number> {
    return this.#connected(address).ping(options);
  }

  /**
   * Registers the handler of an application opcode (see `defineOpcode`).
   *
   * @throws {OpcodeRegistryError} if the opcode is reserved or already handled.
   */
  handle<Request extends Schema, Reply extends Schema>(
    spec: OpcodeSpec<Request, Reply>,
    handler: Handler<Request, Reply>,
  ): void {
    this.#registry.register(spec.opcode, spec);
    this.#handlers.set(spec.opcode, handler as AnyHandler);
  }

  /**
   * Sends an application request to a connected peer and decodes the ACK's data.
   *
   * @throws {NackError} when the peer answers NACK (its reason and data attached).
   * @throws {TimeoutError}, {@linkcode ConnectionClosedError}, {@linkcode PayloadDecodeError}.
   */
  async request<Request extends Schema, Reply extends Schema>(
    address: string,
    spec: OpcodeSpec<Request, Reply>,
    message: MessageOf<Request>,
    options: RequestOptions = {},
  ): Promise<MessageOf<Reply> | undefined> {
    const payload = toBinary(spec.request, message);
    const data = await this.#connected(address).request(spec.opcode, payload, options);
    return spec.reply ? decodePayload(spec.reply, data, spec.name) : undefined;
  }

  /** Sends a one-way application message to a connected peer. */
  async send<Request extends Schema>(
    address: string,
    spec: OpcodeSpec<Request>,
    message: MessageOf<Request>,
    options: RequestOptions = {},
  ): Promise<void> {
    await this.#connected(address).send(spec.opcode, toBinary(spec.request, message), options);
  }

  /**
   * SHOUT: broadcasts `body` to the whole network, each node delivering it
   * once (a `message` event with opcode SHOUT). The message is signed; it
   * travels down the Kademlia bucket tree (Kadcast), each hop acknowledged,
   * an unacknowledged hop retried with the next peer of the same bucket (see
   * `lib/overlay/broadcast.ts`). Resolves the message id (hex SHA-256 of the
   * signed envelope) once the first hops have acknowledged it.
   */
  async shout(
    body: Uint8Array | string,
    options: { topic?: string; signal?: AbortSignal } = {},
  ): Promise<{ id: string; sent: number }> {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const envelope = toBinary(
      ShoutEnvelopeSchema,
      create(ShoutEnvelopeSchema, {
        origin: this.identity.publicKey,
        sequence: ++this.#shoutSequence,
        timestampMs: BigInt(Date.now()),
        topic: options.topic ?? "",
        body: bytes,
      }),
    );
    const signature = sign(this.identity, concatBytes([SHOUT_CONTEXT, envelope]));
    const idBytes = sha256(envelope);
    const id = toHex(idBytes);
    this.#rememberShout(id, ORIGIN_HEIGHT);
    this.#shoutCounters.originated++;
    const sent = await this.#forwardShout(
      envelope,
      signature,
      idBytes,
      ORIGIN_HEIGHT,
      0,
      0,
      options.signal,
    );
    return { id, sent };
  }

  /** Sends a SHOUT down the tree below `height`; resolves how many hops acknowledged. */
  async #forwardShout(
    envelope: Uint8Array,
    signature: Uint8Array,
    id: Uint8Array,
    height: number,
    previousHeight: number,
    hops: number,
    signal?: AbortSignal,
    except?: string,
  ): Promise<number> {
    // The tree spans the nodes that accept connections; a node that only
    // dials out gets the SHOUT from each of its peers (a leaf, height 0).
    const listens = (address: string) => (this.#table.get(address)?.listenAddrs.length ?? 0) > 0;
    const exclude = (address: string) =>
      address === except || address === this.address || !listens(address);
    const targets = planForward({
      self: this.identity.nodeId,
      height,
      previousHeight,
      candidates: this.#table,
      seed: id,
      exclude,
    });
    const leaves = previousHeight > 0
      ? []
      : this.peers().filter((p) => !p.channel.remote.acceptsInbound && p.address !== except).map((
        p,
      ) => ({
        contact: contactOf(p.identityKey, p.address),
        height: 0,
      }));
    const results = await Promise.all(
      [...targets, ...leaves].map((t) =>
        this.#sendShout(t, envelope, signature, id, hops, exclude, signal)
      ),
    );
    return results.filter(Boolean).length;
  }

  /** One hop: the target, or the next peers of its bucket until one acknowledges. */
  async #sendShout(
    target: ForwardTarget,
    envelope: Uint8Array,
    signature: Uint8Array,
    id: Uint8Array,
    hops: number,
    exclude: (address: string) => boolean,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const payload = toBinary(
      ShoutSchema,
      // `hops` is not signed: a uint32 that a forwarder may have set to the largest.
      create(ShoutSchema, {
        envelope,
        signature,
        hops: Math.min(hops + 1, 0xffff_ffff),
        height: target.height,
      }),
    );
    const tried = new Set<string>();
    let contact: Contact | undefined = target.contact;
    while (contact !== undefined && this.#state === "running") {
      tried.add(contact.address);
      try {
        // Unreachable and not connected: it leaves the table (its
        // replacement takes over) and the next peer of the bucket is tried.
        await this.#requestContact(contact, Opcode.SHOUT, payload, {
          timeout: this.#options.shoutAckTimeout ?? 2_000,
          signal,
        });
        this.#shoutCounters.sent++;
        return true;
      } catch (err) {
        if (signal?.aborted) throw err;
        this.#shoutCounters.unacknowledged++;
      }
      contact = nextInBucket({
        self: this.identity.nodeId,
        candidates: this.#table,
        bucket: target.height,
        tried,
        exclude,
        seed: id,
      });
    }
    return false;
  }

  /** The connection to a contact: open, or a short-lived one to where it listens. */
  async #reach(contact: Contact, signal?: AbortSignal): Promise<PeerConnection> {
    const open = this.#manager.get(contact.address);
    // A short-lived connection in use must not close as idle under the request.
    if (open && !this.#manager.isEphemeral(contact.address)) return open;
    const transportAddress = contact.listenAddrs[0];
    if (open && transportAddress === undefined) return open;
    if (transportAddress === undefined) {
      throw new DialError(`${contact.address} is not connected and accepts no connections`);
    }
    return await this.#manager.connect(
      { identityKey: contact.identityKey, address: contact.address, transportAddress },
      { signal, ephemeral: true },
    );
  }

  async #onShout(frame: Frame, peer: PeerConnection): Promise<void> {
    // Before any decoding or signature work: a peer gets its share, no more.
    const perPeer = this.#options.maxShoutsPerPeerPerSecond ?? 1_000;
    let pace = this.#shoutPace.get(peer);
    if (pace === undefined) this.#shoutPace.set(peer, pace = { tokens: perPeer, at: 0 });
    const wait = paceDelay(pace, this.#clock.now(), perPeer);
    if (wait > 0) {
      this.#shoutCounters.paced++;
      await new Promise<void>((resolve) => this.#clock.setTimeout(resolve, wait));
      if (this.#state !== "running") return;
    }
    let shout, envelope;
    try {
      shout = decodePayload(ShoutSchema, frame.payload);
      envelope = decodePayload(ShoutEnvelopeSchema, shout.envelope);
      if (envelope.origin.length !== 32) {
        throw new PayloadDecodeError(`SHOUT origin is ${envelope.origin.length} bytes, not 32`);
      }
      if (shout.height > ORIGIN_HEIGHT) {
        throw new PayloadDecodeError(`SHOUT height ${shout.height} > ${ORIGIN_HEIGHT}`);
      }
    } catch (err) {
      this.#shoutCounters.rejected++;
      this.#refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    if (!verify(envelope.origin, concatBytes([SHOUT_CONTEXT, shout.envelope]), shout.signature)) {
      this.#shoutCounters.rejected++;
      this.#refuse(frame, peer, NackReason.BAD_SIGNATURE, "SHOUT signature does not verify");
      return;
    }
    const idBytes = sha256(shout.envelope);
    const id = toHex(idBytes);
    const previous = this.#shoutHeights.get(id);
    if (previous === undefined) {
      // New to this node: not too old (a replay outlives the seen cache), not too many.
      const maxAge = this.#options.maxShoutAge ?? 600_000;
      const skew = Date.now() - Number(envelope.timestampMs);
      if (Math.abs(skew) > maxAge) {
        this.#shoutCounters.rejected++;
        this.#refuse(frame, peer, NackReason.STALE, staleMessage("SHOUT", skew, maxAge));
        return;
      }
      if (!this.#allowShout(formatAddress(envelope.origin))) {
        this.#shoutCounters.rateLimited++;
        this.#refuse(frame, peer, NackReason.RATE_LIMITED, "too many SHOUTs from this origin");
        return;
      }
    } else this.#shoutCounters.duplicates++;
    // Acknowledge at once: the sender's fallback waits on it.
    if (frame.id !== 0) peer.ack(frame).catch(() => {});
    if (previous !== undefined && shout.height <= previous) return;
    this.#rememberShout(id, shout.height);
    if (previous === undefined) {
      this.#shoutCounters.delivered++;
      this.#emit("message", {
        from: formatAddress(envelope.origin),
        opcode: Opcode.SHOUT,
        topic: envelope.topic,
        body: envelope.body,
        hops: shout.hops,
      });
    }
    if (bytesEqual(envelope.origin, this.identity.publicKey)) return;
    // Forwarded apart from this frame's handling: the next hops' ACKs may
    // come from this very peer (a leaf of ours), whose frames are not read
    // while maxInboundRequests of them are in hand. What waits is bounded by
    // the peer's pace (maxShoutsPerPeerPerSecond) times shoutAckTimeout.
    void this.#forwardShout(
      shout.envelope,
      shout.signature,
      idBytes,
      shout.height,
      previous ?? 0,
      shout.hops,
      undefined,
      peer.address,
    ).catch((err) => this.#error(err, "SHOUT forwarding"));
  }

  /**
   * WHISPER: sends `body` to the node with address `recipient` (base58),
   * directly when connected, else hop by hop towards its NodeId through
   * connected peers and routing-table contacts (each hop closer by XOR; a
   * node that only dials out is reached through a peer connected to it).
   * Encrypted end to end by default (`encrypted: false`, or the node option
   * `encryptWhispers: false`, sends it signed in the clear). Resolves when the recipient has acknowledged it, with the
   * SHA-256 of the envelope it received and the hops taken.
   *
   * @throws {NackError} (`UNREACHABLE`) when no route reaches the recipient.
   */
  async whisper(
    recipient: string,
    body: Uint8Array | string,
    options: {
      encrypted?: boolean;
      topic?: string;
      ttl?: number;
      timeout?: number;
      signal?: AbortSignal;
    } = {},
  ): Promise<{ hash: Uint8Array; hops: number }> {
    const key = parseAddress(recipient);
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const whisper = await sealWhisper(this.identity, key, bytes, {
      encrypted: options.encrypted ?? this.#options.encryptWhispers ?? true,
      topic: options.topic,
      ttl: options.ttl,
      signal: options.signal,
    });
    const hash = toHex(sha256(whisper.envelope));
    this.#whisperInFlight.add(hash);
    try {
      return await this.#routeWhisper(whisper, undefined, options.timeout, options.signal);
    } finally {
      this.#whisperInFlight.delete(hash);
    }
  }

  /** Sends a whisper one hop on; resolves the recipient's ACK (hops counted so far). */
  async #routeWhisper(
    whisper: Whisper,
    from: string | undefined,
    timeout?: number,
    signal?: AbortSignal,
  ): Promise<{ hash: Uint8Array; hops: number }> {
    const next = await this.#nextHop(whisper.recipient, from, signal);
    if (!next) {
      throw new NackError(`No route to ${formatAddress(whisper.recipient)}`, {
        opcode: Opcode.WHISPER,
        reason: NackReason.UNREACHABLE,
      });
    }
    // Each hop may wait for the hops after it: 1 s per remaining hop.
    const data = await next.request(Opcode.WHISPER, toBinary(WhisperSchema, whisper), {
      timeout: timeout ?? 1_000 * (whisper.ttl + 1),
      signal,
    });
    const ack = decodePayload(WhisperAckSchema, data);
    return { hash: ack.hash, hops: ack.hops };
  }

  /**
   * The next hop towards `target` (an address): the connection to it, else
   * the connected peer or reachable contact closest to its NodeId and closer
   * than this node, else the closest connected peer (relays remember what
   * they relayed, which stops loops), never `except`.
   */
  async #nextHop(
    target: Uint8Array,
    except: string | undefined,
    signal?: AbortSignal,
  ): Promise<PeerConnection | undefined> {
    const direct = this.#manager.get(formatAddress(target));
    if (direct) return direct;
    const targetId = nodeIdOf(target);
    const connected = this.peers().filter((p) => p.address !== except).map((p) =>
      contactOf(p.identityKey, p.address, [...p.channel.remote.listenAddrs])
    );
    const known = this.#table.closest(
      targetId,
      this.#table.k,
      (c) => c.address !== except && c.listenAddrs.length > 0 && !this.#manager.get(c.address),
    );
    const closer = [...connected, ...known]
      .filter((c) => compareDistance(targetId, c.nodeId, this.identity.nodeId) < 0)
      .sort((a, b) => compareDistance(targetId, a.nodeId, b.nodeId));
    const rest = connected.filter((c) => !closer.includes(c))
      .sort((a, b) => compareDistance(targetId, a.nodeId, b.nodeId));
    for (const contact of [...closer, ...rest]) {
      try {
        return await this.#reach(contact, signal);
      } catch {
        // Unreachable: try the next one.
      }
    }
    return undefined;
  }

  async #onWhisper(frame: Frame, peer: PeerConnection): Promise<void> {
    let whisper: Whisper;
    try {
      whisper = decodePayload(WhisperSchema, frame.payload);
      if (whisper.recipient.length !== 32) {
        throw new PayloadDecodeError(`WHISPER recipient is ${whisper.recipient.length} bytes`);
      }
    } catch (err) {
      this.#refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    if (bytesEqual(whisper.recipient, this.identity.publicKey)) {
      let content;
      try {
        content = await openWhisper(this.identity, whisper, {
          maxBodySize: this.#options.maxWhisperBodySize,
        });
      } catch (err) {
        this.#whisperCounters.rejected++;
        const reason = err instanceof WhisperError
          ? WHISPER_REFUSALS[err.problem]
          : NackReason.MALFORMED;
        this.#refuse(frame, peer, reason, (err as Error).message);
        return;
      }
      // A replay outlives the bounded (sender, nonce) memory only inside the window.
      const skew = Date.now() - content.timestampMs;
      const window = this.#options.maxWhisperAge ?? 600_000;
      if (Math.abs(skew) > window) {
        this.#whisperCounters.rejected++;
        this.#refuse(frame, peer, NackReason.STALE, staleMessage("WHISPER", skew, window));
        return;
      }
      // Delivered once per (sender, nonce); a retried copy is acknowledged again.
      if (this.#whisperSeen.add(`${content.sender}:${content.nonce}`)) {
        this.#whisperCounters.delivered++;
        this.#emit("message", {
          from: content.sender,
          opcode: Opcode.WHISPER,
          topic: content.topic,
          body: content.body,
          encrypted: content.encrypted,
        });
      }
      const ack = create(WhisperAckSchema, { hash: content.hash, hops: 1 });
      if (frame.id !== 0) peer.ack(frame, toBinary(WhisperAckSchema, ack)).catch(() => {});
      return;
    }
    // A relay: it can route the whisper, not read it.
    if (whisper.ttl === 0) {
      this.#refuse(frame, peer, NackReason.UNREACHABLE, "WHISPER ttl exhausted");
      return;
    }
    // Each relay waits for its next hop, so a loop brings a copy back while
    // the first is in flight; a copy after the first was answered is a retry.
    const hash = toHex(sha256(whisper.envelope));
    if (this.#whisperInFlight.has(hash)) {
      this.#refuse(frame, peer, NackReason.UNREACHABLE, "WHISPER loop: relaying it already");
      return;
    }
    this.#whisperInFlight.add(hash);
    this.#whisperCounters.relayed++;
    try {
      const downstream = await this.#routeWhisper(
        { ...whisper, ttl: Math.min(whisper.ttl - 1, MAX_RELAYED_WHISPER_TTL) },
        peer.address,
      );
      // A hop count is a uint32: a next hop that claims the largest gets no more.
      const hops = Math.min(downstream.hops + 1, 0xffff_ffff);
      const ack = create(WhisperAckSchema, { hash: downstream.hash, hops });
      if (frame.id !== 0) peer.ack(frame, toBinary(WhisperAckSchema, ack)).catch(() => {});
    } catch (err) {
      // The next hop's NACK goes back unchanged; its silence is a TIMEOUT.
      const reason = err instanceof NackError
        ? err.reason
        : err instanceof TimeoutError
        ? NackReason.TIMEOUT
        : NackReason.UNREACHABLE;
      this.#refuse(frame, peer, reason, (err as Error).message);
    } finally {
      this.#whisperInFlight.delete(hash);
    }
  }

  #rememberShout(id: string, height: number): void {
    this.#shoutHeights.delete(id);
    this.#shoutHeights.set(id, height);
    if (this.#shoutHeights.size > NODE_LIMITS.shoutIds) {
      this.#shoutHeights.delete(this.#shoutHeights.keys().next().value!);
    }
  }

  #allowShout(origin: string): boolean {
    const limit = this.#options.maxShoutsPerSecond ?? 100;
    let window = this.#shoutRate.get(origin);
    if (window === undefined) {
      this.#shoutRate.set(origin, window = { start: 0, count: 0 });
      if (this.#shoutRate.size > NODE_LIMITS.shoutOrigins) {
        this.#shoutRate.delete(this.#shoutRate.keys().next().value!);
      }
    }
    return withinRate(window, this.#clock.now(), limit);
  }

  /**
   * SPEAK: sends `body` to every direct peer, once each. Not forwarded
   * unless `ttl` > 0 and the receivers run with `forwardSpeak`. Resolves
   * the number of peers it was sent to.
   */
  async speak(
    body: Uint8Array | string,
    options: { topic?: string; ttl?: number; signal?: AbortSignal } = {},
  ): Promise<number> {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    const speak = create(SpeakSchema, {
      topic: options.topic ?? "",
      body: bytes,
      ttl: options.ttl ?? 0,
    });
    this.#speakSeen.add(speakId(speak.topic, bytes));
    return await this.#broadcast(toBinary(SpeakSchema, speak), undefined, options.signal);
  }

  /**
   * Asks a peer for its metrics (METRICS); the peer answers only if it runs
   * with `serveMetrics`, else the request fails with NACK `FORBIDDEN`.
   */
  async requestMetrics(address: string, options: RequestOptions = {}): Promise<NodeMetrics> {
    const payload = toBinary(
      MetricsRequestSchema,
      create(MetricsRequestSchema, { includeConnections: true }),
    );
    const data = await this.#connected(address).request(Opcode.METRICS, payload, options);
    const m = decodePayload(MetricsSchema, data);
    const counters = (c?: typeof m.node): ConnectionCounters => ({
      bytesSent: Number(c?.bytesSent ?? 0),
      bytesReceived: Number(c?.bytesReceived ?? 0),
      framesSent: Number(c?.framesSent ?? 0),
      framesReceived: Number(c?.framesReceived ?? 0),
      drops: Number(c?.drops ?? 0),
      rtt: 0,
    });
    return {
      totals: counters(m.node),
      connections: {
        outbound: 0,
        inbound: m.connections,
        dialing: 0,
        pendingHandshakes: 0,
        rejectedHandshakes: Number(m.rejectedHandshakes),
      },
      peers: m.peers.map((p) => ({
        address: formatAddress(p.address),
        counters: { ...counters(p.counters), rtt: p.rttMicros / 1000 },
      })),
      whispers: { delivered: 0, relayed: 0, rejected: 0 },
      shouts: noShouts(),
    };
  }

  /**
   * The bounds on what peers can make this node hold, with their values
   * for this node's options and the memory each can pin (see
   * {@linkcode resourceBudget}).
   */
  budget(): ResourceBudget {
    return resourceBudget(this.#options);
  }

  /** This node's counters. */
  metrics(): NodeMetrics {
    const totals = { ...this.#totals };
    const peers = this.peers().map((p) => ({ address: p.address, counters: p.counters }));
    for (const { counters } of peers) {
      totals.bytesSent += counters.bytesSent;
      totals.bytesReceived += counters.bytesReceived;
      totals.framesSent += counters.framesSent;
      totals.framesReceived += counters.framesReceived;
      totals.drops += counters.drops;
    }
    return {
      totals,
      connections: this.#manager.stats,
      peers,
      shouts: { ...this.#shoutCounters },
      whispers: { ...this.#whisperCounters },
    };
  }

  /**
   * Receive-then-lock: waits for the next frame of `opcode` from `address`,
   * then holds the peer's other frames until the lock is released, so that a
   * multi-message exchange does not interleave with anything else.
   *
   * @throws {TimeoutError} when no such frame arrives in time.
   * @throws {CarrierError} when the peer is already locked.
   * @example
   * ```ts ignore
   * using lock = await node.receiveLock(peerAddress, HELLO.opcode);
   * const second = await lock.next(STEP.opcode);
   * const third = await lock.next(STEP.opcode);
   * ```
   */
  async receiveLock(
    address: string,
    opcode: number,
    options: ReceiveLockOptions = {},
  ): Promise<ReceiveLock> {
    const peer = this.#connected(address);
    let state = this.#locks.get(address);
    if (state?.locked || state?.waiters.length) {
      throw new CarrierError(`Cannot lock ${address}: already locked or awaited`);
    }
    state ??= { locked: false, waiters: [], held: [] };
    this.#locks.set(address, state);
    const s = state;
    const frame = await this.#awaitFrame(address, s, opcode, options, true);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      s.locked = false;
      for (const w of s.waiters.splice(0)) {
        w.reject(new CarrierError(`Receive lock on ${address} released`));
      }
      const held = s.held.splice(0);
      this.#locks.delete(address);
      for (const h of held) {
        Promise.resolve(this.#deliver(h.frame, h.peer)).catch((err) =>
          this.#error(err, `held frame from ${h.peer.address}`)
        );
      }
    };
    return {
      address,
      peer,
      frame,
      next: (op = opcode, opts = {}) => {
        if (released) {
          return Promise.reject(new CarrierError(`Receive lock on ${address} released`));
        }
        // It may have arrived already, and be held with the others.
        const i = s.held.findIndex((h) => h.frame.opcode === op);
        if (i >= 0) return Promise.resolve(s.held.splice(i, 1)[0].frame);
        return this.#awaitFrame(address, s, op, opts, false);
      },
      release,
      [Symbol.dispose]: release,
    };
  }

  /** Closes every connection, runs component cleanups, stops listening. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    if (this.#refreshTimer !== undefined) this.#clock.clearTimeout(this.#refreshTimer);
    this.#closing.abort(new NodeClosedError("The node is closed"));
    this.#dhtService.cleanup();
    await this.#manager.close();
    await Promise.allSettled([...this.#tasks]);
    for (const component of [...this.#components].reverse()) {
      try {
        await component.cleanup?.(this);
      } catch (err) {
        this.#error(err, `component ${component.name ?? "component"} cleanup`);
      }
    }
    this.#state = "closed";
  }

  /** Closes the node. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals ----

  #connected(address: string): PeerConnection {
    const peer = this.#manager.get(address);
    if (!peer) {
      throw new ConnectionClosedError(`Not connected to ${address}`);
    }
    return peer;
  }

  #awaitFrame(
    address: string,
    state: PeerLock,
    opcode: number,
    options: ReceiveLockOptions,
    acquire: boolean,
  ): Promise<Frame> {
    options.signal?.throwIfAborted();
    const timeout = options.timeout ?? this.#options.connection?.requestTimeout ?? 10_000;
    return new Promise<Frame>((resolve, reject) => {
      const done = () => {
        state.waiters = state.waiters.filter((w) => w !== waiter);
        this.#clock.clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (!state.locked && state.waiters.length === 0 && state.held.length === 0) {
          this.#locks.delete(address);
        }
      };
      const waiter: LockWaiter = {
        opcode,
        resolve: (frame) => {
          // Lock before anything else can arrive: the peer's next frames are held.
          if (acquire) state.locked = true;
          done();
          resolve(frame);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const onAbort = () => waiter.reject(options.signal!.reason);
      const timer = this.#clock.setTimeout(
        () =>
          waiter.reject(
            new TimeoutError(`No opcode ${opcode} from ${address} within ${timeout} ms`),
          ),
        timeout,
      );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      state.waiters.push(waiter);
    });
  }

  /**
   * A frame for the layer above the connection. What is still being handled
   * is returned as a promise, so the connection counts it against its
   * `maxInboundRequests` and stops reading from a peer that sends faster
   * than it is served.
   */
  #onFrame(frame: Frame, peer: PeerConnection): void | Promise<void> {
    this.#table.touch(peer.address);
    const lock = this.#locks.get(peer.address);
    if (lock) {
      const waiter = lock.waiters.find((w) => w.opcode === frame.opcode);
      if (waiter) {
        waiter.resolve(frame);
        return;
      }
      if (lock.locked) {
        const max = this.#options.maxHeldMessages ?? NODE_LIMITS.maxHeldMessages;
        if (lock.held.length >= max) {
          this.#refuse(frame, peer, NackReason.RATE_LIMITED, `peer is locked; ${max} frames held`);
          return;
        }
        lock.held.push({ frame, peer });
        return;
      }
    }
    return this.#deliver(frame, peer);
  }

  /** Components, then built-ins and handlers. */
  #deliver(frame: Frame, peer: PeerConnection): void | Promise<void> {
    const components = this.#components.filter((c) => c.receive);
    if (components.length === 0) return this.#builtin(frame, peer);
    return (async () => {
      for (const component of components) {
        try {
          if (await component.receive!({ node: this, peer, frame }) === true) return;
        } catch (err) {
          this.#error(err, `component ${component.name ?? "component"} receive`);
        }
      }
      await this.#builtin(frame, peer);
    })();
  }

  #builtin(frame: Frame, peer: PeerConnection): void | Promise<void> {
    switch (frame.opcode) {
      case Opcode.SPEAK:
        return this.#onSpeak(frame, peer);
      case Opcode.METRICS:
        return this.#onMetrics(frame, peer);
      case Opcode.WHISPER:
        return this.#onWhisper(frame, peer);
      case Opcode.SHOUT:
        return this.#onShout(frame, peer);
    }
    if (isDhtOpcode(frame.opcode)) return this.#dhtService.receive({ frame, peer });
    const handler = this.#handlers.get(frame.opcode);
    if (handler) return this.#runHandler(handler, frame, peer);
    if (frame.id !== 0) {
      this.#refuse(frame, peer, NackReason.UNKNOWN_OPCODE, `Unknown opcode ${frame.opcode}`);
      return;
    }
    this.#emit("message", {
      from: peer.address,
      opcode: frame.opcode,
      topic: "",
      body: frame.payload,
    });
  }

  async #runHandler(handler: AnyHandler, frame: Frame, peer: PeerConnection): Promise<void> {
    const spec = this.#registry.lookup(frame.opcode);
    let message: unknown;
    try {
      message = decodePayload(spec.request, frame.payload, spec.name);
    } catch (err) {
      if (spec.oneWay) this.#error(err, `${spec.name} from ${peer.address}`);
      else this.#refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    // A one-way frame is never answered, whatever its id.
    const answer = frame.id !== 0 && !spec.oneWay;
    try {
      const result = await handler(message, { node: this, peer, frame });
      if (!answer) return;
      const data = spec.reply && result !== undefined
        ? toBinary(spec.reply, result as MessageOf<Schema>)
        : undefined;
      await peer.ack(frame, data);
    } catch (err) {
      if (!answer) {
        this.#error(err, `handler ${spec.name}`);
        return;
      }
      if (err instanceof NackError) {
        await peer.nack(frame, err.reason, err.message, err.data).catch(() => {});
      } else if (err instanceof ConnectionClosedError) {
        // Nobody to answer.
      } else {
        this.#refuse(frame, peer, NackReason.APPLICATION, (err as Error)?.message ?? String(err));
      }
    }
  }

  #onSpeak(frame: Frame, peer: PeerConnection): void {
    let speak;
    try {
      speak = decodePayload(SpeakSchema, frame.payload);
    } catch (err) {
      this.#error(err as PayloadDecodeError, `SPEAK from ${peer.address}`);
      return;
    }
    const id = speakId(speak.topic, speak.body);
    if (!this.#speakSeen.add(id)) return; // seen already (forwarded to us twice)
    this.#emit("message", {
      from: peer.address,
      opcode: Opcode.SPEAK,
      topic: speak.topic,
      body: speak.body,
    });
    if (this.#options.forwardSpeak && speak.ttl > 0) {
      const forwarded = toBinary(
        SpeakSchema,
        create(SpeakSchema, { ...speak, ttl: speak.ttl - 1 }),
      );
      void this.#broadcast(forwarded, peer.address).catch(() => {});
    }
  }

  async #broadcast(payload: Uint8Array, except?: string, signal?: AbortSignal): Promise<number> {
    const targets = this.peers().filter((p) => p.address !== except);
    const results = await Promise.allSettled(
      targets.map((p) => p.send(Opcode.SPEAK, payload, { signal, sendBufferPolicy: "error" })),
    );
    return results.filter((r) => r.status === "fulfilled").length;
  }

  #onMetrics(frame: Frame, peer: PeerConnection): void {
    if (frame.id === 0) return;
    // "Any request" refusals come first: a payload that does not parse is MALFORMED.
    let include = false;
    try {
      include = decodePayload(MetricsRequestSchema, frame.payload).includeConnections;
    } catch (err) {
      this.#refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    if (!this.#options.serveMetrics) {
      this.#refuse(frame, peer, NackReason.FORBIDDEN, "metrics are not served by this node");
      return;
    }
    const m = this.metrics();
    const counters = (c: ConnectionCounters) =>
      create(CountersSchema, {
        bytesSent: BigInt(c.bytesSent),
        bytesReceived: BigInt(c.bytesReceived),
        framesSent: BigInt(c.framesSent),
        framesReceived: BigInt(c.framesReceived),
        drops: BigInt(c.drops),
      });
    const peers: ConnectionMetrics[] = include
      ? this.peers().map((p) =>
        create(ConnectionMetricsSchema, {
          address: p.identityKey,
          counters: counters(p.counters),
          rttMicros: Math.round(p.counters.rtt * 1000),
        })
      )
      : [];
    const reply = create(MetricsSchema, {
      node: counters(m.totals),
      connections: this.peers().length,
      rejectedHandshakes: BigInt(m.connections.rejectedHandshakes),
      peers,
    });
    peer.ack(frame, toBinary(MetricsSchema, reply)).catch(() => {});
  }

  #refuse(frame: Frame, peer: PeerConnection, reason: NackReason, message: string): void {
    if (frame.id === 0) return;
    peer.nack(frame, reason, message).catch(() => {});
  }

  /** Offers a newly connected peer to the routing table (see {@linkcode Node.routingTable}). */
  #learn(peer: PeerConnection): void {
    const { remote } = peer.channel;
    // A peer whose handshake says it accepts no connections is no replica and
    // is never listed in FIND_NODE/FIND_VALUE replies, whatever addresses it names.
    const contact = contactOf(
      peer.identityKey,
      peer.address,
      remote.acceptsInbound ? [...remote.listenAddrs] : [],
      this.#clock.now(),
    );
    const result = this.#offer(contact);
    if (result.status === "full" && !this.#manager.get(result.oldest.address)) {
      // The oldest is not connected: make way for the live newcomer.
      this.#table.remove(result.oldest.address);
      this.#offer(contact);
    }
  }

  /** Adds a contact to the routing table; a new one is offered the DHT values it should hold. */
  #offer(contact: Contact): AddResult {
    const result = this.#table.add(contact);
    if (result.status === "added") this.#dhtService.contactAdded(contact);
    return result;
  }

  #onConnect(peer: PeerConnection): void {
    this.#learn(peer);
    for (const component of this.#components) {
      try {
        component.peerConnect?.(peer);
      } catch (err) {
        this.#error(err, `component ${component.name ?? "component"} peerConnect`);
      }
    }
    this.#emit("peer:connect", { address: peer.address, connection: peer });
  }

  #onDisconnect(peer: PeerConnection, info: CloseInfo): void {
    const c = peer.counters;
    this.#totals.bytesSent += c.bytesSent;
    this.#totals.bytesReceived += c.bytesReceived;
    this.#totals.framesSent += c.framesSent;
    this.#totals.framesReceived += c.framesReceived;
    this.#totals.drops += c.drops;
    const lock = this.#locks.get(peer.address);
    if (lock) {
      this.#locks.delete(peer.address);
      for (const w of lock.waiters.splice(0)) {
        w.reject(new ConnectionClosedError(`${peer.address} disconnected`, { cause: info.error }));
      }
      lock.held.length = 0;
    }
    for (const component of this.#components) {
      try {
        component.peerDisconnect?.(peer, info);
      } catch (err) {
        this.#error(err, `component ${component.name ?? "component"} peerDisconnect`);
      }
    }
    this.#emit("peer:disconnect", { address: peer.address, connection: peer, info });
  }

  #error(err: unknown, source: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.#emit("error", { error, source });
  }

  #emit<K extends keyof NodeEventMap>(type: K, detail: NodeEventMap[K]["detail"]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/** A token bucket: `tokens` (negative: owed) as of clock time `at`. */
interface Pace {
  tokens: number;
  at: number;
}

/**
 * Takes one token from `pace`, refilled at `rate` per second up to `rate`;
 * returns how long, in ms, the taker must wait for it (0 when one was there).
 */
function paceDelay(pace: Pace, now: number, rate: number): number {
  pace.tokens = Math.min(rate, pace.tokens + (now - pace.at) * rate / 1_000) - 1;
  pace.at = now;
  return pace.tokens >= 0 ? 0 : -pace.tokens * 1_000 / rate;
}

/** A one-second counting window for a rate limit. */
interface RateWindow {
  start: number;
  count: number;
}

/** Counts one event in `window` at `now`; whether it is within `limit` per second. */
function withinRate(window: RateWindow, now: number, limit: number): boolean {
  if (now - window.start >= 1_000) {
    window.start = now;
    window.count = 0;
  }
  return ++window.count <= limit;
}

/** A SPEAK's de-duplication id: SHA-256 of topic and body. */
function speakId(topic: string, body: Uint8Array): string {
  const topicBytes = new TextEncoder().encode(topic);
  const input = new Uint8Array(4 + topicBytes.length + body.length);
  new DataView(input.buffer).setUint32(0, topicBytes.length);
  input.set(topicBytes, 4);
  input.set(body, 4 + topicBytes.length);
  return Array.from(sha256(input).subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Creates and starts a node: listens (if `listen` is given), runs component
 * startups, and starts dialing bootstrap peers. The dials (and then the
 * lookup of the node's neighbourhood) run in the background, so that a
 * listener added after `createNode` still sees their `peer:connect` events;
 * `await node.connect(peer)` for a connection needed at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode } from "@carrier/p2p";
 * await using node = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
 * assert.equal(node.listenAddrs.length, 1);
 * ```
 */
export async function createNode(options: NodeOptions = {}): Promise<Node> {
  const identity = options.identity ??
    await generateIdentity({
      difficulty: options.puzzleDifficulty ?? DEFAULT_PUZZLE_DIFFICULTY,
    });
  const node = new Node(identity, options);
  try {
    await node.start();
  } catch (err) {
    await node.close();
    throw err;
  }
  return node;
}

/** The ASCII context string a SHOUT's origin signs, followed by the envelope. */
const SHOUT_CONTEXT = new TextEncoder().encode("carrier/v1 shout:");

/** The largest `ttl` a relay forwards a WHISPER with (it lowers a larger one). */
const MAX_RELAYED_WHISPER_TTL = 64;

/** The NACK reason for each way a WHISPER fails to open (README, Refusals). */
const WHISPER_REFUSALS: Readonly<Record<WhisperProblem, NackReason>> = {
  "wrong recipient": NackReason.MALFORMED,
  "malformed": NackReason.MALFORMED,
  "bad signature": NackReason.BAD_SIGNATURE,
  "decryption failed": NackReason.BAD_SIGNATURE,
  "sender mismatch": NackReason.BAD_SIGNATURE,
  "too large": NackReason.TOO_LARGE,
};

/** A STALE refusal's message: how far the timestamp is from this node's clock, and which way. */
function staleMessage(what: string, skew: number, window: number): string {
  const side = skew > 0 ? "before" : "after";
  return `${what} timestamp is ${
    Math.abs(skew)
  } ms ${side} this node's clock (window ${window} ms)`;
}

/** SHOUT counters at zero. */
function noShouts(): ShoutCounters {
  return {
    originated: 0,
    delivered: 0,
    sent: 0,
    duplicates: 0,
    unacknowledged: 0,
    rejected: 0,
    rateLimited: 0,
    paced: 0,
  };
}
