/**
 * The secure channel over the in-memory transport: full Noise XX handshakes
 * per second (identity signatures included), and 64 KiB message round trips
 * (encrypt, frame, write, read, decrypt) against the bare memory stream as
 * the baseline.
 *
 * Run: `deno bench bench/channel_bench.ts`
 *
 * @module
 */

import { generateIdentitySync } from "../lib/identity/keys.ts";
import {
  MAX_PLAINTEXT,
  type SecureChannel,
  secureInbound,
  secureOutbound,
} from "../lib/secure/channel.ts";
import { generateX25519KeyPair } from "../lib/secure/noise.ts";
import { MemoryNetwork } from "../lib/transport/memory.ts";
import type { ByteStream, Listener } from "../lib/transport/types.ts";

const net = new MemoryNetwork();
const transport = net.transport();
const listener = await transport.listen("mem:bench");
const alice = generateIdentitySync({ difficulty: 0 });
const bob = generateIdentitySync({ difficulty: 0 });
const aliceKey = generateX25519KeyPair();
const bobKey = generateX25519KeyPair();

async function accept(from: Listener): Promise<ByteStream> {
  for await (const stream of from) return stream;
  throw new Error("listener closed");
}

async function rawPair(): Promise<[ByteStream, ByteStream]> {
  const accepting = accept(listener);
  const dialed = await transport.dial(listener.address);
  return [dialed, await accepting];
}

async function channelPair(
  perNodeKeys: boolean,
): Promise<[SecureChannel, SecureChannel]> {
  const [dialed, accepted] = await rawPair();
  return await Promise.all([
    secureOutbound(dialed, {
      identity: alice,
      noiseStaticKeyPair: perNodeKeys ? aliceKey : undefined,
    }),
    secureInbound(accepted, {
      identity: bob,
      noiseStaticKeyPair: perNodeKeys ? bobKey : undefined,
    }),
  ]);
}

for (const perNodeKeys of [false, true]) {
  Deno.bench({
    name: perNodeKeys ? "handshake, per-node static keys" : "handshake, fresh static keys",
    group: "handshake (memory transport)",
    baseline: !perNodeKeys,
    async fn() {
      const [a, b] = await channelPair(perNodeKeys);
      a.close();
      b.close();
    },
  });
}

const message = crypto.getRandomValues(new Uint8Array(MAX_PLAINTEXT));
const BURST = 16;
const burst = Array.from({ length: BURST }, () => message);

const [rawOut, rawIn] = await rawPair();
const rawBuffer = new Uint8Array(256 * 1024);
Deno.bench({
  name: "raw memory stream, 64 KiB write → read",
  group: "64 KiB message",
  baseline: true,
  async fn() {
    const writing = rawOut.write(message);
    let got = 0;
    while (got < message.length) got += (await rawIn.read(rawBuffer))!;
    await writing;
  },
});

const [sender, receiver] = await channelPair(false);
Deno.bench({
  name: "secure channel, 64 KiB write → read",
  group: "64 KiB message",
  async fn() {
    const writing = sender.write(message);
    await receiver.read();
    await writing;
  },
});

Deno.bench({
  name: `raw memory stream, ${BURST} × 64 KiB`,
  group: `${BURST} × 64 KiB messages`,
  baseline: true,
  async fn() {
    const writing = (async () => {
      for (const m of burst) await rawOut.write(m);
    })();
    let got = 0;
    while (got < BURST * message.length) {
      got += (await rawIn.read(rawBuffer))!;
    }
    await writing;
  },
});

Deno.bench({
  name: `secure channel, ${BURST} × 64 KiB, writes pipelined`,
  group: `${BURST} × 64 KiB messages`,
  async fn() {
    const writing = Promise.all(burst.map((m) => sender.write(m)));
    for (let i = 0; i < BURST; i++) await receiver.read();
    await writing;
  },
});

Deno.bench({
  name: `secure channel, ${BURST} × 64 KiB, each write awaited`,
  group: `${BURST} × 64 KiB messages`,
  async fn() {
    const writing = (async () => {
      for (const m of burst) await sender.write(m);
    })();
    for (let i = 0; i < BURST; i++) await receiver.read();
    await writing;
  },
});

globalThis.addEventListener("unload", () => net.close());
