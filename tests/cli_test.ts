// The CLI through `deno run cli.ts`, as users (and `deno task demo`) run it.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));

async function carrier(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-net",
      "--allow-env",
      CLI,
      ...args,
    ],
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

Deno.test("carrier demo shows an identity, frames, compression, a few nodes and a 24-node swarm", async () => {
  const { code, stdout } = await carrier("demo");
  assert.equal(code, 0);
  assert.match(stdout, /address\s+[1-9A-HJ-NP-Za-km-z]{43,44}\s/);
  assert.match(
    stdout,
    /decoded 3 frames from \d+ bytes fed in 5-byte chunks: PING#1, APP_1000#2, ACK#1/,
  );
  assert.match(stdout, /bob -> alice: PING round trip [\d.]+ ms/);
  assert.match(
    stdout,
    /hub SPEAKs to its 2 direct peers:\n {2}alice heard "hello, direct peers" from hub\n {2}bob heard "hello, direct peers" from hub\n/,
  );
  assert.match(stdout, /hub's metrics, as alice asked for them \(METRICS\): 2 connections/);
  // Exact delivery is tests/shout_test.ts's job; here, that the demo ran its swarm.
  assert.match(stdout, /SHOUT from a listening node: delivered to \d+ of 23 nodes, once each/);
  assert.match(stdout, /SHOUT from a node that only dials out: delivered to \d+ of 23 nodes/);
  assert.match(stdout, /WHISPER between two nodes that accept no connections: 2 hops.*\(sealed\)/);
  for (const name of ["bz2", "gzip", "lzma", "zlib", "snappy"]) {
    assert.match(
      stdout,
      new RegExp(`^${name}\\s+\\d\\s+\\d+\\s+[\\d.]+x\\s+ok$`, "m"),
    );
  }
});

Deno.test("carrier keygen writes a key file that carrier id reads back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/node.key`;
    const made = await carrier("keygen", "--out", file, "--difficulty", "4");
    assert.equal(made.code, 0, made.stderr);
    const address = made.stdout.trim();
    assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
    const id = await carrier("id", "--key", file, "--json");
    assert.equal(id.code, 0, id.stderr);
    const info = JSON.parse(id.stdout);
    assert.equal(info.address, address);
    assert.ok(info.puzzleBits >= 4);
    assert.match(info.nodeId, /^[0-9a-f]{64}$/);
    // A second keygen does not overwrite without --force.
    const again = await carrier("keygen", "--out", file);
    assert.equal(again.code, 3);
    assert.match(again.stderr, /already exists/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("carrier exits with distinct codes for usage errors and bad key files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/bad.key`, new Uint8Array(40));
    const bad = await carrier("id", "--key", `${dir}/bad.key`);
    assert.equal(bad.code, 3);
    assert.match(
      bad.stderr,
      /KeyFileError: .*truncated: expected 72 bytes, got 40/,
    );
    const unknown = await carrier("frobnicate");
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const flag = await carrier("id", "--nope");
    assert.equal(flag.code, 2);
    const help = await carrier("--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Commands:/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
