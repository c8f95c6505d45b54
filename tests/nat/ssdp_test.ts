import assert from "node:assert/strict";
import dgram from "node:dgram";
import { ArgumentError } from "../../lib/errors.ts";
import { IGD_SEARCH_TARGETS, ssdpSearch, type SsdpSearchOptions } from "../../lib/nat/ssdp.ts";
import { FakeIgd } from "./_fake_igd.ts";

function at(fake: FakeIgd, extra: SsdpSearchOptions = {}): SsdpSearchOptions {
  return { address: "127.0.0.1", port: fake.ssdpPort, linger: 20, timeout: 2000, ...extra };
}

Deno.test("ssdpSearch sends one M-SEARCH per target and parses the answers", async () => {
  await using fake = await FakeIgd.start({ version: 2 });
  const { responses, ignored } = await ssdpSearch(at(fake));
  assert.equal(fake.searches.length, 2);
  const searched = [];
  for (const search of fake.searches) {
    const lines = search.split("\r\n");
    assert.deepEqual(lines.slice(0, 3), [
      "M-SEARCH * HTTP/1.1",
      `HOST: 127.0.0.1:${fake.ssdpPort}`,
      'MAN: "ssdp:discover"',
    ]);
    searched.push(lines.find((line) => line.startsWith("ST: ")));
    assert.ok(!lines.some((line) => line.startsWith("MX:")), "no MX on a unicast search");
    assert.ok(search.endsWith("\r\n\r\n"));
  }
  assert.deepEqual(searched.sort(), IGD_SEARCH_TARGETS.map((st) => `ST: ${st}`).sort());
  assert.equal(ignored, 0);
  assert.deepEqual(
    responses.map((r) => r.st).sort(),
    [...IGD_SEARCH_TARGETS].sort(),
  );
  for (const response of responses) {
    assert.equal(response.address, "127.0.0.1");
    assert.equal(response.location, fake.location);
    assert.equal(response.usn, `uuid:00000000-fake-igd::${response.st}`);
    assert.equal(response.server, "Deno/2 UPnP/1.1 FakeIGD/1");
  }
});

Deno.test("ssdpSearch shares one search between concurrent callers", async () => {
  await using fake = await FakeIgd.start({ version: 1 });
  const [a, b] = await Promise.all([ssdpSearch(at(fake)), ssdpSearch(at(fake))]);
  assert.equal(fake.searches.length, 2, "one M-SEARCH per target, not per caller");
  assert.deepEqual(a, b);
  assert.equal(a.responses.length, 1);
  assert.notEqual(a.responses, b.responses, "each caller gets its own array");
  await ssdpSearch(at(fake)); // the next call, after the first has ended, searches again
  assert.equal(fake.searches.length, 4);
});

Deno.test("ssdpSearch refuses a LOCATION on another host than the responder", async () => {
  await using fake = await FakeIgd.start({ version: 1, locationHost: "10.9.9.9" });
  const { responses, ignored, reasons } = await ssdpSearch(at(fake, { timeout: 300 }));
  assert.deepEqual(responses, []);
  assert.equal(ignored, 1);
  assert.match(reasons[0], /LOCATION host 10\.9\.9\.9 is not the responder 127\.0\.0\.1/);
});

Deno.test("ssdpSearch ignores oversized, malformed and unsearched answers", async () => {
  const encode = (text: string) => new TextEncoder().encode(text);
  const ssdpExtra = [
    new Uint8Array(3000).fill(0x41),
    encode("HTTP/1.1 404 Not Found\r\n\r\n"),
    encode(
      "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\nLOCATION: http://127.0.0.1:1/\r\n\r\n",
    ),
    encode("HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"),
    encode(
      "HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: file:///etc/passwd\r\n\r\n",
    ),
  ];
  await using fake = await FakeIgd.start({ version: 1, ssdpExtra });
  const { responses, ignored, reasons } = await ssdpSearch(
    at(fake, { searchTargets: [IGD_SEARCH_TARGETS[1]] }),
  );
  assert.equal(responses.length, 1);
  assert.equal(responses[0].location, fake.location);
  assert.equal(ignored, 5);
  assert.match(reasons[0], /datagram of 3000 bytes .* exceeds maxDatagramSize 2048/);
  assert.match(reasons[1], /not an SSDP answer/);
  assert.match(reasons[2], /MediaServer:1", not searched/);
  assert.match(reasons[3], /without LOCATION/);
  assert.match(reasons[4], /is not http:/);
});

Deno.test("ssdpSearch stops at maxResponses", async () => {
  await using fake = await FakeIgd.start({ version: 2 }); // answers both targets
  const { responses } = await ssdpSearch(at(fake, { maxResponses: 1, linger: 60_000 }));
  assert.equal(responses.length, 1);
});

Deno.test("ssdpSearch resolves empty when nothing answers", async () => {
  const silent = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => silent.bind({ address: "127.0.0.1", port: 0 }, resolve));
  let received = 0;
  silent.on("message", () => received++);
  try {
    const port = (silent.address() as { port: number }).port;
    const options = { address: "127.0.0.1", port, timeout: 100, retransmitInterval: 1000 };
    const result = await ssdpSearch(options);
    assert.deepEqual(result, { responses: [], ignored: 0, reasons: [] });
    assert.equal(received, 2, "both targets searched once");
  } finally {
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

Deno.test("ssdpSearch: a caller's abort leaves the shared search to the others", async () => {
  await using fake = await FakeIgd.start({ version: 1 });
  const controller = new AbortController();
  const reason = new Error("caller gave up");
  const leaving = ssdpSearch(at(fake, { signal: controller.signal }));
  const staying = ssdpSearch(at(fake));
  controller.abort(reason);
  await assert.rejects(leaving, (error) => error === reason);
  assert.equal((await staying).responses.length, 1);
  await assert.rejects(ssdpSearch(at(fake, { signal: controller.signal })), (e) => e === reason);
});

Deno.test("ssdpSearch refuses bad options with ArgumentError", async () => {
  const cases: SsdpSearchOptions[] = [
    { searchTargets: ["ssdp:all\r\nX-Injected: 1"] },
    { searchTargets: [] },
    { address: "gateway.local" },
    { localAddress: "::1" },
    { mx: 0 },
    { timeout: -1 },
    { maxDatagramSize: 10 },
  ];
  for (const options of cases) {
    await assert.rejects(ssdpSearch(options), ArgumentError, JSON.stringify(options));
  }
});
