/**
 * The conformance test's world: two live nodes in this process over real
 * TCP on 127.0.0.1, raw clients connected to them, the spec's tables
 * turned into lookups, and the checks every reply goes through (an ACK's
 * data decodes as the opcode table's ACK data message, a NACK carries the
 * reason the refusal table names, both repeat the request's opcode).
 *
 * @module
 */
import { concatBytes } from "../../lib/_bytes.ts";
import {
  create,
  type DescMessage,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { sha256 } from "@noble/hashes/sha2.js";
import * as protocol from "../../lib/protocol.ts";
import {
  createNode,
  defineOpcode,
  type Identity,
  type MessageEventDetail,
  NackError,
  type Node,
  sign,
} from "../../mod.ts";
import { ManualClock } from "../../testing.ts";
import {
  describe,
  type FrameFields,
  RawClient,
  type RawClientOptions,
  type Reply,
} from "./_client.ts";
import { NO_REPLY, type OpcodeRow, opcodeTable, protoEnums, type RefusalRow } from "./_spec.ts";

// ---- the spec's tables as lookups ----

/** The README's opcode table. */
export const OPCODES = opcodeTable();
const BY_NAME = new Map(OPCODES.map((r) => [r.name, r]));
const BY_VALUE = new Map(OPCODES.map((r) => [r.opcode, r]));

/** The opcode the README's table gives `name` (`"PING"` → 2). */
export function op(name: string): number {
  const row = BY_NAME.get(name);
  if (!row) throw new Error(`The README's opcode table has no ${name}`);
  return row.opcode;
}

/** The opcode table's row for `opcode`, if it has one. */
export function opcodeRow(opcode: number): OpcodeRow | undefined {
  return BY_VALUE.get(opcode);
}

/** An opcode's name: the table's, else `APP <n>` or `opcode <n>`. */
export function opName(opcode: number): string {
  return BY_VALUE.get(opcode)?.name ?? (opcode >= 1000 ? `APP ${opcode}` : `opcode ${opcode}`);
}

const REASONS = protoEnums().get("NackReason")!;

/** The `NackReason` value of `name` (`"STALE"` → 15), from proto/. */
export function reason(name: string): number {
  const value = REASONS.values.find((v) => v.name === name);
  if (!value) throw new Error(`proto's NackReason has no ${name}`);
  return value.value;
}

/** The name of a `NackReason` value, from proto/. */
export function reasonName(value: number): string {
  return REASONS.values.find((v) => v.value === value)?.name ?? `reason ${value}`;
}

/** The generated schema of `carrier.v1.<name>`. */
export function schemaOf(name: string): DescMessage {
  const schema = (protocol as unknown as Record<string, DescMessage | undefined>)[`${name}Schema`];
  if (schema?.typeName !== `carrier.v1.${name}`) {
    throw new Error(`No generated schema for carrier.v1.${name}`);
  }
  return schema;
}

/** `toBinary(create(schema, init))`. */
export function enc<Desc extends DescMessage>(
  schema: Desc,
  init?: MessageInitShape<Desc>,
): Uint8Array {
  return toBinary(schema, create(schema, init));
}

// ---- bytes ----

const encoder = new TextEncoder();

/** UTF-8 bytes of `text`. */
export function utf8(text: string): Uint8Array {
  return encoder.encode(text);
}

/** `n` random bytes. */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** A copy of `bytes` with byte `i` (default: the last) flipped. */
export function flipped(bytes: Uint8Array, i = bytes.length - 1): Uint8Array {
  const out = bytes.slice();
  out[i] ^= 0x01;
  return out;
}

/** A payload no message parses: field 1, length-delimited, 5 bytes announced, 1 there. */
export const UNPARSABLE = Uint8Array.of(0x0a, 0x05, 0x01);

// ---- messages the tests build ----

let shoutSequence = 0;

/** The SHOUT signing context (README, "SHOUT"). */
export const SHOUT_CONTEXT = utf8("carrier/v1 shout:");

/** Fields of a hand-built SHOUT. */
export interface ShoutInit {
  timestampMs?: number;
  body?: Uint8Array;
  origin?: Uint8Array;
  height?: number;
  hops?: number;
  envelope?: Uint8Array;
  signature?: Uint8Array;
}

/** A SHOUT payload signed by `origin` (a fresh sequence and body unless given). */
export function shoutPayload(origin: Identity, init: ShoutInit = {}): {
  payload: Uint8Array;
  envelope: Uint8Array;
  body: Uint8Array;
} {
  const body = init.body ?? randomBytes(16);
  const envelope = init.envelope ?? enc(protocol.ShoutEnvelopeSchema, {
    origin: init.origin ?? origin.publicKey,
    sequence: BigInt(++shoutSequence),
    timestampMs: BigInt(init.timestampMs ?? Date.now()),
    topic: "conformance",
    body,
  });
  const signature = init.signature ?? sign(origin, concatBytes([SHOUT_CONTEXT, envelope]));
  const payload = enc(protocol.ShoutSchema, {
    envelope,
    signature,
    hops: init.hops ?? 1,
    height: init.height ?? 256,
  });
  return { payload, envelope, body };
}

/** A 32-byte key no other test uses. */
export function freshKey(): Uint8Array {
  return randomBytes(32);
}

/** A STORE payload of an open record. */
export function storePayload(
  key: Uint8Array,
  value: Uint8Array,
  version = 1,
  extra: { owner?: Uint8Array; signature?: Uint8Array } = {},
): Uint8Array {
  return enc(protocol.StoreRequestSchema, {
    record: { key, value, version: BigInt(version), ...extra },
  });
}

/** SHA-256. */
export function hash(bytes: Uint8Array): Uint8Array {
  return sha256(bytes);
}

// ---- the nodes ----

/** The main node's DHT quotas per peer, small so that the quota refusals are reachable. */
export const MAIN_QUOTAS = {
  maxRecordsPerPeer: 8,
  maxReservationsPerPeer: 3,
  maxLocksPerPeer: 3,
} as const;

/** Frames the main node holds per locked peer (`maxHeldMessages`). */
export const MAIN_MAX_HELD = 2;

/** The main node's max_frame_size: above the 1 MiB WHISPER body limit, so that limit is reachable. */
export const MAIN_MAX_FRAME = 2 * 1024 * 1024;

/** Records the quiet node holds at most (so that "full, nothing farther to evict" is reachable). */
export const QUIET_MAX_RECORDS = 2;

/** Locks the quiet node holds at most (so that "every lock held" is reachable). */
export const QUIET_MAX_LOCKS = 2;

/** Application opcodes the main node registers. */
export const APP = {
  /** Its handler throws an Error. */
  reject: defineOpcode(1001, { name: "REJECT", request: StringValueSchema }),
  /** Its handler throws NackError FORBIDDEN. */
  forbid: defineOpcode(1002, { name: "FORBID", request: StringValueSchema }),
  /** Its handler throws NackError INTERNAL. */
  internal: defineOpcode(1003, { name: "FAIL", request: StringValueSchema }),
  /** A request: ACK with the value upper-cased. */
  echo: defineOpcode(1004, { name: "ECHO", request: StringValueSchema, reply: StringValueSchema }),
  /** One-way: handled, never answered. */
  note: defineOpcode(1005, { name: "NOTE", request: StringValueSchema, oneWay: true }),
} as const;

/** A StringValue payload of an application opcode. */
export function appPayload(value: string): Uint8Array {
  return enc(StringValueSchema, { value });
}

/**
 * The two nodes and the clients connected to them.
 *
 * - `main`: serves metrics and relays, has application handlers, small per-peer DHT
 *   quotas, holds at most {@linkcode MAIN_MAX_HELD} frames of a locked peer,
 *   accepts 2 MiB frames.
 * - `quiet`: the defaults (no metrics, no handlers, no relaying) but no dial-backs and a manual clock, so
 *   that a second never passes (the SHOUT rate window) and nothing times
 *   out, and a store of {@linkcode QUIET_MAX_RECORDS} records. It has no
 *   peers but the test's clients (a relay with no next hop).
 */
export class Env {
  readonly main: Node;
  readonly quiet: Node;
  readonly quietClock: ManualClock;
  /** Calls of the main node's application handlers, by opcode. */
  readonly appCalls = new Map<number, string[]>();
  readonly #clients = new Set<RawClient>();

  private constructor(main: Node, quiet: Node, quietClock: ManualClock) {
    this.main = main;
    this.quiet = quiet;
    this.quietClock = quietClock;
    const record = (opcode: number, value: string) =>
      this.appCalls.set(opcode, [...(this.appCalls.get(opcode) ?? []), value]);
    main.handle(APP.reject, (m) => {
      record(APP.reject.opcode, m.value);
      throw new Error("the handler rejects every request");
    });
    main.handle(APP.forbid, (m) => {
      record(APP.forbid.opcode, m.value);
      throw new NackError("the handler forbids it", {
        opcode: APP.forbid.opcode,
        reason: reason("FORBIDDEN"),
      });
    });
    main.handle(APP.internal, (m) => {
      record(APP.internal.opcode, m.value);
      throw new NackError("the handler failed", {
        opcode: APP.internal.opcode,
        reason: reason("INTERNAL"),
      });
    });
    main.handle(APP.echo, (m) => {
      record(APP.echo.opcode, m.value);
      return create(StringValueSchema, { value: m.value.toUpperCase() });
    });
    main.handle(APP.note, (m) => {
      record(APP.note.opcode, m.value);
    });
  }

  /** Starts both nodes. */
  static async start(): Promise<Env> {
    const main = await createNode({
      listen: ["127.0.0.1:0"],
      puzzleDifficulty: 0,
      serveMetrics: true,
      relay: { serve: true },
      maxHeldMessages: MAIN_MAX_HELD,
      maxFrameSize: MAIN_MAX_FRAME,
      dht: { ...MAIN_QUOTAS },
    });
    const quietClock = new ManualClock();
    const quiet = await createNode({
      listen: ["127.0.0.1:0"],
      puzzleDifficulty: 0,
      clock: quietClock,
      serveDialBack: false,
      dht: { maxRecords: QUIET_MAX_RECORDS, maxLocks: QUIET_MAX_LOCKS },
    }).catch(async (err) => {
      await main.close();
      throw err;
    });
    return new Env(main, quiet, quietClock);
  }

  /** A raw client connected to `node` (closed by {@linkcode Env.closeClients}). */
  async connect(node: Node, options: RawClientOptions = {}): Promise<RawClient> {
    const client = await RawClient.connect(node, options);
    this.#clients.add(client);
    return client;
  }

  /**
   * Checks every client's replies after a barrier: no ACK or NACK with id 0
   * or an id the client never sent, at most one per id.
   */
  async auditClients(): Promise<void> {
    const problems: string[] = [];
    for (const client of this.#clients) {
      if (client.open) {
        await client.sync().catch((err) => problems.push(`barrier failed: ${err.message}`));
      }
      problems.push(
        ...client.replyProblems().map((p) => `client ${client.address.slice(0, 8)}: ${p}`),
      );
    }
    if (problems.length > 0) fail(problems.join("\n"));
  }

  /** Closes every client and waits until the nodes have seen them go. */
  async closeClients(): Promise<void> {
    const clients = [...this.#clients];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.close()));
    const gone = () =>
      clients.every((c) =>
        this.main.peer(c.address) === undefined && this.quiet.peer(c.address) === undefined
      );
    const deadline = Date.now() + 5_000;
    while (!gone() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Closes the clients and the nodes. */
  async close(): Promise<void> {
    await this.closeClients();
    await Promise.all([this.main.close(), this.quiet.close()]);
  }
}

/**
 * The next `message` event of `node` that `match` accepts, or `undefined`
 * after `timeout` ms. Call it before sending what should cause it.
 */
export function nextMessage(
  node: Node,
  match: (d: MessageEventDetail) => boolean,
  timeout = 5_000,
): Promise<MessageEventDetail | undefined> {
  return new Promise((resolve) => {
    const listener = (e: CustomEvent<MessageEventDetail>) => {
      if (match(e.detail)) done(e.detail);
    };
    const done = (detail: MessageEventDetail | undefined) => {
      clearTimeout(timer);
      node.removeEventListener("message", listener);
      resolve(detail);
    };
    const timer = setTimeout(() => done(undefined), timeout);
    node.addEventListener("message", listener);
  });
}

/** Whether two byte arrays are equal. */
export function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

// ---- the checks every reply goes through ----

/** A failed expectation, with what was observed and what the spec says. */
export class Violation extends Error {
  override name = "Violation";
}

function fail(message: string): never {
  throw new Violation(message);
}

/**
 * The ACK data of `opcode`, checked against the opcode table: empty when
 * its ACK data cell is, else decoded as that message.
 */
export function ackData(opcode: number, data: Uint8Array, what: string): unknown {
  const row = opcodeRow(opcode);
  if (!row) return data; // an application opcode: its own schema
  if (row.ack === NO_REPLY) fail(`${what}: ${row.name} is one-way, yet it was ACKed`);
  if (row.ack === "") {
    if (data.length !== 0) {
      fail(`${what}: ACK ${row.name} carries ${data.length} bytes of data; the table says none`);
    }
    return undefined;
  }
  try {
    return fromBinary(schemaOf(row.ack), data);
  } catch (err) {
    fail(`${what}: ACK ${row.name} data does not decode as ${row.ack}: ${(err as Error).message}`);
  }
}

/** Checks a NACK's data against the opcode table's NACK data cell (empty, or that message). */
export function nackData(opcode: number, data: Uint8Array, what: string): unknown {
  const row = opcodeRow(opcode);
  if (!row || data.length === 0) return undefined;
  if (row.nack === "" || row.nack === NO_REPLY) {
    fail(`${what}: NACK ${row.name} carries ${data.length} bytes of data; the table says none`);
  }
  try {
    return fromBinary(schemaOf(row.nack), data);
  } catch (err) {
    fail(
      `${what}: NACK ${row.name} data does not decode as ${row.nack}: ${(err as Error).message}`,
    );
  }
}

/**
 * Sends a request (a fresh id unless `request.id` is given) and checks that
 * it gets ACK repeating its opcode, with data as the table says; resolves the
 * decoded data.
 */
export async function expectAck(
  c: RawClient,
  request: FrameFields,
  what: string,
  timeout = 5_000,
  // deno-lint-ignore no-explicit-any
): Promise<any> {
  const init = { ...request, id: request.id ?? c.newId() };
  const reply = await c.request(init, timeout);
  const expected = `ACK ${opName(init.opcode)}`;
  if (!reply) fail(`${what}: expected ${expected}, got no reply within ${timeout} ms`);
  if (!reply.ack) fail(`${what}: expected ${expected}, got ${describe(reply)}`);
  if (reply.ack.opcode !== init.opcode) {
    fail(
      `${what}: the ACK's Ack.opcode is ${opName(reply.ack.opcode)}, not the request's ` +
        `${opName(init.opcode)}`,
    );
  }
  return ackData(init.opcode, reply.ack.data, what);
}

/** Options of {@linkcode expectNack}. */
export interface NackExpectation {
  /** The reason expected (default: the refusal row's). */
  reason?: string;
  timeout?: number;
}

/**
 * Sends a request (a fresh id unless given) and checks that it is refused
 * as refusal-table row `row` says: NACK with the row's reason (or
 * `expect.reason`), Nack.opcode the request's opcode, data as the opcode
 * table says; the request's opcode is one the row covers. Resolves the
 * reply.
 */
export async function expectNack(
  c: RawClient,
  row: RefusalRow,
  request: FrameFields,
  what: string,
  expect: NackExpectation = {},
): Promise<Reply> {
  const init = { ...request, id: request.id ?? c.newId() };
  checkCovers(row, init.opcode);
  const wanted = expect.reason ?? row.reason;
  const timeout = expect.timeout ?? 5_000;
  const label = `${row.case} [${what}]`;
  const expected = `NACK ${opName(init.opcode)} ${wanted} (${reason(wanted)})`;
  const reply = await c.request(init, timeout);
  if (!reply) {
    fail(
      `${label}: expected ${expected}, got no reply within ${timeout} ms` +
        (c.open ? "" : ` (the connection ended: ${c.endedBy})`),
    );
  }
  if (!reply.nack) fail(`${label}: expected ${expected}, got ${describe(reply)}`);
  if (reply.nack.opcode !== init.opcode) {
    fail(
      `${label}: Nack.opcode is ${opName(reply.nack.opcode)}, not the request's ` +
        `${opName(init.opcode)}`,
    );
  }
  if (reply.nack.reason !== reason(wanted)) {
    fail(`${label}: expected ${expected}, got ${describe(reply)}`);
  }
  nackData(init.opcode, reply.nack.data, label);
  return reply;
}

/** Checks that a refusal row's opcode column covers `opcode`. */
function checkCovers(row: RefusalRow, opcode: number): void {
  const known = opcodeRow(opcode);
  if (row.opcode === "application") {
    if (opcode < 1000) fail(`${row.case}: opcode ${opcode} is not an application opcode`);
  } else if (row.opcode === "any request") {
    if (known?.kind === "one-way") fail(`${row.case}: ${known.name} is not a request`);
  } else if (known?.name !== row.opcode) {
    fail(`${row.case}: the scenario sends ${opName(opcode)}, the row is about ${row.opcode}`);
  }
}

/**
 * Checks that nothing answered `ids` on `c`, after a barrier. For frames
 * handled in order (everything but SHOUT and WHISPER, which the caller
 * waits for), a reply would have come before the barrier's.
 */
export async function expectNoReply(c: RawClient, ids: number[], what: string): Promise<void> {
  if (c.open) await c.sync();
  for (const id of ids) {
    const replies = c.repliesTo(id);
    if (replies.length > 0) {
      fail(`${what}: expected no reply to id ${id}, got ${replies.map(describe).join(", ")}`);
    }
  }
}

/**
 * Runs named sub-cases of one scenario, each to the end; throws once with
 * every failure, so that a report lists all of them.
 */
export class SubCases {
  readonly failures: string[] = [];
  readonly passed: string[] = [];

  /** Runs one sub-case. */
  async run(name: string, fn: () => void | Promise<void>): Promise<void> {
    try {
      await fn();
      this.passed.push(name);
    } catch (err) {
      const message = err instanceof Violation
        ? err.message
        : `${name}: ${(err as Error)?.stack ?? err}`;
      this.failures.push(message);
    }
  }

  /** Throws the failures, if any. */
  done(): void {
    if (this.failures.length > 0) fail(this.failures.join("\n"));
  }
}

export { fail };
