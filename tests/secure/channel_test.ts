import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { HandshakePayloadSchema } from "../../lib/protocol.ts";
import { ManualClock } from "../../lib/clock.ts";
import { ConnectionClosedError, PuzzleError, TimeoutError } from "../../lib/errors.ts";
import {
  DecryptError,
  HandshakeError,
  IdentityMismatchError,
  NonceExhaustedError,
} from "../../lib/secure/errors.ts";
import { generateIdentitySync, type Identity, sign } from "../../lib/identity/keys.ts";
import { puzzleWork } from "../../lib/identity/puzzle.ts";
import {
  IDENTITY_SIGNATURE_CONTEXT,
  MAX_PLAINTEXT,
  PROLOGUE,
  type SecureChannel,
  type SecureChannelOptions,
  secureInbound,
  secureOutbound,
} from "../../lib/secure/channel.ts";
import {
  createHandshake,
  generateX25519KeyPair,
  type X25519KeyPair,
} from "../../lib/secure/noise.ts";
import { MemoryNetwork } from "../../lib/transport/memory.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import type { ByteStream, Listener, Transport } from "../../lib/transport/types.ts";
import { SizeLimitError } from "../../lib/errors.ts";

type Kind = "memory" | "tcp";
const KINDS: Kind[] = ["memory", "tcp"];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

const ALICE = generateIdentitySync({ difficulty: 0 });
const BOB = generateIdentitySync({ difficulty: 0 });

/** A transport of either kind, with one listener. */
interface Net {
  transport: Transport;
  listener: Listener;
  close(): void;
}

async function openNet(kind: Kind): Promise<Net> {
  if (kind === "memory") {
    const net = new MemoryNetwork();
    const transport = net.transport();
    const listener = await transport.listen("mem:0");
    return { transport, listener, close: () => net.close() };
  }
  const tcp = new TcpTransport();
  const listener = await tcp.listen("127.0.0.1:0");
  return { transport: tcp, listener, close: () => tcp.close() };
}

async function acceptOne(listener: Listener): Promise<ByteStream> {
  for await (const stream of listener) return stream;
  throw new Error("listener closed");
}

/** A connected pair of raw streams. */
async function rawPair(
  net: Net,
): Promise<{ dialed: ByteStream; accepted: ByteStream }> {
  const accepting = acceptOne(net.listener);
  const dialed = await net.transport.dial(net.listener.address);
  return { dialed, accepted: await accepting };
}

/** Runs `body` with a fresh network of `kind`, closing it afterwards. */
async function withNet(
  kind: Kind,
  body: (net: Net) => Promise<void>,
): Promise<void> {
  const net = await openNet(kind);
  try {
    await body(net);
  } finally {
    net.close();
  }
}

/** Handshakes both ways over a fresh pair of streams. */
async function securePair(
  net: Net,
  client: Partial<SecureChannelOptions> = {},
  server: Partial<SecureChannelOptions> = {},
  wrapDialed: (stream: ByteStream) => ByteStream = (s) => s,
): Promise<{ client: SecureChannel; server: SecureChannel }> {
  const { dialed, accepted } = await rawPair(net);
  const [c, s] = await Promise.all([
    secureOutbound(wrapDialed(dialed), { identity: ALICE, ...client }),
    secureInbound(accepted, { identity: BOB, ...server }),
  ]);
  return { client: c, server: s };
}

/** A ByteStream that passes every write through `edit` (a man in the middle on the way out). */
function tap(
  stream: ByteStream,
  edit: (data: Uint8Array, index: number) => Uint8Array[],
): ByteStream {
  let index = 0;
  return {
    read: (buffer) => stream.read(buffer),
    async write(data) {
      for (const chunk of edit(data.slice(), index++)) await stream.write(chunk);
    },
    closeWrite: () => stream.closeWrite(),
    close: () => stream.close(),
    get localAddress() {
      return stream.localAddress;
    },
    get remoteAddress() {
      return stream.remoteAddress;
    },
  };
}

