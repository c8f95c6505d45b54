import assert from "node:assert/strict";
import { ArgumentError, SizeLimitError, TimeoutError } from "../../lib/errors.ts";
import { DoubleNatError, PortMappingError } from "../../lib/nat/errors.ts";
import type { MappingRequest } from "../../lib/nat/types.ts";
import { UpnpClient, type UpnpClientOptions } from "../../lib/nat/upnp.ts";
import { FakeIgd, type FakeIgdOptions } from "./_fake_igd.ts";

const TCP_4000: MappingRequest = { transport: "tcp", internalPort: 4000, lifetime: 7200 };

/** A fake gateway and a client discovered on it with SSDP. */
async function setup(
  options: FakeIgdOptions = {},
  client: Omit<UpnpClientOptions, "location"> = {},
): Promise<{ fake: FakeIgd; client: UpnpClient } & AsyncDisposable> {
  const fake = await FakeIgd.start(options);
  try {
    const ssdp = { address: "127.0.0.1", port: fake.ssdpPort, linger: 20, timeout: 2000 };
    const upnp = await UpnpClient.discover({ ssdp, ...client });
    return {
      fake,
      client: upnp,
      async [Symbol.asyncDispose]() {
        upnp.close();
        await fake.close();
      },
    };
  } catch (error) {
    await fake.close();
    throw error;
  }
}

function adds(fake: FakeIgd) {
  return fake.calls.filter((c) => c.action.startsWith("Add"));
}

Deno.test("UpnpClient maps on an IGD v2 with AddAnyPortMapping and keeps the port granted", async () => {
  await using t = await setup({ version: 2, conflictPorts: [4000] });
  const service = await t.client.service();
  assert.equal(service.version, 2);
  assert.equal(service.controlUrl, `http://127.0.0.1:${t.fake.httpPort}/ctl/IPConn`);
  const mapping = await t.client.map({ ...TCP_4000, description: "carrier test" });
  assert.deepEqual(mapping, {
    protocol: "upnp",
    transport: "tcp",
    gateway: "127.0.0.1",
    internalPort: 4000,
    externalAddress: "80.100.100.1",
    externalPort: 50_000,
    lifetime: 7200,
  });
  const [add] = adds(t.fake);
  assert.equal(add.action, "AddAnyPortMapping");
  assert.equal(add.soapAction, "urn:schemas-upnp-org:service:WANIPConnection:2#AddAnyPortMapping");
  assert.deepEqual(add.args, {
    NewRemoteHost: "",
    NewExternalPort: "4000",
    NewProtocol: "TCP",
    NewInternalPort: "4000",
    NewInternalClient: "127.0.0.1",
    NewEnabled: "1",
    NewPortMappingDescription: "carrier test",
    NewLeaseDuration: "7200",
  });
  assert.equal(t.fake.mappings.get("TCP:50000")?.internalClient, "127.0.0.1");
});

Deno.test("UpnpClient maps on an IGD v1 with AddPortMapping and unmaps with DeletePortMapping", async () => {
  await using t = await setup({ version: 1 });
  assert.equal((await t.client.service()).version, 1);
  const request: MappingRequest = {
    transport: "udp",
    internalPort: 4000,
    externalPort: 4001,
    lifetime: 600,
  };
  const mapping = await t.client.map(request);
  assert.equal(mapping.externalPort, 4001);
  assert.equal(mapping.lifetime, 600);
  const [add] = adds(t.fake);
  assert.equal(add.soapAction, "urn:schemas-upnp-org:service:WANIPConnection:1#AddPortMapping");
  assert.equal(add.args.NewProtocol, "UDP");
  assert.equal(add.args.NewExternalPort, "4001");
  assert.equal(add.args.NewInternalPort, "4000");
  assert.equal(add.args.NewLeaseDuration, "600");
  assert.deepEqual([...t.fake.mappings.keys()], ["UDP:4001"]);

  await t.client.unmap(mapping);
  const last = t.fake.calls.at(-1)!;
  assert.equal(last.action, "DeletePortMapping");
  assert.deepEqual(last.args, { NewRemoteHost: "", NewExternalPort: "4001", NewProtocol: "UDP" });
  assert.equal(t.fake.mappings.size, 0);
  await t.client.unmap(mapping); // 714 NoSuchEntryInArray: already gone, not an error
});

