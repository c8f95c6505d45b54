/**
 * The protocol's opcode table, whole: the core's opcodes
 * (`lib/wire/opcodes.ts`) and those of the protocol's services (the DHT's,
 * `lib/dht/opcodes.ts`), gathered here so that the wire layer depends on
 * no service.
 *
 * @module
 */
import { DHT_OPCODES } from "./dht/opcodes.ts";
import { CORE_OPCODES, type OpcodeSpec } from "./wire/opcodes.ts";

/**
 * The protocol's opcodes, as `proto/carrier/v1/frame.proto` documents them,
 * in opcode order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode, PROTOCOL_OPCODES } from "@carrier/p2p";
 * const ping = PROTOCOL_OPCODES.find((s) => s.opcode === Opcode.PING)!;
 * assert.equal(ping.name, "PING");
 * assert.equal(ping.oneWay, false);
 * ```
 */
export const PROTOCOL_OPCODES: readonly OpcodeSpec[] = Object.freeze(
  [...CORE_OPCODES, ...DHT_OPCODES].sort((a, b) => a.opcode - b.opcode),
);
