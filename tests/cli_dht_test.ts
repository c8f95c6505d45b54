// The `dht` commands of `carrier run`, typed on standard input of three processes.
import assert from "node:assert/strict";
import { settle, startNode } from "./_cli.ts";

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
