import assert from "node:assert/strict";
import { CarrierError, DialError, ListenError, TransportAddressError } from "../../lib/errors.ts";
import { formatHostPort, parseHostPort, TcpTransport } from "../../lib/transport/tcp.ts";
import { acceptOne, readAll, transportConformance } from "./_conformance.ts";

/** Whether this machine can bind the IPv6 loopback address. */
function ipv6Available(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

const IPV6 = ipv6Available();
if (!IPV6) console.warn("::1 is not available: skipping the IPv6 TCP tests");

transportConformance("TcpTransport", () => new TcpTransport(), "127.0.0.1:0");
transportConformance(
  "TcpTransport over IPv6",
  () => new TcpTransport(),
  "[::1]:0",
  { ignore: !IPV6 },
);

function assertAddressError(fn: () => unknown, message: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof TransportAddressError, `got ${error}`);
    assert.ok(error instanceof CarrierError);
    assert.equal(error.name, "TransportAddressError");
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("parseHostPort reads IPv4, IPv6 and host names", () => {
  assert.deepEqual(parseHostPort("127.0.0.1:0"), {
    hostname: "127.0.0.1",
    port: 0,
  });
  assert.deepEqual(parseHostPort("[::1]:4000"), {
    hostname: "::1",
    port: 4000,
  });
  assert.deepEqual(parseHostPort("[fe80::1%eth0]:65535"), {
    hostname: "fe80::1%eth0",
    port: 65535,
  });
  assert.deepEqual(parseHostPort("localhost:80"), {
    hostname: "localhost",
    port: 80,
  });
  assert.deepEqual(parseHostPort("node-1.example.org:4001"), {
    hostname: "node-1.example.org",
    port: 4001,
  });
});

Deno.test("parseHostPort rejects malformed addresses naming input and reason", () => {
  assertAddressError(
    () => parseHostPort("127.0.0.1"),
    'Cannot parse address "127.0.0.1": missing ":port"',
  );
  assertAddressError(
    () => parseHostPort("::1:80"),
    'Cannot parse address "::1:80": an IPv6 address must be in brackets, as in "[::1]:4000"',
  );
  assertAddressError(
    () => parseHostPort("[::1]"),
    'Cannot parse address "[::1]": missing ":port" after "]"',
  );
  assertAddressError(
    () => parseHostPort("[::1:80"),
    'Cannot parse address "[::1:80": missing "]" after the IPv6 address',
  );
  assertAddressError(
    () => parseHostPort("[example.org]:80"),
    'Cannot parse address "[example.org]:80": "example.org" in brackets is not an IPv6 address',
  );
  assertAddressError(
    () => parseHostPort(":80"),
    'Cannot parse address ":80": missing host before the port',
  );
  assertAddressError(
    () => parseHostPort("ho st:80"),
    'Cannot parse address "ho st:80": host "ho st" has a character not allowed in a host name',
  );
  assertAddressError(
    () => parseHostPort("localhost:65536"),
    'Cannot parse address "localhost:65536": port "65536" is not a number from 0 to 65535',
  );
  assertAddressError(
    () => parseHostPort("localhost:"),
    'Cannot parse address "localhost:": port "" is not a number from 0 to 65535',
  );
  assertAddressError(
    () => parseHostPort("mem:alice"),
    'Cannot parse address "mem:alice": expected a tcp address (HOST:PORT)',
  );
  assertAddressError(
    () => parseHostPort(80 as unknown as string),
    "Cannot parse address: expected a string, got number",
  );
});

Deno.test("formatHostPort brackets IPv6 and round-trips through parseHostPort", () => {
  assert.equal(formatHostPort("::1", 4000), "[::1]:4000");
  assert.equal(formatHostPort("127.0.0.1", 0), "127.0.0.1:0");
  for (const address of ["[::1]:1", "10.0.0.1:65535", "localhost:80"]) {
    const { hostname, port } = parseHostPort(address);
    assert.equal(formatHostPort(hostname, port), address);
  }
  assertAddressError(
    () => formatHostPort("localhost", 70000),
    'Cannot format address of host "localhost": port 70000 is not an integer from 0 to 65535',
  );
});

Deno.test("TcpTransport dial to a closed port keeps ConnectionRefused as cause", async () => {
  const transport = new TcpTransport();
  try {
    const listener = await transport.listen("127.0.0.1:0");
    const address = listener.address;
    listener.close();
    await assert.rejects(transport.dial(address), (error: unknown) => {
      assert.ok(error instanceof DialError);
      assert.ok(error.cause instanceof Deno.errors.ConnectionRefused);
      assert.match(error.message, /^Cannot dial 127\.0\.0\.1:\d+: /);
      return true;
    });
  } finally {
    transport.close();
  }
});

Deno.test("TcpTransport listen on a port in use fails with ListenError", async () => {
  const transport = new TcpTransport();
  try {
    const listener = await transport.listen("127.0.0.1:0");
    await assert.rejects(
      transport.listen(listener.address),
      (error: unknown) => {
        assert.ok(error instanceof ListenError);
        assert.ok(error.cause instanceof Deno.errors.AddrInUse);
        assert.ok(
          error.message.startsWith(`Cannot listen on ${listener.address}: `),
        );
        return true;
      },
    );
  } finally {
    transport.close();
  }
});

Deno.test("TcpTransport dials a host name", async () => {
  await using transport = new TcpTransport();
  const listener = await transport.listen("127.0.0.1:0");
  const { port } = parseHostPort(listener.address);
  const accepted = acceptOne(listener);
  const client = await transport.dial(`localhost:${port}`);
  const server = await accepted;
  try {
    await client.write(new TextEncoder().encode("by name"));
    await client.closeWrite();
    assert.equal(new TextDecoder().decode(await readAll(server)), "by name");
  } finally {
    client.close();
    server.close();
  }
});

Deno.test("TcpTransport rejects a malformed address before any I/O", async () => {
  await using transport = new TcpTransport();
  await assert.rejects(transport.dial("127.0.0.1"), TransportAddressError);
  await assert.rejects(transport.listen("[::1]"), TransportAddressError);
});
