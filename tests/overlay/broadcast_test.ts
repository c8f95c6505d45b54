import assert from "node:assert/strict";
import { sha256 } from "@noble/hashes/sha2.js";
import { NodeIdError } from "../../lib/errors.ts";
import { bucketIndex } from "../../lib/identity/node_id.ts";
import {
  type BroadcastCandidates,
  type BucketChoice,
  nextInBucket,
  ORIGIN_HEIGHT,
  planForward,
} from "../../lib/overlay/broadcast.ts";
import { type Contact, RoutingTable } from "../../lib/overlay/routing_table.ts";
import { ArgumentError } from "../../lib/errors.ts";

/** n contacts with deterministic ids (SHA-256 of the index), addresses `n0`, `n1`, …. */
function network(n: number): Contact[] {
  return Array.from({ length: n }, (_, i) => {
    const id = sha256(new TextEncoder().encode(`node ${i}`));
    return { identityKey: id, address: `n${i}`, nodeId: id, listenAddrs: [], lastSeen: 0 };
  });
}

const indexOf = (c: Contact): number => Number(c.address.slice(1));
const seedOf = (text: string): Uint8Array => sha256(new TextEncoder().encode(text));

interface Run {
  /** Copies received per node. */
  received: number[];
  /** SHOUTs sent (to live and crashed nodes). */
  messages: number;
  /** SHOUTs sent to crashed nodes. */
  lost: number;
  /** Hops of the first copy per node (-1: never reached). */
  hops: number[];
}

/**
 * A broadcast from `origin`, breadth first, as nodes would run it: each node
 * forwards on its first copy (and, on a copy with a greater height, the
 * buckets it adds); a SHOUT to a crashed node is lost, and with `fallback`
 * the sender then tries `nextInBucket`.
 */
function broadcast(
  nodes: Contact[],
  candidatesOf: (i: number) => BroadcastCandidates,
  origin: number,
  options: {
    redundancy?: number;
    crashed?: ReadonlySet<number>;
    fallback?: boolean;
    choice?: BucketChoice;
    seed?: Uint8Array;
    /** Forward the buckets a copy with a greater height adds. @default {true} */
    upgrade?: boolean;
  } = {},
): Run {
  const { crashed = new Set(), fallback = false, redundancy = 1, choice, seed } = options;
  const upgrade = options.upgrade ?? true;
  const received = nodes.map(() => 0);
  const hops = nodes.map(() => -1);
  const forwarded = nodes.map(() => -1);
  let messages = 0;
  let lost = 0;
  type Send = { from: number; to: number; height: number; hops: number; tried: Set<string> };
  const queue: Send[] = [];
  const forward = (x: number, height: number | "origin", hop: number, previous = 0): void => {
    const plan = planForward({
      self: nodes[x].nodeId,
      height,
      previousHeight: previous,
      candidates: candidatesOf(x),
      redundancy,
      choice,
      seed,
    });
    const tried = new Map<number, Set<string>>();
    for (const t of plan) {
      tried.set(t.height, (tried.get(t.height) ?? new Set()).add(t.contact.address));
    }
    for (const t of plan) {
      queue.push({
        from: x,
        to: indexOf(t.contact),
        height: t.height,
        hops: hop + 1,
        tried: tried.get(t.height)!,
      });
    }
  };
  forwarded[origin] = ORIGIN_HEIGHT;
  forward(origin, "origin", 0);
  while (queue.length > 0) {
    const send = queue.shift()!;
    messages++;
    if (crashed.has(send.to)) {
      lost++;
      if (!fallback) continue;
      const next = nextInBucket({
        self: nodes[send.from].nodeId,
        candidates: candidatesOf(send.from),
        bucket: send.height,
        tried: send.tried,
        choice,
        seed,
      });
      if (next) {
        send.tried.add(next.address);
        queue.push({ ...send, to: indexOf(next) });
      }
      continue;
    }
    received[send.to]++;
    const before = forwarded[send.to];
    if (before < 0) hops[send.to] = send.hops;
    if (send.height <= before || (before >= 0 && !upgrade)) continue;
    forwarded[send.to] = send.height;
    forward(send.to, send.height, send.hops, Math.max(before, 0));
  }
  return { received, messages, lost, hops };
}

/** Complete knowledge: every node may send to every other. */
const everyone = (nodes: Contact[]) => (_: number): Contact[] => nodes;

/** Real routing tables (k = 20) offered every other node, in a scrambled order. */
function tables(nodes: Contact[], k = 20): RoutingTable[] {
  return nodes.map((me, i) => {
    const table = new RoutingTable(me.nodeId, { k });
    for (let j = 1; j < nodes.length; j++) table.add(nodes[(i + j * 7919) % nodes.length]);
    return table;
  });
}

