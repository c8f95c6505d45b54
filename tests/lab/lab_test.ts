// Tests of the network lab itself (tests/lab/_lab.ts): the namespaces,
// the NAT, miniupnpd, the node agent, and that nothing outlives a lab.
// They need root, `ip netns` and nft; without them each is skipped with
// the reason printed ("network lab skipped: …").
import assert from "node:assert/strict";
import {
  AgentCommandError,
  haveCommand,
  Lab,
  LAB_PREFIX,
  labAvailable,
  parseMappings,
  sweepStaleNamespaces,
  upnpAvailable,
} from "./_lab.ts";

const lab = await labAvailable();
const upnp = await upnpAvailable();
const ping = lab.ok && await haveCommand("ping");
if (!lab.ok) console.log(`network lab skipped: ${lab.why}`);
else if (!upnp.ok) console.log(`network lab skipped (the miniupnpd tests): ${upnp.why}`);
if (lab.ok && !ping) console.log(`network lab skipped (the ping test): "ping" is not installed`);

/** The names in `ip netns list`. */
async function namespaces(): Promise<string[]> {
  const { stdout } = await new Deno.Command("ip", { args: ["netns", "list"] }).output();
  return new TextDecoder().decode(stdout).split("\n").map((l) => l.split(" ")[0]).filter(Boolean);
}

/** Whether `pid` runs (a zombie, killed and not reaped yet by init, does not). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** The host part of `HOST:PORT`. */
function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(":"));
}

Deno.test({
  name: "lab: two public hosts ping each other and their nodes see each other's real addresses",
  ignore: !lab.ok || !ping,
  async fn() {
    await using net = await Lab.create();
    const [a, b] = [await net.publicHost("a"), await net.publicHost("b")];
    assert.deepEqual([a.address, b.address], ["80.100.100.10", "80.100.100.11"]);
    const pinged = await a.exec("ping", ["-c1", "-W2", b.address]);
    assert.ok(pinged.success, pinged.stdout + pinged.stderr);

    await using na = await a.spawnNode();
    await using nb = await b.spawnNode();
    assert.equal(hostOf(na.listenAddrs[0]), "80.100.100.10");
    const outbound = await nb.request("connect", { peer: na.peerAddresses[0] });
    assert.equal(outbound.remoteAddress, na.listenAddrs[0]);
    assert.equal(outbound.direction, "outbound");
    const joined = await na.waitFor((e) => e.event === "peer:connect" && e.address === nb.address);
    assert.equal(hostOf(joined.remoteAddress), "80.100.100.11");
    const [inbound] = await na.request("peers");
    assert.equal(inbound.address, nb.address);
    assert.equal(inbound.direction, "inbound");
    assert.equal(hostOf(inbound.remoteAddress), "80.100.100.11");
    assert.deepEqual(inbound.listenAddrs, nb.listenAddrs);
    assert.equal(inbound.acceptsInbound, true);
    const { rttMs } = await nb.request("ping", { address: na.address });
    assert.ok(rttMs >= 0);
    await assert.rejects(nb.request("nonsense"), (err) => {
      assert.ok(err instanceof AgentCommandError);
      assert.match(err.message, /unknown command "nonsense"/);
      return true;
    });
  },
});

Deno.test({
  name: "lab: a LAN host reaches a public host through the NAT, which the public host cannot cross",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const server = await net.publicHost("server");
    const router = await net.natRouter("home");
    const laptop = await router.lanHost("laptop");
    assert.deepEqual(
      [router.address, router.lanAddress, laptop.address],
      ["80.100.100.1", "10.77.1.1", "10.77.1.10"],
    );
    // The router is no way out of the machine: only its WAN and LAN routes.
    const routes = await router.exec("ip", ["route", "show", "default"], { check: true });
    assert.equal(routes.stdout.trim(), "");

    await using ns = await server.spawnNode({ options: { dialTimeout: 1_500 } });
    await using nl = await laptop.spawnNode();
    await nl.request("connect", { peer: ns.peerAddresses[0] });
    const joined = await ns.waitFor((e) => e.event === "peer:connect" && e.address === nl.address);
    assert.equal(hostOf(joined.remoteAddress), router.address); // masqueraded
    assert.equal(joined.direction, "inbound");
    assert.deepEqual(joined.listenAddrs, nl.listenAddrs); // what it announced: 10.77.1.10:PORT

    // The server cannot dial a LAN node: it has no route to the LAN...
    await using other = await laptop.spawnNode();
    await assert.rejects(ns.request("connect", { peer: other.peerAddresses[0] }), /unreachable/i);
    // ...and given one through the router, the router drops what nobody inside asked for.
    await server.exec("ip", ["route", "add", router.lanSubnet, "via", router.address], {
      check: true,
    });
    await assert.rejects(
      ns.request("connect", { peer: other.peerAddresses[0] }),
      /time|abort/i,
    );
  },
});

