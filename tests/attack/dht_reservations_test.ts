// Issue 11, item 4: compare-and-swap reservations (PREPAREs) count against a
// replica's byte limit, and re-preparing never extends one. The attacker is
// a carrier node that dials out and sends DHT_CAS PREPAREs of its own, over
// real TCP on 127.0.0.1.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, dhtKey, NackError, NackReason, Opcode } from "../../mod.ts";
import { ManualClock } from "../../testing.ts";
import { createRecord } from "../../lib/dht/record.ts";
import { CasPhase, CasRequestSchema } from "../../lib/protocol.ts";

/** A DHT_CAS PREPARE of a first version (expected 0) of `key`. */
function prepare(key: Uint8Array, value: Uint8Array, proposal: Uint8Array): Uint8Array {
  return toBinary(
    CasRequestSchema,
    create(CasRequestSchema, {
      record: createRecord({ key, value, version: 1 }),
      expectedVersion: 0n,
      proposal,
      phase: CasPhase.PREPARE,
    }),
  );
}

Deno.test("DHT reservations of 64 KiB records count against maxBytes", async () => {
  const maxBytes = 512 * 1024;
  await using replica = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    // A quota above what fits: the byte limit is what stops the attacker here.
    dht: { maxBytes, maxReservationsPerPeer: 64 },
  });
  await using attacker = await createNode({ puzzleDifficulty: 0 });
  const peer = await attacker.connect(replica.peerAddresses[0]);
  const value = new Uint8Array(64 * 1024);
  let reserved = 0;
  const refusals: string[] = [];
  for (let i = 0; i < 32; i++) {
    const proposal = crypto.getRandomValues(new Uint8Array(16));
    try {
      await peer.request(Opcode.DHT_CAS, prepare(dhtKey(`reserve ${i}`), value, proposal));
      reserved++;
    } catch (err) {
      assert.ok(err instanceof NackError && err.reason === NackReason.RATE_LIMITED, `${err}`);
      refusals.push(err.message);
    }
  }
  const fits = Math.floor(maxBytes / (value.length + 32 + 1024));
  assert.ok(
    reserved <= fits,
    `${reserved} PREPAREs of 64 KiB were reserved with maxBytes ${maxBytes} (${fits} fit)`,
  );
  assert.equal(reserved, fits);
  assert.match(refusals[0], /maxBytes 524288/);
  assert.ok(replica.dht.bytes <= maxBytes, `${replica.dht.bytes} bytes counted`);
  assert.equal(replica.dht.size, 0); // reservations, not records
});

Deno.test("DHT reservation is not extended past reservationTime by re-preparing", async () => {
  const clock = new ManualClock(1_000_000);
  await using replica = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    clock,
    dht: { reservationTime: 5_000 },
  });
  await using legit = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  await legit.connect(replica.peerAddresses[0]);
  await using attacker = await createNode({ puzzleDifficulty: 0 });
  const peer = await attacker.connect(replica.peerAddresses[0]);
  const key = dhtKey("contested");
  const proposal = crypto.getRandomValues(new Uint8Array(16));
  const squat = prepare(key, new TextEncoder().encode("squat"), proposal);
  await peer.request(Opcode.DHT_CAS, squat);
  clock.advance(4_000);
  await peer.request(Opcode.DHT_CAS, squat); // the same proposal again: allowed, not renewed
  clock.advance(1_001); // past the first PREPARE's reservationTime
  const written = await legit.dht.cas("contested", "legit", 0);
  assert.deepEqual(written, { version: 1, replicas: 2 });
  const found = await legit.dht.get("contested");
  assert.equal(new TextDecoder().decode(found?.value), "legit");
});
