/**
 * The fuzz targets. Live ones talk to the node process over real TCP
 * connections: frames with each opcode of the registry (and unknown
 * opcodes, and compressed payloads) over authenticated connections in
 * batches, handshake messages 1 and 3 to it as a responder, message 2 to it
 * as an initiator (it dials the campaign), transport messages with bad
 * lengths and tags, and raw frame streams. Local ones (`_local.ts`) run in a
 * worker under a watchdog.
 *
 * Every input is generated from `Rng.forInput(seed, target, index)`, so one
 * can be regenerated from its index (`--replay`).
 *
 * @module
 */
import { create, type DescMessage, fromBinary, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { PingSchema } from "../../lib/protocol.ts";
import {
  CasRequestSchema,
  FindNodeRequestSchema,
  RecordSchema,
  StoreRequestSchema,
} from "../../lib/protocol.ts";
import { AckSchema, NackSchema, Opcode } from "../../lib/protocol.ts";
import { HandshakePayloadSchema } from "../../lib/protocol.ts";
import { MetricsRequestSchema } from "../../lib/protocol.ts";
import { WhisperSchema } from "../../lib/protocol.ts";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import type { Identity, Transport } from "../../mod.ts";
import { compress, PROLOGUE, PROTOCOL_OPCODES } from "../../protocol.ts";
import {
  type CipherState,
  createHandshake,
  generateX25519KeyPair,
} from "../../lib/secure/noise.ts";
import type { ByteStream } from "../../lib/transport/types.ts";
import {
  frameBytes,
  framed,
  type FrameSession,
  FrameSession as Session,
  type FuzzIdentity,
  handshakePayload,
  Outcomes,
  rawInitiator,
  RawReader,
  sleep,
  within,
} from "./_harness.ts";
import { type Dictionary, generateBytes, mutateMessage, tryEncode } from "./_generate.ts";
import { concat, mutateBytes, mutateProto, toHex } from "./_mutate.ts";
import { Rng } from "./_rng.ts";
import { type DhtBase, opcodeSeed, type Seed, type SeedContext } from "./_seeds.ts";

const encoder = new TextEncoder();

/** How many inputs a run may take, and until when. */
export interface Budget {
  /** Input indexes 0 … inputs − 1. */
  inputs: number;
  /** `Date.now()` after which the run stops. */
  until: number;
}

/** A crash, hang or broken invariant, with what reproduces it. */
export interface Finding {
  /** The target. */
  target: string;
  /** What kind. */
  kind: "crash" | "hang" | "internal" | "violation";
  /** The input's index, when known. */
  index?: number;
  /** The indexes of the batch it came in, when the input is not known. */
  range?: [number, number];
  /** What happened. */
  message: string;
  /** A stack trace, where there is one. */
  stack?: string;
  /** The input (hex, at most 4 KiB), when known. */
  input?: string;
}

/** One target's run: what it counted. */
export class TargetRun {
  /** The target. */
  readonly name: string;
  /** Inputs fed. */
  inputs = 0;
  /** Inputs fed to the live node (the rest ran in process). */
  liveInputs = 0;
  /** Crashes (and INTERNAL NACKs, and broken invariants). */
  crashes = 0;
  /** Hangs. */
  hangs = 0;
  /** Replies and results, counted by kind. */
  readonly outcomes: Outcomes = new Outcomes();
  /** What was found. */
  readonly findings: Finding[] = [];
  /** The input indexes in flight (for attributing a crash report). */
  range: [number, number] = [0, 0];
  /** Fuzz connections opened so far. */
  sessions = 0;

  /** Creates an empty run of `name`. */
  constructor(name: string) {
    this.name = name;
  }

  /** Records a finding. */
  add(finding: Omit<Finding, "target">): void {
    if (finding.kind === "hang") this.hangs++;
    else this.crashes++;
    if (this.findings.length < 50) this.findings.push({ target: this.name, ...finding });
  }
}

/** The node under test as the targets see it: the child process, or a node over a memory transport. */
export interface NodeUnderTest {
  /** Its address (base58). */
  readonly address: string;
  /** Its public key. */
  readonly publicKey: Uint8Array;
  /** Where it listens (`127.0.0.1:PORT` or `mem:NAME`). */
  readonly tcp: string;
  /** Whether it has died. */
  readonly exited: boolean;
  /** Makes it dial `peerAddress` (and close the connection if it succeeds). */
  dial(peerAddress: string): Promise<{ ok: boolean; error?: string }>;
}

/** What the live targets share. */
export interface Campaign {
  /** The campaign seed. */
  seed: number;
  /** The node under test (replaced if it dies). */
  node: NodeUnderTest;
  /** Dials and listens for the fuzz connections (closed at the end). */
  transport: Transport;
  /** Identities that pass the node's puzzle (difficulty 8). */
  ids: FuzzIdentity[];
  /** Identities that do not. */
  weak: FuzzIdentity[];
  /** Signers of SHOUTs and owners of records. */
  signers: Identity[];
  /** DHT keys shared by the DHT targets. */
  keys: Uint8Array[];
  /** A batch or connection that does not finish within this many ms is a hang. */
  hangMs: number;
  /** Connections in flight in the connection targets. */
  concurrency: number;
  /** The next identity to connect as (round robin, so no two connections of one identity overlap). */
  nextId(): FuzzIdentity;
  /** Restarts the node after it died. */
  restart(): Promise<void>;
}

/** A target: where it runs and how. */
export interface TargetDef {
  /** Its name (`--target`). */
  name: string;
  /** What it feeds. */
  about: string;
  /** The live part: feeds inputs `[from, budget.inputs)` to the node. */
  live?: (c: Campaign, run: TargetRun, budget: Budget, from: number) => Promise<void>;
  /**
   * What feeds the inputs the live part does not: `"local"`, the in-process
   * parser drive of `_local.ts`; `"memory"`, the same live part against a
   * node in the worker over a memory transport (the fast path of the
   * connection targets, whose every input costs a handshake). Both run in
   * workers under a watchdog.
   */
  rest?: "local" | "memory";
  /** The share of the inputs fed to the node process over TCP when `rest` is set. */
  liveShare?: number;
}

// ---- helpers ----

function normalize(message: string): string {
  return message
    .replace(/[1-9A-HJ-NP-Za-km-z]{43,44}/g, "<addr>")
    .replace(/[0-9a-f]{16,}/g, "<hex>")
    .replace(/\d+(\.\d+)?/g, "N")
    .replace(/Noise handshake with \S+/g, "handshake")
    .slice(0, 110);
}

function idFor(index: number): number {
  return (index % 0xffff_ff00) + 1;
}

export function dictionary(c: Campaign, extra: Uint8Array[] = []): Dictionary {
  return {
    bytes: [c.node.publicKey, sha256(c.node.publicKey), ...c.keys.slice(0, 8), ...extra],
    strings: [c.node.address, c.node.tcp, `${c.node.address}@${c.node.tcp}`, "127.0.0.1:1"],
  };
}

function seedContext(c: Campaign, sender: FuzzIdentity, bases: DhtBase[] = []): SeedContext {
  return {
    nodeKey: c.node.publicKey,
    sender: sender.identity,
    signers: c.signers,
    keys: c.keys,
    bases,
    proposals: [],
    dict: dictionary(c),
  };
}

/** A payload for `seed`: as built, field-mutated, wire-mutated, byte-mutated, generated or garbage. */
function payloadOf(rng: Rng, s: Seed, dict: Dictionary): Uint8Array {
  const schema = s.schema;
  const valid = () => tryEncode(schema, s.message) ?? new Uint8Array(0);
  const mutated = () => {
    try {
      return tryEncode(schema, mutateMessage(rng, schema, s.message, dict)) ?? valid();
    } catch {
      return valid(); // a seed with a value out of its type's range cannot be cloned
    }
  };
  return rng.weighted<() => Uint8Array>([
    [30, valid],
    [25, mutated],
    [20, () => mutateProto(rng, valid())],
    [10, () => mutateBytes(rng, valid())],
    [10, () => generateBytes(rng, schema, dict)],
    [5, () => rng.bytes(rng.length(70_000))],
  ])();
}

/** Envelope flags for a payload: mostly none, sometimes a valid compressed form, sometimes odd bits. */
function envelope(
  rng: Rng,
  payload: Uint8Array,
): { payload: Uint8Array; flags: number; compression: number } {
  const roll = rng.float();
  if (roll < 0.03 && payload.length < 20_000) {
    const setting = rng.chance(0.1) ? 2 : rng.pick([0, 1, 3, 4]);
    if (setting !== 2 || payload.length < 2000) {
      return { payload: compress(setting, payload), flags: 1, compression: setting };
    }
  }
  if (roll < 0.04) return { payload, flags: rng.pick([2, 4, 0x8000_0000]), compression: 0 };
  if (roll < 0.045) return { payload, flags: 0, compression: rng.int(6) };
  return { payload, flags: 0, compression: 0 };
}

// ---- frames over authenticated connections ----

const BATCH_BYTES = 192 * 1024;
const BATCH_FRAMES = 1500;

interface FrameDriver {
  /** The next input's encoded frame(s). */
  make(rng: Rng, index: number): Uint8Array | Promise<Uint8Array>;
  /** Called with each new session (to set up state). */
  opened?(session: FrameSession): Promise<void>;
  /** Answers the node's requests. */
  onRequest?: (frame: import("../../mod.ts").Frame, session: FrameSession) => void;
}

async function openSession(
  c: Campaign,
  run: TargetRun,
  onRequest?: FrameDriver["onRequest"],
  id = c.nextId(),
): Promise<FrameSession> {
  // What each connection announces is part of the input: half prefer a compression
  // (so the node compresses its replies to them with it), as a peer may.
  const rng = Rng.forInput(c.seed, `${run.name}/session`, run.sessions++);
  const preferredCompression = rng.chance(0.5) ? rng.int(5) : undefined;
  for (let attempt = 0;; attempt++) {
    try {
      const session = await Session.open(c.node, id, {
        outcomes: run.outcomes,
        onRequest,
        transport: c.transport,
        preferredCompression,
      });
      if (preferredCompression !== undefined) {
        run.outcomes.add(`connection preferring compression ${preferredCompression}`);
      }
      return session;
    } catch (err) {
      if (c.node.exited) await c.restart();
      if (attempt >= 20) throw err;
      await sleep(100 * (attempt + 1));
      id = c.nextId();
    }
  }
}

/** Drains INTERNAL NACKs into findings (their ids name the inputs). */
function collectInternal(
  run: TargetRun,
  regenerate: (index: number) => Promise<Uint8Array>,
): Promise<void> {
  // A relay passes the next hop's NACK reason on ("WHISPER to … got NACK INTERNAL"): when
  // the next hop is the fuzzer itself, that reason is the fuzzer's, not an exception.
  const internal = run.outcomes.internal.splice(0).filter((n) =>
    !/got NACK INTERNAL/.test(n.message)
  );
  return Promise.all(internal.map(async ({ id, opcode, message }) => {
    const index = id - 1;
    const known = index >= run.range[0] - BATCH_FRAMES * 2 && index < run.range[1];
    run.add({
      kind: "internal",
      index: known ? index : undefined,
      range: known ? undefined : run.range,
      message: `NACK INTERNAL for ${Opcode[opcode] ?? opcode}: ${message}`,
      input: known ? toHex((await regenerate(index)).subarray(0, 4096)) : undefined,
    });
  })).then(() => {});
}

async function driveFrames(
  c: Campaign,
  run: TargetRun,
  budget: Budget,
  from: number,
  driver: FrameDriver,
): Promise<void> {
  let session = await openSession(c, run, driver.onRequest);
  await driver.opened?.(session);
  let index = from;
  let inFlight:
    | { probe: Promise<string>; range: [number, number]; session: FrameSession }
    | undefined;
  let batches = 0;
  const regenerate = async (i: number) => await driver.make(Rng.forInput(c.seed, run.name, i), i);
  const settle = async () => {
    if (!inFlight) return;
    const { probe, range, session: s } = inFlight;
    inFlight = undefined;
    const result = await probe;
    run.inputs += range[1] - range[0];
    run.liveInputs += range[1] - range[0];
    await collectInternal(run, regenerate);
    if (result === "timeout") {
      run.add({
        kind: "hang",
        range,
        message: `the node did not answer a PING sent after inputs ${range[0]}–${
          range[1] - 1
        } within ${c.hangMs} ms`,
      });
    }
    if (result !== "answered") {
      if (result === "closed") run.outcomes.add(`connection ended: ${normalize(s.closedBy ?? "")}`);
      await s.close();
      if (s === session) {
        session = await openSession(c, run, driver.onRequest);
        await driver.opened?.(session);
      }
    }
  };
  try {
    while (index < budget.inputs && (index === from || Date.now() < budget.until)) {
      const start = index;
      while (
        session.queuedBytes < BATCH_BYTES && index - start < BATCH_FRAMES && index < budget.inputs
      ) {
        session.write([await driver.make(Rng.forInput(c.seed, run.name, index), index)]);
        index++;
      }
      await settle();
      if (!session.open) {
        // Closed while this batch was made: make it again on a new connection.
        index = start;
        await session.close();
        session = await openSession(c, run, driver.onRequest);
        await driver.opened?.(session);
        continue;
      }
      run.range = [start, index];
      inFlight = { probe: session.probe(c.hangMs), range: [start, index], session };
      if (++batches % 40 === 0) {
        // A new connection now and then: new announced settings, new per-peer shares.
        await settle();
        await session.close();
        session = await openSession(c, run, driver.onRequest);
        await driver.opened?.(session);
      }
    }
    await settle();
  } finally {
    await session.close();
  }
}

/** Frames of one protocol or application opcode, payloads from seeds and schemas. */
function opcodeTarget(opcode: number, name: string, schema: DescMessage): TargetDef {
  return {
    name: `op.${name}`,
    about: `${name} frames (opcode ${opcode}): ${schema.typeName} payloads, valid and mutated`,
    live: async (c, run, budget, from) => {
      const sender = c.ids[0];
      const ctx = seedContext(c, sender, []);
      const dict = ctx.dict;
      const pool: Seed[] = [];
      const poolRng = Rng.forInput(c.seed, `${run.name}/pool`, 0);
      for (let i = 0; i < 256; i++) pool.push((await opcodeSeed(poolRng, opcode, ctx, dict))!);
      let bases: DhtBase[] = [];
      // A second connection, a leaf that answers what it is sent: the node has
      // someone to forward SHOUTs to and to relay WHISPERs to (ctx.peerKey).
      const companion = opcode === Opcode.SHOUT || opcode === Opcode.WHISPER
        ? await openSession(c, run)
        : undefined;
      if (companion) ctx.peerKey = companion.channel.local.identityKey;
      try {
        await driveFrames(c, run, budget, from, {
          opened: async (session) => {
            ctx.sender = sessionIdentity(c, session);
            if (opcode === Opcode.FIND_VALUE || opcode === Opcode.DHT_CHANGES) {
              // Large values under the shared keys, so that replies are large too.
              const rng = Rng.forInput(c.seed, `${run.name}/large`, run.sessions);
              for (let i = 0; i < 6; i++) {
                const value = i % 2
                  ? rng.bytes(rng.range(30_000, 65_000))
                  : new Uint8Array(rng.range(30_000, 65_000)).fill(i);
                const record = create(RecordSchema, {
                  key: c.keys[i],
                  value,
                  version: BigInt(Date.now()),
                });
                session.write([
                  frameBytes(
                    Opcode.STORE,
                    0xffff_3000 + i,
                    toBinary(StoreRequestSchema, create(StoreRequestSchema, { record })),
                  ),
                ]);
              }
              await session.probe(c.hangMs);
            }
            if (opcode === Opcode.DHT_PATCH || opcode === Opcode.DHT_CHANGES) {
              bases = await storeBases(c, session, run.name);
              ctx.bases.splice(0, ctx.bases.length, ...bases);
            }
          },
          make: async (rng, index) => {
            const s = rng.chance(0.8)
              ? rng.pick(pool)
              : (await opcodeSeed(rng, opcode, ctx, dict))!;
            const e = envelope(rng, payloadOf(rng, s, dict));
            const id = rng.weighted<() => number>([
              [85, () => idFor(index)],
              [10, () => 0],
              [5, () => rng.pick([0xffff_ffff, idFor(index - 1), 1])],
            ])();
            return frameBytes(opcode, id, e.payload, e.flags, e.compression);
          },
        });
      } finally {
        await companion?.close();
      }
    },
  };
}

function sessionIdentity(c: Campaign, session: FrameSession): Identity {
  const key = session.channel.local.identityKey;
  return (c.ids.find((id) => bytesEqual(id.identity.publicKey, key)) ?? c.ids[0]).identity;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Stores the values DHT_PATCH and DHT_CHANGES patch (JSON and binary, open
 * and owned), commits three real patches to some so they have a history,
 * and returns what the node holds.
 */
async function storeBases(c: Campaign, session: FrameSession, name: string): Promise<DhtBase[]> {
  const rng = Rng.forInput(c.seed, `${name}/bases`, 0);
  const bases: DhtBase[] = [];
  const stamp = Date.now().toString(36);
  for (let i = 0; i < 48; i++) {
    const key = sha256(encoder.encode(`fuzz base ${c.seed} ${name} ${stamp} ${i}`));
    const json = i % 2 === 0;
    const value = json
      ? encoder.encode(
        JSON.stringify({ a: [1, 2, { b: "c" }], n: i, s: "x".repeat(i * 3), o: { p: { q: [] } } }),
      )
      : rng.bytes(rng.range(0, 2000));
    const owner = i % 3 === 0 ? rng.pick(c.signers) : undefined;
    const record = create(RecordSchema, { key, value, version: 1n, ttlMs: 3_600_000n });
    if (owner) {
      const { recordSigningBytes } = await import("../../lib/dht/record.ts");
      const { sign } = await import("../../lib/identity/keys.ts");
      record.owner = owner.publicKey;
      record.signature = sign(owner, recordSigningBytes(key, 1n, sha256(value)));
    }
    session.write([
      frameBytes(
        Opcode.STORE,
        0xffff_0000 + i,
        toBinary(StoreRequestSchema, create(StoreRequestSchema, { record })),
      ),
    ]);
    bases.push({ key, version: 1n, value, json, owner });
  }
  await session.probe(c.hangMs);
  // A history for DHT_CHANGES: three committed patches on every fourth value.
  const { patchSeed } = await import("./_seeds.ts");
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < bases.length; i += 4) {
      const base = bases[i];
      const ctx: SeedContext = {
        nodeKey: c.node.publicKey,
        sender: c.ids[0].identity,
        signers: c.signers,
        keys: c.keys,
        bases: [base],
        proposals: [],
        dict: dictionary(c),
      };
      let request;
      let result: Uint8Array | undefined;
      for (let tries = 0; tries < 50 && result === undefined; tries++) {
        request = patchSeed(rng, ctx)
          .message as import("../../lib/protocol.ts").PatchRequest;
        if (
          request.patch!.baseVersion !== base.version ||
          request.patch!.version !== base.version + 1n
        ) {
          continue;
        }
        const { applyPatch } = await import("../../lib/dht/patch.ts");
        try {
          result = applyPatch(base.value, request.patch!, 65_536);
          if (!bytesEqual(sha256(result), request.patch!.valueHash)) result = undefined;
        } catch {
          result = undefined;
        }
      }
      if (!request || result === undefined) continue;
      session.write([frameBytes(
        Opcode.DHT_PATCH,
        0xffff_1000 + i,
        toBinary(
          (await import("../../lib/protocol.ts")).PatchRequestSchema,
          request,
        ),
      )]);
      const commit = create(CasRequestSchema, {
        record: create(RecordSchema, { key: base.key }),
        proposal: request.proposal,
        phase: 2,
      });
      session.write([
        frameBytes(Opcode.DHT_CAS, 0xffff_2000 + i, toBinary(CasRequestSchema, commit)),
      ]);
      base.version += 1n;
      base.value = result;
    }
    await session.probe(c.hangMs);
  }
  return bases;
}

