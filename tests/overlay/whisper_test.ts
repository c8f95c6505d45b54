import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import fc from "fast-check";
import { create, toBinary } from "@bufbuild/protobuf";
import { x25519 } from "@noble/curves/ed25519.js";
import { SealedWhisperSchema } from "../../lib/protocol.ts";
import { AddressError, WhisperError } from "../../lib/errors.ts";
import {
  generateIdentitySync,
  type Identity,
  identityFromSecretKey,
  sign,
  verify,
} from "../../lib/identity/keys.ts";
import {
  DEFAULT_WHISPER_TTL,
  MAX_ENCRYPTED_ENVELOPE_PAYLOAD,
  openWhisper,
  sealWhisper,
  type Whisper,
  WHISPER_NOISE_OVERHEAD,
  WHISPER_PROLOGUE,
  WHISPER_SIGNATURE_CONTEXT,
  whisperHash,
  x25519PrivateKeyFromEd25519,
  x25519PublicKeyFromEd25519,
} from "../../lib/overlay/whisper.ts";
import { createHandshake, x25519KeyPairFromPrivateKey } from "../../lib/secure/noise.ts";
import { encodePayload, Opcode } from "../../lib/wire/opcodes.ts";
import { PROTOCOL_OPCODES } from "../../lib/opcodes.ts";

const [alice, bob, carol] = Array.from(
  { length: 3 },
  () => generateIdentitySync({ difficulty: 0 }),
);
const text = (s: string) => new TextEncoder().encode(s);
const whisperSpec = PROTOCOL_OPCODES.find((s) => s.opcode === Opcode.WHISPER)!;
/** The bytes a WHISPER frame carries. */
const encode = (whisper: Whisper): Uint8Array => encodePayload(whisperSpec.request, whisper);

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

async function rejectsWith(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof WhisperError, `expected WhisperError, got ${error}`);
    assert.match(error.message, pattern);
    return true;
  });
}

/**
 * A plaintext envelope (serialized WhisperEnvelope) from `from` to `to`, with
 * the sender field rewritten to `claimedSender`. protobuf-es writes fields in
 * number order, so the sender (field 1) is bytes 2..34 after tag 0x0a and
 * length 0x20; the test checks that layout before relying on it.
 */
async function envelopeClaiming(
  from: Identity,
  to: Uint8Array,
  claimedSender: Uint8Array,
  body: Uint8Array,
): Promise<Uint8Array> {
  const plain = await sealWhisper(from, to, body, { encrypted: false });
  const bytes = plain.envelope.slice();
  assert.deepEqual([...bytes.subarray(0, 2)], [0x0a, 0x20]);
  assert.deepEqual(bytes.subarray(2, 34), from.publicKey);
  bytes.set(claimedSender, 2);
  return bytes;
}

/** One Noise X message from `from`'s converted static key to `to`'s, carrying `payload`. */
async function noiseX(from: Identity, to: Uint8Array, payload: Uint8Array): Promise<Uint8Array> {
  const handshake = createHandshake({
    pattern: "X",
    initiator: true,
    prologue: text(WHISPER_PROLOGUE),
    staticKeyPair: x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(from.secretKey)),
    remoteStaticPublicKey: x25519PublicKeyFromEd25519(to),
  });
  return await handshake.writeMessage(payload);
}

/** A Noise X message carrying `envelope` signed by `signer` (default `from`), as sealWhisper builds it. */
async function sealedNoiseX(
  from: Identity,
  to: Uint8Array,
  envelope: Uint8Array,
  signer: Identity = from,
): Promise<Uint8Array> {
  const signature = sign(signer, new Uint8Array([...text(WHISPER_SIGNATURE_CONTEXT), ...envelope]));
  const sealed = toBinary(
    SealedWhisperSchema,
    create(SealedWhisperSchema, { envelope, signature }),
  );
  return await noiseX(from, to, sealed);
}

