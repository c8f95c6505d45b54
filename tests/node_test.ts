// The node over real TCP on 127.0.0.1.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { createNode, type Node, type NodeOptions, type Service } from "../mod.ts";
import { ConnectionLimitError, NackError } from "../lib/errors.ts";
import { defineOpcode, Opcode } from "../lib/wire/opcodes.ts";
import { TcpTransport } from "../lib/transport/tcp.ts";
import { CountingStream } from "./peer/_pair.ts";
import { generateIdentity } from "../lib/identity/keys.ts";
import { secureOutbound } from "../lib/secure/channel.ts";
import type { Frame } from "../lib/wire/frame.ts";
import { NackReason } from "../lib/protocol.ts";
import { bucketIndex, compareDistance, nodeIdOf } from "../lib/identity/node_id.ts";
import { parseAddress } from "../lib/identity/address.ts";

const ECHO = defineOpcode(1000, {
  name: "ECHO",
  request: StringValueSchema,
  reply: StringValueSchema,
});
const STEP = 1001;
const OTHER = 1002;

const nodes: Node[] = [];
async function node(options: NodeOptions = {}): Promise<Node> {
  const n = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0, ...options });
  nodes.push(n);
  return n;
}
async function closeAll(): Promise<void> {
  await Promise.all(nodes.splice(0).map((n) => n.close()));
}

/** Lets the event loop turn until `check` holds (bounded). */
async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(check(), `timed out waiting for ${what}`);
}

const text = (s: string) => toBinary(StringValueSchema, create(StringValueSchema, { value: s }));

Deno.test("ℓ limits the connections a node initiates", async () => {
  try {
    const a = await node({ maxOutbound: 2 });
    const [b, c, d] = await Promise.all([node(), node(), node()]);
    await a.connect(b.peerAddresses[0]);
    await a.connect(c.peerAddresses[0]);
    await assert.rejects(
      () => a.connect(d.peerAddresses[0]),
      (err: unknown) =>
        err instanceof ConnectionLimitError && /maxOutbound \(ℓ\) 2/.test(err.message),
    );
    // Inbound connections do not count against ℓ.
    await d.connect(a.peerAddresses[0]);
    await until(() => a.peers().length === 3, "A to see D");
    assert.equal(a.metrics().connections.outbound, 2);
    assert.equal(a.metrics().connections.inbound, 1);
    // Freed room can be used again.
    await a.peer(b.address)!.close();
    await until(() => a.metrics().connections.outbound === 1, "the closed connection to go");
    const e = await node();
    await a.connect(e.peerAddresses[0]);
  } finally {
    await closeAll();
  }
});

Deno.test("a full inbound limit evicts the longest idle peer for a newcomer, and refuses when none can go", async () => {
  try {
    const a = await node({ maxInbound: 1 });
    const [b, c, d] = await Promise.all([node(), node(), node({ handshakeTimeout: 2000 })]);
    await b.connect(a.peerAddresses[0]);
    await until(() => a.peers().length === 1, "A to see B");
    const bGone = b.peer(a.address)!.closed;
    await c.connect(a.peerAddresses[0]);
    assert.match((await bGone).error?.message ?? "", /LIMIT_REACHED \(evicted for a new peer\)/);
    await until(() => a.peers().length === 1 && a.peer(c.address) !== undefined, "B to go");
    // With a request of A's pending on it, C is in use: D is refused before any handshake work.
    const gate = Promise.withResolvers<void>();
    c.handle(ECHO, async (message) => {
      await gate.promise;
      return message;
    });
    const pending = a.request(c.address, ECHO, create(StringValueSchema, { value: "hi" }));
    await until(() => a.peer(c.address)!.busy, "the request to be pending");
    const rejected = a.metrics().connections.rejectedHandshakes;
    await assert.rejects(() => d.connect(a.peerAddresses[0]));
    assert.equal(a.metrics().connections.rejectedHandshakes, rejected + 1);
    assert.deepEqual(a.peers().map((p) => p.address), [c.address]);
    gate.resolve();
    assert.equal((await pending)?.value, "hi");
  } finally {
    await closeAll();
  }
});

Deno.test("a new socket evicts the oldest pending handshake when all are taken", async () => {
  const tcp = new TcpTransport();
  try {
    const a = await node({ maxPendingHandshakes: 1, handshakeTimeout: 10_000 });
    // A socket that never handshakes holds the one pending slot.
    const staller = await tcp.dial(a.listenAddrs[0]);
    await until(() => a.metrics().connections.pendingHandshakes === 1, "the staller to be pending");
    const b = await node();
    await b.connect(a.peerAddresses[0]);
    assert.ok(await b.ping(a.address) >= 0);
    // The staller was closed to make room: its read ends.
    assert.equal(await staller.read(new Uint8Array(64)), null);
    assert.equal(a.metrics().connections.rejectedHandshakes, 1);
    staller.close();
  } finally {
    tcp.close();
    await closeAll();
  }
});

