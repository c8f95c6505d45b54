/**
 * WHISPER, as a service: a message to one node by address, directly when
 * connected, else hop by hop towards its NodeId (each hop closer by XOR; a
 * node that only dials out is reached through a peer connected to it).
 * Envelopes (sealing, opening, end-to-end encryption) are
 * `lib/overlay/whisper.ts`.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { WhisperAckSchema, WhisperSchema } from "../../gen/carrier/v1/messaging_pb.ts";
import { bytesEqual, toHex } from "../_bytes.ts";
import { NODE_LIMITS } from "../budget.ts";
import {
  NackError,
  PayloadDecodeError,
  SizeLimitError,
  TimeoutError,
  WhisperError,
  type WhisperProblem,
} from "../errors.ts";
import { formatAddress, parseAddress } from "../identity/address.ts";
import { compareDistance, nodeIdOf } from "../identity/node_id.ts";
import { contactOf } from "../overlay/routing_table.ts";
import { SeenCache } from "../overlay/seen_cache.ts";
import type { Whisper } from "../overlay/whisper.ts";
import { openWhisper } from "../overlay/whisper_open.ts";
import { sealWhisper } from "../overlay/whisper_seal.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../wire/frame.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import { bodyBytes, DEFAULT_MAX_MESSAGE_AGE, refuse, staleMessage } from "./refuse.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";

/** WHISPER's opcode: a request, ACKed by the recipient with the envelope's hash. */
export const WHISPER_OPCODE = protocolOpcode(Opcode.WHISPER, WhisperSchema, {
  reply: WhisperAckSchema,
});

/** The largest `ttl` a relay forwards a WHISPER with (it lowers a larger one). */
export const MAX_RELAYED_WHISPER_TTL = 64;

/**
 * Options of the WHISPER service (the node passes its own:
 * `encryptWhispers`, `maxWhisperAge`, `maxWhisperBodySize`).
 *
 * @example
 * ```ts
 * import type { WhisperInit } from "./whisper.ts";
 * const init: WhisperInit = { encrypt: false };
 * void init;
 * ```
 */
export interface WhisperInit {
  /** Whether whispers are encrypted end to end unless a call says otherwise. @default {true} */
  encrypt?: boolean;
  /** How far from this node's clock a WHISPER delivered here may be, in ms. @default {600_000} */
  maxAge?: number;
  /** The largest WHISPER body delivered here; a larger one gets NACK `TOO_LARGE`. @default {1_048_576} */
  maxBodySize?: number;
  /** The largest frame this node sends. @default {DEFAULT_MAX_FRAME_SIZE} */
  maxFrameSize?: number;
}

/**
 * Options of {@linkcode WhisperService.whisper}.
 *
 * @example
 * ```ts
 * import type { WhisperOptions } from "@carrier/p2p";
 * const options: WhisperOptions = { encrypted: false, ttl: 8 };
 * void options;
 * ```
 */
export interface WhisperOptions {
  /** Encrypted end to end. @default {the service's `encrypt`} */
  encrypted?: boolean;
  /** The topic the recipient sees. @default {""} */
  topic?: string;
  /** Hops it may take beyond the first. @default {DEFAULT_WHISPER_TTL} */
  ttl?: number;
  /** Time the recipient's ACK may take, in ms. @default {1 s per hop it may take} */
  timeout?: number;
  /** Cancels it. */
  signal?: AbortSignal;
}

/**
 * What {@linkcode WhisperService.whisper} resolves: the recipient's ACK.
 *
 * @example
 * ```ts
 * import type { WhisperResult } from "@carrier/p2p";
 * const result: WhisperResult = { hash: new Uint8Array(32), hops: 1 };
 * void result;
 * ```
 */
export interface WhisperResult {
  /** SHA-256 of the envelope the recipient received. */
  hash: Uint8Array;
  /** The hops it took (1: direct). */
  hops: number;
}

/**
 * WHISPER counters of a node.
 *
 * @example
 * ```ts
 * import type { WhisperCounters } from "@carrier/p2p";
 * const none: WhisperCounters = { delivered: 0, relayed: 0, rejected: 0 };
 * void none;
 * ```
 */
export interface WhisperCounters {
  /** WHISPERs delivered here. */
  delivered: number;
  /** WHISPERs relayed for others. */
  relayed: number;
  /** WHISPERs refused here (tampered, forged, misaddressed, stale, too large). */
  rejected: number;
}