Deno.test("sealWhisper and openWhisper round-trip an encrypted whisper", async () => {
  const body = text("meet at the usual place");
  const whisper = await sealWhisper(alice, bob.publicKey, body, {
    topic: "chat",
    nonce: 42n,
    timestampMs: 1_700_000_000_123,
  });
  assert.equal(whisper.encrypted, true);
  assert.equal(whisper.ttl, DEFAULT_WHISPER_TTL);
  assert.deepEqual(whisper.recipient, bob.publicKey);
  assert.equal(whisper.signature.length, 0);

  const content = await openWhisper(bob, whisper);
  assert.equal(content.sender, alice.address);
  assert.deepEqual(content.senderKey, alice.publicKey);
  assert.deepEqual(content.recipient, bob.publicKey);
  assert.equal(content.nonce, 42n);
  assert.equal(content.timestampMs, 1_700_000_000_123);
  assert.equal(content.topic, "chat");
  assert.deepEqual(content.body, body);
  assert.equal(content.encrypted, true);
  assert.deepEqual(
    content.hash,
    new Uint8Array(createHash("sha256").update(whisper.envelope).digest()),
  );
  assert.deepEqual(whisperHash(whisper), content.hash);
});

Deno.test("sealWhisper and openWhisper round-trip a signed plaintext whisper", async () => {
  const body = text("nothing secret here");
  const whisper = await sealWhisper(alice, bob.publicKey, body, {
    encrypted: false,
    ttl: 3,
    topic: "news",
  });
  assert.equal(whisper.encrypted, false);
  assert.equal(whisper.ttl, 3);
  assert.equal(whisper.signature.length, 64);
  // The signature is plain Ed25519 over the context string and the envelope.
  const signed = new Uint8Array([...text(WHISPER_SIGNATURE_CONTEXT), ...whisper.envelope]);
  assert.ok(verify(alice.publicKey, signed, whisper.signature));
  assert.notEqual(indexOf(whisper.envelope, body), -1);

  const content = await openWhisper(bob, whisper);
  assert.equal(content.sender, alice.address);
  assert.equal(content.topic, "news");
  assert.deepEqual(content.body, body);
  assert.equal(content.encrypted, false);
  assert.deepEqual(content.hash, whisperHash(whisper));
});

Deno.test("sealWhisper and openWhisper round-trip any content in both modes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.uint8Array({ maxLength: 2000 }),
      fc.string({ maxLength: 40 }),
      fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.boolean(),
      async (body, topic, nonce, timestampMs, encrypted) => {
        const whisper = await sealWhisper(alice, bob.publicKey, body, {
          topic,
          nonce,
          timestampMs,
          encrypted,
        });
        const content = await openWhisper(bob, whisper);
        assert.deepEqual(content.body, body);
        assert.equal(content.topic, topic);
        assert.equal(content.nonce, nonce);
        assert.equal(content.timestampMs, timestampMs);
        assert.equal(content.encrypted, encrypted);
      },
    ),
    { numRuns: 60 },
  );
});

Deno.test("sealWhisper picks a fresh random nonce and ephemeral key for every whisper", async () => {
  const body = text("same body");
  const whispers = await Promise.all(
    Array.from({ length: 20 }, () => sealWhisper(alice, bob.publicKey, body)),
  );
  const contents = await Promise.all(whispers.map((w) => openWhisper(bob, w)));
  assert.equal(new Set(contents.map((c) => c.nonce)).size, 20);
  assert.equal(new Set(whispers.map((w) => w.envelope.join())).size, 20);
});

Deno.test("an encrypted whisper is one Noise X message of the signed envelope", async () => {
  const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array(256));
  const plain = await sealWhisper(alice, bob.publicKey, new Uint8Array(256), {
    encrypted: false,
    nonce: 1n << 63n, // same varint length as most random nonces
  });
  assert.equal(WHISPER_NOISE_OVERHEAD, 96);
  // Noise adds 96 bytes; the SealedWhisper wrapper the 64-byte signature and
  // 5 bytes of framing. Random nonces are ten varint bytes with probability
  // 1/2, nine with 1/4…
  const diff = whisper.envelope.length - WHISPER_NOISE_OVERHEAD - plain.envelope.length;
  assert.ok(diff <= 69 && diff > 65, `length difference ${diff}`);
});

