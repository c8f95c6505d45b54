// Helpers for the CLI tests: `carrier` as a process, through `deno run cli.ts`.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** The CLI's path. */
export const CLI: string = fileURLToPath(new URL("../cli.ts", import.meta.url));

/**
 * `deno run` with the permissions the CLI needs, and no others, so that a
 * new need fails here first: key files (read, write), TCP (net). Nothing in
 * the CLI, `lib/` or its npm dependencies reads environment variables
 * (protobuf-es skips its `BUF_BIGINT_DISABLE` check under Deno) or system
 * information. `--no-prompt`: a missing permission is an error, never a prompt.
 */
export const DENO_RUN: readonly string[] = [
  "run",
  "--no-prompt",
  "--allow-read",
  "--allow-write",
  "--allow-net",
];

/** How long a test waits for one line before it fails, in ms. */
const LINE_TIMEOUT = 15_000;

/** What a finished `carrier` process left. */
export interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `carrier ...args` to its end, `stdin` (if given) as its standard input. */
export async function carrier(args: string[], stdin?: string): Promise<Finished> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [...DENO_RUN, CLI, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  if (stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(stdin));
    await writer.close();
  }
  const { code, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  return { code, stdout: text.decode(stdout), stderr: text.decode(stderr) };
}

/** A JSON line of `carrier run --json`: an event or a command result. */
// deno-lint-ignore no-explicit-any
export type Line = Record<string, any>;

/**
 * A running `carrier` process: commands go to its standard input, and its
 * stdout lines (JSON, or text with `json: false`) are collected so that a
 * test can wait for the one it expects, in any order.
 */
export class CarrierProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #json: boolean;
  readonly #lines: string[] = [];
  readonly #taken = new Set<number>();
  #waiters: (() => void)[] = [];
  #ended = false;
  #stdinClosed = false;
  #stderr = "";
  readonly #pumps: Promise<void>;

  constructor(args: string[], options: { json?: boolean } = {}) {
    this.#json = options.json ?? true;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [...DENO_RUN, CLI, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    this.#pumps = Promise.all([this.#pumpStdout(), this.#pumpStderr()]).then(() => {});
  }

  /** Every stdout line so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** Every stdout line so far, parsed. */
  get parsed(): Line[] {
    return this.#lines.map((l) => JSON.parse(l));
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Writes one command line to standard input. */
  async send(line: string): Promise<void> {
    await this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /**
   * The first line not taken yet that `match` accepts (waiting for it),
   * parsed as JSON unless the process prints text; takes it.
   */
  async take(match: (line: Line) => boolean, what = "a matching line"): Promise<Line> {
    const deadline = Date.now() + LINE_TIMEOUT;
    for (;;) {
      for (let i = 0; i < this.#lines.length; i++) {
        if (this.#taken.has(i)) continue;
        const line = this.#json ? JSON.parse(this.#lines[i]) : { text: this.#lines[i] };
        if (match(line)) {
          this.#taken.add(i);
          return line;
        }
      }
      const left = deadline - Date.now();
      if (this.#ended || left <= 0) {
        assert.fail(
          `${this.#ended ? "the process ended" : "timed out"} waiting for ${what}; stdout:\n${
            this.#lines.join("\n")
          }\nstderr:\n${this.#stderr}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.push(done);
      });
    }
  }

  /** Waits for the event `name` whose fields include `fields`. */
  event(name: string, fields: Line = {}): Promise<Line> {
    return this.take(
      (l) => l.event === name && Object.entries(fields).every(([k, v]) => l[k] === v),
      `event ${name} ${JSON.stringify(fields)}`,
    );
  }

  /** Sends `line` and waits for the result of its command (`name`, the line's first word by default). */
  async command(line: string, name = line.trim().split(/\s+/)[0]): Promise<Line> {
    await this.send(line);
    return await this.take((l) => l.command === name, `the result of "${line}"`);
  }

  /** A text line (for a process without `--json`) that `pattern` matches. */
  async text(pattern: RegExp): Promise<string> {
    const line = await this.take((l) => pattern.test(l.text), `a line matching ${pattern}`);
    return line.text;
  }

  /** Closes standard input (the end of input quits `carrier run`). */
  async closeStdin(): Promise<void> {
    if (this.#stdinClosed) return;
    this.#stdinClosed = true;
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for the exit code (after the output is read to its end). */
  async status(): Promise<number> {
    const { code } = await this.#child.status;
    await this.#pumps;
    return code;
  }

  /** Sends `signal` (SIGTERM unless given) and waits for the exit code. */
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<number> {
    try {
      this.#child.kill(signal);
    } catch {
      // It has exited already.
    }
    // Standard input stays open until the process has exited: its end would
    // race with the signal (both close the node).
    const code = await this.status();
    await this.closeStdin();
    return code;
  }

  /** Ends the process whatever its state: for `finally`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGKILL");
  }

  async #pumpStdout(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      this.#lines.push(...parts);
      this.#wake();
    }
    if (buffer) this.#lines.push(buffer);
    this.#ended = true;
    this.#wake();
  }

  async #pumpStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr += chunk;
    }
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** A running `carrier run --json` node on 127.0.0.1 with a fast identity. */
export interface RunningNode {
  process: CarrierProcess;
  /** Its address (base58). */
  address: string;
  /** `ADDRESS@127.0.0.1:PORT`, or undefined for an outbound-only node. */
  peerAddress?: string;
}

/** Starts `carrier run --json --difficulty 0` (listening on 127.0.0.1:0 unless `--no-listen` is in `args`). */
export async function startNode(...args: string[]): Promise<RunningNode> {
  const listen = args.includes("--no-listen") ? [] : ["--listen", "127.0.0.1:0"];
  const process = new CarrierProcess(["run", ...listen, "--difficulty", "0", "--json", ...args]);
  try {
    const listening = await process.event("listening");
    const [at] = listening.listen as string[];
    return {
      process,
      address: listening.address,
      peerAddress: at === undefined ? undefined : `${listening.address}@${at}`,
    };
  } catch (err) {
    await process[Symbol.asyncDispose]();
    throw err;
  }
}

/** A 127.0.0.1 port nothing listens on (free when this returns). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Waits until each node's routing table holds at least `contacts` contacts
 * (`peers` reports them): SHOUT travels down the tables' bucket tree, and
 * joiners look up their neighbourhood only after connecting.
 */
export async function settle(nodes: RunningNode[], contacts: number): Promise<void> {
  for (const n of nodes) {
    for (let i = 0; (await n.process.command("peers")).contacts < contacts; i++) {
      assert.ok(i < 400, `${n.address}'s routing table did not reach ${contacts} contacts`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
}