/** A stream whose writes after the first never complete: a handshake that stops after message 1. */
class StallsAfterFirstWrite extends CountingStream {
  #stalled = Promise.withResolvers<void>();
  override write(data: Uint8Array): Promise<void> {
    return this.writes === 0 ? super.write(data) : this.#stalled.promise;
  }
  override close(): void {
    this.#stalled.reject(new Error("closed while stalled"));
    super.close();
  }
}

Deno.test("eviction takes a silent socket before an older handshake in progress", async () => {
  const tcp = new TcpTransport();
  try {
    const a = await node({ maxPendingHandshakes: 2, handshakeTimeout: 10_000 });
    // The oldest: a peer that sent Noise message 1, got message 2, and stalls.
    const stalled = await tcp.dial(a.listenAddrs[0]);
    const identity = await generateIdentity({ difficulty: 0 });
    const stalling = new StallsAfterFirstWrite(stalled);
    const halfway = secureOutbound(stalling, {
      identity,
      handshakeTimeout: 10_000,
    }).catch((err) => err);
    await until(
      () => a.metrics().connections.pendingHandshakes === 1,
      "the stalled one to be pending",
    );
    await new Promise((r) => setTimeout(r, 100)); // message 1 arrives
    const silent = await tcp.dial(a.listenAddrs[0]);
    await until(
      () => a.metrics().connections.pendingHandshakes === 2,
      "the silent one to be pending",
    );
    const b = await node();
    await b.connect(a.peerAddresses[0]);
    assert.equal(await silent.read(new Uint8Array(64)), null, "the silent socket was evicted");
    await until(() => a.peers().length === 1, "A to register B");
    assert.equal(a.metrics().connections.pendingHandshakes, 1, "the stalled handshake stays");
    silent.close();
    stalling.close();
    await halfway;
  } finally {
    tcp.close();
    await closeAll();
  }
});

Deno.test("one IP address gets at most its share of pending handshakes and inbound connections", async () => {
  const tcp = new TcpTransport();
  try {
    const a = await node({ limitLoopback: true, maxPendingHandshakesPerIp: 1, maxInboundPerIp: 1 });
    const staller = await tcp.dial(a.listenAddrs[0]);
    await until(() => a.metrics().connections.pendingHandshakes === 1, "the staller to be pending");
    // Over 127.0.0.1's share: closed at once, before any handshake work.
    const refused = await tcp.dial(a.listenAddrs[0]);
    assert.equal(await refused.read(new Uint8Array(64)), null);
    assert.equal(a.metrics().connections.pendingHandshakes, 1, "the staller keeps its slot");
    staller.close();
    await until(() => a.metrics().connections.pendingHandshakes === 0, "the staller to go");
    const [b, c] = await Promise.all([node(), node({ handshakeTimeout: 2000 })]);
    await b.connect(a.peerAddresses[0]);
    await until(() => a.peers().length === 1, "A to see B");
    await assert.rejects(() => c.connect(a.peerAddresses[0]));
    assert.deepEqual(a.peers().map((p) => p.address), [b.address]);
    refused.close();
  } finally {
    tcp.close();
    await closeAll();
  }
});

Deno.test("two nodes dialing each other at once end with one shared connection", async () => {
  try {
    for (let round = 0; round < 3; round++) {
      const a = await node();
      const b = await node();
      await Promise.allSettled([a.connect(b.peerAddresses[0]), b.connect(a.peerAddresses[0])]);
      // Both sides settle on the same connection (the Noise handshake hash is
      // a channel binding) and close the other.
      const same = () => {
        const ab = a.peer(b.address), ba = b.peer(a.address);
        return ab !== undefined && ba !== undefined && !ab.isClosed && !ba.isClosed &&
          ab.channel.handshakeHash.every((x, i) => x === ba.channel.handshakeHash[i]);
      };
      await until(same, "one shared connection");
      assert.equal(a.peers().length, 1);
      assert.equal(b.peers().length, 1);
      // The survivor was initiated by the node with the lower address.
      const lower = Buffer.compare(a.identity.publicKey, b.identity.publicKey) < 0 ? a : b;
      assert.equal(lower.peers()[0].channel.initiator, true);
      assert.ok(await a.ping(b.address) >= 0);
      await closeAll();
    }
  } finally {
    await closeAll();
  }
});

