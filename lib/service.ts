/**
 * The shape every protocol feature has: built-in services (SHOUT, WHISPER,
 * SPEAK, METRICS, the DHT) and user plugins alike. A service is made by a
 * factory over a narrow {@linkcode ServiceHost}, never the whole node, as
 * js-libp2p's `ping(init)(components)`:
 *
 * ```text
 * shout(init)          the factory's options
 *   (host) => Service  what the node calls, once, as it is constructed
 * ```
 *
 * A service declares the opcodes it handles (with their Protobuf schemas);
 * the node registers them and dispatches each frame of one of them to that
 * service's `receive`. A service that declares no opcodes sees every frame
 * first, in order, and may claim it (the seed's components).
 *
 * @module
 */
import type { Clock } from "./clock.ts";
import type { NodeEventMap } from "./events.ts";
import type { Identity } from "./identity/keys.ts";
import type { Contact, RoutingTable } from "./overlay/routing_table.ts";
import type { CloseInfo, PeerConnection } from "./peer/connection.ts";
import type { PeerAddress } from "./overlay/peer_address.ts";
import type { AddressBook } from "./swarm/addresses.ts";
import type { Frame } from "./wire/frame.ts";
import type { OpcodeSpec } from "./wire/opcodes.ts";

/**
 * What a frame handed to a service's `receive` came with.
 *
 * @example
 * ```ts
 * import type { ReceiveContext } from "@carrier/p2p";
 * const log = (context: ReceiveContext): void =>
 *   console.log(context.frame.opcode, "from", context.peer.address);
 * void log;
 * ```
 */
export interface ReceiveContext {
  /** The connection the frame came on (answer a request with `peer.ack` or `peer.nack`). */
  readonly peer: PeerConnection;
  /** The frame, payload decompressed. */
  readonly frame: Frame;
}

/**
 * Options of {@linkcode ServiceHost.request}.
 *
 * @example
 * ```ts
 * import type { ContactRequestOptions } from "@carrier/p2p";
 * const options: ContactRequestOptions = { timeout: 2_000 };
 * void options;
 * ```
 */
export interface ContactRequestOptions {
  /** Time the contact has to answer, in ms. @default {the connection's request timeout (10 s)} */
  timeout?: number;
  /** Cancels the request. */
  signal?: AbortSignal;
}

/**
 * The open connections, as a service sees them.
 *
 * @example
 * ```ts
 * import type { ServiceConnections } from "@carrier/p2p";
 * const count = (connections: ServiceConnections): number => connections.all().length;
 * void count;
 * ```
 */
export interface ServiceConnections {
  /** Every open connection. */
  all(): PeerConnection[];
  /** The open connection to `address` (base58), if any. */
  get(address: string): PeerConnection | undefined;
}

/**
 * What a service may use of the node: its identity, clock, routing table
 * and connections; one way to ask a contact something (with the node's one
 * retry and liveness rule); events; and a signal aborted when the node
 * closes.
 *
 * @example
 * ```ts
 * import type { ServiceHost } from "@carrier/p2p";
 * // A service's startup, reporting where it runs.
 * const hello = (host: ServiceHost): string => `${host.identity.address} at ${host.clock.now()}`;
 * void hello;
 * ```
 */
