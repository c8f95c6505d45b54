import assert from "node:assert/strict";
import fc from "fast-check";
import { DecryptError, HandshakeError, NonceExhaustedError } from "../../lib/secure/errors.ts";
import {
  type AesGcmBackend,
  aesGcmImplementation,
  CipherState,
  createAesGcm,
  createHandshake,
  generateX25519KeyPair,
  type Handshake,
  MAX_MESSAGE_LENGTH,
  MAX_NONCE,
  MAX_PLAINTEXT_LENGTH,
  type TransportCiphers,
  x25519KeyPairFromPrivateKey,
} from "../../lib/secure/noise.ts";
import vectorFile from "../vectors/noise_25519_aesgcm_sha256.json" with {
  type: "json",
};
import { ArgumentError, SizeLimitError } from "../../lib/errors.ts";

interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_static?: string;
  init_ephemeral: string;
  init_remote_static?: string;
  init_psks?: string[];
  resp_prologue: string;
  resp_static?: string;
  resp_ephemeral?: string;
  resp_remote_static?: string;
  resp_psks?: string[];
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const vectors: Vector[] = vectorFile.vectors;
const encoder = new TextEncoder();
const BACKENDS: AesGcmBackend[] = [
  "noble",
  "webcrypto",
  "node",
  ...(aesGcmImplementation() === "openssl" ? ["openssl" as const] : []),
  "auto",
];

