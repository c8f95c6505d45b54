import assert from "node:assert/strict";
import fc from "fast-check";
import { ManualClock } from "../../lib/clock.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { bucketIndex, compareDistance } from "../../lib/identity/node_id.ts";
import { type Contact, contactOf, RoutingTable } from "../../lib/overlay/routing_table.ts";

const identities = Array.from({ length: 400 }, () => generateIdentitySync({ difficulty: 0 }));
const contact = (i: number, addrs: string[] = [`10.${i >> 8}.${i & 255}.1:4000`]): Contact =>
  contactOf(identities[i].publicKey, identities[i].address, addrs);

Deno.test("RoutingTable files contacts in the bucket of their XOR distance", () => {
  const self = identities[0];
  const table = new RoutingTable(self.nodeId);
  for (let i = 1; i < 100; i++) table.add(contact(i));
  for (const i of table.occupiedBuckets()) {
    for (const c of table.bucket(i)) assert.equal(bucketIndex(self.nodeId, c.nodeId), i);
  }
  assert.equal(table.add(contactOf(self.publicKey, self.address)).status, "self");
});

Deno.test("RoutingTable.closest returns the k nearest by XOR distance, nearest first", () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 399 }), fc.integer({ min: 1, max: 30 }), (t, count) => {
      const table = new RoutingTable(identities[0].nodeId, { k: 400, maxPerSubnet: 400 });
      for (let i = 1; i < 400; i++) table.add(contact(i));
      const target = identities[t].nodeId;
      const got = table.closest(target, count);
      const all = table.all().sort((a, b) => compareDistance(target, a.nodeId, b.nodeId));
      assert.deepEqual(got.map((c) => c.address), all.slice(0, count).map((c) => c.address));
      assert.equal(got[0].address, identities[t].address);
    }),
    { numRuns: 20 },
  );
});

Deno.test("a full bucket keeps its old contacts and queues the new one as a replacement", () => {
  const self = identities[0];
  const table = new RoutingTable(self.nodeId, { k: 2 });
  // Contacts in the top bucket (255): about half of all ids.
  const far = identities.slice(1).map((_, j) => j + 1)
    .filter((i) => bucketIndex(self.nodeId, identities[i].nodeId) === 255).slice(0, 4);
  assert.equal(table.add(contact(far[0])).status, "added");
  assert.equal(table.add(contact(far[1])).status, "added");
  const full = table.add(contact(far[2]));
  assert.equal(full.status, "full");
  assert.equal(full.status === "full" && full.oldest.address, identities[far[0]].address);
  // Seen again: the oldest becomes the most recent.
  assert.equal(table.add(contact(far[0])).status, "updated");
  assert.deepEqual(
    table.bucket(255).map((c) => c.address),
    [far[1], far[0]].map((i) => identities[i].address),
  );
  // Dead: removed, and the replacement takes its place.
  table.remove(identities[far[1]].address);
  assert.deepEqual(
    table.bucket(255).map((c) => c.address).sort(),
    [far[0], far[2]].map((i) => identities[i].address).sort(),
  );
  assert.equal(table.size, 2);
});

Deno.test("one /24 or /48 cannot fill a bucket", () => {
  const self = identities[0];
  const table = new RoutingTable(self.nodeId, { k: 20, maxPerSubnet: 2 });
  const far = identities.slice(1).map((_, j) => j + 1)
    .filter((i) => bucketIndex(self.nodeId, identities[i].nodeId) === 255).slice(0, 6);
  const results = far.slice(0, 4).map((i, n) =>
    table.add(contact(i, [`203.0.113.${n + 1}:4000`])).status
  );
  assert.deepEqual(results, ["added", "added", "subnet-full", "subnet-full"]);
  assert.equal(table.add(contact(far[4], ["[2001:db8:1::1]:4000"])).status, "added");
  assert.equal(table.add(contact(far[5], ["[2001:db8:1:ffff::2]:4000"])).status, "added");
  assert.equal(
    table.add(contact(far[3], ["[2001:db8:1:2::3]:4000"])).status,
    "subnet-full",
  );
  // Loopback is exempt unless asked for (local swarms and tests).
  const local = new RoutingTable(self.nodeId, { maxPerSubnet: 1 });
  for (const i of far) assert.equal(local.add(contact(i, ["127.0.0.1:4000"])).status, "added");
});

Deno.test("staleBuckets lists buckets not refreshed lately", () => {
  const clock = new ManualClock();
  const table = new RoutingTable(identities[0].nodeId, { clock });
  for (let i = 1; i < 50; i++) table.add(contact(i));
  clock.advance(1000);
  const top = table.occupiedBuckets()[0];
  table.markRefreshed(top);
  const stale = table.staleBuckets(500);
  assert.ok(!stale.includes(top));
  assert.ok(stale.includes(top - 1));
  table.touch(identities[1].address);
  assert.equal(table.get(identities[1].address)!.lastSeen, 1000);
});
