// The DHT as a service (lib/services/dht.ts): the closed-node rule of its
// client, over a fake host whose AbortController the test aborts, and what
// `receive` answers.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { ManualClock } from "../../lib/clock.ts";
import type { DhtHost, DhtLease } from "../../lib/dht/dht.ts";
import { dhtKey } from "../../lib/dht/record.ts";
import { NodeClosedError } from "../../lib/errors.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { createNode } from "../../lib/node.ts";
import { type Contact, contactOf, RoutingTable } from "../../lib/overlay/routing_table.ts";
import type { PeerConnection } from "../../lib/peer/connection.ts";
import {
  FindNodeReplySchema,
  FindNodeRequestSchema,
  NackReason,
  Opcode,
} from "../../lib/protocol.ts";
import { dht, type DhtService } from "../../lib/services/dht.ts";
import type { ServiceFactory } from "../../lib/service.ts";
import { MemoryNetwork } from "../../lib/transport/memory.ts";
import { createFrame } from "../../lib/wire/frame.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";

/** How the fake host's peer answers: at once with an error, never (until aborted), or never at all. */
type Mode = "fail" | "hang" | "deaf";

/** A node that listens (so it is a replica) and knows one peer, over a fake host. */
function fakeNode() {
  const identity = generateIdentitySync({ difficulty: 0 });
  const other = generateIdentitySync({ difficulty: 0 });
  const peer: Contact = contactOf(other.publicKey, other.address, ["mem:peer"]);
  const table = new RoutingTable(identity.nodeId);
  table.add(peer);
  const closing = new AbortController();
  const state = { mode: "fail" as Mode, sent: [] as number[], pending: 0 };
  const errors: unknown[] = [];
  const host: DhtHost = {
    contact: contactOf(identity.publicKey, identity.address, ["mem:me"]),
    identity,
    table,
    clock: new ManualClock(),
    signal: closing.signal,
    request: (_contact, opcode, _payload, options) => {
      state.sent.push(opcode);
      if (state.mode === "fail") return Promise.reject(new Error("not connected"));
      state.pending++;
      return new Promise<Uint8Array>((_, reject) => {
        if (state.mode === "deaf") return; // ignores its signal too
        const signal = options?.signal;
        signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
      });
    },
    error: (error) => errors.push(error),
  };
  const service = dht({ requestTimeout: 60_000 })(host);
  const close = () => {
    const reason = new NodeClosedError("The node is closed");
    closing.abort(reason);
    service.cleanup();
    return reason;
  };
  return { service, client: service.client, peer, state, errors, close };
}

/** Every client call, each one a fresh promise. */
function everyCall(node: ReturnType<typeof fakeNode>, lease: DhtLease) {
  const { client, peer } = node;
  return {
    get: () => client.get("k"),
    put: () => client.put("k", "v"),
    cas: () => client.cas("k", "v", 0),
    patch: () => client.patch("k", { splices: [] }, 1),
    changes: () => client.changes("k", 0),
    lock: () => client.lock("job"),
    renew: () => client.renew(lease),
    unlock: () => client.unlock(lease),
    republish: () => client.republish(),
    lookup: () => client.lookup("k"),
    findClosest: () => client.findClosest(dhtKey("k")),
    findNode: () => client.findNode(peer, dhtKey("k")),
  };
}

const someLease: DhtLease = { key: dhtKey("job"), fencingToken: 1, ttl: 1_000, expiresAt: 0 };

Deno.test("the DHT service's factory is a ServiceFactory of a DhtService", () => {
  const factory: ServiceFactory<DhtService> = dht({ replicas: 3 });
  const { service } = fakeNode();
  assert.equal(typeof factory, "function");
  assert.equal(service.name, "dht");
  assert.deepEqual(
    service.opcodes.map((s) => s.name),
    [
      "FIND_NODE",
      "FIND_VALUE",
      "STORE",
      "DHT_CAS",
      "DHT_LOCK",
      "DHT_UNLOCK",
      "DHT_PATCH",
      "DHT_CHANGES",
    ],
  );
});