Deno.test("a relay can neither open nor read an encrypted whisper", async () => {
  const body = text("the distinctive secret body: 4f1c9e2b-7d3a-41ac-9e0f-5b6a8c2d1e7f");
  const whisper = await sealWhisper(alice, bob.publicKey, body, { topic: "distinctive-topic" });
  const onWire = encode(whisper);
  assert.equal(indexOf(onWire, body), -1);
  assert.equal(indexOf(onWire, body.subarray(0, 16)), -1);
  assert.equal(indexOf(onWire, text("distinctive-topic")), -1);
  // Noise X encrypts the sender's static key too: the sender stays hidden.
  assert.equal(indexOf(onWire, alice.publicKey), -1);
  assert.equal(
    indexOf(onWire, x25519PublicKeyFromEd25519(alice.publicKey)),
    -1,
  );

  await rejectsWith(openWhisper(carol, whisper), /wrong recipient/);
  // Redirecting it to itself does not help: it is sealed to Bob's key.
  await rejectsWith(
    openWhisper(carol, { ...whisper, recipient: carol.publicKey }),
    /decryption failed/,
  );
  // The sender cannot open it either.
  await rejectsWith(
    openWhisper(alice, { ...whisper, recipient: alice.publicKey }),
    /decryption failed/,
  );
});

Deno.test("openWhisper rejects an encrypted whisper with any byte of its envelope changed", async () => {
  const whisper = await sealWhisper(alice, bob.publicKey, text("do not touch"), { topic: "t" });
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: whisper.envelope.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      async (position, mask) => {
        const envelope = whisper.envelope.slice();
        envelope[position] ^= mask;
        await rejectsWith(
          openWhisper(bob, { ...whisper, envelope }),
          /decryption failed/,
        );
      },
    ),
    { numRuns: 200 },
  );
  // Every position at least once, and truncation and extension too.
  for (let position = 0; position < whisper.envelope.length; position++) {
    const envelope = whisper.envelope.slice();
    envelope[position] ^= 0x01;
    await rejectsWith(openWhisper(bob, { ...whisper, envelope }), /decryption failed/);
  }
  await rejectsWith(
    openWhisper(bob, { ...whisper, envelope: whisper.envelope.subarray(0, -1) }),
    /decryption failed/,
  );
  await rejectsWith(
    openWhisper(bob, { ...whisper, envelope: new Uint8Array([...whisper.envelope, 0]) }),
    /decryption failed/,
  );
  await rejectsWith(
    openWhisper(bob, { ...whisper, envelope: new Uint8Array(0) }),
    /decryption failed/,
  );
  // The untouched original still opens.
  assert.equal((await openWhisper(bob, whisper)).topic, "t");
});

Deno.test("openWhisper rejects a plaintext whisper whose envelope was changed", async () => {
  const body = text("pay 10 coins");
  const whisper = await sealWhisper(alice, bob.publicKey, body, { encrypted: false });
  const at = indexOf(whisper.envelope, body);
  const envelope = whisper.envelope.slice();
  envelope[at + 4] = "9".charCodeAt(0); // "pay 90 coins"
  await rejectsWith(openWhisper(bob, { ...whisper, envelope }), /bad signature/);

  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: whisper.envelope.length - 1 }),
      fc.integer({ min: 1, max: 255 }),
      async (position, mask) => {
        const envelope = whisper.envelope.slice();
        envelope[position] ^= mask;
        // Mostly a bad signature; a flip in a tag or length may leave
        // bytes that no longer parse, or a field of the wrong size; the
        // signature is checked before the recipient, so never "wrong recipient".
        await rejectsWith(
          openWhisper(bob, { ...whisper, envelope }),
          /bad signature|malformed/,
        );
      },
    ),
    { numRuns: 200 },
  );
  // A changed or missing signature fails too.
  const signature = whisper.signature.slice();
  signature[10] ^= 1;
  await rejectsWith(openWhisper(bob, { ...whisper, signature }), /bad signature/);
  await rejectsWith(
    openWhisper(bob, { ...whisper, signature: new Uint8Array(0) }),
    /bad signature/,
  );
});

