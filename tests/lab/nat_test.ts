// NAT port mapping against a real gateway daemon (Debian's miniupnpd, UPnP
// IGD + NAT-PMP + PCP) in the network lab: a node behind the NAT, started
// with defaults, maps its port, becomes dialable from the WAN through it,
// re-maps after the router restarts, and deletes its mapping on close.
// Skipped, saying why, where the lab or miniupnpd is missing.
import assert from "node:assert/strict";
import { Lab, labAvailable, type NatRouter, type NodeProcess, upnpAvailable } from "./_lab.ts";

const lab = await labAvailable();
const upnp = lab.ok ? await upnpAvailable() : lab;
if (!lab.ok) console.log(`network lab skipped: ${lab.why}`);
else if (!upnp.ok) console.log(`network lab skipped (port mapping): ${upnp.why}`);
const ignore = !lab.ok || !upnp.ok;

interface Mapped {
  protocol: string;
  externalAddress: string;
  externalPort: number;
  internalPort: number;
  lifetime: number;
}

/** The port of `HOST:PORT`. */
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(":") + 1));
}

/**
 * A router (miniupnpd with `upnp`/`natpmp` as given), a LAN host running a
 * node on `0.0.0.0:0` with `nat` options, and a public host; `fn` gets the
 * node's first mapping.
 */
async function behindNat(
  router: { upnp: boolean; natpmp: boolean },
  nat: Record<string, unknown>,
  fn: (
    ctx: { net: Lab; router: NatRouter; node: NodeProcess; wan: NodeProcess; mapped: Mapped },
  ) => Promise<void>,
): Promise<void> {
  await using net = await Lab.create();
  const r = await net.natRouter("r", router);
  const laptop = await r.lanHost("laptop");
  const pub = await net.publicHost("pub");
  await using wan = await pub.spawnNode({ listen: ["0.0.0.0:0"] });
  const node = await laptop.spawnNode({
    listen: ["0.0.0.0:0"],
    options: { puzzleDifficulty: 0, ...(Object.keys(nat).length > 0 ? { nat } : {}) },
  });
  try {
    const event = await node.waitFor((e) => e.event === "nat:mapped", 20_000);
    console.log(
      `time to first mapping, ${event.mapping.protocol}: ${event.elapsed} ms ` +
        `(${event.mapping.externalAddress}:${event.mapping.externalPort}, lifetime ${event.mapping.lifetime} s)`,
    );
    await fn({ net, router: r, node, wan, mapped: event.mapping });
  } finally {
    await node.close();
  }
}

/** The WAN node dials the NATed node at its first announced address, through the mapping. */
async function dialThrough(wan: NodeProcess, node: NodeProcess, mapped: Mapped): Promise<void> {
  const { listenAddrs } = await node.request("addresses");
  const external = `${mapped.externalAddress}:${mapped.externalPort}`;
  assert.equal(listenAddrs[0], external, "the mapped address is announced first");
  const peer = await wan.request("connect", { peer: `${node.address}@${external}` });
  assert.equal(peer.direction, "outbound");
  assert.equal(peer.remoteAddress, external);
  const joined = await node.waitFor((e) => e.event === "peer:connect" && e.address === wan.address);
  assert.equal(joined.direction, "inbound", "the WAN host came in through the mapping");
  const { rttMs } = await wan.request("ping", { address: node.address });
  assert.ok(rttMs >= 0);
}