Deno.test("once the host's signal aborted, every DHT call rejects with its NodeClosedError and sends nothing", async () => {
  const node = fakeNode();
  const reason = node.close();
  for (const [name, call] of Object.entries(everyCall(node, someLease))) {
    await assert.rejects(call(), (err) => err === reason, name);
  }
  assert.deepEqual(node.state.sent, [], "nothing sent");
  assert.equal(node.client.size, 0, "nothing stored, not even here (put used to store locally)");
});

Deno.test("a DHT call in flight when the host's signal aborts rejects with its NodeClosedError", async () => {
  const node = fakeNode();
  // A record this node wrote (the peer refuses; this node is a replica), so that republish asks.
  await node.client.put("written", "v", { minReplicas: 1 });
  node.state.mode = "hang";
  const calls = Object.entries(everyCall(node, someLease)).map(([name, call]) => {
    const promise = call();
    promise.catch(() => {}); // awaited below
    return { name, promise };
  });
  for (let i = 0; i < 100 && node.state.pending < calls.length; i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  assert.equal(node.state.pending, calls.length, "each call waits on the peer");
  const reason = node.close();
  for (const { name, promise } of calls) {
    await assert.rejects(promise, (err) => err === reason, name);
  }
});

Deno.test("a DHT call in flight rejects with the NodeClosedError even when its request ignores the signal", async () => {
  const node = fakeNode();
  node.state.mode = "deaf";
  const read = node.client.get("k");
  const lock = node.client.lock("job");
  for (let i = 0; i < 100 && node.state.pending < 2; i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  const reason = node.close();
  await assert.rejects(read, (err) => err === reason);
  await assert.rejects(lock, (err) => err === reason);
});

Deno.test("a caller's signal still cancels a DHT call with its own reason", async () => {
  const node = fakeNode();
  node.state.mode = "hang";
  const cancel = new AbortController();
  const read = node.client.get("k", { signal: cancel.signal });
  for (let i = 0; i < 100 && node.state.pending < 1; i++) {
    await new Promise((r) => setTimeout(r, 1));
  }
  const mine = new Error("cancelled");
  cancel.abort(mine);
  await assert.rejects(read, (err) => err === mine);
  node.close();
});

Deno.test("a node's DHT refuses calls once the node is closed (put no longer stores locally)", async () => {
  await using net = new MemoryNetwork();
  const node = await createNode({ transport: net.transport(), listen: ["mem:0"] });
  await node.dht.put("before", "v");
  await node.close();
  await assert.rejects(node.dht.put("after", "v"), NodeClosedError);
  await assert.rejects(node.dht.get("before"), NodeClosedError);
  assert.equal(node.dht.size, 1, "only the record put before the close");
});

Deno.test("the DHT service answers its requests: ACK, NACK with the replica's refusal, nothing for id 0", () => {
  const { service, close } = fakeNode();
  const answers: string[] = [];
  let ackData: Uint8Array = new Uint8Array();
  const peer = {
    address: "peer",
    ack: (_frame: unknown, data: Uint8Array) => {
      answers.push("ACK");
      ackData = data;
      return Promise.resolve();
    },
    nack: (_frame: unknown, reason: NackReason) => {
      answers.push(`NACK ${NackReason[reason]}`);
      return Promise.resolve();
    },
  } as unknown as PeerConnection;
  const findNode = toBinary(
    FindNodeRequestSchema,
    create(FindNodeRequestSchema, { target: dhtKey("k") }),
  );
  service.receive({
    peer,
    frame: createFrame({ opcode: Opcode.FIND_NODE, id: 1, payload: findNode }),
  });
  assert.equal(decodePayload(FindNodeReplySchema, ackData).peers.length, 1, "the one contact");
  const garbage = new Uint8Array([0xff]);
  service.receive({ peer, frame: createFrame({ opcode: Opcode.STORE, id: 2, payload: garbage }) });
  service.receive({ peer, frame: createFrame({ opcode: Opcode.STORE, id: 0, payload: garbage }) });
  assert.deepEqual(answers, ["ACK", "NACK MALFORMED"]);
  close();
});