const ceilLog2 = (n: number): number => Math.ceil(Math.log2(n));

Deno.test("planForward reaches each of 200 nodes exactly once with n − 1 SHOUTs", () => {
  const nodes = network(200);
  for (const choice of ["balanced", "uniform"] as const) {
    for (const origin of [0, 57, 199]) {
      const run = broadcast(nodes, everyone(nodes), origin, { choice, seed: seedOf(`m${origin}`) });
      assert.deepEqual(run.received, nodes.map((_, i) => (i === origin ? 0 : 1)));
      assert.equal(run.messages, nodes.length - 1);
      assert.ok(Math.max(...run.hops) <= ceilLog2(200) + 2, `hops ${Math.max(...run.hops)}`);
    }
  }
});

Deno.test("planForward over k = 20 routing tables reaches each node exactly once", () => {
  const nodes = network(300);
  const tabled = tables(nodes);
  for (const origin of [3, 150]) {
    const run = broadcast(nodes, (i) => tabled[i], origin, { seed: seedOf(`t${origin}`) });
    assert.deepEqual(run.received, nodes.map((_, i) => (i === origin ? 0 : 1)));
    assert.equal(run.messages, nodes.length - 1);
    assert.ok(Math.max(...run.hops) <= ceilLog2(300) + 2);
  }
});

Deno.test("planForward works in networks of 1, 2 and 3 nodes", () => {
  assert.deepEqual(
    planForward({ self: network(1)[0].nodeId, height: "origin", candidates: [] }),
    [],
  );
  for (const n of [1, 2, 3]) {
    const nodes = network(n);
    for (let origin = 0; origin < n; origin++) {
      const run = broadcast(nodes, everyone(nodes), origin);
      assert.deepEqual(run.received, nodes.map((_, i) => (i === origin ? 0 : 1)));
      assert.equal(run.messages, n - 1);
    }
  }
  // Two nodes: the one SHOUT carries the bucket of the receiver; it forwards nothing.
  const [a, b] = network(2);
  const [only] = planForward({ self: a.nodeId, height: "origin", candidates: [a, b] });
  assert.equal(only.contact, b);
  assert.equal(only.height, bucketIndex(a.nodeId, b.nodeId));
  assert.deepEqual(planForward({ self: b.nodeId, height: only.height, candidates: [a, b] }), []);
});

Deno.test("with crashed nodes, falling back to nextInBucket still reaches every live node", () => {
  const nodes = network(200);
  const tabled = tables(nodes);
  const crashed = new Set(Array.from({ length: 40 }, (_, i) => 5 * i + 2)); // 20%
  const origin = 0;
  const live = nodes.length - crashed.size;
  const expected = nodes.map((_, i) => (i === origin || crashed.has(i) ? 0 : 1));

  const cut = broadcast(nodes, (i) => tabled[i], origin, { crashed, seed: seedOf("c") });
  const missed = cut.received.filter((r, i) => r === 0 && expected[i] === 1).length;
  assert.ok(missed > crashed.size, `without fallback a crash cuts subtrees (missed ${missed})`);

  for (const candidatesOf of [(i: number) => tabled[i], everyone(nodes)]) {
    const run = broadcast(nodes, candidatesOf, origin, {
      crashed,
      fallback: true,
      seed: seedOf("c"),
    });
    assert.deepEqual(run.received, expected);
    // Live nodes get one SHOUT each; the rest went to crashed nodes and timed out.
    assert.equal(run.messages - run.lost, live - 1);
  }
});

// Not 2(n − 1): a node forwards below the height of its first copy, and with
// two copies racing the first tends to carry the greater height, so nodes
// forward more buckets than in a single tree. Here 464 = 2.33(n − 1); the
// simulation measures 2.2–2.5 for n = 100 to 10,000.
Deno.test("redundancy 2 reaches every node with at most 2.5(n − 1) SHOUTs", () => {
  const nodes = network(200);
  for (const origin of [0, 99]) {
    const run = broadcast(nodes, everyone(nodes), origin, {
      redundancy: 2,
      seed: seedOf(`r${origin}`),
      upgrade: false,
    });
    assert.ok(run.received.every((r, i) => i === origin || r >= 1));
    assert.ok(run.messages > nodes.length - 1, `${run.messages} SHOUTs`);
    assert.ok(run.messages <= 2.5 * (nodes.length - 1), `${run.messages} SHOUTs`);
    // Each planned bucket gets two peers where it has two.
    const plan = planForward({
      self: nodes[origin].nodeId,
      height: "origin",
      candidates: nodes,
      redundancy: 2,
    });
    const perBucket = Map.groupBy(plan, (t) => t.height);
    for (const [j, targets] of perBucket) {
      const size = nodes.filter((c) => bucketIndex(nodes[origin].nodeId, c.nodeId) === j).length;
      assert.equal(targets.length, Math.min(2, size));
      assert.notEqual(targets[0].contact, targets[1]?.contact);
    }
  }
});