async function until(check: () => Promise<boolean>, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!await check()) {
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

Deno.test({
  name:
    "lab nat: with UPnP IGD, a node started with defaults maps its port, is dialable from the WAN, and unmaps on close",
  ignore,
  async fn() {
    await behindNat({ upnp: true, natpmp: false }, {}, async ({ router, node, wan, mapped }) => {
      assert.equal(mapped.protocol, "upnp");
      assert.equal(mapped.externalAddress, "80.100.100.1");
      const listen: string[] = (await node.request("addresses")).bound;
      const internalPort = portOf(listen[0]);
      assert.equal(mapped.internalPort, internalPort);
      const onRouter = await router.mappings();
      assert.ok(
        onRouter.some((m) =>
          m.externalPort === mapped.externalPort && m.internalPort === internalPort
        ),
        `the router's chain holds the mapping: ${JSON.stringify(onRouter)}`,
      );
      const listed = await router.lanHosts[0].exec("upnpc", ["-u", router.rootDescUrl, "-l"]);
      assert.match(listed.stdout, new RegExp(`TCP\\s+${mapped.externalPort}->`), listed.stdout);
      await dialThrough(wan, node, mapped);
      // The node reaches its own verdict from the WAN side's dial-back.
      await node.waitFor((e) => e.event === "addresses" && e.reachability === "public", 15_000);
      await node.close();
      assert.deepEqual(await router.mappings(), [], "close() deletes the mapping");
    });
  },
});

Deno.test({
  name: "lab nat: with NAT-PMP only, the node maps, is dialable, and unmaps on close",
  ignore,
  async fn() {
    await behindNat(
      { upnp: false, natpmp: true },
      { protocols: ["natpmp"] },
      async ({ router, node, wan, mapped }) => {
        assert.equal(mapped.protocol, "natpmp");
        assert.equal(mapped.externalAddress, "80.100.100.1");
        assert.ok((await router.mappings()).some((m) => m.externalPort === mapped.externalPort));
        await dialThrough(wan, node, mapped);
        await node.close();
        assert.deepEqual(await router.mappings(), []);
      },
    );
  },
});

Deno.test({
  name: "lab nat: by default the node speaks PCP to a NAT-PMP/PCP gateway",
  ignore,
  async fn() {
    await behindNat({ upnp: false, natpmp: true }, {}, async ({ router, node, wan, mapped }) => {
      assert.equal(mapped.protocol, "pcp");
      assert.ok((await router.mappings()).some((m) => m.externalPort === mapped.externalPort));
      await dialThrough(wan, node, mapped);
      await node.close();
      assert.deepEqual(await router.mappings(), []);
    });
  },
});

for (const protocol of ["natpmp", "pcp"]) {
  Deno.test({
    name:
      `lab nat: after miniupnpd restarts (its mappings gone, the epoch reset), ${protocol} maps again within one renewal`,
    ignore,
    async fn() {
      // NAT-PMP: renewal at 10 s catches the restart; PCP (lifetimes of 120 s
      // at least on miniupnpd) hears the gateway's ANNOUNCE at once.
      const lifetime = protocol === "natpmp" ? 20 : 120;
      await behindNat(
        { upnp: false, natpmp: true },
        { protocols: [protocol], lifetime },
        async ({ router, node, mapped }) => {
          assert.equal(mapped.protocol, protocol);
          // An epoch only tells a restart from a gateway that just started
          // once it is past the RFCs' 2 s of tolerance.
          await new Promise((r) => setTimeout(r, 4_000));
          await router.stopUpnp();
          await router.startUpnp(); // chains emptied: a reboot (PCP may map again at once)
          const restarted = Date.now();
          await until(
            async () =>
              (await router.mappings()).some((m) => m.internalPort === mapped.internalPort),
            "the mapping back on the router",
            (mapped.lifetime / 2 + 10) * 1_000,
          );
          console.log(`${protocol}: mapped again ${Date.now() - restarted} ms after the restart`);
          assert.equal((await node.request("addresses")).mappings.length, 1);
        },
      );
    },
  });
}

Deno.test({
  name:
    "lab nat: behind a NAT with no gateway daemon, mapping fails with a clear event and the node still runs",
  ignore,
  async fn() {
    await using net = await Lab.create();
    const r = await net.natRouter("r"); // no miniupnpd
    const laptop = await r.lanHost("laptop");
    await using node = await laptop.spawnNode({
      listen: ["0.0.0.0:0"],
      options: { puzzleDifficulty: 0, nat: { protocols: ["upnp"] } },
    });
    const failed = await node.waitFor((e) => e.event === "nat:failed", 20_000);
    assert.match(failed.error.message, /UPnP|SSDP|gateway/i, failed.error.message);
    assert.deepEqual((await node.request("addresses")).mappings, []);
  },
});
