import assert from "node:assert/strict";
import { TransportAddressError } from "../../lib/errors.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { createNode } from "../../lib/node.ts";
import { ConnectionManager } from "../../lib/swarm/manager.ts";
import { MemoryNetwork } from "../../lib/transport/memory.ts";
import { combineTransports, MultiTransport } from "../../lib/transport/multi.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import type { Transport } from "../../lib/transport/types.ts";
import { acceptOne, readAll, transportConformance } from "./_conformance.ts";
import { ArgumentError } from "../../lib/errors.ts";

const network = new MemoryNetwork();
const tcpAndMemory = () => new MultiTransport([new TcpTransport(), network.transport()]);
transportConformance("MultiTransport over its memory part", tcpAndMemory, "mem:0");
transportConformance("MultiTransport over its TCP part", tcpAndMemory, "127.0.0.1:0");

/** The message of a TransportAddressError for `address` no part takes. */
function noTransport(address: string, schemes: string): RegExp {
  return new RegExp(
    `^No transport for address "${address.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}": ` +
      `scheme "[^"]+" is not one of ${schemes}$`,
  );
}

Deno.test("MultiTransport dials and listens with the part of each address's scheme", async () => {
  await using net = new MemoryNetwork();
  await using transport = new MultiTransport([new TcpTransport(), net.transport()]);
  assert.deepEqual(transport.schemes, ["tcp", "mem"]);
  const overTcp = await transport.listen("127.0.0.1:0");
  const inMemory = await transport.listen("mem:0");
  assert.match(overTcp.address, /^127\.0\.0\.1:\d+$/);
  assert.match(inMemory.address, /^mem:/);
  for (const listener of [overTcp, inMemory]) {
    const accepted = acceptOne(listener);
    const client = await transport.dial(listener.address);
    const server = await accepted;
    await client.write(new TextEncoder().encode(listener.address));
    await client.closeWrite();
    assert.equal(new TextDecoder().decode(await readAll(server)), listener.address);
    assert.equal(client.remoteAddress, listener.address);
    client.close();
    server.close();
  }
});

Deno.test("MultiTransport refuses an address no part takes, naming it and the schemes", async () => {
  await using net = new MemoryNetwork();
  await using transport = new MultiTransport([new TcpTransport(), net.transport()]);
  for (const address of ["ws://127.0.0.1:80", "quic+v1://[::1]:4433"]) {
    await assert.rejects(transport.dial(address), (error: unknown) => {
      assert.ok(error instanceof TransportAddressError, `got ${error}`);
      assert.match(error.message, noTransport(address, `"tcp", "mem"`));
      return true;
    });
    await assert.rejects(transport.listen(address), TransportAddressError);
  }
  // A malformed address is refused as the one parser refuses it.
  await assert.rejects(transport.dial("::1:80"), {
    name: "TransportAddressError",
    message:
      'Cannot parse address "::1:80": an IPv6 address must be in brackets, as in "[::1]:4000"',
  });
  // One part alone still refuses the other's addresses.
  await assert.rejects(new TcpTransport().dial("mem:a"), {
    message: 'Cannot parse address "mem:a": expected a tcp address (HOST:PORT)',
  });
});

Deno.test("MultiTransport needs parts that each declare distinct schemes", () => {
  const wrapper: Transport = { dial: () => Promise.reject(), listen: () => Promise.reject() };
  assert.throws(() => new MultiTransport([]), ArgumentError);
  assert.throws(() => new MultiTransport([new TcpTransport(), wrapper]), {
    name: "ArgumentError",
    message: "Transport 1 of a MultiTransport declares no schemes (Transport.schemes)",
  });
  assert.throws(() => new MultiTransport([new TcpTransport(), new TcpTransport()]), {
    name: "ArgumentError",
    message: 'Two transports of a MultiTransport declare scheme "tcp"',
  });
  // A single transport, even one that declares no schemes, is used as it is.
  assert.equal(combineTransports([wrapper]), wrapper);
});

