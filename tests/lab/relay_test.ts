// Relayed connections in the network lab: two nodes behind two different
// NAT routers (no port mapping: miniupnpd is not running) learn by dial-back
// that they are unreachable, reserve at a public relay, and one connects to
// the other by its key alone, through the relay. Skipped, saying why, where
// the lab cannot be built (see tests/lab/_lab.ts).
import assert from "node:assert/strict";
import { behindTwoNats, Lab, labAvailable, type NodeProcess, reserved } from "./_lab.ts";

const lab = await labAvailable();
if (!lab.ok) console.log(`network lab skipped: ${lab.why}`);

Deno.test({
  name:
    "lab: nodes behind two NATs reach each other by key through a public relay: ping, request, WHISPER, DHT",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const pub = await net.publicHost("relay");
    await using relay = await pub.spawnNode({
      listen: ["0.0.0.0:0"],
      options: { puzzleDifficulty: 0, relay: { serve: true } },
    });
    const [alice, bob] = await behindTwoNats(net, {
      listen: ["0.0.0.0:0"],
      bootstrap: relay.peerAddresses,
      // The relayed connection itself (hole punching: tests/lab/holepunch_test.ts).
      options: { puzzleDifficulty: 0, nat: { retryInterval: 600_000 }, holePunch: false },
    });
    for (const n of [alice, bob]) {
      // Dial-back says no (nothing maps a port): not reachable, so it reserves.
      await n.waitFor((e) => e.event === "addresses" && e.reachability === "private", 30_000);
      await reserved(n, relay);
    }
    const started = performance.now();
    const peer = await alice.request("connect", { peer: bob.address });
    console.log(`relayed connection by key: ${Math.round(performance.now() - started)} ms`);
    assert.equal(peer.relay, relay.address, "alice's connection to bob is relayed");
    assert.equal(peer.direction, "outbound");
    const inbound = await bob.waitFor((e) =>
      e.event === "peer:connect" && e.address === alice.address
    );
    assert.equal(inbound.relay, relay.address);
    assert.equal(inbound.direction, "inbound");

    const { rttMs } = await alice.request("ping", { address: bob.address });
    console.log(`ping over the relay: ${rttMs.toFixed(2)} ms`);
    assert.equal(
      (await alice.request("echo", { address: bob.address, text: "hi" })).text,
      "echo hi",
    );
    assert.ok((await bob.request("ping", { address: alice.address })).rttMs >= 0);

    const heard = bob.waitFor((e) => e.event === "message" && e.text === "relayed whisper");
    const sent = await alice.request("whisper", {
      to: bob.address,
      text: "relayed whisper",
      encrypted: true,
    });
    assert.equal(sent.hops, 1, "delivered over the relayed connection");
    assert.equal((await heard).from, alice.address);

    await bob.request("dhtPut", { key: "lab-relay", value: "from behind NAT 2" });
    assert.equal(
      (await alice.request("dhtGet", { key: "lab-relay" })).value,
      "from behind NAT 2",
    );

    const { relay: counters } = await relay.request("metrics");
    assert.ok(counters.circuits >= 1, JSON.stringify(counters));
    assert.ok(counters.bytesRelayed > 0, JSON.stringify(counters));
    assert.equal(counters.reservations, 2);
    // Neither NATed node is connected to the other any other way.
    const direct = (await alice.request("peers")).filter((
      p: { address: string; relay?: string },
    ) => p.address === bob.address && p.relay === undefined);
    assert.deepEqual(direct, []);
  },
});

Deno.test({
  name:
    "lab: a relay crashes; the node reserved there reserves at another and is reached through it",
  ignore: !lab.ok,
  async fn() {
    await using net = await Lab.create();
    const [p1, p2] = [await net.publicHost("relay1"), await net.publicHost("relay2")];
    const relays: NodeProcess[] = [];
    for (const p of [p1, p2]) {
      relays.push(
        await p.spawnNode({
          listen: ["0.0.0.0:0"],
          options: { puzzleDifficulty: 0, relay: { serve: true }, holePunch: false },
        }),
      );
    }
    const [alice, bob] = await behindTwoNats(net, {
      listen: ["0.0.0.0:0"],
      bootstrap: relays.flatMap((r) => r.peerAddresses),
      options: {
        puzzleDifficulty: 0,
        nat: { retryInterval: 600_000 },
        holePunch: false,
        relay: { maxRelays: 1 },
      },
    });
    await bob.waitFor((e) => e.event === "relays" && e.relays.length === 1, 30_000);
    const first = (await bob.request("addresses")).relays[0].address as string;
    const [crashed, other] = relays[0].address === first ? relays : [relays[1], relays[0]];
    const since = bob.events.length;
    await crashed.crash();
    const started = performance.now();
    await bob.waitFor(
      (e) => e.event === "relays" && e.relays.length === 1 && e.relays[0] === other.address,
      30_000,
      { since },
    );
    console.log(
      `re-reserved at the other relay ${
        Math.round(performance.now() - started)
      } ms after the crash`,
    );
    const peer = await alice.request("connect", { peer: bob.address });
    assert.equal(peer.relay, other.address, "alice reaches bob through the relay left");
    assert.ok((await alice.request("ping", { address: bob.address })).rttMs >= 0);
    assert.equal(
      (await alice.request("echo", { address: bob.address, text: "after the crash" })).text,
      "echo after the crash",
    );
  },
});
