// `carrier run` and `carrier ping` as processes on loopback; commands on standard input.
import assert from "node:assert/strict";
import { carrier, CarrierProcess, closedPort, type Line, settle, startNode } from "./_cli.ts";

Deno.test("two carrier run processes connect, a third pings one, and signals stop them", async () => {
  const dir = await Deno.makeTempDir();
  const a = new CarrierProcess([
    "run",
    "--listen",
    "127.0.0.1:0",
    "--key",
    `${dir}/a.key`,
    "--difficulty",
    "0",
    "--no-stdin",
    "--json",
  ]);
  let b: CarrierProcess | undefined;
  try {
    // A missing key file is created first, then the node listens.
    const keygen = await a.take(() => true);
    assert.equal(keygen.event, "keygen");
    const listening = await a.take(() => true);
    assert.equal(listening.event, "listening");
    assert.equal(listening.address, keygen.address);
    // Run without --allow-ffi (tests/_cli.ts): the fallback AES-256-GCM, and it says so.
    assert.equal(listening.aesGcm, "webcrypto+node", "the AES-256-GCM backend it reports");
    const [listen] = listening.listen as string[];
    assert.match(listen, /^127\.0\.0\.1:\d+$/);
    const target = `${listening.address}@${listen}`;
    // With --no-stdin the end of input does not stop the node; a signal does.
    await a.closeStdin();

    b = new CarrierProcess([
      "run",
      "--no-listen",
      "--bootstrap",
      target,
      "--difficulty",
      "0",
      "--json",
    ]);
    const bListening = await b.event("listening");
    assert.deepEqual(bListening.listen, []);
    await b.event("peer:connect", { address: listening.address });
    await a.event("peer:connect", { address: bListening.address });

    const ping = await carrier([
      "ping",
      target,
      "--difficulty",
      "0",
      "--count",
      "2",
      "--json",
    ]);
    assert.equal(ping.code, 0, ping.stderr);
    const pongs = ping.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(pongs.length, 2);
    for (const pong of pongs) {
      assert.equal(pong.event, "pong");
      assert.equal(pong.address, listening.address);
      assert.ok(typeof pong.rtt_ms === "number" && pong.rtt_ms >= 0);
    }

    // SIGTERM closes a node as cleanly as `quit` does.
    assert.equal(await b.kill("SIGTERM"), 0);
    await b.event("closed");
    await a.event("peer:disconnect", { address: bListening.address });
    assert.equal(await a.kill("SIGTERM"), 0);
    await a.event("closed");
  } finally {
    await b?.[Symbol.asyncDispose]();
    await a[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("carrier ping exits with distinct codes for a bad address, refusal and a wrong identity", async () => {
  const ping = (target: string) =>
    carrier(["ping", target, "--difficulty", "0", "--timeout", "2000"]);
  const bad = await ping("not-an-address@127.0.0.1:1");
  assert.equal(bad.code, 4);
  assert.match(bad.stderr, /PeerAddressError/);
  const dir = await Deno.makeTempDir();
  const a = await startNode();
  try {
    const keygen = await carrier(["keygen", "--out", `${dir}/other.key`, "--difficulty", "0"]);
    const other = keygen.stdout.trim();
    // A port nothing listens on: refused.
    const refused = await ping(`${other}@127.0.0.1:${closedPort()}`);
    assert.equal(refused.code, 5, refused.stderr);
    assert.match(refused.stderr, /DialError: Cannot dial 127\.0\.0\.1:\d+/);
    // A real node answering with another identity than the one asked for.
    const mismatch = await ping(`${other}@${a.peerAddress!.split("@")[1]}`);
    assert.equal(mismatch.code, 7, mismatch.stderr);
    assert.match(mismatch.stderr, /IdentityMismatchError/);
  } finally {
    await a.process[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two carrier run processes exchange SHOUT, SPEAK and WHISPER typed on standard input", async () => {
  const a = await startNode();
  const b = await startNode("--bootstrap", a.peerAddress!, "--serve-metrics");
  const dir = await Deno.makeTempDir();
  try {
    await a.process.event("peer:connect", { address: b.address });
    await b.process.event("peer:connect", { address: a.address });

    const shout = await a.process.command("shout --topic news 'hello,  everyone'");
    assert.equal(shout.ok, true, JSON.stringify(shout));
    assert.match(shout.id, /^[0-9a-f]{64}$/);
    assert.equal(shout.topic, "news");
    assert.equal(shout.sent, 1);
    const heard = await b.process.event("shout");
    assert.deepEqual(
      { from: heard.from, topic: heard.topic, body: heard.body, hops: heard.hops },
      { from: a.address, topic: "news", body: "hello,  everyone", hops: 1 },
    );

    const speak = await b.process.command(`speak ${a.address} --topic chat it's me`);
    assert.deepEqual(speak, { command: "speak", ok: true, to: a.address, topic: "chat", sent: 1 });
    const spoken = await a.process.event("speak");
    assert.deepEqual(spoken, { event: "speak", from: b.address, topic: "chat", body: "it's me" });
    const all = await a.process.command("speak --all to all of you");
    assert.deepEqual(all, { command: "speak", ok: true, all: true, topic: "", sent: 1 });
    assert.equal((await b.process.event("speak")).body, "to all of you");

    const sealed = await a.process.command(`whisper ${b.address} psst`);
    assert.equal(sealed.ok, true, JSON.stringify(sealed));
    assert.deepEqual(
      [sealed.to, sealed.encrypted, sealed.hops, sealed.hash.length],
      [b.address, true, 1, 64],
    );
    const whisper = await b.process.event("whisper");
    assert.deepEqual(whisper, {
      event: "whisper",
      from: a.address,
      topic: "",
      body: "psst",
      encrypted: true,
    });
    const plain = await b.process.command(`whisper ${a.address} --plain --topic t "in the clear"`);
    assert.equal(plain.encrypted, false);
    const clear = await a.process.event("whisper");
    assert.deepEqual([clear.body, clear.topic, clear.encrypted], ["in the clear", "t", false]);

    // peers, ping and metrics.
    const peers = await a.process.command("peers");
    assert.equal(peers.ok, true);
    assert.equal(peers.peers.length, 1);
    const [peer] = peers.peers;
    assert.equal(peer.address, b.address);
    assert.equal(peer.direction, "inbound");
    assert.deepEqual(peer.listen, [b.peerAddress!.split("@")[1]]);
    assert.ok(peers.contacts >= 1);
    const bPeers = await b.process.command("peers");
    assert.equal(bPeers.peers[0].direction, "outbound");
    const pong = await a.process.command(`ping ${b.address}`);
    assert.ok(pong.ok && pong.rtt_ms >= 0, JSON.stringify(pong));
    const metrics = await a.process.command("metrics");
    assert.equal(metrics.ok, true);
    assert.equal(metrics.metrics.connections.inbound, 1);
    assert.equal(metrics.metrics.shouts.originated, 1);
    assert.equal(metrics.metrics.whispers.delivered, 1);
    assert.ok(metrics.metrics.totals.framesSent >= 4);
    assert.equal(metrics.metrics.peers[0].address, b.address);
    // A peer's metrics, from a node that serves them.
    const remote = await a.process.command(`metrics ${b.address}`);
    assert.equal(remote.ok, true, JSON.stringify(remote));
    assert.equal(remote.address, b.address);
    assert.equal(remote.metrics.connections.inbound, 1);
    // ... and the refusal of one that does not.
    const refused = await b.process.command(`metrics ${a.address}`);
    assert.equal(refused.ok, false);
    assert.equal(refused.error.name, "NackError");
    assert.match(refused.error.message, /metrics are not served/);

    // Bad lines are reported and the node keeps running.
    const failures: [string, string, RegExp][] = [
      ["frobnicate now", "UsageError", /unknown command "frobnicate"/],
      ["shout", "UsageError", /TEXT is missing/],
      ["shout --colour red hi", "UsageError", /Unknown option '--colour'/],
      ["speak not-an-address hi", "AddressError", /Cannot parse address "not-an-address"/],
      ["whisper 'unterminated", "UsageError", /unterminated ' quote/],
      ["peers now", "UsageError", /unexpected argument "now"/],
    ];
    for (const [line, name, message] of failures) {
      const result = await a.process.command(line);
      assert.equal(result.ok, false, line);
      assert.equal(result.error.name, name, line);
      assert.match(result.error.message, message, line);
    }
    const usage = await a.process.command("shout");
    assert.equal(usage.usage, "shout [--topic T] TEXT");
    const stranger = (await carrier(["keygen", "--out", `${dir}/x.key`, "--difficulty", "0"]))
      .stdout.trim();
    const notConnected = await a.process.command(`speak ${stranger} hello?`);
    assert.deepEqual(notConnected.error, {
      name: "ConnectionClosedError",
      message: `Not connected to ${stranger}`,
    });
    // Still running: it answers.
    assert.equal((await a.process.command("peers")).peers.length, 1);

    // help lists every command; COMMAND --help and help COMMAND give its options.
    const help = await a.process.command("help");
    assert.deepEqual(
      help.commands.map((c: Line) => c.name),
      [
        "shout",
        "speak",
        "whisper",
        "connect",
        "ping",
        "peers",
        "metrics",
        "limits",
        ...["get", "put", "cas", "lock", "unlock", "patch", "changes"].map((c) => `dht ${c}`),
        "help",
        "quit",
      ],
    );
    // limits prints the node's resource budget.
    const limits = await a.process.command("limits");
    assert.equal(limits.ok, true);
    const inbound = limits.lines.find((l: Line) => l.option === "maxInbound");
    assert.deepEqual([inbound.limit, inbound.perIp], [64, 8]);
    assert.equal(limits.totalBytes, limits.lines.reduce((n: number, l: Line) => n + l.bytes, 0));
    const whisperHelp = await a.process.command("whisper --help");
    assert.match(whisperHelp.help, /--plain/);
    assert.match(whisperHelp.help, /--topic T/);
    assert.equal((await a.process.command("help speak")).help.includes("--all"), true);

    // quit closes the node cleanly; the other side sees it go.
    const quit = await b.process.command("quit");
    assert.deepEqual(quit, { command: "quit", ok: true });
    await b.process.event("closed");
    assert.equal(await b.process.status(), 0);
    await a.process.event("peer:disconnect", { address: b.address });
    // The end of input quits too.
    await a.process.closeStdin();
    await a.process.event("closed");
    assert.equal(await a.process.status(), 0);
  } finally {
    await b.process[Symbol.asyncDispose]();
    await a.process[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("three carrier run processes, one outbound-only: SHOUT reaches both others, WHISPER reaches the outbound-only one", async () => {
  const a = await startNode();
  const b = await startNode("--bootstrap", a.peerAddress!);
  const c = await startNode("--no-listen", "--bootstrap", a.peerAddress!);
  const nodes = [a, b, c];
  try {
    assert.equal(c.peerAddress, undefined);
    await b.process.event("peer:connect", { address: a.address });
    await c.process.event("peer:connect", { address: a.address });
    await a.process.event("peer:connect", { address: b.address });
    await a.process.event("peer:connect", { address: c.address });
    await settle(nodes, 2);

    // A SHOUT from each node reaches the two others, once each.
    for (const [i, from] of nodes.entries()) {
      const result = await from.process.command(`shout --topic round${i} from node ${i}`);
      assert.equal(result.ok, true, JSON.stringify(result));
      for (const to of nodes.filter((n) => n !== from)) {
        const heard = await to.process.event("shout", { topic: `round${i}` });
        assert.equal(heard.from, from.address);
        assert.equal(heard.body, `from node ${i}`);
      }
    }

    // WHISPER to the node that accepts no connections, from one that may not be
    // connected to it: delivered, sealed, in one hop or through a relay.
    const whisper = await b.process.command(`whisper ${c.address} for c only`);
    assert.equal(whisper.ok, true, JSON.stringify(whisper));
    assert.ok(whisper.hops >= 1 && whisper.hops <= 2, `hops ${whisper.hops}`);
    const got = await c.process.event("whisper");
    assert.deepEqual([got.from, got.body, got.encrypted], [b.address, "for c only", true]);
    // And back, signed in the clear.
    const back = await c.process.command(`whisper ${b.address} --plain got it`);
    assert.equal(back.ok, true, JSON.stringify(back));
    const reply = await b.process.event("whisper");
    assert.deepEqual([reply.from, reply.body, reply.encrypted], [c.address, "got it", false]);

    // SPEAK to one direct peer reaches that peer only.
    await a.process.command(`speak ${c.address} just c`);
    assert.equal((await c.process.event("speak")).body, "just c");
    await a.process.command("speak --all everyone direct");
    assert.equal((await b.process.event("speak")).body, "everyone direct");
    assert.equal((await c.process.event("speak")).body, "everyone direct");
    assert.ok(!b.process.parsed.some((l) => l.event === "speak" && l.body === "just c"));

    const shouts = await a.process.command("metrics");
    assert.equal(shouts.metrics.shouts.delivered, 2);
    for (const n of nodes) await n.process.closeStdin();
    for (const n of nodes) assert.equal(await n.process.status(), 0);
  } finally {
    for (const n of nodes) await n.process[Symbol.asyncDispose]();
  }
});

Deno.test("carrier run without --json prints text; errors go to standard error", async () => {
  const a = await startNode();
  const b = new CarrierProcess(
    ["run", "--no-listen", "--bootstrap", a.peerAddress!, "--difficulty", "0"],
    { json: false },
  );
  try {
    assert.match(await b.text(/^running as /), /^running as \S+ \(outbound only\)$/);
    await b.text(new RegExp(`^connected ${a.address}$`));
    await b.send("peers");
    assert.match(await b.text(/^\d+ peers?, /), /^1 peer, \d+ routing-table contacts?$/);
    assert.match(await b.text(new RegExp(a.address)), /^ {2}\S+ {2}outbound {2}127\.0\.0\.1:\d+/);
    await b.send("shout --topic t hello in text");
    assert.match(await b.text(/^shouted /), /^shouted [0-9a-f]{16}…: 1 first hop acknowledged$/);
    await a.process.event("shout", { body: "hello in text" });
    await b.send("metrics");
    assert.match(await b.text(/^shouts /), /^shouts +1 originated/);
    await b.send("nonsense");
    await b.send("quit");
    assert.equal(await b.status(), 0);
    assert.match(b.stderr, /error: nonsense: unknown command "nonsense"/);
    assert.ok(b.lines.includes("closed"));
  } finally {
    await b[Symbol.asyncDispose]();
    await a.process[Symbol.asyncDispose]();
  }
});

Deno.test("carrier run --relay relays: two outbound-only nodes connect by key alone through it", async () => {
  const relay = await startNode("--relay");
  const hidden = await startNode("--no-listen", "--bootstrap", relay.peerAddress!);
  const dialler = await startNode("--no-listen", "--bootstrap", relay.peerAddress!);
  try {
    const reserved = await hidden.process.event("relays");
    assert.deepEqual(reserved.relays, [relay.address]);
    await dialler.process.event("relays");
    // The relay's table learns the hidden node's relay from its IDENTIFY.
    for (let i = 0; i < 100; i++) {
      const connected = await dialler.process.command(`connect ${hidden.address}`);
      if (connected.ok) {
        assert.deepEqual(connected, {
          command: "connect",
          ok: true,
          address: hidden.address,
          relay: relay.address,
        });
        break;
      }
      assert.match(connected.error.message, /not found|names no relay/, JSON.stringify(connected));
      await new Promise((r) => setTimeout(r, 50));
    }
    const pong = await dialler.process.command(`ping ${hidden.address}`);
    assert.ok(pong.ok && pong.rtt_ms >= 0, JSON.stringify(pong));
    const metrics = await relay.process.command("metrics");
    assert.equal(metrics.metrics.relay.reservations, 2);
    assert.equal(metrics.metrics.relay.circuits, 1);
  } finally {
    for (const n of [dialler, hidden, relay]) await n.process[Symbol.asyncDispose]();
  }
});
