/**
 * The simultaneous-dial tie-break: when two connections between the same
 * pair of nodes complete (each dialed the other at once), both nodes keep the
 * connection *initiated by the node with the lower address* (bytewise order
 * of the public keys) and close the other with DISCONNECT
 * `DUPLICATE_CONNECTION`. When both were initiated by the same node, the
 * older one stays. Both sides apply the same rule, so they agree without
 * talking.
 *
 * @module
 */
import { compareBytes } from "../_bytes.ts";

/**
 * Which of two connections between the same pair survives (see the module doc).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { preferConnection } from "./mod.ts";
 * const low = new Uint8Array(32); // the lower address
 * const high = new Uint8Array(32).fill(1);
 * assert.equal(preferConnection({ initiator: high }, { initiator: low }), "incoming");
 * assert.equal(preferConnection({ initiator: low }, { initiator: high }), "existing");
 * ```
 */
export function preferConnection(
  existing: { initiator: Uint8Array },
  incoming: { initiator: Uint8Array },
): "existing" | "incoming" {
  const order = compareBytes(existing.initiator, incoming.initiator);
  if (order === 0) return "existing";
  return order < 0 ? "existing" : "incoming";
}
