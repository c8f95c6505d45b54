// Relayed connections over real TCP on loopback: a node that does not listen
// holds a reservation at a relay, and another node reaches it by its key
// alone, Noise XX end to end inside the circuit. Across NAT routers: the
// network lab (tests/lab/relay_test.ts).
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  createNode,
  DisconnectReason,
  NackError,
  NackReason,
  type Node,
  type NodeOptions,
  Opcode,
} from "../../mod.ts";
import { RelayDataSchema, RelayRequestSchema } from "../../lib/protocol.ts";
import { FrameChannel } from "../../lib/swarm/circuit.ts";
import { FrameDecoder } from "../../lib/wire/frame.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";
import { ECHO, str, until } from "./_relay.ts";

/**
 * Every RELAY_DATA payload written on any circuit connection in this
 * process (the ends' and the relay's forwarding), while `fn` runs.
 */
async function tapCircuits(fn: () => Promise<void>): Promise<Uint8Array> {
  const seen: Uint8Array[] = [];
  const write = FrameChannel.prototype.write;
  const decoders = new WeakMap<FrameChannel, FrameDecoder>();
  FrameChannel.prototype.write = function (bytes: Uint8Array) {
    let decoder = decoders.get(this);
    if (!decoder) decoders.set(this, decoder = new FrameDecoder({ maxFrameSize: 1 << 20 }));
    for (const frame of decoder.push(bytes.slice())) {
      if (frame.opcode === Opcode.RELAY_DATA) {
        seen.push(decodePayload(RelayDataSchema, frame.payload).data);
      }
    }
    return write.call(this, bytes);
  };
  try {
    await fn();
  } finally {
    FrameChannel.prototype.write = write;
  }
  const all = new Uint8Array(seen.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of seen) all.set(b, (at += b.length) - b.length);
  return all;
}

