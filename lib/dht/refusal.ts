/**
 * How a replica refuses a request: a {@linkcode NackError} carrying the
 * request's opcode, the NACK's reason and its typed data, thrown by the
 * store's rules and answered as a NACK by the DHT service (or caught as is
 * by this node's own client, which asks its own replica directly).
 *
 * @module
 */
import type { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { NackError } from "../errors.ts";

/** The refusal of a request of `opcode`: NACK `reason`, `message`, and `data` (a serialized `VersionConflict` or `LockHeld`). */
export function refusal(
  opcode: Opcode,
  reason: NackReason,
  message: string,
  data?: Uint8Array,
): NackError {
  return new NackError(message, { opcode, reason, data });
}