Deno.test("openWhisper rejects a plaintext whisper whose sender was rewritten", async () => {
  const envelope = await envelopeClaiming(
    alice,
    bob.publicKey,
    carol.publicKey,
    text("from carol"),
  );
  const forged = await sealWhisper(alice, bob.publicKey, text("from carol"), { encrypted: false });
  // Alice signs the rewritten envelope herself: still not Carol's signature.
  const signature = sign(alice, new Uint8Array([...text(WHISPER_SIGNATURE_CONTEXT), ...envelope]));
  await rejectsWith(openWhisper(bob, { ...forged, envelope, signature }), /bad signature/);
  await rejectsWith(openWhisper(bob, { ...forged, envelope }), /bad signature/);
});

Deno.test("openWhisper rejects an encrypted whisper that claims another sender", async () => {
  // Alice seals a genuine Noise X message with her own static key, but the
  // envelope inside claims Carol as sender.
  const envelope = await envelopeClaiming(alice, bob.publicKey, carol.publicKey, text("hi"));
  const forged: Whisper = {
    ...(await sealWhisper(alice, bob.publicKey, text("hi"))),
    envelope: await sealedNoiseX(alice, bob.publicKey, envelope),
  };
  await rejectsWith(openWhisper(bob, forged), /sender mismatch/);

  // A claimed sender that is no curve point at all is a mismatch as well.
  const bogus = new Uint8Array(32).fill(0xff);
  const notAPoint = await envelopeClaiming(alice, bob.publicKey, bogus, text("hi"));
  await rejectsWith(
    openWhisper(bob, { ...forged, envelope: await sealedNoiseX(alice, bob.publicKey, notAPoint) }),
    /sender mismatch/,
  );

  // The same construction with the true sender opens: the test forges only the claim.
  const honest = await envelopeClaiming(alice, bob.publicKey, alice.publicKey, text("hi"));
  const content = await openWhisper(bob, {
    ...forged,
    envelope: await sealedNoiseX(alice, bob.publicKey, honest),
  });
  assert.equal(content.sender, alice.address);
});

Deno.test("openWhisper rejects a whisper whose outer and inner recipients differ", async () => {
  // Outer recipient rewritten by a relay: Bob sees it is not addressed to him.
  const encrypted = await sealWhisper(alice, bob.publicKey, text("x"));
  await rejectsWith(
    openWhisper(bob, { ...encrypted, recipient: carol.publicKey }),
    /wrong recipient/,
  );
  await rejectsWith(
    openWhisper(bob, { ...encrypted, recipient: new Uint8Array(31) }),
    /wrong recipient: it is addressed to a 31-byte value/,
  );

  // Plaintext sealed to Bob, redirected to Carol: the signature holds but the
  // envelope names Bob, so Carol refuses it (no replay across recipients).
  const plain = await sealWhisper(alice, bob.publicKey, text("x"), { encrypted: false });
  await rejectsWith(
    openWhisper(carol, { ...plain, recipient: carol.publicKey }),
    /wrong recipient: the envelope is addressed to/,
  );

  // Encrypted to Bob's key, but the envelope names Carol: Bob refuses it.
  const envelope = (await sealWhisper(alice, carol.publicKey, text("x"), { encrypted: false }))
    .envelope;
  await rejectsWith(
    openWhisper(bob, {
      ...encrypted,
      envelope: await sealedNoiseX(alice, bob.publicKey, envelope),
    }),
    /wrong recipient: the envelope is addressed to/,
  );
});

