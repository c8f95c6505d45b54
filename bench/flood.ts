/**
 * A node that keeps serving under hostile peers (issue 11): each attack of
 * `bench/_attacks.ts` runs for `--seconds` (default 60) against one carrier
 * node in a process of its own, the CLI exactly as a user starts it:
 *
 * ```sh
 * deno run --allow-net --allow-read --allow-write cli.ts run --listen 127.0.0.1:0 --json --no-stdin
 * ```
 *
 * A fresh node per attack, so that its memory figures are the attack's own.
 * Throughout an attack a legit peer (a new carrier node in this process,
 * `createNode` from mod.ts) connects and PINGs the node once a second: its
 * attempts, successes and times (connect + Noise handshake + PING → ACK)
 * are compared with the same probe against an unloaded fresh node measured
 * first. The node's RSS (VmRSS) and CPU time are sampled from
 * `/proc/PID/{status,stat}` every 250 ms by a small Node.js process (Deno
 * reads `/proc/PID` only with `--allow-all`). The attacker runs in its own
 * process too, so that its CPU work never stalls the event loop that times
 * the probes; node, attacker and this process share the machine's cores
 * (the CPU column says how much each took).
 *
 * Per attack it prints one table row: the legit probes (succeeded /
 * attempts, median and its ratio to the unloaded median), the node's RSS
 * before the attack, at its peak, and 5 s after the attack stopped, the CPU
 * each process used, the three targets (every probe succeeds; median ≤ 2×
 * unloaded; RSS growth within `--budget-mib`), and the attacker's counters.
 * A target not met is a measurement, not a failure: the exit code is 0
 * unless the bench itself fails.
 *
 * Run: `deno task bench:flood` (all nine attacks, about 12 minutes), or
 * `deno task bench:flood --seconds 5 --attack shout-flood`. Options:
 * `--seconds N`, `--attack NAME` (repeatable; names below), `--budget-mib N`
 * (default 512), `--baseline-seconds N` (default 30, at most `--seconds`),
 * `--json FILE` (the table and the details as JSON).
 *
 * @module
 */

import { createNode, generateIdentity, type Identity, resourceBudget } from "../mod.ts";
import { ATTACKS } from "./_attacks.ts";
import { delay, lines } from "./_util.ts";

const ROOT = new URL("../", import.meta.url);
const PROBE_TIMEOUT = 5_000;
const SAMPLE_INTERVAL = 250;
const AFTER_MS = 5_000;
const WARM_UP_PROBES = 20;
const CLOCK_TICKS = 100; // USER_HZ on Linux
const KIB = 1024;

// ---------------------------------------------------------------------------
// Child processes: every one is tracked, so that an error or Ctrl-C ends them all.

const children = new Set<Deno.ChildProcess>();

function spawn(command: string, args: string[], options: Deno.CommandOptions = {}) {
  const child = new Deno.Command(command, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    ...options,
  }).spawn();
  children.add(child);
  child.status.finally(() => children.delete(child));
  return child;
}

function kill(child: Deno.ChildProcess, signal: Deno.Signal): void {
  try {
    child.kill(signal);
  } catch {
    // Already gone.
  }
}

/** SIGTERM, then SIGKILL what is still running after `grace` ms. */
async function killAll(grace = 3_000): Promise<void> {
  const running = [...children];
  for (const child of running) kill(child, "SIGTERM");
  const timer = delay(grace).then(() => running.forEach((c) => kill(c, "SIGKILL")));
  await Promise.race([Promise.allSettled(running.map((c) => c.status)), timer]);
  for (const child of running) kill(child, "SIGKILL");
  await Promise.allSettled(running.map((c) => c.status));
}

/** Reads `stream` line by line into `each`, quietly ending with it. */
function readLines(
  stream: ReadableStream<Uint8Array>,
  each: (line: string) => void,
): Promise<void> {
  return (async () => {
    for await (const line of lines(stream)) each(line);
  })().catch(() => {});
}

// ---------------------------------------------------------------------------
// Sampling /proc.

interface Sample {
  t: number;
  rss: number; // KiB
  hwm: number; // KiB
  ticks: number; // utime + stime
}

