/**
 * SHOUT, as a service: a signed broadcast down the Kademlia bucket tree
 * (Kadcast), each hop acknowledged, an unacknowledged hop retried with the
 * next peer of the same bucket (the planner is `lib/overlay/broadcast.ts`).
 * A node that only dials out gets each SHOUT from its peers as a leaf.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { ShoutEnvelopeSchema, ShoutSchema } from "../../gen/carrier/v1/messaging_pb.ts";
import { bytesEqual, concatBytes, toHex } from "../_bytes.ts";
import { NODE_LIMITS } from "../budget.ts";
import { PayloadDecodeError, SizeLimitError } from "../errors.ts";
import { formatAddress } from "../identity/address.ts";
import { sign, verify } from "../identity/keys.ts";
import {
  type ForwardTarget,
  nextInBucket,
  ORIGIN_HEIGHT,
  planForward,
} from "../overlay/broadcast.ts";
import { type Contact, contactOf } from "../overlay/routing_table.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../wire/frame.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import { bodyBytes, DEFAULT_MAX_MESSAGE_AGE, refuse, staleMessage } from "./refuse.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";

/**
 * The ASCII context string a SHOUT's origin signs, followed by the envelope.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { SHOUT_CONTEXT } from "@carrier/p2p/protocol";
 * assert.equal(new TextDecoder().decode(SHOUT_CONTEXT), "carrier/v1 shout:");
 * ```
 */
export const SHOUT_CONTEXT: Uint8Array = new TextEncoder().encode("carrier/v1 shout:");

/** The SHOUT service's defaults (each a `NodeOptions` field: `shoutAckTimeout`, `maxShoutsPerSecond`, `maxShoutsPerPeerPerSecond`). */
export const SHOUT_DEFAULTS = Object.freeze({
  /** Time a next hop has to acknowledge, in ms. */
  ackTimeout: 2_000,
  /** SHOUTs accepted per origin per second. */
  maxPerOriginPerSecond: 100,
  /** SHOUT frames handled per second from one peer. */
  maxPerPeerPerSecond: 1_000,
});

/** SHOUT's opcode: a request, ACKed per hop with no data. */
export const SHOUT_OPCODE = protocolOpcode(Opcode.SHOUT, ShoutSchema);

/**
 * Options of the SHOUT service (the node passes its own: `shoutAckTimeout`,
 * `maxShoutsPerSecond`, `maxShoutsPerPeerPerSecond`, `maxShoutAge`).
 *
 * @example
 * ```ts
 * import type { ShoutInit } from "./shout.ts";
 * const init: ShoutInit = { ackTimeout: 1_000, maxPerOriginPerSecond: 50 };
 * void init;
 * ```
 */
export interface ShoutInit {
  /** Time a next hop has to acknowledge, in ms, before the next peer of its bucket is tried. @default {2_000} */
  ackTimeout?: number;
  /** SHOUTs accepted per origin per second; more get NACK `RATE_LIMITED`. @default {100} */
  maxPerOriginPerSecond?: number;
  /** SHOUT frames handled per second from one peer; more wait their turn. @default {1_000} */
  maxPerPeerPerSecond?: number;
  /** How far from this node's clock a new SHOUT's timestamp may be, in ms. @default {600_000} */
  maxAge?: number;
  /** The largest frame this node sends. @default {DEFAULT_MAX_FRAME_SIZE} */
  maxFrameSize?: number;
}

/**
 * SHOUT counters of a node.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type ShoutCounters } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
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
 * Options of {@linkcode ShoutService.shout}.
 *
 * @example
 * ```ts
 * import type { ShoutOptions } from "@carrier/p2p";
 * const options: ShoutOptions = { topic: "news" };
 * void options;
 * ```
 */
export interface ShoutOptions {
  /** The topic receivers see. @default {""} */
  topic?: string;
  /** Cancels the first hops. */
  signal?: AbortSignal;
}

/**
 * What {@linkcode ShoutService.shout} resolves.
 *
 * @example
 * ```ts
 * import type { ShoutResult } from "@carrier/p2p";
 * const result: ShoutResult = { id: "00", sent: 0 };
 * void result;
 * ```
 */
export interface ShoutResult {
  /** The message id: hex SHA-256 of the signed envelope. */
  id: string;
  /** First hops that acknowledged it. */
  sent: number;
}

/** The SHOUT service (see the module documentation). */
export interface ShoutService extends Service {
  /** Broadcasts `body`; resolves once the first hops have acknowledged it. */
  shout(body: Uint8Array | string, options?: ShoutOptions): Promise<ShoutResult>;
  /** This node's SHOUT counters. */
  counters(): ShoutCounters;
}

/** A SHOUT frame's overhead over its envelope and signature: fields, hops and height at their largest. */
const SHOUT_FRAME_OVERHEAD = 64;

/**
 * The SHOUT service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shout } from "./shout.ts";
 * const factory = shout({ ackTimeout: 1_000 });
 * assert.equal(typeof factory, "function");
 * ```
 */
