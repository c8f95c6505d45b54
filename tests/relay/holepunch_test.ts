// Hole punching's protocol and migration over real TCP on loopback. The
// punch itself (simultaneous dials through two NATs) needs two hosts and two
// routers: the network lab (tests/lab/holepunch_test.ts) measures it.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  createNode,
  DisconnectReason,
  type HolePunchEventDetail,
  NackError,
  NackReason,
  type Node,
  type NodeOptions,
  Opcode,
  type PathEventDetail,
} from "../../mod.ts";
import { HolePunchConnectSchema, HolePunchSchema } from "../../lib/protocol.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";
import { ECHO, str, until } from "./_relay.ts";

/**
 * A relay, a node reserved at it (it listens, but says it is private, so
 * that a test can also dial it directly) and a dialler that does not listen;
 * the dialler connected to the hidden node by key, through the relay.
 */
async function relayed(
  nodes: Node[],
  options: { hidden?: NodeOptions; dialler?: NodeOptions } = {},
) {
  const make = async (o: NodeOptions) => {
    const n = await createNode({ puzzleDifficulty: 0, nat: false, ...o });
    nodes.push(n);
    return n;
  };
  const relay = await make({ listen: ["127.0.0.1:0"], relay: { serve: true }, holePunch: false });
  const hidden = await make({
    listen: ["127.0.0.1:0"],
    reachability: "private",
    bootstrap: [relay.peerAddresses[0]],
    holePunch: false,
    ...options.hidden,
  });
  const dialler = await make({
    bootstrap: [relay.peerAddresses[0]],
    holePunch: false,
    ...options.dialler,
  });
  await until(() => hidden.addresses.relays.length === 1, "the hidden node's reservation");
  const peer = await dialler.connect(hidden.address);
  assert.equal(peer.channel.stream.relay, relay.address, "the first connection is relayed");
  await until(() => hidden.peer(dialler.address) !== undefined, "the hidden node sees the dialler");
  return { relay, hidden, dialler };
}

async function withNodes(fn: (nodes: Node[]) => Promise<void>): Promise<void> {
  const nodes: Node[] = [];
  try {
    await fn(nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

function holePunch(message: Parameters<typeof create<typeof HolePunchSchema>>[1]): Uint8Array {
  return toBinary(HolePunchSchema, create(HolePunchSchema, message));
}

async function refused(promise: Promise<unknown>, reason: NackReason, what: string) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof NackError, `${what}: ${err}`);
    assert.equal(err.reason, reason, `${what}: ${NackReason[err.reason]} (${err.message})`);
    return true;
  });
}

Deno.test("a direct connection replaces the relayed one: requests in flight finish, paths are told, the circuit closes", async () => {
  await withNodes(async (nodes) => {
    const paths: [string, PathEventDetail["path"]][] = [];
    const disconnects: string[] = [];
    const { relay, hidden, dialler } = await relayed(nodes);
    for (const [name, n] of [["hidden", hidden], ["dialler", dialler]] as const) {
      n.addEventListener("peer:path", (e) => paths.push([name, e.detail.path]));
      n.addEventListener("peer:disconnect", () => disconnects.push(name));
    }
    let release!: () => void;
    const held = new Promise<void>((r) => release = r);
    hidden.handle(ECHO, async (m) => {
      if (m.value === "slow") await held;
      return str(`echo ${m.value}`);
    });
    const relayedConnection = dialler.peer(hidden.address)!;
    const hiddenRelayed = hidden.peer(dialler.address)!;
    // A request on the relayed connection, answered only after the migration.
    const slow = dialler.request(hidden.address, ECHO, str("slow"));
    await until(() => relayedConnection.busy, "the slow request is on its way");

    const direct = await dialler.connect(`${hidden.address}@${hidden.listenAddrs[0]}`);
    assert.equal(direct.channel.stream.relay, undefined, "the new connection is direct");
    assert.equal(dialler.peer(hidden.address), direct, "the dialler uses the direct one");
    await until(
      () => hidden.peer(dialler.address)?.channel.stream.relay === undefined,
      "the hidden node moved to the direct connection",
    );
    assert.deepEqual(paths.filter(([n]) => n === "dialler").map(([, p]) => p), ["direct"]);
    assert.deepEqual(paths.filter(([n]) => n === "hidden").map(([, p]) => p), ["direct"]);
    // New requests take the direct connection; the relayed one still answers the old.
    assert.equal((await dialler.request(hidden.address, ECHO, str("new")))?.value, "echo new");
    await new Promise((r) => setTimeout(r, 1_200)); // past the linger: still busy, still open
    assert.equal(relayedConnection.isClosed, false, "closed with a request in flight");
    release();
    assert.equal((await slow)?.value, "echo slow", "the request in flight was answered");
    const info = await relayedConnection.closed;
    assert.equal(info.reason, DisconnectReason.DUPLICATE_CONNECTION);
    await hiddenRelayed.closed;
    await until(() => relay.metrics().relay.circuits === 0, "the relay closed the circuit");
    assert.deepEqual(disconnects, [], "a migration is no disconnect");
    assert.equal(dialler.metrics().relay.relayedConnections, 0);
    assert.ok(await hidden.ping(dialler.address) >= 0);
    // A relayed dial now finds the direct connection.
    assert.equal(await dialler.connect(hidden.address), direct);
  });
});

