import assert from "node:assert/strict";
import dgram from "node:dgram";
import { ArgumentError, TimeoutError } from "../../lib/errors.ts";
import { DoubleNatError, PortMappingError } from "../../lib/nat/errors.ts";
import { NatPmpClient, type NatPmpClientOptions } from "../../lib/nat/natpmp.ts";
import { clientOfFake, freeUdpPort, natPmpAddress, natPmpHeader, viewOf } from "./_fake_pmp.ts";

const setup = (options: Partial<NatPmpClientOptions> = {}) =>
  clientOfFake((base) => new NatPmpClient({ ...base, ...options }));

Deno.test("NatPmpClient.externalAddress sends opcode 0 and reads the address", async () => {
  await using t = await setup();
  assert.equal(await t.client.externalAddress(), "80.100.100.1");
  assert.deepEqual(t.fake.requests.map((r) => [...r.bytes]), [[0, 0]]);
});

Deno.test("NatPmpClient.map sends lifetime in seconds and returns what was granted", async () => {
  await using t = await setup();
  t.fake.grant = () => ({ externalPort: 40_001, lifetime: 1800 });
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 7200 });
  assert.deepEqual(mapping, {
    protocol: "natpmp",
    transport: "tcp",
    gateway: "127.0.0.1",
    internalPort: 4000,
    externalAddress: "80.100.100.1",
    externalPort: 40_001,
    lifetime: 1800,
  });
  const request = t.fake.requests[1].bytes;
  assert.equal(request.length, 12);
  const view = viewOf(request);
  assert.deepEqual(
    [request[0], request[1], view.getUint16(2), view.getUint16(4), view.getUint16(6)],
    [0, 2, 0, 4000, 4000],
  );
  assert.equal(view.getUint32(8), 7200); // seconds, not ms
  // UDP is opcode 1, and the external address is asked once
  await t.client.map({ transport: "udp", internalPort: 5000, externalPort: 5001, lifetime: 60 });
  assert.equal(t.fake.requests.length, 3);
  assert.deepEqual([t.fake.requests[2].bytes[1], viewOf(t.fake.requests[2].bytes).getUint16(6)], [
    1,
    5001,
  ]);
});

Deno.test("NatPmpClient renews with the granted port and unmaps with lifetime 0, port 0", async () => {
  await using t = await setup();
  t.fake.grant = (ask) => ({
    externalPort: ask.lifetime === 0 ? 0 : ask.externalPort === 4000 ? 4100 : ask.externalPort,
    lifetime: ask.lifetime,
  });
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 3600 });
  assert.equal(mapping.externalPort, 4100);
  const renewed = await t.client.map({
    transport: "tcp",
    internalPort: 4000,
    externalPort: mapping.externalPort,
    lifetime: 3600,
  });
  assert.equal(renewed.externalPort, 4100);
  assert.equal(viewOf(t.fake.requests[2].bytes).getUint16(6), 4100);
  await t.client.unmap(renewed);
  const unmap = viewOf(t.fake.requests[3].bytes);
  assert.deepEqual(
    [unmap.getUint8(1), unmap.getUint16(4), unmap.getUint16(6), unmap.getUint32(8)],
    [
      2,
      4000,
      0,
      0,
    ],
  );
});

Deno.test("NatPmpClient retransmits after 250, 500 and 1000 ms", async () => {
  await using t = await setup();
  t.fake.drop = 3;
  const address = t.client.externalAddress();
  for (const [n, wait] of [[1, 250], [2, 500], [3, 1000]]) {
    await t.fake.received(n);
    t.clock.advance(wait - 1);
    assert.equal(t.fake.requests.length, n); // not yet
    t.clock.advance(1);
  }
  assert.equal(await address, "80.100.100.1");
  assert.deepEqual(t.fake.requests.map((r) => r.at - 10_000), [0, 250, 750, 1750]);
});

