/**
 * One scenario per row of the README's refusal table, by its `case` id:
 * each makes the node refuse a request in the way the row's `when` says
 * (every alternative the row lists, as named sub-cases) and checks the NACK
 * against the row (reason, Nack.opcode, data).
 *
 * @module
 */
import {
  CasRequestSchema,
  ChangesRequestSchema,
  DialBackRequestSchema,
  FindNodeRequestSchema,
  FindValueRequestSchema,
  HolePunchSchema,
  LockHeldSchema,
  LockRequestSchema,
  MetricsRequestSchema,
  PatchRequestSchema,
  PingSchema,
  type RecordSchema,
  RelayRequestSchema,
  SealedWhisperSchema,
  SetConnectionOptSchema,
  ShoutEnvelopeSchema,
  StoreRequestSchema,
  UnlockRequestSchema,
  type VersionConflict,
  VersionConflictSchema,
  WhisperAckSchema,
  WhisperEnvelopeSchema,
  WhisperSchema,
} from "../../lib/protocol.ts";
import { createRecord, recordSigningBytes } from "../../lib/dht/record.ts";
import { fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { createHandshake, x25519KeyPairFromPrivateKey } from "../../lib/secure/noise.ts";
import { DEFAULT_MAX_VALUE_SIZE, generateIdentity, type Identity, sign } from "../../mod.ts";
import {
  compress,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_WHISPER_BODY_SIZE,
  sealWhisper,
  WHISPER_PROLOGUE,
  WHISPER_SIGNATURE_CONTEXT,
  whisperHash,
  x25519PrivateKeyFromEd25519,
  x25519PublicKeyFromEd25519,
} from "../../protocol.ts";
import { ackBytes, frameBytes, type RawClient, type Reply } from "./_client.ts";
import { until } from "../attack/_attack.ts";
import { concatBytes } from "../../lib/_bytes.ts";
import {
  APP,
  appPayload,
  enc,
  type Env,
  expectAck,
  expectNack,
  fail,
  flipped,
  freshKey,
  hash,
  MAIN_MAX_HELD,
  MAIN_QUOTAS,
  op,
  OPCODES,
  QUIET_MAX_LOCKS,
  QUIET_MAX_RECORDS,
  randomBytes,
  same,
  shoutPayload,
  storePayload,
  type SubCases,
  UNPARSABLE,
  utf8,
} from "./_env.ts";
import type { RefusalRow } from "./_spec.ts";

/** A scenario: makes the node refuse as `row` says, sub-case by sub-case. */
export type Scenario = (env: Env, row: RefusalRow, cases: SubCases) => Promise<void>;

/** A number the row's `when` text states (`/more than (\d+) minutes/`). */
function stated(row: RefusalRow, pattern: RegExp): number {
  const match = pattern.exec(row.when);
  if (!match) fail(`${row.case}: its "when" (${row.when}) no longer says ${pattern}`);
  return Number(match[1]);
}

function identity(): Promise<Identity> {
  return generateIdentity({ difficulty: 0 });
}

const MINUTE = 60_000;

/**
 * Frames refused before any handler runs (compression) are answered at
 * once: 3 s is plenty, and keeps a node that never answers them from
 * costing 5 s a frame.
 */
const SHORT = { timeout: 3_000 };

// ---- payloads ----

function ping(data = new Uint8Array(8)): Uint8Array {
  return enc(PingSchema, { data });
}

function findNode(target = freshKey()): Uint8Array {
  return enc(FindNodeRequestSchema, { target });
}

/** A DHT_CAS PREPARE of `record` expecting version `expected`. */
function prepare(
  record: MessageInitShape<typeof RecordSchema>,
  expected: number,
  proposal = randomBytes(16),
): Uint8Array {
  return enc(CasRequestSchema, {
    record,
    expectedVersion: BigInt(expected),
    proposal,
    phase: 1,
  });
}

function commit(key: Uint8Array, proposal: Uint8Array): Uint8Array {
  return enc(CasRequestSchema, { record: { key }, proposal, phase: 2 });
}

function lock(
  key: Uint8Array,
  o: { fencingToken?: bigint; minFencingToken?: bigint; ttl?: bigint } = {},
): Uint8Array {
  return enc(LockRequestSchema, {
    key,
    ttlMs: o.ttl ?? 10_000n,
    fencingToken: o.fencingToken ?? 0n,
    minFencingToken: o.minFencingToken ?? 0n,
  });
}

/** A byte-splice patch of the value at `base` appending `insert` (hash of `result` unless given). */
function patch(
  key: Uint8Array,
  init: {
    base: number;
    version: number;
    offset: number;
    insert: Uint8Array;
    valueHash: Uint8Array;
    proposal?: Uint8Array;
    owner?: Uint8Array;
    signature?: Uint8Array;
  },
): Uint8Array {
  return enc(PatchRequestSchema, {
    key,
    proposal: init.proposal ?? randomBytes(16),
    owner: init.owner,
    patch: {
      signature: init.signature,
      baseVersion: BigInt(init.base),
      version: BigInt(init.version),
      format: 1, // PATCH_FORMAT_BYTE_SPLICE
      splices: [{ offset: BigInt(init.offset), deleteCount: 0n, insert: init.insert }],
      valueHash: init.valueHash,
    },
  });
}

/** Records a replica refuses as malformed (as the store-malformed row lists them). */
async function malformedRecords(): Promise<[string, MessageInitShape<typeof RecordSchema>][]> {
  const owner = await identity();
  const signed = createRecord({ key: freshKey(), value: utf8("v"), version: 1, owner });
  return [
    ["a key of 31 bytes", { key: randomBytes(31), value: utf8("v"), version: 1n }],
    ["version 0", { key: freshKey(), value: utf8("v"), version: 0n }],
    ["version 2^53", { key: freshKey(), value: utf8("v"), version: 2n ** 53n }],
    ["an open record with a signature", {
      key: freshKey(),
      value: utf8("v"),
      version: 1n,
      signature: randomBytes(64),
    }],
    ["an owner of 31 bytes", { ...signed, owner: owner.publicKey.subarray(0, 31) }],
  ];
}

/** Owned records whose signature is missing or does not verify. */
async function badlySignedRecords(): Promise<[string, MessageInitShape<typeof RecordSchema>][]> {
  const [owner, mallory] = [await identity(), await identity()];
  const forged = createRecord({ key: freshKey(), value: utf8("v"), version: 1, owner: mallory });
  const v1 = createRecord({ key: freshKey(), value: utf8("v"), version: 1, owner });
  return [
    ["signed by another key than the owner", { ...forged, owner: owner.publicKey }],
    ["the owner's signature of another version", { ...v1, version: 2n }],
    ["an owner without a signature", { ...v1, signature: new Uint8Array(0) }],
  ];
}

/** Checks a NACK's VersionConflict: the version the replica holds. */
function heldVersion(
  row: RefusalRow,
  what: string,
  reply: Reply,
  version: bigint,
): VersionConflict {
  // A VersionConflict of version 0 without a record serializes to no bytes.
  const conflict = fromBinary(VersionConflictSchema, reply.nack!.data);
  if (conflict.currentVersion !== version) {
    fail(
      `${row.case} [${what}]: VersionConflict.current_version ${conflict.currentVersion}, ` +
        `the replica holds ${version}`,
    );
  }
  return conflict;
}

/** Checks that a VersionConflict says the replica is reserved for another proposal. */
function busy(row: RefusalRow, conflict: VersionConflict): void {
  if (!conflict.busy) {
    fail(`${row.case} [reserved]: VersionConflict.busy is false (dht.proto: busy = true)`);
  }
}

/** Checks a NACK's LockHeld: who holds the lock. */
function heldBy(row: RefusalRow, reply: Reply, holder: Uint8Array): void {
  const data = reply.nack!.data;
  if (data.length === 0) fail(`${row.case}: the NACK carries no LockHeld`);
  const held = fromBinary(LockHeldSchema, data);
  if (!same(held.holder, holder)) fail(`${row.case}: LockHeld.holder is not the holder`);
}

/** The key farthest from `nodeId` (every bit flipped). */
function farthestKey(nodeId: Uint8Array): Uint8Array {
  return nodeId.map((b) => b ^ 0xff);
}

/** Stores `n` open records from `c` (each ACKed). */
async function storeMany(c: RawClient, n: number, what: string): Promise<void> {
  for (let i = 0; i < n; i++) {
    const payload = storePayload(freshKey(), utf8(`r${i}`));
    await expectAck(c, { opcode: op("STORE"), payload }, `${what}: record ${i + 1}`);
  }
}

/**
 * Fills the quiet node's store with keys closer to it than any other (its
 * NodeId with a low bit flipped), evicting whatever was farther.
 */
async function fillQuiet(env: Env, what: string): Promise<RawClient> {
  const q = await env.connect(env.quiet);
  const self = env.quiet.identity.nodeId;
  for (let i = 0; i < QUIET_MAX_RECORDS; i++) {
    const key = self.slice();
    key[31] ^= i + 1;
    await expectAck(
      q,
      { opcode: op("STORE"), payload: storePayload(key, utf8("near")) },
      `${what}: near key`,
    );
  }
  return q;
}

/**
 * The quota sub-cases a PREPARE (DHT_CAS or DHT_PATCH) shares: past the
 * sender's live reservations, past its records (the record the COMMIT would
 * count), and a full replica with no farther key (DHT_CAS only: a patch
 * replaces a record held).
 */
async function quotaCases(
  env: Env,
  row: RefusalRow,
  cases: SubCases,
  request: (key: Uint8Array, proposal: Uint8Array) => Uint8Array,
  opcode: string,
  needsBase = false,
): Promise<void> {
  const base = async (c: RawClient) => {
    const key = freshKey();
    if (needsBase) {
      await expectAck(c, { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) }, "base");
    }
    return key;
  };
  const reservations = MAIN_QUOTAS.maxReservationsPerPeer;
  await cases.run(`past ${reservations} live reservations (maxReservationsPerPeer)`, async () => {
    const c = await env.connect(env.main);
    for (let i = 0; i < reservations; i++) {
      const payload = prepare({ key: freshKey(), value: utf8("v"), version: 1n }, 0);
      await expectAck(c, { opcode: op("DHT_CAS"), payload }, `${row.case}: PREPARE ${i + 1}`);
    }
    const payload = request(await base(c), randomBytes(16));
    await expectNack(c, row, { opcode: op(opcode), payload }, "past the reservations");
  });
  const records = MAIN_QUOTAS.maxRecordsPerPeer;
  await cases.run(`past ${records} records (maxRecordsPerPeer)`, async () => {
    const other = await env.connect(env.main);
    const key = await base(other); // the version held is another peer's
    const c = await env.connect(env.main);
    await storeMany(c, records, row.case);
    await expectNack(
      c,
      row,
      { opcode: op(opcode), payload: request(key, randomBytes(16)) },
      "past the records",
    );
  });
  if (needsBase) return;
  await cases.run(`a full replica (${QUIET_MAX_RECORDS} records) and a farther key`, async () => {
    const q = await fillQuiet(env, row.case);
    const payload = request(farthestKey(env.quiet.identity.nodeId), randomBytes(16));
    await expectNack(q, row, { opcode: op(opcode), payload }, "the farthest key");
  });
}