/** Unknown opcodes (unassigned protocol values, unregistered application ones). */
const unknownTarget: TargetDef = {
  name: "op.unknown",
  about: "frames with opcodes nobody registered (10–15, 20–63, 69–999, ≥ 1002, 2^32 − 1)",
  live: async (c, run, budget, from) => {
    const schemas = PROTOCOL_OPCODES.map((s) => s.request);
    const dict = dictionary(c);
    await driveFrames(c, run, budget, from, {
      make: (rng, index) => {
        const opcode = rng.weighted<() => number>([
          [3, () => rng.range(10, 15)],
          [3, () => rng.range(20, 63)],
          [3, () => rng.range(69, 999)],
          [3, () => rng.range(1002, 100_000)],
          [1, () => rng.pick([2 ** 31, 2 ** 32 - 2, 2 ** 32 - 1])],
        ])();
        const payload = rng.chance(0.5)
          ? generateBytes(rng, rng.pick(schemas), dict)
          : rng.bytes(rng.length(4000));
        const e = envelope(rng, payload);
        return frameBytes(
          opcode,
          rng.chance(0.7) ? idFor(index) : 0,
          e.payload,
          e.flags,
          e.compression,
        );
      },
    });
  },
};

/** Compressed payloads: every setting, valid and broken streams, bombs, unknown settings. */
const compressedTarget: TargetDef = {
  name: "op.compressed",
  about: "FRAME_FLAG_COMPRESSED frames of every opcode: broken streams, bombs, unknown settings",
  live: async (c, run, budget, from) => {
    const sender = c.ids[0];
    const ctx = seedContext(c, sender);
    const dict = ctx.dict;
    const opcodes = [
      ...PROTOCOL_OPCODES.map((s) => s.opcode).filter((o) => o !== Opcode.DISCONNECT),
      1000,
    ];
    const packed = new Map<number, Uint8Array[]>();
    const rng0 = Rng.forInput(c.seed, `${run.name}/pool`, 0);
    for (const setting of [0, 1, 2, 3, 4]) {
      const list: Uint8Array[] = [];
      for (let i = 0; i < 24; i++) {
        const opcode = rng0.pick(opcodes);
        const s = await opcodeSeed(rng0, opcode, ctx, dict);
        const raw = s ? tryEncode(s.schema, s.message) ?? new Uint8Array(10) : new Uint8Array(10);
        list.push(compress(setting, raw));
      }
      list.push(compress(setting, new Uint8Array(setting === 2 ? 1 << 21 : 3 << 20))); // a bomb
      packed.set(setting, list);
    }
    await driveFrames(c, run, budget, from, {
      opened: (session) => {
        ctx.sender = sessionIdentity(c, session);
        return Promise.resolve();
      },
      make: (rng, index) => {
        const opcode = rng.pick(opcodes);
        const setting = rng.weighted<() => number>([[20, () => rng.int(5)], [
          1,
          () => rng.pick([5, 99, 2 ** 31]),
        ]])();
        const sample = rng.pick(packed.get(setting % 5 === setting ? setting : 0)!);
        const payload = rng.weighted<() => Uint8Array>([
          [45, () => mutateBytes(rng, sample, 80_000, 3)],
          [15, () => sample],
          [10, () => sample.subarray(0, rng.int(sample.length))],
          [10, () => concat([sample, rng.bytes(rng.range(1, 20))])],
          [10, () => rng.bytes(rng.length(3000))],
          [10, () => rng.pick(packed.get(rng.int(5))!)],
        ])();
        const flags = rng.chance(0.95) ? 1 : rng.pick([3, 0xffff_ffff]);
        return frameBytes(opcode, rng.chance(0.8) ? idFor(index) : 0, payload, flags, setting);
      },
    });
  },
};

