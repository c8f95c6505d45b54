import assert from "node:assert/strict";
import { TimeoutError } from "../../lib/errors.ts";
import { DoubleNatError, PortMappingError } from "../../lib/nat/errors.ts";
import { PcpClient, type PcpClientOptions } from "../../lib/nat/pcp.ts";
import { clientOfFake, freeUdpPort, pcpAnnounce, viewOf } from "./_fake_pmp.ts";

const setup = (options: Partial<PcpClientOptions> = {}) =>
  clientOfFake((base) => new PcpClient({ ...base, ...options }));

const nonceOf = (bytes: Uint8Array) => [...bytes.subarray(24, 36)].join(",");

Deno.test("PcpClient.map sends a 60-byte MAP and returns the assigned port, lifetime, address", async () => {
  await using t = await setup();
  t.fake.externalAddress = "80.100.100.7";
  t.fake.grant = () => ({ externalPort: 6001, lifetime: 1800 });
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 7200 });
  assert.deepEqual(mapping, {
    protocol: "pcp",
    transport: "tcp",
    gateway: "127.0.0.1",
    internalPort: 4000,
    externalAddress: "80.100.100.7",
    externalPort: 6001,
    lifetime: 1800,
  });
  assert.equal(t.fake.requests.length, 1);
  const request = t.fake.requests[0].bytes;
  const view = viewOf(request);
  assert.equal(request.length, 60);
  assert.deepEqual([request[0], request[1], view.getUint16(2)], [2, 1, 0]); // version, MAP
  assert.equal(view.getUint32(4), 7200); // seconds, not ms
  assert.deepEqual([...request.subarray(8, 24)], [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    127,
    0,
    0,
    1,
  ]);
  assert.ok(request.subarray(24, 36).some((b) => b !== 0), "a random nonce");
  assert.deepEqual([request[36], ...request.subarray(37, 40)], [6, 0, 0, 0]); // TCP
  assert.deepEqual([view.getUint16(40), view.getUint16(42)], [4000, 4000]);
  assert.deepEqual([...request.subarray(44, 60)], [
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    0,
    0,
    0,
    0,
  ]);
  await t.client.map({ transport: "udp", internalPort: 4000, externalPort: 0, lifetime: 60 });
  assert.deepEqual([t.fake.requests[1].bytes[36], viewOf(t.fake.requests[1].bytes).getUint16(42)], [
    17,
    0,
  ]);
});

Deno.test("PcpClient renews and deletes a mapping with the same nonce", async () => {
  await using t = await setup();
  const mapping = await t.client.map({ transport: "udp", internalPort: 4000, lifetime: 600 });
  await t.client.map({ transport: "udp", internalPort: 4000, externalPort: 4000, lifetime: 600 });
  const other = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 600 });
  await t.client.unmap(mapping);
  const [first, renew, tcp, unmap] = t.fake.requests.map((r) => r.bytes);
  assert.equal(nonceOf(renew), nonceOf(first));
  assert.equal(nonceOf(unmap), nonceOf(first));
  assert.notEqual(nonceOf(tcp), nonceOf(first)); // another mapping, another nonce
  assert.equal(viewOf(unmap).getUint32(4), 0);
  assert.equal(unmap[36], 17);
  await t.client.map({ transport: "udp", internalPort: 4000, lifetime: 600 });
  assert.notEqual(nonceOf(t.fake.requests[4].bytes), nonceOf(first)); // deleted: a new nonce
  await t.client.unmap(other);
  assert.equal(nonceOf(t.fake.requests[5].bytes), nonceOf(tcp));
});

Deno.test("PcpClient result codes reject with a PortMappingError naming the code", async () => {
  await using t = await setup();
  for (
    const [code, name] of [[2, "NOT_AUTHORIZED"], [8, "NO_RESOURCES"], [
      12,
      "ADDRESS_MISMATCH",
    ]] as const
  ) {
    t.fake.pcpResult = code;
    await assert.rejects(
      t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 }),
      (error) => {
        assert.ok(error instanceof PortMappingError);
        assert.deepEqual([error.protocol, error.code], ["pcp", code]);
        assert.match(
          error.message,
          new RegExp(`PCP TCP MAP request for port 4000: .* ${name} \\(${code}\\)`),
        );
        return true;
      },
    );
  }
});

Deno.test("PcpClient ignores answers with another nonce, protocol or port", async () => {
  await using t = await setup();
  t.fake.grant = () => ({ externalPort: 5555, lifetime: 60 });
  t.fake.before = (request) => {
    const decoy = (patch: (bytes: Uint8Array) => void) => {
      const bytes = new Uint8Array(60);
      bytes.set([2, 0x81]);
      bytes.set(request.subarray(24, 44), 24);
      viewOf(bytes).setUint16(42, 6666);
      bytes.set([255, 255, 80, 100, 100, 1], 54);
      patch(bytes);
      return { bytes };
    };
    return [
      decoy((b) => b[24] ^= 1), // nonce
      decoy((b) => b[36] = 17), // protocol
      decoy((b) => viewOf(b).setUint16(40, 4001)), // internal port
      decoy((b) => b[0] = 1), // version
      { bytes: decoy(() => {}).bytes.subarray(0, 56) }, // short
    ];
  };
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  assert.equal(mapping.externalPort, 5555);
});

