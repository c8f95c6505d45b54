// The one-shot commands, `carrier shout` and `carrier whisper`, against `carrier run` processes.
import assert from "node:assert/strict";
import { carrier, closedPort, type RunningNode, settle, startNode } from "./_cli.ts";

async function stopAll(nodes: RunningNode[]): Promise<void> {
  for (const n of nodes) await n.process[Symbol.asyncDispose]();
}

Deno.test("carrier shout and carrier whisper join through a running node, act and leave", async () => {
  const dir = await Deno.makeTempDir();
  const a = await startNode();
  const b = await startNode("--bootstrap", a.peerAddress!);
  const c = await startNode("--no-listen", "--bootstrap", a.peerAddress!);
  const nodes = [a, b, c];
  try {
    await settle(nodes, 2);
    const key = `${dir}/one-shot.key`;
    const me = (await carrier(["keygen", "--out", key, "--difficulty", "0"])).stdout.trim();

    // SHOUT: every node of the network hears it once, from the one-shot node.
    const shout = await carrier([
      "shout",
      "--bootstrap",
      a.peerAddress!,
      "--key",
      key,
      "--difficulty",
      "0",
      "--topic",
      "news",
      "--json",
      "hello",
      "network",
    ]);
    assert.equal(shout.code, 0, shout.stderr);
    const result = JSON.parse(shout.stdout);
    assert.equal(result.command, "shout");
    assert.equal(result.ok, true);
    assert.match(result.id, /^[0-9a-f]{64}$/);
    assert.ok(result.sent >= 1);
    for (const n of nodes) {
      const heard = await n.process.event("shout", { topic: "news" });
      assert.deepEqual([heard.from, heard.body], [me, "hello network"]);
    }
    // The one-shot node joined and left.
    await a.process.event("peer:connect", { address: me });
    await a.process.event("peer:disconnect", { address: me });

    // WHISPER to the node that accepts no connections, through the bootstrap node.
    const whisper = await carrier([
      "whisper",
      "--bootstrap",
      b.peerAddress!,
      "--key",
      key,
      "--difficulty",
      "0",
      "--json",
      c.address,
      "for",
      "c",
    ]);
    assert.equal(whisper.code, 0, whisper.stderr);
    const sent = JSON.parse(whisper.stdout);
    assert.deepEqual(
      [sent.command, sent.ok, sent.to, sent.encrypted],
      ["whisper", true, c.address, true],
    );
    assert.ok(sent.hops >= 1 && sent.hops <= 3, `hops ${sent.hops}`);
    const got = await c.process.event("whisper");
    assert.deepEqual([got.from, got.body, got.encrypted], [me, "for c", true]);

    // In the clear, with a fresh identity, and text output.
    const plain = await carrier([
      "whisper",
      "-b",
      a.peerAddress!,
      "--difficulty",
      "0",
      "--plain",
      "--topic",
      "t",
      b.address,
      "signed only",
    ]);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(
      plain.stdout,
      new RegExp(`^whispered to ${b.address} \\(signed, in the clear\\): [1-3] hops?`),
    );
    const clear = await b.process.event("whisper", { topic: "t" });
    assert.deepEqual([clear.body, clear.encrypted], ["signed only", false]);
    assert.notEqual(clear.from, me);
  } finally {
    await stopAll(nodes);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("carrier shout and carrier whisper exit with a code per failure", async () => {
  const dir = await Deno.makeTempDir();
  const a = await startNode();
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) held.push(conn); // accepts, never answers
  })().catch(() => {});
  try {
    const other = (await carrier(["keygen", "--out", `${dir}/other.key`, "--difficulty", "0"]))
      .stdout.trim();
    const port = a.peerAddress!.split("@")[1];
    const shout = (...args: string[]) => carrier(["shout", "--difficulty", "0", ...args]);
    const whisper = (...args: string[]) => carrier(["whisper", "--difficulty", "0", ...args]);

    // 2: usage, with the usage on standard error.
    for (
      const [run, message] of [
        [shout("hello"), /--bootstrap ADDRESS@HOST:PORT is required/],
        [shout("--bootstrap", a.peerAddress!), /TEXT is missing/],
        [whisper("--bootstrap", a.peerAddress!), /ADDRESS is missing/],
        [whisper("--bootstrap", a.peerAddress!, a.address), /TEXT is missing/],
        [shout("--bootstrap", a.peerAddress!, "--timeout", "0", "hi"), /--timeout must be/],
        [shout("--bootstrap", a.peerAddress!, "--loud", "hi"), /Unknown option '--loud'/],
      ] as const
    ) {
      const { code, stderr } = await run;
      assert.equal(code, 2, stderr);
      assert.match(stderr, message);
      assert.match(stderr, /^Usage: carrier (shout|whisper) --bootstrap ADDRESS@HOST:PORT/m);
    }

    // 3: a bad key file.
    await Deno.writeFile(`${dir}/bad.key`, new Uint8Array(10));
    const badKey = await shout("--bootstrap", a.peerAddress!, "--key", `${dir}/bad.key`, "hi");
    assert.equal(badKey.code, 3, badKey.stderr);
    assert.match(badKey.stderr, /KeyFileError: .*expected 72 bytes, got 10/);

    // 4: a malformed bootstrap or recipient address.
    const badPeer = await shout("--bootstrap", "nobody@127.0.0.1:1", "hi");
    assert.equal(badPeer.code, 4, badPeer.stderr);
    assert.match(badPeer.stderr, /PeerAddressError/);
    const badRecipient = await whisper("--bootstrap", a.peerAddress!, "not-an-address", "hi");
    assert.equal(badRecipient.code, 4, badRecipient.stderr);
    assert.match(badRecipient.stderr, /AddressError: Cannot parse address "not-an-address"/);

    // 5: nothing listens at the bootstrap's port; or no route to the recipient.
    const refused = await shout("--bootstrap", `${a.address}@127.0.0.1:${closedPort()}`, "hi");
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /DialError: Cannot dial 127\.0\.0\.1:\d+/);
    const noRoute = await whisper("--bootstrap", a.peerAddress!, other, "anyone?");
    assert.equal(noRoute.code, 5, noRoute.stderr);
    assert.match(noRoute.stderr, /NackError: .*UNREACHABLE: No route to/);

    // 6: the bootstrap accepts the connection and never answers.
    const at = `127.0.0.1:${(silent.addr as Deno.NetAddr).port}`;
    const slow = await shout("--bootstrap", `${a.address}@${at}`, "--timeout", "300", "hi");
    assert.equal(slow.code, 6, slow.stderr);
    assert.match(slow.stderr, /TimeoutError: .*300 ms/);

    // 7: the bootstrap proves another identity.
    const mismatch = await shout("--bootstrap", `${other}@${port}`, "hi");
    assert.equal(mismatch.code, 7, mismatch.stderr);
    assert.match(mismatch.stderr, /IdentityMismatchError/);
  } finally {
    silent.close();
    await accepting;
    for (const conn of held) conn.close();
    await a.process[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