/**
 * An encrypted WHISPER built by hand: a Noise `X` message from `noise`'s
 * X25519 key (converted as the README says) to `to`'s, whose payload is a
 * SealedWhisper of `envelope` signed by `signer`.
 */
async function handSealed(
  noise: Identity,
  to: Uint8Array,
  envelope: Uint8Array,
  signer: Identity,
): Promise<Uint8Array> {
  const handshake = createHandshake({
    pattern: "X",
    initiator: true,
    prologue: utf8(WHISPER_PROLOGUE),
    staticKeyPair: x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(noise.secretKey)),
    remoteStaticPublicKey: x25519PublicKeyFromEd25519(to),
  });
  const signature = sign(signer, concatBytes([utf8(WHISPER_SIGNATURE_CONTEXT), envelope]));
  const message = await handshake.writeMessage(
    enc(SealedWhisperSchema, { envelope, signature }),
  );
  return enc(WhisperSchema, { recipient: to, ttl: 16, encrypted: true, envelope: message });
}

function whisperEnvelope(sender: Uint8Array, recipient: Uint8Array): Uint8Array {
  return enc(WhisperEnvelopeSchema, {
    sender,
    recipient,
    nonce: BigInt(Math.floor(Math.random() * 2 ** 48)),
    timestampMs: BigInt(Date.now()),
    topic: "conformance",
    body: randomBytes(8),
  });
}

async function whisperTo(
  from: Identity,
  to: Uint8Array,
  options: { encrypted?: boolean; ttl?: number; timestampMs?: number; body?: Uint8Array } = {},
) {
  return await sealWhisper(from, to, options.body ?? randomBytes(8), options);
}

/** Every request opcode of the table, and an application request the main node handles. */
function requestOpcodes(): [string, number][] {
  return [
    ...OPCODES.filter((r) => r.kind === "request").map((r) =>
      [r.name, r.opcode] as [string, number]
    ),
    [`application ${APP.echo.opcode}`, APP.echo.opcode],
  ];
}

// ---- the scenarios ----

/** The refusal table's scenarios, by case id. */

/** Stores `owner`'s record `value` (version 1) under `key` through `c`; returns it. */
async function storeOwned(c: RawClient, key: Uint8Array, owner: Identity, value: string) {
  const v1 = createRecord({ key, value: utf8(value), version: 1, owner });
  await expectAck(
    c,
    { opcode: op("STORE"), payload: enc(StoreRequestSchema, { record: v1 }) },
    "owned v1",
  );
  return v1;
}

/**
 * Stores the owned record "abc" (version 1) of `owner` under `key` and
 * returns the splice that appends "d" (version 2) and its result.
 */
