// Issue 11, item 7: a SHOUT flood from thousands of fresh origins through one
// peer. The node paces what one peer may send (maxShoutsPerPeerPerSecond)
// instead of holding or dropping it, and forwards everything it accepted: no
// forward is dropped, and another origin's SHOUT inside the flood arrives.
import assert from "node:assert/strict";
import { createNode, type MessageEventDetail, Opcode } from "../../mod.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import { listeningNode, rawPeer, shoutFrom, until } from "./_attack.ts";

const ORIGINS = 2_000;
const PER_ORIGIN = 3;

Deno.test("a SHOUT flood from fresh origins through one peer loses no accepted SHOUT and no other origin's", async () => {
  await using relay = await listeningNode();
  await using leaf = await createNode(); // outbound-only: every SHOUT reaches it from the relay
  await using origin = await createNode();
  await leaf.connect(relay.peerAddresses[0]);
  await origin.connect(relay.peerAddresses[0]);
  const heard: MessageEventDetail[] = [];
  leaf.addEventListener("message", (e) => heard.push(e.detail));
  await using tcp = new TcpTransport();
  const attacker = await rawPeer(relay, tcp, { maxPendingRequests: 10_000 });
  const payloads: Uint8Array[] = [];
  for (let o = 0; o < ORIGINS; o++) {
    const identity = generateIdentitySync({ difficulty: 0 });
    for (let s = 1; s <= PER_ORIGIN; s++) payloads.push(shoutFrom(identity, s));
  }
  const replies = payloads.map((payload, i) => {
    // The legit origin shouts from inside the flood.
    if (i === payloads.length / 2) origin.shout("the real one").catch(() => {});
    return attacker.request(Opcode.SHOUT, payload, { timeout: 60_000 }).then(
      () => "ack",
      (err) => err,
    );
  });
  const outcomes = await Promise.all(replies);
  const acked = outcomes.filter((o) => o === "ack").length;
  assert.equal(
    acked,
    ORIGINS * PER_ORIGIN,
    "every SHOUT of the flood is taken, at the peer's pace",
  );
  await until(
    () => heard.filter((m) => m.topic === "flood").length === acked,
    `the leaf to hear all ${acked} accepted SHOUTs (heard ${heard.length})`,
    30_000,
  );
  await until(() => heard.some((m) => m.topic === ""), "the leaf to hear the legit origin's SHOUT");
  assert.ok(relay.metrics().shouts.paced > 0, "the flood was paced");
  await attacker.close();
});