Deno.test("UpnpClient uses WANPPPConnection:1 when it is the only WAN connection service", async () => {
  await using t = await setup({ ppp: true });
  const service = await t.client.service();
  assert.equal(service.serviceType, "urn:schemas-upnp-org:service:WANPPPConnection:1");
  const mapping = await t.client.map(TCP_4000);
  assert.equal(mapping.externalPort, 4000);
  assert.ok(t.fake.calls.every((c) => c.soapAction.startsWith(service.serviceType + "#")));
  assert.ok(t.fake.calls.every((c) => !c.body.includes("WANIPConnection")));
});

Deno.test("UpnpClient picks the WAN connection service that reports an address (a DSL router)", async () => {
  await using t = await setup({ dslRouter: true });
  const service = await t.client.service();
  assert.equal(service.serviceType, "urn:schemas-upnp-org:service:WANPPPConnection:1");
  assert.equal(service.controlUrl, `http://127.0.0.1:${t.fake.httpPort}/ctl/PPPConn`);
  const mapping = await t.client.map(TCP_4000);
  assert.equal(mapping.externalAddress, "80.100.100.1");
  assert.deepEqual(t.fake.calls.map((c) => `${c.path} ${c.action}`), [
    "/ctl/IPConn GetExternalIPAddress", // preferred, but fails (501): not the connected one
    "/ctl/PPPConn GetExternalIPAddress",
    "/ctl/PPPConn GetExternalIPAddress",
    "/ctl/PPPConn AddPortMapping",
  ]);
});

Deno.test("UpnpClient retries with lease 0 after fault 725 and asks for 0 from then on", async () => {
  await using t = await setup({ version: 1, permanentOnly: true });
  const mapping = await t.client.map(TCP_4000);
  assert.equal(mapping.lifetime, 0);
  assert.deepEqual(adds(t.fake).map((c) => [c.args.NewExternalPort, c.args.NewLeaseDuration]), [
    ["4000", "7200"],
    ["4000", "0"],
  ]);
  assert.equal(t.fake.mappings.get("TCP:4000")?.lease, 0);
  const renewed = await t.client.map({ ...TCP_4000, externalPort: mapping.externalPort });
  assert.equal(renewed.lifetime, 0);
  assert.equal(adds(t.fake).length, 3, "the renewal asked for lease 0 at once");
  assert.equal(adds(t.fake)[2].args.NewLeaseDuration, "0");
});

Deno.test("UpnpClient tries another external port after fault 718", async () => {
  await using t = await setup({ version: 1, conflictPorts: [4000] });
  const mapping = await t.client.map(TCP_4000);
  const ports = adds(t.fake).map((c) => Number(c.args.NewExternalPort));
  assert.equal(ports.length, 2);
  assert.equal(ports[0], 4000);
  assert.notEqual(ports[1], 4000);
  assert.ok(ports[1] >= 1024 && ports[1] <= 65_535);
  assert.equal(mapping.externalPort, ports[1]);
  assert.equal(t.fake.mappings.get(`TCP:${ports[1]}`)?.internalPort, 4000);
});

Deno.test("UpnpClient gives up after maxPortAttempts conflicts, naming fault 718", async () => {
  await using t = await setup({ version: 1, conflictAll: true }, { maxPortAttempts: 3 });
  await assert.rejects(t.client.map(TCP_4000), (error) => {
    assert.ok(error instanceof PortMappingError);
    assert.equal(error.protocol, "upnp");
    assert.equal(error.code, 718);
    assert.match(error.message, /AddPortMapping refused: 718 ConflictInMappingEntry/);
    assert.match(error.message, /on external ports 4000, \d+, \d+ \(maxPortAttempts 3\)/);
    return true;
  });
  assert.equal(adds(t.fake).length, 3);
  assert.equal(new Set(adds(t.fake).map((c) => c.args.NewExternalPort)).size, 3);
});

