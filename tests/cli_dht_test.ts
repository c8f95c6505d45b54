// The `dht` commands: typed on standard input of three `carrier run` processes,
// and as one-shots (`carrier dht ... --bootstrap PEER`) against them.
import assert from "node:assert/strict";
import { carrier, type Finished, type Line, type RunningNode, settle, startNode } from "./_cli.ts";

Deno.test("carrier run's dht commands write, read, compare-and-swap, lock and patch values", async () => {
  const a = await startNode();
  const b = await startNode("--bootstrap", a.peerAddress!);
  const c = await startNode("--bootstrap", a.peerAddress!);
  const nodes = [a, b, c];
  try {
    await settle(nodes, 2);
    const dht = (node: typeof a, line: string) =>
      node.process.command(line, line.split(" ", 2).join(" "));

    // put on one node, get on another.
    const put = await dht(a, "dht put greeting hello,  dht");
    assert.deepEqual([put.ok, put.key, put.version], [true, "greeting", 1], JSON.stringify(put));
    assert.ok(put.replicas >= 2, JSON.stringify(put));
    const got = await dht(b, "dht get greeting");
    assert.deepEqual(
      [got.ok, got.found, got.value, got.version],
      [true, true, "hello, dht", 1],
      JSON.stringify(got),
    );
    const missing = await dht(c, "dht get nothing-here");
    assert.deepEqual([missing.ok, missing.found], [true, false]);

    // Compare-and-swap: the expected version wins once.
    const swapped = await dht(b, "dht cas greeting --expect 1 second");
    assert.equal(swapped.ok, true, JSON.stringify(swapped));
    assert.equal(swapped.version, 2);
    const lost = await dht(c, "dht cas greeting --expect 1 too late");
    assert.equal(lost.ok, false);
    assert.equal(lost.error.name, "VersionConflictError", JSON.stringify(lost));
    assert.equal((await dht(c, "dht get greeting")).value, "second");

    // Locks: one holder at a time; fencing tokens increase.
    const lock = await dht(a, "dht lock job --ttl 5000");
    assert.equal(lock.ok, true, JSON.stringify(lock));
    assert.ok(lock.fencingToken >= 1);
    const held = await dht(b, "dht lock job");
    assert.equal(held.ok, false);
    assert.equal(held.error.name, "LockHeldError");
    assert.match(held.error.message, new RegExp(a.address));
    const notMine = await dht(b, "dht unlock job");
    assert.deepEqual([notMine.ok, notMine.error.name], [false, "UsageError"]);
    const unlocked = await dht(a, "dht unlock job");
    assert.deepEqual([unlocked.ok, unlocked.fencingToken], [true, lock.fencingToken]);
    const next = await dht(b, "dht lock job");
    assert.equal(next.ok, true, JSON.stringify(next));
    assert.ok(next.fencingToken > lock.fencingToken);

    // JSON values: a JSON Patch, and the changes since a version.
    assert.equal((await dht(a, `dht put doc '{"n": 1, "tags": []}'`)).version, 1);
    const patched = await dht(
      b,
      'dht patch doc --base 1 [{"op":"replace","path":"/n","value":2},{"op":"add","path":"/tags/-","value":"x"}]', // one word: no quotes needed
    );
    assert.equal(patched.ok, true, JSON.stringify(patched));
    assert.equal(patched.version, 2);
    assert.deepEqual(JSON.parse((await dht(c, "dht get doc")).value), { n: 2, tags: ["x"] });
    const changes = await dht(c, "dht changes doc --since 1");
    assert.equal(changes.ok, true, JSON.stringify(changes));
    assert.equal(changes.currentVersion, 2);
    assert.equal(changes.changes.length, 1);
    assert.deepEqual(
      [changes.changes[0].baseVersion, changes.changes[0].version],
      [1, 2],
    );
    assert.equal(changes.changes[0].patch.json[0].op, "replace");
    // Byte splices on a text value.
    await dht(a, "dht put text hello world");
    const spliced = await dht(
      a,
      `dht patch text --base 1 --splices '[{"offset":6,"deleteCount":5,"insert":"there"}]'`,
    );
    assert.equal(spliced.ok, true, JSON.stringify(spliced));
    assert.equal((await dht(b, "dht get text")).value, "hello there");

    // Bad lines: usage errors, a patch that does not parse, a stale base.
    const bad: [string, string, RegExp][] = [
      ["dht", "UsageError", /dht needs a subcommand/],
      ["dht fetch x", "UsageError", /unknown command "dht fetch"/],
      ["dht get", "UsageError", /KEY is missing/],
      ["dht cas greeting v", "UsageError", /--expect N is required/],
      ["dht put k --ttl 0 v", "UsageError", /--ttl must be an integer >= 1/],
      ["dht patch doc --base 2 not json", "PatchError", /not JSON/],
      ["dht patch doc --base 1 []", "VersionConflictError", /version 1/],
    ];
    for (const [line, name, message] of bad) {
      await a.process.send(line);
      const result = await a.process.take((l) => l.ok === false, line);
      assert.equal(result.error.name, name, `${line}: ${JSON.stringify(result)}`);
      assert.match(result.error.message, message, line);
    }
    // help lists them.
    const help = await a.process.command("help");
    for (const sub of ["get", "put", "cas", "lock", "unlock", "patch", "changes"]) {
      assert.ok(help.commands.some((c: { name: string }) => c.name === `dht ${sub}`), sub);
    }
    const patchHelp = await a.process.command("help dht patch");
    assert.match(patchHelp.help, /--base N/);
    assert.match(patchHelp.help, /--splices/);
  } finally {
    for (const n of nodes) await n.process[Symbol.asyncDispose]();
  }
});

