/**
 * SPEAK, as a service: a one-way message to every direct peer, once each;
 * forwarded only by receivers that run with `forward` and while its ttl
 * allows.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { SpeakSchema } from "../../gen/carrier/v1/messaging_pb.ts";
import { toHex } from "../_bytes.ts";
import { NODE_LIMITS } from "../budget.ts";
import { SizeLimitError } from "../errors.ts";
import { SeenCache } from "../overlay/seen_cache.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "../wire/frame.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import { bodyBytes } from "./refuse.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";

/** SPEAK's opcode: one-way. */
export const SPEAK_OPCODE = protocolOpcode(Opcode.SPEAK, SpeakSchema, { oneWay: true });

/**
 * Options of the SPEAK service (the node passes `forwardSpeak`).
 *
 * @example
 * ```ts
 * import type { SpeakInit } from "./speak.ts";
 * const init: SpeakInit = { forward: true };
 * void init;
 * ```
 */
export interface SpeakInit {
  /** Forward SPEAK messages whose ttl allows it (to every other peer, once). @default {false} */
  forward?: boolean;
  /** The largest frame this node sends. @default {DEFAULT_MAX_FRAME_SIZE} */
  maxFrameSize?: number;
}

/**
 * Options of {@linkcode SpeakService.speak}.
 *
 * @example
 * ```ts
 * import type { SpeakOptions } from "@carrier/p2p";
 * const options: SpeakOptions = { topic: "chat", ttl: 1 };
 * void options;
 * ```
 */
export interface SpeakOptions {
  /** The topic receivers see. @default {""} */
  topic?: string;
  /** Times receivers that forward may pass it on. @default {0} */
  ttl?: number;
  /** Cancels the sends. */
  signal?: AbortSignal;
}

/** The SPEAK service (see the module documentation). */
export interface SpeakService extends Service {
  /**
   * Sends `body` to every direct peer; resolves how many it was sent to.
   *
   * @throws {SizeLimitError} when the frame would be over `maxFrameSize`,
   * or over the frame size every peer accepts.
   */
  speak(body: Uint8Array | string, options?: SpeakOptions): Promise<number>;
}

/**
 * The SPEAK service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { speak } from "./speak.ts";
 * assert.equal(typeof speak({ forward: false }), "function");
 * ```
 */
export function speak(init: SpeakInit = {}): ServiceFactory<SpeakService> {
  return (host) => new Speak(host, init);
}

/** A SPEAK frame's overhead over its payload: id, opcode, flags, lengths. */
const FRAME_OVERHEAD = 16;

class Speak implements SpeakService {
  readonly name = "speak";
  readonly opcodes = [SPEAK_OPCODE];
  readonly #host: ServiceHost;
  readonly #forward: boolean;
  readonly #maxFrameSize: number;
  readonly #seen: SeenCache;

  constructor(host: ServiceHost, init: SpeakInit) {
    this.#host = host;
    this.#forward = init.forward ?? false;
    this.#maxFrameSize = init.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
    this.#seen = new SeenCache({ clock: host.clock, maxEntries: NODE_LIMITS.seenEntries });
  }

  async speak(body: Uint8Array | string, options: SpeakOptions = {}): Promise<number> {
    const host = this.#host;
    if (host.signal.aborted) throw host.signal.reason;
    const bytes = bodyBytes(body);
    const message = create(SpeakSchema, {
      topic: options.topic ?? "",
      body: bytes,
      ttl: options.ttl ?? 0,
    });
    const payload = toBinary(SpeakSchema, message);
    const size = payload.length + FRAME_OVERHEAD;
    if (size > this.#maxFrameSize) {
      throw new SizeLimitError(
        `Cannot SPEAK: the frame would be about ${size} bytes, over maxFrameSize ${this.#maxFrameSize}`,
        { limit: "maxFrameSize", size, max: this.#maxFrameSize },
      );
    }
    this.#seen.add(speakId(message.topic, bytes));
    const signal = options.signal ? AbortSignal.any([host.signal, options.signal]) : host.signal;
    const results = await this.#broadcast(payload, undefined, signal);
    const sent = results.filter((r) => r.status === "fulfilled").length;
    // Too large for every peer's own limit: not sent at all is a failure, not 0.
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    if (
      sent === 0 && refused.length > 0 && refused.every((r) => r.reason instanceof SizeLimitError)
    ) {
      throw refused[0].reason;
    }
    if (signal.aborted) throw signal.reason;
    return sent;
  }

  receive({ frame, peer }: ReceiveContext): void {
    let message;
    try {
      message = decodePayload(SpeakSchema, frame.payload);
    } catch (err) {
      this.#host.error(err, `SPEAK from ${peer.address}`);
      return;
    }
    if (!this.#seen.add(speakId(message.topic, message.body))) return; // forwarded to us twice
    this.#host.emit("message", {
      from: peer.address,
      opcode: Opcode.SPEAK,
      topic: message.topic,
      body: message.body,
    });
    if (this.#forward && message.ttl > 0) {
      const forwarded = toBinary(
        SpeakSchema,
        create(SpeakSchema, { ...message, ttl: message.ttl - 1 }),
      );
      void this.#broadcast(forwarded, peer.address, this.#host.signal);
    }
  }

  #broadcast(
    payload: Uint8Array,
    except: string | undefined,
    signal: AbortSignal,
  ): Promise<PromiseSettledResult<void>[]> {
    const targets = this.#host.connections.all().filter((p) => p.address !== except);
    return Promise.allSettled(
      targets.map((p) => p.send(Opcode.SPEAK, payload, { signal, sendBufferPolicy: "error" })),
    );
  }
}

/** A SPEAK's de-duplication id: the first 16 bytes of SHA-256 over topic length, topic and body, hex. */
function speakId(topic: string, body: Uint8Array): string {
  const topicBytes = new TextEncoder().encode(topic);
  const input = new Uint8Array(4 + topicBytes.length + body.length);
  new DataView(input.buffer).setUint32(0, topicBytes.length);
  input.set(topicBytes, 4);
  input.set(body, 4 + topicBytes.length);
  return toHex(sha256(input).subarray(0, 16));
}
