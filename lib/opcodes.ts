/**
 * The protocol's opcode table, whole: the link layer's opcodes
 * (`lib/wire/opcodes.ts`) and those the protocol's services declare (SHOUT,
 * SPEAK, WHISPER, METRICS, IDENTIFY, DIAL_BACK, RELAY, RELAY_DATA, HOLE_PUNCH in
 * `lib/services/`, the DHT's in
 * `lib/dht/opcodes.ts`), gathered here so that the wire layer depends on no
 * service.
 *
 * @module
 */
import { DHT_OPCODES } from "./dht/opcodes.ts";
import { DIAL_BACK_OPCODE } from "./services/dial_back.ts";
import { HOLE_PUNCH_OPCODE } from "./services/holepunch.ts";
import { IDENTIFY_OPCODE } from "./services/identify.ts";
import { METRICS_OPCODE } from "./services/metrics.ts";
import { RELAY_DATA_OPCODE, RELAY_OPCODE } from "./services/relay.ts";
import { SHOUT_OPCODE } from "./services/shout.ts";
import { SPEAK_OPCODE } from "./services/speak.ts";
import { WHISPER_OPCODE } from "./services/whisper.ts";
import { LINK_OPCODES, type OpcodeSpec } from "./wire/opcodes.ts";

/**
 * The protocol's opcodes, as `proto/carrier/v1/frame.proto` documents them,
 * in opcode order.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Opcode, PROTOCOL_OPCODES } from "@carrier/p2p/protocol";
 * const ping = PROTOCOL_OPCODES.find((s) => s.opcode === Opcode.PING)!;
 * assert.equal(ping.name, "PING");
 * assert.equal(ping.oneWay, false);
 * ```
 */
export const PROTOCOL_OPCODES: readonly OpcodeSpec[] = Object.freeze(
  [
    ...LINK_OPCODES,
    SHOUT_OPCODE,
    SPEAK_OPCODE,
    WHISPER_OPCODE,
    METRICS_OPCODE,
    IDENTIFY_OPCODE,
    DIAL_BACK_OPCODE,
    RELAY_OPCODE,
    RELAY_DATA_OPCODE,
    HOLE_PUNCH_OPCODE,
    ...DHT_OPCODES,
  ].sort((a, b) => a.opcode - b.opcode),
);