Deno.test("planForward is deterministic and, with a seed, independent of input order", () => {
  const nodes = network(120);
  const self = nodes[0].nodeId;
  const reversed = [...nodes].reverse();
  for (const choice of ["balanced", "uniform"] as const) {
    const seed = seedOf(choice);
    const plan = (candidates: Contact[]) =>
      planForward({ self, height: "origin", candidates, choice, seed, redundancy: 3 })
        .map((t) => `${t.height}:${t.contact.address}`);
    assert.deepEqual(plan(nodes), plan(nodes));
    assert.deepEqual(plan(nodes), plan(reversed));
  }
  // A different seed changes the uniform shuffle.
  const uniform = (seed: Uint8Array) =>
    planForward({ self, height: "origin", candidates: nodes, choice: "uniform", seed })
      .map((t) => t.contact.address).join();
  assert.notEqual(uniform(seedOf("a")), uniform(seedOf("b")));
});

Deno.test("planForward plans only buckets below the height and at or above previousHeight", () => {
  const nodes = network(150);
  const self = nodes[7].nodeId;
  const all = planForward({ self, height: "origin", candidates: nodes });
  const heights = all.map((t) => t.height);
  assert.deepEqual(heights, [...heights].sort((a, b) => b - a), "highest bucket first");
  assert.equal(new Set(heights).size, heights.length, "one peer per bucket");
  const [, second] = heights;
  const below = planForward({ self, height: heights[0], candidates: nodes });
  assert.deepEqual(below, all.slice(1));
  const band = planForward({
    self,
    height: heights[0],
    previousHeight: second + 1,
    candidates: nodes,
  });
  assert.deepEqual(band, []);
  const upgrade = planForward({
    self,
    height: heights[0],
    previousHeight: second,
    candidates: nodes,
  });
  assert.deepEqual(upgrade, all.slice(1, 2));
});

Deno.test("planForward skips excluded peers and nextInBucket walks the bucket to its end", () => {
  const nodes = network(100);
  const self = nodes[0].nodeId;
  const [top] = planForward({ self, height: "origin", candidates: nodes });
  const bucket = nodes.filter((c) => bucketIndex(self, c.nodeId) === top.height);
  const tried = new Set<string>([top.contact.address]);
  for (;;) {
    const next = nextInBucket({ self, candidates: nodes, bucket: top.height, tried });
    if (!next) break;
    assert.equal(bucketIndex(self, next.nodeId), top.height);
    assert.ok(!tried.has(next.address));
    tried.add(next.address);
  }
  assert.equal(tried.size, bucket.length);
  const [other] = planForward({
    self,
    height: "origin",
    candidates: nodes,
    exclude: (address) => address === top.contact.address,
  });
  assert.equal(other.height, top.height);
  assert.notEqual(other.contact, top.contact);
});

Deno.test("planForward and nextInBucket reject bad arguments with exact messages", () => {
  const nodes = network(3);
  const self = nodes[0].nodeId;
  assert.throws(() => planForward({ self, height: 257, candidates: nodes }), {
    name: "ArgumentError",
    message: 'Cannot plan a SHOUT: height must be "origin" or an integer in [0, 256], got 257',
  });
  assert.throws(() => planForward({ self, height: 1.5, candidates: nodes }), ArgumentError);
  assert.throws(() => planForward({ self, height: 3, previousHeight: -1, candidates: nodes }), {
    message: "Cannot plan a SHOUT: previousHeight must be an integer in [0, 256], got -1",
  });
  assert.throws(() => planForward({ self, height: 3, redundancy: 0, candidates: nodes }), {
    message: "Cannot plan a SHOUT: redundancy must be a positive integer, got 0",
  });
  assert.throws(
    () => planForward({ self: new Uint8Array(20), height: 3, candidates: nodes }),
    NodeIdError,
  );
  assert.throws(
    () => planForward({ self, height: 3, candidates: nodes, seed: new Uint8Array(31) }),
    NodeIdError,
  );
  assert.throws(
    () => nextInBucket({ self, candidates: nodes, bucket: 256, tried: new Set() }),
    { message: "Cannot pick a fallback: bucket must be an integer in [0, 255], got 256" },
  );
});