function fromHex(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function side(vector: Vector, prefix: "init" | "resp"): Handshake {
  const get = (key: string) =>
    (vector as unknown as Record<string, string | string[] | undefined>)[
      `${prefix}_${key}`
    ];
  const pair = (key: string) => {
    const hex = get(key) as string | undefined;
    return hex === undefined ? undefined : x25519KeyPairFromPrivateKey(fromHex(hex));
  };
  const remote = get("remote_static") as string | undefined;
  return createHandshake({
    pattern: vector.protocol_name.split("_")[1],
    initiator: prefix === "init",
    prologue: fromHex(get("prologue") as string),
    staticKeyPair: pair("static"),
    ephemeralKeyPair: pair("ephemeral"),
    remoteStaticPublicKey: remote === undefined ? undefined : fromHex(remote),
    psks: (get("psks") as string[] | undefined)?.map(fromHex),
  });
}

assert.equal(vectors.length, 59);

/** Transport backends per run of the vectors: each encrypts one direction and decrypts the other. */
const VECTOR_PAIRS: [AesGcmBackend, AesGcmBackend][] = [["webcrypto", "noble"], [
  "openssl",
  "node",
]];

for (const [initBackend, respBackend] of VECTOR_PAIRS) {
  for (const vector of vectors) {
    Deno.test(`${vector.protocol_name} reproduces the cacophony vector (${initBackend}, ${respBackend})`, async () => {
      const initiator = side(vector, "init");
      const responder = side(vector, "resp");
      const oneWay = /^Noise_[NKX](psk\d)?_/.test(vector.protocol_name);
      let transport:
        | { init: TransportCiphers; resp: TransportCiphers }
        | undefined;
      for (const [i, message] of vector.messages.entries()) {
        const payload = fromHex(message.payload);
        const fromInitiator = oneWay || i % 2 === 0;
        if (transport === undefined) {
          const [writer, reader] = fromInitiator ? [initiator, responder] : [responder, initiator];
          assert.equal(writer.isMyTurn, true);
          const written = await writer.writeMessage(payload);
          assert.equal(
            toHex(written),
            message.ciphertext,
            `handshake message ${i}`,
          );
          assert.deepEqual(await reader.readMessage(written), payload);
          if (initiator.isComplete) {
            assert.equal(responder.isComplete, true);
            assert.equal(toHex(initiator.handshakeHash), vector.handshake_hash);
            assert.equal(toHex(responder.handshakeHash), vector.handshake_hash);
            // Each direction is encrypted by one AES-GCM backend and decrypted
            // by the other, so both are checked against the vector's bytes.
            transport = {
              init: initiator.split({ backend: initBackend }),
              resp: responder.split({ backend: respBackend }),
            };
          }
        } else {
          const [sender, receiver] = fromInitiator
            ? [transport.init, transport.resp]
            : [transport.resp, transport.init];
          const sealed = await sender.send.encrypt(payload);
          assert.equal(
            toHex(sealed),
            message.ciphertext,
            `transport message ${i}`,
          );
          assert.deepEqual(await receiver.receive.decrypt(sealed), payload);
        }
      }
      assert.ok(transport !== undefined, "the handshake completed");
    });
  }
}

/** Runs a complete XX handshake with fresh keys. */
async function handshakeXX(
  backend: AesGcmBackend = "auto",
): Promise<{ alice: TransportCiphers; bob: TransportCiphers }> {
  const prologue = encoder.encode("carrier test");
  const alice = createHandshake({
    pattern: "XX",
    initiator: true,
    prologue,
    staticKeyPair: generateX25519KeyPair(),
  });
  const bob = createHandshake({
    pattern: "XX",
    initiator: false,
    prologue,
    staticKeyPair: generateX25519KeyPair(),
  });
  await bob.readMessage(await alice.writeMessage());
  await alice.readMessage(await bob.writeMessage());
  await bob.readMessage(await alice.writeMessage());
  return { alice: alice.split({ backend }), bob: bob.split({ backend }) };
}

Deno.test("XX handshake authenticates both static keys and agrees on the hash", async () => {
  const prologue = encoder.encode("carrier test");
  const aliceStatic = generateX25519KeyPair();
  const bobStatic = generateX25519KeyPair();
  const alice = createHandshake({
    pattern: "XX",
    initiator: true,
    prologue,
    staticKeyPair: aliceStatic,
  });
  const bob = createHandshake({
    pattern: "XX",
    initiator: false,
    prologue,
    staticKeyPair: bobStatic,
  });
  assert.equal(alice.protocolName, "Noise_XX_25519_AESGCM_SHA256");
  assert.deepEqual(
    await bob.readMessage(await alice.writeMessage(encoder.encode("1"))),
    encoder.encode("1"),
  );
  assert.deepEqual(
    await alice.readMessage(await bob.writeMessage(encoder.encode("2"))),
    encoder.encode("2"),
  );
  assert.equal(bob.remoteStaticPublicKey, undefined);
  assert.deepEqual(
    await bob.readMessage(await alice.writeMessage(encoder.encode("3"))),
    encoder.encode("3"),
  );
  assert.deepEqual(alice.remoteStaticPublicKey, bobStatic.publicKey);
  assert.deepEqual(bob.remoteStaticPublicKey, aliceStatic.publicKey);
  assert.deepEqual(alice.handshakeHash, bob.handshakeHash);
  const a = alice.split();
  const b = bob.split();
  for (const size of [0, 100, 5000, MAX_PLAINTEXT_LENGTH]) {
    const data = crypto.getRandomValues(new Uint8Array(size));
    assert.deepEqual(await b.receive.decrypt(await a.send.encrypt(data)), data);
    assert.deepEqual(await a.receive.decrypt(await b.send.encrypt(data)), data);
  }
});

Deno.test("handshake with mismatched prologues fails with HandshakeError", async () => {
  const alice = createHandshake({
    pattern: "XX",
    initiator: true,
    prologue: encoder.encode("v1"),
    staticKeyPair: generateX25519KeyPair(),
  });
  const bob = createHandshake({
    pattern: "XX",
    initiator: false,
    prologue: encoder.encode("v2"),
    staticKeyPair: generateX25519KeyPair(),
  });
  await bob.readMessage(await alice.writeMessage());
  await assert.rejects(
    alice.readMessage(await bob.writeMessage()),
    (error) =>
      error instanceof HandshakeError &&
      /failed authentication/.test(error.message),
  );
  // A failed handshake stays failed.
  await assert.rejects(alice.writeMessage(), /already failed/);
  assert.throws(() => alice.split(), HandshakeError);
});

Deno.test("handshake with combined psk modifiers completes", async () => {
  const psks = [
    crypto.getRandomValues(new Uint8Array(32)),
    crypto.getRandomValues(new Uint8Array(32)),
  ];
  const alice = createHandshake({
    pattern: "NNpsk0+psk2",
    initiator: true,
    psks,
  });
  const bob = createHandshake({
    pattern: "NNpsk0+psk2",
    initiator: false,
    psks,
  });
  await bob.readMessage(await alice.writeMessage());
  await alice.readMessage(await bob.writeMessage());
  assert.ok(alice.isComplete && bob.isComplete);
  assert.deepEqual(alice.handshakeHash, bob.handshakeHash);

  const wrong = createHandshake({
    pattern: "NNpsk0+psk2",
    initiator: false,
    psks: [psks[0], new Uint8Array(32)],
  });
  const eve = createHandshake({
    pattern: "NNpsk0+psk2",
    initiator: true,
    psks,
  });
  await wrong.readMessage(await eve.writeMessage());
  await assert.rejects(
    eve.readMessage(await wrong.writeMessage()),
    HandshakeError,
  );
});

Deno.test("createHandshake rejects unknown patterns and missing or extra keys", () => {
  assert.throws(
    () => createHandshake({ pattern: "ZZ", initiator: true }),
    ArgumentError,
  );
  assert.throws(
    () => createHandshake({ pattern: "XXpsk9", initiator: true }),
    ArgumentError,
  );
  assert.throws(
    () => createHandshake({ pattern: "XX", initiator: true }),
    /staticKeyPair/,
  );
  assert.throws(
    () => createHandshake({ pattern: "NK", initiator: true }),
    /remoteStaticPublicKey/,
  );
  assert.throws(
    () =>
      createHandshake({
        pattern: "XX",
        initiator: true,
        staticKeyPair: generateX25519KeyPair(),
        remoteStaticPublicKey: new Uint8Array(32),
      }),
    ArgumentError,
  );
  assert.throws(
    () => createHandshake({ pattern: "NNpsk0", initiator: true }),
    /1 psk/,
  );
  assert.throws(
    () =>
      createHandshake({
        pattern: "NNpsk0",
        initiator: true,
        psks: [new Uint8Array(31)],
      }),
    ArgumentError,
  );
});

Deno.test("handshake refuses steps out of turn and a second split", async () => {
  const alice = createHandshake({ pattern: "NN", initiator: true });
  const bob = createHandshake({ pattern: "NN", initiator: false });
  await assert.rejects(bob.writeMessage(), /initiator's turn/);
  const first = await alice.writeMessage();
  await assert.rejects(alice.writeMessage(), HandshakeError);
  assert.throws(() => alice.split(), /incomplete/);
  await bob.readMessage(first);
  await alice.readMessage(await bob.writeMessage());
  alice.split();
  assert.throws(() => alice.split(), /already split/);
  await assert.rejects(alice.writeMessage(), /complete/);
});

// Low-order X25519 points: 0, 1, p - 1, p, p + 1, the two order-8 points
// (cr.yp.to/ecdh.html#validate), and 0 and 1 with the ignored top bit set.
const P = 2n ** 255n - 19n;
function littleEndian(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
}
const LOW_ORDER_POINTS: [string, Uint8Array][] = [
  ["0", littleEndian(0n)],
  ["1", littleEndian(1n)],
  ["p - 1", littleEndian(P - 1n)],
  ["p", littleEndian(P)],
  ["p + 1", littleEndian(P + 1n)],
  [
    "order 8 (e0eb…b800)",
    fromHex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
  ],
  [
    "order 8 (5f9c…1157)",
    fromHex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
  ],
  ["0 with bit 255 set", littleEndian(2n ** 255n)],
  ["1 with bit 255 set", littleEndian(2n ** 255n + 1n)],
];

Deno.test("handshake rejects low-order ephemeral keys with HandshakeError", async () => {
  const responderStatic = generateX25519KeyPair();
  for (const [name, point] of LOW_ORDER_POINTS) {
    // NK responder: reading "e, es" runs DH(s, re) on the received key.
    const responder = createHandshake({
      pattern: "NK",
      initiator: false,
      staticKeyPair: responderStatic,
    });
    const message = new Uint8Array(32 + 16);
    message.set(point);
    await assert.rejects(
      responder.readMessage(message),
      (error) =>
        error instanceof HandshakeError &&
        /low-order point/.test(error.message),
      name,
    );
    // XX initiator: reading "e, ee, s, es" runs DH(e, re).
    const initiator = createHandshake({
      pattern: "XX",
      initiator: true,
      staticKeyPair: generateX25519KeyPair(),
    });
    await initiator.writeMessage();
    const reply = new Uint8Array(32 + 48 + 16);
    reply.set(point);
    await assert.rejects(
      initiator.readMessage(reply),
      (error) => error instanceof HandshakeError && /all zeros/.test(error.message),
      name,
    );
  }
});

Deno.test("handshake rejects a low-order pre-shared remote static key", async () => {
  const alice = createHandshake({
    pattern: "NK",
    initiator: true,
    remoteStaticPublicKey: new Uint8Array(32),
  });
  await assert.rejects(alice.writeMessage(), HandshakeError);
});

Deno.test("handshake enforces the 65535-byte Noise message limit", async () => {
  const alice = createHandshake({ pattern: "NN", initiator: true });
  // Message 1 of NN is e (32 bytes) and a cleartext payload.
  await assert.rejects(
    alice.writeMessage(new Uint8Array(MAX_MESSAGE_LENGTH - 31)),
    /65536-byte message/,
  );
  const first = await alice.writeMessage(
    new Uint8Array(MAX_MESSAGE_LENGTH - 32),
  );
  assert.equal(first.length, MAX_MESSAGE_LENGTH);
  const bob = createHandshake({ pattern: "NN", initiator: false });
  await assert.rejects(
    bob.readMessage(new Uint8Array(MAX_MESSAGE_LENGTH + 1)),
    HandshakeError,
  );
  await assert.rejects(
    createHandshake({ pattern: "NN", initiator: false }).readMessage(
      new Uint8Array(31),
    ),
    /truncated/,
  );
});

Deno.test("CipherState enforces the transport message limit", async () => {
  const { alice, bob } = await handshakeXX();
  await assert.rejects(
    alice.send.encrypt(new Uint8Array(MAX_PLAINTEXT_LENGTH + 1)),
    SizeLimitError,
  );
  assert.equal(alice.send.nonce, 0n);
  await assert.rejects(
    bob.receive.decrypt(new Uint8Array(MAX_MESSAGE_LENGTH + 1)),
    DecryptError,
  );
  assert.equal(bob.receive.nonce, 0n);
});

for (const backend of BACKENDS) {
  Deno.test(`CipherState (${backend}) rejects tampered, truncated and wrong-AD ciphertexts without advancing the nonce`, async () => {
    const { alice, bob } = await handshakeXX(backend);
    for (const size of [10, 2000]) {
      const plaintext = crypto.getRandomValues(new Uint8Array(size));
      const sealed = await alice.send.encrypt(plaintext);
      const before = bob.receive.nonce;
      for (const index of [0, size - 1, size, sealed.length - 1]) {
        const tampered = sealed.slice();
        tampered[index] ^= 0x01;
        await assert.rejects(bob.receive.decrypt(tampered), DecryptError);
      }
      await assert.rejects(
        bob.receive.decrypt(sealed.subarray(0, 15)),
        DecryptError,
      );
      await assert.rejects(
        bob.receive.decrypt(sealed, { ad: encoder.encode("x") }),
        DecryptError,
      );
      assert.equal(bob.receive.nonce, before);
      assert.deepEqual(await bob.receive.decrypt(sealed), plaintext);
      assert.equal(bob.receive.nonce, before + 1n);
    }
  });

  Deno.test(`CipherState (${backend}) rejects replayed and reordered messages`, async () => {
    const { alice, bob } = await handshakeXX(backend);
    const m1 = await alice.send.encrypt(encoder.encode("one"));
    const m2 = await alice.send.encrypt(encoder.encode("two"));
    await assert.rejects(bob.receive.decrypt(m2), DecryptError);
    assert.deepEqual(await bob.receive.decrypt(m1), encoder.encode("one"));
    await assert.rejects(bob.receive.decrypt(m1), DecryptError);
    assert.deepEqual(await bob.receive.decrypt(m2), encoder.encode("two"));
  });
}

Deno.test("CipherState refuses to use the reserved nonce 2^64 - 1", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const sender = new CipherState(key);
  const receiver = new CipherState(key);
  sender.setNonce(MAX_NONCE - 1n);
  receiver.setNonce(MAX_NONCE - 1n);
  const last = await sender.encrypt(encoder.encode("last"));
  assert.equal(sender.nonce, MAX_NONCE);
  await assert.rejects(
    sender.encrypt(encoder.encode("one too many")),
    NonceExhaustedError,
  );
  assert.equal(sender.nonce, MAX_NONCE);
  assert.deepEqual(await receiver.decrypt(last), encoder.encode("last"));
  await assert.rejects(receiver.decrypt(last), NonceExhaustedError);
});

Deno.test("CipherState stops at a configured nonceLimit", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const state = new CipherState(key, { nonceLimit: 3n });
  for (let i = 0; i < 3; i++) await state.encrypt(new Uint8Array(1));
  await assert.rejects(state.encrypt(new Uint8Array(1)), /reached the limit 3/);
  assert.throws(
    () => new CipherState(key, { nonceLimit: MAX_NONCE + 1n }),
    ArgumentError,
  );
});

