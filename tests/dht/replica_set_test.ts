// Issue 12: one replica set per key, the same for every asker, of nodes that
// accept connections only; and a linearizable get that writes the newest
// copy back to a majority before it returns.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, type Node } from "../../mod.ts";
import { MemoryNetwork } from "../../lib/transport/memory.ts";
import { createRecord, dhtKey } from "../../lib/dht/record.ts";
import { compareDistance } from "../../lib/identity/node_id.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";
import { replicaOf } from "../../lib/services/dht.ts";
import {
  FindValueReplySchema,
  FindValueRequestSchema,
  Opcode,
  StoreRequestSchema,
} from "../../lib/protocol.ts";

const R = 5;

async function swarm(net: MemoryNetwork, listening: number, outbound: number): Promise<Node[]> {
  const options = { puzzleDifficulty: 0, k: R, dht: { replicas: R } };
  const seed = await createNode({ ...options, transport: net.transport(), listen: ["mem:0"] });
  const nodes = [seed];
  for (let i = 1; i < listening + outbound; i++) {
    nodes.push(
      await createNode({
        ...options,
        transport: net.transport(),
        listen: i < listening ? ["mem:0"] : [],
        bootstrap: seed.peerAddresses,
      }),
    );
  }
  for (let i = 0; i < 1_000 && nodes.some((n) => n.peers().length === 0); i++) {
    await new Promise((r) => setTimeout(r, 2));
  }
  for (let round = 0; round < 2; round++) {
    for (const node of nodes) await node.refreshRoutingTable();
  }
  return nodes;
}

/** The R nodes closest to `key` that accept connections. */
function truth(nodes: Node[], key: Uint8Array): string[] {
  return nodes.filter((n) => n.listenAddrs.length > 0)
    .sort((a, b) => compareDistance(key, a.identity.nodeId, b.identity.nodeId))
    .slice(0, R).map((n) => n.address);
}

/** The local copy a node holds of `key`, if any. */
function localVersion(node: Node, key: Uint8Array): bigint | undefined {
  const payload = toBinary(FindValueRequestSchema, create(FindValueRequestSchema, { key }));
  const data = replicaOf(node.dht).serve(Opcode.FIND_VALUE, payload, "");
  const reply = decodePayload(FindValueReplySchema, data);
  return reply.record?.version;
}

Deno.test("DHT replica sets hold only nodes that accept connections, the same for every asker", async () => {
  await using net = new MemoryNetwork();
  const nodes = await swarm(net, 12, 4);
  try {
    const outboundOnly = new Set(
      nodes.filter((n) => n.listenAddrs.length === 0).map((n) => n.address),
    );
    for (let k = 0; k < 10; k++) {
      const key = dhtKey(`key ${k}`);
      const expected = truth(nodes, key);
      for (const asker of nodes) {
        const { closest } = await asker.dht.lookup(key);
        assert.deepEqual(closest.filter((a) => outboundOnly.has(a)), [], "no outbound-only result");
        // The asker's replica set: the lookup's results and itself, if it listens.
        const byAddress = new Map(nodes.map((n) => [n.address, n]));
        const candidates = [...closest, ...(asker.listenAddrs.length > 0 ? [asker.address] : [])];
        const set = candidates.map((a) => byAddress.get(a)!)
          .sort((a, b) => compareDistance(key, a.identity.nodeId, b.identity.nodeId))
          .slice(0, R).map((n) => n.address);
        assert.deepEqual(
          set,
          expected,
          `the replica set of key ${k} as node ${asker.address} sees it`,
        );
      }
      // A put reaches exactly those replicas, never an outbound-only node.
      await nodes[k % nodes.length].dht.put(key, `v${k}`);
      for (const node of nodes) {
        const holds = localVersion(node, key) !== undefined;
        assert.equal(holds, expected.includes(node.address), `${node.address} holds key ${k}`);
      }
    }
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});

Deno.test("DHT linearizable get writes the newest copy back to a majority before it returns", async () => {
  await using net = new MemoryNetwork();
  const nodes = await swarm(net, 10, 2);
  try {
    const key = dhtKey("register");
    await nodes[0].dht.put(key, "v1");
    const replicas = truth(nodes, key).map((a) => nodes.find((n) => n.address === a)!);
    // A newer copy at two replicas only (a write that reached a minority; a
    // copy only one replica claims is outvoted as a possible lie).
    const newer = createRecord({ key, value: new TextEncoder().encode("v2"), version: 2 });
    const store = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record: newer }));
    for (const replica of replicas.slice(0, 2)) {
      replicaOf(replica.dht).serve(Opcode.STORE, store, "");
    }
    const reader = nodes.find((n) => !replicas.includes(n))!;
    const read = await reader.dht.get(key);
    assert.equal(read?.version, 2);
    const holders = replicas.filter((n) => localVersion(n, key) === 2n).length;
    assert.ok(holders >= Math.floor(R / 2) + 1, `${holders} of ${R} replicas hold version 2`);
    // So no later read, from anywhere, goes back to version 1.
    for (const node of nodes) assert.equal((await node.dht.get(key))?.version, 2);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});