Deno.test("openWhisper rejects malformed envelopes", async () => {
  const plain = await sealWhisper(alice, bob.publicKey, text("x"), { encrypted: false });
  await rejectsWith(
    openWhisper(bob, { ...plain, envelope: new Uint8Array([0xff, 0xff, 0xff]) }),
    /malformed envelope/,
  );
  // Encrypted and authentic, but the payload is not a SealedWhisper…
  const encrypted = await sealWhisper(alice, bob.publicKey, text("x"));
  await rejectsWith(
    openWhisper(bob, { ...encrypted, envelope: await noiseX(alice, bob.publicKey, text("\xff")) }),
    /malformed: the decrypted payload is not a SealedWhisper/,
  );
  // …or its envelope is not a WhisperEnvelope.
  await rejectsWith(
    openWhisper(bob, {
      ...encrypted,
      envelope: await sealedNoiseX(alice, bob.publicKey, text("\xff")),
    }),
    /malformed envelope/,
  );
  // A WhisperEnvelope whose sender is not 32 bytes (field 1, length 3).
  await rejectsWith(
    openWhisper(bob, {
      ...encrypted,
      envelope: await sealedNoiseX(alice, bob.publicKey, new Uint8Array([0x0a, 3, 1, 2, 3])),
    }),
    /malformed envelope: sender is 3 bytes/,
  );
  // An encrypted whisper must not carry a signature.
  await rejectsWith(
    openWhisper(bob, { ...encrypted, signature: new Uint8Array(64) }),
    /malformed: an encrypted whisper carries no signature/,
  );
  // The outer flag is not authenticated: flipping it makes bytes that do not open.
  await assert.rejects(openWhisper(bob, { ...encrypted, encrypted: false }), WhisperError);
  await assert.rejects(openWhisper(bob, { ...plain, encrypted: true }), WhisperError);
});

Deno.test("openWhisper enforces maxBodySize in both modes", async () => {
  for (const encrypted of [true, false]) {
    const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array(1000), { encrypted });
    assert.equal((await openWhisper(bob, whisper, { maxBodySize: 1000 })).body.length, 1000);
    await rejectsWith(
      openWhisper(bob, whisper, { maxBodySize: 999 }),
      /too large: body length 1000 exceeds maxBodySize 999/,
    );
  }
  const whisper = await sealWhisper(alice, bob.publicKey, new Uint8Array(0));
  await assert.rejects(openWhisper(bob, whisper, { maxBodySize: -1 }), RangeError);
});

Deno.test("sealWhisper refuses bad arguments", async () => {
  await assert.rejects(sealWhisper(alice, new Uint8Array(31), text("x")), AddressError);
  // An address that is not an Ed25519 point has no X25519 key to encrypt to…
  await assert.rejects(sealWhisper(alice, new Uint8Array(32).fill(0xff), text("x")), AddressError);
  // …nor has the identity point, whose conversion would divide by zero.
  const identityPoint = new Uint8Array(32);
  identityPoint[0] = 1;
  await assert.rejects(sealWhisper(alice, identityPoint, text("x")), AddressError);
  // A small-order point converts to a low-order X25519 key, which Noise refuses.
  const order4 = new Uint8Array(32);
  await assert.rejects(sealWhisper(alice, order4, text("x")), AddressError);
  // Plaintext needs no conversion.
  await sealWhisper(alice, order4, text("x"), { encrypted: false });

  await assert.rejects(sealWhisper(alice, bob.publicKey, text("x"), { ttl: -1 }), RangeError);
  await assert.rejects(sealWhisper(alice, bob.publicKey, text("x"), { ttl: 1.5 }), RangeError);
  await assert.rejects(sealWhisper(alice, bob.publicKey, text("x"), { nonce: -1n }), RangeError);
  await assert.rejects(
    sealWhisper(alice, bob.publicKey, text("x"), { nonce: 2n ** 64n }),
    RangeError,
  );
  await assert.rejects(
    sealWhisper(alice, bob.publicKey, text("x"), { timestampMs: -5 }),
    RangeError,
  );
  await assert.rejects(
    sealWhisper(alice, bob.publicKey, "x" as unknown as Uint8Array),
    TypeError,
  );

  // An encrypted envelope must fit one Noise message; plaintext has no such bound here.
  const fits = MAX_ENCRYPTED_ENVELOPE_PAYLOAD - 200;
  const sealed = await sealWhisper(alice, bob.publicKey, new Uint8Array(fits));
  assert.ok(sealed.envelope.length <= 65535);
  assert.equal((await openWhisper(bob, sealed)).body.length, fits);
  await assert.rejects(
    sealWhisper(alice, bob.publicKey, new Uint8Array(MAX_ENCRYPTED_ENVELOPE_PAYLOAD)),
    new RegExp(`over the ${MAX_ENCRYPTED_ENVELOPE_PAYLOAD} one Noise message can carry`),
  );
  const big = await sealWhisper(alice, bob.publicKey, new Uint8Array(100_000), {
    encrypted: false,
  });
  assert.equal((await openWhisper(bob, big)).body.length, 100_000);
});

