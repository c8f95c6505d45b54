/**
 * The opcode registry: which Protobuf message each opcode carries, and what
 * its ACK and NACK carry.
 *
 * The link layer's opcodes (ACK, NACK, PING, SET_CONNECTION_OPT,
 * KEEPALIVE, DISCONNECT: what every connection answers itself) are built
 * in. Each service declares its own (SHOUT, WHISPER… in `lib/services/`,
 * the DHT's in `lib/dht/opcodes.ts`) and the node adds them as it adds the
 * service; `lib/opcodes.ts` gathers the whole table of
 * `proto/carrier/v1/frame.proto`. Applications register theirs from
 * {@linkcode APPLICATION_OPCODE_MIN} (1000) up, each with the schema of its
 * payload from the application's own generated code.
 *
 * @module
 */
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { MessageOf, Schema } from "../_protobuf.ts";
import { DisconnectSchema, KeepaliveSchema, PingSchema } from "../../gen/carrier/v1/control_pb.ts";
import { AckSchema, NackSchema, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { SetConnectionOptSchema } from "../../gen/carrier/v1/options_pb.ts";
import { OpcodeRegistryError, PayloadDecodeError, UnknownOpcodeError } from "../errors.ts";

export { Opcode };

/**
 * The first application opcode. Values below it belong to the protocol.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { APPLICATION_OPCODE_MIN, defineOpcode, OpcodeRegistryError } from "@carrier/p2p";
 * const init = { request: StringValueSchema };
 * assert.equal(defineOpcode(APPLICATION_OPCODE_MIN, init).name, "APP_1000");
 * assert.throws(() => defineOpcode(APPLICATION_OPCODE_MIN - 1, init), OpcodeRegistryError);
 * ```
 */
export const APPLICATION_OPCODE_MIN = 1000;

/**
 * The largest opcode a frame can carry (uint32).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { defineOpcode, OpcodeRegistryError } from "@carrier/p2p";
 * import { OPCODE_MAX } from "@carrier/p2p/protocol";
 * const init = { request: StringValueSchema };
 * assert.equal(defineOpcode(OPCODE_MAX, init).opcode, 2 ** 32 - 1);
 * assert.throws(() => defineOpcode(OPCODE_MAX + 1, init), OpcodeRegistryError);
 * ```
 */
export const OPCODE_MAX = 0xffff_ffff;

/**
 * What an opcode carries.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { OpcodeSpec } from "@carrier/p2p";
 * import { PROTOCOL_OPCODES } from "@carrier/p2p/protocol";
 * const oneWay: OpcodeSpec[] = PROTOCOL_OPCODES.filter((spec) => spec.oneWay);
 * const names = oneWay.map((spec) => spec.name);
 * assert.deepEqual(names, ["ACK", "NACK", "SPEAK", "DISCONNECT", "IDENTIFY", "RELAY_DATA"]);
 * ```
 */
export interface OpcodeSpec<
  Request extends Schema = Schema,
  Reply extends Schema = Schema,
> {
  /** The opcode value. */
  readonly opcode: number;
  /** A name for logs and errors (the protocol's are the seed's, e.g. `PING`). */
  readonly name: string;
  /** Schema of the frame's payload. */
  readonly request: Request;
  /** Schema of the ACK's data; `undefined` when the ACK carries none. */
  readonly reply?: Reply;
  /** Schema of the NACK's data, if it carries any. */
  readonly nack?: Schema;
  /** The sender expects no ACK or NACK (ACK, NACK, SPEAK, DISCONNECT, one-way application opcodes). */
  readonly oneWay: boolean;
}

/**
 * A protocol opcode's definition (0–999, from `proto/carrier/v1/frame.proto`):
 * what the link layer and each protocol service declare. Applications use
 * {@linkcode defineOpcode} instead.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode, protocolOpcode } from "@carrier/p2p/protocol";
 * import { PingSchema } from "../../gen/carrier/v1/control_pb.ts";
 * const ping = protocolOpcode(Opcode.PING, PingSchema, { reply: PingSchema });
 * assert.equal(ping.name, "PING");
 * ```
 */
export function protocolOpcode(
  opcode: Opcode,
  request: Schema,
  options: { reply?: Schema; nack?: Schema; oneWay?: boolean } = {},
): OpcodeSpec {
  return Object.freeze({
    opcode,
    name: Opcode[opcode],
    request,
    reply: options.reply,
    nack: options.nack,
    oneWay: options.oneWay ?? false,
  });
}

/**
 * The link layer's opcodes: what every connection answers itself (ACK,
 * NACK, PING, SET_CONNECTION_OPT, KEEPALIVE, DISCONNECT). The services
 * declare the others; the whole table is `PROTOCOL_OPCODES`
 * (`lib/opcodes.ts`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { LINK_OPCODES, Opcode } from "@carrier/p2p/protocol";
 * const ping = LINK_OPCODES.find((s) => s.opcode === Opcode.PING)!;
 * assert.equal(ping.name, "PING");
 * assert.equal(LINK_OPCODES.find((s) => s.opcode === Opcode.SHOUT), undefined); // a service's
 * ```
 */
export const LINK_OPCODES: readonly OpcodeSpec[] = Object.freeze([
  protocolOpcode(Opcode.ACK, AckSchema, { oneWay: true }),
  protocolOpcode(Opcode.NACK, NackSchema, { oneWay: true }),
  protocolOpcode(Opcode.PING, PingSchema, { reply: PingSchema }),
  protocolOpcode(Opcode.SET_CONNECTION_OPT, SetConnectionOptSchema, {
    reply: SetConnectionOptSchema,
    nack: SetConnectionOptSchema,
  }),
  protocolOpcode(Opcode.KEEPALIVE, KeepaliveSchema, { reply: KeepaliveSchema }),
  protocolOpcode(Opcode.DISCONNECT, DisconnectSchema, { oneWay: true }),
]);

/**
 * An application opcode's definition, for {@linkcode OpcodeRegistry.register}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import type { ApplicationOpcodeInit } from "@carrier/p2p";
 * import { OpcodeRegistry } from "@carrier/p2p/protocol";
 * const init: ApplicationOpcodeInit<typeof StringValueSchema, typeof StringValueSchema> = {
 *   name: "NOTE",
 *   request: StringValueSchema,
 *   oneWay: true,
 * };
 * const spec = new OpcodeRegistry().register(1001, init);
 * assert(spec.oneWay && spec.reply === undefined);
 * ```
 */
export interface ApplicationOpcodeInit<
  Request extends Schema,
  Reply extends Schema,
> {
  /** A name for logs and errors. @default {`APP_<opcode>`} */
  name?: string;
  /** Schema of the frame's payload. */
  request: Request;
  /** Schema of the ACK's data. @default {undefined} (an ACK without data) */
  reply?: Reply;
  /** The sender expects no reply. @default {false} */
  oneWay?: boolean;
}

/**
 * Defines an application opcode: its value (≥ 1000) and the schemas of its
 * payload and its ACK's data, from the application's own generated code. The
 * result is what `node.handle` and `node.request` take.
 *
 * @throws {OpcodeRegistryError} if `opcode` is below 1000 (the protocol's) or not a uint32.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defineOpcode } from "@carrier/p2p";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * const ECHO = defineOpcode(1000, { name: "ECHO", request: StringValueSchema, reply: StringValueSchema });
 * assert.equal(ECHO.opcode, 1000);
 * assert.equal(ECHO.oneWay, false);
 * ```
 */
export function defineOpcode<Request extends Schema, Reply extends Schema = Schema>(
  opcode: number,
  init: ApplicationOpcodeInit<Request, Reply>,
): OpcodeSpec<Request, Reply> {
  if (!Number.isInteger(opcode) || opcode < 0 || opcode > OPCODE_MAX) {
    throw new OpcodeRegistryError(
      `Cannot register opcode ${opcode}: not an integer from ${APPLICATION_OPCODE_MIN} to ${OPCODE_MAX}`,
    );
  }
  if (opcode < APPLICATION_OPCODE_MIN) {
    const owner = Opcode[opcode] ?? "reserved for the protocol";
    throw new OpcodeRegistryError(
      `Cannot register opcode ${opcode}: values below ${APPLICATION_OPCODE_MIN} are the protocol's (${owner})`,
    );
  }
  return Object.freeze({
    opcode,
    name: init.name ?? `APP_${opcode}`,
    request: init.request,
    reply: init.reply,
    oneWay: init.oneWay ?? false,
  });
}

/**
 * Maps opcodes to their schemas and decodes payloads by opcode.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { OpcodeRegistry } from "@carrier/p2p/protocol";
 * // Any protoc-gen-es schema: usually the application's own generated code.
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * const registry = new OpcodeRegistry();
 * registry.register(1000, { name: "ECHO", request: StringValueSchema, reply: StringValueSchema });
 * assert.equal(registry.get(1000)?.name, "ECHO");
 * ```
 */
export class OpcodeRegistry {
  readonly #specs = new Map<number, OpcodeSpec>();

  /**
   * Creates a registry holding the link layer's opcodes
   * ({@linkcode LINK_OPCODES}).
   */
  constructor() {
    for (const s of LINK_OPCODES) this.#specs.set(s.opcode, s);
  }

  /**
   * Adds a definition a service declares: one of the protocol's opcodes
   * (below 1000, named as its `Opcode`), or an application's made with
   * {@linkcode defineOpcode}.
   *
   * @throws {OpcodeRegistryError} for an opcode below 1000 that is not one of
   * proto/'s, or one registered already.
   */
  add(spec: OpcodeSpec): void {
    if (spec.opcode < APPLICATION_OPCODE_MIN && Opcode[spec.opcode] !== spec.name) {
      throw new OpcodeRegistryError(
        `Cannot register ${spec.name} (${spec.opcode}) as a protocol opcode: not one of proto/'s`,
      );
    }
    const existing = this.#specs.get(spec.opcode);
    if (existing) {
      throw new OpcodeRegistryError(
        `Cannot register opcode ${spec.opcode} (${spec.name}): already registered as ${existing.name}`,
      );
    }
    this.#specs.set(spec.opcode, spec);
  }

  /**
   * Registers an application opcode.
   *
   * @throws {OpcodeRegistryError} if `opcode` is below 1000 (reserved for the
   * protocol), not a uint32, or already registered.
   */
  register<Request extends Schema, Reply extends Schema = Schema>(
    opcode: number,
    init: ApplicationOpcodeInit<Request, Reply>,
  ): OpcodeSpec<Request, Reply> {
    const s = defineOpcode(opcode, init);
    const existing = this.#specs.get(opcode);
    if (existing) {
      throw new OpcodeRegistryError(
        `Cannot register opcode ${opcode}: already registered as ${existing.name}`,
      );
    }
    this.#specs.set(opcode, s);
    return s;
  }

  /** Removes an application opcode; returns whether it was registered. */
  unregister(opcode: number): boolean {
    if (opcode < APPLICATION_OPCODE_MIN) return false;
    return this.#specs.delete(opcode);
  }

  /** The opcode's definition, or `undefined` if nobody registered it. */
  get(opcode: number): OpcodeSpec | undefined {
    return this.#specs.get(opcode);
  }

  /**
   * The opcode's definition.
   *
   * @throws {UnknownOpcodeError} if nobody registered it.
   */
  require(opcode: number): OpcodeSpec {
    const s = this.#specs.get(opcode);
    if (!s) {
      throw new UnknownOpcodeError(`Unknown opcode ${opcode}: not registered`);
    }
    return s;
  }

  /** Every registered opcode, protocol ones first, in ascending order. */
  list(): OpcodeSpec[] {
    return [...this.#specs.values()].sort((a, b) => a.opcode - b.opcode);
  }

  /**
   * Decodes a frame's payload as its opcode's request message.
   *
   * @throws {UnknownOpcodeError} if the opcode is not registered.
   * @throws {PayloadDecodeError} if the payload does not parse.
   */
  decodeRequest(
    opcode: number,
    payload: Uint8Array,
  ): MessageOf<Schema> {
    const s = this.require(opcode);
    return decodePayload(s.request, payload, s.name);
  }
}

/**
 * Decodes `bytes` as a message of `schema`.
 *
 * @throws {PayloadDecodeError} naming the schema and the parse failure.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { decodePayload, encodePayload } from "@carrier/p2p/protocol";
 * const bytes = encodePayload(StringValueSchema, create(StringValueSchema, { value: "hi" }));
 * assert.equal(decodePayload(StringValueSchema, bytes).value, "hi");
 * ```
 */
export function decodePayload<Desc extends Schema>(
  schema: Desc,
  bytes: Uint8Array,
  context: string = schema.typeName,
): MessageOf<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (cause) {
    throw new PayloadDecodeError(
      `Cannot decode ${context} payload: ${bytes.length} bytes are not a ${schema.typeName} (${
        (cause as Error).message
      })`,
      { cause },
    );
  }
}

/**
 * Encodes a message of `schema` (the inverse of {@linkcode decodePayload}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { encodePayload } from "@carrier/p2p/protocol";
 * const bytes = encodePayload(StringValueSchema, create(StringValueSchema, { value: "hi" }));
 * assert.deepEqual(bytes, new Uint8Array([0x0a, 2, 0x68, 0x69])); // field 1, 2 bytes, "hi"
 * ```
 */
export function encodePayload<Desc extends Schema>(
  schema: Desc,
  message: MessageOf<Desc>,
): Uint8Array {
  return toBinary(schema, message);
}