function includes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function withNodes(
  fn: (make: (o?: NodeOptions) => Promise<Node>) => Promise<void>,
): Promise<void> {
  const nodes: Node[] = [];
  try {
    await fn(async (o = {}) => {
      // Relayed connections as such (hole punching: tests/relay/holepunch_test.ts).
      const n = await createNode({ puzzleDifficulty: 0, nat: false, holePunch: false, ...o });
      nodes.push(n);
      return n;
    });
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

/** A relay, a hidden node (no listener) reserved at it, and a dialler. */
async function topology(
  make: (o?: NodeOptions) => Promise<Node>,
  relayOptions: NodeOptions["relay"] = { serve: true },
) {
  const relay = await make({ listen: ["127.0.0.1:0"], relay: relayOptions });
  const hidden = await make({ bootstrap: [relay.peerAddresses[0]] });
  // Neither listens: they can only meet through the relay (as behind two NATs).
  const dialler = await make({ bootstrap: [relay.peerAddresses[0]] });
  for (const n of [relay, hidden, dialler]) {
    n.addEventListener(
      "error",
      (e) => console.error("error event", e.detail.source, e.detail.error),
    );
  }
  await until(() => hidden.addresses.relays.length === 1, "the hidden node's reservation");
  // The relay's routing table learns the hidden node's relays (IDENTIFY).
  await until(
    () => relay.routingTable.get(hidden.address)?.relays?.length === 1,
    "the relay's contact for the hidden node names its relay",
  );
  return { relay, hidden, dialler };
}

Deno.test("a node that does not listen is reached by its key through a relay: ping, request, WHISPER, DHT", async () => {
  await withNodes(async (make) => {
    const { relay, hidden, dialler } = await topology(make);
    hidden.handle(ECHO, (m) => str(`echo ${m.value}`));
    assert.equal(hidden.addresses.acceptsInbound, false);
    assert.deepEqual(
      hidden.addresses.relays.map((r) => r.listenAddrs[0]),
      [relay.listenAddrs[0]],
    );

    const peer = await dialler.connect(hidden.address);
    assert.equal(peer.address, hidden.address);
    assert.equal(peer.channel.stream.relay, relay.address, "the connection is relayed");
    await until(
      () => hidden.peer(dialler.address) !== undefined,
      "the hidden node sees the dialler",
    );
    assert.equal(hidden.peer(dialler.address)!.channel.initiator, false);
    assert.equal(hidden.peer(dialler.address)!.channel.stream.relay, relay.address);

    assert.ok(await dialler.ping(hidden.address) >= 0);
    // What crosses the relay is Noise ciphertext: a marker sent in a request
    // arrives, but never appears in the bytes the circuit carried.
    const marker = crypto.randomUUID();
    let reply: string | undefined;
    const carried = await tapCircuits(async () => {
      reply = (await dialler.request(hidden.address, ECHO, str(marker)))?.value;
    });
    assert.equal(reply, `echo ${marker}`);
    assert.ok(carried.length > marker.length, `the circuit carried ${carried.length} bytes`);
    assert.ok(!includes(carried, new TextEncoder().encode(marker)), "plaintext crossed the relay");
    assert.ok(relay.metrics().relay.bytesRelayed > 0);
    assert.equal(relay.metrics().relay.circuits, 1);
    assert.equal(dialler.metrics().relay.relayedConnections, 1);
    // The hidden node reaches back over the same connection.
    assert.ok(await hidden.ping(dialler.address) >= 0);

    const got = new Promise<string>((resolve) =>
      hidden.addEventListener("message", (e) => resolve(new TextDecoder().decode(e.detail.body)))
    );
    const sent = await dialler.whisper(hidden.address, "psst", { encrypted: true });
    assert.equal(sent.hops, 1, "delivered over the direct (relayed) connection");
    assert.equal(await got, "psst");

    await hidden.dht.put("relayed-key", "from behind the relay");
    assert.equal(
      new TextDecoder().decode((await dialler.dht.get("relayed-key"))!.value),
      "from behind the relay",
    );
  });
});

Deno.test("a relayed connection is closed with DISCONNECT LIMIT_REACHED over the relay's byte budget", async () => {
  await withNodes(async (make) => {
    const { hidden, dialler } = await topology(make, { serve: { maxCircuitBytes: 64 * 1024 } });
    hidden.handle(ECHO, (m) => str(m.value));
    const peer = await dialler.connect(hidden.address);
    await dialler.request(hidden.address, ECHO, str("small"));
    const closed = peer.closed;
    await dialler.request(hidden.address, ECHO, str("x".repeat(100_000))).catch(() => {});
    const info = await closed;
    assert.equal(info.reason, DisconnectReason.LIMIT_REACHED, info.error?.message);
    assert.equal(info.remote, true);
    // Both nodes keep serving: the dialler can open a new circuit.
    const again = await dialler.connect(hidden.address);
    assert.notEqual(again, peer);
    assert.ok(await dialler.ping(hidden.address) >= 0);
  });
});

Deno.test("relay refusals: FORBIDDEN from a node that does not relay; a node without a reservation cannot be reached by key", async () => {
  await withNodes(async (make) => {
    const plain = await make({ listen: ["127.0.0.1:0"] });
    const asker = await make({ listen: ["127.0.0.1:0"] });
    await asker.connect(plain.peerAddresses[0]);
    const reserve = toBinary(
      RelayRequestSchema,
      create(RelayRequestSchema, { kind: { case: "reserve", value: {} } }),
    );
    const forbidden = await asker.peer(plain.address)!.request(Opcode.RELAY, reserve).catch((e) =>
      e
    );
    assert.ok(forbidden instanceof NackError, String(forbidden));
    assert.equal(forbidden.reason, NackReason.FORBIDDEN);

    // A node that does not listen and holds no reservation cannot be reached by key.
    const relay = await make({ listen: ["127.0.0.1:0"], relay: { serve: true } });
    const hidden = await make({ bootstrap: [relay.peerAddresses[0]], relay: { maxRelays: 0 } });
    await until(() => relay.peer(hidden.address) !== undefined, "hidden connected to the relay");
    const dialler = await make({ listen: ["127.0.0.1:0"], bootstrap: [relay.peerAddresses[0]] });
    await until(() => dialler.peer(relay.address) !== undefined, "dialler connected");
    await assert.rejects(dialler.connect(hidden.address), /accepts no connections|not found/);
    assert.equal(hidden.addresses.relays.length, 0);
  });
});

Deno.test("a relay over its reservation limit refuses with RATE_LIMITED; the refused node keeps none", async () => {
  await withNodes(async (make) => {
    const relay = await make({ listen: ["127.0.0.1:0"], relay: { serve: { maxReservations: 1 } } });
    const first = await make({ bootstrap: [relay.peerAddresses[0]] });
    await until(() => first.addresses.relays.length === 1, "the first reservation");
    const second = await make({ bootstrap: [relay.peerAddresses[0]] });
    const errors: Error[] = [];
    second.addEventListener("error", (e) => errors.push(e.detail.error));
    await until(() => errors.length > 0, "the second node's refused reservation");
    assert.ok(errors[0] instanceof NackError, String(errors[0]));
    assert.equal((errors[0] as NackError).reason, NackReason.RATE_LIMITED);
    assert.equal(second.addresses.relays.length, 0);
    assert.equal(relay.metrics().relay.reservations, 1);
    assert.ok(relay.metrics().relay.refused >= 1);
    // The first one's reservation is gone with its connection, and the slot is free again.
    await first.close();
    await until(() => relay.metrics().relay.reservations === 0, "the reservation released");
  });
});

Deno.test("a relay bridges at most maxCircuitsPerPeer circuits to one node: the next connect is RATE_LIMITED", async () => {
  await withNodes(async (make) => {
    const { relay, hidden } = await topology(make, { serve: { maxCircuitsPerPeer: 1 } });
    const one = await make({ bootstrap: [relay.peerAddresses[0]] });
    const two = await make({ bootstrap: [relay.peerAddresses[0]] });
    await until(
      () => two.peer(relay.address) !== undefined && one.peer(relay.address) !== undefined,
      "joined",
    );
    await one.connect(hidden.address);
    const refused = await two.connect(hidden.address).catch((e) => e);
    assert.ok(refused instanceof NackError, String(refused));
    assert.equal(refused.reason, NackReason.RATE_LIMITED);
    assert.match(refused.message, /circuits per node/);
    assert.ok(await one.ping(hidden.address) >= 0, "the first circuit still works");
  });
});