Deno.test("CipherState.setNonce never moves the nonce backwards", async () => {
  const state = new CipherState(new Uint8Array(32));
  await state.encrypt(new Uint8Array(0));
  assert.throws(() => state.setNonce(0n), ArgumentError);
  assert.throws(() => state.setNonce(MAX_NONCE + 1n), ArgumentError);
  state.setNonce(5n);
  assert.equal(state.nonce, 5n);
});

Deno.test("CipherState serializes concurrent calls in nonce order", async () => {
  const { alice, bob } = await handshakeXX("webcrypto");
  const messages = [60_000, 10, 20_000, 0, 300].map((size) =>
    crypto.getRandomValues(new Uint8Array(size))
  );
  const sealed = await Promise.all(messages.map((m) => alice.send.encrypt(m)));
  const opened = await Promise.all(sealed.map((m) => bob.receive.decrypt(m)));
  assert.deepEqual(opened, messages);
});

Deno.test("CipherState.rekey derives the key from ENCRYPT(k, 2^64 - 1, zeros) and keeps the nonce", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const expectedKey = (await createAesGcm(key).encrypt(MAX_NONCE, new Uint8Array(32)))
    .subarray(0, 32);
  const sender = new CipherState(key);
  const receiver = new CipherState(key);
  await receiver.decrypt(await sender.encrypt(encoder.encode("before")));
  await sender.rekey();
  await receiver.rekey();
  assert.equal(sender.nonce, 1n);
  const after = await sender.encrypt(encoder.encode("after"));
  const reference = new CipherState(expectedKey);
  reference.setNonce(1n);
  assert.deepEqual(after, await reference.encrypt(encoder.encode("after")));
  assert.deepEqual(await receiver.decrypt(after), encoder.encode("after"));
  const stale = new CipherState(key);
  stale.setNonce(1n);
  await assert.rejects(stale.decrypt(after), DecryptError);
});

