// One lifecycle and no silent drops (issue 14): after close() every public
// method rejects with NodeClosedError, what is in flight aborts with it, and
// a message over a size limit rejects with a typed error naming the limit.
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  createNode,
  defineOpcode,
  FrameTooLargeError,
  type Node,
  NodeClosedError,
  NodeStateError,
  SizeLimitError,
} from "../mod.ts";
import { MemoryNetwork } from "../lib/transport/memory.ts";

const ECHO = defineOpcode(1400, {
  name: "ECHO",
  request: StringValueSchema,
  reply: StringValueSchema,
});
const NOTE = defineOpcode(1401, { name: "NOTE", request: StringValueSchema, oneWay: true });
const STALL = defineOpcode(1402, { name: "STALL", request: StringValueSchema });

async function pair(net: MemoryNetwork): Promise<[Node, Node]> {
  const a = await createNode({
    transport: net.transport(),
    listen: ["mem:0"],
    puzzleDifficulty: 0,
  });
  const b = await createNode({ transport: net.transport(), puzzleDifficulty: 0 });
  await b.connect(a.peerAddresses[0]);
  return [a, b];
}

/** Every public method that does something, called on node `b` whose peer is `a`. */
function calls(a: Node, b: Node): [string, () => Promise<unknown>][] {
  const key = "lifecycle-key";
  const lease = { key: new Uint8Array(32), fencingToken: 1, ttl: 1_000, expiresAt: 0 };
  return [
    ["start", () => b.start()],
    ["connect", () => b.connect(a.peerAddresses[0])],
    ["ping", () => b.ping(a.address)],
    ["request", () => b.request(a.address, ECHO, create(StringValueSchema, { value: "x" }))],
    ["send", () => b.send(a.address, NOTE, create(StringValueSchema, { value: "x" }))],
    ["shout", () => b.shout("x")],
    ["speak", () => b.speak("x")],
    ["whisper", () => b.whisper(a.address, "x")],
    ["requestMetrics", () => b.requestMetrics(a.address)],
    ["receiveLock", () => b.receiveLock(a.address, NOTE.opcode)],
    ["findClosest", () => b.findClosest(new Uint8Array(32))],
    ["findNode", () => b.findNode(a.address, new Uint8Array(32))],
    ["refreshRoutingTable", () => b.refreshRoutingTable()],
    ["dht.get", () => b.dht.get(key)],
    ["dht.put", () => b.dht.put(key, "v")],
    ["dht.cas", () => b.dht.cas(key, "v", 0)],
    ["dht.patch", () => b.dht.patch(key, { splices: [] }, 1)],
    ["dht.changes", () => b.dht.changes(key, 0)],
    ["dht.lock", () => b.dht.lock(key)],
    ["dht.renew", () => b.dht.renew(lease)],
    ["dht.unlock", () => b.dht.unlock(lease)],
    ["dht.republish", () => b.dht.republish()],
    ["dht.lookup", () => b.dht.lookup(key)],
  ];
}

Deno.test("a closed node rejects every public method with NodeClosedError", async () => {
  await using net = new MemoryNetwork();
  const [a, b] = await pair(net);
  try {
    await b.close();
    for (const [name, call] of calls(a, b)) {
      await assert.rejects(call(), NodeClosedError, `${name} after close`);
    }
    // The DHT did not store locally either.
    assert.equal(b.dht.size, 0);
  } finally {
    await a.close();
  }
});

Deno.test("a closing node rejects what is in flight with NodeClosedError", async () => {
  await using net = new MemoryNetwork();
  const [a, b] = await pair(net);
  try {
    const stalled = Promise.withResolvers<void>();
    a.handle(STALL, () => stalled.promise); // never answers before b closes
    const inFlight = [
      b.request(a.address, STALL, create(StringValueSchema, { value: "wait" }), {
        timeout: 60_000,
      }),
      b.receiveLock(a.address, NOTE.opcode, { timeout: 60_000 }),
    ];
    const closing = b.close();
    for (const pending of inFlight) await assert.rejects(pending, NodeClosedError);
    await closing;
    stalled.resolve();
  } finally {
    await a.close();
  }
});

Deno.test("start() on a started node says so with NodeStateError", async () => {
  await using net = new MemoryNetwork();
  await using node = await createNode({ transport: net.transport(), puzzleDifficulty: 0 });
  await assert.rejects(node.start(), NodeStateError);
  await assert.rejects(node.start(), /started already/);
});

Deno.test("a message over a size limit rejects with an error naming the limit", async () => {
  await using net = new MemoryNetwork();
  const [a, b] = await pair(net);
  try {
    const big = new Uint8Array(2 * 1024 * 1024);
    const text = create(StringValueSchema, { value: "x".repeat(2 * 1024 * 1024) });
    const frameLimit = (error: unknown) =>
      error instanceof SizeLimitError && error.limit === "maxFrameSize" && error.size > error.max;
    const cases: [string, () => Promise<unknown>, (error: unknown) => boolean][] = [
      ["speak", () => b.speak(big), frameLimit],
      ["shout", () => b.shout(big), frameLimit],
      ["whisper (plaintext)", () => b.whisper(a.address, big, { encrypted: false }), frameLimit],
      [
        "whisper (encrypted)",
        () => b.whisper(a.address, new Uint8Array(70_000)),
        (error) =>
          error instanceof SizeLimitError && error.limit === "MAX_ENCRYPTED_ENVELOPE_PAYLOAD",
      ],
      [
        "send",
        () => b.send(a.address, NOTE, text),
        (e) => e instanceof FrameTooLargeError && frameLimit(e),
      ],
      [
        "request",
        () => b.request(a.address, ECHO, text),
        (e) => e instanceof FrameTooLargeError && frameLimit(e),
      ],
    ];
    for (const [name, call, check] of cases) await assert.rejects(call(), check, name);
    // Nothing was half-sent: the connection still works.
    a.handle(ECHO, (m) => create(StringValueSchema, { value: m.value }));
    assert.equal(
      (await b.request(a.address, ECHO, create(StringValueSchema, { value: "ok" })))?.value,
      "ok",
    );
  } finally {
    await a.close();
    await b.close();
  }
});
