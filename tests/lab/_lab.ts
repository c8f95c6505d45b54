// The network lab: hosts and NAT routers made of Linux network namespaces,
// with carrier nodes running inside them as processes (tests/lab/_agent.ts).
//
//   await using lab = await Lab.create();
//   const pub = await lab.publicHost("pub");            // 80.100.100.10 on the WAN
//   const router = await lab.natRouter("home", { upnp: true }); // WAN 80.100.100.1
//   const laptop = await router.lanHost("laptop");      // 10.77.1.10, NAT'd
//   await using a = await pub.spawnNode();
//   await using b = await laptop.spawnNode({ bootstrap: a.peerAddresses });
//
// Layout. Every lab has a prefix `clab-<pid>-<n>` (pid and n in base 36) and
// its namespaces are `<prefix>-<name>`. The WAN is one namespace holding a
// bridge (`br0`); a public host or a router's WAN side is a veth pair from
// that namespace (`h<i>`/`r<i>`) to the host's `eth0` or the router's `wan0`.
// A router holds its LAN bridge (`br0`, the gateway address) and a veth
// (`l<i>`) to each LAN host's `eth0`. Both ends of every veth are created
// inside the lab's namespaces, so nothing is ever added to the root
// namespace, and no namespace has a route out of the machine: public hosts
// and routers know only 80.100.100.0/24 (plus their LAN), LAN hosts route
// by default through their router. The addresses (80.100.100.0/24, not
// reserved, which miniupnpd insists on) exist only inside the lab.
//
// A router forwards with ip_forward on, masquerades its LAN's traffic out of
// `wan0`, and drops what comes in from the WAN towards the LAN unless it
// belongs to an outbound connection or to a port mapping (a real NAT, even
// for a WAN host given a route to the LAN). With `upnp` or `natpmp` it runs
// miniupnpd (nftables backend) as a child process, in the foreground.
//
// Cleanup. `close()` (also `Symbol.asyncDispose`) ends every process the lab
// started (nodes gracefully, then SIGTERM, then SIGKILL), then anything else
// still running in its namespaces (`ip netns pids`), deletes the namespaces
// and the temporary directory. `Lab.create()` first sweeps namespaces left
// by a lab whose process is gone (a crashed run: its agents end by themselves
// when their stdin closes, but miniupnpd would run on), and their temporary
// directories.
import { fileURLToPath } from "node:url";

/** The prefix of every lab namespace: `clab-<pid base 36>-<n base 36>-<name>`. */
export const LAB_PREFIX = "clab";

/** The WAN's /24: routers are .1 to .9, public hosts .10 upwards. */
const WAN_NET = "80.100.100";
const MAX_ROUTERS = 9;
const FIRST_PUBLIC_HOST = 10;
/** The first host number on a LAN (the router is .1). */
const FIRST_LAN_HOST = 10;