/**
 * ACK or NACK frames from the peer: a second connection B answers, with a
 * fuzzed ACK or NACK, the WHISPERs the node relays to it from connection A
 * (so the replies settle real requests and their data is decoded by the
 * node), and sends some with ids the node never used.
 */
/** Triggers per round: below the node's 1024 requests in flight per connection. */
const ROUND = 900;

function replyTarget(kind: "ACK" | "NACK"): TargetDef {
  const opcode = kind === "ACK" ? Opcode.ACK : Opcode.NACK;
  return {
    name: `op.${kind}`,
    about:
      `${kind} frames answering the node's own requests (relayed WHISPERs) and unsolicited ones`,
    live: async (c, run, budget, from) => {
      const dict = dictionary(c);
      let next = from;
      let replies = 0;
      const bSeed = c.nextId();
      const ctx = seedContext(c, bSeed);
      const reply = async (
        rng: Rng,
        requestId: number,
        requestOpcode: number,
      ): Promise<Uint8Array> => {
        const s = (await opcodeSeed(rng, opcode, ctx, dict))!;
        const message = s.message as Record<string, unknown>;
        message.opcode = rng.chance(0.8) ? requestOpcode : rng.int(70);
        if (kind === "ACK" && rng.chance(0.6)) {
          message.data = rng.weighted<() => Uint8Array>([
            [3, () => toBinary(WhisperSchema, create(WhisperSchema, {}))],
            [
              5,
              () =>
                mutateProto(
                  rng,
                  Uint8Array.from([0x0a, 0x20, ...rng.bytes(32), 0x10, rng.int(128)]),
                ),
            ],
            [
              2,
              () =>
                Uint8Array.from([0x0a, 0x20, ...rng.bytes(32), 0x10, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            ],
          ])();
        }
        const id = rng.chance(0.97) ? requestId : rng.pick([0, requestId + 1, 0xffff_ffff]);
        return frameBytes(opcode, id, payloadOf(rng, s, dict));
      };
      const b = await openSession(c, run, (frame, session) => {
        if (next >= budget.inputs) {
          session.send([frameBytes(Opcode.ACK, frame.id, new Uint8Array(0))]);
        } else {
          const index = next++;
          replies++;
          run.range = [index, index + 1];
          const rng = Rng.forInput(c.seed, run.name, index);
          void reply(rng, frame.id, frame.opcode).then((bytes) => {
            session.send([bytes]);
            if (rng.chance(0.1)) {
              session.write([
                frameBytes(
                  opcode,
                  rng.u32(),
                  payloadOf(
                    rng,
                    {
                      schema: kind === "ACK" ? AckSchema : NackSchema,
                      message: create(kind === "ACK" ? AckSchema : NackSchema, {}),
                      valid: true,
                    } as unknown as Seed,
                    dict,
                  ),
                ),
              ]);
            }
          });
        }
      }, bSeed);
      const bKey = b.channel.local.identityKey;
      let a = await openSession(c, run);
      let trigger = 0;
      try {
        while (next < budget.inputs && (next === from || Date.now() < budget.until)) {
          if (!b.open) break;
          if (!a.open) {
            await a.close();
            a = await openSession(c, run);
          }
          const before = replies;
          for (let k = 0; k < ROUND; k++) {
            const whisper = create(WhisperSchema, {
              recipient: bKey,
              ttl: 1,
              encrypted: false,
              envelope: encoder.encode(`trigger ${c.seed} ${run.name} ${trigger++} ${Date.now()}`),
            });
            a.write([frameBytes(Opcode.WHISPER, idFor(trigger), toBinary(WhisperSchema, whisper))]);
          }
          const result = await a.probe(c.hangMs);
          // Wait for B's replies to this round (the node relays as it reads).
          const deadline = Date.now() + c.hangMs;
          while (
            replies - before < 500 && Date.now() < deadline && b.open && next < budget.inputs
          ) {
            await sleep(5);
          }
          await b.probe(c.hangMs);
          const fed = replies - before;
          run.inputs += fed;
          run.liveInputs += fed;
          if (result === "timeout") {
            run.add({
              kind: "hang",
              range: [next - fed, next],
              message: `no PING reply on the trigger connection within ${c.hangMs} ms`,
            });
          }
          if (fed === 0 && result !== "answered") break;
          await collectInternal(
            run,
            async (i) => await reply(Rng.forInput(c.seed, run.name, i), 1, Opcode.WHISPER),
          );
        }
        if (!b.open) run.outcomes.add(`responder connection ended: ${normalize(b.closedBy ?? "")}`);
      } finally {
        await a.close();
        await b.close();
      }
    },
  };
}

// ---- connections: handshakes, transport messages, raw frame streams ----

/**
 * Runs `input(rng, index)` for every index, `c.concurrency` at a time, each
 * on its own connection; an input that does not finish within twice the
 * hang bound is a hang.
 */
async function driveConnections(
  c: Campaign,
  run: TargetRun,
  budget: Budget,
  from: number,
  input: (rng: Rng, index: number) => Promise<string>,
): Promise<void> {
  let next = from;
  const worker = async () => {
    while (next < budget.inputs && (next - from < c.concurrency || Date.now() < budget.until)) {
      const index = next++;
      run.range = [Math.max(from, index - c.concurrency), index + 1];
      const outcome = await within(
        input(Rng.forInput(c.seed, run.name, index), index).catch((err) =>
          `fuzzer error: ${normalize(`${(err as Error)?.name}: ${(err as Error)?.message}`)}`
        ),
        2 * c.hangMs + 5000,
        "hang" as const,
      );
      run.inputs++;
      run.liveInputs++;
      if (outcome === "hang") {
        run.add({
          kind: "hang",
          index,
          message: `connection input did not finish within ${2 * c.hangMs + 5000} ms`,
        });
      } else if (outcome.startsWith("hang: ")) {
        run.add({ kind: "hang", index, message: outcome.slice(6) });
      } else run.outcomes.add(outcome);
      if (c.node.exited) await c.restart();
    }
  };
  await Promise.all(Array.from({ length: c.concurrency }, worker));
}

/**
 * Ends our side, then reads the node's first message (if any) and the end
 * of the stream: `"replied"`, `"silent"`, or `"hang: …"` when either does
 * not come within the bound.
 */
async function firstThenEnd(
  stream: ByteStream,
  reader: RawReader,
  c: Campaign,
  what: string,
): Promise<string> {
  await stream.closeWrite().catch(() => {});
  const first = await within(reader.message(), c.hangMs, "timeout" as const);
  if (first === "timeout") {
    return `hang: no message and no close within ${c.hangMs} ms of our end of stream (${what})`;
  }
  if (first === null) return "silent";
  const ended = await within(reader.drain(), c.hangMs, "timeout" as const);
  if (ended === "timeout") {
    return `hang: the node kept the connection open ${c.hangMs} ms after our end of stream (${what})`;
  }
  return "replied";
}

async function withStream<T>(
  c: Campaign,
  use: (stream: ByteStream, reader: RawReader) => Promise<T>,
): Promise<T | string> {
  let stream: ByteStream;
  try {
    stream = await c.transport.dial(c.node.tcp);
  } catch (err) {
    return `dial failed: ${normalize((err as Error).message)}`;
  }
  try {
    return await use(stream, new RawReader(stream));
  } finally {
    stream.close();
  }
}

/** Writes `bytes` in 1 to 4 pieces (so prefixes and messages split across reads). */
async function writeSplit(rng: Rng, stream: ByteStream, bytes: Uint8Array): Promise<void> {
  const pieces = rng.chance(0.8) ? 1 : rng.range(2, 4);
  let offset = 0;
  for (let p = 1; p <= pieces; p++) {
    const end = p === pieces ? bytes.length : offset + rng.int(bytes.length - offset + 1);
    if (end > offset) await stream.write(bytes.subarray(offset, end));
    offset = end;
    if (p < pieces && rng.chance(0.5)) await sleep(1);
  }
}

/** Little-endian X25519 u-coordinates of small order, and non-canonical ones. */
export const LOW_ORDER: Uint8Array[] = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "cdeb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b880",
  "4c9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f11d7",
  "d9ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "daffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
  "dbffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
].map((hex) => Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16)));

