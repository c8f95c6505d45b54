// Issue 11, item 8: one peer cannot exhaust a replica's lock and CAS
// tables. The attacker is a carrier node that dials out and sends DHT_LOCK
// and DHT_CAS PREPARE requests of its own over real TCP on 127.0.0.1; a
// legit node, the other replica, then locks and writes other keys.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, dhtKey, NackError, NackReason, Opcode } from "../../mod.ts";
import { createRecord } from "../../lib/dht/record.ts";
import { CasPhase, CasRequestSchema, LockRequestSchema } from "../../lib/protocol.ts";

const lockRequest = (key: Uint8Array) =>
  toBinary(LockRequestSchema, create(LockRequestSchema, { key, ttlMs: 300_000n }));

const prepare = (key: Uint8Array) =>
  toBinary(
    CasRequestSchema,
    create(CasRequestSchema, {
      record: createRecord({ key, value: new TextEncoder().encode("squat"), version: 1 }),
      expectedVersion: 0n,
      proposal: crypto.getRandomValues(new Uint8Array(16)),
      phase: CasPhase.PREPARE,
    }),
  );

/** Sends each request; counts the ACKs and collects the NACK messages (all RATE_LIMITED). */
async function flood(
  send: (i: number) => Promise<unknown>,
  count: number,
): Promise<{ granted: number; refusals: string[] }> {
  let granted = 0;
  const refusals: string[] = [];
  for (let i = 0; i < count; i++) {
    try {
      await send(i);
      granted++;
    } catch (err) {
      assert.ok(err instanceof NackError && err.reason === NackReason.RATE_LIMITED, `${err}`);
      refusals.push(err.message);
    }
  }
  return { granted, refusals };
}

Deno.test("DHT peer gets its quota of leases and reservations; a legit node's lock and cas succeed", async () => {
  const quota = 8;
  await using replica = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    dht: { maxLocks: 40, maxRecords: 40, maxLocksPerPeer: quota, maxReservationsPerPeer: quota },
  });
  await using legit = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  await legit.connect(replica.peerAddresses[0]);
  await using attacker = await createNode({ puzzleDifficulty: 0 });
  const peer = await attacker.connect(replica.peerAddresses[0]);

  const leases = await flood(
    (i) => peer.request(Opcode.DHT_LOCK, lockRequest(dhtKey(`squat lock ${i}`))),
    40,
  );
  const reservations = await flood(
    (i) => peer.request(Opcode.DHT_CAS, prepare(dhtKey(`squat cas ${i}`))),
    40,
  );

  // The legit node, the key's other replica, locks and writes other keys.
  const lease = await legit.dht.lock("legit job", { ttl: 10_000 });
  assert.ok(lease.fencingToken >= 1);
  assert.deepEqual(await legit.dht.cas("legit config", "v1", 0), { version: 1, replicas: 2 });
  assert.equal(await legit.dht.unlock(lease), true);

  // The attacker got its quota, and a refusal naming it for each one more.
  assert.equal(leases.granted, quota, `${leases.granted} leases granted to one peer`);
  assert.equal(leases.refusals.length, 40 - quota);
  assert.match(leases.refusals[0], new RegExp(`quota \\(maxLocksPerPeer ${quota}\\)`));
  assert.equal(reservations.granted, quota, `${reservations.granted} reservations of one peer`);
  assert.match(
    reservations.refusals[0],
    new RegExp(`quota \\(maxReservationsPerPeer ${quota}\\)`),
  );
  // A lease it releases makes room for another.
  const released = toBinary(
    LockRequestSchema,
    create(LockRequestSchema, { key: dhtKey("squat lock 0") }),
  );
  await peer.request(Opcode.DHT_UNLOCK, released);
  await peer.request(Opcode.DHT_LOCK, lockRequest(dhtKey("squat lock again")));
  await assert.rejects(
    peer.request(Opcode.DHT_LOCK, lockRequest(dhtKey("squat lock more"))),
    (err: unknown) => err instanceof NackError && err.reason === NackReason.RATE_LIMITED,
  );
});
