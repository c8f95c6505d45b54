// Addresses across hosts and NATs, in the network lab: what nodes bound to
// the wildcard announce, what dial-backs tell a node behind a NAT, and how a
// node behind NAT finds public nodes directly. Skipped, saying why, where
// the lab cannot be built (see tests/lab/_lab.ts).
import assert from "node:assert/strict";
import { Lab, labAvailable, type NodeProcess } from "./_lab.ts";

const lab = await labAvailable();
if (!lab.ok) console.log(`network lab skipped: ${lab.why}`);

/** The host part of `HOST:PORT`. */
function hostOf(address: string): string {
  return address.slice(0, address.lastIndexOf(":"));
}

const WILDCARD = /^(0\.0\.0\.0|\[::\]):/;

/** Every address `node` records of its peers and contacts. */
async function recorded(node: NodeProcess): Promise<string[]> {
  const peers: { listenAddrs: string[] }[] = await node.request("peers");
  const table: { contacts: { listenAddrs: string[] }[] } = await node.request("table");
  return [...peers, ...table.contacts].flatMap((p) => p.listenAddrs);
}

Deno.test({
  name:
    "lab: two public hosts bound to 0.0.0.0 learn each other's real addresses, never a wildcard",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const [a, b] = [await net.publicHost("a"), await net.publicHost("b")];
    const nodeOptions = { listen: ["0.0.0.0:0"] };
    await using na = await a.spawnNode(nodeOptions);
    await using nb = await b.spawnNode({ ...nodeOptions, bootstrap: na.peerAddresses });
    assert.match(na.listenAddrs[0], /^0\.0\.0\.0:\d+$/, "bound to the wildcard");
    assert.deepEqual(na.peerAddresses.map((p) => hostOf(p.split("@")[1])), ["80.100.100.10"]);
    await na.waitFor((e) => e.event === "peer:connect" && e.address === nb.address);
    // Each dials the other back: both are public.
    for (const n of [na, nb]) {
      await n.waitFor((e) => e.event === "addresses" && e.reachability === "public", 15_000);
    }
    const [fromA] = await na.request("peers");
    assert.deepEqual(fromA.listenAddrs.map(hostOf), ["80.100.100.11"]);
    assert.equal(fromA.acceptsInbound, true);
    const [fromB] = await nb.request("peers");
    assert.deepEqual(fromB.listenAddrs.map(hostOf), ["80.100.100.10"]);
    for (const n of [na, nb]) {
      const all = await recorded(n);
      assert.ok(all.length >= 2, `${all}`);
      assert.deepEqual(all.filter((x) => WILDCARD.test(x)), [], "no peer records a wildcard");
    }
    const mine = await nb.request("addresses");
    assert.deepEqual(mine.observedHosts, [{ host: "80.100.100.11", peers: 1 }]);
  },
});

Deno.test({
  name:
    "lab: behind a NAT without port mapping, a node learns by dial-back it is unreachable and is reached as outbound-only",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const [a, b] = [await net.publicHost("a"), await net.publicHost("b")];
    const router = await net.natRouter("r"); // no miniupnpd
    const laptop = await router.lanHost("laptop");
    await using na = await a.spawnNode({ listen: ["0.0.0.0:0"] });
    await using nb = await b.spawnNode({ listen: ["0.0.0.0:0"], bootstrap: na.peerAddresses });
    await using nl = await laptop.spawnNode({
      listen: ["0.0.0.0:0"],
      bootstrap: na.peerAddresses,
      options: { puzzleDifficulty: 0, nat: { retryInterval: 600_000 } },
    });
    const verdict = await nl.waitFor(
      (e) => e.event === "addresses" && e.reachability === "private",
      30_000,
    );
    assert.equal(verdict.acceptsInbound, false);
    const mine = await nl.request("addresses");
    assert.deepEqual(mine.observedHosts.map((o: { host: string }) => o.host), ["80.100.100.1"]);
    // IDENTIFY told the bootstrap: it no longer lists the laptop as reachable.
    const seen = async () =>
      (await na.request("peers")).find((p: { address: string }) => p.address === nl.address);
    for (let i = 0; i < 100 && (await seen())?.acceptsInbound !== false; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await seen())?.acceptsInbound, false);
    const contact = (await na.request("table")).contacts.find((c: { address: string }) =>
      c.address === nl.address
    );
    assert.deepEqual(contact?.listenAddrs ?? [], [], "not listed as a contact to dial");
    // Still reached as outbound-only nodes are: a WHISPER from b, routed through its peers.
    const delivered = nl.waitFor((e) => e.event === "message" && e.text === "through the NAT");
    const sent = await nb.request("whisper", { to: nl.address, text: "through the NAT" });
    assert.ok(sent.hops >= 1);
    assert.equal((await delivered).from, nb.address);
  },
});

Deno.test({
  name:
    "lab: nodes behind two NATs, bootstrapped through one public host, connect directly to the other",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const [a, b] = [await net.publicHost("a"), await net.publicHost("b")];
    const [r1, r2] = [await net.natRouter("r1"), await net.natRouter("r2")];
    const [h1, h2] = [await r1.lanHost("h1"), await r2.lanHost("h2")];
    await using na = await a.spawnNode({ listen: ["0.0.0.0:0"] });
    await using nb = await b.spawnNode({ listen: ["0.0.0.0:0"], bootstrap: na.peerAddresses });
    await nb.waitFor((e) => e.event === "peer:connect" && e.address === na.address);
    const behind = [];
    for (const h of [h1, h2]) {
      behind.push(
        await h.spawnNode({
          listen: ["0.0.0.0:0"],
          bootstrap: na.peerAddresses,
          options: { puzzleDifficulty: 0, nat: false },
        }),
      );
    }
    try {
      for (const [i, n] of behind.entries()) {
        // The self-lookup through a lists b; the node dials b's real address itself.
        const direct = await n.waitFor(
          (e) => e.event === "peer:connect" && e.address === nb.address,
          30_000,
        );
        assert.equal(direct.direction, "outbound", `node ${i} dialled b`);
        assert.equal(direct.remoteAddress, nb.peerAddresses[0].split("@")[1]);
        const { rttMs } = await n.request("ping", { address: nb.address });
        assert.ok(rttMs >= 0);
      }
      // b sees each coming from its router's WAN address.
      const peers: { address: string; remoteAddress: string }[] = await nb.request("peers");
      const from = (n: NodeProcess) =>
        hostOf(peers.find((p) => p.address === n.address)!.remoteAddress);
      assert.deepEqual(behind.map(from), ["80.100.100.1", "80.100.100.2"]);
      // The two NATed nodes reach each other by WHISPER, routed.
      const heard = behind[1].waitFor((e) =>
        e.event === "message" && e.text === "hello, other NAT"
      );
      await behind[0].request("whisper", { to: behind[1].address, text: "hello, other NAT" });
      assert.equal((await heard).from, behind[0].address);
    } finally {
      for (const n of behind) await n.close();
    }
  },
});