/** The WHISPER service (see the module documentation). */
export interface WhisperService extends Service {
  /**
   * Sends `body` to the node with address `recipient` (base58); resolves
   * its ACK.
   *
   * @throws {NackError} (`UNREACHABLE`) when no route reaches the recipient.
   * @throws {SizeLimitError} when the WHISPER would not fit in one frame or Noise message.
   */
  whisper(
    recipient: string,
    body: Uint8Array | string,
    options?: WhisperOptions,
  ): Promise<WhisperResult>;
  /** This node's WHISPER counters. */
  counters(): WhisperCounters;
}

/**
 * The WHISPER service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { whisper } from "./whisper.ts";
 * assert.equal(typeof whisper({ encrypt: true }), "function");
 * ```
 */
export function whisper(init: WhisperInit = {}): ServiceFactory<WhisperService> {
  return (host) => new WhisperRouter(host, init);
}

/** The NACK reason for each way a WHISPER fails to open (README, Refusals). */
const WHISPER_REFUSALS: Readonly<Record<WhisperProblem, NackReason>> = {
  "wrong recipient": NackReason.MALFORMED,
  "malformed": NackReason.MALFORMED,
  "bad signature": NackReason.BAD_SIGNATURE,
  "decryption failed": NackReason.BAD_SIGNATURE,
  "sender mismatch": NackReason.BAD_SIGNATURE,
  "too large": NackReason.TOO_LARGE,
};

/** A WHISPER frame's overhead over its fields: tags, lengths, ttl. */
const WHISPER_FRAME_OVERHEAD = 64;

class WhisperRouter implements WhisperService {
  readonly name = "whisper";
  readonly opcodes = [WHISPER_OPCODE];
  readonly #host: ServiceHost;
  readonly #init: WhisperInit;
  readonly #maxFrameSize: number;
  /** WHISPERs delivered (sender and nonce); bounded. */
  readonly #seen: SeenCache;
  /**
   * Envelopes (hashes) this node is relaying or sending and still waits on:
   * a copy that comes back meanwhile is a loop. Bounded by the work in hand
   * (connections × maxInboundRequests) plus this node's own whispers.
   */
  readonly #inFlight = new Set<string>();
  readonly #counters: WhisperCounters = { delivered: 0, relayed: 0, rejected: 0 };

  constructor(host: ServiceHost, init: WhisperInit) {
    this.#host = host;
    this.#init = init;
    this.#maxFrameSize = init.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.#seen = new SeenCache({ clock: host.clock, maxEntries: NODE_LIMITS.seenEntries });
  }

  counters(): WhisperCounters {
    return { ...this.#counters };
  }

  async whisper(
    recipient: string,
    body: Uint8Array | string,
    options: WhisperOptions = {},
  ): Promise<WhisperResult> {
    const host = this.#host;
    if (host.signal.aborted) throw host.signal.reason;
    const key = parseAddress(recipient);
    const signal = options.signal ? AbortSignal.any([host.signal, options.signal]) : host.signal;
    const sealed = await sealWhisper(host.identity, key, bodyBytes(body), {
      encrypted: options.encrypted ?? this.#init.encrypt ?? true,
      topic: options.topic,
      ttl: options.ttl,
      signal,
    });
    const size = sealed.envelope.length + sealed.signature.length + WHISPER_FRAME_OVERHEAD;
    if (size > this.#maxFrameSize) {
      throw new SizeLimitError(
        `Cannot WHISPER: the frame would be about ${size} bytes, over maxFrameSize ${this.#maxFrameSize}`,
        { limit: "maxFrameSize", size, max: this.#maxFrameSize },
      );
    }
    const hash = toHex(sha256(sealed.envelope));
    this.#inFlight.add(hash);
    try {
      return await this.#route(sealed, undefined, options.timeout, signal);
    } finally {
      this.#inFlight.delete(hash);
    }
  }

  async receive({ frame, peer }: ReceiveContext): Promise<void> {
    let message: Whisper;
    try {
      message = decodePayload(WhisperSchema, frame.payload);
      if (message.recipient.length !== 32) {
        throw new PayloadDecodeError(`WHISPER recipient is ${message.recipient.length} bytes`);
      }
    } catch (err) {
      refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    if (bytesEqual(message.recipient, this.#host.identity.publicKey)) {
      await this.#deliver(message, frame, peer);
    } else {
      await this.#relay(message, frame, peer);
    }
  }

  async #deliver(
    message: Whisper,
    frame: ReceiveContext["frame"],
    peer: PeerConnection,
  ): Promise<void> {
    let content;
    try {
      content = await openWhisper(this.#host.identity, message, {
        maxBodySize: this.#init.maxBodySize,
      });
    } catch (err) {
      this.#counters.rejected++;
      const reason = err instanceof WhisperError
        ? WHISPER_REFUSALS[err.problem]
        : NackReason.MALFORMED;
      refuse(frame, peer, reason, (err as Error).message);
      return;
    }
    // A replay outlives the bounded (sender, nonce) memory only inside the window.
    const skew = Date.now() - content.timestampMs;
    const window = this.#init.maxAge ?? DEFAULT_MAX_MESSAGE_AGE;
    if (Math.abs(skew) > window) {
      this.#counters.rejected++;
      refuse(frame, peer, NackReason.STALE, staleMessage("WHISPER", skew, window));
      return;
    }
    // Delivered once per (sender, nonce); a retried copy is acknowledged again.
    if (this.#seen.add(`${content.sender}:${content.nonce}`)) {
      this.#counters.delivered++;
      this.#host.emit("message", {
        from: content.sender,
        opcode: Opcode.WHISPER,
        topic: content.topic,
        body: content.body,
        encrypted: content.encrypted,
      });
    }
    const ack = create(WhisperAckSchema, { hash: content.hash, hops: 1 });
    if (frame.id !== 0) peer.ack(frame, toBinary(WhisperAckSchema, ack)).catch(() => {});
  }

