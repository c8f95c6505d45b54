// Test helpers: a node under attack over real TCP on 127.0.0.1, raw
// attackers that speak as much of the protocol as an attack needs, and the
// legit peer whose fresh connection + PING must keep succeeding.
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, type Node, type NodeOptions } from "../../mod.ts";
import { generateIdentity, type Identity, sign } from "../../lib/identity/keys.ts";
import {
  type ConnectionCounters,
  PeerConnection,
  type PeerConnectionOptions,
} from "../../lib/peer/connection.ts";
import { PingSchema, RecordSchema, ShoutEnvelopeSchema, ShoutSchema } from "../../lib/protocol.ts";
import { type SecureChannel, secureOutbound } from "../../lib/secure/channel.ts";
import type { TcpTransport } from "../../lib/transport/tcp.ts";
import { createFrame, encodeFrame } from "../../lib/wire/frame.ts";

/** A listening node on 127.0.0.1 over TCP. */
export function listeningNode(options: NodeOptions = {}): Promise<Node> {
  return createNode({ listen: ["127.0.0.1:0"], ...options });
}

/** An identity that passes the default puzzle (difficulty 8). */
export function attackerIdentity(): Promise<Identity> {
  return generateIdentity({ difficulty: 8 });
}

/** A raw authenticated channel to `node`: the attacker decides what to read and write. */
export async function rawChannel(
  node: Node,
  transport: TcpTransport,
  identity?: Identity,
): Promise<SecureChannel> {
  const stream = await transport.dial(node.listenAddrs[0]);
  return await secureOutbound(stream, {
    identity: identity ?? await attackerIdentity(),
    expectedRemote: node.identity.publicKey,
  });
}

/** An authenticated PeerConnection to `node` (it answers KEEPALIVE and PING like any peer). */
export async function rawPeer(
  node: Node,
  transport: TcpTransport,
  options: PeerConnectionOptions & { identity?: Identity } = {},
): Promise<PeerConnection> {
  return new PeerConnection(await rawChannel(node, transport, options.identity), options);
}

/** Encoded request frames with ids from `firstId`. */
export function requests(
  opcode: number,
  payload: Uint8Array,
  count: number,
  firstId = 1,
): Uint8Array[] {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    frames.push(encodeFrame(createFrame({ id: firstId + i, opcode, payload })));
  }
  return frames;
}

/** `frames` packed into plaintexts of at most one Noise message each. */
export function pack(frames: Uint8Array[], max = 60_000): Uint8Array[] {
  const out: Uint8Array[] = [];
  let current: Uint8Array[] = [];
  let size = 0;
  const flush = () => {
    if (size === 0) return;
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const f of current) bytes.set(f, (offset += f.length) - f.length);
    out.push(bytes);
    current = [];
    size = 0;
  };
  for (const frame of frames) {
    if (size + frame.length > max) flush();
    current.push(frame);
    size += frame.length;
  }
  flush();
  return out;
}

/** A PING payload. */
export function pingPayload(data = new Uint8Array(8)): Uint8Array {
  return toBinary(PingSchema, create(PingSchema, { data }));
}

/**
 * What a legit peer sees: a fresh node connects to `target` and PINGs it,
 * within `timeout` ms. Resolves the error, or undefined on success.
 */
export async function legitPing(target: Node, timeout = 5_000): Promise<Error | undefined> {
  const signal = AbortSignal.timeout(timeout);
  await using legit = await createNode();
  try {
    await legit.connect(target.peerAddresses[0], { signal });
    await legit.ping(target.address, { signal, timeout });
    return undefined;
  } catch (err) {
    return err as Error;
  }
}

/** The node's counters for its connection to `address`. */
export function countersOf(node: Node, address: string): ConnectionCounters | undefined {
  return node.metrics().peers.find((p) => p.address === address)?.counters;
}

/** Resolves once `condition` holds, polling every 20 ms; rejects after `timeout` ms. */
export async function until(
  condition: () => boolean,
  what: string,
  timeout = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

const SHOUT_CONTEXT = new TextEncoder().encode("carrier/v1 shout:");

/** A signed SHOUT from `origin` (topic "flood", body [sequence]), as its first hop would send it. */
export function shoutFrom(origin: Identity, sequence: number): Uint8Array {
  const envelope = toBinary(
    ShoutEnvelopeSchema,
    create(ShoutEnvelopeSchema, {
      origin: origin.publicKey,
      sequence: BigInt(sequence),
      timestampMs: BigInt(Date.now()),
      topic: "flood",
      body: Uint8Array.of(sequence),
    }),
  );
  const signature = sign(origin, new Uint8Array([...SHOUT_CONTEXT, ...envelope]));
  return toBinary(ShoutSchema, create(ShoutSchema, { envelope, signature, hops: 1, height: 256 }));
}

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
}

/** A StoreRequest whose record (version 1) carries `padding` bytes in unknown field 15. */
export function paddedStore(key: Uint8Array, value: Uint8Array, padding: number): Uint8Array {
  const record = toBinary(RecordSchema, create(RecordSchema, { key, value, version: 1n }));
  const unknown = [0x7a, ...varint(padding)]; // field 15, length-delimited
  const recordLength = record.length + unknown.length + padding;
  const head = [0x0a, ...varint(recordLength)]; // StoreRequest.record = 1
  const payload = new Uint8Array(head.length + recordLength);
  payload.set(head);
  payload.set(record, head.length);
  payload.set(unknown, head.length + record.length);
  payload.fill(0xaa, head.length + record.length + unknown.length);
  return payload;
}
