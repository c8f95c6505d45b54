// The command line in the network lab: `carrier nat` shows what a real
// gateway offers, and `carrier run` behind it reports the address it mapped.
// Skipped, saying why, where the lab or miniupnpd is missing.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Lab, labAvailable, upnpAvailable } from "./_lab.ts";

const lab = await labAvailable();
const upnp = lab.ok ? await upnpAvailable() : lab;
if (!lab.ok) console.log(`network lab skipped: ${lab.why}`);
else if (!upnp.ok) console.log(`network lab skipped (the CLI's port mapping): ${upnp.why}`);
const ignore = !lab.ok || !upnp.ok;

const CLI = fileURLToPath(new URL("../../cli.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));
const carrier = ["run", "-A", "--no-prompt", "--config", CONFIG, CLI];

Deno.test({
  name:
    "lab cli: carrier nat reports each protocol of a miniupnpd gateway, and exit code 5 without one",
  ignore,
  async fn() {
    await using net = await Lab.create();
    const home = await net.natRouter("home", { upnp: true });
    const bare = await net.natRouter("bare");
    const [h1, h2] = [await home.lanHost("h1"), await bare.lanHost("h2")];
    const found = await h1.exec(Deno.execPath(), [...carrier, "nat", "--json"], {
      timeoutMs: 30_000,
    });
    assert.equal(found.code, 0, found.stderr);
    const report = JSON.parse(found.stdout);
    assert.equal(report.gateway, home.lanAddress);
    const by = Object.fromEntries(
      report.protocols.map((p: { protocol: string }) => [p.protocol, p]),
    );
    assert.equal(by.natpmp.externalAddress, "80.100.100.1", JSON.stringify(by.natpmp));
    assert.equal(by.pcp.externalAddress, "80.100.100.1", JSON.stringify(by.pcp));
    assert.equal(by.upnp.externalAddress, "80.100.100.1", JSON.stringify(by.upnp));
    assert.match(by.upnp.service, /WANIPConnection:2/);
    assert.deepEqual(await home.mappings(), [], "the probe leaves no mapping");
    const none = await h2.exec(Deno.execPath(), [...carrier, "nat", "--timeout", "1500"], {
      timeoutMs: 30_000,
    });
    assert.equal(none.code, 5, none.stdout + none.stderr);
    assert.match(none.stdout, /^natpmp\s+no: /m);
    assert.match(none.stdout, /^upnp\s+no: /m);
  },
});

Deno.test({
  name: "lab cli: carrier run behind a UPnP gateway prints the external address it mapped",
  ignore,
  async fn() {
    await using net = await Lab.create();
    const home = await net.natRouter("home", { upnp: true });
    const laptop = await home.lanHost("laptop");
    const node = laptop.spawn(Deno.execPath(), [
      ...carrier,
      "run",
      "--json",
      "--no-stdin",
      "--difficulty",
      "0",
      "--nat",
      "upnp",
    ]);
    const events = () =>
      node.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    await node.until(
      () => events().some((e) => e.event === "nat:mapped"),
      30_000,
      "carrier run's nat:mapped event",
    );
    const listening = events().find((e) => e.event === "listening");
    assert.match(listening.listen[0], /^0\.0\.0\.0:\d+$/);
    assert.ok(listening.announced.every((a: string) => !a.includes("@0.0.0.0:")));
    const mapped = events().find((e) => e.event === "nat:mapped");
    assert.equal(mapped.protocol, "upnp");
    assert.match(mapped.external, /^80\.100\.100\.1:\d+$/);
    const announced = events().find((e) => e.event === "addresses");
    assert.equal(announced.listen[0], mapped.external, "announced first");
    assert.equal((await home.mappings()).length, 1);
    node.kill("SIGTERM");
    await node.wait();
    assert.ok(events().some((e) => e.event === "closed"));
    assert.deepEqual(await home.mappings(), [], "SIGTERM closes the node, which unmaps");
  },
});
