import assert from "node:assert/strict";
import fc from "fast-check";
import {
  ConnectionClosedError,
  DialError,
  ListenError,
  TransportAddressError,
} from "../../lib/errors.ts";
import {
  DEFAULT_MEMORY_BUFFER_SIZE,
  MemoryNetwork,
  parseMemoryAddress,
} from "../../lib/transport/memory.ts";
import type { ByteStream } from "../../lib/transport/types.ts";
import { acceptOne, readAll, readExactly, transportConformance, turns } from "./_conformance.ts";
import { ArgumentError } from "../../lib/errors.ts";

const network = new MemoryNetwork();
transportConformance("MemoryTransport", () => network.transport(), "mem:0");

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connected pair on a fresh network; `using` closes the network. */
async function pair(
  options: ConstructorParameters<typeof MemoryNetwork>[0] = {},
): Promise<
  { net: MemoryNetwork; client: ByteStream; server: ByteStream } & Disposable
> {
  const net = new MemoryNetwork(options);
  const transport = net.transport();
  const listener = await transport.listen("mem:0");
  const accepted = acceptOne(listener);
  const client = await transport.dial(listener.address);
  const server = await accepted;
  return { net, client, server, [Symbol.dispose]: () => net.close() };
}

Deno.test("MemoryNetwork listen on mem:0 assigns distinct names", async () => {
  await using net = new MemoryNetwork();
  const transport = net.transport();
  const a = await transport.listen("mem:0");
  const b = await transport.listen("mem:0");
  assert.match(a.address, /^mem:\S+$/);
  assert.notEqual(a.address, b.address);
  assert.notEqual(a.address, "mem:0");
  const named = await transport.listen("mem:alice");
  assert.equal(named.address, "mem:alice");
});

Deno.test("MemoryNetwork listen on a bound name fails until it is closed", async () => {
  await using net = new MemoryNetwork();
  const alice = net.transport();
  const mallory = net.transport();
  const listener = await alice.listen("mem:alice");
  await assert.rejects(mallory.listen("mem:alice"), (error: unknown) => {
    assert.ok(error instanceof ListenError);
    assert.equal(error.message, "Cannot listen on mem:alice: address in use");
    return true;
  });
  listener.close();
  const again = await mallory.listen("mem:alice");
  assert.equal(again.address, "mem:alice");
});

Deno.test("MemoryNetwork dial to an unbound name is refused", async () => {
  await using net = new MemoryNetwork();
  await assert.rejects(net.transport().dial("mem:nobody"), (error: unknown) => {
    assert.ok(error instanceof DialError);
    assert.equal(
      error.message,
      "Cannot dial mem:nobody: connection refused (no listener at that address)",
    );
    return true;
  });
});

Deno.test("MemoryNetwork dialer's local address is not dialable", async () => {
  using p = await pair();
  assert.match(p.client.localAddress, /^mem:\S+$/);
  await assert.rejects(
    p.net.transport().dial(p.client.localAddress),
    DialError,
  );
});

Deno.test("parseMemoryAddress rejects malformed addresses naming input and reason", async () => {
  assert.equal(parseMemoryAddress("mem:alice"), "alice");
  const cases: [string, string][] = [
    ["alice", 'Cannot parse address "alice": expected a mem address (mem:NAME)'],
    ["mem:", 'Cannot parse address "mem:": empty name'],
    ["mem:a b", 'Cannot parse address "mem:a b": name contains whitespace'],
    [
      `mem:${"x".repeat(256)}`,
      `Cannot parse address "mem:${"x".repeat(256)}": name of 256 characters exceeds 255`,
    ],
  ];
  for (const [address, message] of cases) {
    assert.throws(() => parseMemoryAddress(address), { message });
  }
  await using net = new MemoryNetwork();
  const transport = net.transport();
  await assert.rejects(transport.dial("127.0.0.1:80"), TransportAddressError);
  await assert.rejects(transport.listen("mem:"), TransportAddressError);
});

Deno.test("MemoryNetwork rejects options that are not positive integers", () => {
  assert.throws(() => new MemoryNetwork({ bufferSize: 0 }), ArgumentError);
  assert.throws(() => new MemoryNetwork({ backlog: 1.5 }), {
    message: "Invalid MemoryNetwork option backlog: expected a positive integer, got 1.5",
  });
  assert.equal(DEFAULT_MEMORY_BUFFER_SIZE, 256 * 1024);
});

Deno.test("MemoryTransport write copies the data", async () => {
  using p = await pair();
  const data = encoder.encode("original");
  await p.client.write(data);
  data.fill(0);
  assert.equal(decoder.decode(await readExactly(p.server, 8)), "original");
});