const msg1Target: TargetDef = {
  name: "noise.msg1",
  about:
    "handshake message 1 to the node as responder: lengths, low-order and odd keys, payloads, framing",
  rest: "local",
  liveShare: 0.1,
  live: (c, run, budget, from) => {
    const fixed = generateX25519KeyPair().publicKey;
    return driveConnections(c, run, budget, from, (rng) =>
      withStream(c, async (stream, reader) => {
        let message = rng.weighted<() => Uint8Array>([
          [30, () => rng.bytes(32)],
          [10, () => fixed],
          [15, () => rng.pick(LOW_ORDER)],
          [30, () => mutateBytes(rng, rng.bytes(32), 65_535)],
          [10, () => rng.bytes(rng.pick([0, 1, 16, 31, 33, 48, 64, 1000, 65_535]))],
          [5, () => concat([rng.bytes(32), rng.bytes(rng.range(1, 100))])],
        ])();
        if (message.length > 65_535) message = message.subarray(0, 65_535);
        let bytes = rng.weighted<() => Uint8Array>([
          [85, () => framed(message)],
          [5, () => framed(message, rng.int(65_536))], // a length that lies
          [4, () => message], // no length prefix at all
          [3, () => concat([framed(message), framed(rng.bytes(32))])], // two messages
          [3, () => framed(message).subarray(0, rng.range(0, 2))], // half a prefix
        ])();
        if (rng.chance(0.05)) bytes = mutateBytes(rng, bytes, 70_000, 1);
        await writeSplit(rng, stream, bytes);
        // Our end of stream right away: a node waiting for more must give up at once.
        await stream.closeWrite().catch(() => {});
        const reply = await within(reader.message(), c.hangMs, "timeout" as const);
        if (reply === "timeout") {
          return `hang: no message 2 and no close within ${c.hangMs} ms of our end of stream`;
        }
        const ended = await within(reader.drain(), c.hangMs, "timeout" as const);
        if (ended === "timeout") {
          return `hang: the node kept the connection open ${c.hangMs} ms after message 2 and our end of stream`;
        }
        return reply === null ? "closed without message 2" : `message 2 (${reply.length} bytes)`;
      }));
  },
};

