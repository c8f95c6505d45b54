/**
 * Valid inputs to start from, per opcode: messages that pass the node's
 * checks up to the point a mutation breaks them (signed SHOUTs, sealed and
 * signed WHISPERs to the node, owned and open DHT records, patches against
 * values the node holds, with the hash of the value they produce), plus
 * JSON Patch and byte-splice generators shared with the local patch targets.
 *
 * @module
 */
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  DialBackRequestSchema,
  DisconnectSchema,
  HolePunchSchema,
  IdentifySchema,
  KeepaliveSchema,
  MetricsRequestSchema,
  PingSchema,
  RelayDataSchema,
  RelayRequestSchema,
} from "../../lib/protocol.ts";
import {
  CasRequestSchema,
  ChangesRequestSchema,
  FindNodeRequestSchema,
  FindValueRequestSchema,
  LockRequestSchema,
  PatchFormat,
  PatchRequestSchema,
  PatchSchema,
  type Record as DhtRecord,
  RecordSchema,
  StoreRequestSchema,
  UnlockRequestSchema,
} from "../../lib/protocol.ts";
import { AckSchema, NackSchema } from "../../lib/protocol.ts";
import {
  SealedWhisperSchema,
  ShoutEnvelopeSchema,
  ShoutSchema,
  SpeakSchema,
  WhisperEnvelopeSchema,
  WhisperSchema,
} from "../../lib/protocol.ts";
import { SetConnectionOptSchema } from "../../lib/protocol.ts";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { type Identity, sign } from "../../lib/identity/keys.ts";
import { recordSigningBytes } from "../../lib/dht/record.ts";
import {
  applyJsonPatchToBytes,
  applySplices,
  type JsonPatchOperation,
} from "../../lib/dht/patch.ts";
import { createHandshake, x25519KeyPairFromPrivateKey } from "../../lib/secure/noise.ts";
import { WHISPER_PROLOGUE, WHISPER_SIGNATURE_CONTEXT } from "../../lib/overlay/whisper.ts";
import {
  x25519PrivateKeyFromEd25519,
  x25519PublicKeyFromEd25519,
} from "../../lib/overlay/ed25519_x25519.ts";
import { type Dictionary, mutateMessage } from "./_generate.ts";
import { concat, EDGE_VARINTS, mutateBytes } from "./_mutate.ts";
import type { Rng } from "./_rng.ts";

const encoder = new TextEncoder();
const SHOUT_CONTEXT = encoder.encode("carrier/v1 shout:");
const WHISPER_CONTEXT = encoder.encode(WHISPER_SIGNATURE_CONTEXT);
const WHISPER_PROLOGUE_BYTES = encoder.encode(WHISPER_PROLOGUE);

/** A value the node holds, for patches that apply. */
export interface DhtBase {
  /** The key. */
  key: Uint8Array;
  /** The version held. */
  version: bigint;
  /** The value held. */
  value: Uint8Array;
  /** Whether the value is JSON (else binary, for splices). */
  json: boolean;
  /** The owner, for an owned record. */
  owner?: Identity;
}

/** What seeds are built from. */
export interface SeedContext {
  /** The node's public key (recipient of WHISPERs). */
  nodeKey: Uint8Array;
  /** The identity of the fuzz connection sending. */
  sender: Identity;
  /** Another connected fuzz identity (a WHISPER relay target), if any. */
  peerKey?: Uint8Array;
  /** Identities that sign SHOUTs and own records (no puzzle needed). */
  signers: Identity[];
  /** DHT keys shared by the DHT targets (contention: locks, CAS). */
  keys: Uint8Array[];
  /** Values the node holds, for DHT_PATCH and DHT_CHANGES. */
  bases: DhtBase[];
  /** Proposals used recently (so COMMIT and ABORT sometimes match a PREPARE). */
  proposals: Uint8Array[];
  /** Interesting bytes and strings for generated fields. */
  dict: Dictionary;
}