Deno.test("an outbound-only node joins by dialing and is reachable over its connection", async () => {
  try {
    const a = await node();
    const b = await node({ listen: [] });
    assert.deepEqual(b.listenAddrs, []);
    b.handle(ECHO, (m) => create(StringValueSchema, { value: `b got ${m.value}` }));
    a.handle(ECHO, (m) => create(StringValueSchema, { value: `a got ${m.value}` }));
    await b.connect(a.peerAddresses[0]);
    await until(() => a.peer(b.address) !== undefined, "A to see B");
    assert.equal(a.peer(b.address)!.channel.remote.acceptsInbound, false);
    assert.equal(
      (await a.request(b.address, ECHO, create(StringValueSchema, { value: "x" })))?.value,
      "b got x",
    );
    assert.equal(
      (await b.request(a.address, ECHO, create(StringValueSchema, { value: "y" })))?.value,
      "a got y",
    );
  } finally {
    await closeAll();
  }
});

Deno.test("application opcodes round-trip typed requests, replies and NACKs", async () => {
  try {
    const a = await node();
    const b = await node();
    b.handle(ECHO, (m) => {
      if (m.value === "nack") {
        throw new NackError("no thanks", {
          opcode: ECHO.opcode,
          reason: NackReason.FORBIDDEN,
          data: text("why"),
        });
      }
      if (m.value === "boom") throw new Error("handler broke");
      return create(StringValueSchema, { value: m.value.toUpperCase() });
    });
    await a.connect(b.peerAddresses[0]);
    const reply = await a.request(b.address, ECHO, create(StringValueSchema, { value: "hello" }));
    assert.equal(reply?.value, "HELLO");
    await assert.rejects(
      () => a.request(b.address, ECHO, create(StringValueSchema, { value: "nack" })),
      (err: unknown) =>
        err instanceof NackError && err.reason === NackReason.FORBIDDEN &&
        fromBinary(StringValueSchema, err.data).value === "why",
    );
    await assert.rejects(
      () => a.request(b.address, ECHO, create(StringValueSchema, { value: "boom" })),
      (err: unknown) =>
        err instanceof NackError && err.reason === NackReason.APPLICATION &&
        /handler broke/.test(err.message),
    );
    // An opcode nobody handles gets NACK UNKNOWN_OPCODE; a bad payload NACK MALFORMED.
    const peer = a.peer(b.address)!;
    await assert.rejects(
      () => peer.request(1999, new Uint8Array()),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.UNKNOWN_OPCODE,
    );
    await assert.rejects(
      () => peer.request(ECHO.opcode, new Uint8Array([0xff, 0xff])),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.MALFORMED,
    );
    // Registering a protocol opcode or a duplicate is refused.
    assert.throws(() => b.handle(ECHO, () => {}), /already registered/);
  } finally {
    await closeAll();
  }
});

Deno.test("services see their hooks in order, can claim frames, and cannot break the node", async () => {
  try {
    const calls: string[] = [];
    const recorder: Service = {
      name: "recorder",
      startup: () => void calls.push("startup"),
      peerConnect: (p) => void calls.push(`connect ${p.address.slice(0, 4)}`),
      receive: ({ frame }) => {
        calls.push(`receive ${frame.opcode}`);
        return frame.opcode === STEP; // claims STEP
      },
      peerDisconnect: () => void calls.push("disconnect"),
      cleanup: () => void calls.push("cleanup"),
    };
    const broken: Service = {
      name: "broken",
      startup: () => {
        throw new Error("startup broke");
      },
      receive: () => {
        throw new Error("receive broke");
      },
      peerConnect: () => {
        throw new Error("connect broke");
      },
    };
    const errors: string[] = [];
    const b = await node({ services: [() => broken, () => recorder] });
    b.addEventListener(
      "error",
      (e) => errors.push(`${e.detail.source}: ${e.detail.error.message}`),
    );
    const handled: string[] = [];
    b.handle(ECHO, (m) => {
      handled.push(m.value);
      return create(StringValueSchema, { value: "ok" });
    });
    const a = await node();
    await a.connect(b.peerAddresses[0]);
    const peer = a.peer(b.address)!;
    await peer.send(STEP, new Uint8Array([1])); // claimed by recorder
    assert.equal(
      (await a.request(b.address, ECHO, create(StringValueSchema, { value: "v" })))?.value,
      "ok",
    );
    assert.deepEqual(handled, ["v"]);
    await a.close();
    await until(() => calls.includes("disconnect"), "peerDisconnect");
    await b.close();
    assert.deepEqual(calls, [
      "startup",
      `connect ${a.address.slice(0, 4)}`,
      `receive ${STEP}`,
      `receive ${ECHO.opcode}`,
      "disconnect",
      "cleanup",
    ]);
    assert.ok(
      errors.some((e) => /service broken peerConnect: connect broke/.test(e)),
      errors.join(),
    );
    assert.ok(errors.some((e) => /service broken receive: receive broke/.test(e)));
  } finally {
    await closeAll();
  }
});