/** A HandshakePayload for message 2 or 3: valid, field-mutated, wire-mutated, generated, or a deep case. */
export function handshakePayloadInput(
  rng: Rng,
  c: Campaign,
  id: FuzzIdentity,
  dict: Dictionary,
): { payload: Uint8Array; staticKeyPair?: FuzzIdentity["staticKeyPair"]; mode: string } {
  const valid = fromBinary(HandshakePayloadSchema, handshakePayload(id, c.node.tcp));
  return rng.weighted<
    () => { payload: Uint8Array; staticKeyPair?: FuzzIdentity["staticKeyPair"]; mode: string }
  >([
    [20, () => ({ payload: toBinary(HandshakePayloadSchema, valid), mode: "valid" })],
    [30, () => {
      const m = mutateMessage(rng, HandshakePayloadSchema, valid, dict);
      return { payload: tryEncode(HandshakePayloadSchema, m) ?? new Uint8Array(0), mode: "field" };
    }],
    [
      15,
      () => ({ payload: mutateProto(rng, toBinary(HandshakePayloadSchema, valid)), mode: "wire" }),
    ],
    [10, () => ({ payload: generateBytes(rng, HandshakePayloadSchema, dict), mode: "generated" })],
    [5, () => {
      // Settings the node must cope with after accepting: odd frame sizes, compressions, addresses.
      const m = create(HandshakePayloadSchema, {
        ...valid,
        maxFrameSize: rng.pick([1, 15, 16, 17, 100, 2 ** 31, 2 ** 32 - 1]),
        compressions: rng.pick([[], [99], [0, 0, 0], [4, 99, 2 ** 31 - 1], [2]]),
        preferredCompression: rng.pick([undefined, 0, 2, 4, 5, 99]),
        listenAddrs: rng.pick([
          [],
          ["127.0.0.1:1"],
          ["garbage"],
          ["[::1]:1", "mem:x", ""],
          Array(300).fill("127.0.0.1:9"),
        ]),
        acceptsInbound: rng.chance(0.5),
      });
      return { payload: toBinary(HandshakePayloadSchema, m), mode: "settings" };
    }],
    [5, () => {
      // A key that fails the puzzle, properly signed.
      const weak = rng.pick(c.weak);
      return {
        payload: handshakePayload(weak, c.node.tcp),
        staticKeyPair: weak.staticKeyPair,
        mode: "weak identity",
      };
    }],
    [5, () => {
      // The node's own address, or another identity's signature.
      const m = create(HandshakePayloadSchema, {
        ...valid,
        identityKey: rng.chance(0.5) ? c.node.publicKey : rng.pick(c.ids).identity.publicKey,
      });
      return { payload: toBinary(HandshakePayloadSchema, m), mode: "identity swap" };
    }],
    [5, () => {
      // A low-order static key, signed: the binding holds, the DH must fail.
      const low = rng.pick(LOW_ORDER);
      return {
        payload: toBinary(HandshakePayloadSchema, valid),
        staticKeyPair: { publicKey: low, privateKey: id.staticKeyPair.privateKey },
        mode: "low-order static",
      };
    }],
    [5, () => ({ payload: rng.bytes(rng.length(2000)), mode: "garbage" })],
  ])();
}