/** A message of some schema, as a seed. */
export interface Seed<Desc extends DescMessage = DescMessage> {
  /** Its schema. */
  schema: Desc;
  /** The message. */
  message: MessageShape<Desc>;
  /** Whether it was built to pass every check (then field mutation is worth it). */
  valid: boolean;
}

function seed<Desc extends DescMessage>(
  schema: Desc,
  init: Record<string, unknown>,
  valid = true,
): Seed {
  return { schema, message: create(schema, init as never), valid } as unknown as Seed;
}

function key32(rng: Rng, ctx: SeedContext): Uint8Array {
  return rng.weighted<() => Uint8Array>([
    [5, () => rng.pick(ctx.keys)],
    [2, () => rng.bytes(32)],
    [ctx.bases.length > 0 ? 2 : 0, () => rng.pick(ctx.bases).key],
    [1, () => ctx.nodeKey],
    [1, () => sha256(ctx.nodeKey)],
    [1, () => rng.bytes(rng.pick([0, 1, 31, 33, 64]))],
  ])();
}

function version(rng: Rng): bigint {
  return rng.weighted<() => bigint>([
    [6, () => BigInt(rng.range(1, 5))],
    [2, () => BigInt(rng.range(1, 1_000_000))],
    [2, () => rng.pick(EDGE_VARINTS)],
  ])();
}

/** A signed record (owned by a signer, or open), version and value chosen at random. */
export function recordSeed(rng: Rng, ctx: SeedContext, key = key32(rng, ctx)): DhtRecord {
  const value = rng.weighted<() => Uint8Array>([
    [6, () => rng.bytes(rng.length(300))],
    [2, () => encoder.encode(JSON.stringify({ n: rng.int(100), s: "x".repeat(rng.int(40)) }))],
    [1, () => new Uint8Array(rng.pick([65_535, 65_536, 65_537]))],
    [1, () => new Uint8Array(0)],
  ])();
  const v = version(rng);
  const ttlMs = rng.weighted<() => bigint>([
    [6, () => 0n],
    [3, () => BigInt(rng.range(1, 3_600_000))],
    [1, () => rng.pick(EDGE_VARINTS)],
  ])();
  const record = create(RecordSchema, { key, value, version: v, ttlMs });
  if (rng.chance(0.4)) {
    const owner = rng.pick(ctx.signers);
    record.owner = owner.publicKey;
    if (v >= 0n && v < 2n ** 64n) {
      record.signature = sign(owner, recordSigningBytes(key, v, sha256(value)));
    }
  }
  return record;
}

/** A signed SHOUT (the envelope sometimes mutated before signing, so the signature holds). */
export function shoutSeed(rng: Rng, ctx: SeedContext, dict: Dictionary): Seed {
  const signer = rng.pick(ctx.signers);
  let envelope = create(ShoutEnvelopeSchema, {
    origin: signer.publicKey,
    sequence: rng.u64(),
    timestampMs: BigInt(Date.now() + rng.range(-60_000, 60_000)),
    topic: rng.pick(["", "news", "t".repeat(rng.int(300))]),
    body: rng.bytes(rng.length(1000)),
  });
  if (rng.chance(0.3)) envelope = mutateMessage(rng, ShoutEnvelopeSchema, envelope, dict);
  let envelopeBytes: Uint8Array = toBinary(ShoutEnvelopeSchema, envelope);
  if (rng.chance(0.05)) envelopeBytes = mutateBytes(rng, envelopeBytes, 70_000, 2);
  const signature = sign(signer, concat([SHOUT_CONTEXT, envelopeBytes]));
  return seed(ShoutSchema, {
    envelope: envelopeBytes,
    signature,
    hops: rng.int(20),
    height: rng.weighted<() => number>([[6, () => rng.int(257)], [1, () => 256], [1, () => 0]])(),
  });
}

