// The `nat` service in a node, against the scriptable NAT-PMP gateway on
// 127.0.0.1 (no traffic leaves the machine): it maps the listen port,
// announces the external address, renews at half the granted lifetime,
// maps again after the gateway restarts, reports double NAT and lost
// mappings, and deletes its mapping on close. Against miniupnpd: tests/lab/.
import assert from "node:assert/strict";
import { systemClock } from "../../lib/clock.ts";
import {
  createNode,
  DoubleNatError,
  type NatEventDetail,
  type Node,
  type NodeEventMap,
  PortMappingError,
} from "../../mod.ts";
import { FakePmpServer, viewOf } from "./_fake_pmp.ts";

const NAT_PMP_MAP_TCP = 2;

/** The NAT-PMP TCP mapping requests the fake received: [internal port, external port, lifetime]. */
function mapRequests(fake: FakePmpServer): [number, number, number][] {
  return fake.requests.filter((r) => r.bytes.length === 12 && r.bytes[1] === NAT_PMP_MAP_TCP)
    .map((r) => {
      const v = viewOf(r.bytes);
      return [v.getUint16(4), v.getUint16(6), v.getUint32(8)];
    });
}

function next<K extends "nat:mapped" | "nat:lost" | "nat:failed">(
  node: Node,
  type: K,
): Promise<NatEventDetail> {
  return new Promise((resolve) =>
    node.addEventListener(type, (e: NodeEventMap[K]) => resolve(e.detail), { once: true })
  );
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function natNode(fake: FakePmpServer, init: Record<string, unknown> = {}): Promise<Node> {
  return await createNode({
    listen: ["0.0.0.0:0"],
    puzzleDifficulty: 0,
    reachability: "public",
    nat: { protocols: ["natpmp"], gateway: "127.0.0.1", pmpPort: fake.port, ...init },
  });
}

Deno.test("nat service: maps the listen port, announces the external address first, renews, unmaps on close", async () => {
  const fake = await FakePmpServer.start(systemClock);
  try {
    fake.grant = (ask) => ({ externalPort: ask.lifetime === 0 ? 0 : 40_123, lifetime: 2 });
    const node = await natNode(fake, { lifetime: 600 });
    try {
      const mapped = await next(node, "nat:mapped");
      const port = Number(node.listenAddrs[0].split(":")[1]);
      assert.equal(mapped.bound, `0.0.0.0:${port}`);
      assert.deepEqual(
        [mapped.mapping?.protocol, mapped.mapping?.externalPort, mapped.mapping?.lifetime],
        ["natpmp", 40_123, 2],
      );
      assert.equal(node.addresses.listenAddrs[0], "80.100.100.1:40123");
      assert.deepEqual(node.portMappings.map((m) => m.externalPort), [40_123]);
      assert.deepEqual(
        mapRequests(fake)[0],
        [port, port, 600],
        "asked for the listen port, in seconds",
      );
      // Granted 2 s: renewed after 1 s, with the granted port.
      await until(() => mapRequests(fake).length >= 2, "a renewal");
      assert.deepEqual(mapRequests(fake)[1], [port, 40_123, 600]);
    } finally {
      await node.close();
    }
    const last = mapRequests(fake).at(-1)!;
    assert.deepEqual(last, [Number(last[0]), 0, 0], "close() deletes it: lifetime 0, port 0");
  } finally {
    await fake.close();
  }
});

Deno.test("nat service: a gateway restart (its epoch reset) makes the node map again at once", async () => {
  const fake = await FakePmpServer.start(systemClock);
  try {
    fake.grant = (ask) => ({ externalPort: ask.externalPort || ask.internalPort, lifetime: 4 });
    await using node = await natNode(fake);
    await next(node, "nat:mapped");
    await until(() => mapRequests(fake).length >= 2, "the first renewal (after 2 s)");
    fake.restart(); // the next answer's epoch says so
    await until(
      () => mapRequests(fake).length >= 4,
      "a renewal and the re-map the reset asks for",
      5_000,
    );
    assert.equal(node.portMappings.length, 1);
  } finally {
    await fake.close();
  }
});

Deno.test("nat service: double NAT is nat:failed with a DoubleNatError, nothing announced", async () => {
  const fake = await FakePmpServer.start(systemClock);
  try {
    fake.externalAddress = "100.64.0.7"; // carrier-grade NAT space
    await using node = await natNode(fake);
    const failed = await next(node, "nat:failed");
    assert.ok(failed.error instanceof DoubleNatError, String(failed.error));
    assert.match(failed.error.message, /100\.64\.0\.7/);
    assert.deepEqual(node.portMappings, []);
    assert.ok(node.addresses.listenAddrs.every((a) => !a.startsWith("100.64.")));
    assert.deepEqual(mapRequests(fake), [], "no mapping asked of a gateway behind another NAT");
  } finally {
    await fake.close();
  }
});

Deno.test("nat service: a refused renewal is nat:lost, the address is withdrawn, and the node maps again", async () => {
  const fake = await FakePmpServer.start(systemClock);
  try {
    fake.grant = (ask) => ({ externalPort: ask.externalPort || ask.internalPort, lifetime: 2 });
    await using node = await natNode(fake);
    const first = await next(node, "nat:mapped");
    const external = `80.100.100.1:${first.mapping!.externalPort}`;
    assert.equal(node.addresses.listenAddrs[0], external);
    fake.natPmpResult = 4; // OUT_OF_RESOURCES
    const lost = await next(node, "nat:lost");
    assert.ok(lost.error instanceof PortMappingError);
    assert.match(lost.error.message, /OUT_OF_RESOURCES/);
    assert.ok(!node.addresses.listenAddrs.includes(external), "withdrawn");
    fake.natPmpResult = 0;
    await next(node, "nat:mapped");
    assert.equal(node.addresses.listenAddrs[0], external);
  } finally {
    await fake.close();
  }
});

Deno.test("nat service: loopback and memory listeners are not mapped", async () => {
  const fake = await FakePmpServer.start(systemClock);
  try {
    await using node = await createNode({
      listen: ["127.0.0.1:0"],
      puzzleDifficulty: 0,
      nat: { protocols: ["natpmp"], gateway: "127.0.0.1", pmpPort: fake.port },
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(fake.requests, []);
    assert.deepEqual(node.portMappings, []);
  } finally {
    await fake.close();
  }
});