Deno.test("PcpClient falls back to NAT-PMP on UNSUPP_VERSION and says so", async () => {
  await using t = await setup();
  t.fake.pcp = false;
  t.fake.grant = () => ({ externalPort: 7007, lifetime: 3600 });
  assert.equal(t.client.protocol, "pcp");
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 3600 });
  assert.equal(t.client.protocol, "natpmp");
  assert.deepEqual(
    [mapping.protocol, mapping.externalAddress, mapping.externalPort, mapping.lifetime],
    ["natpmp", "80.100.100.1", 7007, 3600],
  );
  // a PCP MAP, then NAT-PMP's external address and TCP mapping requests
  assert.deepEqual(t.fake.requests.map((r) => [r.bytes[0], r.bytes[1], r.bytes.length]), [
    [2, 1, 60],
    [0, 0, 2],
    [0, 2, 12],
  ]);
  await t.client.unmap(mapping);
  assert.deepEqual([...t.fake.requests[3].bytes.subarray(0, 2)], [0, 2]);
  assert.equal(viewOf(t.fake.requests[3].bytes).getUint32(8), 0);
  assert.equal(await t.client.externalAddress(), "80.100.100.1");
});

Deno.test("PcpClient without fallback rejects UNSUPP_VERSION with code 1", async () => {
  await using t = await setup({ fallback: false });
  t.fake.pcp = false;
  await assert.rejects(
    t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 }),
    (error) =>
      error instanceof PortMappingError && error.code === 1 &&
      /UNSUPP_VERSION \(1\) with version 0/.test(error.message),
  );
  assert.equal(t.client.protocol, "pcp");
});

Deno.test("PcpClient.externalAddress maps a high UDP port for a moment and deletes it", async () => {
  await using t = await setup();
  t.fake.externalAddress = "80.100.100.3";
  assert.equal(await t.client.externalAddress(), "80.100.100.3");
  const [probe, remove] = t.fake.requests.map((r) => r.bytes);
  const port = viewOf(probe).getUint16(40);
  assert.ok(port >= 49_152, `probe port ${port} is in the dynamic range`);
  assert.deepEqual([probe[36], viewOf(probe).getUint32(4)], [17, 120]);
  assert.deepEqual([remove[36], viewOf(remove).getUint16(40), viewOf(remove).getUint32(4)], [
    17,
    port,
    0,
  ]);
  assert.equal(nonceOf(remove), nonceOf(probe));
});

Deno.test("PcpClient.externalAddress falls back to the latest mapping's address when refused", async () => {
  await using t = await setup();
  t.fake.before = (request) => {
    t.fake.pcpResult = request[36] === 17 ? 2 : 0; // this gateway maps TCP only
    return [];
  };
  await assert.rejects(t.client.externalAddress(), /NOT_AUTHORIZED \(2\)/);
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  assert.equal(await t.client.externalAddress(), "80.100.100.1");
});

Deno.test("PcpClient deletes a mapping with a private address and rejects with DoubleNatError", async () => {
  await using t = await setup();
  t.fake.externalAddress = "10.0.0.2";
  await assert.rejects(
    t.client.map({ transport: "udp", internalPort: 4000, lifetime: 60 }),
    (error) =>
      error instanceof DoubleNatError && /private external address 10\.0\.0\.2/.test(error.message),
  );
  const [map, unmap] = t.fake.requests.map((r) => r.bytes);
  assert.equal(viewOf(unmap).getUint32(4), 0);
  assert.equal(nonceOf(unmap), nonceOf(map));
});

Deno.test("PcpClient calls onReset when the epoch goes back or an ANNOUNCE says so", async () => {
  const announcePort = await freeUdpPort();
  await using t = await setup({ announcements: true, announcePort });
  const resets: string[] = [];
  let announced = Promise.withResolvers<void>();
  t.client.onReset = (reason) => {
    resets.push(reason);
    announced.resolve();
  };
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  t.clock.advance(100_000);
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  await Promise.resolve();
  assert.deepEqual(resets, []);
  t.fake.restart();
  t.clock.advance(3_000);
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  await announced.promise;
  assert.match(
    resets[0],
    /PCP gateway 127\.0\.0\.1 lost its mappings: epoch went from 1100 s to 3 s/,
  );
  // an ANNOUNCE from a gateway that restarted again
  announced = Promise.withResolvers<void>();
  t.clock.advance(50_000);
  t.fake.restart();
  await t.fake.sendTo(pcpAnnounce(t.fake.epoch), announcePort);
  await announced.promise;
  assert.match(resets[1], /epoch went from 3 s to 0 s in 50\.0 s/);
});

Deno.test("PcpClient retransmits on the configured schedule and times out", async () => {
  await using t = await setup({ initialTimeout: 100, tries: 4, maxTimeout: 300 });
  t.fake.drop = Infinity;
  const mapping = t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  for (const [n, wait] of [[1, 100], [2, 200], [3, 300], [4, 300]]) {
    await t.fake.received(n);
    t.clock.advance(wait);
  }
  await assert.rejects(
    mapping,
    (error) => error instanceof TimeoutError && /after 4 tries over 900 ms/.test(error.message),
  );
  assert.deepEqual(t.fake.requests.map((r) => r.at - 10_000), [0, 100, 300, 600]);
  const nonces = new Set(t.fake.requests.map((r) => nonceOf(r.bytes)));
  assert.equal(nonces.size, 1); // a retransmission is the same request
});
