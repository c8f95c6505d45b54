/**
 * Peer addresses: a node's identity plus where to reach it, written
 * `ADDRESS@TRANSPORT_ADDRESS`, the transport address in any form
 * `parseTransportAddress` reads (for example `8Hq…Xz@127.0.0.1:4000`,
 * `8Hq…Xz@[::1]:4000`, `8Hq…Xz@mem:alice`).
 *
 * @module
 */
import { PeerAddressError } from "../errors.ts";
import { parseAddress } from "../identity/address.ts";
import { parseTransportAddress } from "../transport/address.ts";

/**
 * A node to dial: who it is and where.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, parsePeerAddress, type PeerAddress } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const target: PeerAddress = parsePeerAddress(a.peerAddresses[0]);
 * const peer = await b.connect(target);
 * assert.deepEqual(peer.identityKey, target.identityKey);
 * ```
 */
export interface PeerAddress {
  /** The node's 32-byte Ed25519 public key. */
  readonly identityKey: Uint8Array;
  /** The same, as base58 text. */
  readonly address: string;
  /** Transport address, as {@linkcode formatTransportAddress} writes it: `HOST:PORT`, `[V6]:PORT`, `mem:NAME`, `SCHEME://HOST:PORT`. */
  readonly transportAddress: string;
}

/**
 * Parses `ADDRESS@HOST:PORT` (or any other transport address after the `@`).
 *
 * @throws {PeerAddressError} naming the text and what is wrong, with the
 * underlying {@linkcode AddressError} as `cause` for a bad address part and
 * the {@linkcode TransportAddressError} for a malformed transport address.
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress, parsePeerAddress } from "@carrier/p2p";
 * const key = formatAddress(new Uint8Array(32).fill(1));
 * const peer = parsePeerAddress(`${key}@127.0.0.1:4000`);
 * assert.equal(peer.transportAddress, "127.0.0.1:4000");
 * ```
 */
export function parsePeerAddress(text: string): PeerAddress {
  const at = text.indexOf("@");
  if (at < 0) {
    throw new PeerAddressError(
      `Cannot parse peer address "${text}": expected ADDRESS@HOST:PORT (no "@")`,
    );
  }
  const addressText = text.slice(0, at);
  const transportAddress = text.slice(at + 1);
  if (transportAddress.length === 0) {
    throw new PeerAddressError(
      `Cannot parse peer address "${text}": nothing after "@" (expected HOST:PORT)`,
    );
  }
  let identityKey: Uint8Array;
  try {
    identityKey = parseAddress(addressText);
  } catch (cause) {
    throw new PeerAddressError(
      `Cannot parse peer address "${text}": ${(cause as Error).message}`,
      { cause },
    );
  }
  try {
    parseTransportAddress(transportAddress);
  } catch (cause) {
    throw new PeerAddressError(
      `Cannot parse peer address "${text}": ${(cause as Error).message}`,
      { cause },
    );
  }
  return { identityKey, address: addressText, transportAddress };
}

/**
 * Formats a {@linkcode PeerAddress} as `ADDRESS@HOST:PORT`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPeerAddress, generateIdentitySync, parsePeerAddress } from "@carrier/p2p";
 * const { address } = generateIdentitySync({ difficulty: 0 });
 * const text = formatPeerAddress({ address, transportAddress: "[::1]:4000" });
 * assert.equal(text, `${address}@[::1]:4000`);
 * assert.equal(parsePeerAddress(text).transportAddress, "[::1]:4000");
 * ```
 */
export function formatPeerAddress(peer: Pick<PeerAddress, "address" | "transportAddress">): string {
  return `${peer.address}@${peer.transportAddress}`;
}