Deno.test("UpnpClient refuses a private or CGNAT external address with DoubleNatError", async () => {
  for (const externalAddress of ["192.168.1.1", "100.64.0.7", "10.0.0.138"]) {
    await using t = await setup({ version: 2, externalAddress });
    assert.equal(await t.client.externalAddress(), externalAddress); // reported, not refused
    await assert.rejects(t.client.map(TCP_4000), (error) => {
      assert.ok(error instanceof DoubleNatError);
      assert.equal(error.protocol, "upnp");
      assert.ok(error.message.includes(`private external address ${externalAddress}`));
      assert.match(error.message, /another NAT lies beyond it/);
      return true;
    });
    assert.deepEqual(adds(t.fake), [], "no mapping asked for");
  }
});

Deno.test("UpnpClient refuses a gateway that reports no external address", async () => {
  await using t = await setup({ version: 1, externalAddress: "" });
  await assert.rejects(t.client.map(TCP_4000), PortMappingError);
  await using u = await setup({ version: 1, externalAddress: "0.0.0.0" });
  await assert.rejects(
    u.client.map(TCP_4000),
    /no usable external address \(0\.0\.0\.0, unspecified\)/,
  );
  assert.deepEqual([...adds(t.fake), ...adds(u.fake)], []);
});

Deno.test("UpnpClient.discover refuses a gateway whose LOCATION names another host", async () => {
  await using fake = await FakeIgd.start({ version: 1, locationHost: "10.9.9.9" });
  const ssdp = { address: "127.0.0.1", port: fake.ssdpPort, linger: 20, timeout: 300 };
  await assert.rejects(UpnpClient.discover({ ssdp }), (error) => {
    assert.ok(error instanceof PortMappingError);
    assert.match(error.message, /No UPnP gateway answered/);
    assert.match(error.message, /LOCATION host 10\.9\.9\.9 is not the responder 127\.0\.0\.1/);
    return true;
  });
  assert.deepEqual(fake.requests, [], "nothing fetched");
});

Deno.test("UpnpClient refuses an oversized device description", async () => {
  await using fake = await FakeIgd.start({ version: 2, descriptionSize: 200_000 });
  const client = new UpnpClient({ location: fake.location, maxResponseSize: 16_384 });
  await assert.rejects(client.map(TCP_4000), (error) => {
    assert.ok(error instanceof PortMappingError);
    assert.match(error.message, /exceeds maxResponseSize 16384 bytes/);
    assert.ok(error.cause instanceof SizeLimitError);
    assert.equal(error.cause.limit, "maxResponseSize");
    return true;
  });
  assert.deepEqual(fake.calls, []);
  client.close();
});

Deno.test("UpnpClient renews with the granted port and gets it again", async () => {
  await using t = await setup({ version: 2, conflictPorts: [4000] });
  const first = await t.client.map(TCP_4000);
  assert.equal(first.externalPort, 50_000);
  const renewed = await t.client.map({ ...TCP_4000, externalPort: first.externalPort });
  assert.deepEqual(renewed, first);
  assert.deepEqual(adds(t.fake).map((c) => c.args.NewExternalPort), ["4000", "50000"]);
  assert.equal(t.fake.mappings.size, 1);
});

Deno.test("UpnpClient resolves a relative controlURL against URLBase and skips commented-out services", async () => {
  await using t = await setup({ version: 1, urlBase: true });
  assert.equal(
    (await t.client.service()).controlUrl,
    `http://127.0.0.1:${t.fake.httpPort}/base/ctl/IPConn`,
  );
  await t.client.map(TCP_4000);
  assert.ok(t.fake.calls.every((c) => c.path === "/base/ctl/IPConn"));
  assert.ok(!t.fake.requests.some((r) => r.includes("decoy")));
});

