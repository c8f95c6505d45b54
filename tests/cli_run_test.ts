// `carrier run` and `carrier ping` as processes on loopback.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli.ts", import.meta.url));
const FLAGS = ["run", "--allow-read", "--allow-write", "--allow-net", "--allow-env"];

/** A running `carrier` process whose stdout is read line by line. */
class Running {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  constructor(args: string[]) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [...FLAGS, CLI, ...args],
      stdout: "piped",
      stderr: "null",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#lines = lines(this.#child.stdout)[Symbol.asyncIterator]();
  }
  /** The next stdout line parsed as JSON. */
  async event(): Promise<Record<string, unknown>> {
    const { value, done } = await this.#lines.next();
    assert.ok(!done, "the process ended its output");
    return JSON.parse(value);
  }
  /** Waits for an event of `type` (and `address`, if given), skipping others. */
  async waitFor(type: string, address?: unknown): Promise<Record<string, unknown>> {
    for (;;) {
      const e = await this.event();
      if (e.event === type && (address === undefined || e.address === address)) return e;
    }
  }
  /** SIGTERM, then the exit code; drains what is left of stdout. */
  async stop(): Promise<{ code: number; rest: string[] }> {
    this.#child.kill("SIGTERM");
    const rest: string[] = [];
    for (;;) {
      const { value, done } = await this.#lines.next();
      if (done) break;
      rest.push(value);
    }
    const { code } = await this.#child.status;
    return { code, rest };
  }
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) yield buffer;
}

Deno.test("two carrier run processes connect and a third pings one of them", async () => {
  const dir = await Deno.makeTempDir();
  const a = new Running([
    "run",
    "--listen",
    "127.0.0.1:0",
    "--key",
    `${dir}/a.key`,
    "--difficulty",
    "0",
    "--json",
  ]);
  let b: Running | undefined;
  try {
    // A missing key file is created first, then the node listens.
    const keygen = await a.event();
    assert.equal(keygen.event, "keygen");
    const listening = await a.event();
    assert.equal(listening.event, "listening");
    assert.equal(listening.address, keygen.address);
    const [listen] = listening.listen as string[];
    assert.match(listen, /^127\.0\.0\.1:\d+$/);
    const target = `${listening.address}@${listen}`;

    b = new Running(["run", "--no-listen", "--bootstrap", target, "--difficulty", "0", "--json"]);
    const bListening = await b.event();
    assert.equal(bListening.event, "listening");
    assert.deepEqual(bListening.listen, []);
    assert.equal((await b.waitFor("peer:connect")).address, listening.address);
    assert.equal((await a.waitFor("peer:connect")).address, bListening.address);

    const ping = await new Deno.Command(Deno.execPath(), {
      args: [...FLAGS, CLI, "ping", target, "--difficulty", "0", "--count", "2", "--json"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(ping.code, 0, new TextDecoder().decode(ping.stderr));
    const pongs = new TextDecoder().decode(ping.stdout).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    assert.equal(pongs.length, 2);
    for (const pong of pongs) {
      assert.equal(pong.event, "pong");
      assert.equal(pong.address, listening.address);
      assert.ok(typeof pong.rtt_ms === "number" && pong.rtt_ms >= 0);
    }

    const stoppedB = await b.stop();
    b = undefined;
    assert.equal(stoppedB.code, 0);
    await a.waitFor("peer:disconnect", bListening.address);
    const stoppedA = await a.stop();
    assert.equal(stoppedA.code, 0);
    assert.ok(stoppedA.rest.some((l) => JSON.parse(l).event === "closed"));
  } finally {
    await b?.stop();
    await a.stop().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("carrier ping exits with distinct codes for a bad address, refusal and a wrong identity", async () => {
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...FLAGS, CLI, "ping", ...args, "--difficulty", "0", "--timeout", "2000"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  };
  const bad = await run("not-an-address@127.0.0.1:1");
  assert.equal(bad.code, 4);
  assert.match(bad.stderr, /PeerAddressError/);
  // A port nothing listens on: refused.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const refused = await run(`${"4".repeat(44)}@127.0.0.1:${port}`);
  assert.ok(refused.code === 4 || refused.code === 5, refused.stderr);
  // A real node answering with another identity than the one asked for.
  const dir = await Deno.makeTempDir();
  const a = new Running(["run", "--listen", "127.0.0.1:0", "--difficulty", "0", "--json"]);
  try {
    const listening = await a.waitFor("listening");
    const [listen] = listening.listen as string[];
    const keygen = await new Deno.Command(Deno.execPath(), {
      args: [...FLAGS, CLI, "keygen", "--out", `${dir}/other.key`, "--difficulty", "0"],
      stdout: "piped",
    }).output();
    const other = new TextDecoder().decode(keygen.stdout).trim();
    const mismatch = await run(`${other}@${listen}`);
    assert.equal(mismatch.code, 7, mismatch.stderr);
    assert.match(mismatch.stderr, /IdentityMismatchError/);
  } finally {
    await a.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
