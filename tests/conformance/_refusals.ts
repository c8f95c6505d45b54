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
  FindNodeRequestSchema,
  FindValueRequestSchema,
  LockRequestSchema,
  MetricsRequestSchema,
  PatchRequestSchema,
  PingSchema,
  SealedWhisperSchema,
  SetConnectionOptSchema,
  ShoutEnvelopeSchema,
  StoreRequestSchema,
  UnlockRequestSchema,
  WhisperEnvelopeSchema,
  WhisperSchema,
} from "../../lib/protocol.ts";
import { createRecord } from "../../lib/dht/record.ts";
import { createHandshake, x25519KeyPairFromPrivateKey } from "../../lib/secure/noise.ts";
import {
  compareDistance,
  compress,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_MAX_WHISPER_BODY_SIZE,
  generateIdentity,
  type Identity,
  sealWhisper,
  sign,
  WHISPER_PROLOGUE,
  WHISPER_SIGNATURE_CONTEXT,
  whisperHash,
  x25519PrivateKeyFromEd25519,
  x25519PublicKeyFromEd25519,
} from "../../mod.ts";
import { frameBytes, until } from "./_client.ts";
import {
  APP,
  appPayload,
  concat,
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

// ---- payloads ----

function ping(data = new Uint8Array(8)): Uint8Array {
  return enc(PingSchema, { data });
}

function findNode(target = freshKey()): Uint8Array {
  return enc(FindNodeRequestSchema, { target });
}

function prepare(
  key: Uint8Array,
  version: number,
  expected: number,
  proposal = randomBytes(16),
  value = utf8("v"),
): Uint8Array {
  return enc(CasRequestSchema, {
    record: { key, value, version: BigInt(version) },
    expectedVersion: BigInt(expected),
    proposal,
    phase: 1,
  });
}

function commit(key: Uint8Array, proposal: Uint8Array): Uint8Array {
  return enc(CasRequestSchema, { record: { key }, proposal, phase: 2 });
}

function lock(key: Uint8Array, fencingToken = 0n, minFencingToken = 0n): Uint8Array {
  return enc(LockRequestSchema, { key, ttlMs: 10_000n, fencingToken, minFencingToken });
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
  },
): Uint8Array {
  return enc(PatchRequestSchema, {
    key,
    proposal: init.proposal ?? randomBytes(16),
    patch: {
      baseVersion: BigInt(init.base),
      version: BigInt(init.version),
      format: 1, // PATCH_FORMAT_BYTE_SPLICE
      splices: [{ offset: BigInt(init.offset), deleteCount: 0n, insert: init.insert }],
      valueHash: init.valueHash,
    },
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
  const signature = sign(signer, concat(utf8(WHISPER_SIGNATURE_CONTEXT), envelope));
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

// ---- the scenarios ----

/** The refusal table's scenarios, by case id. */
export const REFUSAL_SCENARIOS: Record<string, Scenario> = {
  "unknown-opcode": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const assigned = new Set(OPCODES.map((r) => r.opcode));
    const unassigned = Array.from({ length: 128 }, (_, i) => i).filter((v) => !assigned.has(v));
    if (!unassigned.includes(18)) fail("18 is in the opcode table, yet the README reserves it");
    const tried = [...unassigned, 128, 500, 999, 1000, 1006, 5000, 0xffff_ffff];
    for (const opcode of tried) {
      const what = opcode === 18
        ? "reserved 18"
        : opcode >= 1000
        ? `unregistered application opcode ${opcode}`
        : `unassigned ${opcode}`;
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode, payload: new Uint8Array(0) }, what);
      });
    }
  },

  "undecodable": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const requests = OPCODES.filter((r) => r.kind === "request").map((r) => r.opcode);
    for (const opcode of [...requests, APP.echo.opcode]) {
      const what = `${OPCODES.find((r) => r.opcode === opcode)?.name ?? "application 1004"}`;
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
    await cases.run(`setting ${unannounced} (not announced)`, async () => {
      const payload = compress(1, ping(new Uint8Array(600)));
      await expectNack(c, row, {
        opcode: op("PING"),
        payload,
        flags: 1,
        compression: unannounced,
      }, `setting ${unannounced}`);
    });
    for (const [name, setting] of [["bz2", 0], ["gzip", 1], ["zlib", 3]] as const) {
      if (!announced.includes(setting)) continue;
      await cases.run(`${name} that does not decompress`, async () => {
        await expectNack(c, row, {
          opcode: op("PING"),
          payload: utf8("these bytes are no compressed stream at all"),
          flags: 1,
          compression: setting,
        }, `${name} garbage`);
      });
    }
    await cases.run("STORE, gzip that does not decompress", async () => {
      await expectNack(c, row, {
        opcode: op("STORE"),
        payload: utf8("not gzip"),
        flags: 1,
        compression: 1,
      }, "STORE gzip garbage");
    });
  },

  "inflates-too-far": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const limit = c.channel.remote.maxFrameSize || DEFAULT_MAX_FRAME_SIZE;
    await cases.run(`PING inflating to its max_frame_size + 1 KiB (${limit})`, async () => {
      const payload = compress(1, ping(new Uint8Array(limit + 1024)));
      await expectNack(c, row, { opcode: op("PING"), payload, flags: 1, compression: 1 }, "gzip");
    });
    await cases.run("STORE inflating past it (zlib)", async () => {
      const payload = compress(3, storePayload(freshKey(), new Uint8Array(limit + 1024)));
      await expectNack(c, row, { opcode: op("STORE"), payload, flags: 1, compression: 3 }, "zlib");
    });
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
      const signature = sign(other, concat(utf8("carrier/v1 shout:"), envelope));
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
    // The quiet node's clock does not move: every SHOUT is within one second.
    const c = await env.connect(env.quiet);
    const limit = stated(row, /more than (\d+) SHOUTs/);
    const origin = await identity();
    const first = Array.from({ length: limit }, () => ({
      id: c.newId(),
      opcode: op("SHOUT"),
      payload: shoutPayload(origin).payload,
    }));
    await cases.run(`the first ${limit} of one origin are ACKed`, async () => {
      const replies = await c.requestMany(first, 20_000);
      const refused = replies.filter((r) => !r?.ack).length;
      if (refused > 0) fail(`${row.case}: ${refused} of the first ${limit} SHOUTs were not ACKed`);
    });
    await cases.run(`SHOUT ${limit + 1} of the same origin`, async () => {
      await expectNack(
        c,
        row,
        { opcode: op("SHOUT"), payload: shoutPayload(origin).payload },
        `#${limit + 1}`,
      );
    });
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
    const recipient = await env.connect(env.main, { answer: "ack" });
    const c = await env.connect(env.main);
    const w = await whisperTo(c.identity, recipient.identity.publicKey, { ttl: 3 });
    const payload = enc(WhisperSchema, w);
    await cases.run("the first copy is relayed and ACKed (hops 2)", async () => {
      const ack = await expectAck(c, { opcode: op("WHISPER"), payload }, `${row.case}: first copy`);
      if (!same(ack.hash, whisperHash(w)) || ack.hops !== 2) {
        fail(
          `${row.case}: the relayed ACK is WhisperAck { hops: ${ack.hops} } ` +
            `(hash ${same(ack.hash, whisperHash(w)) ? "right" : "wrong"}), expected hops 2`,
        );
      }
    });
    await cases.run("the same envelope again", async () => {
      await expectNack(c, row, { opcode: op("WHISPER"), payload }, "second copy");
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
    const owner = await identity();
    const signed = createRecord({ key: freshKey(), value: utf8("v"), version: 1, owner });
    const tries: [string, Uint8Array][] = [
      ["key of 31 bytes", storePayload(randomBytes(31), utf8("v"))],
      ["no record", enc(StoreRequestSchema, {})],
      ["version 0", storePayload(freshKey(), utf8("v"), 0)],
      [
        "version 2^53",
        enc(StoreRequestSchema, {
          record: { key: freshKey(), value: utf8("v"), version: 2n ** 53n },
        }),
      ],
      [
        "an open record with a signature",
        storePayload(freshKey(), utf8("v"), 1, {
          signature: randomBytes(64),
        }),
      ],
      [
        "an owner of 31 bytes",
        enc(StoreRequestSchema, {
          record: { ...signed, owner: owner.publicKey.subarray(0, 31) },
        }),
      ],
    ];
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("STORE"), payload }, what);
      });
    }
  },

  "store-signature": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const owner = await identity();
    const mallory = await identity();
    await cases.run("signed by another key than the owner", async () => {
      const forged = createRecord({
        key: freshKey(),
        value: utf8("v"),
        version: 1,
        owner: mallory,
      });
      const payload = enc(StoreRequestSchema, { record: { ...forged, owner: owner.publicKey } });
      await expectNack(c, row, { opcode: op("STORE"), payload }, "other signer");
    });
    await cases.run("the owner's signature of another version", async () => {
      const v1 = createRecord({ key: freshKey(), value: utf8("v"), version: 1, owner });
      const payload = enc(StoreRequestSchema, { record: { ...v1, version: 2n } });
      await expectNack(c, row, { opcode: op("STORE"), payload }, "other version");
    });
  },

  "store-too-large": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const limit = stated(row, /\((\d+) KiB\)/) * 1024;
    await cases.run(`value of ${limit + 1} bytes`, async () => {
      const payload = storePayload(freshKey(), new Uint8Array(limit + 1));
      await expectNack(c, row, { opcode: op("STORE"), payload }, `${limit + 1} bytes`);
    });
    await cases.run(`value of ${limit} bytes is stored`, async () => {
      await expectAck(c, {
        opcode: op("STORE"),
        payload: storePayload(freshKey(), new Uint8Array(limit)),
      }, `${row.case}: at the limit`);
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
    const conflict = (what: string) => (reply: Awaited<ReturnType<typeof expectNack>>) => {
      const data = reply.nack!.data;
      if (data.length === 0) fail(`${row.case} [${what}]: the NACK carries no VersionConflict`);
    };
    await cases.run("a lower version", async () => {
      const reply = await expectNack(c, row, {
        opcode: op("STORE"),
        payload: storePayload(key, utf8("one"), 1),
      }, "v1");
      conflict("v1")(reply);
    });
    await cases.run("the same version with another value", async () => {
      const reply = await expectNack(c, row, {
        opcode: op("STORE"),
        payload: storePayload(key, utf8("other"), 2),
      }, "v2 other");
      conflict("v2 other")(reply);
    });
  },

  "store-owner": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const owner = await identity();
    const other = await identity();
    const key = freshKey();
    const v1 = createRecord({ key, value: utf8("mine"), version: 1, owner });
    await expectAck(
      c,
      { opcode: op("STORE"), payload: enc(StoreRequestSchema, { record: v1 }) },
      "owned v1",
    );
    await cases.run("an open record for an owned key", async () => {
      await expectNack(
        c,
        row,
        { opcode: op("STORE"), payload: storePayload(key, utf8("open"), 2) },
        "open v2",
      );
    });
    await cases.run("another owner's record for an owned key", async () => {
      const v2 = createRecord({ key, value: utf8("theirs"), version: 2, owner: other });
      await expectNack(c, row, {
        opcode: op("STORE"),
        payload: enc(StoreRequestSchema, { record: v2 }),
      }, "other v2");
    });
  },

  "store-quota": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const quota = MAIN_QUOTAS.maxRecordsPerPeer;
    await cases.run(
      `record ${quota + 1} from one sender (maxRecordsPerPeer ${quota})`,
      async () => {
        for (let i = 0; i < quota; i++) {
          await expectAck(c, {
            opcode: op("STORE"),
            payload: storePayload(freshKey(), utf8(`r${i}`)),
          }, `${row.case}: record ${i + 1}`);
        }
        await expectNack(c, row, {
          opcode: op("STORE"),
          payload: storePayload(freshKey(), utf8("one more")),
        }, "past the quota");
      },
    );
    await cases.run(`a full replica (${QUIET_MAX_RECORDS} records) and a farther key`, async () => {
      const q = await env.connect(env.quiet);
      const self = env.quiet.identity.nodeId;
      const keys = Array.from({ length: QUIET_MAX_RECORDS + 1 }, freshKey)
        .sort((a, b) => compareDistance(self, a, b));
      for (const key of keys.slice(0, QUIET_MAX_RECORDS)) {
        await expectAck(
          q,
          { opcode: op("STORE"), payload: storePayload(key, utf8("near")) },
          `${row.case}: near key`,
        );
      }
      await expectNack(q, row, {
        opcode: op("STORE"),
        payload: storePayload(keys.at(-1)!, utf8("far")),
      }, "farthest key");
    });
  },

  "metrics-off": async (env, row, cases) => {
    const c = await env.connect(env.quiet);
    await cases.run("a node without serveMetrics", async () => {
      const payload = enc(MetricsRequestSchema, { includeConnections: true });
      await expectNack(c, row, { opcode: op("METRICS"), payload }, "METRICS");
    });
  },

  "cas-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const key = freshKey();
    const tries: [string, Uint8Array][] = [
      ["no record", enc(CasRequestSchema, { proposal: randomBytes(16), phase: 1 })],
      ["a key of 31 bytes", prepare(randomBytes(31), 1, 0)],
      ["a proposal of 15 bytes", prepare(key, 1, 0, randomBytes(15))],
      [
        "phase UNSPECIFIED (0)",
        enc(CasRequestSchema, {
          record: { key, value: utf8("v"), version: 1n },
          proposal: randomBytes(16),
          phase: 0,
        }),
      ],
      [
        "unknown phase 9",
        enc(CasRequestSchema, {
          record: { key, value: utf8("v"), version: 1n },
          proposal: randomBytes(16),
          phase: 9 as never, // not a CasPhase
        }),
      ],
      ["PREPARE of a version not above expected", prepare(key, 1, 1)],
    ];
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("DHT_CAS"), payload }, what);
      });
    }
  },

  "cas-expected": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("PREPARE expecting a version of a key not held", async () => {
      await expectNack(
        c,
        row,
        { opcode: op("DHT_CAS"), payload: prepare(freshKey(), 3, 2) },
        "unheld",
      );
    });
    await cases.run("PREPARE expecting another version than held", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("v1")) },
        "STORE v1",
      );
      await expectNack(c, row, { opcode: op("DHT_CAS"), payload: prepare(key, 3, 2) }, "held v1");
    });
    await cases.run("PREPARE while reserved for another proposal", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("DHT_CAS"), payload: prepare(key, 1, 0) },
        `${row.case}: first PREPARE`,
      );
      await expectNack(c, row, { opcode: op("DHT_CAS"), payload: prepare(key, 1, 0) }, "reserved");
    });
  },

  "cas-unprepared": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("COMMIT of a proposal never prepared (key not held)", async () => {
      await expectNack(c, row, {
        opcode: op("DHT_CAS"),
        payload: commit(freshKey(), randomBytes(16)),
      }, "unheld");
    });
    await cases.run("COMMIT of a proposal never prepared (key held)", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("v1")) },
        "STORE v1",
      );
      await expectNack(
        c,
        row,
        { opcode: op("DHT_CAS"), payload: commit(key, randomBytes(16)) },
        "held",
      );
    });
  },

  "cas-quota": async (env, row, cases) => {
    const c = await env.connect(env.main);
    const quota = MAIN_QUOTAS.maxReservationsPerPeer;
    await cases.run(`PREPARE ${quota + 1} (maxReservationsPerPeer ${quota})`, async () => {
      for (let i = 0; i < quota; i++) {
        await expectAck(
          c,
          { opcode: op("DHT_CAS"), payload: prepare(freshKey(), 1, 0) },
          `${row.case}: PREPARE ${i + 1}`,
        );
      }
      await expectNack(
        c,
        row,
        { opcode: op("DHT_CAS"), payload: prepare(freshKey(), 1, 0) },
        "past the quota",
      );
    });
  },

  "lock-malformed": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("a key of 31 bytes", async () => {
      await expectNack(c, row, { opcode: op("DHT_LOCK"), payload: lock(randomBytes(31)) }, "key");
    });
    await cases.run("min_fencing_token 2^53", async () => {
      await expectNack(
        c,
        row,
        { opcode: op("DHT_LOCK"), payload: lock(freshKey(), 0n, 2n ** 53n) },
        "min token",
      );
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
      if (reply.nack!.data.length === 0) fail(`${row.case}: the NACK carries no LockHeld`);
    });
  },

  "lock-lost": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("renew of a released lease", async () => {
      const key = freshKey();
      const grant = await expectAck(c, { opcode: op("DHT_LOCK"), payload: lock(key) }, "lock");
      await expectAck(c, {
        opcode: op("DHT_UNLOCK"),
        payload: enc(UnlockRequestSchema, { key, fencingToken: grant.fencingToken }),
      }, "unlock");
      await expectNack(
        c,
        row,
        { opcode: op("DHT_LOCK"), payload: lock(key, grant.fencingToken) },
        "released",
      );
    });
    await cases.run("renew with a token never granted", async () => {
      await expectNack(
        c,
        row,
        { opcode: op("DHT_LOCK"), payload: lock(freshKey(), 12345n) },
        "never granted",
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
      if (reply.nack!.data.length === 0) fail(`${row.case}: the NACK carries no LockHeld`);
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
    const tries: [string, Uint8Array][] = [
      ["a key of 31 bytes", patch(randomBytes(31), good)],
      ["no patch", enc(PatchRequestSchema, { key, proposal: randomBytes(16) })],
      ["a proposal of 15 bytes", patch(key, { ...good, proposal: randomBytes(15) })],
      ["a version not above the base", patch(key, { ...good, version: 1 })],
      ["a splice that does not apply", patch(key, { ...good, offset: 10 })],
    ];
    for (const [what, payload] of tries) {
      await cases.run(what, async () => {
        await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, what);
      });
    }
  },

  "patch-base": async (env, row, cases) => {
    const c = await env.connect(env.main);
    await cases.run("a base version the replica does not hold", async () => {
      const key = freshKey();
      await expectAck(
        c,
        { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) },
        "STORE abc",
      );
      const payload = patch(key, {
        base: 2,
        version: 3,
        offset: 3,
        insert: utf8("d"),
        valueHash: hash(utf8("abcd")),
      });
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "base 2");
    });
    await cases.run("a key the replica does not hold", async () => {
      const payload = patch(freshKey(), {
        base: 1,
        version: 2,
        offset: 0,
        insert: utf8("d"),
        valueHash: hash(utf8("d")),
      });
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "unheld");
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
      await expectNack(c, row, { opcode: op("DHT_PATCH"), payload }, "hash");
    });
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