export function shout(init: ShoutInit = {}): ServiceFactory<ShoutService> {
  return (host) => new Shout(host, init);
}

/** A token bucket: `tokens` (negative: owed) as of clock time `at`. */
interface Pace {
  tokens: number;
  at: number;
}

/** A one-second counting window for a rate limit. */
interface RateWindow {
  start: number;
  count: number;
}

class Shout implements ShoutService {
  readonly name = "shout";
  readonly opcodes = [SHOUT_OPCODE];
  readonly #host: ServiceHost;
  readonly #ackTimeout: number;
  readonly #perOrigin: number;
  readonly #perPeer: number;
  readonly #maxAge: number;
  readonly #maxFrameSize: number;
  /** SHOUT ids seen (hex), with the highest height forwarded; insertion-ordered, bounded. */
  readonly #heights = new Map<string, number>();
  /** SHOUTs per origin in the current one-second window; bounded. */
  readonly #rate = new Map<string, RateWindow>();
  readonly #pace = new WeakMap<PeerConnection, Pace>();
  readonly #counters: ShoutCounters = noShouts();
  #sequence = 0n;

  constructor(host: ServiceHost, init: ShoutInit) {
    this.#host = host;
    this.#ackTimeout = init.ackTimeout ?? SHOUT_DEFAULTS.ackTimeout;
    this.#perOrigin = init.maxPerOriginPerSecond ?? SHOUT_DEFAULTS.maxPerOriginPerSecond;
    this.#perPeer = init.maxPerPeerPerSecond ?? SHOUT_DEFAULTS.maxPerPeerPerSecond;
    this.#maxAge = init.maxAge ?? DEFAULT_MAX_MESSAGE_AGE;
    this.#maxFrameSize = init.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  }

  counters(): ShoutCounters {
    return { ...this.#counters };
  }

  async shout(body: Uint8Array | string, options: ShoutOptions = {}): Promise<ShoutResult> {
    const host = this.#host;
    if (host.signal.aborted) throw host.signal.reason;
    const envelope = toBinary(
      ShoutEnvelopeSchema,
      create(ShoutEnvelopeSchema, {
        origin: host.identity.publicKey,
        sequence: ++this.#sequence,
        timestampMs: BigInt(Date.now()),
        topic: options.topic ?? "",
        body: bodyBytes(body),
      }),
    );
    const size = envelope.length + SHOUT_FRAME_OVERHEAD;
    if (size > this.#maxFrameSize) {
      throw new SizeLimitError(
        `Cannot SHOUT: the frame would be about ${size} bytes, over maxFrameSize ${this.#maxFrameSize}`,
        { limit: "maxFrameSize", size, max: this.#maxFrameSize },
      );
    }
    const signature = sign(host.identity, concatBytes([SHOUT_CONTEXT, envelope]));
    const idBytes = sha256(envelope);
    const id = toHex(idBytes);
    this.#remember(id, ORIGIN_HEIGHT);
    this.#counters.originated++;
    const signal = options.signal ? AbortSignal.any([host.signal, options.signal]) : host.signal;
    const hop = { envelope, signature, id: idBytes, hops: 0 };
    const sent = await this.#forward(hop, ORIGIN_HEIGHT, 0, signal);
    return { id, sent };
  }

  async receive({ frame, peer }: ReceiveContext): Promise<void> {
    const host = this.#host;
    // Before any decoding or signature work: a peer gets its share, no more.
    let pace = this.#pace.get(peer);
    if (pace === undefined) this.#pace.set(peer, pace = { tokens: this.#perPeer, at: 0 });
    const wait = paceDelay(pace, host.clock.now(), this.#perPeer);
    if (wait > 0) {
      this.#counters.paced++;
      await new Promise<void>((resolve) => host.clock.setTimeout(resolve, wait));
      if (host.signal.aborted) return;
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
      this.#counters.rejected++;
      refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    if (!verify(envelope.origin, concatBytes([SHOUT_CONTEXT, shout.envelope]), shout.signature)) {
      this.#counters.rejected++;
      refuse(frame, peer, NackReason.BAD_SIGNATURE, "SHOUT signature does not verify");
      return;
    }
    const idBytes = sha256(shout.envelope);
    const id = toHex(idBytes);
    const previous = this.#heights.get(id);
    if (previous === undefined) {
      // New to this node: not too old (a replay outlives the seen cache), not too many.
      const skew = Date.now() - Number(envelope.timestampMs);
      if (Math.abs(skew) > this.#maxAge) {
        this.#counters.rejected++;
        refuse(frame, peer, NackReason.STALE, staleMessage("SHOUT", skew, this.#maxAge));
        return;
      }
      if (!this.#allow(formatAddress(envelope.origin))) {
        this.#counters.rateLimited++;
        refuse(frame, peer, NackReason.RATE_LIMITED, "too many SHOUTs from this origin");
        return;
      }
    } else this.#counters.duplicates++;
    // Acknowledge at once: the sender's fallback waits on it.
    if (frame.id !== 0) peer.ack(frame).catch(() => {});
    if (previous !== undefined && shout.height <= previous) return;
    this.#remember(id, shout.height);
    if (previous === undefined) {
      this.#counters.delivered++;
      host.emit("message", {
        from: formatAddress(envelope.origin),
        opcode: Opcode.SHOUT,
        topic: envelope.topic,
        body: envelope.body,
        hops: shout.hops,
      });
    }
    if (bytesEqual(envelope.origin, host.identity.publicKey)) return;
    // Forwarded apart from this frame's handling: the next hops' ACKs may
    // come from this very peer (a leaf of ours), whose frames are not read
    // while maxInboundRequests of them are in hand. What waits is bounded by
    // the peer's pace (maxShoutsPerPeerPerSecond) times the ACK timeout.
    const hop = {
      envelope: shout.envelope,
      signature: shout.signature,
      id: idBytes,
      hops: shout.hops,
    };
    void this.#forward(hop, shout.height, previous ?? 0, host.signal, peer.address)
      .catch((err) => {
        if (!host.signal.aborted) host.error(err, "SHOUT forwarding");
      });
  }

  /** Sends a SHOUT down the tree below `height`; resolves how many hops acknowledged. */
  async #forward(
    hop: Hop,
    height: number,
    previousHeight: number,
    signal: AbortSignal,
    except?: string,
  ): Promise<number> {
    const host = this.#host;
    const self = host.identity.address;
    // The tree spans the nodes that accept connections; a node that only
    // dials out gets the SHOUT from each of its peers (a leaf, height 0).
    const listens = (address: string) => (host.table.get(address)?.listenAddrs.length ?? 0) > 0;
    const exclude = (address: string) =>
      address === except || address === self || !listens(address);
    const targets = planForward({
      self: host.identity.nodeId,
      height,
      previousHeight,
      candidates: host.table,
      seed: hop.id,
      exclude,
    });
    const leaves = previousHeight > 0 ? [] : host.connections.all()
      .filter((p) => !p.channel.remote.acceptsInbound && p.address !== except)
      .map((p) => ({ contact: contactOf(p.identityKey, p.address), height: 0 }));
    const results = await Promise.all(
      [...targets, ...leaves].map((t) => this.#send(t, hop, exclude, signal)),
    );
    return results.filter(Boolean).length;
  }

  /** One hop: the target, or the next peers of its bucket until one acknowledges. */
  async #send(
    target: ForwardTarget,
    hop: Hop,
    exclude: (address: string) => boolean,
    signal: AbortSignal,
  ): Promise<boolean> {
    const host = this.#host;
    const payload = toBinary(
      ShoutSchema,
      // `hops` is not signed: a uint32 that a forwarder may have set to the largest.
      create(ShoutSchema, {
        envelope: hop.envelope,
        signature: hop.signature,
        hops: Math.min(hop.hops + 1, 0xffff_ffff),
        height: target.height,
      }),
    );
    const tried = new Set<string>();
    let contact: Contact | undefined = target.contact;
    while (contact !== undefined) {
      if (signal.aborted) throw signal.reason;
      tried.add(contact.address);
      try {
        // Unreachable and not connected: it leaves the table (its
        // replacement takes over) and the next peer of the bucket is tried.
        await host.request(contact, Opcode.SHOUT, payload, { timeout: this.#ackTimeout, signal });
        this.#counters.sent++;
        return true;
      } catch (err) {
        if (signal.aborted) throw err;
        this.#counters.unacknowledged++;
      }
      contact = nextInBucket({
        self: host.identity.nodeId,
        candidates: host.table,
        bucket: target.height,
        tried,
        exclude,
        seed: hop.id,
      });
    }
    return false;
  }

  #remember(id: string, height: number): void {
    this.#heights.delete(id);
    this.#heights.set(id, height);
    if (this.#heights.size > NODE_LIMITS.shoutIds) {
      this.#heights.delete(this.#heights.keys().next().value!);
    }
  }

  #allow(origin: string): boolean {
    let window = this.#rate.get(origin);
    if (window === undefined) {
      this.#rate.set(origin, window = { start: 0, count: 0 });
      if (this.#rate.size > NODE_LIMITS.shoutOrigins) {
        this.#rate.delete(this.#rate.keys().next().value!);
      }
    }
    return withinRate(window, this.#host.clock.now(), this.#perOrigin);
  }
}

/** A SHOUT as it travels: the signed envelope, its id, the hops so far. */
interface Hop {
  envelope: Uint8Array;
  signature: Uint8Array;
  id: Uint8Array;
  hops: number;
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

/** Counts one event in `window` at `now`; whether it is within `limit` per second. */
function withinRate(window: RateWindow, now: number, limit: number): boolean {
  if (now - window.start >= 1_000) {
    window.start = now;
    window.count = 0;
  }
  return ++window.count <= limit;
}

/** SHOUT counters at zero. */
export function noShouts(): ShoutCounters {
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
