/**
 * What the services share: answering a request with NACK, the wording and
 * the window of STALE refusals, and a message body from text.
 *
 * @module
 */
import type { NackReason } from "../../gen/carrier/v1/frame_pb.ts";
import type { PeerConnection } from "../peer/connection.ts";
import type { Frame } from "../wire/frame.ts";

/** NACKs `frame` with `reason` (nothing for id 0: such a frame is never answered). */
export function refuse(
  frame: Frame,
  peer: PeerConnection,
  reason: NackReason,
  message: string,
): void {
  if (frame.id === 0) return;
  peer.nack(frame, reason, message).catch(() => {});
}

/**
 * How far from this node's clock a new SHOUT's or a delivered WHISPER's
 * timestamp may be, in ms (`maxShoutAge`, `maxWhisperAge`): 10 minutes.
 */
export const DEFAULT_MAX_MESSAGE_AGE = 600_000;

/** A STALE refusal's message: how far the timestamp is from this node's clock, and which way. */
export function staleMessage(what: string, skew: number, window: number): string {
  const side = skew > 0 ? "before" : "after";
  return `${what} timestamp is ${
    Math.abs(skew)
  } ms ${side} this node's clock (window ${window} ms)`;
}

/** `text` as UTF-8, or `bytes` as they are: the body of a SHOUT, SPEAK or WHISPER. */
export function bodyBytes(body: Uint8Array | string): Uint8Array {
  return typeof body === "string" ? new TextEncoder().encode(body) : body;
}