Deno.test("HOLE_PUNCH over a relayed connection: the reply, refusals, and a punch that fails keeps the relayed connection", async () => {
  await withNodes(async (nodes) => {
    // The dialler answers hole punches (the hidden node does not start one itself).
    const { hidden, dialler } = await relayed(nodes, {
      dialler: { holePunch: { window: 300 } },
    });
    const outcomes: HolePunchEventDetail[] = [];
    dialler.addEventListener("holepunch", (e) => outcomes.push(e.detail));
    const peer = hidden.peer(dialler.address)!;
    const ask = (payload: Uint8Array) => peer.request(Opcode.HOLE_PUNCH, payload);

    await refused(
      ask(holePunch({ kind: { case: "sync", value: {} } })),
      NackReason.MALFORMED,
      "sync first",
    );
    await refused(ask(holePunch({})), NackReason.MALFORMED, "no field");
    await refused(ask(new Uint8Array([0xff, 0xff])), NackReason.MALFORMED, "not a HolePunch");
    const connect = (addrs: string[]) =>
      holePunch({ kind: { case: "connect", value: { addrs, windowMs: 5_000 } } });
    await refused(ask(connect([])), NackReason.MALFORMED, "no address");
    const nine = Array.from({ length: 9 }, (_, i) => `127.0.0.1:${40_000 + i}`);
    await refused(ask(connect(nine)), NackReason.MALFORMED, "nine addresses");
    await refused(ask(connect(["example.com:80"])), NackReason.MALFORMED, "not an IP");

    // Where nothing answers: a port bound and released.
    const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const nowhere = `127.0.0.1:${closed.addr.port}`;
    closed.close();
    const reply = decodePayload(HolePunchConnectSchema, await ask(connect([nowhere])));
    assert.ok(reply.addrs.length >= 1, "the dialler offers its addresses");
    const ports = new Set(reply.addrs.map((a) => a.slice(a.lastIndexOf(":") + 1)));
    assert.equal(ports.size, 1, `one port for every address: ${reply.addrs}`);
    assert.ok(reply.addrs.includes(`127.0.0.1:${[...ports][0]}`), `${reply.addrs}`);
    assert.equal(reply.windowMs, 300, "the smaller window of the two");
    await refused(ask(connect([nowhere])), NackReason.RATE_LIMITED, "a second connect");
    assert.equal((await ask(holePunch({ kind: { case: "sync", value: {} } }))).length, 0);
    await until(() => outcomes.length === 1, "the dialler's outcome");
    const [outcome] = outcomes;
    assert.equal(outcome.direct, false);
    assert.equal(outcome.initiator, false);
    assert.deepEqual(outcome.dialled, [nowhere]);
    assert.ok(outcome.attempts >= 1, `${outcome.attempts} attempts`);
    assert.match(outcome.error!, /nothing connected within 300 ms/);
    // The relayed connection stays, and works.
    assert.equal(dialler.peer(hidden.address)?.channel.stream.relay !== undefined, true);
    assert.ok(await dialler.ping(hidden.address) >= 0);
  });
});

Deno.test("HOLE_PUNCH is refused by a node that does not punch holes", async () => {
  await withNodes(async (nodes) => {
    const { hidden, dialler } = await relayed(nodes);
    const payload = holePunch({
      kind: { case: "connect", value: { addrs: ["127.0.0.1:40000"], windowMs: 1_000 } },
    });
    await refused(
      hidden.peer(dialler.address)!.request(Opcode.HOLE_PUNCH, payload),
      NackReason.FORBIDDEN,
      "holePunch: false",
    );
  });
});

Deno.test("a node that closes while a replaced relayed connection lingers closes that one too", async () => {
  const nodes: Node[] = [];
  try {
    const { hidden, dialler } = await relayed(nodes);
    const relayedConnection = dialler.peer(hidden.address)!;
    await dialler.connect(`${hidden.address}@${hidden.listenAddrs[0]}`);
    assert.equal(relayedConnection.isClosed, false, "still lingering");
    await dialler.close();
    assert.equal(relayedConnection.isClosed, true);
    assert.equal((await relayedConnection.closed).reason, DisconnectReason.SHUTDOWN);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});