Deno.test({
  name: "lab: miniupnpd answers NAT-PMP and UPnP on the LAN, and mappings() follows it",
  ignore: !upnp.ok,
  async fn() {
    await using net = await Lab.create();
    const router = await net.natRouter("home", { upnp: true });
    const laptop = await router.lanHost("laptop");
    try {
      const external = await laptop.exec("natpmpc", ["-g", router.lanAddress], { check: true });
      assert.match(external.stdout, /Public IP address : 80\.100\.100\.1\b/);
      const epoch = Number(/epoch = (\d+)/.exec(external.stdout)?.[1]);
      const listed = await laptop.exec("upnpc", ["-l"], { check: true }); // SSDP discovery
      const igd = ["-u", router.rootDescUrl]; // then straight to the IGD
      assert.match(listed.stdout, /ExternalIPAddress = 80\.100\.100\.1\b/);
      assert.match(listed.stdout, /Local LAN ip address : 10\.77\.1\.10\b/);
      assert.deepEqual(await router.mappings(), []);

      await laptop.exec("upnpc", [...igd, "-a", laptop.address, "4000", "4100", "TCP"], {
        check: true,
      });
      await laptop.exec("natpmpc", ["-g", router.lanAddress, "-a", "4201", "4001", "udp", "600"], {
        check: true,
      });
      const mapped = (await router.mappings()).sort((x, y) => x.externalPort - y.externalPort);
      assert.deepEqual(mapped, [
        { externalPort: 4100, internalAddress: "10.77.1.10", internalPort: 4000, protocol: "tcp" },
        { externalPort: 4201, internalAddress: "10.77.1.10", internalPort: 4001, protocol: "udp" },
      ]);

      await laptop.exec("upnpc", [...igd, "-d", "4100", "TCP"], { check: true });
      await laptop.exec("natpmpc", ["-g", router.lanAddress, "-a", "4201", "4001", "udp", "0"], {
        check: true,
      });
      assert.deepEqual(await router.mappings(), []);

      // A restart is a reboot: no mapping survives, the NAT-PMP epoch starts again.
      await laptop.exec("upnpc", [...igd, "-a", laptop.address, "4000", "4100", "TCP"], {
        check: true,
      });
      await router.stopUpnp();
      assert.equal(router.upnpRunning, false);
      await router.startUpnp();
      assert.deepEqual(await router.mappings(), []);
      const again = await laptop.exec("natpmpc", ["-g", router.lanAddress], { check: true });
      assert.ok(Number(/epoch = (\d+)/.exec(again.stdout)?.[1]) <= epoch);
    } catch (err) {
      throw new Error(`${(err as Error).message}\nminiupnpd:\n${router.upnpLog}`, { cause: err });
    }
  },
});

Deno.test("lab: parseMappings reads miniupnpd's DNAT rules from nft -j", () => {
  // `nft -j list chain inet filter prerouting_miniupnpd` after `upnpc -a` and `natpmpc -a`.
  const rule = (handle: number, proto: number, port: number, to: string, toPort: number) => ({
    rule: {
      family: "inet",
      table: "filter",
      chain: "prerouting_miniupnpd",
      handle,
      expr: [
        { match: { op: "==", left: { meta: { key: "iif" } }, right: "wan0" } },
        {
          match: { op: "==", left: { payload: { base: "nh", offset: 72, len: 8 } }, right: proto },
        },
        { match: { op: "==", left: { payload: { protocol: "th", field: "dport" } }, right: port } },
        { dnat: { family: "ip", addr: to, port: toPort } },
      ],
    },
  });
  const json = JSON.stringify({
    nftables: [
      { metainfo: { version: "1.0.6", json_schema_version: 1 } },
      { chain: { family: "inet", table: "filter", name: "prerouting_miniupnpd", handle: 5 } },
      rule(11, 6, 4000, "10.77.1.10", 4000),
      rule(13, 17, 4001, "10.77.1.11", 5001),
    ],
  });
  assert.deepEqual(parseMappings(json), [
    { externalPort: 4000, internalAddress: "10.77.1.10", internalPort: 4000, protocol: "tcp" },
    { externalPort: 4001, internalAddress: "10.77.1.11", internalPort: 5001, protocol: "udp" },
  ]);
});