const PROBE_PING = frameBytes(
  Opcode.PING,
  1,
  toBinary(PingSchema, create(PingSchema, { data: encoder.encode("probe") })),
);

/** After an accepted handshake: a PING, a FIND_NODE and a METRICS, then our end of stream. */
async function afterHandshake(
  stream: ByteStream,
  reader: RawReader,
  send: CipherState,
  rng: Rng,
): Promise<void> {
  const frames = [PROBE_PING];
  if (rng.chance(0.5)) {
    frames.push(
      frameBytes(
        Opcode.FIND_NODE,
        2,
        toBinary(FindNodeRequestSchema, create(FindNodeRequestSchema, { target: rng.bytes(32) })),
      ),
    );
    frames.push(
      frameBytes(
        Opcode.METRICS,
        3,
        toBinary(MetricsRequestSchema, create(MetricsRequestSchema, { includeConnections: true })),
      ),
    );
  }
  await stream.write(framed(await send.encrypt(concat(frames))));
  void reader;
}

const msg3Target: TargetDef = {
  name: "noise.msg3",
  about:
    "handshake message 3 to the node as responder: payload fields, identities, static keys, raw bytes",
  rest: "local",
  liveShare: 0.1,
  live: (c, run, budget, from) => {
    const dict = dictionary(c);
    const ephemeral = generateX25519KeyPair();
    return driveConnections(c, run, budget, from, (rng) =>
      withStream(c, async (stream, reader) => {
        const id = c.nextId();
        const raw = rng.chance(0.25);
        const input = raw
          ? { payload: handshakePayload(id, c.node.tcp), mode: "raw" }
          : handshakePayloadInput(rng, c, id, dict);
        const ciphers = await rawInitiator(stream, reader, {
          id,
          payload: input.payload.length > 65_000
            ? input.payload.subarray(0, 65_000)
            : input.payload,
          staticKeyPair: input.staticKeyPair,
          ephemeralKeyPair: ephemeral,
          mutateMessage3: raw ? (m) => mutateBytes(rng, m, 65_537) : undefined,
        }).catch((err) => `initiator failed: ${normalize((err as Error).message)}`);
        if (typeof ciphers === "string") return ciphers;
        if (ciphers === undefined) return "no message 2";
        await afterHandshake(stream, reader, ciphers.send, rng).catch(() => {});
        const reply = await firstThenEnd(stream, reader, c, "after message 3");
        if (reply.startsWith("hang: ")) return reply;
        return `${input.mode}: ${reply === "replied" ? "accepted (answered)" : "closed, no reply"}`;
      }));
  },
};