  /** A relay: it can route the whisper, not read it. */
  async #relay(
    message: Whisper,
    frame: ReceiveContext["frame"],
    peer: PeerConnection,
  ): Promise<void> {
    if (message.ttl === 0) {
      refuse(frame, peer, NackReason.UNREACHABLE, "WHISPER ttl exhausted");
      return;
    }
    // Each relay waits for its next hop, so a loop brings a copy back while
    // the first is in flight; a copy after the first was answered is a retry.
    const hash = toHex(sha256(message.envelope));
    if (this.#inFlight.has(hash)) {
      refuse(frame, peer, NackReason.UNREACHABLE, "WHISPER loop: relaying it already");
      return;
    }
    this.#inFlight.add(hash);
    this.#counters.relayed++;
    try {
      const downstream = await this.#route(
        { ...message, ttl: Math.min(message.ttl - 1, MAX_RELAYED_WHISPER_TTL) },
        peer.address,
        undefined,
        this.#host.signal,
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
      refuse(frame, peer, reason, (err as Error).message);
    } finally {
      this.#inFlight.delete(hash);
    }
  }

  /** Sends a whisper one hop on; resolves the recipient's ACK (hops counted so far). */
  async #route(
    message: Whisper,
    from: string | undefined,
    timeout: number | undefined,
    signal: AbortSignal,
  ): Promise<WhisperResult> {
    const next = await this.#nextHop(message.recipient, from, signal);
    if (!next) {
      throw new NackError(`No route to ${formatAddress(message.recipient)}`, {
        opcode: Opcode.WHISPER,
        reason: NackReason.UNREACHABLE,
      });
    }
    // Each hop may wait for the hops after it: 1 s per remaining hop.
    const data = await next.request(Opcode.WHISPER, toBinary(WhisperSchema, message), {
      timeout: timeout ?? 1_000 * (message.ttl + 1),
      signal,
    });
    const ack = decodePayload(WhisperAckSchema, data);
    return { hash: ack.hash, hops: ack.hops };
  }

  /**
   * The next hop towards `target` (an address): the connection to it, else
   * the connected peer or reachable contact closest to its NodeId and closer
   * than this node, else the closest connected peer (relays remember what
   * they relay, which stops loops), never `except`.
   */
  async #nextHop(
    target: Uint8Array,
    except: string | undefined,
    signal: AbortSignal,
  ): Promise<PeerConnection | undefined> {
    const host = this.#host;
    const direct = host.connections.get(formatAddress(target));
    if (direct) return direct;
    const targetId = nodeIdOf(target);
    const connected = host.connections.all().filter((p) => p.address !== except).map((p) =>
      contactOf(p.identityKey, p.address, [...p.channel.remote.listenAddrs])
    );
    const known = host.table.closest(
      targetId,
      host.table.k,
      (c) => c.address !== except && c.listenAddrs.length > 0 && !host.connections.get(c.address),
    );
    const self = host.identity.nodeId;
    const closer = [...connected, ...known]
      .filter((c) => compareDistance(targetId, c.nodeId, self) < 0)
      .sort((a, b) => compareDistance(targetId, a.nodeId, b.nodeId));
    const rest = connected.filter((c) => !closer.includes(c))
      .sort((a, b) => compareDistance(targetId, a.nodeId, b.nodeId));
    for (const contact of [...closer, ...rest]) {
      if (signal.aborted) throw signal.reason;
      try {
        return await host.reach(contact, { signal });
      } catch {
        // Unreachable: try the next one.
      }
    }
    return undefined;
  }
}
