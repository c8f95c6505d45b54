// Issue 11, item 3: a replica must not keep views into the frames it
// received. An attacker (a carrier node that dials out) sends STOREs of
// 1-byte values, each in a 256 KiB frame padded with an unknown protobuf
// field of the record, over real TCP on 127.0.0.1.
import assert from "node:assert/strict";
import { createNode, dhtKey, NackError, NackReason, Opcode } from "../../mod.ts";
import { DHT_ENTRY_OVERHEAD } from "../../lib/dht/footprint.ts";
import { paddedStore } from "./_attack.ts";

const PADDING = 256 * 1024;

Deno.test("DHT replica keeps its own copies of padded STOREs and counts them within maxBytes", async () => {
  const maxBytes = 32 * 1024;
  await using replica = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    dht: { maxBytes },
  });
  await using attacker = await createNode({ puzzleDifficulty: 0 });
  const peer = await attacker.connect(replica.peerAddresses[0]);
  const keys: Uint8Array[] = [];
  let refused = 0;
  for (let i = 0; i < 40; i++) {
    const key = dhtKey(`padded ${i}`);
    try {
      await peer.request(Opcode.STORE, paddedStore(key, new Uint8Array([i]), PADDING));
      keys.push(key);
    } catch (err) {
      assert.ok(err instanceof NackError && err.reason === NackReason.RATE_LIMITED, `${err}`);
      refused++;
    }
  }
  // Every value the replica holds is its own small buffer, not the frame.
  let retained = 0;
  let held = 0;
  for (const key of keys) {
    const found = await replica.dht.get(key);
    if (!found) continue; // evicted for a closer key
    held++;
    assert.ok(
      found.value.buffer.byteLength < 1024,
      `a held 1-byte value is a view into a ${found.value.buffer.byteLength}-byte buffer`,
    );
    retained += found.value.buffer.byteLength;
  }
  assert.ok(
    retained <= maxBytes,
    `held values retain ${retained} bytes, over maxBytes ${maxBytes}`,
  );
  // The accounting counts what is retained, with the per-entry overhead.
  const perRecord = DHT_ENTRY_OVERHEAD + 32 + 1;
  assert.equal(replica.dht.size, held);
  assert.equal(replica.dht.bytes, held * perRecord);
  assert.ok(replica.dht.bytes <= maxBytes, `${replica.dht.bytes} bytes counted`);
  assert.ok(replica.dht.retainedBytes() <= replica.dht.bytes, `${replica.dht.retainedBytes()}`);
  // Full: each of the rest was refused, or evicted a farther key (the node's id is random).
  assert.equal(held, Math.floor(maxBytes / perRecord));
  assert.equal(keys.length + refused, 40);
});

Deno.test("DHT get returns a copy: changing it does not change the replica's value", async () => {
  await using node = await createNode({ listen: ["127.0.0.1:0"] });
  await node.dht.put("mine", new Uint8Array([1, 2, 3]));
  const first = await node.dht.get("mine");
  first!.value.fill(9);
  assert.deepEqual((await node.dht.get("mine"))?.value, new Uint8Array([1, 2, 3]));
});