/**
 * A WHISPER: sealed (Noise X) or signed to the node, or to relay (to another
 * connected fuzz identity or nobody); the inner envelope is sometimes
 * mutated before it is signed and sealed, so that the outer layers hold.
 */
export async function whisperSeed(rng: Rng, ctx: SeedContext, dict: Dictionary): Promise<Seed> {
  const recipient = rng.weighted<() => Uint8Array>([
    [7, () => ctx.nodeKey],
    [ctx.peerKey ? 2 : 0, () => ctx.peerKey!],
    [1, () => rng.bytes(32)],
  ])();
  const sender = rng.chance(0.8) ? ctx.sender : rng.pick(ctx.signers);
  let envelope = create(WhisperEnvelopeSchema, {
    sender: sender.publicKey,
    recipient: rng.chance(0.95) ? recipient : rng.bytes(32),
    nonce: rng.u64(),
    timestampMs: BigInt(Date.now()),
    topic: rng.pick(["", "dm"]),
    body: rng.bytes(rng.length(500)),
  });
  if (rng.chance(0.3)) envelope = mutateMessage(rng, WhisperEnvelopeSchema, envelope, dict);
  const envelopeBytes = toBinary(WhisperEnvelopeSchema, envelope);
  let signature = sign(sender, concat([WHISPER_CONTEXT, envelopeBytes]));
  if (rng.chance(0.05)) signature = mutateBytes(rng, signature, 128, 1);
  const ttl = rng.weighted<() => number>([[6, () => 16], [2, () => rng.int(4)], [1, () => 0]])();
  if (rng.chance(0.3)) {
    return seed(WhisperSchema, {
      recipient,
      ttl,
      encrypted: false,
      envelope: envelopeBytes,
      signature,
    });
  }
  let sealed: Uint8Array = toBinary(
    SealedWhisperSchema,
    create(SealedWhisperSchema, { envelope: envelopeBytes, signature }),
  );
  if (rng.chance(0.1)) sealed = mutateBytes(rng, sealed, 70_000, 2);
  let message: Uint8Array;
  try {
    const handshake = createHandshake({
      pattern: "X",
      initiator: true,
      prologue: WHISPER_PROLOGUE_BYTES,
      staticKeyPair: x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(sender.secretKey)),
      remoteStaticPublicKey: x25519PublicKeyFromEd25519(
        recipient.length === 32 ? recipient : ctx.nodeKey,
      ),
    });
    message = await handshake.writeMessage(sealed.subarray(0, 65_000));
  } catch {
    message = rng.bytes(200);
  }
  return seed(WhisperSchema, { recipient, ttl, encrypted: true, envelope: message });
}

// ---- JSON Patch ----

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A random JSON value of at most about `budget.left` nodes; nesting stays shallow (see {@linkcode nested} for deep). */
export function randomJson(rng: Rng, depth = 0, budget = { left: 400 }): Json {
  budget.left--;
  if (depth > 4 || budget.left <= 0 || rng.chance(0.4)) {
    return rng.weighted<() => Json>([
      [2, () => null],
      [2, () => rng.chance(0.5)],
      [4, () => rng.pick([0, -0, 1, -1, 1.5, 2 ** 53, 2 ** 53 + 2, 1e300, -1e-300, rng.int(1000)])],
      [4, () => rng.pick(["", "a", "~", "/", "__proto__", "é", "x".repeat(rng.int(100))])],
    ])();
  }
  if (rng.chance(0.5)) {
    const n = rng.weighted<() => number>([[8, () => rng.int(4)], [1, () => rng.range(10, 200)]])();
    const out: Json[] = [];
    for (let i = 0; i < n && budget.left > 0; i++) out.push(randomJson(rng, depth + 1, budget));
    return out;
  }
  const out: { [k: string]: Json } = {};
  for (let i = rng.int(5); i > 0 && budget.left > 0; i--) {
    // An own member even when it is named __proto__ (as JSON.parse makes it).
    Object.defineProperty(
      out,
      rng.pick(["a", "b", "c", "0", "1", "__proto__", "constructor", "a/b", "m~n", ""]),
      {
        value: randomJson(rng, depth + 1, budget),
        enumerable: true,
        writable: true,
        configurable: true,
      },
    );
  }
  return out;
}

