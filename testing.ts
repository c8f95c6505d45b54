/**
 * What tests and simulations of carrier nodes use: an in-process network
 * (no sockets, deterministic) and a clock that moves only when told to.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * assert.equal(typeof await b.ping(a.address), "number");
 * ```
 *
 * @module
 */
export {
  DEFAULT_MEMORY_BACKLOG,
  DEFAULT_MEMORY_BUFFER_SIZE,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryTransport,
  parseMemoryAddress,
} from "./lib/transport/memory.ts";
export { ManualClock } from "./lib/clock.ts";
