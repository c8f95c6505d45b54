/**
 * The behaviour every {@linkcode Transport} must share, as one test suite that
 * each transport's test file runs against itself.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CarrierError, ConnectionClosedError, DialError } from "../../lib/errors.ts";
import type { ByteStream, Listener, Transport } from "../../lib/transport/types.ts";

/** A transport under test, with the `close()` both implementations have. */
export type ClosableTransport = Transport & { close(): void };

/** Options of {@linkcode transportConformance}. */
export interface ConformanceOptions {
  /** Skip the suite (e.g. IPv6 not available on this machine). */
  ignore?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A small deterministic generator (xorshift32), so failures reproduce. */
export function prng(seed: number): () => number {
  let state = seed | 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

/** `length` pseudo-random bytes from `seed`. */
export function randomBytes(length: number, seed: number): Uint8Array {
  const random = prng(seed);
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = random() * 256;
  return bytes;
}

/** Index of the first difference between two byte arrays, or -1 if equal. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/** Reads until the end of the stream and returns everything read. */
export async function readAll(
  stream: ByteStream,
  bufferSize = 64 * 1024,
): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const buffer = new Uint8Array(bufferSize);
    const n = await stream.read(buffer);
    if (n === null) break;
    parts.push(buffer.subarray(0, n));
    total += n;
  }
  const all = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    all.set(part, offset);
    offset += part.length;
  }
  return all;
}

/** Reads exactly `length` bytes, failing on an early end of stream. */
export async function readExactly(
  stream: ByteStream,
  length: number,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(length);
  let offset = 0;
  while (offset < length) {
    const n = await stream.read(bytes.subarray(offset));
    assert.notEqual(n, null, `stream ended after ${offset} of ${length} bytes`);
    offset += n!;
  }
  return bytes;
}

/** Accepts one stream. */
export async function acceptOne(listener: Listener): Promise<ByteStream> {
  for await (const stream of listener) return stream;
  throw new Error(`listener ${listener.address} closed before accepting`);
}