/**
 * Message 2 as the node (the initiator) sees it: the node dials listeners
 * of the campaign (one per slot), which answer with a fuzzed message 2.
 */
const msg2Target: TargetDef = {
  name: "noise.msg2",
  about:
    "handshake message 2 to the node as initiator (it dials the campaign): payloads, identities, bytes",
  rest: "local",
  liveShare: 0.1,
  live: async (c, run, budget, from) => {
    const dict = dictionary(c);
    const ephemeral = generateX25519KeyPair();
    const prologue = encoder.encode(PROLOGUE);
    const slots = await Promise.all(Array.from({ length: c.concurrency }, async () => {
      const listener = await c.transport.listen("127.0.0.1:0");
      return {
        listener,
        accepts: listener[Symbol.asyncIterator](),
        // An accept that timed out stays pending and serves the next input
        // (a second next() would queue behind it and miss the next stream).
        waiting: undefined as Promise<IteratorResult<ByteStream>> | undefined,
      };
    }));
    let next = from;
    const slot = async (s: (typeof slots)[number]) => {
      while (next < budget.inputs && (next - from < slots.length || Date.now() < budget.until)) {
        const index = next++;
        run.range = [Math.max(from, index - c.concurrency), index + 1];
        const rng = Rng.forInput(c.seed, run.name, index);
        const id = c.nextId();
        const dialing = c.node.dial(`${id.identity.address}@${s.listener.address}`);
        s.waiting ??= s.accepts.next();
        const accepted = await within(s.waiting, c.hangMs, "timeout" as const);
        if (accepted !== "timeout") s.waiting = undefined;
        let outcome: string;
        if (accepted === "timeout" || accepted.done) {
          const result = await within(dialing, c.hangMs, undefined);
          outcome = result?.ok === false
            ? `dial refused: ${normalize(result.error ?? "")}`
            : "no dial arrived";
        } else {
          const stream = accepted.value;
          const reader = new RawReader(stream);
          try {
            const message1 = await within(reader.message(), c.hangMs, "timeout" as const);
            if (message1 === "timeout" || message1 === null) {
              outcome = "no message 1";
            } else {
              const raw = rng.chance(0.25);
              const input = raw
                ? { payload: handshakePayload(id, "127.0.0.1:1"), mode: "raw" }
                : handshakePayloadInput(rng, c, id, dict);
              const hs = createHandshake({
                pattern: "XX",
                initiator: false,
                prologue,
                staticKeyPair: input.staticKeyPair ?? id.staticKeyPair,
                ephemeralKeyPair: ephemeral,
              });
              await hs.readMessage(message1);
              let message2 = framed(await hs.writeMessage(input.payload.subarray(0, 65_000)));
              if (raw) message2 = mutateBytes(rng, message2, 65_537);
              await writeSplit(rng, stream, message2);
              // Our end of stream: a node waiting for more of message 2 fails at once.
              await stream.closeWrite().catch(() => {});
              const message3 = await within(reader.message(), c.hangMs, "timeout" as const);
              const result = await within(dialing, c.hangMs + 5000, undefined);
              if (result === undefined) {
                outcome = `hang: the node's dial did not settle within ${c.hangMs + 5000} ms`;
              } else {
                outcome = `${input.mode}: ${
                  result.ok ? "accepted" : normalize(result.error ?? "")
                }${message3 === "timeout" ? " (no message 3 or close)" : ""}`;
              }
            }
          } catch (err) {
            outcome = `fuzzer error: ${normalize((err as Error).message)}`;
          } finally {
            stream.close();
          }
        }
        run.inputs++;
        run.liveInputs++;
        if (outcome.startsWith("hang: ")) {
          run.add({ kind: "hang", index, message: outcome.slice(6) });
        } else run.outcomes.add(outcome);
        if (c.node.exited) await c.restart();
      }
    };
    try {
      await Promise.all(slots.map(slot));
    } finally {
      for (const s of slots) s.listener.close();
    }
  },
};

/** Transport messages after a valid handshake: bad tags, lengths, nonces; then a PING that must be answered or the connection closed. */
const transportTarget: TargetDef = {
  name: "noise.transport",
  about:
    "transport messages: bad tags, truncation, lengths 0–15 and 65535, replays, nonce gaps, split prefixes",
  rest: "local",
  liveShare: 0.1,
  live: (c, run, budget, from) => {
    const ephemeral = generateX25519KeyPair();
    return driveConnections(c, run, budget, from, (rng) =>
      withStream(c, async (stream, reader) => {
        const id = c.nextId();
        const ciphers = await rawInitiator(stream, reader, { id, ephemeralKeyPair: ephemeral });
        if (ciphers === undefined) return "no message 2";
        const { send } = ciphers;
        const sent: Uint8Array[] = [];
        for (let k = rng.int(3); k > 0; k--) {
          const m = framed(await send.encrypt(PROBE_PING));
          sent.push(m);
          await stream.write(m);
        }
        const mode = rng.pick([
          "tag",
          "body",
          "truncate",
          "short",
          "long then end",
          "65535 garbage",
          "replay",
          "nonce gap",
          "garbage plaintext",
          "frames plaintext",
          "empty plaintext",
          "largest plaintext",
          "split prefix",
          "bit flip",
        ]);
        let fuzzed: Uint8Array;
        let endAfter = false;
        switch (mode) {
          case "tag": {
            const m = await send.encrypt(PROBE_PING);
            m[m.length - 1 - rng.int(16)] ^= 1 << rng.int(8);
            fuzzed = framed(m);
            break;
          }
          case "body": {
            const m = await send.encrypt(PROBE_PING);
            m[rng.int(m.length - 16)] ^= 1 << rng.int(8);
            fuzzed = framed(m);
            break;
          }
          case "truncate": {
            const m = await send.encrypt(PROBE_PING);
            fuzzed = framed(m.subarray(0, rng.int(m.length)));
            break;
          }
          case "short":
            fuzzed = framed(rng.bytes(rng.int(16)));
            break;
          case "long then end": {
            const m = await send.encrypt(PROBE_PING);
            fuzzed = framed(m, m.length + rng.range(1, 1000)).subarray(0, 2 + m.length);
            endAfter = true;
            break;
          }
          case "65535 garbage":
            fuzzed = framed(rng.bytes(65_535));
            break;
          case "replay":
            fuzzed = sent.length > 0 ? rng.pick(sent) : framed(rng.bytes(40));
            break;
          case "nonce gap":
            await send.encrypt(PROBE_PING);
            fuzzed = framed(await send.encrypt(PROBE_PING));
            break;
          case "garbage plaintext":
            fuzzed = framed(await send.encrypt(rng.bytes(rng.length(65_519))));
            break;
          case "frames plaintext":
            fuzzed = framed(
              await send.encrypt(mutateBytes(rng, concat([PROBE_PING, PROBE_PING]), 65_519)),
            );
            break;
          case "empty plaintext":
            fuzzed = framed(await send.encrypt(new Uint8Array(0)));
            break;
          case "largest plaintext": {
            // One frame filling the largest plaintext; rarely 65,519 empty frames instead.
            const plaintext = new Uint8Array(65_519);
            if (rng.chance(0.95)) {
              const frame = frameBytes(Opcode.PING, 0, new Uint8Array(65_519 - 9));
              plaintext.set(frame.subarray(0, 65_519));
            }
            fuzzed = framed(await send.encrypt(plaintext));
            break;
          }
          case "split prefix":
            fuzzed = framed(await send.encrypt(PROBE_PING));
            await stream.write(fuzzed.subarray(0, 1));
            await sleep(1);
            fuzzed = fuzzed.subarray(1);
            break;
          default:
            fuzzed = mutateBytes(rng, framed(await send.encrypt(PROBE_PING)), 65_537);
        }
        await writeSplit(rng, stream, fuzzed);
        if (!endAfter) await stream.write(framed(await send.encrypt(PROBE_PING))).catch(() => {});
        const reply = await firstThenEnd(stream, reader, c, mode);
        if (reply.startsWith("hang: ")) return reply;
        return `${mode}: ${reply === "replied" ? "answered" : "closed, no reply"}`;
      }));
  },
};