Deno.test("receive-then-lock keeps a three-message exchange in order while other messages wait", async () => {
  try {
    const a = await node();
    const b = await node();
    const order: string[] = [];
    a.addEventListener("message", (e) => {
      if (e.detail.opcode === OTHER) order.push(`other ${e.detail.body[0]}`);
    });
    await b.connect(a.peerAddresses[0]);
    await until(() => a.peer(b.address) !== undefined, "A to see B");
    const locked = a.receiveLock(b.address, STEP, { timeout: 5000 });
    const peer = b.peer(a.address)!;
    await peer.send(STEP, new Uint8Array([1]));
    await peer.send(OTHER, new Uint8Array([1]));
    await peer.send(OTHER, new Uint8Array([2]));
    await peer.send(STEP, new Uint8Array([2]));
    await peer.send(STEP, new Uint8Array([3]));
    const lock = await locked;
    order.push(`step ${lock.frame.payload[0]}`);
    const second: Frame = await lock.next();
    order.push(`step ${second.payload[0]}`);
    const third = await lock.next();
    order.push(`step ${third.payload[0]}`);
    // The other messages are held, not delivered, while the lock is held.
    await b.ping(a.address);
    assert.deepEqual(order, ["step 1", "step 2", "step 3"]);
    lock.release();
    await until(() => order.length === 5, "held messages");
    assert.deepEqual(order, ["step 1", "step 2", "step 3", "other 1", "other 2"]);
  } finally {
    await closeAll();
  }
});

Deno.test("SPEAK reaches every direct peer exactly once and is not forwarded by default", async () => {
  try {
    const hub = await node();
    const [a, b, c] = await Promise.all([node(), node(), node()]);
    const x = await node(); // connected to A only
    for (const n of [a, b, c]) await n.connect(hub.peerAddresses[0]);
    await x.connect(a.peerAddresses[0]);
    await until(() => hub.peers().length === 3 && a.peers().length === 2, "the star");
    const got = new Map<string, string[]>();
    for (const n of [hub, a, b, c, x]) {
      got.set(n.address, []);
      n.addEventListener("message", (e) => {
        if (e.detail.opcode === Opcode.SPEAK) {
          got.get(n.address)!.push(new TextDecoder().decode(e.detail.body));
        }
      });
    }
    assert.equal(await hub.speak("hello", { topic: "t" }), 3);
    await until(() => [a, b, c].every((n) => got.get(n.address)!.length === 1), "delivery");
    // Let anything forwarded arrive, if it were (it must not be).
    await Promise.all([a, b, c].map((n) => hub.ping(n.address)));
    await x.ping(a.address);
    for (const n of [a, b, c]) assert.deepEqual(got.get(n.address), ["hello"]);
    assert.deepEqual(got.get(x.address), []);
    assert.deepEqual(got.get(hub.address), []);
  } finally {
    await closeAll();
  }
});

Deno.test("SPEAK is forwarded once by nodes that opt in, within its ttl", async () => {
  try {
    const a = await node();
    const b = await node({ forwardSpeak: true });
    const c = await node({ forwardSpeak: true });
    await b.connect(a.peerAddresses[0]);
    await c.connect(b.peerAddresses[0]);
    await c.connect(a.peerAddresses[0]); // a triangle: C hears it from A and from B
    await until(() => a.peers().length === 2 && b.peers().length === 2, "the triangle");
    const atC: string[] = [];
    c.addEventListener("message", (e) => atC.push(new TextDecoder().decode(e.detail.body)));
    await a.speak("around", { ttl: 1 });
    await until(() => atC.length >= 1, "delivery");
    await Promise.all([a.ping(b.address), b.ping(c.address), a.ping(c.address)]);
    assert.deepEqual(atC, ["around"]);
  } finally {
    await closeAll();
  }
});