/** `[[...[x]...]]` nested `n` deep. */
export function nested(n: number): Json {
  let v: Json = 1;
  for (let i = 0; i < n; i++) v = rng1(i) ? [v] : { a: v };
  return v;
}

function rng1(i: number): boolean {
  return i % 3 !== 0;
}

function escape(token: string): string {
  return token.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** Every JSON Pointer into `doc` (the first few hundred). */
export function pointers(doc: Json, prefix = "", out: string[] = []): string[] {
  out.push(prefix);
  if (out.length > 300) return out;
  if (Array.isArray(doc)) {
    doc.forEach((v, i) => pointers(v, `${prefix}/${i}`, out));
  } else if (doc !== null && typeof doc === "object") {
    for (const [k, v] of Object.entries(doc)) pointers(v, `${prefix}/${escape(k)}`, out);
  }
  return out;
}

const BAD_POINTERS = [
  "a",
  "/~2",
  "/~",
  "/01",
  "/-1",
  "/1e3",
  "/ 1",
  "/-",
  "/-/0",
  "//",
  "/__proto__",
  "/__proto__/x",
  "/constructor/prototype",
  "/9007199254740993",
  "/4294967296",
  "/0".repeat(300),
  "/a".repeat(2000),
];

/** A JSON Patch operation list for `doc`: mostly applicable, sometimes malformed. */
export function jsonPatchOps(rng: Rng, doc: Json): unknown[] {
  const paths = pointers(doc);
  const path = () =>
    rng.weighted<() => string>([
      [6, () => rng.pick(paths)],
      [3, () => `${rng.pick(paths)}/${rng.pick(["-", "0", "1", "new", "x~1y", ""])}`],
      [1, () => rng.pick(BAD_POINTERS)],
    ])();
  const count = rng.weighted<() => number>([
    [40, () => rng.range(1, 4)],
    [8, () => rng.range(5, 50)],
    [1, () => rng.pick([0, 1023, 1024, 1025])],
  ])();
  const ops: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const op = rng.weighted<() => string>([
      [4, () => "add"],
      [2, () => "remove"],
      [3, () => "replace"],
      [2, () => "move"],
      [3, () => "copy"],
      [2, () => "test"],
      [1, () => rng.pick(["ADD", "", "delete", "_get"])],
    ])();
    const entry: Record<string, unknown> = { op, path: path() };
    if (op === "move" || op === "copy" || rng.chance(0.05)) entry.from = path();
    if (op === "add" || op === "replace" || op === "test" || rng.chance(0.05)) {
      const big = count <= 4 ? 1 : 0;
      entry.value = rng.weighted<() => unknown>([
        [8, () => randomJson(rng, 0, { left: count > 50 ? 3 : 40 })],
        [big, () => nested(rng.pick([200, 255, 256, 257, 300]))],
        [big, () => "y".repeat(rng.pick([1000, 70_000]))],
      ])();
    }
    if (rng.chance(0.03)) delete entry.path;
    if (rng.chance(0.02)) entry.path = rng.pick([5, null, [], {}]);
    ops.push(entry);
  }
  if (count > 100 && rng.chance(0.5)) {
    // Copy the root into itself over and over: the size bound must hold.
    return Array.from({ length: count }, (_, i) => ({
      op: "copy",
      from: i % 2 ? "" : "/a",
      path: `/a${i % 7}`,
    }));
  }
  return ops;
}

