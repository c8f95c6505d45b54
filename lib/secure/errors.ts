/**
 * The secure channel's errors: a handshake that failed (or met another
 * identity than expected), a message that does not decrypt, a nonce space
 * used up.
 *
 * @module
 */
import { CarrierError } from "../errors.ts";

/**
 * The Noise handshake failed: garbage, a bad payload, a bad signature, a stall.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, HandshakeError } from "@carrier/p2p";
 * import { secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * const server = net.transport();
 * const listener = await server.listen("mem:0");
 * const stream = await net.transport().dial(listener.address);
 * server.close(); // the server is gone before the handshake
 * const identity = generateIdentitySync();
 * await assert.rejects(secureOutbound(stream, { identity }), HandshakeError);
 * ```
 */
export class HandshakeError extends CarrierError {}

/**
 * The remote proved an identity other than the one the dialer expected.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, generateIdentitySync, IdentityMismatchError } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const someoneElse = generateIdentitySync().address;
 * await assert.rejects(b.connect(`${someoneElse}@${a.listenAddrs[0]}`), IdentityMismatchError);
 * ```
 */
export class IdentityMismatchError extends HandshakeError {}

/**
 * A ciphertext failed authentication (tampered, replayed or out of order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DecryptError, generateIdentitySync } from "@carrier/p2p";
 * import { secureInbound, secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:bob");
 * const accepting = (async () => {
 *   for await (const stream of listener) return secureInbound(stream, { identity: bob });
 * })();
 * const stream = await net.transport().dial(listener.address);
 * await using _channel = await secureOutbound(stream, { identity: alice });
 * await using atBob = (await accepting)!;
 * await stream.write(new Uint8Array([0, 16, ...new Uint8Array(16)])); // forged, not encrypted
 * await assert.rejects(atBob.read(), DecryptError);
 * ```
 */
export class DecryptError extends CarrierError {}

/**
 * A cipher state reached its last nonce; the connection must be closed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentitySync, NonceExhaustedError } from "@carrier/p2p";
 * import { secureInbound, secureOutbound } from "@carrier/p2p/protocol";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const [alice, bob] = Array.from(Array(2), () => generateIdentitySync({ difficulty: 0 }));
 * await using net = new MemoryNetwork();
 * const listener = await net.transport().listen("mem:bob");
 * const accepting = (async () => {
 *   for await (const stream of listener) return secureInbound(stream, { identity: bob });
 * })();
 * const stream = await net.transport().dial(listener.address);
 * await using channel = await secureOutbound(stream, { identity: alice, nonceLimit: 1n });
 * await using _atBob = (await accepting)!;
 * await channel.write(new Uint8Array([1])); // nonce 0, the last one allowed
 * await assert.rejects(channel.write(new Uint8Array([2])), NonceExhaustedError);
 * ```
 */
export class NonceExhaustedError extends CarrierError {}
