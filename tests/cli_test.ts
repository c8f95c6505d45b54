// The CLI through `deno run cli.ts`, as users (and `deno task demo`) run it.
import assert from "node:assert/strict";
import { main } from "../cli.ts";
import { carrier as run, type Finished } from "./_cli.ts";

function carrier(...args: string[]): Promise<Finished> {
  return run(args);
}

/**
 * `carrier ...args` through `main` in this process: for the many checks of
 * help and usage that need no process of their own (each costs ~0.2 s of CPU).
 */
async function inProcess(...args: string[]): Promise<Finished> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  const text = (lines: string[]) => lines.map((l) => `${l}\n`).join("");
  return { code, stdout: text(out), stderr: text(err) };
}

Deno.test("carrier demo shows an identity, frames, compression, a few nodes, a 24-node swarm and its DHT", async () => {
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
  // Two nodes that accept no connections meet only through relays: at least 2
  // hops, and greedy routing on 24 nodes takes at most ⌈log₂ 24⌉ + 1 = 6.
  const sealed = stdout.match(
    /WHISPER between two nodes that accept no connections: (\d+) hops.*\(sealed\)/,
  );
  assert.ok(sealed, "the sealed WHISPER line");
  assert.ok(Number(sealed[1]) >= 2 && Number(sealed[1]) <= 6, sealed[0]);
  // The DHT on the swarm: a value written by one node is read by an outbound-only one, ...
  assert.match(
    stdout,
    /^node 3 put "greeting" = "hello, dht": version 1 at \d+ replicas in \d+ ms; node 21 \(outbound only\) got "hello, dht", version 1, in \d+ ms$/m,
  );
  // ... a compare-and-swap race ends at the count of acknowledged increments, ...
  const race = stdout.match(
    /^5 nodes each added 1 to "counter" by compare-and-swap, retrying when they lost, in \d+ ms: (\d+) acknowledged, \d+ lost with VersionConflictError(?:, (\d+) uncertain \(QuorumError\))?; node 9 reads (\d+) at version (\d+): every acknowledged increment, (?:no other|and \d+ of the uncertain ones)$/m,
  );
  assert.ok(race, "the compare-and-swap race line");
  const [won, uncertain, count, version] = race.slice(1).map((n) => Number(n ?? 0));
  assert.equal(version, count + 1);
  // (A write whose commit too few replicas confirmed is uncertain: it may have counted.)
  assert.ok(count >= won && count <= won + uncertain, race[0]);
  // ... a held lock is refused with its holder, and a patch is read back as a change.
  assert.match(
    stdout,
    /^node 4 locked "job": fencing token 1, lease 5000 ms; node 23 \(outbound only\) tried: held by \w+… \(node 4\), token 1, \d+ ms left; after the unlock it got the lock with token 2$/m,
  );
  assert.match(stdout, /node 12 patched it to version 2: add \/items\/-, replace \/title$/m);
  assert.match(
    stdout,
    /^node 20 \(outbound only\) read the changes since version 1: 1 change, 1 -> 2 \(add \/items\/-, replace \/title\); the value now: \{"title":"groceries","items":\["bread","milk"\]\}$/m,
  );
  assert.match(stdout, /Not yet built: NAT port mapping/);
  assert.doesNotMatch(stdout, /MISMATCH/);
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

/** Each command's options, as `--help` must list them. */
const OPTIONS: Record<string, string[]> = {
  demo: [],
  keygen: ["--out FILE", "--difficulty N", "--force"],
  id: ["--key FILE", "--json"],
  run: [
    "--listen HOST:PORT",
    "--no-listen",
    "--bootstrap ADDRESS@HOST:PORT",
    "--key FILE",
    "--difficulty N",
    "--serve-metrics",
    "--no-stdin",
    "--json",
  ],
  ping: ["--count N", "--timeout MS", "--key FILE", "--difficulty N", "--json"],
  shout: [
    "--bootstrap ADDRESS@HOST:PORT",
    "--topic T",
    "--key FILE",
    "--difficulty N",
    "--timeout MS",
    "--json",
  ],
  whisper: [
    "--bootstrap ADDRESS@HOST:PORT",
    "--plain",
    "--topic T",
    "--key FILE",
    "--difficulty N",
    "--timeout MS",
    "--json",
  ],
  dht: [],
  "dht get": ["--bootstrap ADDRESS@HOST:PORT", "--key FILE", "--timeout MS", "--json"],
  "dht put": ["--bootstrap ADDRESS@HOST:PORT", "--version N", "--owned", "--ttl MS", "--json"],
  "dht cas": ["--bootstrap ADDRESS@HOST:PORT", "--expect N", "--owned", "--ttl MS", "--json"],
  "dht lock": ["--bootstrap ADDRESS@HOST:PORT", "--ttl MS", "--key FILE", "--json"],
  "dht unlock": ["--bootstrap ADDRESS@HOST:PORT", "--token N", "--key FILE", "--json"],
  "dht patch": ["--bootstrap ADDRESS@HOST:PORT", "--base N", "--splices", "--owned", "--json"],
  "dht changes": ["--bootstrap ADDRESS@HOST:PORT", "--since N", "--json"],
  help: [],
};

/** What the help of each one-shot command says about its own exit codes. */
const EXIT_NOTES: Record<string, RegExp> = {
  "dht get": /1 no value under KEY/,
  "dht cas": /8 KEY is not at version --expect/,
  "dht patch": /8 KEY is not at version --base/,
  "dht lock": /9 another node holds the lock/,
  "dht unlock": /9 another node holds the lock/,
};

Deno.test("carrier help lists every command, and each command's --help, -h and help COMMAND its options", async () => {
  const top = await carrier("help");
  assert.equal(top.code, 0);
  for (const name of Object.keys(OPTIONS).filter((n) => !n.includes(" "))) {
    assert.match(top.stdout, new RegExp(`^ {2}${name} `, "m"));
  }
  // As processes; the dht subcommands (the same code, many more) through `main` in this process.
  const runs = Object.keys(OPTIONS).flatMap((name) => {
    const words = name.split(" ");
    const run = words.length > 1 ? inProcess : carrier;
    return [
      [name, run(...words, "--help")],
      [name, run(...words, "-h")],
      [name, run("help", ...words)],
    ] as const;
  });
  for (const [name, pending] of runs) {
    const { code, stdout, stderr } = await pending;
    assert.equal(code, 0, `${name}: ${stderr}`);
    assert.match(stdout, new RegExp(`^Usage: carrier ${name}\\b`));
    for (const option of [...OPTIONS[name], "-h, --help"]) {
      assert.ok(stdout.includes(option), `carrier ${name} --help does not mention ${option}`);
    }
    if (EXIT_NOTES[name]) assert.match(stdout.replaceAll("\n", " "), EXIT_NOTES[name]);
  }
  // dht's help lists its commands.
  const dht = (await carrier("dht", "--help")).stdout;
  for (const sub of ["get", "put", "cas", "lock", "unlock", "patch", "changes"]) {
    assert.match(dht, new RegExp(`^ {2}${sub} `, "m"));
  }
  // run's help also lists the commands it reads on standard input.
  const help = (await carrier("run", "--help")).stdout;
  for (
    const command of ["shout", "speak", "whisper", "peers", "metrics", "dht get", "help", "quit"]
  ) assert.match(help, new RegExp(`^ {2}${command}\\b`, "m"));
});

Deno.test("carrier exits 2 with the usage on standard error for every command's misuse", async () => {
  const cases: [string[], RegExp][] = [
    [["demo", "extra"], /unexpected argument "extra"/],
    [["keygen"], /--out FILE is required/],
    [["id"], /--key FILE is required/],
    [["id", "--key"], /argument missing/],
    [
      ["run", "--listen", "127.0.0.1:0", "--no-listen"],
      /--listen and --no-listen exclude each other/,
    ],
    [["run", "--difficulty", "hard"], /--difficulty must be a non-negative integer, got "hard"/],
    [["ping"], /expected one ADDRESS@HOST:PORT/],
    [["ping", "x", "--count=-1"], /--count must be a non-negative integer, got "-1"/],
    [["shout", "hi"], /--bootstrap ADDRESS@HOST:PORT is required/],
    [["whisper", "--bootstrap"], /argument missing/],
    [["help", "frobnicate"], /unknown command "frobnicate"/],
    [["dht"], /COMMAND is missing/],
    [["dht", "fetch"], /unknown command "dht fetch"/],
    [["dht", "get", "k"], /--bootstrap ADDRESS@HOST:PORT is required/],
    [["dht", "get", "-b", "x@127.0.0.1:1"], /KEY is missing/],
    [["dht", "cas", "-b", "x@127.0.0.1:1", "k", "v"], /--expect N is required/],
    [["dht", "unlock", "-b", "x@127.0.0.1:1", "k"], /--token N is required/],
    [["dht", "lock", "-b", "x@127.0.0.1:1", "k", "--ttl", "0"], /--ttl must be an integer >= 1/],
    [["help", "dht", "fetch"], /unknown command "dht fetch"/],
  ];
  const runs = cases.map((
    [args, message],
  ) => [args, message, (args[0] === "dht" ? inProcess : carrier)(...args)] as const);
  for (const [args, message, pending] of runs) {
    const { code, stdout, stderr } = await pending;
    assert.equal(code, 2, `carrier ${args.join(" ")}: ${stderr}`);
    assert.match(stderr, message);
    assert.match(stderr, new RegExp(`^Usage: carrier ${args[0]}\\b`, "m"), stderr);
    assert.match(stderr, new RegExp(`carrier help ${args[0]}`));
    assert.equal(stdout, "");
  }
  const bare = await carrier();
  assert.equal(bare.code, 2);
  assert.match(bare.stderr, /Commands:/);
});
