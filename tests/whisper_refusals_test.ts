// WHISPER refusals as the README's Protocol section ("Refusals", "WHISPER")
// assigns them: the clock window, one reason per way a whisper fails to open,
// a relay's TIMEOUT and its ttl cap, and replays ACKed but not redelivered.
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createNode, type Node } from "../mod.ts";
import { NackError } from "../lib/errors.ts";
import {
  NackReason,
  WhisperAckSchema,
  WhisperEnvelopeSchema,
  WhisperSchema,
} from "../lib/protocol.ts";
import { Opcode } from "../lib/wire/opcodes.ts";
import type { Whisper } from "../lib/overlay/whisper.ts";
import { sealWhisper } from "../lib/overlay/whisper_seal.ts";
import { sign } from "../lib/identity/keys.ts";

const WHISPER_CONTEXT = new TextEncoder().encode("carrier/v1 whisper:");

async function pair(options: Parameters<typeof createNode>[0] = {}): Promise<[Node, Node]> {
  const a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0, ...options });
  const b = await createNode({ puzzleDifficulty: 0 });
  await b.connect(a.peerAddresses[0]);
  return [a, b];
}

/** Sends `whisper` from `b` to its peer `a` as a raw WHISPER request. */
function send(b: Node, a: Node, whisper: Whisper, timeout?: number): Promise<Uint8Array> {
  return b.peer(a.address)!.request(Opcode.WHISPER, toBinary(WhisperSchema, whisper), { timeout });
}

function refusedWith(reason: NackReason, pattern?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof NackError, String(err));
    assert.equal(NackReason[err.reason], NackReason[reason], err.message);
    if (pattern) assert.match(err.message, pattern);
    return true;
  };
}

function delivered(node: Node): string[] {
  const got: string[] = [];
  node.addEventListener("message", (e) => {
    if (e.detail.opcode === Opcode.WHISPER) got.push(new TextDecoder().decode(e.detail.body));
  });
  return got;
}

