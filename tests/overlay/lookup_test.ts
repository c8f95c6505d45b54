import assert from "node:assert/strict";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { compareDistance } from "../../lib/identity/node_id.ts";
import { iterativeLookup } from "../../lib/overlay/lookup.ts";
import { type Contact, contactOf, RoutingTable } from "../../lib/overlay/routing_table.ts";

const N = 300;
const ids = Array.from({ length: N }, () => generateIdentitySync({ difficulty: 0 }));
const contacts = ids.map((id) => contactOf(id.publicKey, id.address, [], 1));
const tables = new Map<string, RoutingTable>();
for (const [i, id] of ids.entries()) {
  const table = new RoutingTable(id.nodeId, { k: 8 });
  for (const [j, c] of contacts.entries()) if (j !== i) table.add({ ...c });
  tables.set(id.address, table);
}
const ask = (c: Contact, target: Uint8Array) =>
  Promise.resolve(tables.get(c.address)!.closest(target, 8));

Deno.test("iterativeLookup finds the k closest nodes in a few hops", async () => {
  for (let t = 0; t < 10; t++) {
    const target = ids[(t * 37) % N].nodeId;
    const start = tables.get(ids[(t * 91 + 5) % N].address)!;
    const result = await iterativeLookup(target, start.closest(target, 3), (c) => ask(c, target), {
      k: 8,
      alpha: 3,
    });
    const truth = [...contacts].sort((a, b) => compareDistance(target, a.nodeId, b.nodeId))
      .slice(0, 8);
    assert.deepEqual(result.closest.map((c) => c.address), truth.map((c) => c.address));
    assert.ok(result.hops <= Math.ceil(Math.log2(N)), `${result.hops} hops`);
  }
});

Deno.test("iterativeLookup routes around contacts that fail and honours exclude", async () => {
  const target = ids[3].nodeId;
  const dead = new Set(ids.slice(0, 40).map((id) => id.address));
  dead.delete(ids[3].address);
  const result = await iterativeLookup(
    target,
    tables.get(ids[200].address)!.closest(target, 5),
    (c) => dead.has(c.address) ? Promise.reject(new Error("down")) : ask(c, target),
    { k: 8, exclude: (c) => c.address === ids[200].address },
  );
  assert.equal(result.closest[0].address, ids[3].address);
  assert.ok(result.closest.every((c) => !dead.has(c.address) && c.address !== ids[200].address));
});

Deno.test("iterativeLookup reports the close contacts that did not answer", async () => {
  const target = ids[7].nodeId;
  const truth = [...contacts].sort((a, b) => compareDistance(target, a.nodeId, b.nodeId));
  // Two of the 8 closest are down: they come back as unreachable, not as closest.
  const dead = new Set([truth[1].address, truth[4].address]);
  const result = await iterativeLookup(
    target,
    tables.get(ids[250].address)!.closest(target, 5),
    (c) => dead.has(c.address) ? Promise.reject(new Error("down")) : ask(c, target),
    { k: 8 },
  );
  assert.deepEqual(result.unreachable.map((c) => c.address), [truth[1].address, truth[4].address]);
  assert.ok(result.closest.every((c) => !dead.has(c.address)));
});

Deno.test("iterativeLookup stops on abort and on maxQueries", async () => {
  const target = ids[9].nodeId;
  const seeds = tables.get(ids[1].address)!.closest(target, 3);
  const limited = await iterativeLookup(target, seeds, (c) => ask(c, target), { maxQueries: 2 });
  assert.ok(limited.queries <= 3);
  await assert.rejects(
    iterativeLookup(target, seeds, (c) => ask(c, target), {
      signal: AbortSignal.abort(new Error("enough")),
    }),
    /enough/,
  );
  const empty = await iterativeLookup(target, [], (c) => ask(c, target));
  assert.deepEqual(empty.closest, []);
});

Deno.test("iterativeLookup: disjoint paths never query a contact twice and still find the closest", async () => {
  const target = ids[42].nodeId;
  const asked: string[] = [];
  const result = await iterativeLookup(
    target,
    tables.get(ids[7].address)!.closest(target, 6),
    (c) => {
      asked.push(c.address);
      return ask(c, target);
    },
    { k: 8, disjointPaths: 3 },
  );
  assert.equal(new Set(asked).size, asked.length);
  assert.equal(result.closest[0].address, ids[42].address);
  assert.equal(result.queries, asked.length);
});

Deno.test("iterativeLookup: stop() ends the lookup early; hops count the chain of requests", async () => {
  const target = ids[100].nodeId;
  let answers = 0;
  const result = await iterativeLookup(
    target,
    tables.get(ids[0].address)!.closest(target, 3),
    (c) => {
      answers++;
      return ask(c, target);
    },
    { k: 8, alpha: 1, stop: () => answers >= 2 },
  );
  assert.equal(result.queries, 2);
  // With α = 1, the second query went to a contact the first one named.
  assert.ok(result.hops >= 1 && result.hops <= 2);
});