const SAMPLER_SCRIPT = `
const fs = require("node:fs");
let pids = [], pending = "";
process.stdin.on("data", (d) => {
  pending += d;
  let i;
  while ((i = pending.indexOf("\\n")) >= 0) {
    pids = pending.slice(0, i).split(" ").filter(Boolean);
    pending = pending.slice(i + 1);
  }
});
process.stdin.on("end", () => process.exit(0));
setInterval(() => {
  const s = {};
  for (const pid of pids) {
    try {
      const status = fs.readFileSync("/proc/" + pid + "/status", "utf8");
      const stat = fs.readFileSync("/proc/" + pid + "/stat", "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // f[0] is field 3
      s[pid] = [+/VmRSS:\\s+(\\d+)/.exec(status)[1], +/VmHWM:\\s+(\\d+)/.exec(status)[1], +f[11] + +f[12]];
    } catch {}
  }
  process.stdout.write(JSON.stringify({ t: Date.now(), s }) + "\\n");
}, ${SAMPLE_INTERVAL});
`;

/** Samples the RSS and CPU time of the processes it watches, every 250 ms. */
class Sampler {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #samples = new Map<number, Sample[]>();
  #watched = new Set<number>();
  readonly done: Promise<void>;

  constructor() {
    this.#child = spawn("node", ["-e", SAMPLER_SCRIPT], { stdin: "piped", stderr: "inherit" });
    this.#writer = this.#child.stdin.getWriter();
    this.done = readLines(this.#child.stdout, (line) => {
      const { t, s } = JSON.parse(line) as { t: number; s: Record<string, number[]> };
      for (const [pid, [rss, hwm, ticks]] of Object.entries(s)) {
        const list = this.#samples.get(Number(pid)) ?? [];
        list.push({ t, rss, hwm, ticks });
        this.#samples.set(Number(pid), list);
      }
    });
  }

  async watch(...pids: number[]): Promise<void> {
    for (const pid of pids) this.#watched.add(pid);
    await this.#send();
  }

  async unwatch(...pids: number[]): Promise<void> {
    for (const pid of pids) {
      this.#watched.delete(pid);
      this.#samples.delete(pid);
    }
    await this.#send();
  }

  async #send(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode([...this.#watched].join(" ") + "\n"));
  }

  /** The samples of `pid` taken between `from` and `to` (Date.now() times). */
  between(pid: number, from = 0, to = Infinity): Sample[] {
    return (this.#samples.get(pid) ?? []).filter((s) => s.t >= from && s.t <= to);
  }

  /** The latest sample of `pid`, once one is taken after `after`. */
  async next(pid: number, after = Date.now()): Promise<Sample> {
    for (let i = 0; i < 40; i++) {
      const list = this.#samples.get(pid) ?? [];
      const last = list.at(-1);
      if (last && last.t > after) return last;
      await delay(SAMPLE_INTERVAL / 2);
    }
    throw new Error(`No sample of process ${pid} in 5 s (is it running?)`);
  }

  /** CPU seconds `pid` used between `from` and `to`. */
  cpuSeconds(pid: number, from: number, to: number): number {
    const list = this.#samples.get(pid) ?? [];
    const base = list.filter((s) => s.t <= from).at(-1)?.ticks ?? 0; // 0: started later
    const end = list.filter((s) => s.t <= to).at(-1)?.ticks ?? base;
    return (end - base) / CLOCK_TICKS;
  }

  async close(): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.done;
  }
}

// ---------------------------------------------------------------------------
// The node under test.

class NodeUnderTest {
  readonly child: Deno.ChildProcess;
  readonly events = new Map<string, number>();
  readonly errors = new Map<string, number>();
  readonly disconnects = new Map<string, number>();
  readonly stderr: string[] = [];
  exit: Deno.CommandStatus | undefined;
  #stopping = false;
  readonly #output: Promise<void>;
  readonly listening: Promise<{ address: string; peerAddress: string }>;