const REPO = fileURLToPath(new URL("../../", import.meta.url));
const AGENT = fileURLToPath(new URL("./_agent.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

/**
 * How long a node agent has to print `ready`: a `deno run` that may wait for
 * the module cache's lock or a loaded machine (30 s was seen to be too short
 * at a load average of 7 on 2 cores).
 */
const READY_TIMEOUT = 60_000;
/** How long a command sent to an agent may take. */
const REQUEST_TIMEOUT = 20_000;
/** How long `exec` lets a command run. */
const EXEC_TIMEOUT = 30_000;

/** A failure of the lab itself (setup, a command, a process). */
export class LabError extends Error {
  override name = "LabError";
}

// ---------------------------------------------------------------- commands

/** What a finished command left. */
export interface ExecResult {
  /** Exit code (128 + n for signal n). */
  code: number;
  /** Whether it exited 0. */
  success: boolean;
  stdout: string;
  stderr: string;
}

/** Options of {@linkcode Namespace.exec}. */
export interface ExecOptions {
  /** Standard input. @default {none} */
  input?: string;
  /** Throw a {@linkcode LabError} (with stderr) unless it exits 0. @default {false} */
  check?: boolean;
  /** Kill it after this long, in ms. @default {30_000} */
  timeoutMs?: number;
}

const decoder = new TextDecoder();

/** Runs `cmd args` to its end (killed after `timeoutMs`). */
async function run(cmd: string, args: string[], options: ExecOptions = {}): Promise<ExecResult> {
  const controller = new AbortController();
  const timeoutMs = options.timeoutMs ?? EXEC_TIMEOUT;
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const child = new Deno.Command(cmd, {
      args,
      stdin: options.input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      signal: controller.signal,
    }).spawn();
    if (options.input !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(options.input)).catch(() => {});
      await writer.close().catch(() => {});
    }
    const out = await child.output();
    const result: ExecResult = {
      code: out.signal ? 128 + signalNumber(out.signal) : out.code,
      success: out.success,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
    if (controller.signal.aborted) {
      throw new LabError(
        `Command timed out after ${timeoutMs} ms: ${[cmd, ...args].join(" ")}\n${result.stderr}`,
      );
    }
    if (options.check && !result.success) {
      throw new LabError(
        `Command failed (exit ${result.code}): ${[cmd, ...args].join(" ")}\n${
          result.stderr.trim() || result.stdout.trim()
        }`,
      );
    }
    return result;
  } finally {
    clearTimeout(timer);
  }
}

function signalNumber(signal: Deno.Signal): number {
  return ({ SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal] ??
    0;
}

/** `ip ARGS`, failing on a non-zero exit. */
async function ip(...args: string[]): Promise<string> {
  return (await run("ip", args, { check: true })).stdout;
}

/** Several `ip` commands in one process (`ip -n NS -batch -`). */
async function ipBatch(namespace: string, lines: string[]): Promise<void> {
  await run("ip", ["-n", namespace, "-batch", "-"], {
    input: lines.join("\n") + "\n",
    check: true,
  });
}

async function whichable(cmd: string): Promise<boolean> {
  try {
    return (await run("sh", ["-c", `command -v "${cmd}"`])).success;
  } catch {
    return false;
  }
}

/** Whether `cmd` is on the PATH (for tests that need ping, upnpc, natpmpc…). */
export function haveCommand(cmd: string): Promise<boolean> {
  return whichable(cmd);
}

// ---------------------------------------------------------------- availability

/** Whether the lab can run here, and if not, why. */
export type LabAvailability = { ok: true } | { ok: false; why: string };

let availability: Promise<LabAvailability> | undefined;

/**
 * Whether this machine can run the lab: Linux, root, permission to run
 * commands, `ip netns` working (a probe namespace is made and deleted), `nft`.
 * Checked once per process.
 */
export function labAvailable(): Promise<LabAvailability> {
  return availability ??= checkLab();
}

async function checkLab(): Promise<LabAvailability> {
  if (Deno.build.os !== "linux") return { ok: false, why: `needs Linux, not ${Deno.build.os}` };
  for (const name of ["run", "sys", "read", "write"] as const) {
    const { state } = await Deno.permissions.query({ name });
    if (state !== "granted") return { ok: false, why: `needs --allow-${name}` };
  }
  if (Deno.uid() !== 0) return { ok: false, why: `needs root (uid is ${Deno.uid()})` };
  for (const cmd of ["ip", "nft"]) {
    if (!await whichable(cmd)) return { ok: false, why: `"${cmd}" is not installed` };
  }
  const probe = `${LAB_PREFIX}-probe${Deno.pid.toString(36)}`;
  try {
    await ip("netns", "add", probe);
    try {
      await ip("-n", probe, "link", "add", "br0", "type", "bridge");
      await run("ip", ["netns", "exec", probe, "nft", "list", "tables"], { check: true });
    } finally {
      await run("ip", ["netns", "del", probe]);
    }
  } catch (err) {
    return { ok: false, why: `ip netns or nft does not work: ${(err as Error).message}` };
  }
  return { ok: true };
}

/** Whether routers can run miniupnpd (and LAN hosts `upnpc` and `natpmpc` to check it). */
export async function upnpAvailable(): Promise<LabAvailability> {
  const lab = await labAvailable();
  if (!lab.ok) return lab;
  for (const cmd of ["miniupnpd", "upnpc", "natpmpc"]) {
    if (!await whichable(cmd)) return { ok: false, why: `"${cmd}" is not installed` };
  }
  return { ok: true };
}

// ---------------------------------------------------------------- processes

/** Waits for `promise`, failing with `what()` after `ms`; the timer never outlives it. */
async function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LabError(`Timed out after ${ms} ms ${what()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms` (the lab's only sleep: polling for a process to go). */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A process the lab started in a namespace: stdout read line by line
 * (`onLine`), stderr kept for diagnostics. Ends with `stop()`.
 */
export class LabProcess {
  /** What was run, for messages. */
  readonly command: string;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  readonly #pumps: Promise<void>;
  readonly #exited: Promise<Deno.CommandStatus>;
  #status: Deno.CommandStatus | undefined;
  #stdout = "";
  #stderr = "";
  #waiters = new Set<() => void>();
  #onLine: ((line: string) => void) | undefined;

  constructor(
    namespace: string,
    cmd: string,
    args: string[],
    options: { stdin?: boolean; cwd?: string; onLine?: (line: string) => void } = {},
  ) {
    this.command = `ip netns exec ${namespace} ${[cmd, ...args].join(" ")}`;
    this.#onLine = options.onLine;
    this.#child = new Deno.Command("ip", {
      args: ["netns", "exec", namespace, cmd, ...args],
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      cwd: options.cwd,
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).spawn();
    this.#stdin = options.stdin ? this.#child.stdin.getWriter() : undefined;
    this.#exited = this.#child.status.then((status) => {
      this.#status = status;
      this.#wake();
      return status;
    });
    this.#pumps = Promise.all([this.#pumpStdout(), this.#pumpStderr()]).then(() => {});
  }

  /** Its PID (`ip netns exec` execs the command, so this is the command's own). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Its exit status once it has exited. */
  get exitStatus(): Deno.CommandStatus | undefined {
    return this.#status;
  }

  /** Standard output so far (what `onLine` did not take). */
  get stdout(): string {
    return this.#stdout;
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /** Writes `text` to its standard input (started with `stdin: true`). */
  async write(text: string): Promise<void> {
    if (!this.#stdin) throw new LabError(`${this.command}: started without stdin`);
    await this.#stdin.write(new TextEncoder().encode(text));
  }

  /** Closes its standard input. */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close().catch(() => {});
  }

  /** Waits until `test()` holds (checked on every output chunk and at exit). */
  async until(test: () => boolean, timeoutMs: number, what: string): Promise<void> {
    let wake!: () => void;
    const check = new Promise<void>((resolve, reject) => {
      wake = () => {
        if (test()) resolve();
        else if (this.#status) {
          reject(
            new LabError(
              `${this.command} exited (${describeStatus(this.#status)}) before ${what}\nstderr:\n${
                tail(this.#stderr)
              }`,
            ),
          );
        }
      };
    });
    this.#waiters.add(wake);
    try {
      wake();
      await withTimeout(
        check,
        timeoutMs,
        () => `waiting for ${what}; stderr:\n${tail(this.#stderr)}`,
      );
    } finally {
      this.#waiters.delete(wake);
    }
  }

  /** Sends `signal`; false if it has exited already. */
  kill(signal: Deno.Signal): boolean {
    if (this.#status) return false;
    try {
      this.#child.kill(signal);
      return true;
    } catch {
      return false;
    }
  }

  /** Waits for it to exit and its output to be read to the end. */
  async wait(): Promise<Deno.CommandStatus> {
    const status = await this.#exited;
    await this.#pumps;
    return status;
  }

  /**
   * Ends it: SIGTERM (unless `graceMs` is 0), then SIGKILL after `graceMs`;
   * resolves once it has exited and its pipes are drained.
   */
  async stop(graceMs = 2_000): Promise<Deno.CommandStatus> {
    await this.closeStdin();
    if (!this.#status && graceMs > 0 && this.kill("SIGTERM")) {
      await withTimeout(this.#exited, graceMs, () => "").catch(() => {});
    }
    this.kill("SIGKILL");
    return await this.wait();
  }

  async #pumpStdout(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#child.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) this.#line(line);
      this.#wake();
    }
    if (buffer) this.#line(buffer);
    this.#wake();
  }

  #line(line: string): void {
    if (this.#onLine) this.#onLine(line);
    else this.#stdout += `${line}\n`;
  }

  async #pumpStderr(): Promise<void> {
    for await (const chunk of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      this.#stderr += chunk;
      this.#wake();
    }
  }

  #wake(): void {
    for (const wake of [...this.#waiters]) wake();
  }
}

function describeStatus(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

/** The last lines of `text` (for error messages). */
function tail(text: string, lines = 40): string {
  return text.split("\n").slice(-lines).join("\n");
}

// ---------------------------------------------------------------- node agents

/** A JSON line an agent printed as an event (`ready`, `peer:connect`, `peer:disconnect`, `message`, `error`…). */
// deno-lint-ignore no-explicit-any
export type AgentEvent = { event: string; [field: string]: any };

/** Options of {@linkcode Namespace.spawnNode}: the agent's (see `_agent.ts`). */
export interface SpawnNodeOptions {
  /** Listen addresses. @default {[`${the namespace's address}:0`]} */
  listen?: string[];
  /** Bootstrap peers (`ADDRESS@HOST:PORT`). @default {[]} */
  bootstrap?: string[];
  /** More `createNode` options (JSON-serialisable). @default {{ puzzleDifficulty: 0 }} */
  options?: Record<string, unknown>;
  /** How long to wait for `ready`, in ms. @default {60_000} */
  readyTimeoutMs?: number;
}

/** A command that failed inside the agent. */
export class AgentCommandError extends Error {
  override name = "AgentCommandError";
  /** The agent-side error's name (`NackError`, `ConnectionClosedError`…). */
  readonly remoteName: string;
  constructor(message: string, remoteName: string) {
    super(message);
    this.remoteName = remoteName;
  }
}

/**
 * A carrier node running in a namespace (the `_agent.ts` process): JSON-line
 * commands with {@linkcode NodeProcess.request}, its events in
 * {@linkcode NodeProcess.events}.
 */
/**
 * Two LAN hosts behind two NAT routers (`r1`, `r2`, with `router`'s
 * options; no port mapping unless asked), each running a node with `spawn`'s
 * options. The lab closes them with itself.
 */
export async function behindTwoNats(
  lab: Lab,
  spawn: SpawnNodeOptions,
  router: NatRouterOptions = {},
): Promise<[NodeProcess, NodeProcess]> {
  const nodes: NodeProcess[] = [];
  for (const n of [1, 2]) {
    const host = await (await lab.natRouter(`r${n}`, router)).lanHost(`h${n}`);
    nodes.push(await host.spawnNode(spawn));
  }
  return [nodes[0], nodes[1]];
}

/** Waits until `node` holds a reservation at `relay`. */
export async function reserved(node: NodeProcess, relay: NodeProcess): Promise<void> {
  const has = async () =>
    (await node.request("addresses")).relays.some((r: { address: string }) =>
      r.address === relay.address
    );
  if (await has()) return;
  await node.waitFor(
    (e) => e.event === "relays" && e.relays.includes(relay.address),
    30_000,
  );
}

export class NodeProcess implements AsyncDisposable {
  /** The namespace it runs in. */
  readonly namespace: string;
  /** Every event line so far, in order. */
  readonly events: AgentEvent[] = [];
  /** Its address (base58), from `ready`. */
  address = "";
  /** Where it listens, from `ready`. */
  listenAddrs: string[] = [];
  /** `ADDRESS@HOST:PORT` for each listen address, from `ready`. */
  peerAddresses: string[] = [];
  readonly #process: LabProcess;
  readonly #pending = new Map<number, PromiseWithResolvers<unknown>>();
  #nextId = 1;
  #closed: Promise<void> | undefined;
  readonly #forget: () => void;

  /** Use {@linkcode Namespace.spawnNode}. */
  constructor(
    namespace: string,
    agent: Omit<SpawnNodeOptions, "readyTimeoutMs">,
    forget: () => void,
  ) {
    this.namespace = namespace;
    this.#forget = forget;
    this.#process = new LabProcess(
      namespace,
      Deno.execPath(),
      // No --quiet: "Blocking waiting for file lock…" belongs in the diagnostics.
      ["run", "-A", "--no-prompt", "--config", CONFIG, AGENT, JSON.stringify(agent)],
      { stdin: true, cwd: REPO, onLine: (line) => this.#line(line) },
    );
  }

  /** The agent process's PID. */
  get pid(): number {
    return this.#process.pid;
  }

  /** Its standard error so far. */
  get stderr(): string {
    return this.#process.stderr;
  }

  /** Whether the process has exited. */
  get exited(): boolean {
    return this.#process.exitStatus !== undefined;
  }

  /** Waits for `ready` (called by `spawnNode`). */
  async ready(timeoutMs: number): Promise<void> {
    const ready = await this.waitFor((e) => e.event === "ready", timeoutMs);
    this.address = ready.address;
    this.listenAddrs = ready.listenAddrs;
    this.peerAddresses = ready.peerAddresses;
  }

  /**
   * Sends `command` with `params` and resolves its result.
   *
   * @throws {AgentCommandError} when the command failed in the agent.
   * @throws {LabError} when the agent does not answer in time or exits.
   */
  // deno-lint-ignore no-explicit-any
  async request<T = any>(
    command: string,
    params: Record<string, unknown> = {},
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.exited) throw this.#exitError(`"${command}"`);
    const id = this.#nextId++;
    const reply = Promise.withResolvers<unknown>();
    this.#pending.set(id, reply);
    try {
      await this.#process.write(`${JSON.stringify({ id, command, params })}\n`);
      const timeoutMs = options.timeoutMs ?? REQUEST_TIMEOUT;
      return await withTimeout(
        reply.promise,
        timeoutMs,
        () =>
          `waiting for the reply to "${command}" from ${this.namespace}; stderr:\n${
            tail(this.stderr)
          }`,
      ) as T;
    } finally {
      this.#pending.delete(id);
    }
  }

  /**
   * The first event (from `since`, an index into `events`; 0 by default)
   * that `predicate` accepts, waiting up to `timeoutMs` for it.
   */
  async waitFor(
    predicate: (event: AgentEvent) => boolean,
    timeoutMs = 10_000,
    options: { since?: number } = {},
  ): Promise<AgentEvent> {
    let found: AgentEvent | undefined;
    await this.#process.until(
      () => (found = this.events.slice(options.since ?? 0).find(predicate)) !== undefined,
      timeoutMs,
      `an event matching ${predicate} in ${this.namespace}; events so far:\n${
        this.events.map((e) => JSON.stringify(e)).join("\n")
      }`,
    );
    return found!;
  }

  /** Kills the process at once (SIGKILL): a crash, the node says nothing to its peers. */
  async crash(): Promise<void> {
    this.#process.kill("SIGKILL");
    await this.#process.wait();
  }

  /**
   * Closes the node (the agent's `close` command), then ends the process
   * (SIGTERM, then SIGKILL) if it has not exited. Idempotent.
   */
  close(): Promise<void> {
    return this.#closed ??= this.#close();
  }

  /** Closes it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    try {
      if (!this.exited) {
        await this.request("close", {}, { timeoutMs: 5_000 }).catch(() => {});
        await this.#process.closeStdin();
        await withTimeout(this.#process.wait(), 3_000, () => "").catch(() => {});
      }
      await this.#process.stop();
    } finally {
      for (const reply of this.#pending.values()) reply.reject(this.#exitError("a reply"));
      this.#forget();
    }
  }

  #exitError(what: string): LabError {
    const status = this.#process.exitStatus;
    return new LabError(
      `The node in ${this.namespace} ${
        status ? `exited (${describeStatus(status)})` : "is closing"
      } before ${what}; stderr:\n${tail(this.stderr)}`,
    );
  }

  #line(line: string): void {
    // deno-lint-ignore no-explicit-any
    let value: any;
    try {
      value = JSON.parse(line);
    } catch {
      this.events.push({ event: "stdout", line });
      return;
    }
    if (value !== null && typeof value === "object" && typeof value.id === "number") {
      const reply = this.#pending.get(value.id);
      if (!reply) return;
      if (value.ok) reply.resolve(value.result);
      else {
        const { name = "Error", message = "" } = value.error ?? {};
        reply.reject(new AgentCommandError(`${name}: ${message}`, name));
      }
    } else if (value !== null && typeof value === "object" && typeof value.event === "string") {
      this.events.push(value);
    } else {
      this.events.push({ event: "stdout", line });
    }
  }
}

// ---------------------------------------------------------------- namespaces

/** What a namespace needs from its lab. */
interface LabContext {
  track(process: LabProcess): () => void;
  trackNode(node: NodeProcess): () => void;
  readonly tempDir: string;
}

/** A network namespace of the lab: run commands and nodes in it. */
export class Namespace {
  /** The name the test gave it. */
  readonly name: string;
  /** The namespace's name (`ip netns`). */
  readonly namespace: string;
  /** Its IPv4 address (for a router: the WAN one). */
  readonly address: string;
  /** @internal */
  protected readonly lab: LabContext;

  /** Made by the {@linkcode Lab}. */
  constructor(lab: LabContext, name: string, namespace: string, address: string) {
    this.lab = lab;
    this.name = name;
    this.namespace = namespace;
    this.address = address;
  }

  /** Runs `cmd args` in the namespace to its end and captures its output. */
  exec(cmd: string, args: string[] = [], options: ExecOptions = {}): Promise<ExecResult> {
    return run("ip", ["netns", "exec", this.namespace, cmd, ...args], options);
  }

  /** Starts a long-running `cmd args` in the namespace (ended by the lab at the latest). */
  spawn(cmd: string, args: string[] = []): LabProcess {
    const process = new LabProcess(this.namespace, cmd, args);
    const forget = this.lab.track(process);
    process.wait().finally(forget);
    return process;
  }

  /** Starts a carrier node (the agent) in the namespace and waits for it to be ready. */
  async spawnNode(options: SpawnNodeOptions = {}): Promise<NodeProcess> {
    const { readyTimeoutMs = READY_TIMEOUT, ...agent } = options;
    let forget = () => {};
    const node = new NodeProcess(
      this.namespace,
      { listen: [`${this.address}:0`], ...agent },
      () => forget(),
    );
    forget = this.lab.trackNode(node);
    try {
      await node.ready(readyTimeoutMs);
    } catch (err) {
      await node.close();
      throw err;
    }
    return node;
  }

  /** PIDs of every process in the namespace. */
  async pids(): Promise<number[]> {
    const { stdout } = await run("ip", ["netns", "pids", this.namespace]);
    return stdout.split(/\s+/).filter(Boolean).map(Number);
  }
}

/** A host: a namespace with one interface, `eth0`. */
export class Host extends Namespace {
  /** The router it sits behind, for a LAN host. */
  readonly router: NatRouter | undefined;

  /** Made by {@linkcode Lab.publicHost} and {@linkcode NatRouter.lanHost}. */
  constructor(
    lab: LabContext,
    name: string,
    namespace: string,
    address: string,
    router?: NatRouter,
  ) {
    super(lab, name, namespace, address);
    this.router = router;
  }
}

/** Options of {@linkcode Lab.natRouter}. */
export interface NatRouterOptions {
  /** Run miniupnpd with UPnP IGD on. @default {false} */
  upnp?: boolean;
  /** Run miniupnpd with NAT-PMP (and PCP) on. @default {the value of `upnp`} */
  natpmp?: boolean;
  /** The LAN, `A.B.C.D/LEN` (the router is its .1, hosts .10 on). @default {"10.77.N.0/24", N the router's number} */
  lanSubnet?: string;
  /** More miniupnpd.conf lines (before the allow/deny rules). @default {[]} */
  miniupnpdConfig?: string[];
  /**
   * What the router does with a TCP SYN from the WAN that no connection or
   * mapping expects: `"reset"` (Linux's own answer for a closed port) or
   * `"drop"` (silence, as most home routers' firewalls).
   * @default {"reset"}
   */
  unsolicited?: "reset" | "drop";
  /**
   * Masquerade with random source ports (`masquerade random`): each new
   * connection gets its own external port, so a port seen by one peer says
   * nothing of the next (a symmetric NAT, for hole punching). @default {false}
   */
  randomPorts?: boolean;
}

/** A port mapping miniupnpd made (a DNAT rule in its `prerouting_miniupnpd` chain). */
export interface Mapping {
  externalPort: number;
  internalAddress: string;
  internalPort: number;
  protocol: "tcp" | "udp";
}

/**
 * The nftables ruleset of a router: the chains miniupnpd's nftables backend
 * expects (as in /work/shared/lab/rules.nft; Debian's nft_init.sh does not
 * create them), the LAN's masquerade, and a WAN → LAN filter that lets in
 * only replies and mapped ports.
 */
function routerRules(lanSubnet: string, options: NatRouterOptions = {}): string {
  const unsolicited = options.unsolicited === "drop"
    ? `
    chain input {
        type filter hook input priority 0; policy accept;
        iifname "wan0" meta l4proto tcp ct state new drop
    }`
    : "";
  return `table inet filter {${unsolicited}
    chain forward {
        type filter hook forward priority 0; policy accept;
        jump miniupnpd
        iifname "wan0" oifname "br0" ct state established,related accept
        iifname "wan0" oifname "br0" ct status dnat accept
        iifname "wan0" oifname "br0" drop
    }
    chain miniupnpd {
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
        ip saddr ${lanSubnet} oifname "wan0" masquerade${options.randomPorts ? " random" : ""}
    }
    chain prerouting_miniupnpd {
    }
    chain postrouting_miniupnpd {
    }
}
`;
}

/** The chains miniupnpd writes its mappings into. */
const MINIUPNPD_CHAINS = ["miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"];

/** An IPv4 subnet, parsed. */
interface Subnet {
  cidr: string;
  base: number;
  length: number;
}

function parseSubnet(cidr: string): Subnet {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(cidr);
  const octets = match?.slice(1, 5).map(Number) ?? [];
  const length = Number(match?.[5]);
  if (!match || octets.some((o) => o > 255) || length < 8 || length > 28) {
    throw new LabError(`Cannot use lanSubnet "${cidr}": expected A.B.C.D/LEN with LEN 8 to 28`);
  }
  const mask = length === 0 ? 0 : (~0 << (32 - length)) >>> 0;
  const base = ((octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3]) >>> 0) & mask;
  return { cidr: `${formatIp(base)}/${length}`, base: base >>> 0, length };
}

function formatIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

/** Host number `n` of `subnet`. */
function hostIn(subnet: Subnet, n: number): string {
  if (n >= 2 ** (32 - subnet.length) - 1) {
    throw new LabError(`Cannot add host .${n} to ${subnet.cidr}: the subnet is full`);
  }
  return formatIp(subnet.base + n);
}

/** A NAT router: `wan0` on the WAN, `br0` (the gateway) on its LAN. */
export class NatRouter extends Namespace {
  /** Its LAN, `A.B.C.D/LEN`. */
  readonly lanSubnet: string;
  /** Its LAN address: the LAN hosts' gateway. */
  readonly lanAddress: string;
  /** Its LAN hosts. */
  readonly lanHosts: Host[] = [];
  readonly #subnet: Subnet;
  readonly #options: NatRouterOptions;
  readonly #addNamespace: (name: string) => Promise<string>;
  #upnp: LabProcess | undefined;
  #starts = 0;
  #upnpLog = "";

  /** Made by {@linkcode Lab.natRouter}. */
  constructor(
    lab: LabContext,
    name: string,
    namespace: string,
    address: string,
    subnet: string,
    options: NatRouterOptions,
    addNamespace: (name: string) => Promise<string>,
  ) {
    super(lab, name, namespace, address);
    this.#subnet = parseSubnet(subnet);
    this.lanSubnet = this.#subnet.cidr;
    this.lanAddress = hostIn(this.#subnet, 1);
    this.#options = options;
    this.#addNamespace = addNamespace;
  }

  /** Whether miniupnpd runs with UPnP IGD on. */
  get upnp(): boolean {
    return this.#options.upnp ?? false;
  }

  /** Whether miniupnpd runs with NAT-PMP/PCP on. */
  get natpmp(): boolean {
    return this.#options.natpmp ?? this.upnp;
  }

  /** miniupnpd's UPnP device description: `upnpc -u URL` skips SSDP discovery (2 s). */
  get rootDescUrl(): string {
    return `http://${this.lanAddress}:5000/rootDesc.xml`;
  }

  /** Whether miniupnpd is running. */
  get upnpRunning(): boolean {
    return this.#upnp !== undefined && this.#upnp.exitStatus === undefined;
  }

  /** miniupnpd's stderr, every run so far (for diagnostics). */
  get upnpLog(): string {
    return this.#upnpLog + (this.#upnp?.stderr ?? "");
  }

  /** Sets the router up (called by the lab). */
  async setup(): Promise<void> {
    await ipBatch(this.namespace, [
      `addr add ${this.address}/24 dev wan0`,
      "link set wan0 up",
      "link set lo up",
      "link add br0 type bridge",
      `addr add ${this.lanAddress}/${this.#subnet.length} dev br0`,
      "link set br0 up",
      // Multicast goes to the LAN, as on a home router: miniupnpd's NAT-PMP
      // and PCP announcements (224.0.0.1:5350) and SSDP answers need a route.
      "route add 224.0.0.0/4 dev br0",
    ]);
    await this.exec("sh", ["-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], { check: true });
    await this.exec("nft", ["-f", "-"], {
      input: routerRules(this.lanSubnet, this.#options),
      check: true,
    });
    if (this.upnp || this.natpmp) await this.startUpnp();
  }

  /** Adds a host to the LAN (.10, .11, …), its default route through this router. */
  async lanHost(name: string): Promise<Host> {
    const index = this.lanHosts.length;
    const address = hostIn(this.#subnet, FIRST_LAN_HOST + index);
    const namespace = await this.#addNamespace(name);
    const host = new Host(this.lab, name, namespace, address, this);
    const link = `l${index}`;
    await ip(
      "-n",
      this.namespace,
      "link",
      "add",
      link,
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      namespace,
    );
    await ip("-n", this.namespace, "link", "set", link, "master", "br0", "up");
    await ipBatch(namespace, [
      `addr add ${address}/${this.#subnet.length} dev eth0`,
      "link set eth0 up",
      "link set lo up",
      `route add default via ${this.lanAddress}`,
      // Multicast (SSDP) out of eth0 without relying on the default route.
      "route add 224.0.0.0/4 dev eth0",
    ]);
    this.lanHosts.push(host);
    return host;
  }

  /**
   * Starts miniupnpd (UPnP and/or NAT-PMP as the options say), in the
   * foreground, and waits until it listens. Unless `keepMappings`, first
   * empties its chains, so that a restart is a reboot: no mappings survive
   * and the NAT-PMP epoch starts again from 0 (`system_uptime=no`).
   */
  async startUpnp(options: { keepMappings?: boolean } = {}): Promise<void> {
    if (this.upnpRunning) throw new LabError(`miniupnpd already runs in ${this.namespace}`);
    const upnp = this.upnp, natpmp = this.natpmp;
    if (!upnp && !natpmp) {
      throw new LabError(
        `Cannot start miniupnpd in ${this.namespace}: neither upnp nor natpmp is on`,
      );
    }
    if (!options.keepMappings) {
      for (const chain of MINIUPNPD_CHAINS) {
        await this.exec("nft", ["flush", "chain", "inet", "filter", chain], { check: true });
      }
    }
    const dir = `${this.lab.tempDir}/${this.name}-miniupnpd-${this.#starts++}`;
    await Deno.mkdir(dir, { recursive: true });
    const conf = [
      "ext_ifname=wan0",
      "listening_ip=br0",
      `ext_ip=${this.address}`,
      "http_port=5000",
      `enable_upnp=${upnp ? "yes" : "no"}`,
      `enable_natpmp=${natpmp ? "yes" : "no"}`,
      "secure_mode=no",
      "system_uptime=no",
      "force_igd_desc_v1=no",
      `uuid=${crypto.randomUUID()}`,
      ...(this.#options.miniupnpdConfig ?? []),
      `allow 1024-65535 ${this.lanSubnet} 1024-65535`,
      "deny 0-65535 0.0.0.0/0 0-65535",
    ];
    await Deno.writeTextFile(`${dir}/miniupnpd.conf`, conf.join("\n") + "\n");
    if (this.#upnp) this.#upnpLog += this.#upnp.stderr;
    const process = this.#upnp = new LabProcess(this.namespace, "miniupnpd", [
      "-d",
      "-f",
      `${dir}/miniupnpd.conf`,
      "-P",
      `${dir}/miniupnpd.pid`,
    ]);
    const forget = this.lab.track(process);
    process.wait().finally(forget);
    const ready = [
      ...(upnp ? [/HTTP listening on port/] : []),
      ...(natpmp ? [/Listening for NAT-PMP/] : []),
    ];
    try {
      await process.until(
        () => ready.every((line) => line.test(process.stderr)),
        10_000,
        `miniupnpd to listen in ${this.namespace}`,
      );
    } catch (err) {
      await process.stop();
      throw err;
    }
  }

  /** Stops miniupnpd (SIGTERM; it leaves its rules in the chains, as a crash would). */
  async stopUpnp(): Promise<void> {
    await this.#upnp?.stop();
  }

  /** The port mappings in miniupnpd's chain (`nft -j list chain inet filter prerouting_miniupnpd`). */
  async mappings(): Promise<Mapping[]> {
    const { stdout } = await this.exec(
      "nft",
      ["-j", "list", "chain", "inet", "filter", "prerouting_miniupnpd"],
      { check: true },
    );
    return parseMappings(stdout);
  }
}

/** The DNAT rules of an `nft -j list chain` output, as mappings. */
export function parseMappings(json: string): Mapping[] {
  // deno-lint-ignore no-explicit-any
  const items: any[] = JSON.parse(json).nftables ?? [];
  const mappings: Mapping[] = [];
  for (const item of items) {
    const expr = item.rule?.expr;
    if (!Array.isArray(expr)) continue;
    let externalPort: number | undefined;
    let protocol: "tcp" | "udp" | undefined;
    let internalAddress: string | undefined;
    let internalPort: number | undefined;
    for (const e of expr) {
      const left = e.match?.left, right = e.match?.right;
      if (left?.payload?.field === "dport" && typeof right === "number") {
        externalPort = right;
        if (left.payload.protocol === "tcp" || left.payload.protocol === "udp") {
          protocol = left.payload.protocol;
        }
      } else if (
        left?.payload?.base === "nh" && left.payload.offset === 72 && left.payload.len === 8
      ) {
        protocol = right === 6 ? "tcp" : right === 17 ? "udp" : protocol; // the IPv4 protocol byte
      } else if (left?.meta?.key === "l4proto" && (right === "tcp" || right === "udp")) {
        protocol = right;
      } else if (e.dnat) {
        internalAddress = e.dnat.addr;
        internalPort = e.dnat.port;
      }
    }
    if (externalPort && protocol && internalAddress && internalPort) {
      mappings.push({ externalPort, internalAddress, internalPort, protocol });
    }
  }
  return mappings;
}

// ---------------------------------------------------------------- the lab

/** Labs alive in this process (their prefixes): the sweep leaves them alone. */
const live = new Set<string>();
let labCount = 0;

/** Whether process `pid` runs (and is a deno: a reused PID of something else is not a lab). */
async function labOwnerAlive(pid: number): Promise<boolean> {
  try {
    const cmdline = await Deno.readTextFile(`/proc/${pid}/cmdline`);
    return cmdline.includes("deno");
  } catch {
    return false;
  }
}

/** Every namespace name (`ip netns list`). */
async function listNamespaces(): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"], { check: true });
  return stdout.split("\n").map((line) => line.split(" ")[0]).filter(Boolean);
}

/** Kills every process in `namespace` and deletes it. */
async function removeNamespace(namespace: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const { stdout } = await run("ip", ["netns", "pids", namespace]);
    const pids = stdout.split(/\s+/).filter(Boolean).map(Number);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    await sleep(20);
  }
  await run("ip", ["netns", "del", namespace]);
}

/**
 * Removes namespaces of labs whose process is gone (a crashed run), and of
 * this process's labs that are no longer open. Returns what it removed.
 */
export async function sweepStaleNamespaces(): Promise<string[]> {
  const stale: string[] = [];
  const pattern = new RegExp(`^(${LAB_PREFIX}-([0-9a-z]+)-[0-9a-z]+)-`);
  for (const namespace of await listNamespaces()) {
    const match = pattern.exec(namespace);
    if (!match) continue;
    const [, prefix, owner] = match;
    const pid = parseInt(owner, 36);
    const alive = pid === Deno.pid ? live.has(prefix) : await labOwnerAlive(pid);
    if (!alive) stale.push(namespace);
  }
  for (const namespace of stale) await removeNamespace(namespace);
  await sweepTempDirs(pattern);
  return stale;
}

/** Where `Deno.makeTempDir` puts the labs' directories. */
function tempBase(): string {
  try {
    return Deno.env.get("TMPDIR") || "/tmp";
  } catch {
    return "/tmp"; // no --allow-env
  }
}

/** Removes the temporary directories (`carrier-<prefix>-…`) of labs whose process is gone. */
async function sweepTempDirs(pattern: RegExp): Promise<void> {
  const base = tempBase();
  try {
    for await (const entry of Deno.readDir(base)) {
      const match = entry.isDirectory && entry.name.startsWith("carrier-") &&
        pattern.exec(entry.name.slice("carrier-".length));
      if (!match) continue;
      const [, prefix, owner] = match;
      const pid = parseInt(owner, 36);
      const alive = pid === Deno.pid ? live.has(prefix) : await labOwnerAlive(pid);
      if (!alive) await Deno.remove(`${base}/${entry.name}`, { recursive: true }).catch(() => {});
    }
  } catch {
    // An unreadable temporary directory: nothing to sweep.
  }
}

/** A network lab. Make one with {@linkcode Lab.create}; dispose of it to remove everything. */
export class Lab implements AsyncDisposable {
  /** This lab's prefix (`clab-<pid>-<n>`): each namespace is `<prefix>-<name>`. */
  readonly prefix: string;
  /** The WAN namespace (holds the bridge). */
  readonly wan: string;
  /** Namespaces swept at creation (left by crashed runs). */
  readonly swept: readonly string[];
  readonly #tempDir: string;
  readonly #namespaces: string[] = [];
  readonly #processes = new Set<LabProcess>();
  readonly #nodes = new Set<NodeProcess>();
  readonly #routers: NatRouter[] = [];
  readonly #hosts: Host[] = [];
  readonly #context: LabContext;
  #closed: Promise<void> | undefined;

  private constructor(prefix: string, tempDir: string, swept: string[]) {
    this.prefix = prefix;
    this.wan = `${prefix}-wan`;
    this.swept = swept;
    this.#tempDir = tempDir;
    this.#context = {
      tempDir,
      track: (process) => {
        this.#processes.add(process);
        return () => this.#processes.delete(process);
      },
      trackNode: (node) => {
        this.#nodes.add(node);
        return () => this.#nodes.delete(node);
      },
    };
  }

  /**
   * Sweeps stale lab namespaces, then makes the WAN (a namespace with a
   * bridge). Fails with the reason when {@linkcode labAvailable} says no.
   */
  static async create(): Promise<Lab> {
    const available = await labAvailable();
    if (!available.ok) throw new LabError(`Cannot create a network lab: ${available.why}`);
    const prefix = `${LAB_PREFIX}-${Deno.pid.toString(36)}-${(labCount++).toString(36)}`;
    live.add(prefix);
    let lab: Lab | undefined;
    try {
      const swept = await sweepStaleNamespaces();
      const tempDir = await Deno.makeTempDir({ dir: tempBase(), prefix: `carrier-${prefix}-` });
      lab = new Lab(prefix, tempDir, swept);
      await lab.#addNamespace("wan");
      await ipBatch(lab.wan, ["link set lo up", "link add br0 type bridge", "link set br0 up"]);
      return lab;
    } catch (err) {
      if (lab) await lab.close();
      else live.delete(prefix);
      throw err;
    }
  }

  /** The routers so far. */
  get routers(): readonly NatRouter[] {
    return this.#routers;
  }

  /** The public hosts so far. */
  get publicHosts(): readonly Host[] {
    return this.#hosts;
  }

  /** The namespaces this lab made (and has not removed yet). */
  get namespaces(): readonly string[] {
    return this.#namespaces;
  }

  /** The lab's temporary directory (miniupnpd's files). */
  get tempDir(): string {
    return this.#tempDir;
  }

  /** Adds a host on the WAN: 80.100.100.10, .11, … */
  async publicHost(name: string): Promise<Host> {
    this.#open();
    const index = this.#hosts.length;
    if (FIRST_PUBLIC_HOST + index > 254) {
      throw new LabError("Cannot add a public host: the WAN is full");
    }
    const address = `${WAN_NET}.${FIRST_PUBLIC_HOST + index}`;
    const namespace = await this.#addNamespace(name);
    const host = new Host(this.#context, name, namespace, address);
    await this.#wanLink(`h${index}`, namespace, "eth0");
    await ipBatch(namespace, [
      `addr add ${address}/24 dev eth0`,
      "link set eth0 up",
      "link set lo up",
      "route add 224.0.0.0/4 dev eth0",
    ]);
    this.#hosts.push(host);
    return host;
  }

  /** Adds a NAT router on the WAN (80.100.100.1, .2, …) with its LAN (10.77.N.0/24, N = 1, 2, …). */
  async natRouter(name: string, options: NatRouterOptions = {}): Promise<NatRouter> {
    this.#open();
    const index = this.#routers.length;
    if (index >= MAX_ROUTERS) {
      throw new LabError(`Cannot add router "${name}": at most ${MAX_ROUTERS}`);
    }
    const address = `${WAN_NET}.${index + 1}`;
    const namespace = await this.#addNamespace(name);
    const router = new NatRouter(
      this.#context,
      name,
      namespace,
      address,
      options.lanSubnet ?? `10.77.${index + 1}.0/24`,
      options,
      (lanName) => {
        this.#open();
        return this.#addNamespace(lanName);
      },
    );
    this.#routers.push(router);
    await this.#wanLink(`r${index}`, namespace, "wan0");
    await router.setup();
    return router;
  }

  /**
   * Removes everything: nodes (closed gracefully), other processes
   * (SIGTERM, then SIGKILL), whatever else runs in the namespaces, the
   * namespaces, the temporary directory. Idempotent.
   *
   * @throws {LabError} when a namespace could not be removed.
   */
  close(): Promise<void> {
    return this.#closed ??= this.#close();
  }

  /** Closes the lab. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #close(): Promise<void> {
    try {
      await Promise.allSettled([...this.#nodes].map((node) => node.close()));
      await Promise.allSettled([...this.#processes].map((process) => process.stop()));
      // The WAN last: deleting it first would take the hosts' links down under them.
      for (const namespace of [...this.#namespaces].reverse()) await removeNamespace(namespace);
      const left = new Set(await listNamespaces());
      const remaining = this.#namespaces.filter((namespace) => left.has(namespace));
      this.#namespaces.splice(0, this.#namespaces.length, ...remaining);
      if (remaining.length > 0) {
        throw new LabError(`Cannot remove the lab's namespaces: ${remaining.join(", ")} remain`);
      }
    } finally {
      await Deno.remove(this.#tempDir, { recursive: true }).catch(() => {});
      live.delete(this.prefix);
    }
  }

  #open(): void {
    if (this.#closed) throw new LabError(`The lab ${this.prefix} is closed`);
  }

  async #addNamespace(name: string): Promise<string> {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(name)) {
      throw new LabError(
        `Cannot name a namespace "${name}": expected 1 to 12 lowercase letters and digits`,
      );
    }
    const namespace = `${this.prefix}-${name}`;
    if (this.#namespaces.includes(namespace)) {
      throw new LabError(`Cannot add "${name}": the lab has a namespace of that name`);
    }
    await ip("netns", "add", namespace);
    this.#namespaces.push(namespace);
    return namespace;
  }

  /** A veth from the WAN bridge (`wanSide`, ≤ 15 chars) to `inside` in `namespace`. */
  async #wanLink(wanSide: string, namespace: string, inside: string): Promise<void> {
    await ip(
      "-n",
      this.wan,
      "link",
      "add",
      wanSide,
      "type",
      "veth",
      "peer",
      "name",
      inside,
      "netns",
      namespace,
    );
    await ip("-n", this.wan, "link", "set", wanSide, "master", "br0", "up");
  }
}