Deno.test("a WHISPER dated outside the recipient's 10-minute window is refused STALE, either way, and not delivered", async () => {
  const [a, b] = await pair();
  try {
    const got = delivered(a);
    for (const [offset, side] of [[-3_600_000, "before"], [11 * 60_000, "after"]] as const) {
      for (const encrypted of [true, false]) {
        const whisper = await sealWhisper(b.identity, a.identity.publicKey, new Uint8Array([1]), {
          encrypted,
          timestampMs: Date.now() + offset,
        });
        await assert.rejects(send(b, a, whisper), refusedWith(NackReason.STALE, new RegExp(side)));
      }
    }
    // 1970 too.
    const ancient = await sealWhisper(b.identity, a.identity.publicKey, new Uint8Array([1]), {
      timestampMs: 0,
    });
    await assert.rejects(send(b, a, ancient), refusedWith(NackReason.STALE));
    assert.deepEqual(got, []);
    assert.equal(a.metrics().whispers.rejected, 5);
    await b.whisper(a.address, "in time");
    assert.deepEqual(got, ["in time"]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("each way a WHISPER fails to open gets its specified reason", async () => {
  const [a, b] = await pair({ maxWhisperBodySize: 1000 });
  const [c] = await pair();
  try {
    const body = new Uint8Array([1, 2, 3]);
    // An encrypted whisper carrying an outer signature: MALFORMED (not BAD_SIGNATURE).
    const sealed = await sealWhisper(b.identity, a.identity.publicKey, body);
    await assert.rejects(
      send(b, a, { ...sealed, signature: new Uint8Array(64) }),
      refusedWith(NackReason.MALFORMED, /carries no signature/),
    );
    // An envelope that does not parse: MALFORMED.
    await assert.rejects(
      send(b, a, { ...sealed, encrypted: false, envelope: new Uint8Array([0xff, 0xff]) }),
      refusedWith(NackReason.MALFORMED),
    );
    // The inner recipient is another node (signed as such): MALFORMED.
    const plain = await sealWhisper(b.identity, c.identity.publicKey, body, { encrypted: false });
    await assert.rejects(
      send(b, a, { ...plain, recipient: a.identity.publicKey }),
      refusedWith(NackReason.MALFORMED, /wrong recipient/),
    );
    // A signature that does not verify: BAD_SIGNATURE.
    const mine = await sealWhisper(b.identity, a.identity.publicKey, body, { encrypted: false });
    const envelope = fromBinary(WhisperEnvelopeSchema, mine.envelope);
    const changed = toBinary(
      WhisperEnvelopeSchema,
      create(WhisperEnvelopeSchema, { ...envelope, body: new Uint8Array([9]) }),
    );
    await assert.rejects(
      send(b, a, { ...mine, envelope: changed }),
      refusedWith(NackReason.BAD_SIGNATURE, /bad signature/),
    );
    // Sealed to another key: it does not decrypt, BAD_SIGNATURE.
    const forC = await sealWhisper(b.identity, c.identity.publicKey, body);
    await assert.rejects(
      send(b, a, { ...forC, recipient: a.identity.publicKey }),
      refusedWith(NackReason.BAD_SIGNATURE, /decryption failed/),
    );
    // A body over the recipient's limit: TOO_LARGE.
    const big = await sealWhisper(b.identity, a.identity.publicKey, new Uint8Array(1001));
    await assert.rejects(send(b, a, big), refusedWith(NackReason.TOO_LARGE));
    // A properly signed, in-window plaintext whisper is delivered.
    const ok = toBinary(WhisperEnvelopeSchema, create(WhisperEnvelopeSchema, { ...envelope }));
    const reply = await send(b, a, {
      ...mine,
      envelope: ok,
      signature: sign(b.identity, new Uint8Array([...WHISPER_CONTEXT, ...ok])),
    });
    assert.equal(fromBinary(WhisperAckSchema, reply).hops, 1);
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

Deno.test("a replayed WHISPER is ACKed again and not delivered again", async () => {
  const [a, b] = await pair();
  try {
    const got = delivered(a);
    const whisper = await sealWhisper(
      b.identity,
      a.identity.publicKey,
      new TextEncoder().encode("once"),
    );
    const first = fromBinary(WhisperAckSchema, await send(b, a, whisper));
    const second = fromBinary(WhisperAckSchema, await send(b, a, whisper));
    assert.deepEqual(second, first);
    assert.deepEqual(got, ["once"]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("a relay whose next hop does not answer NACKs TIMEOUT, and lowers a huge ttl to 64", async () => {
  // S → R → T, where T claims every WHISPER and never answers it.
  const r = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const seen: Whisper[] = [];
  const t = await createNode({
    puzzleDifficulty: 0,
    services: [() => ({
      name: "black hole",
      receive({ frame }) {
        if (frame.opcode !== Opcode.WHISPER) return false;
        seen.push(fromBinary(WhisperSchema, frame.payload));
        return true;
      },
    })],
  });
  const s = await createNode({ puzzleDifficulty: 0 });
  try {
    await t.connect(r.peerAddresses[0]);
    await s.connect(r.peerAddresses[0]);
    const whisper = await sealWhisper(s.identity, t.identity.publicKey, new Uint8Array([1]), {
      ttl: 2,
    });
    // R waits 1 s per remaining hop (ttl 1 after it: 2 s); S waits longer.
    await assert.rejects(send(s, r, whisper, 5_000), refusedWith(NackReason.TIMEOUT));
    assert.equal(seen.length, 1);
    assert.equal(seen[0].ttl, 1);
    // A ttl of 2^32 − 1 reaches T as 64 (and R's wait stays bounded by it).
    const huge = await sealWhisper(s.identity, t.identity.publicKey, new Uint8Array([2]), {
      ttl: 0xffff_ffff,
    });
    const pending = send(s, r, huge, 120_000).catch((err) => err);
    for (let i = 0; i < 400 && seen.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(seen[1]?.ttl, 64);
    await s.close(); // ends the wait
    assert.ok((await pending) instanceof Error);
  } finally {
    await Promise.all([r.close(), t.close(), s.close()]);
  }
});