Deno.test({
  name:
    "lab: two routers with a LAN host each and a public host: nodes meet through the public one",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const hub = await net.publicHost("hub");
    const [r1, r2] = [await net.natRouter("one"), await net.natRouter("two")];
    const [h1, h2] = [await r1.lanHost("h1"), await r2.lanHost("h2")];
    assert.deepEqual([r1.address, r2.address], ["80.100.100.1", "80.100.100.2"]);
    assert.deepEqual([h1.address, h2.address], ["10.77.1.10", "10.77.2.10"]);
    await using nh = await hub.spawnNode();
    await using n1 = await h1.spawnNode({ bootstrap: nh.peerAddresses });
    await using n2 = await h2.spawnNode({ bootstrap: nh.peerAddresses });
    // The two LANs cannot see each other: routers have no default route.
    await assert.rejects(n1.request("connect", { peer: n2.peerAddresses[0] }), /unreachable/i);
    const from = async (address: string) =>
      hostOf(
        (await nh.waitFor((e) => e.event === "peer:connect" && e.address === address))
          .remoteAddress,
      );
    assert.deepEqual([await from(n1.address), await from(n2.address)], [r1.address, r2.address]);

    const { hops } = await n1.request("whisper", { to: n2.address, text: "hello over there" });
    assert.equal(hops, 2); // through the hub
    const heard = await n2.waitFor((e) => e.event === "message" && e.from === n1.address);
    assert.equal(heard.text, "hello over there");
    const table = await nh.request("table");
    assert.deepEqual(
      table.contacts.map((c: { address: string }) => c.address).sort(),
      [n1.address, n2.address].sort(),
    );
  },
});

Deno.test({
  name: "lab: after disposal no namespace of the lab remains and no child process runs",
  ignore: !lab.ok,
  async fn() {
    const pids: number[] = [];
    let prefix = "";
    {
      await using net = await Lab.create();
      prefix = net.prefix;
      const host = await net.publicHost("pub");
      const router = await net.natRouter("home", { upnp: upnp.ok });
      const laptop = await router.lanHost("laptop");
      const node = await laptop.spawnNode({ bootstrap: [] });
      const sleeper = host.spawn("sleep", ["600"]);
      // A process the lab did not start: found by `ip netns pids`.
      await host.exec("sh", ["-c", "sleep 600 >/dev/null 2>&1 &"], { check: true });
      pids.push(node.pid, sleeper.pid, ...await host.pids(), ...await router.pids());
      assert.ok((await namespaces()).filter((n) => n.startsWith(`${prefix}-`)).length >= 4);
    }
    assert.deepEqual((await namespaces()).filter((n) => n.startsWith(`${prefix}-`)), []);
    assert.deepEqual(pids.filter(alive), []);
  },
});

Deno.test({
  name: "lab: Lab.create sweeps the namespaces of a crashed run, not a live lab's",
  ignore: !lab.ok,
  async fn() {
    // A PID nothing runs as (the kernel's largest is at most 2^22).
    let dead = 4_194_000;
    while (alive(dead)) dead++;
    const stale = `${LAB_PREFIX}-${dead.toString(36)}-0-x`;
    await new Deno.Command("ip", { args: ["netns", "add", stale] }).output();
    await using first = await Lab.create();
    assert.ok(first.swept.includes(stale), `swept ${first.swept}`);
    assert.ok(!(await namespaces()).includes(stale));
    await first.publicHost("keep");
    assert.deepEqual(await sweepStaleNamespaces(), []);
    await using second = await Lab.create();
    assert.ok((await namespaces()).includes(`${first.prefix}-keep`));
    assert.notEqual(second.prefix, first.prefix);
  },
});