Deno.test("metrics count traffic and a peer gets them only when enabled", async () => {
  try {
    const a = await node({ serveMetrics: true });
    const b = await node();
    await b.connect(a.peerAddresses[0]);
    await b.ping(a.address);
    const local = b.metrics();
    assert.equal(local.peers.length, 1);
    assert.ok(local.totals.framesSent >= 1 && local.totals.bytesReceived > 0);
    assert.ok(local.peers[0].counters.rtt > 0);
    const remote = await b.requestMetrics(a.address);
    assert.ok(remote.totals.framesReceived >= 1);
    assert.equal(remote.peers[0].address, b.address);
    await until(() => a.peer(b.address) !== undefined, "A to see B");
    await assert.rejects(
      () => a.requestMetrics(b.address),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.FORBIDDEN,
    );
  } finally {
    await closeAll();
  }
});

Deno.test("a node redials its bootstrap peers after a disconnect", async () => {
  try {
    const a = await node();
    const b = await node({ bootstrap: [a.peerAddresses[0]], reconnectDelay: 10 });
    await until(() => a.peer(b.address) !== undefined, "the bootstrap connection");
    await a.peer(b.address)!.close();
    await until(() => b.peer(a.address) === undefined, "the disconnect");
    await until(() => b.peer(a.address) !== undefined, "the redial");
    assert.ok(await b.ping(a.address) >= 0);
  } finally {
    await closeAll();
  }
});

Deno.test("FIND_NODE answers with the k closest contacts the node knows, never the asker", async () => {
  try {
    const hub = await node({ k: 3 });
    const others = await Promise.all(Array.from({ length: 5 }, () => node()));
    for (const n of others) await n.connect(hub.peerAddresses[0]);
    await until(() => hub.peers().length === 5, "the hub to see everyone");
    // k = 3 per bucket: about half of the ids land in one bucket, so some
    // may wait as replacements; ask for what the table holds.
    const asker = others[0];
    const target = others[1].identity.nodeId;
    const contacts = await asker.findNode(hub.address, target);
    const expected = hub.routingTable.closest(target, 3, (c) => c.address !== asker.address);
    assert.deepEqual(contacts.map((c) => c.address), expected.map((c) => c.address));
    assert.ok(contacts.length > 0 && contacts.length <= 3);
    assert.ok(!contacts.some((c) => c.address === asker.address));
    if (hub.routingTable.get(others[1].address)) {
      assert.equal(contacts[0].address, others[1].address);
    }
    // Contacts come with where they listen.
    assert.match(contacts[0].listenAddrs[0], /^127\.0\.0\.1:\d+$/);
    // A malformed target gets NACK MALFORMED.
    await assert.rejects(
      () => asker.findNode(hub.address, new Uint8Array(5)),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.MALFORMED,
    );
  } finally {
    await closeAll();
  }
});

Deno.test("nodes bootstrapping from one seed find each other by lookup and connect across buckets", async () => {
  try {
    const seed = await node({ maxOutbound: 4 });
    const swarm: Node[] = [];
    for (let i = 0; i < 16; i++) {
      swarm.push(await node({ maxOutbound: 4, bootstrap: [seed.peerAddresses[0]] }));
    }
    const all = [seed, ...swarm];
    // Each node ends with its bootstrap connection plus others across its
    // buckets (some dialed by it, some by the other side: one per pair).
    await until(
      () => swarm.every((n) => n.peers().length >= 3 && n.routingTable.size >= 8),
      "connections across the buckets",
    );
    for (const n of swarm) {
      // ℓ holds for the connections a node keeps (lookup connections aside).
      assert.ok(n.metrics().connections.outbound <= 4, `${n.metrics().connections.outbound}`);
      const buckets = n.peers().map((p) => bucketIndex(n.identity.nodeId, nodeIdOf(p.identityKey)));
      assert.ok(new Set(buckets).size >= 2, `buckets ${buckets}`);
    }
    // A lookup from any node finds the true closest nodes to a target.
    const target = swarm[5].identity.nodeId;
    const result = await swarm[11].findClosest(target);
    const truth = all.filter((n) => n !== swarm[11]).map((n) => n.address)
      .sort((a, b) =>
        compareDistance(target, nodeIdOf(parseAddress(a)), nodeIdOf(parseAddress(b)))
      );
    // The 8 closest are exact (far ones need not all be found).
    const got = result.closest.map((c) => c.address);
    assert.deepEqual(got.slice(0, 8), truth.slice(0, 8));
    assert.equal(result.closest[0].address, swarm[5].address);
    // Lookup connections are short-lived and not counted against ℓ.
    assert.ok(swarm[11].metrics().connections.outbound <= 4);
  } finally {
    await closeAll();
  }
});