Deno.test("WebCrypto and noble AES-GCM produce identical ciphertexts", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ minLength: 32, maxLength: 32 }),
      fc.bigInt({ min: 0n, max: MAX_NONCE }),
      fc.uint8Array({ maxLength: 2048 }),
      fc.uint8Array({ maxLength: 64 }),
      async (key, nonce, plaintext, ad) => {
        const web = createAesGcm(key, { backend: "webcrypto" });
        const noble = createAesGcm(key, { backend: "noble" });
        const a = await web.encrypt(nonce, plaintext, { ad });
        const b = await noble.encrypt(nonce, plaintext, { ad });
        assert.deepEqual(a, b);
        assert.deepEqual(await web.decrypt(nonce, b, { ad }), plaintext);
        assert.deepEqual(await noble.decrypt(nonce, a, { ad }), plaintext);
      },
    ),
    { numRuns: 40 },
  );
});

const noOpenSsl = aesGcmImplementation() !== "openssl";
if (noOpenSsl) console.log("OpenSSL AES-GCM tests skipped: no --allow-ffi, or no libcrypto 3");

Deno.test({
  name: "OpenSSL (FFI) and WebCrypto AES-GCM agree on random sizes 0 to 65535, keys, nonces and AD",
  ignore: noOpenSsl,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.bigInt({ min: 0n, max: MAX_NONCE }),
        fc.integer({ min: 0, max: 65535 }),
        fc.uint8Array({ maxLength: 64 }),
        fc.integer({ min: 0, max: 31 }),
        async (key, nonce, size, ad, offset) => {
          // A view at an odd offset into a larger buffer, as the channel passes.
          const backing = new Uint8Array(size + offset + 7);
          for (let at = 0; at < backing.length; at += 65536) {
            crypto.getRandomValues(backing.subarray(at, at + 65536));
          }
          const plaintext = backing.subarray(offset, offset + size);
          const web = createAesGcm(key, { backend: "webcrypto" });
          const ssl = createAesGcm(key, { backend: "openssl" });
          const a = await web.encrypt(nonce, plaintext, { ad });
          const b = await ssl.encrypt(nonce, plaintext, { ad });
          assert.deepEqual(b, a);
          assert.deepEqual(await ssl.decrypt(nonce, a, { ad }), plaintext);
          assert.deepEqual(await web.decrypt(nonce, b, { ad }), plaintext);
          const tampered = b.slice();
          tampered[(size * 7 + offset) % tampered.length] ^= 0x80;
          await assert.rejects(ssl.decrypt(nonce, tampered, { ad }), DecryptError);
          await assert.rejects(ssl.decrypt(nonce ^ 1n, b, { ad }), DecryptError);
          await assert.rejects(ssl.decrypt(nonce, b.subarray(0, 15), { ad }), DecryptError);
          // The key is usable after a failure (the contexts are reset per message).
          assert.deepEqual(await ssl.decrypt(nonce, b, { ad }), plaintext);
        },
      ),
      { numRuns: 200 },
    );
  },
});

Deno.test("AES-GCM uses the Noise nonce layout (4 zero bytes, 64-bit big-endian counter)", async () => {
  // The 12-byte IV built by hand, fed to WebCrypto directly.
  const key = crypto.getRandomValues(new Uint8Array(32));
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, 0x0102030405060708n);
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    key,
    "AES-GCM",
    false,
    ["encrypt"],
  );
  const expected = new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv },
      cryptoKey,
      new Uint8Array(5),
    ),
  );
  const actual = await createAesGcm(key, { backend: "noble" }).encrypt(
    0x0102030405060708n,
    new Uint8Array(5),
  );
  assert.deepEqual(actual, expected);
});