Deno.test("carrier dht one-shots join through a running node, read and write the DHT, and exit with a code per outcome", async () => {
  const dir = await Deno.makeTempDir();
  const a = await startNode();
  const started = await Promise.allSettled([
    startNode("--bootstrap", a.peerAddress!),
    startNode("--bootstrap", a.peerAddress!),
  ]);
  const nodes = [a, ...started.flatMap((r) => r.status === "fulfilled" ? [r.value] : [])];
  try {
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
    const [b, c] = nodes.slice(1);
    await settle(nodes, 2);
    const keyFile = `${dir}/locker.key`;
    const locker = (await carrier(["keygen", "--out", keyFile, "--difficulty", "0"])).stdout.trim();
    /** `carrier dht SUB --bootstrap (a, b or c) --difficulty 0 ...args`. */
    const dht = (sub: string, via: RunningNode, ...args: string[]) =>
      carrier(["dht", sub, "--bootstrap", via.peerAddress!, "--difficulty", "0", ...args]);
    const json = (run: Finished) => {
      const lines = run.stdout.trim().split("\n");
      assert.equal(lines.length, 1, run.stdout);
      return JSON.parse(lines[0]);
    };

    // put from one one-shot node, get from another (and from a running node).
    const put = await dht("put", a, "--json", "greeting", "hello", "from", "a", "one-shot");
    assert.equal(put.code, 0, put.stderr);
    const written = json(put);
    assert.deepEqual(
      [written.command, written.ok, written.key, written.version],
      ["dht put", true, "greeting", 1],
    );
    assert.equal(written.replicas, 3, "every running node is a replica; the one-shot is not");
    const get = await dht("get", c, "--json", "greeting");
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(
      [json(get).found, json(get).value, json(get).version],
      [true, "hello from a one-shot", 1],
    );
    const seen = await b.process.command("dht get greeting", "dht get");
    assert.equal(seen.value, "hello from a one-shot");
    const text = await dht("get", b, "greeting");
    assert.equal(text.stdout, "greeting = hello from a one-shot (version 1)\n");

    // A missing key: exit code 1, found: false.
    const missing = await dht("get", a, "--json", "nothing-here");
    assert.equal(missing.code, 1, missing.stderr);
    assert.deepEqual(json(missing), {
      command: "dht get",
      ok: true,
      key: "nothing-here",
      found: false,
    });
    const missingText = await dht("get", a, "nothing-here");
    assert.equal(missingText.code, 1);
    assert.match(missingText.stdout, /^nothing-here: not found/);

    // Compare-and-swap: the first wins, the second exits 8 (on stdout with --json).
    const won = await dht("cas", b, "--json", "greeting", "--expect", "1", "second");
    assert.equal(won.code, 0, won.stderr);
    assert.equal(json(won).version, 2);
    const lost = await dht("cas", c, "--json", "greeting", "--expect", "1", "too late");
    assert.equal(lost.code, 8, lost.stderr);
    assert.equal(lost.stderr, "");
    const conflict = json(lost);
    assert.deepEqual(
      [conflict.command, conflict.ok, conflict.error.name, conflict.error.currentVersion],
      ["dht cas", false, "VersionConflictError", 2],
    );
    const lostText = await dht("cas", c, "greeting", "--expect", "1", "too late");
    assert.equal(lostText.code, 8);
    assert.match(lostText.stderr, /^carrier dht cas: VersionConflictError: /);

    // Locks: taken with a key file, refused to others (exit 9), released with --token.
    const lock = await dht("lock", a, "--key", keyFile, "--json", "job", "--ttl", "20000");
    assert.equal(lock.code, 0, lock.stderr);
    const lease = json(lock);
    assert.deepEqual([lease.ok, lease.key, lease.holder], [true, "job", locker]);
    assert.ok(lease.fencingToken >= 1);
    const held = await dht("lock", b, "--json", "job");
    assert.equal(held.code, 9, held.stderr);
    assert.deepEqual(
      [json(held).error.name, json(held).error.holder, json(held).error.fencingToken],
      ["LockHeldError", locker, lease.fencingToken],
    );
    const heldOnLine = await b.process.command("dht lock job", "dht lock");
    assert.equal(heldOnLine.error.holder, locker);
    // Another identity cannot release it.
    const notMine = await dht("unlock", c, "job", "--token", String(lease.fencingToken));
    assert.equal(notMine.code, 9, notMine.stderr);
    assert.match(notMine.stderr, /LockHeldError: Cannot unlock: the lock is held by /);
    const noToken = await dht("unlock", c, "--key", keyFile, "job");
    assert.equal(noToken.code, 2);
    assert.match(noToken.stderr, /--token N is required/);
    const unlock = await dht(
      "unlock",
      c,
      "--key",
      keyFile,
      "--json",
      "job",
      "--token",
      String(lease.fencingToken),
    );
    assert.equal(unlock.code, 0, unlock.stderr);
    assert.deepEqual(json(unlock), {
      command: "dht unlock",
      ok: true,
      key: "job",
      fencingToken: lease.fencingToken,
      released: true,
    });
    const again = await dht("unlock", a, "--key", keyFile, "job", "--token", "1");
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /no lease with fencing token 1 was held/);
    const next = await b.process.command("dht lock job", "dht lock");
    assert.equal(next.ok, true, JSON.stringify(next));
    assert.ok(next.fencingToken > lease.fencingToken);

    // A JSON patch, a stale one (exit 8), and the changes since version 1.
    assert.equal((await dht("put", a, "doc", '{"n":1,"tags":[]}')).code, 0);
    const patch = await dht(
      "patch",
      b,
      "--json",
      "doc",
      "--base",
      "1",
      '[{"op":"replace","path":"/n","value":2},{"op":"add","path":"/tags/-","value":"x"}]',
    );
    assert.equal(patch.code, 0, patch.stderr);
    assert.deepEqual([json(patch).ok, json(patch).version], [true, 2]);
    const stale = await dht("patch", c, "--json", "doc", "--base", "1", "[]");
    assert.equal(stale.code, 8, stale.stdout);
    assert.equal(json(stale).error.name, "VersionConflictError");
    const changes = await dht("changes", c, "--json", "doc", "--since", "1");
    assert.equal(changes.code, 0, changes.stderr);
    const history = json(changes);
    assert.equal(history.currentVersion, 2);
    assert.deepEqual(
      history.changes.map((ch: Line) => [ch.baseVersion, ch.version, ch.patch.json.length]),
      [[1, 2, 2]],
    );
    assert.deepEqual(JSON.parse(json(await dht("get", a, "--json", "doc")).value), {
      n: 2,
      tags: ["x"],
    });

    // Usage errors are JSON lines too with --json; without a node to reach.
    const usage = await carrier(["dht", "get", "--bootstrap", a.peerAddress!, "--json"]);
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, "");
    assert.deepEqual(
      [json(usage).command, json(usage).ok, json(usage).error.name, json(usage).error.message],
      ["dht get", false, "UsageError", "KEY is missing"],
    );
    assert.match(json(usage).usage, /^Usage: carrier dht get --bootstrap/);
  } finally {
    for (const n of nodes) await n.process[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true });
  }
});
