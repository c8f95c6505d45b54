/**
 * The ACK payload on the hot path: every request's reply is one, so it is
 * encoded by hand rather than by the reflective Protobuf encoder.
 *
 * @module
 */

import { varintSize, writeVarint } from "./_varint.ts";

/**
 * `carrier.v1.Ack { opcode = 1; data = 2 }` in the proto3 wire format,
 * byte-identical to `toBinary(AckSchema, create(AckSchema, { opcode, data }))`
 * (fields in number order, zero values omitted). Written by hand because
 * every request's reply is one: the reflective encoder costs about 3 µs, a
 * tenth of a loopback round trip.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create, toBinary } from "@bufbuild/protobuf";
 * import { AckSchema } from "../protocol.ts";
 * import { encodeAck } from "./ack.ts";
 * const data = new Uint8Array([1, 2, 3]);
 * assert.deepEqual(encodeAck(7, data), toBinary(AckSchema, create(AckSchema, { opcode: 7, data })));
 * assert.deepEqual(encodeAck(0, new Uint8Array(0)), new Uint8Array(0));
 * ```
 *
 * @param opcode The opcode of the request answered (a uint32).
 * @param data The reply message, serialized.
 */
export function encodeAck(opcode: number, data: Uint8Array): Uint8Array {
  const size = (opcode !== 0 ? 1 + varintSize(opcode) : 0) +
    (data.length !== 0 ? 1 + varintSize(data.length) + data.length : 0);
  const out = new Uint8Array(size);
  let offset = 0;
  if (opcode !== 0) {
    out[offset++] = 0x08; // field 1, varint
    offset = writeVarint(out, offset, opcode);
  }
  if (data.length !== 0) {
    out[offset++] = 0x12; // field 2, length-delimited
    offset = writeVarint(out, offset, data.length);
    out.set(data, offset);
  }
  return out;
}