/** A JSON Patch as the text a peer would send, sometimes mangled as text. */
export function jsonPatchText(rng: Rng, doc: Json): string {
  const ops = jsonPatchOps(rng, doc);
  let text: string;
  try {
    text = JSON.stringify(ops);
  } catch {
    text = "[]";
  }
  if (text.length > 300_000) text = JSON.stringify(ops.slice(0, 8)).slice(0, 300_000);
  if (rng.chance(0.15)) {
    const bytes = mutateBytes(rng, encoder.encode(text), 1 << 20, 3);
    text = new TextDecoder().decode(bytes);
  } else if (rng.chance(0.05)) {
    text = rng.pick(["", "{}", "null", "[1]", "[[]]", '{"op":"add"}', "[" + "[".repeat(5000)]);
  }
  return text;
}

/** Splices against a value of `length` bytes: mostly in range, sometimes past it or huge. */
export function spliceList(
  rng: Rng,
  length: number,
): { offset: bigint; deleteCount: bigint; insert: Uint8Array }[] {
  const count = rng.weighted<() => number>([
    [40, () => rng.range(1, 4)],
    [8, () => rng.range(5, 60)],
    [1, () => rng.pick([0, 1024, 1025])],
  ])();
  const out = [];
  let current = length;
  for (let i = 0; i < count; i++) {
    const offset = rng.weighted<() => bigint>([
      [8, () => BigInt(rng.int(current + 1))],
      [1, () => BigInt(current + rng.range(1, 3))],
      [1, () => rng.pick(EDGE_VARINTS)],
    ])();
    const room = offset <= BigInt(current) ? current - Number(offset) : 0;
    const deleteCount = rng.weighted<() => bigint>([
      [8, () => BigInt(rng.int(room + 1))],
      [1, () => BigInt(room + 1)],
      [1, () => rng.pick(EDGE_VARINTS)],
    ])();
    const insert = rng.weighted<() => Uint8Array>([
      [60, () => rng.bytes(rng.length(64))],
      [1, () => new Uint8Array(rng.pick([1000, 65_536]))],
    ])();
    out.push({ offset, deleteCount, insert });
    if (offset <= BigInt(current) && deleteCount <= BigInt(room)) {
      current += insert.length - Number(deleteCount);
    }
  }
  return out;
}

/** A DHT_PATCH request against a base value, with the right hash when the patch applies. */
export function patchSeed(rng: Rng, ctx: SeedContext): Seed {
  const base = ctx.bases.length > 0 ? rng.pick(ctx.bases) : undefined;
  const key = base?.key ?? key32(rng, ctx);
  const baseVersion = base && rng.chance(0.9) ? base.version : version(rng);
  const newVersion = rng.chance(0.9) && baseVersion < 2n ** 64n - 1n
    ? baseVersion + 1n
    : version(rng);
  const json = base ? (rng.chance(0.9) ? base.json : !base.json) : rng.chance(0.5);
  const value = base?.value ?? new Uint8Array(0);
  let jsonPatch = "";
  let splices: { offset: bigint; deleteCount: bigint; insert: Uint8Array }[] = [];
  let result: Uint8Array | undefined;
  if (json) {
    let doc: Json = null;
    try {
      doc = JSON.parse(new TextDecoder().decode(value));
    } catch {
      // Not JSON: the patch will not apply.
    }
    jsonPatch = jsonPatchText(rng, doc);
    try {
      result = applyJsonPatchToBytes(value, JSON.parse(jsonPatch) as JsonPatchOperation[], 65_536);
    } catch {
      result = undefined;
    }
  } else {
    splices = spliceList(rng, value.length);
    try {
      const max = BigInt(Number.MAX_SAFE_INTEGER);
      result = applySplices(
        value,
        splices.map((s) => {
          if (s.offset > max || s.deleteCount > max) throw new RangeError("out of range");
          return { offset: Number(s.offset), deleteCount: Number(s.deleteCount), insert: s.insert };
        }),
        65_536,
      );
    } catch {
      result = undefined;
    }
  }
  const valueHash = result && rng.chance(0.95) ? sha256(result) : rng.bytes(32);
  const owner = base?.owner;
  const signature = owner && newVersion < 2n ** 64n
    ? sign(owner, recordSigningBytes(key, newVersion, valueHash))
    : new Uint8Array(0);
  const format = rng.weighted<() => number>([
    [20, () => (json ? PatchFormat.JSON_PATCH : PatchFormat.BYTE_SPLICE)],
    [1, () => rng.pick([0, 3, 99])],
  ])();
  const patch = create(PatchSchema, {
    baseVersion,
    version: newVersion,
    format,
    jsonPatch,
    splices,
    valueHash,
    signature,
  });
  const proposal = rng.chance(0.9) ? rng.bytes(16) : rng.bytes(rng.pick([0, 15, 17]));
  remember(ctx, proposal);
  return seed(PatchRequestSchema, {
    key,
    patch,
    proposal,
    owner: owner?.publicKey ?? new Uint8Array(0),
    ttlMs: rng.chance(0.8) ? 0n : rng.pick(EDGE_VARINTS),
  });
}