async function ownedAbc(c: RawClient, key: Uint8Array, owner: Identity) {
  await storeOwned(c, key, owner, "abc");
  const result = utf8("abcd");
  const appendD = { base: 1, version: 2, offset: 3, insert: utf8("d"), valueHash: hash(result) };
  return { result, appendD };
}

export const REFUSAL_SCENARIOS: Record<string, Scenario> = {
  "unknown-opcode": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const assigned = new Set(OPCODES.map((r) => r.opcode));
    const unassigned = Array.from({ length: 128 }, (_, i) => i).filter((v) => !assigned.has(v));
    const tried = [...unassigned, 128, 500, 999, 1000, 1006, 5000, 0xffff_ffff];
    for (const opcode of tried) {
      const what = opcode >= 1000
        ? `unregistered application opcode ${opcode}`
        : `unassigned ${opcode}`;
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode, payload: new Uint8Array(0) }, what);
      });
    }
  },

  "undecodable": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const [what, opcode] of requestOpcodes()) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode, payload: UNPARSABLE }, what);
      });
    }
    // "Any request" rows come before an opcode's own rows (metrics-off).
    const q = await env.connect(env.quiet);
    await cases.run("METRICS to a node that does not serve metrics", async () => {
      await expectNack(q, row, { opcode: op("METRICS"), payload: UNPARSABLE }, "METRICS, quiet");
    });
  },

  "unannounced-compression": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const announced = c.channel.remote.compressions;
    const unannounced = [0, 1, 2, 3, 4, 5, 6, 7].find((s) => !announced.includes(s))!;
    const packed = compress(1, ping(new Uint8Array(600)));
    for (const [name, opcode] of requestOpcodes()) {
      await cases.run(`${name}, setting ${unannounced} (not announced)`, async () => {
        await expectNack(
          c,
          row,
          {
            opcode,
            payload: packed,
            flags: 1,
            compression: unannounced,
          },
          `${name}, setting ${unannounced}`,
          SHORT,
        );
      });
      for (const [setting, label] of [[0, "bz2"], [1, "gzip"], [3, "zlib"]] as const) {
        if (!announced.includes(setting)) continue;
        await cases.run(`${name}, ${label} that does not decompress`, async () => {
          await expectNack(
            c,
            row,
            {
              opcode,
              payload: utf8("these bytes are no compressed stream at all"),
              flags: 1,
              compression: setting,
            },
            `${name}, ${label} garbage`,
            SHORT,
          );
        });
      }
    }
  },

  "inflates-too-far": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const limit = c.channel.remote.maxFrameSize || DEFAULT_MAX_FRAME_SIZE;
    const inflating = new Uint8Array(limit + 1024);
    const packed = [
      [1, "gzip", compress(1, inflating)],
      [3, "zlib", compress(3, inflating)],
    ] as const;
    for (const [name, opcode] of requestOpcodes()) {
      for (const [setting, label, payload] of packed) {
        await cases.run(
          `${name}, ${label} inflating to ${limit + 1024} bytes (limit ${limit})`,
          async () => {
            await expectNack(
              c,
              row,
              { opcode, payload, flags: 1, compression: setting },
              `${name}, ${label}`,
              SHORT,
            );
          },
        );
      }
    }
  },

  "reply-too-large": async (env, row, cases) => {
    const small = 4096; // the README's example
    const c = await env.connect(env.main, { maxFrameSize: small });
    const key = freshKey();
    await expectAck(
      c,
      { opcode: op("STORE"), payload: storePayload(key, randomBytes(65536)) },
      "STORE 64 KiB",
    );
    await cases.run(
      `FIND_VALUE of a 64 KiB record, asker accepts ${small}-byte frames`,
      async () => {
        await expectNack(c, row, {
          opcode: op("FIND_VALUE"),
          payload: enc(FindValueRequestSchema, { key }),
        }, "FIND_VALUE");
      },
    );
    await cases.run(
      `an application reply of 5000 bytes (ECHO), asker accepts ${small}`,
      async () => {
        const payload = appPayload("a".repeat(5000));
        await expectNack(c, row, { opcode: APP.echo.opcode, payload }, "ECHO");
      },
    );
    await cases.run("no frame over the announced max_frame_size was sent", () => {
      const over = c.received.filter((r) => frameBytes(r.frame).length > small + 5);
      if (over.length > 0) {
        fail(`${row.case}: the node sent ${over.length} frames over ${small} bytes (announced)`);
      }
    });
  },

  "held-too-many": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const LOCK_OPCODE = 1500;
    const locking = env.main.receiveLock(c.address, LOCK_OPCODE, { timeout: 5_000 });
    await c.send({ opcode: LOCK_OPCODE, payload: utf8("start") });
    const held = await locking;
    const ids = Array.from({ length: MAIN_MAX_HELD }, () => c.newId());
    try {
      for (const id of ids) await c.send({ id, opcode: op("FIND_NODE"), payload: findNode() });
      await cases.run(`FIND_NODE past the ${MAIN_MAX_HELD} held`, async () => {
        await expectNack(c, row, { opcode: op("FIND_NODE"), payload: findNode() }, "one more");
      });
      await cases.run("the held frames wait for the release", () => {
        for (const id of ids) {
          if (c.repliesTo(id).length > 0) fail(`${row.case}: held FIND_NODE ${id} was answered`);
        }
      });
    } finally {
      held.release();
    }
    await cases.run("the held frames are answered after the release", async () => {
      for (const id of ids) {
        const reply = await c.next((r) => r.frame.id === id && r.ack !== undefined);
        if (!reply) fail(`${row.case}: held FIND_NODE ${id} got no ACK after the release`);
      }
    });
  },

  "unsupported-option": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const tries: [string, number, number][] = [
      ["unknown option 7", 7, 1],
      ["COMPRESSION, setting 9", 0, 9],
      ["PREFERRED_COMPRESSION, setting 9", 1, 9],
      ["DISABLE_COMPRESSION, setting 9", 2, 9],
    ];
    for (const [what, option, setting] of tries) {
      await cases.run(what, async () => {
        const payload = enc(SetConnectionOptSchema, { option, setting });
        const reply = await expectNack(c, row, { opcode: op("SET_CONNECTION_OPT"), payload }, what);
        // "NACK (reason UNSUPPORTED) with it": the same SetConnectionOpt.
        if (!same(reply.nack!.data, payload)) {
          fail(`${row.case} [${what}]: the NACK's data is not the SetConnectionOpt sent`);
        }
      });
    }
  },

  "shout-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("envelope does not parse", async () => {
      const { payload } = shoutPayload(c.identity, {
        envelope: UNPARSABLE,
        signature: randomBytes(64),
      });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "envelope");
    });
    await cases.run("origin is 31 bytes", async () => {
      const envelope = enc(ShoutEnvelopeSchema, {
        origin: c.identity.publicKey.subarray(0, 31),
        sequence: 1n,
        timestampMs: BigInt(Date.now()),
        body: utf8("x"),
      });
      const { payload } = shoutPayload(c.identity, { envelope });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "origin 31 bytes");
    });
    await cases.run("height 257 (signed)", async () => {
      const { payload } = shoutPayload(c.identity, { height: 257 });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "height 257");
    });
  },

  "shout-signature": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const other = await identity();
    await cases.run("signature with a byte changed", async () => {
      const good = shoutPayload(c.identity);
      const { payload } = shoutPayload(c.identity, {
        envelope: good.envelope,
        signature: flipped(new Uint8Array(64).fill(7)),
      });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "bad signature");
    });
    await cases.run("signed by another key than the origin", async () => {
      const envelope = shoutPayload(c.identity).envelope;
      const signature = sign(other, concatBytes([utf8("carrier/v1 shout:"), envelope]));
      const { payload } = shoutPayload(c.identity, { envelope, signature });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "other signer");
    });
  },

  "shout-stale": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const minutes = stated(row, /more than (\d+) minutes/);
    await cases.run(`${minutes + 1} minutes old`, async () => {
      const { payload } = shoutPayload(c.identity, {
        timestampMs: Date.now() - (minutes + 1) * MINUTE,
      });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "old");
    });
    await cases.run(`${minutes + 1} minutes ahead`, async () => {
      const { payload } = shoutPayload(c.identity, {
        timestampMs: Date.now() + (minutes + 1) * MINUTE,
      });
      await expectNack(c, row, { opcode: op("SHOUT"), payload }, "ahead");
    });
    await cases.run(`${minutes - 1} minutes old is accepted`, async () => {
      const { payload } = shoutPayload(c.identity, {
        timestampMs: Date.now() - (minutes - 1) * MINUTE,
      });
      await expectAck(c, { opcode: op("SHOUT"), payload }, `${row.case}: within the window`);
    });
  },

  "shout-rate": async (env, row, cases) => {
    // The quiet node's clock moves only when the test moves it: every SHOUT
    // is within one second unless the test says otherwise.
    const c = await env.connect(env.quiet);
    const limit = stated(row, /more than (\d+) SHOUTs/);
    const origin = await identity();
    const shouts = (from: Identity, n: number) =>
      Array.from({ length: n }, () => ({
        id: c.newId(),
        opcode: op("SHOUT"),
        payload: shoutPayload(from).payload,
      }));
    const allAcked = async (from: Identity, n: number, what: string) => {
      const replies = await c.requestMany(shouts(from, n), 20_000);
      const refused = replies.filter((r) => !r?.ack).length;
      if (refused > 0) fail(`${row.case}: ${refused} of ${n} SHOUTs (${what}) were not ACKed`);
    };
    await cases.run(`the first ${limit} of one origin are ACKed`, async () => {
      await allAcked(origin, limit, `the first ${limit}`);
    });
    await cases.run(`SHOUT ${limit + 1} of the same origin`, async () => {
      await expectNack(
        c,
        row,
        { opcode: op("SHOUT"), payload: shoutPayload(origin).payload },
        `#${limit + 1}`,
      );
    });
    // "Within one window": a window opens at the first SHOUT of an origin
    // outside one and lasts a second; the next one after it starts afresh.
    await cases.run(
      `one window: ${limit / 2} at 0 s and ${
        limit / 2
      } at 0.6 s, one more refused; ${limit} at 1.1 s`,
      async () => {
        const other = await identity();
        await allAcked(other, limit / 2, "at 0 s");
        env.quietClock.advance(600);
        await allAcked(other, limit / 2, "at 0.6 s");
        await expectNack(
          c,
          row,
          { opcode: op("SHOUT"), payload: shoutPayload(other).payload },
          `#${limit + 1} in the window opened at 0 s`,
        );
        env.quietClock.advance(500); // the window of 0 s is over: a new one opens
        await allAcked(other, limit, "in the window opened at 1.1 s");
        await expectNack(
          c,
          row,
          { opcode: op("SHOUT"), payload: shoutPayload(other).payload },
          `#${limit + 1} in the window opened at 1.1 s`,
        );
      },
    );
  },

  "whisper-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const to = env.main.identity.publicKey;
    await cases.run("recipient is 31 bytes", async () => {
      const w = await whisperTo(c.identity, to, { encrypted: false });
      const payload = enc(WhisperSchema, { ...w, recipient: to.subarray(0, 31) });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "recipient 31 bytes");
    });
    await cases.run("an encrypted whisper with a signature", async () => {
      const w = await whisperTo(c.identity, to);
      const payload = enc(WhisperSchema, { ...w, signature: randomBytes(64) });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "encrypted + signature");
    });
    await cases.run("a plaintext envelope that does not parse", async () => {
      const payload = enc(WhisperSchema, {
        recipient: to,
        ttl: 16,
        encrypted: false,
        envelope: UNPARSABLE,
        signature: randomBytes(64),
      });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "plaintext envelope");
    });
    await cases.run("a sealed envelope that does not parse", async () => {
      const payload = await handSealed(c.identity, to, UNPARSABLE, c.identity);
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "sealed envelope");
    });
  },

  "whisper-recipient": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const to = env.main.identity.publicKey;
    const carol = await identity();
    await cases.run("plaintext envelope for another node", async () => {
      const w = await whisperTo(c.identity, carol.publicKey, { encrypted: false });
      const payload = enc(WhisperSchema, { ...w, recipient: to });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "plaintext");
    });
    await cases.run("sealed to this node, envelope for another", async () => {
      const payload = await handSealed(
        c.identity,
        to,
        whisperEnvelope(c.identity.publicKey, carol.publicKey),
        c.identity,
      );
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "sealed");
    });
  },

  "whisper-signature": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const to = env.main.identity.publicKey;
    const mallory = await identity();
    await cases.run("plaintext, signature changed", async () => {
      const w = await whisperTo(c.identity, to, { encrypted: false });
      const payload = enc(WhisperSchema, { ...w, signature: flipped(w.signature) });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "plaintext");
    });
    await cases.run("encrypted, a ciphertext byte changed", async () => {
      const w = await whisperTo(c.identity, to);
      const payload = enc(WhisperSchema, { ...w, envelope: flipped(w.envelope, 80) });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "tampered");
    });
    await cases.run("encrypted, sealed to another node", async () => {
      const w = await whisperTo(c.identity, mallory.publicKey);
      const payload = enc(WhisperSchema, { ...w, recipient: to });
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "sealed to another");
    });
    await cases.run("encrypted, inner signature changed", async () => {
      const envelope = whisperEnvelope(c.identity.publicKey, to);
      const payload = await handSealed(c.identity, to, envelope, mallory);
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "inner signature");
    });
    await cases.run("encrypted, Noise key not the sender's", async () => {
      // Control: the same construction with the sender's own key is accepted.
      const control = await handSealed(
        c.identity,
        to,
        whisperEnvelope(c.identity.publicKey, to),
        c.identity,
      );
      await expectAck(
        c,
        { opcode: op("WHISPER"), payload: control },
        `${row.case}: hand-sealed control`,
      );
      const envelope = whisperEnvelope(c.identity.publicKey, to);
      const payload = await handSealed(mallory, to, envelope, c.identity);
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "Noise key");
    });
  },

  "whisper-stale": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const to = env.main.identity.publicKey;
    const minutes = stated(row, /more than (\d+) minutes/);
    for (const [what, shift] of [["old", -1], ["ahead", 1]] as const) {
      for (const encrypted of [true, false]) {
        const name = `${minutes + 1} minutes ${what}, ${encrypted ? "encrypted" : "plaintext"}`;
        await cases.run(name, async () => {
          const w = await whisperTo(c.identity, to, {
            encrypted,
            timestampMs: Date.now() + shift * (minutes + 1) * MINUTE,
          });
          await expectNack(c, row, { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) }, name);
        });
      }
    }
    await cases.run(`${minutes - 1} minutes old is accepted`, async () => {
      const w = await whisperTo(c.identity, to, {
        timestampMs: Date.now() - (minutes - 1) * MINUTE,
      });
      await expectAck(
        c,
        { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) },
        `${row.case}: within`,
      );
    });
  },

  "whisper-too-large": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const to = env.main.identity.publicKey;
    await cases.run(`plaintext body of ${DEFAULT_MAX_WHISPER_BODY_SIZE + 1} bytes`, async () => {
      const w = await whisperTo(c.identity, to, {
        encrypted: false,
        body: new Uint8Array(DEFAULT_MAX_WHISPER_BODY_SIZE + 1),
      });
      await expectNack(c, row, { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) }, "body");
    });
  },

  "whisper-ttl": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const carol = await identity();
    for (const encrypted of [true, false]) {
      await cases.run(`ttl 0 at a relay, ${encrypted ? "encrypted" : "plaintext"}`, async () => {
        const w = await whisperTo(c.identity, carol.publicKey, { ttl: 0, encrypted });
        await expectNack(
          c,
          row,
          { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) },
          "ttl 0",
        );
      });
    }
  },

  "whisper-loop": async (env, row, cases) => {
    // The recipient holds the relayed copy unanswered, so the relay is still
    // relaying it when the same envelope comes back.
    const recipient = await env.connect(env.main);
    const c = await env.connect(env.main);
    const w = await whisperTo(c.identity, recipient.identity.publicKey, { ttl: 3 });
    const payload = enc(WhisperSchema, w);
    const ackData = enc(WhisperAckSchema, { hash: whisperHash(w), hops: 1 });
    const relayed = (after: number) =>
      recipient.next((r) => r.frame.opcode === op("WHISPER") && !r.ack && !r.nack, { after });
    const firstId = c.newId();
    const firstAt = recipient.received.length;
    await c.send({ id: firstId, opcode: op("WHISPER"), payload });
    const held = await relayed(firstAt);
    if (!held) fail(`${row.case}: the relay did not forward the first copy`);
    await cases.run("the same envelope while the first copy is in flight", async () => {
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "copy in flight");
    });
    await cases.run("the first copy, answered, is ACKed back (hops 2)", async () => {
      const after = c.received.length;
      await recipient.write(ackBytes(held!.frame.id, op("WHISPER"), ackData));
      const reply = await c.next((r) => r.frame.id === firstId && r.ack !== undefined, { after });
      const ack = reply && fromBinary(WhisperAckSchema, reply.ack!.data);
      if (!ack || ack.hops !== 2) {
        fail(`${row.case}: the first copy's ACK is ${JSON.stringify(ack)}`);
      }
    });
    await cases.run("a retry after the first was answered is routed again", async () => {
      const id = c.newId();
      const at = recipient.received.length;
      await c.send({ id, opcode: op("WHISPER"), payload });
      const again = await relayed(at);
      if (!again) fail(`${row.case}: the retry was not forwarded`);
      await recipient.write(ackBytes(again!.frame.id, op("WHISPER"), ackData));
      const reply = await c.next((r) => r.frame.id === id && (r.ack || r.nack) !== undefined);
      if (!reply?.ack) fail(`${row.case}: the retry got ${reply?.nack ? "a NACK" : "no reply"}`);
    });
  },

  "whisper-no-route": async (env, row, cases) => {
    const c = await env.connect(env.quiet);
    await until(() => env.quiet.peers().length === 1, "the quiet node has one peer");
    const carol = await identity();
    await cases.run("a relay with no other peer or contact", async () => {
      const w = await whisperTo(c.identity, carol.publicKey, { ttl: 5 });
      await expectNack(
        c,
        row,
        { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) },
        "no route",
      );
    });
  },

  "whisper-timeout": async (env, row, cases) => {
    const silent = await env.connect(env.main); // never answers
    const c = await env.connect(env.main);
    await cases.run("the next hop (the recipient) never answers", async () => {
      const w = await whisperTo(c.identity, silent.identity.publicKey, { ttl: 1 });
      await expectNack(
        c,
        row,
        { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) },
        "silent hop",
        {
          timeout: 20_000,
        },
      );
      const forwarded = silent.received.some((r) => r.frame.opcode === op("WHISPER"));
      if (!forwarded) fail(`${row.case}: the relay never forwarded the WHISPER to the next hop`);
    });
  },

  "find-node-target": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const length of [0, 31, 33]) {
      await cases.run(`target of ${length} bytes`, async () => {
        await expectNack(c, row, {
          opcode: op("FIND_NODE"),
          payload: findNode(randomBytes(length)),
        }, `${length} bytes`);
      });
    }
  },

  "find-value-key": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const length of [0, 31, 33]) {
      await cases.run(`key of ${length} bytes`, async () => {
        const payload = enc(FindValueRequestSchema, { key: randomBytes(length) });
        await expectNack(c, row, { opcode: op("FIND_VALUE"), payload }, `${length} bytes`);
      });
    }
  },

  "store-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const [what, record] of await malformedRecords()) {
      await cases.run(what, async () => {
        await expectNack(c, row, {
          opcode: op("STORE"),
          payload: enc(StoreRequestSchema, { record }),
        }, what);
      });
    }
    await cases.run("no record (no key)", async () => {
      await expectNack(
        c,
        row,
        { opcode: op("STORE"), payload: enc(StoreRequestSchema, {}) },
        "no record",
      );
    });
  },

  "store-signature": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const [what, record] of await badlySignedRecords()) {
      await cases.run(what, async () => {
        await expectNack(c, row, {
          opcode: op("STORE"),
          payload: enc(StoreRequestSchema, { record }),
        }, what);
      });
    }
  },

  "store-too-large": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const limit = stated(row, /\((\d+) KiB\)/) * 1024;
    await cases.run(`value of ${limit + 1} bytes`, async () => {
      const payload = storePayload(freshKey(), new Uint8Array(limit + 1));
      await expectNack(c, row, { opcode: op("STORE"), payload }, `${limit + 1} bytes`);
    });
    await cases.run(`value of ${limit} bytes is stored`, async () => {
      const payload = storePayload(freshKey(), new Uint8Array(limit));
      await expectAck(c, { opcode: op("STORE"), payload }, `${row.case}: at the limit`);
    });
  },

  "store-stale": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const key = freshKey();
    await expectAck(
      c,
      { opcode: op("STORE"), payload: storePayload(key, utf8("two"), 2) },
      "STORE v2",
    );
    for (
      const [what, payload] of [
        ["a lower version", storePayload(key, utf8("one"), 1)],
        ["the same version with another value", storePayload(key, utf8("other"), 2)],
      ] as const
    ) {
      await cases.run(what, async () => {
        const reply = await expectNack(c, row, { opcode: op("STORE"), payload }, what);
        heldVersion(row, what, reply, 2n);
      });
    }
  },

  "store-owner": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const [owner, other] = [await identity(), await identity()];
    const key = freshKey();
    await storeOwned(c, key, owner, "mine");
    await cases.run("an open record for an owned key", async () => {
      await expectNack(
        c,
        row,
        { opcode: op("STORE"), payload: storePayload(key, utf8("open"), 2) },
        "open v2",
      );
    });
    await cases.run("another owner's record for an owned key", async () => {
      const record = createRecord({ key, value: utf8("theirs"), version: 2, owner: other });
      await expectNack(c, row, {
        opcode: op("STORE"),
        payload: enc(StoreRequestSchema, { record }),
      }, "other v2");
    });
  },

  "store-quota": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const quota = MAIN_QUOTAS.maxRecordsPerPeer;
    await cases.run(
      `record ${quota + 1} from one sender (maxRecordsPerPeer ${quota})`,
      async () => {
        await storeMany(c, quota, row.case);
        await expectNack(c, row, {
          opcode: op("STORE"),
          payload: storePayload(freshKey(), utf8("one more")),
        }, "past the quota");
      },
    );
    await cases.run(`a full replica (${QUIET_MAX_RECORDS} records) and a farther key`, async () => {
      const q = await fillQuiet(env, row.case);
      const payload = storePayload(farthestKey(env.quiet.identity.nodeId), utf8("far"));
      await expectNack(q, row, { opcode: op("STORE"), payload }, "the farthest key");
    });
  },

  "metrics-off": async (env, row, cases) => {
    const c = await env.connect(env.quiet);
    await cases.run("a node without serveMetrics", async () => {
      const payload = enc(MetricsRequestSchema, { includeConnections: true });
      await expectNack(c, row, { opcode: op("METRICS"), payload }, "METRICS");
    });
  },

  "dial-back-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const nonce = randomBytes(16);
    const tries: [string, Uint8Array][] = [
      ["no address", enc(DialBackRequestSchema, { addrs: [], nonce })],
      [
        "5 addresses",
        enc(DialBackRequestSchema, {
          addrs: ["1", "2", "3", "4", "5"].map((p) => `127.0.0.1:${p}`),
          nonce,
        }),
      ],
      [
        "a nonce of 15 bytes",
        enc(DialBackRequestSchema, { addrs: ["127.0.0.1:1"], nonce: randomBytes(15) }),
      ],
      ["no nonce", enc(DialBackRequestSchema, { addrs: ["127.0.0.1:1"] })],
    ];
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("DIAL_BACK"), payload }, what);
      });
    }
  },

  "dial-back-busy": async (env, row, cases) => {
    const c = await env.connect(env.main);
    // A listener that accepts and never answers the handshake keeps the first dial-back in flight.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of silent) held.push(conn);
    })();
    try {
      await cases.run("a second DIAL_BACK while the first dials", async () => {
        const addrs = [`127.0.0.1:${silent.addr.port}`];
        const first = c.request({
          id: c.newId(),
          opcode: op("DIAL_BACK"),
          payload: enc(DialBackRequestSchema, { addrs, nonce: randomBytes(16) }),
        }, 10_000);
        await until(() => held.length > 0, "the node dials the silent listener");
        await expectNack(c, row, {
          opcode: op("DIAL_BACK"),
          payload: enc(DialBackRequestSchema, { addrs, nonce: randomBytes(16) }),
        }, "second DIAL_BACK");
        const answer = await first;
        if (answer?.ack === undefined) {
          fail("the first DIAL_BACK got no ACK once its dial timed out");
        }
      });
    } finally {
      silent.close();
      for (const conn of held) conn.close();
      await accepting.catch(() => {});
    }
  },

  "dial-back-off": async (env, row, cases) => {
    const c = await env.connect(env.quiet);
    await cases.run("a node with serveDialBack: false", async () => {
      const payload = enc(DialBackRequestSchema, {
        addrs: ["127.0.0.1:1"],
        nonce: randomBytes(16),
      });
      await expectNack(c, row, { opcode: op("DIAL_BACK"), payload }, "DIAL_BACK");
    });
  },

  "relay-off": async (env, row, cases) => {
    const c = await env.connect(env.quiet);
    await cases.run("reserve at a node that does not relay", async () => {
      const payload = enc(RelayRequestSchema, { kind: { case: "reserve", value: {} } });
      await expectNack(c, row, { opcode: op("RELAY"), payload }, "RELAY reserve");
    });
  },

  "relay-misplaced": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const tries: [string, Uint8Array][] = [
      [
        "connect",
        enc(RelayRequestSchema, { kind: { case: "connect", value: { target: randomBytes(32) } } }),
      ],
      [
        "accept",
        enc(RelayRequestSchema, {
          kind: { case: "accept", value: { circuitId: randomBytes(16) } },
        }),
      ],
      ["no request set", enc(RelayRequestSchema, {})],
    ];
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("RELAY"), payload }, `RELAY ${what}`);
      });
    }
  },

  "holepunch-direct": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const kind of ["connect", "sync"] as const) {
      await cases.run(`${kind} over a direct connection`, async () => {
        const payload = enc(HolePunchSchema, {
          kind: kind === "connect"
            ? { case: kind, value: { addrs: ["127.0.0.1:40000"], windowMs: 1_000 } }
            : { case: kind, value: {} },
        });
        await expectNack(c, row, { opcode: op("HOLE_PUNCH"), payload }, `HOLE_PUNCH ${kind}`);
      });
    }
  },

  "cas-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const key = freshKey();
    const record = { key, value: utf8("v"), version: 1n };
    const tries: [string, Uint8Array][] = [
      ["no record", enc(CasRequestSchema, { proposal: randomBytes(16), phase: 1 })],
      ["a key of 31 bytes", prepare({ ...record, key: randomBytes(31) }, 0)],
      ["a proposal of 15 bytes", prepare(record, 0, randomBytes(15))],
      [
        "phase UNSPECIFIED (0)",
        enc(CasRequestSchema, { record, proposal: randomBytes(16), phase: 0 }),
      ],
      [
        "unknown phase 9",
        enc(CasRequestSchema, { record, proposal: randomBytes(16), phase: 9 as never }),
      ],
      ["PREPARE of a version not above expected", prepare(record, 1)],
      [
        "COMMIT without a record (no key)",
        enc(CasRequestSchema, { proposal: randomBytes(16), phase: 2 }),
      ],
      [
        "ABORT with a proposal of 15 bytes",
        enc(CasRequestSchema, { record: { key }, proposal: randomBytes(15), phase: 3 }),
      ],
    ];
    for (const [what, malformed] of await malformedRecords()) {
      if (malformed.key?.length === 32) tries.push([`PREPARE: ${what}`, prepare(malformed, 0)]);
    }
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("DHT_CAS"), payload }, what);
      });
    }
  },

  "cas-signature": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const [what, record] of await badlySignedRecords()) {
      await cases.run(`PREPARE: ${what}`, async () => {
        await expectNack(c, row, { opcode: op("DHT_CAS"), payload: prepare(record, 0) }, what);
      });
    }
  },

  "cas-too-large": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const limit = stated(row, /\((\d+) KiB\)/) * 1024;
    await cases.run(`PREPARE: a value of ${limit + 1} bytes`, async () => {
      const record = { key: freshKey(), value: new Uint8Array(limit + 1), version: 1n };
      await expectNack(c, row, { opcode: op("DHT_CAS"), payload: prepare(record, 0) }, "too large");
    });
  },

  "cas-owner": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const [owner, other] = [await identity(), await identity()];
    const key = freshKey();
    await storeOwned(c, key, owner, "mine");
    await cases.run("PREPARE: an open record for an owned key", async () => {
      const payload = prepare({ key, value: utf8("open"), version: 2n }, 1);
      await expectNack(c, row, { opcode: op("DHT_CAS"), payload }, "open");
    });
    await cases.run("PREPARE: another owner's record for an owned key", async () => {
      const record = createRecord({ key, value: utf8("theirs"), version: 2, owner: other });
      await expectNack(
        c,
        row,
        { opcode: op("DHT_CAS"), payload: prepare(record, 1) },
        "other owner",
      );
    });
  },

  "cas-expected": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("PREPARE expecting a version of a key not held", async () => {
      const payload = prepare({ key: freshKey(), value: utf8("v"), version: 3n }, 2);
      const reply = await expectNack(c, row, { opcode: op("DHT_CAS"), payload }, "unheld");
      heldVersion(row, "unheld", reply, 0n);
    });
    await cases.run("PREPARE expecting another version than held", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("v1")) },
        "STORE v1",
      );
      const payload = prepare({ key, value: utf8("v"), version: 3n }, 2);
      const reply = await expectNack(c, row, { opcode: op("DHT_CAS"), payload }, "held v1");
      heldVersion(row, "held v1", reply, 1n);
    });
    await cases.run("PREPARE while reserved for another proposal", async () => {
      const record = { key: freshKey(), value: utf8("v"), version: 1n };
      await expectAck(
        c,
        { opcode: op("DHT_CAS"), payload: prepare(record, 0) },
        `${row.case}: first PREPARE`,
      );
      const reply = await expectNack(c, row, {
        opcode: op("DHT_CAS"),
        payload: prepare(record, 0),
      }, "reserved");
      busy(row, heldVersion(row, "reserved", reply, 0n));
    });
  },

  "cas-unprepared": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("COMMIT of a proposal never prepared (key not held)", async () => {
      const payload = commit(freshKey(), randomBytes(16));
      await expectNack(c, row, { opcode: op("DHT_CAS"), payload }, "unheld");
    });
    await cases.run("COMMIT of a proposal never prepared (key held)", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("v1")) },
        "STORE v1",
      );
      const reply = await expectNack(c, row, {
        opcode: op("DHT_CAS"),
        payload: commit(key, randomBytes(16)),
      }, "held");
      heldVersion(row, "held", reply, 1n);
    });
    await cases.run("COMMIT naming another proposal than the one reserved", async () => {
      const key = freshKey();
      const record = { key, value: utf8("v"), version: 1n };
      await expectAck(
        c,
        { opcode: op("DHT_CAS"), payload: prepare(record, 0) },
        `${row.case}: PREPARE`,
      );
      await expectNack(
        c,
        row,
        { opcode: op("DHT_CAS"), payload: commit(key, randomBytes(16)) },
        "other proposal",
      );
    });
  },

  "cas-quota": async (env, row, cases) => {
    await quotaCases(
      env,
      row,
      cases,
      (key, proposal) => prepare({ key, value: utf8("v"), version: 1n }, 0, proposal),
      "DHT_CAS",
    );
  },

  "lock-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("a key of 31 bytes", async () => {
      await expectNack(c, row, { opcode: op("DHT_LOCK"), payload: lock(randomBytes(31)) }, "key");
    });
    await cases.run("min_fencing_token 2^53", async () => {
      const payload = lock(freshKey(), { minFencingToken: 2n ** 53n });
      await expectNack(c, row, { opcode: op("DHT_LOCK"), payload }, "min token");
    });
  },

  "lock-held": async (env, row, cases) => {
    const holder = await env.connect(env.main);
    const c = await env.connect(env.main);
    const key = freshKey();
    await expectAck(holder, { opcode: op("DHT_LOCK"), payload: lock(key) }, "the holder's lock");
    await cases.run("another holder has a live lease", async () => {
      const reply = await expectNack(
        c,
        row,
        { opcode: op("DHT_LOCK"), payload: lock(key) },
        "taken",
      );
      heldBy(row, reply, holder.identity.publicKey);
    });
  },

  "lock-lost": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const noData = (what: string, reply: Awaited<ReturnType<typeof expectNack>>) => {
      const n = reply.nack!.data.length;
      if (n !== 0) {
        fail(`${row.case} [${what}]: the NACK carries ${n} bytes of data; the row says none`);
      }
    };
    await cases.run("renew of a released lease", async () => {
      const key = freshKey();
      const grant = await expectAck(c, { opcode: op("DHT_LOCK"), payload: lock(key) }, "lock");
      await expectAck(c, {
        opcode: op("DHT_UNLOCK"),
        payload: enc(UnlockRequestSchema, { key, fencingToken: grant.fencingToken }),
      }, "unlock");
      const payload = lock(key, { fencingToken: grant.fencingToken });
      noData("released", await expectNack(c, row, { opcode: op("DHT_LOCK"), payload }, "released"));
    });
    await cases.run("renew with a token never granted", async () => {
      const payload = lock(freshKey(), { fencingToken: 12345n });
      noData(
        "never granted",
        await expectNack(c, row, { opcode: op("DHT_LOCK"), payload }, "never granted"),
      );
    });
  },

  "lock-quota": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const quota = MAIN_QUOTAS.maxLocksPerPeer;
    await cases.run(`lease ${quota + 1} (maxLocksPerPeer ${quota})`, async () => {
      for (let i = 0; i < quota; i++) {
        await expectAck(
          c,
          { opcode: op("DHT_LOCK"), payload: lock(freshKey()) },
          `${row.case}: lock ${i + 1}`,
        );
      }
      await expectNack(
        c,
        row,
        { opcode: op("DHT_LOCK"), payload: lock(freshKey()) },
        "past the quota",
      );
    });
    await cases.run(
      `every lock of the replica held (the quiet node's maxLocks ${QUIET_MAX_LOCKS})`,
      async () => {
        const holders = [];
        for (let i = 0; i < QUIET_MAX_LOCKS; i++) {
          const holder = await env.connect(env.quiet); // each under its per-peer quota
          await expectAck(holder, {
            opcode: op("DHT_LOCK"),
            payload: lock(freshKey(), { ttl: 300_000n }),
          }, `${row.case}: quiet lock ${i + 1}`);
          holders.push(holder);
        }
        const q = await env.connect(env.quiet);
        await expectNack(q, row, { opcode: op("DHT_LOCK"), payload: lock(freshKey()) }, "all held");
      },
    );
  },

  "unlock-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("a key of 31 bytes", async () => {
      const payload = enc(UnlockRequestSchema, { key: randomBytes(31) });
      await expectNack(c, row, { opcode: op("DHT_UNLOCK"), payload }, "key");
    });
  },

  "unlock-held": async (env, row, cases) => {
    const holder = await env.connect(env.main);
    const c = await env.connect(env.main);
    const key = freshKey();
    await expectAck(holder, { opcode: op("DHT_LOCK"), payload: lock(key) }, "the holder's lock");
    await cases.run("another holder has the live lease", async () => {
      const payload = enc(UnlockRequestSchema, { key });
      const reply = await expectNack(c, row, { opcode: op("DHT_UNLOCK"), payload }, "not mine");
      heldBy(row, reply, holder.identity.publicKey);
    });
  },

  "patch-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const key = freshKey();
    await expectAck(
      c,
      { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) },
      "STORE abc",
    );
    const good = {
      base: 1,
      version: 2,
      offset: 3,
      insert: utf8("d"),
      valueHash: hash(utf8("abcd")),
    };
    const limit = DEFAULT_MAX_VALUE_SIZE;
    const big = new Uint8Array(limit - 2); // "abc" + this: one byte over the limit
    const tries: [string, Uint8Array][] = [
      ["a key of 31 bytes", patch(randomBytes(31), good)],
      ["no patch", enc(PatchRequestSchema, { key, proposal: randomBytes(16) })],
      ["a proposal of 15 bytes", patch(key, { ...good, proposal: randomBytes(15) })],
      ["a version not above the base", patch(key, { ...good, version: 1 })],
      ["a splice that does not apply", patch(key, { ...good, offset: 10 })],
      [
        `a result over the value limit (${limit + 1} bytes)`,
        patch(key, {
          ...good,
          insert: big,
          valueHash: hash(concatBytes([utf8("abc"), big])),
        }),
      ],
    ];
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, what);
      });
    }
  },

  "patch-base": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const appendD = { offset: 3, insert: utf8("d"), valueHash: hash(utf8("abcd")) };
    await cases.run("a base version the replica does not hold", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) },
        "STORE abc",
      );
      const payload = patch(key, { ...appendD, base: 2, version: 3 });
      const reply = await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "base 2");
      heldVersion(row, "base 2", reply, 1n);
    });
    await cases.run("a key the replica does not hold", async () => {
      const payload = patch(freshKey(), { ...appendD, base: 1, version: 2 });
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "unheld");
    });
    await cases.run("reserved for another proposal", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) },
        "STORE abc",
      );
      await expectAck(c, {
        opcode: op("DHT_PATCH"),
        payload: patch(key, { ...appendD, base: 1, version: 2 }),
      }, `${row.case}: first PATCH`);
      const reply = await expectNack(c, row, {
        opcode: op("DHT_PATCH"),
        payload: patch(key, { ...appendD, base: 1, version: 2 }),
      }, "reserved");
      busy(row, heldVersion(row, "reserved", reply, 1n));
    });
  },

  "patch-hash": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const key = freshKey();
    await expectAck(
      c,
      { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) },
      "STORE abc",
    );
    await cases.run("value_hash of another value", async () => {
      const payload = patch(key, {
        base: 1,
        version: 2,
        offset: 3,
        insert: utf8("d"),
        valueHash: hash(utf8("xyz")),
      });
      const reply = await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "hash");
      const conflict = heldVersion(row, "hash", reply, 1n);
      if (!conflict.current) {
        fail(`${row.case}: the VersionConflict carries no record (the replica's)`);
      }
    });
  },

  "patch-signature": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const [owner, mallory] = [await identity(), await identity()];
    const key = freshKey();
    const { result, appendD } = await ownedAbc(c, key, owner);
    const signedBy = (who: Identity) => sign(who, recordSigningBytes(key, 2n, hash(result)));
    await cases.run("the result signed by another key than the owner", async () => {
      const payload = patch(key, {
        ...appendD,
        owner: owner.publicKey,
        signature: signedBy(mallory),
      });
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "other signer");
    });
    await cases.run("the owner's signature of another result", async () => {
      const signature = sign(owner, recordSigningBytes(key, 2n, hash(utf8("xyz"))));
      const payload = patch(key, { ...appendD, owner: owner.publicKey, signature });
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "other result");
    });
    await cases.run("control: the owner's signature of the result is accepted", async () => {
      const payload = patch(key, {
        ...appendD,
        owner: owner.publicKey,
        signature: signedBy(owner),
      });
      await expectAck(c, { opcode: op("DHT_PATCH"), payload }, `${row.case}: control`);
    });
  },

  "patch-owner": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const [owner, other] = [await identity(), await identity()];
    const key = freshKey();
    const { result, appendD } = await ownedAbc(c, key, owner);
    await cases.run("an open patch of an owned key", async () => {
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload: patch(key, appendD) }, "open");
    });
    await cases.run("another owner's patch of an owned key", async () => {
      const signature = sign(other, recordSigningBytes(key, 2n, hash(result)));
      const payload = patch(key, { ...appendD, owner: other.publicKey, signature });
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "other owner");
    });
  },

  "patch-quota": async (env, row, cases) => {
    await quotaCases(
      env,
      row,
      cases,
      (key, proposal) =>
        patch(key, {
          base: 1,
          version: 2,
          offset: 3,
          insert: utf8("d"),
          valueHash: hash(utf8("abcd")),
          proposal,
        }),
      "DHT_PATCH",
      true,
    );
  },

  "changes-key": async (env, row, cases) => {
    const c = await env.connect(env.main);
    for (const length of [0, 31]) {
      await cases.run(`a key of ${length} bytes`, async () => {
        const payload = enc(ChangesRequestSchema, { key: randomBytes(length) });
        await expectNack(c, row, { opcode: op("DHT_CHANGES"), payload }, `${length} bytes`);
      });
    }
  },

  "app-rejected": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("the handler throws", async () => {
      await expectNack(c, row, { opcode: APP.reject.opcode, payload: appPayload("x") }, "throws");
    });
    await cases.run("the handler throws NackError FORBIDDEN: that reason", async () => {
      await expectNack(
        c,
        row,
        { opcode: APP.forbid.opcode, payload: appPayload("x") },
        "NackError",
        {
          reason: "FORBIDDEN",
        },
      );
    });
  },

  "internal": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("a handler throws NackError INTERNAL", async () => {
      await expectNack(
        c,
        row,
        { opcode: APP.internal.opcode, payload: appPayload("x") },
        "INTERNAL",
      );
    });
  },
};
