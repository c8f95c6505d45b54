/**
 * The secure channel's handshake: `Noise_XX_25519_AESGCM_SHA256` with the
 * carrier prologue, each message behind its length, the payloads checked,
 * the whole under a timeout and an abort signal.
 *
 * Private to `lib/secure/`; `channel.ts` re-exports {@linkcode PROLOGUE} and
 * {@linkcode NOISE_PROTOCOL_NAME} and makes the channel of what
 * {@linkcode establishChannel} returns.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { HandshakePayloadSchema } from "../../gen/carrier/v1/handshake_pb.ts";
import { HandshakeError } from "./errors.ts";
import { TimeoutError } from "../errors.ts";
import type { ByteStream } from "../transport/types.ts";
import {
  type ChannelSettings,
  resolveChannelOptions,
  type SecureChannelOptions,
} from "./_channel_options.ts";
import { errorMessage } from "../_error_message.ts";
import {
  LENGTH_PREFIX_LENGTH,
  MAX_READ_BUFFER,
  MAX_WIRE_MESSAGE,
  MessageReader,
  writeLengthPrefixed,
} from "./_framing.ts";
import { checkHandshakePayload, type HandshakeInfo, handshakeInfo } from "./_handshake_payload.ts";
import type { CipherState } from "./cipher_state.ts";
import { createHandshake } from "./handshake.ts";

/**
 * The Noise prologue: the ASCII bytes of `"carrier/v1"`, naming the protocol and its version.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PROLOGUE, WHISPER_PROLOGUE } from "@carrier/p2p/protocol";
 * // Bound into every handshake hash: a peer of another version fails to authenticate.
 * assert.equal(new TextEncoder().encode(PROLOGUE).length, 10);
 * assert.notEqual(PROLOGUE, WHISPER_PROLOGUE);
 * ```
 */
export const PROLOGUE = "carrier/v1";

/**
 * The full Noise protocol name the channel runs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { NOISE_PROTOCOL_NAME } from "@carrier/p2p/protocol";
 * const [, pattern, dh, cipher, hash] = NOISE_PROTOCOL_NAME.split("_");
 * assert.deepEqual([pattern, dh, cipher, hash], ["XX", "25519", "AESGCM", "SHA256"]);
 * ```
 */
export const NOISE_PROTOCOL_NAME = "Noise_XX_25519_AESGCM_SHA256";

const PROLOGUE_BYTES = new TextEncoder().encode(PROLOGUE);

/** What the handshake hands to the channel. */
export interface ChannelInit {
  stream: ByteStream;
  reader: MessageReader;
  ciphers: { send: CipherState; receive: CipherState };
  local: HandshakeInfo;
  remote: HandshakeInfo;
  handshakeHash: Uint8Array;
  initiator: boolean;
}

/**
 * Runs the handshake over `stream` as the initiator or the responder and
 * returns what the channel is made of. On failure, timeout or abort the
 * stream is closed.
 */
export async function establishChannel(
  stream: ByteStream,
  options: SecureChannelOptions,
  initiator: boolean,
): Promise<ChannelInit> {
  let settings: ChannelSettings;
  try {
    settings = resolveChannelOptions(stream, options);
    settings.signal?.throwIfAborted();
  } catch (error) {
    stream.close();
    throw error;
  }
  const { signal, clock, handshakeTimeout } = settings;
  let interrupted = false;
  let interruption: unknown;
  const interrupt = (reason: unknown): void => {
    if (interrupted) return;
    interrupted = true;
    interruption = reason;
    // Closing the stream ends the pending read or write, so the handshake
    // below settles promptly and leaves nothing running.
    stream.close();
  };
  const timer = Number.isFinite(handshakeTimeout)
    ? clock.setTimeout(
      () =>
        interrupt(
          new TimeoutError(
            `Noise handshake with ${stream.remoteAddress} timed out after ${handshakeTimeout} ms`,
          ),
        ),
      handshakeTimeout,
    )
    : undefined;
  const onAbort = (): void => interrupt(signal!.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const init = await handshake(stream, settings, initiator);
    // The catch below closes the stream.
    if (interrupted) throw interruption;
    return init;
  } catch (error) {
    stream.close();
    throw interrupted ? interruption : error;
  } finally {
    if (timer !== undefined) clock.clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

async function handshake(
  stream: ByteStream,
  settings: ChannelSettings,
  initiator: boolean,
): Promise<ChannelInit> {
  const role = initiator ? "initiator" : "responder";
  const fail = (step: string, why: string, cause?: unknown): HandshakeError =>
    new HandshakeError(
      `Noise handshake with ${stream.remoteAddress} (as ${role}) failed ${step}: ${why}`,
      cause === undefined ? undefined : { cause },
    );
  const reader = new MessageReader(stream, MAX_WIRE_MESSAGE);
  const hs = createHandshake({
    pattern: "XX",
    initiator,
    prologue: PROLOGUE_BYTES,
    staticKeyPair: settings.staticKeyPair,
  });

  const send = async (index: number, payload?: Uint8Array): Promise<void> => {
    const step = `writing message ${index}`;
    let message: Uint8Array;
    try {
      message = await hs.writeMessage(payload);
    } catch (error) {
      throw fail(step, errorMessage(error), error);
    }
    const framed = new Uint8Array(LENGTH_PREFIX_LENGTH + message.length);
    writeLengthPrefixed(framed, 0, message);
    try {
      await stream.write(framed);
    } catch (error) {
      throw fail(step, errorMessage(error), error);
    }
  };

  const receive = async (index: number): Promise<Uint8Array> => {
    const step = `reading message ${index}`;
    let message: Uint8Array | null;
    try {
      while ((message = reader.next()) === null) {
        if (!await reader.fill()) {
          throw fail(
            step,
            `the stream ended after ${reader.buffered} of the ${reader.wanted} bytes expected`,
          );
        }
      }
    } catch (error) {
      if (error instanceof HandshakeError) throw error;
      throw fail(step, errorMessage(error), error);
    }
    let plaintext: Uint8Array;
    try {
      plaintext = await hs.readMessage(message);
    } catch (error) {
      throw fail(step, errorMessage(error), error);
    }
    settings.onHandshakeMessage?.();
    return plaintext;
  };

  const payload = toBinary(
    HandshakePayloadSchema,
    create(HandshakePayloadSchema, settings.payload),
  );
  let remote: HandshakeInfo;
  if (initiator) {
    await send(1);
    remote = checkHandshakePayload(hs, await receive(2), 2, settings, fail);
    await send(3, payload);
  } else {
    const first = await receive(1);
    if (first.length !== 0) {
      throw fail(
        "reading message 1",
        `its payload must be empty, got ${first.length} bytes`,
      );
    }
    await send(2, payload);
    remote = checkHandshakePayload(hs, await receive(3), 3, settings, fail);
  }
  const ciphers = hs.split({ nonceLimit: settings.nonceLimit });
  reader.maxCapacity = MAX_READ_BUFFER;
  return {
    stream,
    reader,
    ciphers,
    local: handshakeInfo(settings.payload),
    remote,
    handshakeHash: hs.handshakeHash,
    initiator,
  };
}