/** Raw frame byte streams inside valid transport messages (the node's frame decoder). */
function frameStreamInput(c: Campaign, name: string, disconnect: boolean) {
  const ephemeral = generateX25519KeyPair();
  const dict = dictionary(c);
  const ctx = seedContext(c, c.ids[0]);
  return (rng: Rng) =>
    withStream(c, async (stream, reader) => {
      const id = c.nextId();
      const ciphers = await rawInitiator(stream, reader, { id, ephemeralKeyPair: ephemeral });
      if (ciphers === undefined) return "no message 2";
      const frames: Uint8Array[] = [];
      for (let k = rng.int(disconnect ? 3 : 6); k > 0; k--) {
        const opcode = rng.pick(PROTOCOL_OPCODES).opcode;
        if (opcode === Opcode.DISCONNECT) continue;
        const s = await opcodeSeed(rng, opcode, ctx, dict);
        frames.push(
          frameBytes(opcode, rng.int(100), s ? payloadOf(rng, s, dict) : new Uint8Array(0)),
        );
      }
      let bytes: Uint8Array;
      if (disconnect) {
        const s = (await opcodeSeed(rng, Opcode.DISCONNECT, ctx, dict))!;
        const e = envelope(rng, payloadOf(rng, s, dict));
        frames.push(
          frameBytes(Opcode.DISCONNECT, rng.pick([0, 0, 1]), e.payload, e.flags, e.compression),
        );
        if (rng.chance(0.3)) frames.push(PROBE_PING);
        bytes = concat(frames);
      } else {
        frames.push(PROBE_PING);
        bytes = concat(frames);
        bytes = rng.chance(0.5) ? mutateBytes(rng, bytes, 1 << 20) : mutateProto(rng, bytes);
      }
      // Split at random points across transport messages.
      let offset = 0;
      while (offset < bytes.length) {
        const n = Math.min(65_519, rng.chance(0.3) ? rng.range(1, 64) : rng.range(1, 65_519));
        await stream.write(framed(await ciphers.send.encrypt(bytes.subarray(offset, offset + n))));
        offset += n;
      }
      const reply = await firstThenEnd(stream, reader, c, name);
      if (reply.startsWith("hang: ")) return reply;
      return reply === "replied" ? "answered, then closed" : "closed, no reply";
    });
}

const frameTarget: TargetDef = {
  name: "frame.decoder",
  about:
    "the frame decoder: byte streams split arbitrarily (in process), and raw frame streams to the node",
  rest: "local",
  liveShare: 0.03,
  live: (c, run, budget, from) =>
    driveConnections(c, run, budget, from, frameStreamInput(c, run.name, false)),
};

const disconnectTarget: TargetDef = {
  name: "op.DISCONNECT",
  about:
    "DISCONNECT frames (each ends a connection): fuzzed payloads to the node, and through a PeerConnection in process",
  rest: "local",
  liveShare: 0.03,
  live: (c, run, budget, from) =>
    driveConnections(c, run, budget, from, frameStreamInput(c, run.name, true)),
};

const localTarget = (name: string, about: string): TargetDef => ({ name, about, rest: "local" });

/** Every target, in the order the campaign runs them. */
export function allTargets(): TargetDef[] {
  const opcodeTargets = PROTOCOL_OPCODES
    .filter((s) =>
      s.opcode !== Opcode.ACK && s.opcode !== Opcode.NACK && s.opcode !== Opcode.DISCONNECT
    )
    .map((s) => opcodeTarget(s.opcode, s.name, s.request));
  return [
    localTarget(
      "compression.bz2",
      "the bz2 decoder (_bzip2.ts): mutated streams, bombs, garbage, round trips",
    ),
    localTarget(
      "compression.gzip",
      "the gzip decoder (node:zlib): mutated streams, bombs, garbage, round trips",
    ),
    localTarget(
      "compression.lzma",
      "the lzma decoder (_lzma.ts): mutated streams, bombs, garbage, round trips",
    ),
    localTarget(
      "compression.zlib",
      "the zlib decoder (node:zlib): mutated streams, bombs, garbage, round trips",
    ),
    localTarget(
      "compression.snappy",
      "the snappy decoder (_snappy.ts): mutated streams, bombs, garbage, round trips",
    ),
    localTarget(
      "patch.json",
      "parseJsonPatch and applyJsonPatchToBytes: generated and mangled patches, diffJson round trips",
    ),
    localTarget("patch.splice", "splicesOf and applySplices against a naive splice"),
    frameTarget,
    msg1Target,
    msg2Target,
    msg3Target,
    transportTarget,
    ...opcodeTargets,
    opcodeTarget(1000, "APP_ECHO", StringValueSchema),
    opcodeTarget(1001, "APP_NOTE", StringValueSchema),
    replyTarget("ACK"),
    replyTarget("NACK"),
    disconnectTarget,
    unknownTarget,
    compressedTarget,
  ];
}
