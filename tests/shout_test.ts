// SHOUT over real TCP on 127.0.0.1: a swarm of 30 nodes.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, type Node } from "../mod.ts";
import { NackError } from "../lib/errors.ts";
import { NackReason } from "../lib/protocol.ts";
import { Opcode } from "../lib/wire/opcodes.ts";
import { ShoutEnvelopeSchema, ShoutSchema } from "../lib/protocol.ts";
import { sign } from "../lib/identity/keys.ts";

async function until(check: () => boolean, what: string, turns = 1000): Promise<void> {
  for (let i = 0; i < turns && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

/** 30 nodes: a seed, 25 that listen, 4 that only dial out. */
async function swarm(): Promise<Node[]> {
  const seed = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const nodes = [seed];
  for (let i = 0; i < 29; i++) {
    nodes.push(
      await createNode({
        listen: i < 25 ? ["127.0.0.1:0"] : [],
        puzzleDifficulty: 0,
        bootstrap: [seed.peerAddresses[0]],
      }),
    );
  }
  await until(() => nodes.every((n) => n.peers().length > 0), "bootstrap connections");
  // Everyone has joined: repair the tables (what the periodic refresh does).
  await Promise.all(nodes.map((n) => n.refreshRoutingTable()));
  return nodes;
}

function record(nodes: Node[]): Map<string, string[]> {
  const got = new Map<string, string[]>(nodes.map((n) => [n.address, []]));
  for (const n of nodes) {
    n.addEventListener("message", (e) => {
      if (e.detail.opcode === Opcode.SHOUT) {
        got.get(n.address)!.push(
          `${e.detail.from.slice(0, 6)}:${new TextDecoder().decode(e.detail.body)}`,
        );
      }
    });
  }
  return got;
}

Deno.test("SHOUT reaches every node of a 30-node swarm exactly once, from listeners and outbound-only nodes", async () => {
  const nodes = await swarm();
  try {
    const got = record(nodes);
    const origins = [nodes[3], nodes[17], nodes[28]]; // nodes[28] only dials out
    for (const [i, origin] of origins.entries()) await origin.shout(`hello ${i}`, { topic: "t" });
    const expected = (n: Node) =>
      origins.filter((o) => o !== n).map((o) =>
        `${o.address.slice(0, 6)}:hello ${origins.indexOf(o)}`
      )
        .sort();
    await until(
      () => nodes.every((n) => got.get(n.address)!.length === expected(n).length),
      "every SHOUT everywhere",
    );
    // Let stragglers (retries, duplicates) arrive, if any.
    await new Promise((r) => setTimeout(r, 100));
    for (const n of nodes) assert.deepEqual(got.get(n.address)!.sort(), expected(n), n.address);
    const totals = nodes.map((n) => n.metrics().shouts);
    const sent = totals.reduce((a, s) => a + s.sent, 0);
    // A tree over the 26 listening nodes, plus one copy per connection of
    // each outbound-only node: far below a flood's (2ℓ − 1)·n + 1 each.
    const leafCopies = nodes.slice(26).reduce((a, n) => a + n.peers().length, 0);
    assert.ok(sent <= 3 * (25 * 1.2 + leafCopies), `${sent} SHOUT frames for 3 broadcasts`);
    assert.equal(totals.reduce((a, s) => a + s.delivered, 0), 3 * 29);
    assert.ok(nodes.some((n) => n.metrics().shouts.sent > 0 && n !== nodes[3]), "forwarded");
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});

Deno.test("a forged or replayed SHOUT is refused and counted, and the node keeps serving", async () => {
  const nodes = await swarm();
  try {
    // Two nodes already connected (ℓ is full by now), neither of them node 5.
    const a = nodes[1];
    const b = nodes.find((n) => n !== nodes[5] && n.listenAddrs.length > 0 && a.peer(n.address))!;
    const peer = a.peer(b.address)!;
    const envelope = toBinary(
      ShoutEnvelopeSchema,
      create(ShoutEnvelopeSchema, {
        origin: nodes[5].identity.publicKey, // claims to be node 5
        sequence: 1n,
        timestampMs: BigInt(Date.now()),
        body: new TextEncoder().encode("forged"),
      }),
    );
    const context = new TextEncoder().encode("carrier/v1 shout:");
    const forged = create(ShoutSchema, {
      envelope,
      signature: sign(a.identity, new Uint8Array([...context, ...envelope])),
      height: 256,
    });
    await assert.rejects(
      () => peer.request(Opcode.SHOUT, toBinary(ShoutSchema, forged)),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.BAD_SIGNATURE,
    );
    assert.equal(b.metrics().shouts.rejected, 1);
    // A genuine SHOUT, then the same bytes again: delivered once.
    const got = record([b]);
    const genuine = create(ShoutSchema, {
      envelope,
      signature: sign(nodes[5].identity, new Uint8Array([...context, ...envelope])),
      height: 0, // forward to nobody: only B's delivery is under test
    });
    await peer.request(Opcode.SHOUT, toBinary(ShoutSchema, genuine));
    await peer.request(Opcode.SHOUT, toBinary(ShoutSchema, genuine));
    assert.equal(got.get(b.address)!.length, 1);
    assert.equal(b.metrics().shouts.duplicates, 1);
    // A SHOUT dated beyond maxShoutAge, before or after B's clock, is refused
    // STALE even if never seen, and the message says which way.
    for (const [offset, side] of [[-3_600_000, "before"], [660_000, "after"]] as const) {
      const dated = toBinary(
        ShoutEnvelopeSchema,
        create(ShoutEnvelopeSchema, {
          origin: nodes[5].identity.publicKey,
          sequence: 2n,
          timestampMs: BigInt(Date.now() + offset),
        }),
      );
      await assert.rejects(
        () =>
          peer.request(
            Opcode.SHOUT,
            toBinary(
              ShoutSchema,
              create(ShoutSchema, {
                envelope: dated,
                signature: sign(nodes[5].identity, new Uint8Array([...context, ...dated])),
              }),
            ),
          ),
        (err: unknown) =>
          err instanceof NackError && err.reason === NackReason.STALE &&
          err.message.includes(`ms ${side} this node's clock`),
      );
    }
    assert.ok(await a.ping(b.address) >= 0);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});

Deno.test("a node flooding SHOUTs is rate limited", async () => {
  const a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const b = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    maxShoutsPerSecond: 5,
  });
  try {
    await a.connect(b.peerAddresses[0]);
    await until(() => b.peer(a.address) !== undefined, "B to see A");
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => a.shout(`flood ${i}`)));
    assert.ok(results.some((r) => r.sent === 0), "some SHOUTs were refused");
    assert.ok(b.metrics().shouts.rateLimited >= 10);
    assert.ok(b.metrics().shouts.delivered <= 5);
  } finally {
    await a.close();
    await b.close();
  }
});
