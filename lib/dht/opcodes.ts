/**
 * The DHT's opcodes (`proto/carrier/v1/frame.proto`): Kademlia's FIND_NODE,
 * FIND_VALUE and STORE and carrier's DHT_CAS, DHT_PATCH, DHT_CHANGES,
 * DHT_LOCK and DHT_UNLOCK, with the schemas of their payloads, ACKs and
 * NACKs. The DHT service declares them; a node registers them with it.
 *
 * @module
 */
import {
  CasRequestSchema,
  ChangesReplySchema,
  ChangesRequestSchema,
  FindNodeReplySchema,
  FindNodeRequestSchema,
  FindValueReplySchema,
  FindValueRequestSchema,
  LockGrantSchema,
  LockHeldSchema,
  LockRequestSchema,
  PatchRequestSchema,
  StoreReplySchema,
  StoreRequestSchema,
  UnlockReplySchema,
  UnlockRequestSchema,
  VersionConflictSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { type OpcodeSpec, protocolOpcode } from "../wire/opcodes.ts";

/**
 * The DHT's opcodes, in opcode order: what the DHT service declares
 * (`opcodes`) and a node registers.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { DHT_OPCODES } from "@carrier/p2p/protocol";
 * const store = DHT_OPCODES.find((s) => s.opcode === Opcode.STORE)!;
 * assert.equal(store.name, "STORE");
 * assert.equal(store.nack?.typeName, "carrier.v1.VersionConflict"); // a lost write's NACK data
 * assert.ok(DHT_OPCODES.every((s) => !s.oneWay)); // every DHT opcode is a request
 * ```
 */
export const DHT_OPCODES: readonly OpcodeSpec[] = Object.freeze([
  protocolOpcode(Opcode.FIND_NODE, FindNodeRequestSchema, { reply: FindNodeReplySchema }),
  protocolOpcode(Opcode.FIND_VALUE, FindValueRequestSchema, { reply: FindValueReplySchema }),
  protocolOpcode(Opcode.STORE, StoreRequestSchema, {
    reply: StoreReplySchema,
    nack: VersionConflictSchema,
  }),
  protocolOpcode(Opcode.DHT_CAS, CasRequestSchema, {
    reply: StoreReplySchema,
    nack: VersionConflictSchema,
  }),
  protocolOpcode(Opcode.DHT_LOCK, LockRequestSchema, {
    reply: LockGrantSchema,
    nack: LockHeldSchema,
  }),
  protocolOpcode(Opcode.DHT_UNLOCK, UnlockRequestSchema, {
    reply: UnlockReplySchema,
    nack: LockHeldSchema,
  }),
  protocolOpcode(Opcode.DHT_PATCH, PatchRequestSchema, {
    reply: StoreReplySchema,
    nack: VersionConflictSchema,
  }),
  protocolOpcode(Opcode.DHT_CHANGES, ChangesRequestSchema, { reply: ChangesReplySchema }),
]);

const DHT_OPCODE_SET: ReadonlySet<number> = new Set(DHT_OPCODES.map((s) => s.opcode));

/**
 * Whether `opcode` is one of the DHT's ({@linkcode DHT_OPCODES}).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode } from "@carrier/p2p";
 * import { isDhtOpcode } from "@carrier/p2p/protocol";
 * assert.ok(isDhtOpcode(Opcode.FIND_NODE));
 * assert.ok(!isDhtOpcode(Opcode.PING));
 * ```
 */
export function isDhtOpcode(opcode: number): boolean {
  return DHT_OPCODE_SET.has(opcode);
}
