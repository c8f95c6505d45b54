/**
 * The node's events: their payloads ({@linkcode NodeEventMap}) and one
 * generic typed `EventTarget` ({@linkcode TypedEventTarget}) instead of
 * hand-written `addEventListener` overloads on every class that emits.
 *
 * @module
 */
import type { CloseInfo, PeerConnection } from "./peer/connection.ts";
import type { AddressSnapshot } from "./swarm/addresses.ts";
import type { NatEventDetail } from "./nat/types.ts";

/**
 * An `EventTarget` whose `addEventListener` and `removeEventListener` know
 * the events in `Events` (name → event type); other names stay allowed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { TypedEventTarget } from "@carrier/p2p";
 * const target = new TypedEventTarget<{ tick: CustomEvent<number> }>();
 * let seen = 0;
 * target.addEventListener("tick", (event) => seen += event.detail);
 * target.dispatchEvent(new CustomEvent("tick", { detail: 2 }));
 * assert.equal(seen, 2);
 * ```
 */
export class TypedEventTarget<Events extends { [K in keyof Events]: Event }> extends EventTarget {
  /** Listens for one of the events in `Events`. */
  override addEventListener<K extends keyof Events & string>(
    type: K,
    listener: (event: Events[K]) => void,
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

  /** Stops listening for one of the events in `Events`. */
  override removeEventListener<K extends keyof Events & string>(
    type: K,
    listener: (event: Events[K]) => void,
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
}

/**
 * Detail of the `peer:connect` and `peer:disconnect` events.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type PeerEventDetail } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const joined = Promise.withResolvers<PeerEventDetail>();
 * a.addEventListener("peer:connect", (e) => joined.resolve(e.detail));
 * await b.connect(a.peerAddresses[0]);
 * const { address, connection } = await joined.promise;
 * assert.equal(address, b.address);
 * assert.equal(connection.address, b.address);
 * ```
 */
export interface PeerEventDetail {
  /** The peer's address (base58). */
  address: string;
  /** The connection. */
  connection: PeerConnection;
  /** For `peer:disconnect`: why. */
  info?: CloseInfo;
}

/**
 * Detail of the `message` event: a SHOUT, a SPEAK, or a one-way frame nobody handled.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type MessageEventDetail, Opcode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const heard = Promise.withResolvers<MessageEventDetail>();
 * a.addEventListener("message", (e) => heard.resolve(e.detail));
 * await b.connect(a.peerAddresses[0]);
 * await b.speak("hello", { topic: "greetings" });
 * const { from, opcode, topic, body } = await heard.promise;
 * assert.deepEqual([from, opcode, topic], [b.address, Opcode.SPEAK, "greetings"]);
 * assert.equal(new TextDecoder().decode(body), "hello");
 * ```
 */
export interface MessageEventDetail {
  /** The sender's address (base58): for a SHOUT, its origin. */
  from: string;
  /** For a SHOUT or a WHISPER: the hops it took. */
  hops?: number;
  /** For a WHISPER: whether it was encrypted end to end. */
  encrypted?: boolean;
  /** The frame's opcode (`Opcode.SHOUT`, `Opcode.SPEAK`, or the unhandled one). */
  opcode: number;
  /** The SHOUT's or SPEAK's topic ("" otherwise). */
  topic: string;
  /** The SHOUT's or SPEAK's body, or the frame's payload. */
  body: Uint8Array;
}

/**
 * Detail of the `error` event.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type ErrorEventDetail, type Service } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const broken: Service = {
 *   name: "broken",
 *   peerConnect() {
 *     throw new Error("boom");
 *   },
 * };
 * await using net = new MemoryNetwork();
 * const services = [() => broken];
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"], services });
 * const reported = Promise.withResolvers<ErrorEventDetail>();
 * a.addEventListener("error", (e) => reported.resolve(e.detail));
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * const { error, source } = await reported.promise; // the node goes on
 * assert.equal(error.message, "boom");
 * assert.equal(source, "service broken peerConnect");
 * ```
 */
export interface ErrorEventDetail {
  /** What failed. */
  error: Error;
  /** Where: "service <name> <hook>", "bootstrap …", "handler <opcode>", "listener …". */
  source: string;
}

/**
 * The node's events and their details.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type Node, type NodeEventMap } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * function next<K extends keyof NodeEventMap>(node: Node, type: K): Promise<NodeEventMap[K]> {
 *   return new Promise((resolve) => node.addEventListener(type, resolve, { once: true }));
 * }
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const joined = next(a, "peer:connect");
 * await b.connect(a.peerAddresses[0]);
 * assert.equal((await joined).detail.address, b.address);
 * ```
 */
export interface NodeEventMap {
  /** A connection to a peer is established. */
  "peer:connect": CustomEvent<PeerEventDetail>;
  /** A connection to a peer closed. */
  "peer:disconnect": CustomEvent<PeerEventDetail>;
  /** A SHOUT, a SPEAK, or a one-way frame nobody handled, arrived. */
  message: CustomEvent<MessageEventDetail>;
  /** Something failed without stopping the node. */
  error: CustomEvent<ErrorEventDetail>;
  /** What the node announces changed (addresses, accepts inbound, reachability); its peers were told. */
  addresses: CustomEvent<AddressSnapshot>;
  /** The gateway mapped a listen port (or mapped it again elsewhere); the node announces it. */
  "nat:mapped": CustomEvent<NatEventDetail>;
  /** A mapping could not be renewed; the node maps again. */
  "nat:lost": CustomEvent<NatEventDetail>;
  /** No protocol mapped a listen port (no gateway, refused, double NAT); tried again later. */
  "nat:failed": CustomEvent<NatEventDetail>;
  /** The relays this node holds reservations at changed (see `NodeOptions.relay`). */
  relays: CustomEvent<RelaysEventDetail>;
  /**
   * Which path a peer's connection takes: at each `peer:connect`, and when a
   * direct connection replaces a relayed one (hole punching, or a direct dial).
   */
  "peer:path": CustomEvent<PathEventDetail>;
  /** A hole punch with a peer ended (see `NodeOptions.holePunch`): direct, or still relayed. */
  holepunch: CustomEvent<HolePunchEventDetail>;
}

/**
 * Detail of the `peer:path` event.
 *
 * @example
 * ```ts
 * import type { PathEventDetail } from "@carrier/p2p";
 * const describe = ({ address, path, relay }: PathEventDetail): string =>
 *   path === "relayed" ? `${address} through ${relay}` : `${address} direct`;
 * void describe;
 * ```
 */
export interface PathEventDetail {
  /** The peer's address (base58). */
  address: string;
  /** `"direct"` (a transport connection), or `"relayed"` (a circuit through a relay). */
  path: "direct" | "relayed";
  /** The relay's address (base58), on a relayed path. */
  relay?: string;
  /** The connection now. */
  connection: PeerConnection;
}

/**
 * Detail of the `holepunch` event: one hole punch's outcome, as this side
 * saw it.
 *
 * @example
 * ```ts
 * import type { HolePunchEventDetail } from "@carrier/p2p";
 * const line = (d: HolePunchEventDetail): string =>
 *   d.direct ? `direct in ${d.ms} ms` : `still relayed: ${d.error}`;
 * void line;
 * ```
 */
export interface HolePunchEventDetail {
  /** The peer's address (base58). */
  address: string;
  /** Whether the direct connection was made (and replaced the relayed one). */
  direct: boolean;
  /** Whether this side started it (the relayed connection's target does). */
  initiator: boolean;
  /** From the first HOLE_PUNCH message to the direct connection (or the failure), in ms. */
  ms: number;
  /** The round-trip time over the relayed connection, as the initiator measured it, in ms (0 on the other side). */
  rtt: number;
  /** Connection attempts this side made. */
  attempts: number;
  /** The peer's addresses this side dialled. */
  dialled: string[];
  /** The address that connected, when one did. */
  connected?: string;
  /** Why not, when it failed. */
  error?: string;
}

/**
 * Detail of the `relays` event.
 *
 * @example
 * ```ts
 * import type { RelaysEventDetail } from "@carrier/p2p";
 * const detail: RelaysEventDetail = { relays: [] };
 * void detail;
 * ```
 */
export interface RelaysEventDetail {
  /** The relays' addresses (base58), in the order they granted. */
  relays: string[];
}