function remember(ctx: SeedContext, proposal: Uint8Array): void {
  ctx.proposals.push(proposal);
  if (ctx.proposals.length > 64) ctx.proposals.shift();
}

/** A transport address, mostly well formed: loopback (dialled back), other hosts, wildcards, junk. */
function addressSeed(rng: Rng): string {
  return rng.weighted<() => string>([
    [4, () => `127.0.0.1:${rng.int(65536)}`],
    [2, () => `10.${rng.int(256)}.0.${rng.int(256)}:${rng.int(65536)}`],
    [1, () => rng.pick(["0.0.0.0:4000", "[::]:4000", "127.0.0.1:0", "mem:0", "[::1]:1"])],
    [1, () => rng.pick(["", ":", "host", "1.2.3.4:99999", "x".repeat(rng.int(600))])],
  ])();
}

/** A seed for `opcode` (a protocol or application opcode), for the opcode targets. */
export async function opcodeSeed(
  rng: Rng,
  opcode: number,
  ctx: SeedContext,
  dict: Dictionary,
): Promise<Seed | undefined> {
  switch (opcode) {
    case 0:
      return seed(AckSchema, {
        opcode: rng.pick([2, 6, 4, 7, 9, 64]),
        data: rng.bytes(rng.length(100)),
      });
    case 1:
      return seed(NackSchema, {
        opcode: rng.pick([2, 6, 4]),
        reason: rng.int(16),
        message: "no",
        data: rng.bytes(rng.length(64)),
      });
    case 2:
      return seed(PingSchema, { data: rng.bytes(rng.pick([0, 8, 63, 64, 65, rng.length(2000)])) });
    case 3:
      return seed(SetConnectionOptSchema, {
        option: rng.weighted<() => number>([[5, () => rng.int(2)], [1, () => rng.pick([2, 99])]])(),
        setting: rng.weighted<() => number>([[5, () => rng.int(5)], [
          1,
          () => rng.pick([5, 99, 2 ** 32 - 1]),
        ]])(),
      });
    case 4:
      return shoutSeed(rng, ctx, dict);
    case 5:
      return seed(SpeakSchema, {
        topic: rng.pick(["", "chat", "x".repeat(rng.int(500))]),
        body: rng.bytes(rng.length(4000)),
        ttl: rng.int(4),
      });
    case 6:
      return await whisperSeed(rng, ctx, dict);
    case 7:
      return seed(FindNodeRequestSchema, { target: key32(rng, ctx) });
    case 8:
      return seed(FindValueRequestSchema, { key: key32(rng, ctx) });
    case 9:
      return seed(StoreRequestSchema, { record: recordSeed(rng, ctx) });
    case 16:
      return seed(KeepaliveSchema, {});
    case 17:
      return seed(DisconnectSchema, { reason: rng.int(10), message: "bye" });
    case 19:
      return seed(MetricsRequestSchema, { includeConnections: rng.chance(0.5) });
    case 20:
      return seed(IdentifySchema, {
        listenAddrs: Array.from({ length: rng.int(12) }, () => addressSeed(rng)),
        acceptsInbound: rng.chance(0.5),
        observedAddr: rng.chance(0.7) ? addressSeed(rng) : "",
      });
    case 18:
      return seed(
        RelayRequestSchema,
        rng.weighted<() => Record<string, unknown>>([
          [4, () => ({ kind: { case: "reserve", value: {} } })],
          [
            2,
            () => ({
              kind: { case: "connect", value: { target: rng.bytes(rng.pick([32, 31, 0])) } },
            }),
          ],
          [2, () => ({
            kind: {
              case: "incoming",
              value: { circuitId: rng.bytes(16), from: rng.bytes(32) },
            },
          })],
          [
            1,
            () => ({
              kind: { case: "accept", value: { circuitId: rng.bytes(rng.pick([16, 0])) } },
            }),
          ],
          [1, () => ({})],
        ])(),
      );
    case 22:
      return seed(RelayDataSchema, { data: rng.bytes(rng.length(4096)) });
    case 23:
      return seed(
        HolePunchSchema,
        rng.weighted<() => Record<string, unknown>>([
          [4, () => ({
            kind: {
              case: "connect",
              value: {
                addrs: Array.from({ length: rng.int(10) }, () => addressSeed(rng)),
                windowMs: rng.pick([0, 1, 1_000, 60_000, 60_001, 0xffffffff]),
              },
            },
          })],
          [2, () => ({ kind: { case: "sync", value: {} } })],
          [1, () => ({})],
        ])(),
      );
    case 21:
      return seed(DialBackRequestSchema, {
        addrs: Array.from({ length: rng.int(6) }, () => addressSeed(rng)),
        nonce: rng.chance(0.9) ? rng.bytes(16) : rng.bytes(rng.pick([0, 15, 17, 64])),
      });
    case 64: {
      const phase = rng.weighted<() => number>([[4, () => 1], [3, () => 2], [2, () => 3], [
        1,
        () => rng.pick([0, 4, 99]),
      ]])();
      const proposal = phase !== 1 && ctx.proposals.length > 0 && rng.chance(0.7)
        ? rng.pick(ctx.proposals)
        : rng.bytes(rng.chance(0.95) ? 16 : rng.pick([0, 15, 17]));
      if (phase === 1) remember(ctx, proposal);
      const record = recordSeed(rng, ctx, rng.pick(ctx.keys));
      return seed(CasRequestSchema, {
        record,
        expectedVersion: rng.chance(0.6) ? record.version - 1n : version(rng),
        proposal,
        phase,
      });
    }
    case 65:
      return seed(LockRequestSchema, {
        key: key32(rng, ctx),
        ttlMs: rng.weighted<() => bigint>([
          [5, () => 0n],
          [3, () => BigInt(rng.range(1, 300_000))],
          [1, () => rng.pick(EDGE_VARINTS)],
        ])(),
        fencingToken: rng.chance(0.7) ? 0n : BigInt(rng.int(10)),
        minFencingToken: rng.chance(0.7) ? 0n : rng.pick(EDGE_VARINTS),
      });
    case 66:
      return seed(UnlockRequestSchema, {
        key: key32(rng, ctx),
        fencingToken: rng.chance(0.5) ? 0n : BigInt(rng.int(10)),
      });
    case 67:
      return patchSeed(rng, ctx);
    case 68: {
      const base = ctx.bases.length > 0 && rng.chance(0.7) ? rng.pick(ctx.bases) : undefined;
      return seed(ChangesRequestSchema, {
        key: base?.key ?? key32(rng, ctx),
        sinceVersion: base && rng.chance(0.7)
          ? BigInt(rng.int(Number(base.version) + 2))
          : version(rng),
      });
    }
    case 1000:
    case 1001:
      return seed(StringValueSchema, {
        value: rng.pick(["hi", "", "ß", "x".repeat(rng.length(5000))]),
      });
  }
  return undefined;
}