Deno.test("NatPmpClient gives up with a TimeoutError after 9 tries", async () => {
  await using t = await setup();
  t.fake.drop = Infinity;
  const address = t.client.externalAddress();
  let total = 0;
  for (let n = 1; n <= 9; n++) {
    await t.fake.received(n);
    const wait = 250 * 2 ** (n - 1);
    total += wait;
    t.clock.advance(wait);
  }
  await assert.rejects(address, (error) => {
    assert.ok(error instanceof TimeoutError);
    assert.match(error.message, /after 9 tries over 127750 ms/);
    return true;
  });
  assert.equal(total, 127_750);
  assert.equal(t.fake.requests.length, 9);
});

Deno.test("NatPmpClient result codes reject with a PortMappingError naming the code", async () => {
  await using t = await setup();
  await t.client.externalAddress();
  const names = ["UNSUPP_VERSION", "NOT_AUTHORIZED", "NETWORK_FAILURE", "OUT_OF_RESOURCES"];
  for (const [i, name] of names.entries()) {
    t.fake.natPmpResult = i + 1;
    await assert.rejects(
      t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 }),
      (error) => {
        assert.ok(error instanceof PortMappingError && !(error instanceof DoubleNatError));
        assert.equal(error.protocol, "natpmp");
        assert.equal(error.code, i + 1);
        assert.match(error.message, new RegExp(`answered ${name} \\(${i + 1}\\)`));
        assert.match(error.message, /TCP mapping request for port 4000/);
        return true;
      },
    );
  }
  // The fake answers an unknown opcode with UNSUPP_OPCODE: the client never sends one, so
  // check the reader with a decoy instead.
  t.fake.natPmpResult = 0;
  t.fake.drop = 0;
  t.fake.before = () => [{ bytes: natPmpHeader(2, 5, t.fake.epoch) }];
  await assert.rejects(
    t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 }),
    (error) =>
      error instanceof PortMappingError && error.code === 5 &&
      /UNSUPP_OPCODE/.test(error.message),
  );
});

Deno.test("NatPmpClient ignores other sources, wrong sizes, versions, opcodes and ports", async () => {
  await using t = await setup();
  await t.client.externalAddress();
  t.fake.grant = () => ({ externalPort: 4444, lifetime: 60 });
  const forged = (internalPort: number, externalPort: number) => {
    const bytes = new Uint8Array(16);
    bytes.set(natPmpHeader(2, 0, t.fake.epoch));
    viewOf(bytes).setUint16(8, internalPort);
    viewOf(bytes).setUint16(10, externalPort);
    viewOf(bytes).setUint32(12, 60);
    return bytes;
  };
  t.fake.before = () => [
    { bytes: forged(4000, 6666), fromElsewhere: true }, // another source port
    { bytes: forged(4000, 6666).subarray(0, 12) }, // too short
    { bytes: Uint8Array.of(1, ...forged(4000, 6666).subarray(1)) }, // version 1
    { bytes: Uint8Array.of(0, 129, ...forged(4000, 6666).subarray(2)) }, // UDP's answer
    { bytes: forged(4001, 6666) }, // another internal port's
  ];
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  assert.equal(mapping.externalPort, 4444);
});

Deno.test("NatPmpClient sends one request at a time", async () => {
  await using t = await setup();
  await t.client.externalAddress();
  t.fake.hold = true;
  const a = t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  const b = t.client.map({ transport: "udp", internalPort: 4001, lifetime: 60 });
  await t.fake.received(2);
  // A round trip on another socket: had b been sent at once, it would be here by now.
  const probe = dgram.createSocket("udp4");
  await new Promise<void>((resolve) =>
    probe.send(Uint8Array.of(0, 0), t.fake.port, "127.0.0.1", () => resolve())
  );
  await t.fake.received(3);
  probe.close();
  t.fake.release();
  await Promise.all([a, b]);
  assert.deepEqual(t.fake.log.slice(2), [
    "request 2",
    "request 3", // the probe (answered after the release)
    "answer 2",
    "answer 3",
    "request 4", // b, only once a was answered
    "answer 4",
  ]);
  assert.equal(t.fake.requests[3].bytes[1], 1);
});