Deno.test("MemoryTransport read returns what is available without waiting for more", async () => {
  using p = await pair();
  await p.client.write(encoder.encode("abc"));
  const buffer = new Uint8Array(1024);
  assert.equal(await p.server.read(buffer), 3);
  assert.equal(await p.server.read(new Uint8Array(0)), 0);
  await p.client.write(encoder.encode("defgh"));
  assert.equal(await p.server.read(buffer.subarray(0, 2)), 2);
  assert.equal(await p.server.read(buffer.subarray(2)), 3);
  assert.equal(decoder.decode(buffer.subarray(0, 5)), "defgh");
});

Deno.test("MemoryTransport holds at most bufferSize unread bytes per direction", async () => {
  using p = await pair({ bufferSize: 1024 });
  let settled = false;
  const writing = p.client.write(new Uint8Array(10_000).fill(7)).finally(() => {
    settled = true;
  });
  await turns(3);
  assert.equal(settled, false);
  const buffer = new Uint8Array(64 * 1024);
  assert.equal(await p.server.read(buffer), 1024);
  let total = 1024;
  while (total < 10_000) {
    const n = await p.server.read(buffer);
    assert.ok(n !== null && n <= 1024, `read ${n}`);
    total += n;
  }
  await writing;
  assert.equal(total, 10_000);
});

Deno.test("MemoryTransport keeps bytes in order for any write and read sizes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 5000 }),
      fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 60 }),
      fc.array(fc.integer({ min: 1, max: 4000 }), { minLength: 1 }),
      async (bufferSize, writeSizes, readSizes) => {
        using p = await pair({ bufferSize });
        let counter = 0;
        const written = writeSizes.map((size) =>
          Uint8Array.from({ length: size }, () => counter++ & 0xff)
        );
        const writing = (async () => {
          const scratch = new Uint8Array(3000);
          for (const chunk of written) {
            // Reuse one buffer, as a framing layer would.
            scratch.set(chunk);
            await p.client.write(scratch.subarray(0, chunk.length));
          }
          await p.client.closeWrite();
        })();
        const received: number[] = [];
        for (let i = 0;; i++) {
          const buffer = new Uint8Array(readSizes[i % readSizes.length]);
          const n = await p.server.read(buffer);
          if (n === null) break;
          assert.ok(n > 0 && n <= buffer.length);
          received.push(...buffer.subarray(0, n));
        }
        await writing;
        assert.equal(received.length, counter);
        for (let i = 0; i < counter; i++) assert.equal(received[i], i & 0xff);
      },
    ),
    { numRuns: 100 },
  );
});

Deno.test("MemoryTransport peer reads everything written before a close", async () => {
  using p = await pair();
  await p.client.write(encoder.encode("last words"));
  p.client.close();
  assert.equal(decoder.decode(await readAll(p.server)), "last words");
  await assert.rejects(
    p.server.write(new Uint8Array(1)),
    ConnectionClosedError,
  );
});

Deno.test("MemoryTransport close fails a write that waits on a full buffer", async () => {
  using p = await pair({ bufferSize: 16 });
  const writing = p.client.write(new Uint8Array(100));
  const peerWriting = p.server.write(new Uint8Array(100));
  await turns(1);
  p.client.close();
  await Promise.all([
    assert.rejects(writing, ConnectionClosedError),
    assert.rejects(peerWriting, {
      name: "ConnectionClosedError",
      message: /the peer closed the stream/,
    }),
  ]);
});

Deno.test("MemoryTransport closeWrite waits for a write in flight", async () => {
  using p = await pair({ bufferSize: 16 });
  const writing = p.client.write(new Uint8Array(100).fill(1));
  const closing = p.client.closeWrite();
  const received = await readAll(p.server);
  await writing;
  await closing;
  assert.equal(received.length, 100);
});

Deno.test("MemoryTransport dial beyond the listener's backlog is refused", async () => {
  await using net = new MemoryNetwork({ backlog: 2 });
  const transport = net.transport();
  const listener = await transport.listen("mem:busy");
  await transport.dial("mem:busy");
  await transport.dial("mem:busy");
  await assert.rejects(transport.dial("mem:busy"), {
    name: "DialError",
    message: "Cannot dial mem:busy: connection refused (backlog of 2 full)",
  });
  const first = await acceptOne(listener);
  first.close();
  await transport.dial("mem:busy");
});

Deno.test("MemoryTransport listener close ends unaccepted streams", async () => {
  await using net = new MemoryNetwork();
  const transport = net.transport();
  const listener = await transport.listen("mem:0");
  const client = await transport.dial(listener.address);
  listener.close();
  assert.equal(await client.read(new Uint8Array(8)), null);
});

Deno.test("MemoryNetwork close closes every transport", async () => {
  const net = new MemoryNetwork();
  const a = net.transport();
  const b = net.transport();
  const listener = await a.listen("mem:a");
  const accepted = acceptOne(listener);
  const client = await b.dial("mem:a");
  const server = await accepted;
  net.close();
  assert.equal(await client.read(new Uint8Array(8)), null);
  assert.equal(await server.read(new Uint8Array(8)), null);
  await assert.rejects(a.listen("mem:a"), ListenError);
  await assert.rejects(net.transport().dial("mem:a"), DialError);
});