  constructor() {
    this.child = spawn(Deno.execPath(), [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      new URL("cli.ts", ROOT).pathname,
      "run",
      "--listen",
      "127.0.0.1:0",
      "--json",
      "--no-stdin",
    ], { cwd: ROOT.pathname });
    const listening = Promise.withResolvers<{ address: string; peerAddress: string }>();
    this.listening = listening.promise;
    this.#output = Promise.all([
      readLines(this.child.stdout, (line) => {
        let event: { event?: string; [field: string]: unknown };
        try {
          event = JSON.parse(line);
        } catch {
          this.stderr.push(`stdout: ${line}`);
          return;
        }
        const name = String(event.event ?? event.command ?? "?");
        this.events.set(name, (this.events.get(name) ?? 0) + 1);
        if (name === "listening") {
          const address = String(event.address);
          const listen = event.listen as string[];
          listening.resolve({ address, peerAddress: `${address}@${listen[0]}` });
        } else if (name === "error") {
          count(this.errors, `${event.source}: ${shape(String(event.error))}`);
        } else if (name === "peer:disconnect" && event.reason) {
          count(this.disconnects, shape(String(event.reason)));
        }
      }),
      readLines(this.child.stderr, (line) => {
        if (this.stderr.length < 200) this.stderr.push(line);
      }),
    ]).then(() => {});
    this.child.status.then((status) => {
      this.exit = status;
      listening.reject(new Error(`The node exited (${describeExit(status)}) before listening`));
    });
  }

  /** Exited on its own (not stopped by the bench). */
  get crashed(): boolean {
    return this.exit !== undefined && !this.#stopping;
  }

  /** SIGTERM (it closes cleanly), then SIGKILL after 5 s. */
  async stop(): Promise<void> {
    if (this.exit === undefined) this.#stopping = true;
    kill(this.child, "SIGTERM");
    const timer = setTimeout(() => kill(this.child, "SIGKILL"), 5_000);
    await this.child.status;
    clearTimeout(timer);
    await this.#output;
  }
}