Deno.test("NatPmpClient calls onReset when the epoch goes back", async () => {
  await using t = await setup();
  const resets: string[] = [];
  t.client.onReset = (reason) => resets.push(reason);
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  t.clock.advance(60_000); // a minute on both clocks: no reset
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  await Promise.resolve();
  assert.deepEqual(resets, []);
  t.clock.advance(30_000);
  t.fake.restart();
  t.clock.advance(5_000); // the router is back, 5 s into its new epoch
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  await Promise.resolve();
  assert.equal(resets.length, 1);
  assert.match(resets[0], /NAT-PMP gateway 127\.0\.0\.1 restarted: epoch went from 1060 s to 5 s/);
  // the owner re-maps, and the external address is asked again first
  await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  assert.deepEqual(t.fake.requests.slice(-2).map((r) => r.bytes[1]), [0, 2]);
});

Deno.test("NatPmpClient calls onReset on an announcement of a new address", async () => {
  const announcePort = await freeUdpPort();
  await using t = await setup({ announcements: true, announcePort });
  const reset = Promise.withResolvers<string>();
  t.client.onReset = reset.resolve;
  await t.client.externalAddress();
  await t.fake.sendTo(natPmpAddress("80.100.100.1", t.fake.epoch), announcePort); // no change
  await t.fake.sendTo(natPmpAddress("80.100.100.9", t.fake.epoch), announcePort);
  assert.match(
    await reset.promise,
    /external address changed from 80\.100\.100\.1 to 80\.100\.100\.9/,
  );
  t.fake.externalAddress = "80.100.100.9";
  const mapping = await t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  assert.equal(mapping.externalAddress, "80.100.100.9");
});

Deno.test("NatPmpClient rejects a private external address with a DoubleNatError", async () => {
  await using t = await setup();
  t.fake.externalAddress = "100.64.0.7";
  await assert.rejects(
    t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 }),
    (error) => error instanceof DoubleNatError && /100\.64\.0\.7/.test(error.message),
  );
  assert.equal(t.fake.requests.length, 1); // no mapping was asked for
  t.fake.externalAddress = "0.0.0.0";
  await assert.rejects(
    t.client.externalAddress(),
    (error) => error instanceof PortMappingError && /no external address/.test(error.message),
  );
});

Deno.test("NatPmpClient aborts with the signal, and close() rejects what is pending", async () => {
  await using t = await setup();
  t.fake.drop = Infinity;
  const controller = new AbortController();
  const first = t.client.externalAddress({ signal: controller.signal });
  const queued = t.client.externalAddress();
  await t.fake.received(1);
  controller.abort(new Error("stop"));
  await assert.rejects(first, /stop/);
  await t.fake.received(2); // the queued one goes next
  t.client.close();
  await assert.rejects(
    queued,
    (error) => error instanceof DOMException && error.name === "AbortError",
  );
  await assert.rejects(t.client.externalAddress(), /NatPmpClient for 127\.0\.0\.1 is closed/);
  assert.equal(t.clock.pending, 0);
});

Deno.test("NatPmpClient refuses bad arguments, naming the value", async () => {
  await using t = await setup();
  const map = (request: object) =>
    t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60, ...request });
  await assert.rejects(map({ lifetime: 0 }), ArgumentError);
  await assert.rejects(map({ lifetime: 1.5 }), /lifetime must be an integer .* got 1\.5/);
  await assert.rejects(map({ internalPort: 70_000 }), /internalPort .* got 70000/);
  await assert.rejects(map({ transport: "sctp" }), /transport must be "tcp" or "udp", got sctp/);
  assert.throws(() => new NatPmpClient({ gateway: "router.local" }), /got router\.local/);
  assert.throws(() => new NatPmpClient({ gateway: "10.0.0.1", tries: 0 }), /tries .* got 0/);
  assert.equal(t.fake.requests.length, 0);
});

Deno.test("NatPmpClient does not take a gateway that sat on a request for a restart", async () => {
  await using t = await setup();
  const resets: string[] = [];
  t.client.onReset = (reason) => resets.push(reason);
  await t.client.externalAddress();
  t.fake.hold = true; // the answer, stamped with the epoch of its arrival, comes 100 s late
  const mapping = t.client.map({ transport: "tcp", internalPort: 4000, lifetime: 60 });
  await t.fake.received(2);
  t.clock.advance(100_000); // retransmissions go out (and are held too)
  t.fake.release();
  assert.equal((await mapping).externalPort, 4000);
  await Promise.resolve();
  assert.deepEqual(resets, []);
});