/** Lets the event loop run `count` full turns (timers, I/O, microtasks). */
export async function turns(count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

/** Echoes everything until end of stream, then half-closes and closes. */
async function echo(stream: ByteStream, bufferSize = 64 * 1024): Promise<void> {
  try {
    const buffer = new Uint8Array(bufferSize);
    for (let n; (n = await stream.read(buffer)) !== null;) {
      await stream.write(buffer.subarray(0, n));
    }
    await stream.closeWrite();
  } finally {
    stream.close();
  }
}

/** Serves `count` connections with {@linkcode echo}, concurrently. */
async function echoServer(listener: Listener, count: number): Promise<void> {
  const sessions: Promise<void>[] = [];
  for await (const stream of listener) {
    sessions.push(echo(stream));
    if (sessions.length === count) break;
  }
  await Promise.all(sessions);
}

/**
 * Registers the shared transport tests for one transport.
 *
 * @param name Names the tests: `"<name> echoes ..."`.
 * @param makeTransport Makes a fresh transport; each test closes the ones it made.
 * @param listenAddress An address that asks for a free port or name (`"127.0.0.1:0"`, `"mem:0"`).
 * @param options `ignore` skips the suite.
 */
export function transportConformance(
  name: string,
  makeTransport: () => ClosableTransport,
  listenAddress: string,
  options: ConformanceOptions = {},
): void {
  const { ignore = false } = options;

  /** Runs `fn` with a fresh transport and a listener on it, closing both after. */
  function withListener(
    fn: (transport: ClosableTransport, listener: Listener) => Promise<void>,
  ): () => Promise<void> {
    return async () => {
      const transport = makeTransport();
      try {
        const listener = await transport.listen(listenAddress);
        try {
          await fn(transport, listener);
        } finally {
          listener.close();
        }
      } finally {
        transport.close();
      }
    };
  }

  Deno.test({
    name: `${name} echoes bytes and reports both ends' addresses`,
    ignore,
    fn: withListener(async (transport, listener) => {
      assert.doesNotMatch(listener.address, /:0$/);
      const accepted = acceptOne(listener);
      const client = await transport.dial(listener.address);
      const server = await accepted;
      try {
        assert.equal(client.remoteAddress, listener.address);
        assert.equal(server.localAddress, listener.address);
        assert.equal(server.remoteAddress, client.localAddress);
        const echoing = echo(server);
        await client.write(encoder.encode("hello carrier"));
        await client.closeWrite();
        assert.equal(decoder.decode(await readAll(client)), "hello carrier");
        await echoing;
      } finally {
        client.close();
        server.close();
      }
    }),
  });

  Deno.test({
    name: `${name} delivers 4 MiB in random chunk sizes intact both ways`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const data = randomBytes(4 * 1024 * 1024, 42);
      const random = prng(7);
      const serving = (async () => {
        const stream = await acceptOne(listener);
        try {
          // Echo with random read sizes.
          const buffer = new Uint8Array(100_000);
          while (true) {
            const size = 1 + Math.floor(random() * buffer.length);
            const n = await stream.read(buffer.subarray(0, size));
            if (n === null) break;
            await stream.write(buffer.subarray(0, n));
          }
          await stream.closeWrite();
        } finally {
          stream.close();
        }
      })();
      const client = await transport.dial(listener.address);
      try {
        const writing = (async () => {
          for (let offset = 0; offset < data.length;) {
            const size = 1 + Math.floor(random() * 65536);
            const end = Math.min(data.length, offset + size);
            await client.write(data.subarray(offset, end));
            offset = end;
          }
          await client.closeWrite();
        })();
        const received = await readAll(client, 7919);
        await writing;
        assert.equal(received.length, data.length);
        assert.equal(firstDifference(received, data), -1);
      } finally {
        client.close();
        await serving;
      }
    }),
  });

  Deno.test({
    name: `${name} closeWrite ends the peer's reads after the data`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const accepted = acceptOne(listener);
      const client = await transport.dial(listener.address);
      const server = await accepted;
      try {
        await client.write(encoder.encode("request"));
        await client.closeWrite();
        await client.closeWrite(); // idempotent
        await assert.rejects(
          client.write(encoder.encode("late")),
          ConnectionClosedError,
        );
        assert.equal(decoder.decode(await readAll(server)), "request");
        assert.equal(await server.read(new Uint8Array(8)), null);
        // The other direction stays open.
        await server.write(encoder.encode("response"));
        await server.closeWrite();
        assert.equal(decoder.decode(await readAll(client)), "response");
      } finally {
        client.close();
        server.close();
      }
    }),
  });

  Deno.test({
    name: `${name} close resolves a pending read with null and fails writes`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const accepted = acceptOne(listener);
      const client = await transport.dial(listener.address);
      const server = await accepted;
      try {
        const pending = client.read(new Uint8Array(16));
        const peerPending = server.read(new Uint8Array(16));
        await turns(1);
        client.close();
        assert.equal(await pending, null);
        assert.equal(await peerPending, null, "the peer reads end of stream");
        client.close(); // idempotent
        assert.equal(await client.read(new Uint8Array(16)), null);
        await assert.rejects(
          client.write(new Uint8Array(1)),
          ConnectionClosedError,
        );
        // The peer's writes fail once the transport notices; never hang.
        await assert.rejects(async () => {
          for (let i = 0; i < 100; i++) {
            await server.write(new Uint8Array(1024));
            await turns(1);
          }
        }, ConnectionClosedError);
      } finally {
        client.close();
        server.close();
      }
    }),
  });

  Deno.test({
    name: `${name} dial to an address nobody listens on fails with DialError`,
    ignore,
    fn: async () => {
      const transport = makeTransport();
      try {
        const listener = await transport.listen(listenAddress);
        const address = listener.address;
        listener.close();
        await assert.rejects(transport.dial(address), (error: unknown) => {
          assert.ok(error instanceof DialError, `not a DialError: ${error}`);
          assert.ok(error instanceof CarrierError);
          assert.equal(error.name, "DialError");
          assert.ok(
            error.message.includes(address),
            `message "${error.message}" does not name ${address}`,
          );
          return true;
        });
      } finally {
        transport.close();
      }
    },
  });

  Deno.test({
    name: `${name} dial rejects with the signal's reason when aborted`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const reason = new Error("give up");
      await assert.rejects(
        transport.dial(listener.address, { signal: AbortSignal.abort(reason) }),
        (error) => error === reason,
      );
      const controller = new AbortController();
      const dialing = transport.dial(listener.address, {
        signal: controller.signal,
      });
      controller.abort(reason);
      await assert.rejects(dialing, (error) => error === reason);
      // A dial that got half-way must not stay open: the listener sees at
      // most an already-ended stream before the next real one.
      const accepted: ByteStream[] = [];
      const serving = (async () => {
        for await (const stream of listener) {
          accepted.push(stream);
          const n = await stream.read(new Uint8Array(8)).catch(() => null);
          if (n !== null) return;
        }
      })();
      const client = await transport.dial(listener.address);
      try {
        await client.write(encoder.encode("real"));
        await serving;
        assert.ok(accepted.length <= 2, `accepted ${accepted.length} streams`);
      } finally {
        client.close();
        for (const stream of accepted) stream.close();
      }
    }),
  });

  Deno.test({
    name: `${name} listener close ends the accept loop`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const accepted: ByteStream[] = [];
      const loop = (async () => {
        for await (const stream of listener) accepted.push(stream);
      })();
      const client = await transport.dial(listener.address);
      try {
        while (accepted.length === 0) await turns(1);
        listener.close();
        await loop;
        listener.close(); // idempotent
        assert.equal(accepted.length, 1);
        // Streams already accepted stay open.
        await client.write(encoder.encode("still here"));
        assert.equal(
          decoder.decode(await readExactly(accepted[0], 10)),
          "still here",
        );
        await assert.rejects(transport.dial(listener.address), DialError);
      } finally {
        client.close();
        for (const stream of accepted) stream.close();
      }
    }),
  });

  Deno.test({
    name: `${name} listen signal abort closes the listener`,
    ignore,
    fn: async () => {
      const transport = makeTransport();
      try {
        const reason = new Error("not now");
        await assert.rejects(
          transport.listen(listenAddress, {
            signal: AbortSignal.abort(reason),
          }),
          (error) => error === reason,
        );
        const controller = new AbortController();
        const listener = await transport.listen(listenAddress, {
          signal: controller.signal,
        });
        const loop = (async () => {
          for await (const stream of listener) stream.close();
        })();
        controller.abort();
        await loop;
        await assert.rejects(transport.dial(listener.address), DialError);
      } finally {
        transport.close();
      }
    },
  });

  Deno.test({
    name: `${name} serves 20 concurrent connections on one listener`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const serving = echoServer(listener, 20);
      const clients = await Promise.all(
        Array.from({ length: 20 }, () => transport.dial(listener.address)),
      );
      try {
        await Promise.all(clients.map(async (client, i) => {
          const message = randomBytes(10_000 + i, i + 1);
          await client.write(message);
          await client.closeWrite();
          assert.equal(firstDifference(await readAll(client), message), -1);
        }));
        await serving;
      } finally {
        for (const client of clients) client.close();
      }
    }),
  });

  Deno.test({
    name: `${name} write waits while the peer does not read`,
    ignore,
    fn: withListener(async (transport, listener) => {
      const size = 64 * 1024 * 1024;
      const accepted = acceptOne(listener);
      const client = await transport.dial(listener.address);
      const server = await accepted;
      try {
        let settled = false;
        const writing = client.write(new Uint8Array(size)).finally(() => {
          settled = true;
        });
        await turns(5);
        assert.equal(settled, false, "a 64 MiB write finished unread");
        // Reading releases the writer.
        const reading = readAll(server);
        await writing;
        await client.closeWrite();
        assert.equal((await reading).length, size);
      } finally {
        client.close();
        server.close();
      }
    }),
  });

  Deno.test({
    name: `${name} close of the transport fails its dials in flight`,
    ignore,
    fn: withListener(async (_transport, listener) => {
      const crashing = makeTransport();
      const dialing = crashing.dial(listener.address);
      crashing.close();
      await assert.rejects(dialing, {
        name: "DialError",
        message: `Cannot dial ${listener.address}: the transport is closed`,
      });
      // A connection that got half-way is closed: at most an ended stream
      // reaches the listener.
      const late = await Promise.race([acceptOne(listener), turns(5)]);
      if (late !== undefined) {
        assert.equal(
          await late.read(new Uint8Array(8)).catch(() => null),
          null,
        );
        late.close();
      }
    }),
  });

  Deno.test({
    name: `${name} close of the transport closes its listeners and streams`,
    ignore,
    fn: async () => {
      const host = makeTransport();
      const crashing = makeTransport();
      try {
        const listener = await host.listen(listenAddress);
        const ownListener = await crashing.listen(listenAddress);
        const loop = (async () => {
          for await (const stream of ownListener) stream.close();
        })();
        const accepted = acceptOne(listener);
        const client = await crashing.dial(listener.address);
        const server = await accepted;
        try {
          const pending = server.read(new Uint8Array(8));
          crashing.close();
          assert.equal(await pending, null);
          await loop;
          assert.equal(await client.read(new Uint8Array(8)), null);
          await assert.rejects(crashing.dial(listener.address), DialError);
          await assert.rejects(host.dial(ownListener.address), DialError);
        } finally {
          server.close();
          listener.close();
        }
      } finally {
        crashing.close();
        host.close();
      }
    },
  });
}