Deno.test("sealWhisper and openWhisper honour an aborted signal", async () => {
  const signal = AbortSignal.abort(new Error("stop"));
  await assert.rejects(sealWhisper(alice, bob.publicKey, text("x"), { signal }), /stop/);
  const whisper = await sealWhisper(alice, bob.publicKey, text("x"));
  await assert.rejects(openWhisper(bob, whisper, { signal }), /stop/);
});

Deno.test("Ed25519 to X25519 conversion agrees for the public and the secret half", () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
      const identity = identityFromSecretKey(seed);
      const privateKey = x25519PrivateKeyFromEd25519(identity.secretKey);
      const fromPublic = x25519PublicKeyFromEd25519(identity.publicKey);
      // Two independent X25519 implementations: node:crypto (noise.ts) and noble.
      assert.deepEqual(x25519KeyPairFromPrivateKey(privateKey).publicKey, fromPublic);
      assert.deepEqual(x25519.getPublicKey(privateKey), fromPublic);
    }),
    { numRuns: 100 },
  );
  // And the converted keys agree on a shared secret both ways.
  const a = x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(alice.secretKey));
  const b = x25519KeyPairFromPrivateKey(x25519PrivateKeyFromEd25519(bob.secretKey));
  assert.deepEqual(
    x25519.getSharedSecret(a.privateKey, x25519PublicKeyFromEd25519(bob.publicKey)),
    x25519.getSharedSecret(b.privateKey, x25519PublicKeyFromEd25519(alice.publicKey)),
  );
  assert.deepEqual(a.publicKey, x25519PublicKeyFromEd25519(alice.publicKey));
  assert.throws(() => x25519PublicKeyFromEd25519(new Uint8Array(31)), AddressError);
  assert.throws(() => x25519PrivateKeyFromEd25519(new Uint8Array(33)), RangeError);
});

Deno.test("openWhisper binds an encrypted sender's exact key, not only its X25519 conversion", async () => {
  // Ed25519 -> X25519 drops the sign of x: the negated point -A converts to
  // Alice's X25519 key, so Noise alone would let Alice claim -A. The
  // signature inside the sealed payload binds the exact key.
  const negated = alice.publicKey.slice();
  negated[31] ^= 0x80;
  assert.deepEqual(
    x25519PublicKeyFromEd25519(negated),
    x25519PublicKeyFromEd25519(alice.publicKey),
  );
  const envelope = await envelopeClaiming(alice, bob.publicKey, negated, text("alias"));
  const whisper: Whisper = {
    ...(await sealWhisper(alice, bob.publicKey, text("alias"))),
    envelope: await sealedNoiseX(alice, bob.publicKey, envelope),
  };
  await rejectsWith(openWhisper(bob, whisper), /bad signature/);
  // The same holds in plaintext mode.
  const plain = await sealWhisper(alice, bob.publicKey, text("alias"), { encrypted: false });
  await rejectsWith(
    openWhisper(bob, {
      ...plain,
      envelope: await envelopeClaiming(alice, bob.publicKey, negated, text("alias")),
    }),
    /bad signature/,
  );
});