/** Reads length-prefixed messages from a raw stream, for hand-rolled peers. */
class RawReader {
  #stream: ByteStream;
  #buffered = new Uint8Array(0);
  constructor(stream: ByteStream) {
    this.#stream = stream;
  }
  async exactly(n: number): Promise<Uint8Array | null> {
    while (this.#buffered.length < n) {
      const chunk = new Uint8Array(65536);
      const read = await this.#stream.read(chunk);
      if (read === null) return null;
      const joined = new Uint8Array(this.#buffered.length + read);
      joined.set(this.#buffered);
      joined.set(chunk.subarray(0, read), this.#buffered.length);
      this.#buffered = joined;
    }
    const out = this.#buffered.slice(0, n);
    this.#buffered = this.#buffered.slice(n);
    return out;
  }
  async message(): Promise<Uint8Array | null> {
    const prefix = await this.exactly(2);
    return prefix === null ? null : this.exactly((prefix[0] << 8) | prefix[1]);
  }
}

function framed(message: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + message.length);
  out[0] = message.length >> 8;
  out[1] = message.length & 0xff;
  out.set(message, 2);
  return out;
}

/** A payload whose signature covers `signedKey` instead of the real static key. */
function forgedPayload(identity: Identity, signedKey: Uint8Array): Uint8Array {
  const signed = new Uint8Array([
    ...encoder.encode(IDENTITY_SIGNATURE_CONTEXT),
    ...signedKey,
  ]);
  return toBinary(
    HandshakePayloadSchema,
    create(HandshakePayloadSchema, {
      identityKey: identity.publicKey,
      identitySignature: sign(identity, signed),
    }),
  );
}

function pattern(seed: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x;
  }
  return bytes;
}

function settle<T>(promise: Promise<T>): Promise<PromiseSettledResult<T>> {
  return promise.then(
    (value) => ({ status: "fulfilled", value }),
    (reason) => ({ status: "rejected", reason }),
  );
}

/** An identity whose key fails the puzzle at `difficulty`. */
function weakIdentity(difficulty: number): Identity {
  for (;;) {
    const identity = generateIdentitySync({ difficulty: 0 });
    if (puzzleWork(identity.publicKey) < difficulty) return identity;
  }
}

for (const kind of KINDS) {
  Deno.test(`secure channel handshake exchanges identities and payload fields (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(net, {
        acceptsInbound: false,
        compressions: [1, 4],
        preferredCompression: 4,
        maxFrameSize: 65536,
        listenAddrs: [],
        agent: "alice/1",
      }, {
        acceptsInbound: true,
        compressions: [3],
        maxFrameSize: 1 << 20,
        listenAddrs: ["127.0.0.1:4000", "[::1]:4000"],
        agent: "bob/2",
      });
      try {
        assert.equal(client.initiator, true);
        assert.equal(server.initiator, false);
        assert.deepEqual(client.handshakeHash, server.handshakeHash);
        assert.equal(client.handshakeHash.length, 32);

        assert.equal(client.remote.address, BOB.address);
        assert.deepEqual(client.remote.identityKey, BOB.publicKey);
        assert.equal(client.remote.acceptsInbound, true);
        assert.deepEqual(client.remote.compressions, [3]);
        assert.equal(client.remote.preferredCompression, undefined);
        assert.equal(client.remote.maxFrameSize, 1 << 20);
        assert.deepEqual(client.remote.listenAddrs, [
          "127.0.0.1:4000",
          "[::1]:4000",
        ]);
        assert.equal(client.remote.agent, "bob/2");
        assert.equal(client.remote.observedAddr, server.stream.remoteAddress);

        assert.equal(server.remote.address, ALICE.address);
        assert.deepEqual(server.remote.identityKey, ALICE.publicKey);
        assert.equal(server.remote.acceptsInbound, false);
        assert.deepEqual(server.remote.compressions, [1, 4]);
        assert.equal(server.remote.preferredCompression, 4);
        assert.equal(server.remote.maxFrameSize, 65536);
        assert.deepEqual(server.remote.listenAddrs, []);
        assert.equal(server.remote.agent, "alice/1");
        assert.equal(server.remote.observedAddr, client.stream.remoteAddress);
      } finally {
        client.close();
        server.close();
      }
    });
  });

  Deno.test(`secure channel carries messages both ways, largest and many small (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(net);
      try {
        const big = pattern(1, MAX_PLAINTEXT);
        const small = Array.from(
          { length: 500 },
          (_, i) => pattern(i + 2, i % 97),
        );
        // Writes are not awaited one by one: they must still arrive in order.
        const sending = Promise.all([
          client.write(big),
          ...small.slice(0, 250).map((m) => client.write(m)),
          client.writeMany(small.slice(250)),
          client.write(new Uint8Array(0)),
        ]);
        const serverSending = Promise.all([
          server.writeMany(small),
          server.write(big),
        ]);
        assert.deepEqual(await server.read(), big);
        for (const m of small) assert.deepEqual(await server.read(), m);
        assert.deepEqual(await server.read(), new Uint8Array(0));
        for (const m of small) assert.deepEqual(await client.read(), m);
        assert.deepEqual(await client.read(), big);
        await sending;
        await serverSending;

        // A clean half-close ends the remote's reads with null.
        await client.write(encoder.encode("bye"));
        await client.closeWrite();
        assert.equal(decoder.decode((await server.read())!), "bye");
        assert.equal(await server.read(), null);
        assert.equal(await server.read(), null);
        // The other direction still works.
        await server.write(encoder.encode("still here"));
        assert.equal(decoder.decode((await client.read())!), "still here");
      } finally {
        client.close();
        server.close();
      }
      assert.equal(client.closed, true);
      assert.equal(await client.read(), null);
      await assert.rejects(client.write(new Uint8Array(1)), ConnectionClosedError);
    });
  });

  Deno.test(`secureOutbound accepts a matching expectedRemote (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(net, {
        expectedRemote: BOB.publicKey,
      }, { expectedRemote: ALICE.publicKey });
      assert.equal(client.remote.address, BOB.address);
      client.close();
      server.close();
    });
  });

  Deno.test(`secureOutbound rejects an expectedRemote mismatch before message 3 (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const carol = generateIdentitySync({ difficulty: 0 });
      const { dialed, accepted } = await rawPair(net);
      const [client, server] = await Promise.allSettled([
        secureOutbound(dialed, {
          identity: ALICE,
          expectedRemote: carol.publicKey,
        }),
        secureInbound(accepted, { identity: BOB }),
      ]);
      assert.equal(client.status, "rejected");
      assert.ok(client.reason instanceof IdentityMismatchError);
      assert.match(client.reason.message, new RegExp(carol.address));
      assert.match(client.reason.message, new RegExp(BOB.address));
      assert.equal(server.status, "rejected");
      assert.ok(server.reason instanceof HandshakeError);
      assert.match(server.reason.message, /message 3/);
    });
  });

  Deno.test(`secureOutbound rejects a signature over another static key (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      // A responder that signs a static key other than the one it uses.
      const responder = (async () => {
        const reader = new RawReader(accepted);
        const hs = createHandshake({
          pattern: "XX",
          initiator: false,
          prologue: encoder.encode(PROLOGUE),
          staticKeyPair: generateX25519KeyPair(),
        });
        await hs.readMessage((await reader.message())!);
        const payload = forgedPayload(BOB, generateX25519KeyPair().publicKey);
        await accepted.write(framed(await hs.writeMessage(payload)));
        assert.equal(await reader.message(), null); // the dialer hung up
        accepted.close();
      })();
      await assert.rejects(
        secureOutbound(dialed, { identity: ALICE }),
        (error: Error) =>
          error instanceof HandshakeError &&
          /identity_signature of .* does not verify/.test(error.message),
      );
      await responder;
    });
  });

  Deno.test(`secureInbound rejects a signature over another static key (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      const initiator = (async () => {
        const reader = new RawReader(dialed);
        const hs = createHandshake({
          pattern: "XX",
          initiator: true,
          prologue: encoder.encode(PROLOGUE),
          staticKeyPair: generateX25519KeyPair(),
        });
        await dialed.write(framed(await hs.writeMessage()));
        await hs.readMessage((await reader.message())!);
        const payload = forgedPayload(ALICE, generateX25519KeyPair().publicKey);
        await dialed.write(framed(await hs.writeMessage(payload)));
        assert.equal(await reader.message(), null);
        dialed.close();
      })();
      await assert.rejects(
        secureInbound(accepted, { identity: BOB }),
        (error: Error) =>
          error instanceof HandshakeError &&
          /message 3: identity_signature/.test(error.message),
      );
      await initiator;
    });
  });

  Deno.test(`secureOutbound rejects a responder of another protocol version (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      const responder = (async () => {
        const reader = new RawReader(accepted);
        const hs = createHandshake({
          pattern: "XX",
          initiator: false,
          prologue: encoder.encode("carrier/v2"),
          staticKeyPair: generateX25519KeyPair(),
        });
        await hs.readMessage((await reader.message())!);
        await accepted.write(framed(await hs.writeMessage()));
        assert.equal(await reader.message(), null);
        accepted.close();
      })();
      await assert.rejects(
        secureOutbound(dialed, { identity: ALICE }),
        (error: Error) =>
          error instanceof HandshakeError &&
          /reading message 2: .*failed authentication/.test(error.message),
      );
      await responder;
    });
  });

  Deno.test(`secureInbound keeps transport data that arrives with message 3 (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      const initiator = (async () => {
        const reader = new RawReader(dialed);
        const staticKeyPair = generateX25519KeyPair();
        const hs = createHandshake({
          pattern: "XX",
          initiator: true,
          prologue: encoder.encode(PROLOGUE),
          staticKeyPair,
        });
        await dialed.write(framed(await hs.writeMessage()));
        await hs.readMessage((await reader.message())!);
        const payload = forgedPayload(ALICE, staticKeyPair.publicKey);
        const third = framed(await hs.writeMessage(payload));
        const { send, receive } = hs.split();
        const first = framed(await send.encrypt(encoder.encode("first")));
        const second = framed(await send.encrypt(encoder.encode("second")));
        // Message 3 and two transport messages in one write.
        await dialed.write(new Uint8Array([...third, ...first, ...second]));
        const reply = await receive.decrypt((await reader.message())!);
        assert.equal(decoder.decode(reply), "got first, second");
        dialed.close();
      })();
      const server = await secureInbound(accepted, { identity: BOB });
      assert.equal(server.remote.address, ALICE.address);
      const a = decoder.decode((await server.read())!);
      const b = decoder.decode((await server.read())!);
      await server.write(encoder.encode(`got ${a}, ${b}`));
      await initiator;
      assert.equal(await server.read(), null);
      server.close();
    });
  });

  Deno.test(`secureInbound rejects garbage and the listener keeps serving (${kind})`, async () => {
    await withNet(kind, async (net) => {
      // Settled at once, so that a rejection is never unhandled.
      const outcomes: Promise<PromiseSettledResult<string>>[] = [];
      const serving = (async () => {
        for await (const stream of net.listener) {
          outcomes.push(settle(
            secureInbound(stream, { identity: BOB }).then(async (channel) => {
              const message = await channel.read();
              await channel.write(message!);
              await channel.closeWrite();
              assert.equal(await channel.read(), null);
              channel.close();
              return "served";
            }),
          ));
        }
      })();
      const address = net.listener.address;

      // An HTTP request: "GE" reads as a length of 18245, then EOF.
      const http = await net.transport.dial(address);
      await http.write(encoder.encode("GET / HTTP/1.1\r\n\r\n"));
      await http.closeWrite();
      // A well-formed message 1 whose ephemeral key is a low-order point.
      const lowOrder = await net.transport.dial(address);
      await lowOrder.write(framed(new Uint8Array(32)));
      // Message 1 with a payload it must not have.
      const chatty = await net.transport.dial(address);
      await chatty.write(framed(new Uint8Array(40).fill(9)));

      const good = await secureOutbound(
        await net.transport.dial(address),
        { identity: ALICE, expectedRemote: BOB.publicKey },
      );
      await good.write(encoder.encode("ping"));
      assert.equal(decoder.decode((await good.read())!), "ping");
      assert.equal(await good.read(), null);
      good.close();

      const results = await Promise.all(outcomes);
      assert.equal(results.length, 4);
      const reasons = results
        .filter((r) => r.status === "rejected")
        .map((r) => (r as PromiseRejectedResult).reason as Error);
      assert.equal(reasons.length, 3);
      for (const reason of reasons) assert.ok(reason instanceof HandshakeError);
      const messages = reasons.map((r) => r.message).join("\n");
      assert.match(messages, /reading message 1: the stream ended after 18 of the 18247 bytes/);
      assert.match(messages, /writing message 2: .*low-order/);
      assert.match(messages, /reading message 1: its payload must be empty, got 8 bytes/);
      assert.ok(results.some((r) => r.status === "fulfilled" && r.value === "served"));

      for (const stream of [http, lowOrder, chatty]) {
        const buffer = new Uint8Array(16);
        assert.equal(await stream.read(buffer), null); // closed by the listener
        stream.close();
      }
      net.listener.close();
      await serving;
    });
  });

  Deno.test(`secure channel handshake fails cleanly on a 65535 length prefix then EOF (${kind})`, async () => {
    await withNet(kind, async (net) => {
      // Towards the listener, as message 1.
      const first = await rawPair(net);
      await first.dialed.write(Uint8Array.of(0xff, 0xff));
      await first.dialed.closeWrite();
      await assert.rejects(
        secureInbound(first.accepted, { identity: BOB }),
        (error: Error) =>
          error instanceof HandshakeError &&
          /reading message 1: the stream ended after 2 of the 65537 bytes/
            .test(error.message),
      );
      first.dialed.close();

      // Towards the dialer, as message 2.
      const second = await rawPair(net);
      const responder = (async () => {
        assert.ok(await new RawReader(second.accepted).message());
        await second.accepted.write(Uint8Array.of(0xff, 0xff, 1, 2, 3));
        await second.accepted.closeWrite();
      })();
      await assert.rejects(
        secureOutbound(second.dialed, { identity: ALICE }),
        (error: Error) =>
          error instanceof HandshakeError &&
          /reading message 2: the stream ended after 5 of the 65537 bytes/
            .test(error.message),
      );
      await responder;
      second.accepted.close();
    });
  });

  Deno.test(`secureInbound times out on a peer that sends nothing (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      await assert.rejects(
        secureInbound(accepted, { identity: BOB, handshakeTimeout: 50 }),
        (error: Error) =>
          error instanceof TimeoutError &&
          error.message ===
            `Noise handshake with ${accepted.remoteAddress} timed out after 50 ms`,
      );
      assert.equal(await dialed.read(new Uint8Array(8)), null);
      dialed.close();
    });
  });

  Deno.test(`secureOutbound times out on a listener that never answers (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const clock = new ManualClock();
      const { dialed, accepted } = await rawPair(net);
      const dialing = secureOutbound(dialed, {
        identity: ALICE,
        handshakeTimeout: 1000,
        clock,
      });
      // Message 1 arrives, then nothing comes back.
      assert.equal((await new RawReader(accepted).message())?.length, 32);
      assert.equal(clock.pending, 1);
      clock.advance(999);
      clock.advance(1);
      await assert.rejects(dialing, TimeoutError);
      assert.equal(clock.pending, 0);
      accepted.close();
    });
  });

  Deno.test(`secure channel handshake aborts on its signal (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      const controller = new AbortController();
      const reason = new Error("shutting down");
      const accepting = secureInbound(accepted, {
        identity: BOB,
        signal: controller.signal,
      });
      controller.abort(reason);
      await assert.rejects(accepting, (error) => error === reason);
      assert.equal(await dialed.read(new Uint8Array(8)), null);
      dialed.close();

      // Already aborted: the stream is closed at once.
      const second = await rawPair(net);
      await assert.rejects(
        secureOutbound(second.dialed, {
          identity: ALICE,
          signal: AbortSignal.abort(reason),
        }),
        (error) => error === reason,
      );
      assert.equal(await second.accepted.read(new Uint8Array(8)), null);
      second.accepted.close();
    });
  });

  Deno.test(`secure channel read rejects a tampered transport message (${kind})`, async () => {
    await withNet(kind, async (net) => {
      // The dialer's writes: 0 = message 1, 1 = message 3, 2 = first transport message.
      const { client, server } = await securePair(
        net,
        {},
        {},
        (stream) =>
          tap(stream, (data, index) => {
            if (index === 2) data[2 + 3] ^= 0x01;
            return [data];
          }),
      );
      await client.write(encoder.encode("pay alice 10"));
      await assert.rejects(server.read(), DecryptError);
      assert.equal(server.closed, true);
      await assert.rejects(server.read(), DecryptError);
      client.close();
    });
  });

  Deno.test(`secure channel read rejects a replayed transport message (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(
        net,
        {},
        {},
        (stream) => tap(stream, (data, index) => index === 2 ? [data, data] : [data]),
      );
      await client.write(encoder.encode("pay alice 10"));
      assert.equal(decoder.decode((await server.read())!), "pay alice 10");
      await assert.rejects(server.read(), DecryptError);
      assert.equal(server.closed, true);
      client.close();
    });
  });

  Deno.test(`secure channel read rejects a transport message cut short by EOF (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(
        net,
        {},
        {},
        (stream) => tap(stream, (data, index) => index === 2 ? [data.subarray(0, 10)] : [data]),
      );
      await client.write(encoder.encode("a message longer than ten bytes"));
      await client.closeWrite();
      await assert.rejects(
        server.read(),
        (error: Error) =>
          error instanceof ConnectionClosedError &&
          /in the middle of a transport message \(10 of 49 bytes\)/.test(
            error.message,
          ),
      );
      client.close();
    });
  });

  Deno.test(`secure channel handshake enforces the puzzle difficulty (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const weak = weakIdentity(8);
      const strong = generateIdentitySync({ difficulty: 8 });

      // The listener rejects a weak dialer (after message 3).
      const first = await rawPair(net);
      const [client, server] = await Promise.allSettled([
        secureOutbound(first.dialed, { identity: weak }),
        secureInbound(first.accepted, { identity: BOB, puzzleDifficulty: 8 }),
      ]);
      assert.equal(server.status, "rejected");
      assert.ok(server.reason instanceof HandshakeError);
      assert.ok(server.reason.cause instanceof PuzzleError);
      assert.match(server.reason.message, /fails the static puzzle/);
      // The dialer finished its side; it learns from the closed stream.
      assert.equal(client.status, "fulfilled");
      assert.equal(await client.value.read(), null);
      client.value.close();

      // The dialer rejects a weak listener (before message 3).
      const second = await rawPair(net);
      const [client2, server2] = await Promise.allSettled([
        secureOutbound(second.dialed, { identity: ALICE, puzzleDifficulty: 8 }),
        secureInbound(second.accepted, { identity: weak }),
      ]);
      assert.equal(client2.status, "rejected");
      assert.ok(client2.reason.cause instanceof PuzzleError);
      assert.equal(server2.status, "rejected");

      // A key with enough work passes.
      const { client: c, server: s } = await securePair(
        net,
        { identity: strong },
        { puzzleDifficulty: 8 },
      );
      assert.equal(s.remote.address, strong.address);
      c.close();
      s.close();
    });
  });

  Deno.test(`secure channel write throws NonceExhaustedError at the nonce limit (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(net, { nonceLimit: 3n });
      for (let i = 0; i < 3; i++) await client.write(Uint8Array.of(i));
      await assert.rejects(client.write(Uint8Array.of(3)), NonceExhaustedError);
      assert.equal(client.closed, true);
      await assert.rejects(client.write(Uint8Array.of(4)), ConnectionClosedError);
      for (let i = 0; i < 3; i++) {
        assert.deepEqual(await server.read(), Uint8Array.of(i));
      }
      assert.equal(await server.read(), null);
      server.close();
    });
  });

  Deno.test(`secure channel read throws NonceExhaustedError at the nonce limit (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { client, server } = await securePair(net, {}, { nonceLimit: 2n });
      await client.writeMany([Uint8Array.of(0), Uint8Array.of(1), Uint8Array.of(2)]);
      assert.deepEqual(await server.read(), Uint8Array.of(0));
      assert.deepEqual(await server.read(), Uint8Array.of(1));
      await assert.rejects(server.read(), NonceExhaustedError);
      assert.equal(server.closed, true);
      client.close();
    });
  });

  Deno.test(`secure channel handshake refuses a node connecting to itself (${kind})`, async () => {
    await withNet(kind, async (net) => {
      const { dialed, accepted } = await rawPair(net);
      const [client, server] = await Promise.allSettled([
        secureOutbound(dialed, { identity: ALICE }),
        secureInbound(accepted, { identity: ALICE }),
      ]);
      assert.equal(client.status, "rejected");
      assert.ok(client.reason instanceof HandshakeError);
      assert.match(client.reason.message, /cannot connect to itself/);
      assert.equal(server.status, "rejected");
      assert.ok(server.reason instanceof HandshakeError);
    });
  });
}