Deno.test("a node with TCP and memory transports dials a TCP peer and a memory peer by address", async () => {
  await using net = new MemoryNetwork();
  await using both = await createNode({
    transports: [new TcpTransport(), net.transport()],
    listen: ["127.0.0.1:0", "mem:0"],
    puzzleDifficulty: 0,
  });
  await using tcpPeer = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  await using memPeer = await createNode({
    transport: net.transport(),
    listen: ["mem:0"],
    puzzleDifficulty: 0,
  });
  assert.equal(both.listenAddrs.length, 2);
  assert.match(both.listenAddrs[0], /^127\.0\.0\.1:\d+$/);
  assert.match(both.listenAddrs[1], /^mem:/);

  const overTcp = await both.connect(tcpPeer.peerAddresses[0]);
  assert.equal(overTcp.address, tcpPeer.address);
  assert.match(overTcp.channel.stream.remoteAddress, /^127\.0\.0\.1:\d+$/);
  const inMemory = await both.connect(memPeer.peerAddresses[0]);
  assert.equal(inMemory.address, memPeer.address);
  assert.match(inMemory.channel.stream.remoteAddress, /^mem:/);
  assert.ok(await both.ping(tcpPeer.address) >= 0);
  assert.ok(await both.ping(memPeer.address) >= 0);
  assert.deepEqual(
    both.peers().map((p) => p.address).sort(),
    [tcpPeer.address, memPeer.address].sort(),
  );

  // Each listen address takes its own transport's peers: the TCP peer dials
  // it at its TCP address, a memory-only node at its memory address.
  await using memDialer = await createNode({ transport: net.transport(), puzzleDifficulty: 0 });
  const toBoth = await memDialer.connect(both.peerAddresses[1]);
  assert.equal(toBoth.address, both.address);
  await using tcpDialer = await createNode({ puzzleDifficulty: 0 });
  assert.equal((await tcpDialer.connect(both.peerAddresses[0])).address, both.address);

  // An address of a scheme no transport of the node takes is a typed error.
  const stranger = generateIdentitySync({ difficulty: 0 }).address;
  await assert.rejects(
    both.connect(`${stranger}@ws://127.0.0.1:1`),
    (error: unknown) => {
      assert.ok(error instanceof TransportAddressError, `got ${error}`);
      assert.match(error.message, noTransport("ws://127.0.0.1:1", `"tcp", "mem"`));
      return true;
    },
  );
});

Deno.test("a node given transport and transports uses both; one transport stays as it was", async () => {
  await using net = new MemoryNetwork();
  await using node = await createNode({
    transport: net.transport(),
    transports: [new TcpTransport()],
    listen: ["mem:0", "127.0.0.1:0"],
    puzzleDifficulty: 0,
  });
  assert.match(node.listenAddrs[0], /^mem:/);
  assert.match(node.listenAddrs[1], /^127\.0\.0\.1:\d+$/);
  await using memOnly = await createNode({ transport: net.transport(), puzzleDifficulty: 0 });
  await assert.rejects(memOnly.connect(node.peerAddresses[1]), {
    name: "TransportAddressError",
    message: /expected a mem address \(mem:NAME\)$/,
  });
  assert.equal((await memOnly.connect(node.peerAddresses[0])).address, node.address);
});

Deno.test("ConnectionManager.canDial says which listen addresses its transports take", () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  const both = new ConnectionManager({
    identity,
    transports: [new TcpTransport(), new MemoryNetwork().transport()],
  });
  assert.ok(both.canDial("127.0.0.1:4000") && both.canDial("[::1]:1") && both.canDial("mem:a"));
  assert.ok(!both.canDial("ws://127.0.0.1:80"));
  assert.ok(!both.canDial("::1:80")); // malformed
  const tcpOnly = new ConnectionManager({ identity, transports: [new TcpTransport()] });
  assert.ok(tcpOnly.canDial("10.0.0.1:1") && !tcpOnly.canDial("mem:a"));
  const wrapper: Transport = { dial: () => Promise.reject(), listen: () => Promise.reject() };
  const trusting = new ConnectionManager({ identity, transports: [wrapper] });
  assert.ok(trusting.canDial("mem:a") && trusting.canDial("ws://h:1"));
  assert.throws(() => new ConnectionManager({ identity, transports: [] }), ArgumentError);
});