export interface ServiceHost {
  /** The node's identity. */
  readonly identity: Identity;
  /** The node's source of time. */
  readonly clock: Clock;
  /** The node's Kademlia routing table. */
  readonly table: RoutingTable;
  /** This node as a contact (its listen addresses once it listens). */
  readonly contact: Contact;
  /** The open connections. */
  readonly connections: ServiceConnections;
  /** What the node binds and announces, what peers see it at, its reachability. */
  readonly addresses: AddressBook;
  /**
   * Dials `peer` for a dial-back: a handshake carrying `nonce`, closed once
   * done (never a peer connection).
   *
   * @throws {DialError} and the handshake's errors as the dial fails.
   */
  probe(peer: PeerAddress, nonce: Uint8Array, options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Aborted, with a `NodeClosedError` as its reason, as soon as the node
   * starts closing. A service passes it (or a signal combined with it) to
   * everything it starts, and rejects a call made after it aborted.
   */
  readonly signal: AbortSignal;
  /**
   * The connection to `contact`: the open one, else a short-lived one to
   * where it listens (closed once idle).
   *
   * @throws {DialError} when it is not connected and accepts no connections.
   */
  reach(contact: Contact, options?: { signal?: AbortSignal }): Promise<PeerConnection>;
  /**
   * One request to `contact` over {@linkcode ServiceHost.reach}: retried (at
   * most twice) only when the connection closed under it; a contact that
   * cannot be reached and is not connected leaves the routing table (the
   * liveness rule). Resolves the ACK's data.
   *
   * @throws {NackError} when the contact answers NACK.
   * @throws {TimeoutError} when it does not answer in time.
   */
  request(
    contact: Contact,
    opcode: number,
    payload: Uint8Array,
    options?: ContactRequestOptions,
  ): Promise<Uint8Array>;
  /** Emits one of the node's events. */
  emit<K extends keyof NodeEventMap>(type: K, detail: NodeEventMap[K]["detail"]): void;
  /** Reports a failure that does not stop the node (an `error` event). */
  error(error: unknown, source: string): void;
}

/**
 * A protocol service or a plugin. Every hook is optional.
 *
 * Hooks run in this order: `startup` (registration order) once the node
 * listens and before it dials its bootstrap peers; `peerConnect`,
 * `peerDisconnect` and `contactAdded` (registration order) as connections
 * and contacts come and go, before the matching events; `cleanup` (reverse
 * order) at close, after every connection has closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { createNode, defineOpcode, type Service, type ServiceHost } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const NOTE = defineOpcode(1100, { name: "NOTE", request: StringValueSchema, oneWay: true });
 * const notes: string[] = [];
 * // A plugin: a factory over the host, declaring the opcode it handles.
 * const noteTaker = (_host: ServiceHost): Service => ({
 *   name: "notes",
 *   opcodes: [NOTE],
 *   receive({ frame }) {
 *     notes.push(new TextDecoder().decode(frame.payload.subarray(2)));
 *   },
 * });
 * await using net = new MemoryNetwork();
 * await using a = await createNode({
 *   transport: net.transport(),
 *   listen: ["mem:0"],
 *   services: [noteTaker],
 * });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * await b.send(a.address, NOTE, create(StringValueSchema, { value: "hi" }));
 * while (notes.length === 0) await new Promise((r) => setTimeout(r, 5));
 * assert.deepEqual(notes, ["hi"]);
 * ```
 */
export interface Service {
  /** A name for error reports. */
  readonly name: string;
  /**
   * The opcodes this service handles: the node registers them (an
   * application's must be ≥ 1000) and hands each such frame to `receive`.
   * Without it, `receive` sees every frame before dispatch and may claim it.
   */
  readonly opcodes?: readonly OpcodeSpec[];
  /** The node listens (if it does) and has not dialed yet. */
  startup?(): void | Promise<void>;
  /**
   * A frame: one of `opcodes`, or (a service without `opcodes`) any frame,
   * which returning `true` claims (a claimed request must then be answered
   * through `context.peer`). What is still being handled is returned as a
   * promise, so the connection stops reading from a peer sending faster
   * than it is served.
   */
  receive?(context: ReceiveContext): boolean | void | Promise<boolean | void>;
  /** A connection to a peer was established. */
  peerConnect?(peer: PeerConnection): void;
  /** A connection to a peer closed. */
  peerDisconnect?(peer: PeerConnection, info: CloseInfo): void;
  /** A contact joined the routing table. */
  contactAdded?(contact: Contact): void;
  /** The node has closed every connection and is shutting down. */
  cleanup?(): void | Promise<void>;
}

/**
 * Makes a service over the node's host: what `NodeOptions.services` lists.
 *
 * @example
 * ```ts
 * import type { ServiceFactory } from "@carrier/p2p";
 * const quiet: ServiceFactory = () => ({ name: "quiet" });
 * void quiet;
 * ```
 */
export type ServiceFactory<S extends Service = Service> = (host: ServiceHost) => S;
