// Issue 11, item 9: a replica filled by an attacker. A full store evicts its
// farthest key for a closer one (Kademlia keeps the closest); when it cannot,
// a put that fewer than a majority of replicas stored rejects with
// ReplicationError instead of resolving with 1 replica. Each peer has a
// quota of records. The attacker is a carrier node that dials out and sends
// STOREs of keys it picks, over real TCP on 127.0.0.1; the legit writer is
// the other replica.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  createNode,
  dhtKey,
  NackError,
  NackReason,
  type Node,
  Opcode,
  type PeerConnection,
  QuorumError,
} from "../../mod.ts";
import { compareDistance } from "../../protocol.ts";
import { createRecord } from "../../lib/dht/record.ts";
import { replicaOf } from "../../lib/services/dht.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";
import {
  FindValueReplySchema,
  FindValueRequestSchema,
  StoreRequestSchema,
} from "../../lib/protocol.ts";

const storeRequest = (key: Uint8Array) =>
  toBinary(
    StoreRequestSchema,
    create(StoreRequestSchema, {
      record: createRecord({ key, value: new TextEncoder().encode("junk"), version: 1 }),
    }),
  );

/** Whether `node` holds `key` (its own FIND_VALUE answer, no lookup). */
function holds(node: Node, key: Uint8Array): boolean {
  const payload = toBinary(FindValueRequestSchema, create(FindValueRequestSchema, { key }));
  const data = replicaOf(node.dht).serve(Opcode.FIND_VALUE, payload, "");
  const reply = decodePayload(FindValueReplySchema, data);
  return reply.record !== undefined;
}

/** Keys at distance `distance(i)` from `id` (XOR), for i = 0, 1, … */
function keysAt(id: Uint8Array, count: number, far: boolean): Uint8Array[] {
  return Array.from({ length: count }, (_, i) => {
    const key = id.slice();
    if (far) key[0] ^= 0x80; // the top bit differs: farther than half the space
    key[31] ^= i + 1;
    return key;
  });
}

/** A text key whose id is in the half of the space closer to `id` (top bit shared). */
function nearText(id: Uint8Array, prefix: string): string {
  for (let i = 0;; i++) {
    if (((dhtKey(`${prefix} ${i}`)[0] ^ id[0]) & 0x80) === 0) return `${prefix} ${i}`;
  }
}

async function setup(dht: { maxRecords: number; maxRecordsPerPeer?: number }) {
  const replica = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0, dht });
  const legit = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  await legit.connect(replica.peerAddresses[0]);
  const attacker = await createNode({ puzzleDifficulty: 0 });
  const peer: PeerConnection = await attacker.connect(replica.peerAddresses[0]);
  const close = () => Promise.all([replica, legit, attacker].map((n) => n.close()));
  return { replica, legit, peer, close };
}

Deno.test("DHT full replica evicts its farthest key for a closer one", async () => {
  const { replica, legit, peer, close } = await setup({ maxRecords: 8, maxRecordsPerPeer: 8 });
  try {
    const junk = keysAt(replica.identity.nodeId, 8, true);
    for (const key of junk) await peer.request(Opcode.STORE, storeRequest(key));
    assert.equal(replica.dht.size, 8);
    const text = nearText(replica.identity.nodeId, "legit");
    const written = await legit.dht.put(text, "value");
    assert.equal(written.replicas, 2, `the put reached ${written.replicas} of 2 replicas`);
    assert.ok(holds(replica, dhtKey(text)));
    assert.equal(replica.dht.size, 8);
    const farthest = [...junk].sort((a, b) => compareDistance(replica.identity.nodeId, b, a))[0];
    assert.ok(!holds(replica, farthest), "the farthest key was evicted");
    assert.equal(junk.filter((k) => holds(replica, k)).length, 7);
  } finally {
    await close();
  }
});

Deno.test("DHT put that fewer than a majority stored rejects with ReplicationError", async () => {
  const { replica, legit, peer, close } = await setup({ maxRecords: 8, maxRecordsPerPeer: 8 });
  try {
    // Keys as close to the replica as can be: nothing farther to evict for.
    for (const key of keysAt(replica.identity.nodeId, 8, false)) {
      await peer.request(Opcode.STORE, storeRequest(key));
    }
    await assert.rejects(legit.dht.put("legit", "value"), (err: unknown) => {
      assert.ok(err instanceof QuorumError, `${err}`);
      assert.equal(err.name, "ReplicationError");
      // A ReplicationError's counts (read by name: the class is new in this fix).
      const { replicas, needed, version } = err as unknown as {
        [count: string]: number;
      };
      assert.deepEqual({ replicas, needed, version }, { replicas: 1, needed: 2, version: 1 });
      assert.ok(err.cause instanceof NackError && err.cause.reason === NackReason.RATE_LIMITED);
      return true;
    });
    // Asking for one replica is the caller's choice.
    const one = await legit.dht.put("legit", "value", { minReplicas: 1 });
    assert.equal(one.replicas, 1);
  } finally {
    await close();
  }
});

Deno.test("DHT peer's records stop at maxRecordsPerPeer; a legit put still reaches every replica", async () => {
  const { replica, legit, peer, close } = await setup({ maxRecords: 100, maxRecordsPerPeer: 5 });
  try {
    const refusals: string[] = [];
    for (let i = 0; i < 10; i++) {
      try {
        await peer.request(Opcode.STORE, storeRequest(dhtKey(`junk ${i}`)));
      } catch (err) {
        assert.ok(err instanceof NackError && err.reason === NackReason.RATE_LIMITED, `${err}`);
        refusals.push(err.message);
      }
    }
    assert.equal(replica.dht.size, 5, `one peer stored ${replica.dht.size} records`);
    assert.equal(refusals.length, 5);
    assert.match(refusals[0], /quota \(maxRecordsPerPeer 5\)/);
    assert.equal((await legit.dht.put("legit", "value")).replicas, 2);
  } finally {
    await close();
  }
});
