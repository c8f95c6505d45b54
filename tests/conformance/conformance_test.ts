/**
 * Conformance (issue 13): the spec's tables, read from the README and
 * proto/, against each other, against the node's opcode registry, and
 * against a live node over a real TCP connection, so that the three cannot
 * drift apart.
 *
 * - Tables against proto/: the opcode table is `enum Opcode` (values,
 *   names, reserved 18), every message it names is defined, the refusal
 *   table's reasons are `enum NackReason` and every reason that is sent has
 *   a row; the one-way and id-0 rules say the same in both.
 * - The registry (`PROTOCOL_OPCODES`) is the opcode table.
 * - A live node, raw clients: every opcode of the table (a request gets
 *   exactly one ACK or NACK repeating its id and opcode, with the table's
 *   data; a one-way frame none, whatever its id), the request id rules, and
 *   one scenario per refusal row (see `_refusals.ts`).
 *
 * @module
 */
import assert from "node:assert/strict";
import { fromBinary } from "@bufbuild/protobuf";
import {
  AckSchema,
  CasRequestSchema,
  ChangesRequestSchema,
  DialBackRequestSchema,
  DialBackStatus,
  DisconnectSchema,
  FindNodeRequestSchema,
  FindValueRequestSchema,
  HolePunchSchema,
  IdentifySchema,
  LockRequestSchema,
  MetricsRequestSchema,
  NackReason,
  NackSchema,
  PatchRequestSchema,
  PingSchema,
  RelayDataSchema,
  RelayRequestSchema,
  SetConnectionOptSchema,
  ShoutSchema,
  SpeakSchema,
  UnlockRequestSchema,
  WhisperSchema,
} from "../../lib/protocol.ts";
import type { MessageEventDetail } from "../../mod.ts";
import { PROTOCOL_OPCODES, sealWhisper, whisperHash } from "../../protocol.ts";
import { ackBytes, describe, type FrameFields, nackBytes, type RawClient } from "./_client.ts";
import { until } from "../attack/_attack.ts";
import {
  APP,
  appPayload,
  enc,
  Env,
  expectAck,
  expectNoReply,
  fail,
  freshKey,
  hash,
  nextMessage,
  op,
  OPCODES,
  randomBytes,
  same,
  shoutPayload,
  storePayload,
  SubCases,
  utf8,
} from "./_env.ts";
import { REFUSAL_SCENARIOS } from "./_refusals.ts";
import type { Frame } from "../../lib/wire/frame.ts";
import {
  NO_REPLY,
  type OpcodeRow,
  PROTO_FILES,
  protoEnums,
  protoMessageComments,
  protoMessages,
  README,
  refusalTable,
} from "./_spec.ts";

const REFUSALS = refusalTable();
const ENUMS = protoEnums();
const OPCODE_ENUM = ENUMS.get("Opcode")!;
const REASON_ENUM = ENUMS.get("NackReason")!;

/** Text with Markdown line breaks and `//` comment prefixes folded into single spaces. */
function folded(text: string): string {
  return text.replace(/\n\s*(\/\/)?\s*/g, " ");
}

/** Names in an English list: "ACK, NACK, SPEAK and DISCONNECT". */
function listed(text: string): string[] {
  return text.split(/,\s*|\s+and\s+/).map((s) => s.trim()).filter((s) => s !== "");
}

// ---- the tables against proto/ ----

Deno.test("spec: the README's opcode table is proto's enum Opcode", () => {
  assert.ok(OPCODE_ENUM, "frame.proto has no enum Opcode");
  const proto = OPCODE_ENUM.values.map((v) => `${v.value} ${v.name}`);
  const table = OPCODES.map((r) => `${r.opcode} ${r.name}`);
  assert.deepEqual(table, proto, "opcode table rows (value name) against enum Opcode");
  assert.deepEqual(OPCODE_ENUM.reserved, [], "enum Opcode reserves no value");
  assert.match(folded(README), /Every unassigned value gets NACK `UNKNOWN_OPCODE`/);
});

Deno.test("spec: every message the opcode table names is a message of proto/", () => {
  const messages = protoMessages();
  const problems: string[] = [];
  for (const row of OPCODES) {
    const cells: [string, string][] = [["payload", row.payload]];
    if (row.kind === "one-way") {
      if (row.ack !== NO_REPLY || row.nack !== NO_REPLY) {
        problems.push(`${row.name} is one-way but its ACK/NACK data cells are not "${NO_REPLY}"`);
      }
    } else {
      if (row.ack === NO_REPLY || row.nack === NO_REPLY) {
        problems.push(`${row.name} is a request but says "${NO_REPLY}"`);
      }
      cells.push(["ACK data", row.ack], ["NACK data", row.nack]);
    }
    for (const [column, name] of cells) {
      if (name !== "" && name !== NO_REPLY && !messages.has(name)) {
        problems.push(`${row.name}'s ${column} ${name} is not a message of proto/carrier/v1`);
      }
    }
    if (row.payload === "") problems.push(`${row.name} has no payload message`);
  }
  assert.deepEqual(problems, []);
});

