// WHISPER routed over real TCP on 127.0.0.1.
import assert from "node:assert/strict";
import { createNode, type Node, type Service } from "../mod.ts";
import { NackError } from "../lib/errors.ts";
import { NackReason } from "../lib/protocol.ts";
import { Opcode } from "../lib/wire/opcodes.ts";
import { generateIdentitySync } from "../lib/identity/keys.ts";
import { toBinary } from "@bufbuild/protobuf";
import { sealWhisper } from "../lib/overlay/whisper_seal.ts";
import { WhisperSchema } from "../lib/protocol.ts";

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(check(), `timed out waiting for ${what}`);
}

function inbox(n: Node): { from: string; text: string; encrypted?: boolean }[] {
  const got: { from: string; text: string; encrypted?: boolean }[] = [];
  n.addEventListener("message", (e) => {
    if (e.detail.opcode !== Opcode.WHISPER) return;
    got.push({
      from: e.detail.from,
      text: new TextDecoder().decode(e.detail.body),
      encrypted: e.detail.encrypted,
    });
  });
  return got;
}

Deno.test("WHISPER reaches a node that only dials out, from another, through a relay that cannot read it", async () => {
  // The hub records the raw WHISPER payloads it relays.
  const seen: Uint8Array[] = [];
  const spy: Service = {
    name: "spy",
    receive: ({ frame }) => {
      if (frame.opcode === Opcode.WHISPER) seen.push(frame.payload);
      return false;
    },
  };
  const hub = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    services: [() => spy],
  });
  const b = await createNode({ puzzleDifficulty: 0 });
  const c = await createNode({ puzzleDifficulty: 0 });
  try {
    await b.connect(hub.peerAddresses[0]);
    await c.connect(hub.peerAddresses[0]);
    await until(() => hub.peers().length === 2, "the hub to see both");
    const atC = inbox(c);
    const secret = "the password is swordfish";
    const result = await b.whisper(c.address, secret, { topic: "dm" });
    assert.equal(result.hops, 2);
    assert.deepEqual(atC, [{ from: b.address, text: secret, encrypted: true }]);
    assert.equal(hub.metrics().whispers.relayed, 1);
    assert.equal(c.metrics().whispers.delivered, 1);
    // The relay saw only ciphertext.
    assert.equal(seen.length, 1);
    const relayed = new TextDecoder("latin1").decode(seen[0]);
    assert.ok(!relayed.includes("swordfish"), "the relay could read the body");
    // In the clear when asked, and answered the other way round too.
    const atB = inbox(b);
    await c.whisper(b.address, "plain reply", { encrypted: false });
    assert.deepEqual(atB, [{ from: c.address, text: "plain reply", encrypted: false }]);
  } finally {
    await Promise.all([hub.close(), b.close(), c.close()]);
  }
});

Deno.test("a node can turn WHISPER encryption off for all its messages, and one message back on", async () => {
  const a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const b = await createNode({ puzzleDifficulty: 0, encryptWhispers: false });
  try {
    await b.connect(a.peerAddresses[0]);
    const atA = inbox(a);
    await b.whisper(a.address, "clear");
    await b.whisper(a.address, "sealed", { encrypted: true });
    assert.deepEqual(atA.map((m) => [m.text, m.encrypted]), [["clear", false], ["sealed", true]]);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("a tampered WHISPER is refused with a NACK and counted, and the node keeps serving", async () => {
  const a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const b = await createNode({ puzzleDifficulty: 0 });
  try {
    await b.connect(a.peerAddresses[0]);
    const whisper = await sealWhisper(b.identity, a.identity.publicKey, new Uint8Array([1, 2, 3]));
    whisper.envelope[whisper.envelope.length - 1] ^= 1; // a relay flips a bit
    const peer = b.peer(a.address)!;
    await assert.rejects(
      () => peer.request(Opcode.WHISPER, toBinary(WhisperSchema, whisper)),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.BAD_SIGNATURE,
    );
    assert.equal(a.metrics().whispers.rejected, 1);
    assert.equal(a.metrics().whispers.delivered, 0);
    assert.ok((await b.whisper(a.address, "still here")).hops === 1);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("WHISPER to an unknown node fails with NACK UNREACHABLE", async () => {
  const a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const b = await createNode({ puzzleDifficulty: 0 });
  try {
    await b.connect(a.peerAddresses[0]);
    const nobody = generateIdentitySync({ difficulty: 0 }).address;
    await assert.rejects(
      () => b.whisper(nobody, "hello?"),
      (err: unknown) => err instanceof NackError && err.reason === NackReason.UNREACHABLE,
    );
    // Nothing was delivered anywhere, and both nodes still serve.
    assert.equal(a.metrics().whispers.delivered, 0);
    assert.ok(await b.ping(a.address) >= 0);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

Deno.test("WHISPERs between random pairs of a 20-node swarm arrive in a few hops", async () => {
  const seed = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const nodes = [seed];
  try {
    for (let i = 0; i < 19; i++) {
      nodes.push(
        await createNode({
          listen: i < 16 ? ["127.0.0.1:0"] : [],
          puzzleDifficulty: 0,
          maxOutbound: 3,
          bootstrap: [seed.peerAddresses[0]],
        }),
      );
    }
    await until(() => nodes.every((n) => n.peers().length > 0), "bootstrap connections");
    await Promise.all(nodes.map((n) => n.refreshRoutingTable()));
    const inboxes = nodes.map(inbox);
    let maxHops = 0;
    for (let i = 0; i < 12; i++) {
      const from = nodes[(i * 7 + 3) % nodes.length];
      const to = nodes[(i * 11 + 5) % nodes.length];
      if (from === to) continue;
      const { hops } = await from.whisper(to.address, `msg ${i}`);
      maxHops = Math.max(maxHops, hops);
      assert.ok(
        inboxes[nodes.indexOf(to)].some((m) => m.text === `msg ${i}` && m.from === from.address),
      );
    }
    assert.ok(maxHops <= Math.ceil(Math.log2(nodes.length)) + 1, `${maxHops} hops`);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
});
