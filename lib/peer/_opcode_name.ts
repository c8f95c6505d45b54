/**
 * How the peer layer names an opcode in its messages.
 *
 * Private to `lib/peer/`.
 *
 * @module
 */

import { Opcode } from "../../gen/carrier/v1/frame_pb.ts";

/** The protocol's name of `opcode` (`PING`), else `opcode N`. */
export function opcodeName(opcode: number): string {
  return Opcode[opcode] ?? `opcode ${opcode}`;
}