Deno.test("spec: enum Opcode's comments agree with the opcode table", () => {
  const problems: string[] = [];
  for (const value of OPCODE_ENUM.values) {
    const row = OPCODES.find((r) => r.opcode === value.value)!;
    const c = value.comment;
    const payload = /Payload (\w+)/.exec(c)?.[1];
    if (payload !== undefined && payload !== row.payload) {
      problems.push(`${row.name}: comment says payload ${payload}, the table ${row.payload}`);
    }
    const ack = /ACK (?:or NACK )?data (\w+)/.exec(c)?.[1];
    if (ack !== undefined && ack !== row.ack) {
      problems.push(`${row.name}: comment says ACK data ${ack}, the table "${row.ack}"`);
    }
    if (/ACK with no data/.test(c) && row.ack !== "") {
      problems.push(`${row.name}: comment says an ACK with no data, the table "${row.ack}"`);
    }
    const nack = /(?:ACK or )?NACK data (\w+)/.exec(c)?.[1];
    if (nack !== undefined && nack !== row.nack) {
      problems.push(`${row.name}: comment says NACK data ${nack}, the table "${row.nack}"`);
    }
    if (/One-way/.test(c) !== (row.kind === "one-way") && !["ACK", "NACK"].includes(row.name)) {
      problems.push(`${row.name}: the comment and the table's kind (${row.kind}) disagree`);
    }
    if (/\bA request\b/.test(c) && row.kind !== "request") {
      problems.push(`${row.name}: the comment says a request, the table ${row.kind}`);
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("spec: the one-way opcodes and the id 0 rules are the same in the README and frame.proto", () => {
  const oneWay = OPCODES.filter((r) => r.kind === "one-way").map((r) => r.name);
  const readme = folded(README);
  const frameProto = folded(PROTO_FILES.get("frame.proto")!);

  const inReadme = /A one-way frame \(([^)]*), one-way application opcodes\)/.exec(readme);
  assert.ok(inReadme, "the README's Frames section no longer lists the one-way frames");
  assert.deepEqual(listed(inReadme[1]), oneWay, "README's list of one-way frames");
  const inProto = /every opcode but ([^)]*?) and one-way application opcodes/.exec(frameProto);
  assert.ok(inProto, "Frame.id's comment no longer lists the one-way opcodes");
  assert.deepEqual(listed(inProto[1]), oneWay, "frame.proto's list of one-way opcodes");

  const carriedReadme = /([A-Z_]+(?:, [A-Z_]+)*) and application opcodes are still carried out/
    .exec(readme);
  const carriedProto = /still carries out ([A-Z_]+(?:, [A-Z_]+)*) and application opcodes/
    .exec(frameProto);
  assert.ok(carriedReadme && carriedProto, "the id 0 rule no longer names what is carried out");
  assert.deepEqual(listed(carriedReadme[1]), listed(carriedProto[1]));
  assert.deepEqual(listed(carriedReadme[1]), CARRIED_OUT_AT_ID_0, "what the live test expects");
});

Deno.test("spec: the refusal table's reasons are proto's enum NackReason", () => {
  assert.ok(REASON_ENUM, "frame.proto has no enum NackReason");
  const names = new Set(REASON_ENUM.values.map((v) => v.name));
  const problems: string[] = [];
  const cases = new Set<string>();
  for (const row of REFUSALS) {
    if (!names.has(row.reason)) problems.push(`${row.case}: ${row.reason} is not a NackReason`);
    if (cases.has(row.case)) problems.push(`case ${row.case} appears twice`);
    cases.add(row.case);
    const opcode = OPCODES.find((r) => r.name === row.opcode);
    if (row.opcode !== "any request" && row.opcode !== "application") {
      if (!opcode) problems.push(`${row.case}: ${row.opcode} is not an opcode of the table`);
      else if (opcode.kind !== "request") problems.push(`${row.case}: ${row.opcode} is one-way`);
    }
  }
  // "UNSPECIFIED (0) and NOT_FOUND (7) are never sent": the README and proto agree.
  const never = /((?:`\w+` \(\d+\)(?:, | and ))*`\w+` \(\d+\)) are never sent/.exec(folded(README));
  assert.ok(never, "the README no longer says which reasons are never sent");
  const neverSent = [...never[1].matchAll(/`(\w+)` \((\d+)\)/g)].map((m) => {
    const value = REASON_ENUM.values.find((v) => v.name === m[1]);
    if (value?.value !== Number(m[2])) problems.push(`${m[1]} is not NackReason ${m[2]}`);
    return m[1];
  });
  const protoNever = REASON_ENUM.values.filter((v) => /^(Never|Not) sent\b/.test(v.comment))
    .map((v) => v.name);
  assert.deepEqual(neverSent, protoNever, "never-sent reasons: README against proto comments");
  const used = new Set(REFUSALS.map((r) => r.reason));
  for (const v of REASON_ENUM.values) {
    if (neverSent.includes(v.name)) {
      if (used.has(v.name)) problems.push(`${v.name} is never sent, yet a row refuses with it`);
    } else if (!used.has(v.name)) {
      problems.push(`NackReason ${v.name} (${v.value}) has no row in the refusal table`);
    }
  }
  assert.deepEqual(problems, []);
});

Deno.test("spec: messaging.proto's SHOUT and WHISPER refusals are the table's", () => {
  const comments = protoMessageComments();
  const reasonNames = REASON_ENUM.values.map((v) => v.name);
  for (const [message, opcode] of [["Shout", "SHOUT"], ["Whisper", "WHISPER"]]) {
    const comment = comments.get(message) ?? "";
    const refusals = comment.slice(comment.indexOf("Refusals:"));
    assert.ok(refusals.length < comment.length, `message ${message}'s comment lists no refusals`);
    const inProto = reasonNames.filter((r) => new RegExp(`\\b${r}\\b`).test(refusals)).sort();
    const inTable = [...new Set(REFUSALS.filter((r) => r.opcode === opcode).map((r) => r.reason))]
      .sort();
    assert.deepEqual(inProto, inTable, `${opcode}: reasons in message ${message}'s comment`);
  }
});

// ---- the registry against the table ----

Deno.test("registry: PROTOCOL_OPCODES is the README's opcode table", () => {
  const short = (typeName: string | undefined) => typeName?.replace(/^carrier\.v1\./, "") ?? "";
  const registry = PROTOCOL_OPCODES.map((s) => ({
    opcode: s.opcode,
    name: s.name,
    kind: s.oneWay ? "one-way" : "request",
    payload: short(s.request.typeName),
    ack: s.oneWay && !s.reply ? NO_REPLY : short(s.reply?.typeName),
    nack: s.oneWay && !s.nack ? NO_REPLY : short(s.nack?.typeName),
  }));
  assert.deepEqual(registry, OPCODES.map((r: OpcodeRow) => ({ ...r })));
});

// ---- the live node ----

/**
 * Requests that only a relayed connection takes (HOLE_PUNCH): over the
 * conformance client's direct connection a valid one gets NACK FORBIDDEN
 * (the refusal table's `holepunch-direct`), not an ACK.
 */
const ONLY_RELAYED = ["HOLE_PUNCH"];

/** Requests that SHOUT and WHISPER carry out with id 0 (README, "Requests and one-way frames"). */
const CARRIED_OUT_AT_ID_0 = ["SHOUT", "WHISPER"];

/** A valid request of one opcode, and what to check of its ACK. */
interface Valid {
  payload: Uint8Array;
  // deno-lint-ignore no-explicit-any
  check?: (data: any) => void;
  /** For a request carried out apart from the frame (SHOUT, WHISPER): its delivery. */
  delivery?: (d: MessageEventDetail) => boolean;
  /** Checks the ACK's data as bytes. */
  raw?: (data: Uint8Array) => void;
  /** Requests to send after its ACK (a COMMIT after a PREPARE). */
  after?: () => Promise<void>;
}

type Builder = (env: Env, c: RawClient) => Promise<Valid>;

function check(condition: boolean, message: string): void {
  if (!condition) fail(message);
}

/** Peers a FIND_NODE/FIND_VALUE reply may list: nodes that accept connections. */
function onlyListeners(peers: { acceptsInbound: boolean; listenAddrs: string[] }[], what: string) {
  const outbound = peers.filter((p) => !p.acceptsInbound || p.listenAddrs.length === 0);
  check(
    outbound.length === 0,
    `${what}: lists ${outbound.length} node(s) that accept no connections (the README: ` +
      `"a node that only dials out is neither asked nor listed in FIND_NODE/FIND_VALUE replies")`,
  );
}

/** One valid request per request opcode of the table. */
const REQUESTS: Record<string, Builder> = {
  PING: () => {
    const data = Uint8Array.from({ length: 100 }, (_, i) => i);
    return Promise.resolve({
      payload: enc(PingSchema, { data }),
      check: (reply) =>
        check(same(reply.data, data.subarray(0, 64)), "PING: ACK does not echo the first 64 bytes"),
    });
  },
  SET_CONNECTION_OPT: () => {
    const payload = enc(SetConnectionOptSchema, { option: 0, setting: 1 }); // COMPRESSION gzip
    return Promise.resolve({
      payload,
      check: (reply) =>
        check(
          reply.option === 0 && reply.setting === 1,
          "SET_CONNECTION_OPT: ACK does not echo the option",
        ),
    });
  },
  SHOUT: (_env, c) => {
    const { payload, body } = shoutPayload(c.identity);
    return Promise.resolve({ payload, delivery: (d) => same(d.body, body) });
  },
  WHISPER: async (env, c) => {
    const body = randomBytes(12);
    const w = await sealWhisper(c.identity, env.main.identity.publicKey, body);
    return {
      payload: enc(WhisperSchema, w),
      check: (ack) =>
        check(
          same(ack.hash, whisperHash(w)) && ack.hops === 1,
          `WHISPER: ACK is WhisperAck { hops: ${ack.hops} }, expected the envelope's SHA-256 and hops 1`,
        ),
      delivery: (d) => same(d.body, body),
    };
  },
  // Another peer that only dials out is connected, and is the closest to the target.
  FIND_NODE: async (env) => {
    const other = await env.connect(env.main);
    return {
      payload: enc(FindNodeRequestSchema, { target: other.identity.nodeId }),
      check: (reply) => onlyListeners(reply.peers, "FIND_NODE"),
    };
  },
  FIND_VALUE: async (env) => {
    const other = await env.connect(env.main);
    return {
      payload: enc(FindValueRequestSchema, { key: other.identity.nodeId }),
      check: (reply) => {
        check(reply.record === undefined, "FIND_VALUE of a fresh key returned a record");
        onlyListeners(reply.peers, "FIND_VALUE");
      },
    };
  },
  STORE: () =>
    Promise.resolve({
      payload: storePayload(freshKey(), utf8("value"), 3),
      check: (reply) =>
        check(reply.version === 3n, `STORE: StoreReply.version ${reply.version}, expected 3`),
    }),
  KEEPALIVE: () =>
    Promise.resolve({
      payload: new Uint8Array(0),
      raw: (data) =>
        check(
          data.length === 0,
          `KEEPALIVE: the ACK's Keepalive is ${data.length} bytes, not empty`,
        ),
    }),
  METRICS: () =>
    Promise.resolve({
      payload: enc(MetricsRequestSchema, { includeConnections: true }),
      check: (reply) => check(reply.connections >= 1, "METRICS: no connections counted"),
    }),
  RELAY: () =>
    Promise.resolve({
      payload: enc(RelayRequestSchema, { kind: { case: "reserve", value: {} } }),
      check: (reply) =>
        check(
          reply.ttlSeconds > 0 && reply.limits !== undefined,
          `RELAY: Reservation ttl ${reply.ttlSeconds} s, limits ${reply.limits?.maxBytes} bytes`,
        ),
    }),
  HOLE_PUNCH: () =>
    Promise.resolve({
      payload: enc(HolePunchSchema, {
        kind: { case: "connect", value: { addrs: ["127.0.0.1:40000"], windowMs: 1_000 } },
      }),
    }),
  DIAL_BACK: () => {
    // The client does not listen: a port nothing listens on, on its own host.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const addr = `127.0.0.1:${closed.addr.port}`;
    closed.close();
    return Promise.resolve({
      payload: enc(DialBackRequestSchema, { addrs: ["10.9.9.9:1", addr], nonce: randomBytes(16) }),
      check: (reply) => {
        const statuses = reply.results.map((r: { status: number }) => r.status);
        check(
          statuses.length === 2 && statuses[0] === DialBackStatus.REFUSED &&
            statuses[1] === DialBackStatus.DIAL_FAILED,
          `DIAL_BACK: results ${JSON.stringify(statuses)}, expected [REFUSED, DIAL_FAILED] ` +
            "(another host is never dialled; nothing listens on the client's port)",
        );
      },
    });
  },
  DHT_CAS: (_env, c) => {
    const key = freshKey();
    const proposal = randomBytes(16);
    return Promise.resolve({
      payload: enc(CasRequestSchema, {
        record: { key, value: utf8("cas"), version: 1n },
        expectedVersion: 0n,
        proposal,
        phase: 1,
      }),
      check: (reply) => check(reply.version === 1n, "DHT_CAS PREPARE: StoreReply.version is not 1"),
      after: async () => {
        const reply = await expectAck(c, {
          opcode: op("DHT_CAS"),
          payload: enc(CasRequestSchema, { record: { key }, proposal, phase: 2 }),
        }, "DHT_CAS COMMIT");
        check(reply.version === 1n, "DHT_CAS COMMIT: StoreReply.version is not 1");
      },
    });
  },
  DHT_LOCK: () =>
    Promise.resolve({
      payload: enc(LockRequestSchema, { key: freshKey(), ttlMs: 10_000n }),
      check: (grant) =>
        check(
          grant.fencingToken >= 1n && grant.ttlMs > 0n && grant.ttlMs <= 10_000n,
          "DHT_LOCK: LockGrant out of range",
        ),
    }),
  DHT_UNLOCK: async (_env, c) => {
    const key = freshKey();
    const grant = await expectAck(c, {
      opcode: op("DHT_LOCK"),
      payload: enc(LockRequestSchema, { key, ttlMs: 10_000n }),
    }, "DHT_LOCK before DHT_UNLOCK");
    return {
      payload: enc(UnlockRequestSchema, { key, fencingToken: grant.fencingToken }),
      check: (reply) => check(reply.released === true, "DHT_UNLOCK: UnlockReply.released is false"),
    };
  },
  DHT_PATCH: async (_env, c) => {
    const key = freshKey();
    await expectAck(
      c,
      { opcode: op("STORE"), payload: storePayload(key, utf8("abc")) },
      "STORE before DHT_PATCH",
    );
    const proposal = randomBytes(16);
    return {
      payload: enc(PatchRequestSchema, {
        key,
        proposal,
        patch: {
          baseVersion: 1n,
          version: 2n,
          format: 1,
          splices: [{ offset: 3n, deleteCount: 0n, insert: utf8("d") }],
          valueHash: hash(utf8("abcd")),
        },
      }),
      check: (reply) => check(reply.version === 2n, "DHT_PATCH: StoreReply.version is not 2"),
      after: async () => {
        await expectAck(c, {
          opcode: op("DHT_CAS"),
          payload: enc(CasRequestSchema, { record: { key }, proposal, phase: 2 }),
        }, "DHT_CAS COMMIT of the patch");
        const found = await expectAck(c, {
          opcode: op("FIND_VALUE"),
          payload: enc(FindValueRequestSchema, { key }),
        }, "FIND_VALUE after the patch");
        check(
          new TextDecoder().decode(found.record?.value) === "abcd",
          "the patch was not applied",
        );
      },
    };
  },
  DHT_CHANGES: () =>
    Promise.resolve({
      payload: enc(ChangesRequestSchema, { key: freshKey(), sinceVersion: 0n }),
      check: (reply) => check(reply.currentVersion === 0n, "DHT_CHANGES of a fresh key: a version"),
    }),
};

/** One frame per one-way opcode of the table, and what shows it was handled. */
const ONE_WAY: Record<
  string,
  (env: Env, c: RawClient) => Promise<{ frame: FrameFields; handled: () => Promise<void> }>
> = {
  ACK: (_env, c) =>
    Promise.resolve({
      frame: { id: c.newId(), opcode: op("ACK"), payload: enc(AckSchema, { opcode: op("PING") }) },
      handled: () => Promise.resolve(),
    }),
  NACK: (_env, c) =>
    Promise.resolve({
      frame: {
        id: c.newId(),
        opcode: op("NACK"),
        payload: enc(NackSchema, { opcode: op("PING"), reason: 13 }),
      },
      handled: () => Promise.resolve(),
    }),
  SPEAK: (env, c) => {
    const body = randomBytes(8);
    const heard = nextMessage(env.main, (d) => d.opcode === op("SPEAK") && same(d.body, body));
    return Promise.resolve({
      frame: {
        id: c.newId(),
        opcode: op("SPEAK"),
        payload: enc(SpeakSchema, { topic: "t", body }),
      },
      handled: async () => check((await heard) !== undefined, "SPEAK with an id was not delivered"),
    });
  },
  IDENTIFY: (env, c) => {
    const listenAddrs = ["10.9.9.9:4000", "0.0.0.0:4001"];
    return Promise.resolve({
      frame: {
        id: c.newId(),
        opcode: op("IDENTIFY"),
        payload: enc(IdentifySchema, { listenAddrs, acceptsInbound: true }),
      },
      handled: async () => {
        await until(
          () => env.main.peer(c.identity.address)?.channel.remote.acceptsInbound === true,
          "the node takes the IDENTIFY's accepts_inbound",
        );
        const kept = env.main.peer(c.identity.address)?.channel.remote.listenAddrs;
        check(
          JSON.stringify(kept) === JSON.stringify(["10.9.9.9:4000"]),
          `IDENTIFY: the node keeps ${
            JSON.stringify(kept)
          }, expected the address without the wildcard`,
        );
      },
    });
  },
  RELAY_DATA: (_env, c) =>
    Promise.resolve({
      frame: {
        id: c.newId(),
        opcode: op("RELAY_DATA"),
        payload: enc(RelayDataSchema, { data: randomBytes(8) }),
      },
      // Dropped on a peer connection: no reply, and the connection stays.
      handled: async () =>
        check(await c.endsWithin(300) !== true, "RELAY_DATA closed the connection"),
    }),
  DISCONNECT: (_env, c) =>
    Promise.resolve({
      frame: {
        id: c.newId(),
        opcode: op("DISCONNECT"),
        payload: enc(DisconnectSchema, { reason: 1 }),
      },
      handled: async () => {
        const ended = await c.endsWithin(5_000);
        check(ended === true, "the node did not close the connection after DISCONNECT");
      },
    }),
};

const live = { sanitizeOps: false, sanitizeResources: false };

Deno.test({ name: "live node: the tables, over a real connection", ...live }, async (t) => {
  const env = await Env.start();
  const step = (name: string, fn: () => Promise<void>) =>
    t.step({
      name,
      fn: async () => {
        try {
          await fn();
          await env.auditClients();
        } finally {
          await env.closeClients();
        }
      },
      ...live,
    });
  try {
    await step("every opcode of the table has a request or one-way frame here", () => {
      const requests = OPCODES.filter((r) => r.kind === "request").map((r) => r.name).sort();
      const oneWay = OPCODES.filter((r) => r.kind === "one-way").map((r) => r.name).sort();
      assert.deepEqual(Object.keys(REQUESTS).sort(), requests, "requests of the table");
      assert.deepEqual(Object.keys(ONE_WAY).sort(), oneWay, "one-way opcodes of the table");
      return Promise.resolve();
    });

    for (const row of OPCODES) {
      await step(`opcode ${row.opcode} ${row.name} (${row.kind})`, async () => {
        const c = await env.connect(env.main);
        if (row.kind === "request") {
          const build = REQUESTS[row.name];
          if (!build) fail(`no request for ${row.name}`);
          const valid = await build(env, c);
          const id = c.newId();
          if (ONLY_RELAYED.includes(row.name)) {
            const reply = await c.request(
              { id, opcode: row.opcode, payload: valid.payload },
              5_000,
            );
            check(
              reply?.nack?.reason === NackReason.FORBIDDEN,
              `${row.name} over a direct connection: expected NACK FORBIDDEN, got ${
                reply ? describe(reply) : "no reply"
              }`,
            );
            return;
          }
          const data = await expectAck(
            c,
            { id, opcode: row.opcode, payload: valid.payload },
            row.name,
          );
          valid.check?.(data);
          valid.raw?.(c.repliesTo(id)[0].ack!.data);
          await c.sync();
          const replies = c.repliesTo(id);
          check(
            replies.length === 1,
            `${row.name}: ${replies.length} replies to one request (${replies.map(describe)})`,
          );
          await valid.after?.();
        } else {
          const build = ONE_WAY[row.name];
          if (!build) fail(`no frame for ${row.name}`);
          const { frame, handled } = await build(env, c);
          await c.send(frame);
          await handled();
          await expectNoReply(c, [frame.id!], `${row.name} with id ${frame.id}`);
          if (row.name !== "DISCONNECT") check(c.open, `${row.name}: the connection ended`);
        }
      });
    }

    await step(
      "a request with id 0 gets no reply; SHOUT and WHISPER are still carried out",
      async () => {
        const c = await env.connect(env.main);
        const cases = new SubCases();
        for (const row of OPCODES.filter((r) => r.kind === "request")) {
          await cases.run(row.name, async () => {
            const valid = await REQUESTS[row.name](env, c);
            const carried = CARRIED_OUT_AT_ID_0.includes(row.name);
            check(
              carried === (valid.delivery !== undefined),
              `${row.name}: test has no delivery check`,
            );
            const delivered = valid.delivery ? nextMessage(env.main, valid.delivery) : undefined;
            await c.send({ id: 0, opcode: row.opcode, payload: valid.payload });
            if (delivered) {
              check((await delivered) !== undefined, `${row.name} with id 0 was not delivered`);
            }
            await expectNoReply(c, [0], `${row.name} with id 0`);
          });
        }
        await cases.run("application request (ECHO) with id 0 is handled", async () => {
          const before = env.appCalls.get(APP.echo.opcode)?.length ?? 0;
          await c.send({ id: 0, opcode: APP.echo.opcode, payload: appPayload("id0") });
          await until(
            () => (env.appCalls.get(APP.echo.opcode)?.length ?? 0) > before,
            "the handler ran",
          );
          await expectNoReply(c, [0], "ECHO with id 0");
        });
        cases.done();
      },
    );

    await step("a SHOUT with id 0 is forwarded (to a leaf)", async () => {
      const leaf = await env.connect(env.main, { answer: "ack" });
      const c = await env.connect(env.main);
      const { payload, envelope } = shoutPayload(c.identity);
      await c.send({ id: 0, opcode: op("SHOUT"), payload });
      const forwarded = await leaf.next((r) =>
        r.frame.opcode === op("SHOUT") &&
        same(fromBinary(ShoutSchema, r.payload).envelope, envelope)
      );
      check(forwarded !== undefined, "the SHOUT sent with id 0 was not forwarded to the leaf");
      check(
        forwarded!.frame.id !== 0,
        "the node forwarded it as a SHOUT with id 0 (it is a request)",
      );
      await expectNoReply(c, [0], "SHOUT with id 0");
    });

    await step("a STORE with id 0 stores nothing", async () => {
      const c = await env.connect(env.main);
      const key = freshKey();
      await c.send({ id: 0, opcode: op("STORE"), payload: storePayload(key, utf8("id0")) });
      const found = await expectAck(c, {
        opcode: op("FIND_VALUE"),
        payload: enc(FindValueRequestSchema, { key }),
      }, "FIND_VALUE");
      check(found.record === undefined, "a STORE sent with id 0 stored its record");
    });

    await step("a SET_CONNECTION_OPT with id 0 changes nothing", async () => {
      const c = await env.connect(env.main);
      const find = await compressibleReply(c);
      const gzipPreferred = enc(SetConnectionOptSchema, { option: 1, setting: 1 });
      await c.send({ id: 0, opcode: op("SET_CONNECTION_OPT"), payload: gzipPreferred });
      const after0 = await find();
      await expectAck(
        c,
        { opcode: op("SET_CONNECTION_OPT"), payload: gzipPreferred },
        "SET_CONNECTION_OPT",
      );
      const afterAck = await find();
      check(
        afterAck.flags === 1 && afterAck.compression === 1,
        "control: after an ACKed PREFERRED_COMPRESSION gzip the node still sends a 4 KiB reply uncompressed",
      );
      check(
        after0.flags === 0,
        `after PREFERRED_COMPRESSION gzip with id 0 the node compressed its reply (setting ${after0.compression})`,
      );
    });

    await step("a DHT_LOCK or DHT_CAS PREPARE with id 0 takes nothing", async () => {
      const c = await env.connect(env.main);
      const other = await env.connect(env.main);
      const key = freshKey();
      await c.send({
        id: 0,
        opcode: op("DHT_LOCK"),
        payload: enc(LockRequestSchema, { key, ttlMs: 10_000n }),
      });
      await c.sync();
      await expectAck(other, {
        opcode: op("DHT_LOCK"),
        payload: enc(LockRequestSchema, { key, ttlMs: 10_000n }),
      }, "a DHT_LOCK after one with id 0 is granted");
      const casKey = freshKey();
      const prepare = (proposal: Uint8Array) =>
        enc(CasRequestSchema, {
          record: { key: casKey, value: utf8("v"), version: 1n },
          proposal,
          phase: 1,
        });
      await c.send({ id: 0, opcode: op("DHT_CAS"), payload: prepare(randomBytes(16)) });
      await c.sync();
      await expectAck(
        other,
        { opcode: op("DHT_CAS"), payload: prepare(randomBytes(16)) },
        "a PREPARE after one with id 0 is reserved",
      );
    });

    await step(
      "request ids: each side numbers its own (node PING and client request share an id)",
      async () => {
        const c = await env.connect(env.main);
        let settled: string | undefined;
        const nodePing = env.main.ping(c.address, { timeout: 5_000 }).then(
          () => (settled = "resolved"),
          (err) => (settled = `rejected: ${(err as Error).message}`),
        );
        const ping = await c.next((r) => r.frame.opcode === op("PING") && r.frame.id !== 0);
        check(ping !== undefined, "the node's PING did not arrive");
        const id = ping!.frame.id;
        // The client's own request, with the id of the node's outstanding one.
        const reply = await expectAck(c, {
          id,
          opcode: op("FIND_NODE"),
          payload: enc(FindNodeRequestSchema, { target: freshKey() }),
        }, `client FIND_NODE with id ${id}`);
        check(reply !== undefined, "no FindNodeReply");
        await c.sync();
        check(
          settled === undefined,
          `the node's PING ${id} was settled (${settled}) by the client's request with the same id`,
        );
        // The client's ACK for the node's PING settles the node's request.
        await c.write(
          ackBytes(id, op("PING"), enc(PingSchema, fromBinary(PingSchema, ping!.payload))),
        );
        await nodePing;
        check(settled === "resolved", `the node's PING was ${settled} after the client's ACK`);
        // A late duplicate of that ACK matches nothing: dropped, no reply.
        await c.write(ackBytes(id, op("PING")));
        await expectNoReply(c, [], "a duplicate ACK");
        check(c.repliesTo(id).length === 1, `a duplicate ACK was answered`);
      },
    );

    await step("request ids: a node SHOUT and a client STORE share an id", async () => {
      const c = await env.connect(env.main);
      await until(() => env.main.peers().length === 1, "the client is the main node's only peer");
      let settled: string | undefined;
      const shout = env.main.shout("from the node").then(
        (r) => (settled = `resolved, sent ${r.sent}`),
        (err) => (settled = `rejected: ${(err as Error).message}`),
      );
      const frame = await c.next((r) => r.frame.opcode === op("SHOUT"));
      check(
        frame !== undefined && frame.frame.id !== 0,
        "the node's SHOUT to its leaf did not come as a request",
      );
      const id = frame!.frame.id;
      const stored = await expectAck(c, {
        id,
        opcode: op("STORE"),
        payload: storePayload(freshKey(), utf8("x")),
      }, `client STORE with id ${id}`);
      check(stored.version === 1n, "STORE reply");
      await c.sync();
      check(
        settled === undefined,
        `the node's SHOUT was settled (${settled}) by the client's STORE with its id`,
      );
      await c.write(ackBytes(id, op("SHOUT")));
      await shout;
      check(
        settled === "resolved, sent 1",
        `the node's SHOUT was ${settled} after the client's ACK`,
      );
    });

    await step("request ids: a node KEEPALIVE and a client KEEPALIVE share an id", async () => {
      const c = await env.connect(env.quiet);
      await until(() => env.quiet.peers().length === 1, "the client is the quiet node's only peer");
      env.quietClock.advance(15_000); // the README's 15 s without receiving anything
      const keepalive = await c.next((r) => r.frame.opcode === op("KEEPALIVE"));
      check(keepalive !== undefined, "no KEEPALIVE from the node after 15 s of silence");
      const id = keepalive!.frame.id;
      check(id !== 0, "the node's KEEPALIVE has id 0 (it is a request)");
      check(keepalive!.payload.length === 0, "the node's KEEPALIVE is not an empty Keepalive");
      await expectAck(
        c,
        { id, opcode: op("KEEPALIVE"), payload: new Uint8Array(0) },
        `client KEEPALIVE with id ${id}`,
      );
      await c.write(ackBytes(id, op("KEEPALIVE")));
      await expectNoReply(c, [], "the client's ACK of the node's KEEPALIVE");
      check(c.repliesTo(id).length === 1, "the client's ACK of the node's KEEPALIVE was answered");
    });

    await step("a reply that comes after the request timed out is dropped", async () => {
      const c = await env.connect(env.main);
      const late = env.main.ping(c.address, { timeout: 300 }).then(
        () => "resolved",
        () => "failed",
      );
      const ping = await c.next((r) => r.frame.opcode === op("PING") && r.frame.id !== 0);
      check(ping !== undefined, "the node's PING did not arrive");
      check((await late) === "failed", "the node's PING did not time out unanswered");
      const echo = enc(PingSchema, fromBinary(PingSchema, ping!.payload));
      await c.write(ackBytes(ping!.frame.id, op("PING"), echo));
      await expectNoReply(c, [], "a late ACK");
      check(c.open && env.main.peer(c.address) !== undefined, "a late ACK closed the connection");
    });

    await step("45 s of silence closes the connection (quiet node's clock)", async () => {
      const c = await env.connect(env.quiet);
      env.quietClock.advance(15_000);
      const keepalive = await c.next((r) => r.frame.opcode === op("KEEPALIVE"));
      check(keepalive !== undefined, "no KEEPALIVE after 15 s of silence");
      check(c.open, "the connection closed after 15 s");
      env.quietClock.advance(30_000); // unanswered: 45 s without receiving anything
      const ended = await c.endsWithin(5_000);
      check(ended, "the connection is still open after 45 s of silence");
    });

    await step(
      "a frame over max_frame_size closes the connection at its length prefix",
      async () => {
        const c = await env.connect(env.main);
        const limit = c.channel.remote.maxFrameSize;
        const prefix: number[] = [];
        for (let n = limit + 1;; n >>>= 7) {
          if (n < 0x80) {
            prefix.push(n);
            break;
          }
          prefix.push((n & 0x7f) | 0x80);
        }
        await c.write(Uint8Array.from(prefix)); // the length alone, no frame after it
        const ended = await c.endsWithin(5_000);
        check(
          ended,
          `the node kept the connection after a length prefix of ${limit + 1} > ${limit}`,
        );
      },
    );

    await step(
      "connection options: what each option says about the frames its sender receives",
      async () => {
        // The client (initiator) decodes all five and prefers none; the node prefers none.
        const c = await env.connect(env.main);
        const find = await compressibleReply(c);
        const reply = async () => {
          const frame = await find();
          return frame.flags & 1
            ? ["bz2", "gzip", "lzma", "zlib", "snappy"][frame.compression]
            : "none";
        };
        const set = async (option: number, setting: number) => {
          const payload = enc(SetConnectionOptSchema, { option, setting });
          const echo = await expectAck(
            c,
            { opcode: op("SET_CONNECTION_OPT"), payload },
            `option ${option} setting ${setting}`,
          );
          check(
            echo.option === option && echo.setting === setting,
            "the ACK does not echo the option",
          );
        };
        const cases = new SubCases();
        const expect = async (what: string, wanted: string) => {
          const got = await reply();
          check(
            got === wanted,
            `${what}: the node's 4 KiB reply is compressed with ${got}, expected ${wanted}`,
          );
        };
        await cases.run("nothing preferred: uncompressed", () => expect("no preference", "none"));
        await cases.run("PREFERRED_COMPRESSION gzip", async () => {
          await set(1, 1);
          await expect("client prefers gzip", "gzip");
        });
        await cases.run("DISABLE_COMPRESSION gzip (no longer decoded nor preferred)", async () => {
          await set(2, 1);
          await expect("client disabled gzip", "none");
        });
        await cases.run("PREFERRED_COMPRESSION zlib", async () => {
          await set(1, 3);
          await expect("client prefers zlib", "zlib");
        });
        await cases.run("DISABLE_COMPRESSION of every setting: compression off", async () => {
          for (const setting of [0, 1, 2, 3, 4]) await set(2, setting);
          await expect("client disabled all five", "none");
        });
        await cases.run(
          "PREFERRED_COMPRESSION snappy turns it back on (and decodes it)",
          async () => {
            await set(1, 4);
            await expect("client prefers snappy again", "snappy");
          },
        );
        await cases.run("COMPRESSION zlib, then PREFERRED_COMPRESSION zlib", async () => {
          await set(0, 3);
          await expect("client decodes zlib too, still prefers snappy", "snappy");
          await set(1, 3);
          await expect("client prefers zlib", "zlib");
        });
        await cases.run(
          "PREFERRED_COMPRESSION bz2: the node does not prefer bz2, so does not send it",
          async () => {
            await set(0, 0);
            await set(1, 0);
            await expect("client prefers bz2", "none");
          },
        );
        cases.done();
      },
    );

    await step(
      "SHOUT: to a leaf with height 0 and hops + 1; a copy seen before is ACKed, not delivered or forwarded again",
      async () => {
        const leaf = await env.connect(env.main, { answer: "ack" });
        const c = await env.connect(env.main);
        const { payload, envelope, body } = shoutPayload(c.identity, { hops: 5 });
        let deliveries = 0;
        const count = (e: CustomEvent<MessageEventDetail>) => {
          if (same(e.detail.body, body)) deliveries++;
        };
        env.main.addEventListener("message", count);
        try {
          await expectAck(c, { opcode: op("SHOUT"), payload }, "SHOUT");
          const isOurs = (r: { frame: { opcode: number }; payload: Uint8Array }) =>
            r.frame.opcode === op("SHOUT") &&
            same(fromBinary(ShoutSchema, r.payload).envelope, envelope);
          const forwarded = await leaf.next(isOurs);
          check(forwarded !== undefined, "the SHOUT was not sent to the leaf");
          const shout = fromBinary(ShoutSchema, forwarded!.payload);
          check(
            shout.height === 0 && shout.hops === 6,
            `the leaf got height ${shout.height}, hops ${shout.hops}; expected height 0, hops 6`,
          );
          check(forwarded!.frame.id !== 0, "the SHOUT to the leaf has id 0");
          await expectAck(c, { opcode: op("SHOUT"), payload }, "the same SHOUT again");
          await c.sync();
          await leaf.sync();
          check(deliveries === 1, `the SHOUT was delivered ${deliveries} times`);
          const copies = leaf.received.filter(isOurs).length;
          check(copies === 1, `the leaf got ${copies} copies`);
        } finally {
          env.main.removeEventListener("message", count);
        }
      },
    );

    await step("WHISPER: a delivered copy is ACKed again and not delivered again", async () => {
      const c = await env.connect(env.main);
      const body = randomBytes(8);
      const w = await sealWhisper(c.identity, env.main.identity.publicKey, body);
      let deliveries = 0;
      const count = (e: CustomEvent<MessageEventDetail>) => {
        if (same(e.detail.body, body)) deliveries++;
      };
      env.main.addEventListener("message", count);
      try {
        for (const copy of ["first", "second"]) {
          const ack = await expectAck(
            c,
            { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) },
            `${copy} copy`,
          );
          check(
            same(ack.hash, whisperHash(w)) && ack.hops === 1,
            `${copy} copy: WhisperAck hops ${ack.hops}`,
          );
        }
        check(deliveries === 1, `the WHISPER was delivered ${deliveries} times`);
      } finally {
        env.main.removeEventListener("message", count);
      }
    });

    await step(
      "WHISPER relay: forwards ttl − 1, at most 64; the ACK counts the relay's hop",
      async () => {
        const recipient = await env.connect(env.main, { answer: "ack" });
        const c = await env.connect(env.main);
        for (const [ttl, forwarded] of [[10, 9], [100, 64]]) {
          const w = await sealWhisper(c.identity, recipient.identity.publicKey, randomBytes(8), {
            ttl,
          });
          const ack = await expectAck(
            c,
            { opcode: op("WHISPER"), payload: enc(WhisperSchema, w) },
            `ttl ${ttl}`,
          );
          check(
            ack.hops === 2,
            `ttl ${ttl}: WhisperAck hops ${ack.hops} through one relay, expected 2`,
          );
          const got = recipient.received.find((r) =>
            r.frame.opcode === op("WHISPER") &&
            same(fromBinary(WhisperSchema, r.payload).envelope, w.envelope)
          );
          const seen = got && fromBinary(WhisperSchema, got.payload).ttl;
          check(
            seen === forwarded,
            `ttl ${ttl}: the relay forwarded ttl ${seen}, expected ${forwarded}`,
          );
        }
      },
    );

    await step("unsolicited ACK and NACK are dropped; the connection stays usable", async () => {
      const c = await env.connect(env.main);
      await c.write(
        ackBytes(4242, op("PING")),
        nackBytes(4243, op("STORE"), 2),
        ackBytes(0, op("PING")),
      );
      await expectNoReply(c, [4242, 4243, 0], "unsolicited ACK/NACK");
      check(c.open, "the connection ended");
      await expectAck(c, {
        opcode: op("FIND_NODE"),
        payload: enc(FindNodeRequestSchema, { target: freshKey() }),
      }, "FIND_NODE after");
    });

    await step("a one-way application opcode with an id is handled, not answered", async () => {
      const c = await env.connect(env.main);
      const before = env.appCalls.get(APP.note.opcode)?.length ?? 0;
      const id = c.newId();
      await c.send({ id, opcode: APP.note.opcode, payload: appPayload("note") });
      await until(
        () => (env.appCalls.get(APP.note.opcode)?.length ?? 0) > before,
        "the handler ran",
      );
      await expectNoReply(c, [id], "one-way application opcode NOTE with an id");
    });

    await step("an application request gets its handler's ACK", async () => {
      const c = await env.connect(env.main);
      const data = await expectAck(
        c,
        { opcode: APP.echo.opcode, payload: appPayload("hi") },
        "ECHO",
      );
      check(same(data, appPayload("HI")), "ECHO: the ACK's data is not the handler's reply");
    });

    await step("every refusal row has a scenario and every scenario a row", () => {
      assert.deepEqual(
        Object.keys(REFUSAL_SCENARIOS).sort(),
        REFUSALS.map((r) => r.case).sort(),
        "scenarios (left) against the refusal table's cases (right)",
      );
      return Promise.resolve();
    });

    for (const row of REFUSALS) {
      await step(`refusal ${row.case}: ${row.opcode} → ${row.reason}`, async () => {
        const scenario = REFUSAL_SCENARIOS[row.case];
        if (!scenario) fail(`no scenario for refusal case ${row.case}`);
        const cases = new SubCases();
        await scenario(env, row, cases);
        cases.done();
        check(cases.passed.length > 0, `${row.case}: no sub-case ran`);
      });
    }
  } finally {
    await env.close();
  }
});

/**
 * Stores a 4 KiB compressible value on the node through `c` and returns a
 * function that asks for it (FIND_VALUE) and resolves the reply's frame: how
 * the node compresses what it sends `c`.
 */
async function compressibleReply(c: RawClient): Promise<() => Promise<Frame>> {
  const key = freshKey();
  await expectAck(c, {
    opcode: op("STORE"),
    payload: storePayload(key, new Uint8Array(4096).fill(97)),
  }, "STORE");
  return async () => {
    const id = c.newId();
    await expectAck(c, {
      id,
      opcode: op("FIND_VALUE"),
      payload: enc(FindValueRequestSchema, { key }),
    }, "FIND_VALUE");
    return c.repliesTo(id)[0].frame;
  };
}