function describeExit(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code}`;
}

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** A message with its numbers and addresses blanked, so that alike ones count together. */
function shape(message: string): string {
  return message
    .replace(/\b[1-9A-HJ-NP-Za-km-z]{43,44}\b/g, "ADDRESS")
    .replace(/\b[0-9a-f]{16,}\b/g, "HEX")
    .replace(/\d+(\.\d+)*/g, "N");
}

// ---------------------------------------------------------------------------
// The attacker process.

interface AttackerReport {
  counters: Record<string, number>;
  legit?: string;
}

class Attacker {
  readonly child: Deno.ChildProcess;
  readonly pids: number[];
  readonly ready: Promise<void>;
  readonly report: Promise<AttackerReport>;
  readonly stderr: string[] = [];
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;

  constructor(name: string, peerAddress: string, sampler: Sampler) {
    this.child = spawn(Deno.execPath(), [
      "run",
      "--allow-net=127.0.0.1",
      "--allow-run=node",
      "--allow-read",
      "--allow-env",
      "--config",
      new URL("./deno.json", import.meta.url).pathname,
      new URL("_attacks.ts", import.meta.url).pathname,
      "--attack",
      name,
      "--target",
      peerAddress,
    ], { stdin: "piped" });
    this.pids = [this.child.pid];
    this.#writer = this.child.stdin.getWriter();
    const ready = Promise.withResolvers<void>();
    const report = Promise.withResolvers<AttackerReport>();
    this.ready = ready.promise;
    this.report = report.promise;
    const output = readLines(this.child.stdout, (line) => {
      let event;
      try {
        event = JSON.parse(line);
      } catch {
        console.error(`  attacker stdout: ${line}`);
        return;
      }
      if (event.event === "ready") ready.resolve();
      else if (event.event === "child") {
        this.pids.push(event.pid);
        sampler.watch(event.pid).catch(() => {});
      } else if (event.event === "done") report.resolve(event);
    });
    readLines(this.child.stderr, (line) => {
      console.error(`  attacker: ${line}`);
      if (this.stderr.length < 50) this.stderr.push(line);
    });
    Promise.all([this.child.status, output]).then(([status]) => {
      const why = new Error(`The attacker exited (${describeExit(status)}) without its report`);
      ready.reject(why);
      report.reject(why);
    });
  }

  async go(): Promise<void> {
    await this.#writer.write(new TextEncoder().encode("go\n"));
  }

  /** Ends its standard input (it stops, closes its sockets and reports); SIGKILL after 30 s. */
  async stop(): Promise<AttackerReport> {
    await this.#writer.close().catch(() => {});
    const timer = setTimeout(() => kill(this.child, "SIGKILL"), 30_000);
    try {
      return await this.report;
    } finally {
      clearTimeout(timer);
      await this.child.status;
    }
  }
}

// ---------------------------------------------------------------------------
// The legit peer.

interface Probe {
  /** Since the attack started, in ms. */
  at: number;
  ms?: number;
  error?: string;
}

/** A fresh node connects to the target and PINGs it; closes. */
async function probe(
  target: { address: string; peerAddress: string },
  identity: Identity,
  at: number,
): Promise<Probe> {
  const signal = AbortSignal.timeout(PROBE_TIMEOUT);
  const legit = await createNode({ identity });
  try {
    const started = performance.now();
    await legit.connect(target.peerAddress, { signal });
    await legit.ping(target.address, { signal, timeout: PROBE_TIMEOUT });
    return { at, ms: performance.now() - started };
  } catch (err) {
    return { at, error: `${(err as Error).name}: ${shape((err as Error).message)}` };
  } finally {
    await legit.close();
  }
}

/** One probe a second for `seconds`, each with fresh identities made beforehand. */
async function probes(
  target: { address: string; peerAddress: string },
  identities: Identity[],
): Promise<Probe[]> {
  const started = performance.now();
  const running: Promise<Probe>[] = [];
  for (let i = 0; i < identities.length; i++) {
    const wait = started + i * 1000 - performance.now();
    if (wait > 0) await delay(wait);
    running.push(probe(target, identities[i], Math.round(performance.now() - started)));
  }
  return await Promise.all(running);
}

async function identitiesFor(count: number): Promise<Identity[]> {
  const out: Identity[] = [];
  for (let i = 0; i < count; i++) out.push(await generateIdentity());
  return out;
}

// ---------------------------------------------------------------------------
// One run: the unloaded baseline, or an attack.

interface Result {
  name: string;
  title: string;
  probes: {
    attempts: number;
    succeeded: number;
    medianMs: number | null;
    p90Ms: number | null;
    ratio: number | null;
    failures: Record<string, number>;
    times: Probe[];
  };
  /** The node's RSS each second from the attack's start to the "after" sample, in MiB. */
  rssSeriesMib: number[];
  rssMib: { before: number; peak: number; after: number; hwm: number; attackerPeak: number | null };
  cpuPercent: { node: number; attacker: number | null; bench: number };
  seconds: number;
  counters: Record<string, number>;
  legit?: string;
  node: {
    crashed: string | null;
    events: Record<string, number>;
    errors: Record<string, number>;
    disconnects: Record<string, number>;
    stderr: string[];
  };
  attackerStderr: string[];
  benchError?: string;
  targets: { probes: boolean; median: boolean | null; rss: boolean };
}

interface RunOptions {
  seconds: number;
  budgetMib: number;
  baselineMs: number | null;
}

async function run(
  attack: (typeof ATTACKS)[number] | undefined,
  sampler: Sampler,
  options: RunOptions,
): Promise<Result> {
  const name = attack?.name ?? "unloaded";
  const log = (what: string) => console.error(`${name}: ${what}`);
  log("starting a fresh node");
  const node = new NodeUnderTest();
  let attacker: Attacker | undefined;
  try {
    const target = await node.listening;
    await sampler.watch(node.child.pid, Deno.pid);
    const identities = await identitiesFor(options.seconds);
    // Warm-up, not counted: the node's and this process's handshake code is
    // compiled by the JIT after a few connections; every run starts warm.
    for (const identity of await identitiesFor(WARM_UP_PROBES)) await probe(target, identity, 0);
    if (attack) {
      log("attacker setup");
      attacker = new Attacker(attack.name, target.peerAddress, sampler);
      await sampler.watch(...attacker.pids);
      await attacker.ready;
    }
    await delay(1_000);
    const before = await sampler.next(node.child.pid);
    const goAt = Date.now();
    await attacker?.go();
    log(`${attack ? "attacking" : "probing"} for ${options.seconds} s`);
    const times = await probes(target, identities);
    let report: AttackerReport = { counters: {} };
    let benchError: string | undefined;
    if (attacker) {
      log("stopping the attacker");
      try {
        report = await attacker.stop();
      } catch (err) {
        benchError = (err as Error).message;
      }
    }
    const stopAt = Date.now();
    await delay(AFTER_MS);
    const after = await sampler.next(node.child.pid);
    const during = sampler.between(node.child.pid, goAt, after.t);
    const cpu = (pid: number) =>
      Math.round(100 * sampler.cpuSeconds(pid, goAt, stopAt) / ((stopAt - goAt) / 1000));
    const cpuPercent = {
      node: cpu(node.child.pid),
      attacker: attacker ? attacker.pids.reduce((sum, pid) => sum + cpu(pid), 0) : null,
      bench: cpu(Deno.pid),
    };
    const attackerPeak = attacker
      ? attacker.pids.reduce(
        (sum, pid) => sum + Math.max(0, ...sampler.between(pid).map((s) => s.rss)),
        0,
      )
      : null;
    if (attacker) await sampler.unwatch(...attacker.pids);
    await sampler.unwatch(node.child.pid);
    const crashed = node.crashed ? describeExit(node.exit!) : null;
    await node.stop();

    const ok = times.filter((p) => p.ms !== undefined).map((p) => p.ms!);
    const failures: Record<string, number> = {};
    for (const p of times) if (p.error) failures[p.error] = (failures[p.error] ?? 0) + 1;
    const medianMs = ok.length ? quantile(ok, 0.5) : null;
    const ratio = medianMs !== null && options.baselineMs ? medianMs / options.baselineMs : null;
    const mib = (kib: number) => round(kib / KIB, 1);
    const peak = Math.max(before.rss, ...during.map((s) => s.rss));
    const rssMib = {
      before: mib(before.rss),
      peak: mib(peak),
      after: mib(after.rss),
      hwm: mib(after.hwm),
      attackerPeak: attackerPeak === null ? null : mib(attackerPeak),
    };
    const rssSeriesMib = during
      .filter((_, i) => i % Math.round(1000 / SAMPLE_INTERVAL) === 0)
      .map((sample) => mib(sample.rss));
    return {
      name,
      title: attack?.title ?? "unloaded (no attacker)",
      probes: {
        attempts: times.length,
        succeeded: ok.length,
        medianMs: medianMs === null ? null : round(medianMs, 2),
        p90Ms: ok.length ? round(quantile(ok, 0.9), 2) : null,
        ratio: ratio === null ? null : round(ratio, 2),
        failures,
        times: times.map((p) => ({ ...p, ms: p.ms === undefined ? undefined : round(p.ms, 2) })),
      },
      rssMib,
      rssSeriesMib,
      cpuPercent,
      seconds: round((stopAt - goAt) / 1000, 1),
      counters: report.counters,
      legit: report.legit,
      node: {
        crashed,
        events: Object.fromEntries(node.events),
        errors: Object.fromEntries(node.errors),
        disconnects: Object.fromEntries(node.disconnects),
        stderr: node.stderr,
      },
      attackerStderr: attacker?.stderr ?? [],
      benchError,
      targets: {
        probes: ok.length === times.length,
        median: ratio === null ? (attack ? false : null) : ratio <= 2,
        rss: (peak - before.rss) / KIB <= options.budgetMib,
      },
    };
  } finally {
    if (attacker) {
      kill(attacker.child, "SIGKILL");
      await attacker.child.status;
    }
    await node.stop();
  }
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  return sorted[low] + (sorted[Math.ceil(at)] - sorted[low]) * (at - low);
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ---------------------------------------------------------------------------
// Printing.

const met = (ok: boolean | null) => ok === null ? "" : ok ? "met" : "not met";
const num = (n: number) => n.toLocaleString("en-US");

function table(results: Result[], budgetMib: number): string {
  const header = [
    "attack",
    "legit ok / attempts",
    "legit median ms (× unloaded)",
    "RSS MiB before / peak / after",
    "CPU % node / attacker / bench",
    "all probes ok",
    "median ≤ 2×",
    `RSS growth ≤ ${budgetMib} MiB`,
    "attacker's counters",
  ];
  const rows = results.map((r) => {
    const { probes: p, rssMib: m, cpuPercent: c } = r;
    const counters = Object.entries(r.counters).map(([k, v]) => `${k} ${num(v)}`);
    if (r.legit) counters.push(r.legit);
    if (r.node.crashed) counters.unshift(`NODE EXITED (${r.node.crashed})`);
    if (r.benchError) counters.unshift(`BENCH ERROR: ${r.benchError}`);
    return [
      r.title,
      `${p.succeeded} / ${p.attempts}`,
      p.medianMs === null ? "–" : `${p.medianMs.toFixed(2)} (${p.ratio?.toFixed(2) ?? "1.00"}×)`,
      `${m.before.toFixed(1)} / ${m.peak.toFixed(1)} / ${m.after.toFixed(1)}`,
      `${c.node} / ${c.attacker ?? "–"} / ${c.bench}`,
      met(r.targets.probes),
      met(r.targets.median),
      met(r.targets.rss),
      counters.join("; "),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [line(header), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...rows.map(line)]
    .join("\n");
}

/** What looked wrong: failed probes, the node's error events and stderr, a crash. */
function observations(results: Result[]): string {
  const out: string[] = [];
  for (const r of results) {
    const notes: string[] = [];
    for (const [error, n] of Object.entries(r.probes.failures)) {
      notes.push(`legit probe failed ${n}×: ${error}`);
    }
    for (const [error, n] of Object.entries(r.node.errors)) {
      notes.push(`node error event ${n}×: ${error}`);
    }
    for (const line of r.node.stderr.slice(0, 10)) notes.push(`node stderr: ${line}`);
    if (r.node.stderr.length > 10) {
      notes.push(`node stderr: … ${r.node.stderr.length - 10} more lines`);
    }
    for (const line of r.attackerStderr.slice(0, 5)) notes.push(`attacker stderr: ${line}`);
    if (r.node.crashed) notes.push(`the node exited during the attack (${r.node.crashed})`);
    if (r.benchError) notes.push(`bench: ${r.benchError}`);
    const disconnects = Object.entries(r.node.disconnects)
      .filter(([reason]) => !reason.endsWith("disconnected: SHUTDOWN")) // the probes leaving
      .sort((a, b) => b[1] - a[1]).slice(0, 3);
    for (const [reason, n] of disconnects) notes.push(`node disconnect reason ${n}×: ${reason}`);
    if (notes.length) out.push(`- ${r.name}:\n${notes.map((n) => `  - ${n}`).join("\n")}`);
  }
  return out.length ? out.join("\n") : "- nothing: no failed probe, no error event, no stderr";
}

async function machine(): Promise<string> {
  const text = async (command: string, args: string[]) => {
    try {
      const out = await new Deno.Command(command, { args, stdout: "piped" }).output();
      return new TextDecoder().decode(out.stdout).trim();
    } catch {
      return "";
    }
  };
  const nproc = await text("nproc", []) || String(navigator.hardwareConcurrency);
  const cpu = (await text("grep", ["-m1", "^model name", "/proc/cpuinfo"]))
    .replace(/^model name\s*:\s*/, "");
  const node = await text("node", ["--version"]);
  return `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.target}, nproc ${nproc}` +
    (cpu ? `, ${cpu}` : "") + (node ? `; Node.js ${node}` : "");
}

// ---------------------------------------------------------------------------
// Main.

interface Options {
  seconds: number;
  baselineSeconds: number;
  budgetMib: number;
  attacks: string[];
  json?: string;
}

const USAGE = `Usage: deno task bench:flood [--seconds N] [--attack NAME]... [--budget-mib N]
       [--baseline-seconds N] [--json FILE]

  --seconds N           each attack's duration (default 60)
  --attack NAME         run only this attack (repeatable): ${ATTACKS.map((a) => a.name).join(", ")}
  --budget-mib N        the node's allowed RSS growth under an attack, in MiB
                        (default: the README's resource budget, resourceBudget().totalBytes)
  --baseline-seconds N  the unloaded probes' duration (default 30, at most --seconds)
  --json FILE           also write the results as JSON`;

function parseOptions(args: string[]): Options {
  const options: Options = {
    seconds: 60,
    baselineSeconds: 30,
    budgetMib: Math.round(resourceBudget().totalBytes / 2 ** 20),
    attacks: [],
  };
  let baseline: number | undefined;
  const positive = (flag: string, value: string | undefined) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) {
      throw new UsageError(`${flag} needs a positive number, got ${value}`);
    }
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const value = () => {
      if (i + 1 >= args.length) throw new UsageError(`${arg} needs a value`);
      return args[++i];
    };
    if (arg === "--seconds") options.seconds = Math.ceil(positive(arg, value()));
    else if (arg === "--baseline-seconds") baseline = Math.ceil(positive(arg, value()));
    else if (arg === "--budget-mib") options.budgetMib = positive(arg, value());
    else if (arg === "--json") options.json = value();
    else if (arg === "--attack") {
      for (const name of value().split(",")) {
        if (!ATTACKS.some((a) => a.name === name)) {
          throw new UsageError(
            `Unknown attack "${name}": one of ${ATTACKS.map((a) => a.name).join(", ")}`,
          );
        }
        options.attacks.push(name);
      }
    } else if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else throw new UsageError(`Unknown option ${arg}`);
  }
  options.baselineSeconds = baseline ?? Math.min(options.baselineSeconds, options.seconds);
  return options;
}

class UsageError extends Error {
  override name = "UsageError";
}

async function main(args: string[]): Promise<number> {
  const options = parseOptions(args);
  const attacks = options.attacks.length
    ? ATTACKS.filter((a) => options.attacks.includes(a.name))
    : [...ATTACKS];
  const started = performance.now();
  const sampler = new Sampler();
  const results: Result[] = [];
  try {
    const baseline = await run(undefined, sampler, {
      ...options,
      seconds: options.baselineSeconds,
      baselineMs: null,
    });
    if (baseline.probes.medianMs === null) {
      throw new Error(
        `No legit probe of the unloaded node succeeded: ${
          JSON.stringify(baseline.probes.failures)
        }`,
      );
    }
    results.push(baseline);
    for (const attack of attacks) {
      results.push(
        await run(attack, sampler, { ...options, baselineMs: baseline.probes.medianMs }),
      );
    }
  } finally {
    await sampler.close();
  }
  const benchFailed = results.some((r) => r.benchError);
  console.log(`\n${await machine()}\n`);
  console.log(
    `Each attack ${options.seconds} s against a fresh node (\`cli.ts run --listen 127.0.0.1:0 --json` +
      ` --no-stdin\`, its own process); a legit peer (a fresh carrier node in the bench process)` +
      ` connects + handshakes + PINGs once a second, ${PROBE_TIMEOUT / 1000} s allowed; unloaded` +
      ` median from ${options.baselineSeconds} probes of a fresh node with no attacker. The attacker` +
      ` runs in a third process; node, attacker and bench share the machine's cores (CPU %: of one` +
      ` core, over the attack). RSS: VmRSS sampled every ${SAMPLE_INTERVAL} ms; "after": ${
        AFTER_MS / 1000
      } s after the attacker stopped.\n`,
  );
  console.log(table(results, options.budgetMib));
  console.log(`\nObservations:\n${observations(results)}`);
  console.log(`\nTotal bench time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
  if (options.json) {
    await Deno.writeTextFile(
      options.json,
      JSON.stringify(
        { machine: await machine(), options, budgetMib: options.budgetMib, results },
        null,
        2,
      ) + "\n",
    );
  }
  return benchFailed ? 1 : 0;
}

if (import.meta.main) {
  const interrupted = async (signal: Deno.Signal) => {
    console.error(`\n${signal}: stopping every process of the bench`);
    await killAll();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", () => interrupted("SIGINT"));
  Deno.addSignalListener("SIGTERM", () => interrupted("SIGTERM"));
  let code = 1;
  try {
    code = await main(Deno.args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n\n${USAGE}`);
      code = 2;
    } else {
      console.error(err);
      code = 1;
    }
  } finally {
    await killAll();
  }
  Deno.exit(code);
}