Deno.test("secure channel write rejects an oversized plaintext and stays open", async () => {
  await withNet("memory", async (net) => {
    const { client, server } = await securePair(net);
    await assert.rejects(
      client.write(new Uint8Array(MAX_PLAINTEXT + 1)),
      (error: Error) =>
        error instanceof SizeLimitError && error.limit === "MAX_PLAINTEXT" &&
        /65520 exceeds MAX_PLAINTEXT 65519/.test(error.message),
    );
    await assert.rejects(
      client.writeMany([new Uint8Array(1), new Uint8Array(MAX_PLAINTEXT + 1)]),
      SizeLimitError,
    );
    assert.equal(client.closed, false);
    await client.write(encoder.encode("ok"));
    assert.equal(decoder.decode((await server.read())!), "ok");
    client.close();
    server.close();
  });
});

Deno.test("secure channel read refuses a second concurrent read", async () => {
  await withNet("memory", async (net) => {
    const { client, server } = await securePair(net);
    const first = server.read();
    await assert.rejects(server.read(), /another read is pending/);
    await client.write(Uint8Array.of(7));
    assert.deepEqual(await first, Uint8Array.of(7));
    client.close();
    server.close();
  });
});

Deno.test("secure channel close ends a pending read with null", async () => {
  await withNet("memory", async (net) => {
    const { client, server } = await securePair(net);
    const pending = server.read();
    server.close();
    server.close();
    assert.equal(await pending, null);
    assert.equal(await client.read(), null);
    client.close();
  });
});

Deno.test("secure channel works with a shared per-node Noise static key", async () => {
  await withNet("memory", async (net) => {
    const nodeKey: X25519KeyPair = generateX25519KeyPair();
    for (let i = 0; i < 2; i++) {
      const { client, server } = await securePair(net, {}, {
        noiseStaticKeyPair: nodeKey,
      });
      await client.write(Uint8Array.of(i));
      assert.deepEqual(await server.read(), Uint8Array.of(i));
      client.close();
      server.close();
    }
  });
});

Deno.test("secureOutbound rejects invalid options and closes the stream", async () => {
  await withNet("memory", async (net) => {
    const { dialed, accepted } = await rawPair(net);
    await assert.rejects(
      secureOutbound(dialed, {
        identity: ALICE,
        expectedRemote: new Uint8Array(31),
      }),
      /expected Uint8Array of length 32, got length=31/,
    );
    assert.equal(await accepted.read(new Uint8Array(1)), null);
    accepted.close();
  });
});