Deno.test("UpnpClient refuses a controlURL on another host than the description's", async () => {
  await using fake = await FakeIgd.start({ version: 1, controlUrlHost: "10.9.9.9" });
  const client = new UpnpClient({ location: fake.location });
  await assert.rejects(
    client.externalAddress(),
    /controlURL http:\/\/10\.9\.9\.9:\d+\/ctl\/IPConn is not on 127\.0\.0\.1/,
  );
  assert.deepEqual(fake.calls, []);
  client.close();
});

Deno.test("UpnpClient escapes what it puts in SOAP bodies", async () => {
  await using t = await setup({ version: 1 });
  const description = `a<b> & "c" 'd' </NewPortMappingDescription><x>`;
  await t.client.map({ ...TCP_4000, description });
  const [add] = adds(t.fake);
  assert.equal(add.args.NewPortMappingDescription, description);
  assert.ok(
    add.body.includes(
      "a&lt;b&gt; &amp; &quot;c&quot; &apos;d&apos; &lt;/NewPortMappingDescription&gt;",
    ),
  );
  assert.equal(t.fake.mappings.get("TCP:4000")?.description, description);
});

Deno.test("UpnpClient reads chunked answers", async () => {
  await using t = await setup({ version: 2, chunked: true });
  const mapping = await t.client.map(TCP_4000);
  assert.equal(mapping.externalPort, 4000);
  assert.equal(mapping.externalAddress, "80.100.100.1");
});

Deno.test("UpnpClient falls back to AddPortMapping when a v2 gateway lacks AddAnyPortMapping", async () => {
  await using t = await setup({ version: 2, noAddAny: true });
  await t.client.map(TCP_4000);
  await t.client.map(TCP_4000);
  assert.deepEqual(adds(t.fake).map((c) => c.action), [
    "AddAnyPortMapping",
    "AddPortMapping",
    "AddPortMapping",
  ]);
});

Deno.test("UpnpClient times out a gateway that does not answer", async () => {
  await using fake = await FakeIgd.start({ version: 1, hang: true });
  const client = new UpnpClient({ location: fake.location, requestTimeout: 200 });
  await assert.rejects(client.externalAddress(), (error) => {
    assert.ok(error instanceof TimeoutError);
    assert.match(error.message, /GetExternalIPAddress|POST http:\/\/127\.0\.0\.1:\d+\/ctl\/IPConn/);
    assert.match(error.message, /no answer within requestTimeout 200 ms/);
    return true;
  });
  client.close();
});

Deno.test("UpnpClient.close rejects what is in flight, and every later call", async () => {
  await using fake = await FakeIgd.start({ version: 1, hang: true });
  const client = new UpnpClient({ location: fake.location });
  const mapping = client.map(TCP_4000);
  await fake.requested;
  while (fake.calls.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  client.close();
  await assert.rejects(
    mapping,
    (error) => error instanceof DOMException && error.name === "AbortError",
  );
  await assert.rejects(client.externalAddress(), { name: "AbortError" });
});

Deno.test("UpnpClient.map takes the caller's signal", async () => {
  await using t = await setup({ version: 1 });
  const reason = new Error("stop");
  await assert.rejects(
    t.client.map({ ...TCP_4000, signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  assert.deepEqual(adds(t.fake), []);
});

Deno.test("UpnpClient refuses bad arguments with ArgumentError", async () => {
  assert.throws(() => new UpnpClient({ location: "https://10.0.0.1/desc.xml" }), ArgumentError);
  assert.throws(() => new UpnpClient({ location: "not a url" }), ArgumentError);
  const client = new UpnpClient({ location: "http://127.0.0.1:9/rootDesc.xml" });
  for (
    const request of [
      { ...TCP_4000, lifetime: 0 },
      { ...TCP_4000, internalPort: 70_000 },
      { ...TCP_4000, externalPort: 0 },
      { ...TCP_4000, transport: "sctp" as "tcp" },
    ]
  ) {
    await assert.rejects(client.map(request), ArgumentError);
  }
  client.close();
});
