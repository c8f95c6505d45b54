import assert from "node:assert/strict";
import { AddressError, PeerAddressError, TransportAddressError } from "../../lib/errors.ts";
import { formatAddress } from "../../lib/identity/address.ts";
import { formatPeerAddress, parsePeerAddress } from "../../lib/overlay/peer_address.ts";

const key = formatAddress(new Uint8Array(32).fill(7));

Deno.test("parsePeerAddress takes every transport address form and formats it back", () => {
  for (const transportAddress of ["127.0.0.1:4000", "[::1]:4000", "mem:alice", "ws://h:1/p"]) {
    const text = `${key}@${transportAddress}`;
    const peer = parsePeerAddress(text);
    assert.equal(peer.address, key);
    assert.equal(peer.transportAddress, transportAddress);
    assert.equal(formatPeerAddress(peer), text);
  }
});

Deno.test("parsePeerAddress names a malformed identity or transport part", () => {
  assert.throws(() => parsePeerAddress("127.0.0.1:4000"), {
    name: "PeerAddressError",
    message: 'Cannot parse peer address "127.0.0.1:4000": expected ADDRESS@HOST:PORT (no "@")',
  });
  assert.throws(() => parsePeerAddress(`${key}@`), PeerAddressError);
  assert.throws(() => parsePeerAddress("0OIl@127.0.0.1:1"), (error: unknown) => {
    assert.ok(error instanceof PeerAddressError);
    assert.ok(error.cause instanceof AddressError);
    return true;
  });
  assert.throws(() => parsePeerAddress(`${key}@::1:4000`), (error: unknown) => {
    assert.ok(error instanceof PeerAddressError);
    assert.ok(error.cause instanceof TransportAddressError);
    assert.equal(
      error.message,
      `Cannot parse peer address "${key}@::1:4000": Cannot parse address "::1:4000": ` +
        `an IPv6 address must be in brackets, as in "[::1]:4000"`,
    );
    return true;
  });
});
