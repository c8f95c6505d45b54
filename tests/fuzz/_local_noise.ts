/**
 * The in-process part of the Noise targets: the handshake state machine of
 * `lib/secure/noise.ts` reading fuzzed messages 1 (as responder), 2 (as
 * initiator) and 3 (as responder), and transport cipher states decrypting
 * fuzzed transport messages, at a rate a live handshake per input cannot
 * reach. The keys are fixed (derived from the seed), so the valid messages
 * the mutations start from are the same every time; the payloads come from
 * the same generator as the live targets (`handshakePayloadInput`). What
 * the node does with a parsed payload (identity, signature, puzzle checks)
 * is covered by the live slice of each target.
 *
 * Invariant: a peer's bytes only ever make the state machine throw
 * `HandshakeError` (`DecryptError` for transport messages), never another
 * error, and a failed handshake refuses every later step.
 *
 * @module
 */
import { fromBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { HandshakePayloadSchema } from "../../lib/protocol.ts";
import { DecryptError, HandshakeError } from "../../lib/secure/errors.ts";
import {
  type CipherState,
  createHandshake,
  type Handshake,
  x25519KeyPairFromPrivateKey,
} from "../../lib/secure/noise.ts";
import { PROLOGUE } from "../../lib/secure/channel.ts";
import { handshakePayload } from "./_harness.ts";
import { material, nodeIdentity } from "./_material.ts";
import { concat, mutateBytes } from "./_mutate.ts";
import type { Rng } from "./_rng.ts";
import { type Campaign, dictionary, handshakePayloadInput, LOW_ORDER } from "./_targets.ts";
import { Violation } from "./_violation.ts";
import { ArgumentError } from "../../lib/errors.ts";

const encoder = new TextEncoder();
const prologue = encoder.encode(PROLOGUE);

interface Fixed {
  campaign: Campaign;
  keys: Record<"ie" | "is" | "re" | "rs", ReturnType<typeof x25519KeyPairFromPrivateKey>>;
  message1: Uint8Array;
  /** Message 2 for the responder's valid payload, as the fixed keys make it. */
  message2: Uint8Array;
  /** Message 3 for the initiator's valid payload. */
  message3: Uint8Array;
  /** Transport ciphers after a valid handshake: initiator send, responder receive. */
  send: CipherState;
  receive: CipherState;
}

let fixed: Promise<Fixed> | undefined;

function key(seed: number, name: string) {
  return x25519KeyPairFromPrivateKey(sha256(encoder.encode(`carrier fuzz noise ${seed} ${name}`)));
}

function initiator(f: Fixed): Handshake {
  return createHandshake({
    pattern: "XX",
    initiator: true,
    prologue,
    staticKeyPair: f.keys.is,
    ephemeralKeyPair: f.keys.ie,
  });
}

function responder(f: Fixed, staticKeyPair = f.keys.rs): Handshake {
  return createHandshake({
    pattern: "XX",
    initiator: false,
    prologue,
    staticKeyPair,
    ephemeralKeyPair: f.keys.re,
  });
}

/** The fixed keys and messages of `seed` (built once per worker). */
function setup(seed: number): Promise<Fixed> {
  fixed ??= (async () => {
    const m = material(seed);
    const node = nodeIdentity(seed);
    const campaign: Campaign = {
      seed,
      node: {
        address: node.address,
        publicKey: node.publicKey,
        tcp: "127.0.0.1:1",
        exited: false,
        dial: () => Promise.resolve({ ok: false }),
      },
      transport: undefined as never,
      ...m,
      hangMs: 0,
      concurrency: 1,
      nextId: () => m.ids[0],
      restart: () => Promise.resolve(),
    };
    const keys = {
      ie: key(seed, "ie"),
      is: m.ids[0].staticKeyPair,
      re: key(seed, "re"),
      rs: m.ids[1].staticKeyPair,
    };
    const f = { campaign, keys } as Fixed;
    const a = initiator(f);
    const b = responder(f);
    f.message1 = await a.writeMessage();
    await b.readMessage(f.message1);
    f.message2 = await b.writeMessage(handshakePayload(m.ids[1]));
    await a.readMessage(f.message2);
    f.message3 = await a.writeMessage(handshakePayload(m.ids[0]));
    await b.readMessage(f.message3);
    f.send = a.split().send;
    f.receive = b.split().receive;
    return f;
  })();
  return fixed;
}

/** Runs `step`; a HandshakeError is the peer's fault (an outcome), anything else a finding. */
async function expectHandshakeError(
  step: () => Promise<unknown>,
  input: Uint8Array,
  what: string,
): Promise<string | undefined> {
  try {
    await step();
    return undefined;
  } catch (err) {
    if (err instanceof HandshakeError) return `${what}: ${reasonOf(err)}`;
    throw new Violation(
      `${what} threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
      input,
      { cause: err },
    );
  }
}

function reasonOf(err: Error): string {
  const m = err.message;
  if (/low-order/.test(m)) return "low-order key";
  if (/truncated/.test(m)) return "truncated";
  if (/exceeds the Noise maximum/.test(m)) return "too long";
  if (/failed authentication/.test(m)) return "authentication failed";
  return m.replace(/\d+/g, "N").slice(0, 60);
}

async function checkFailedStays(hs: Handshake, input: Uint8Array): Promise<void> {
  try {
    await hs.readMessage(new Uint8Array(32));
  } catch (err) {
    if (err instanceof HandshakeError) return;
    throw new Violation(`a failed handshake threw ${(err as Error)?.name} on the next step`, input);
  }
  throw new Violation("a failed handshake accepted another message", input);
}

async function message1Input(rng: Rng, seed: number): Promise<string> {
  const f = await setup(seed);
  const message = rng.weighted<() => Uint8Array>([
    [30, () => rng.bytes(32)],
    [10, () => f.message1],
    [15, () => rng.pick(LOW_ORDER)],
    [30, () => mutateBytes(rng, f.message1, 65_535)],
    [10, () => rng.bytes(rng.pick([0, 1, 16, 31, 33, 48, 64, 1000, 65_535, 65_536]))],
    [5, () => concat([f.message1, rng.bytes(rng.range(1, 100))])],
  ])();
  const hs = responder(f);
  let payload: Uint8Array | undefined;
  const failed = await expectHandshakeError(
    async () => (payload = await hs.readMessage(message)),
    message,
    "read",
  );
  if (failed) {
    await checkFailedStays(hs, message);
    return failed;
  }
  if (payload!.length !== 0) return "payload not empty (the channel refuses it)";
  // Writing message 2 runs ee and es against the key just read.
  const written = await expectHandshakeError(
    () => hs.writeMessage(handshakePayload(f.campaign.ids[1])),
    message,
    "write 2",
  );
  return written ?? "message 2 written";
}

async function message2Input(rng: Rng, seed: number): Promise<string> {
  const f = await setup(seed);
  const c = f.campaign;
  let message2: Uint8Array;
  let mode: string;
  if (rng.chance(0.35)) {
    mode = "raw";
    message2 = rng.chance(0.9)
      ? mutateBytes(rng, f.message2, 65_536)
      : rng.bytes(rng.length(70_000));
  } else {
    const input = handshakePayloadInput(rng, c, c.ids[1], dictionary(c));
    mode = input.mode;
    const b = responder(f, input.staticKeyPair ?? f.keys.rs);
    await b.readMessage(f.message1);
    try {
      message2 = await b.writeMessage(input.payload.subarray(0, 65_000));
    } catch (err) {
      if (err instanceof HandshakeError || err instanceof ArgumentError) {
        return `${mode}: not writable (${(err as Error).name})`;
      }
      throw err;
    }
  }
  const a = initiator(f);
  await a.writeMessage();
  let payload: Uint8Array | undefined;
  const failed = await expectHandshakeError(
    async () => (payload = await a.readMessage(message2)),
    message2,
    "read 2",
  );
  if (failed) {
    await checkFailedStays(a, message2);
    return `${mode}: ${failed}`;
  }
  try {
    fromBinary(HandshakePayloadSchema, payload!, { readUnknownFields: false });
  } catch {
    return `${mode}: payload does not parse`;
  }
  return `${mode}: authenticated`;
}

async function message3Input(rng: Rng, seed: number): Promise<string> {
  const f = await setup(seed);
  const c = f.campaign;
  let message3: Uint8Array;
  let mode: string;
  if (rng.chance(0.4)) {
    mode = "raw";
    message3 = rng.chance(0.9)
      ? mutateBytes(rng, f.message3, 65_536)
      : rng.bytes(rng.length(70_000));
  } else {
    const input = handshakePayloadInput(rng, c, c.ids[0], dictionary(c));
    mode = input.mode;
    const a = createHandshake({
      pattern: "XX",
      initiator: true,
      prologue,
      staticKeyPair: input.staticKeyPair ?? f.keys.is,
      ephemeralKeyPair: f.keys.ie,
    });
    await a.writeMessage();
    await a.readMessage(f.message2);
    message3 = await a.writeMessage(input.payload.subarray(0, 65_000));
  }
  const b = responder(f);
  await b.readMessage(f.message1);
  await b.writeMessage(handshakePayload(c.ids[1]));
  let payload: Uint8Array | undefined;
  const failed = await expectHandshakeError(
    async () => (payload = await b.readMessage(message3)),
    message3,
    "read 3",
  );
  if (failed) {
    await checkFailedStays(b, message3);
    return `${mode}: ${failed}`;
  }
  try {
    fromBinary(HandshakePayloadSchema, payload!, { readUnknownFields: false });
  } catch {
    return `${mode}: payload does not parse`;
  }
  b.split();
  return `${mode}: authenticated`;
}

async function transportInput(rng: Rng, seed: number): Promise<string> {
  const f = await setup(seed);
  // A valid message now and then keeps both nonces moving; the rest are broken.
  const valid = await f.send.encrypt(rng.bytes(rng.length(2000)));
  const message = rng.weighted<() => Uint8Array>([
    [10, () => valid],
    [30, () => mutateBytes(rng, valid, 65_600)],
    [10, () => rng.bytes(rng.int(16))],
    [10, () => rng.bytes(rng.pick([16, 17, 65_535, 65_536, 70_000]))],
    [10, () => valid.subarray(0, rng.int(valid.length))],
    [10, () => concat([valid, rng.bytes(rng.range(1, 16))])],
  ])();
  const before = f.receive.nonce;
  try {
    await f.receive.decrypt(message);
  } catch (err) {
    if (!(err instanceof DecryptError)) {
      throw new Violation(
        `decrypt threw ${(err as Error)?.name}: ${(err as Error)?.message}`,
        message,
        { cause: err },
      );
    }
    if (f.receive.nonce !== before) {
      throw new Violation("a failed decrypt moved the nonce", message);
    }
    if (message === valid) throw new Violation("decrypt refused a valid message", message);
    // The receiver's nonce stays; catch up with the sender so later valid messages verify.
    await f.receive.decrypt(valid);
    return "refused";
  }
  if (message !== valid && !equal(message, valid)) {
    throw new Violation("decrypt accepted a changed message", message);
  }
  return "accepted";
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Builds the fixed keys and messages of `seed`. */
export async function prepareNoise(seed: number): Promise<void> {
  await setup(seed);
}

/** The in-process Noise inputs by target name (the campaign seed is passed by the worker). */
export const NOISE_INPUTS: Record<
  string,
  (rng: Rng, index: number, seed: number) => Promise<string>
> = {
  "noise.msg1": (rng, _i, seed) => message1Input(rng, seed),
  "noise.msg2": (rng, _i, seed) => message2Input(rng, seed),
  "noise.msg3": (rng, _i, seed) => message3Input(rng, seed),
  "noise.transport": (rng, _i, seed) => transportInput(rng, seed),
};
