/**
 * The fuzz campaign: starts the node under test (a child process), the
 * legit peer pinging it, and an RSS sampler; runs each target (live, in the
 * worker, or both) within its budget; and reports per target the inputs,
 * crashes, hangs, legit pings and the node's memory. Used by `tools/fuzz.ts`
 * (`deno task fuzz`) and by the CI slice `tests/fuzz/fuzz_test.ts`.
 *
 * @module
 */
import { TcpTransport } from "../../mod.ts";
import { LegitPinger, LiveNode, sleep, within } from "./_harness.ts";
import { material } from "./_material.ts";
import { LOCAL_INPUTS } from "./_local.ts";
import type { LocalMessage, LocalTask } from "./_local_worker.ts";
import { allTargets, type Campaign, type Finding, type TargetDef, TargetRun } from "./_targets.ts";

/** Options of {@linkcode runCampaign}. */
export interface CampaignOptions {
  /** The seed every input derives from. @default {1} */
  seed?: number;
  /** Inputs per target. @default {1_000_000} (unbounded when only `duration` is given) */
  inputs?: number;
  /** Seconds for the whole run, shared by the targets. @default {unbounded} */
  duration?: number;
  /** Only these targets (names, or prefixes ending in `.`). @default {all} */
  targets?: string[];
  /** A live batch or connection not answered within this many ms is a hang. @default {10_000} */
  hangMs?: number;
  /** An in-process input not finished within this many ms is a hang. @default {2_000} */
  localHangMs?: number;
  /** Connections in flight in the connection targets. @default {6} */
  concurrency?: number;
  /** Overrides every target's live share (0–1) where it has both parts. @default {per target} */
  liveShare?: number;
  /** Progress lines. @default {console.error} */
  log?: (line: string) => void;
  /** Milliseconds between legit pings. @default {1000} */
  pingInterval?: number;
  /** The first input index (to replay one: `from` = index, `inputs` = index + 1). @default {0} */
  from?: number;
  /**
   * Feed the non-TCP share of the Noise targets to a node in each worker over
   * a memory transport, instead of to the handshake state machine directly.
   * @default {false}
   */
  memory?: boolean;
  /** Workers running the in-process targets at once. @default {2} */
  workers?: number;
}

/** One target's figures. */
export interface TargetReport {
  /** The target. */
  name: string;
  /** What it feeds. */
  about: string;
  /** Inputs fed in all. */
  inputs: number;
  /** Of which to the live node. */
  liveInputs: number;
  /** Wall time, in seconds. */
  seconds: number;
  /** Crashes: unhandled rejections, uncaught exceptions, unexpected errors, INTERNAL NACKs, broken invariants, the node's death. */
  crashes: number;
  /** Inputs or batches that did not finish within the bound. */
  hangs: number;
  /** Legit pings during this target. */
  pings: { attempts: number; failures: number };
  /** The node's RSS (bytes) at the start, its peak and at the end. */
  rss: { before: number; peak: number; after: number };
  /** The most frequent outcomes (replies, results): how deep the inputs went. */
  outcomes: string[];
  /** What was found. */
  findings: Finding[];
}

/** What {@linkcode runCampaign} returns. */
export interface CampaignReport {
  /** The seed. */
  seed: number;
  /** Per target, in order. */
  targets: TargetReport[];
  /** Legit pings over the whole run. */
  pings: { attempts: number; failures: number; slowestMs: number; errors: string[] };
  /** The node's RSS when it was ready and at the end (bytes), and where the figure comes from. */
  rss: { start: number; peak: number; end: number; source: string };
  /** Whole-run wall time, in seconds. */
  seconds: number;
  /** Node `error` events by kind over the run (expected, typed ones included). */
  nodeErrors: Record<string, number>;
}

/** The names of every target. */
export function targetNames(): string[] {
  return allTargets().map((t) => t.name);
}

function selected(targets: TargetDef[], names: string[] | undefined): TargetDef[] {
  if (!names || names.length === 0) return targets;
  const out = targets.filter((t) =>
    names.some((n) =>
      t.name === n || (n.endsWith(".") && t.name.startsWith(n)) ||
      (n.endsWith("*") && t.name.startsWith(n.slice(0, -1)))
    )
  );
  const unknown = names.filter((n) =>
    !targets.some((t) => t.name === n || t.name.startsWith(n.replace(/\*$/, "")))
  );
  if (unknown.length > 0) {
    throw new RangeError(
      `Unknown target ${unknown.join(", ")}; targets: ${targets.map((t) => t.name).join(", ")}`,
    );
  }
  return out;
}

/** Runs the campaign and reports. */
export async function runCampaign(options: CampaignOptions = {}): Promise<CampaignReport> {
  const seed = options.seed ?? 1;
  const log = options.log ?? ((line: string) => console.error(line));
  const hangMs = options.hangMs ?? 10_000;
  const localHangMs = options.localHangMs ?? 2_000;
  const targets = selected(allTargets(), options.targets);
  const perTarget = options.inputs ??
    (options.duration !== undefined ? Number.MAX_SAFE_INTEGER : 1_000_000);
  const runStarted = Date.now();
  const runUntil = options.duration !== undefined ? runStarted + options.duration * 1000 : Infinity;

  log(
    `fuzz: seed ${seed}, ${targets.length} targets, ${
      perTarget === Number.MAX_SAFE_INTEGER
        ? "no input cap"
        : `${perTarget.toLocaleString("en")} inputs each`
    }${options.duration !== undefined ? `, ${options.duration} s in all` : ""}`,
  );
  const { ids, weak, signers, keys } = material(seed);

  let node = await LiveNode.start(seed);
  const transport = new TcpTransport();
  let idCursor = 0;
  const campaign: Campaign = {
    seed,
    node,
    transport,
    ids,
    weak,
    signers,
    keys,
    hangMs,
    concurrency: options.concurrency ?? 6,
    nextId: () => ids[idCursor++ % ids.length],
    restart: async () => {
      if (!node.exited) return;
      log(`fuzz: the node process died; restarting it`);
      await node.close();
      node = await LiveNode.start(seed);
      campaign.node = node;
      node.onCrash = onCrash;
    },
  };
  let current: TargetRun | undefined;
  let logged = 0;
  const onCrash = (crash: { kind: string; message: string; stack: string }) => {
    if (logged++ < 20) {
      log(`fuzz: ${current?.name ?? "(between targets)"}: node ${crash.kind}: ${crash.message}`);
    }
    current?.add({
      kind: "crash",
      range: current.range,
      message: `${crash.kind}: ${crash.message}`,
      stack: crash.stack,
    });
  };
  node.onCrash = onCrash;
  const pinger = await LegitPinger.start(() => node.peerAddress, {
    interval: options.pingInterval ?? 1000,
  });
  const startRss = node.rss();
  let peak = startRss;
  let targetPeak = startRss;
  const sampler = setInterval(() => {
    const rss = node.rss();
    if (rss > peak) peak = rss;
    if (rss > targetPeak) targetPeak = rss;
  }, 200);

  const reports: TargetReport[] = [];
  let endRss = 0;
  let stats: Awaited<ReturnType<LiveNode["stats"]>>;
  try {
    for (let t = 0; t < targets.length; t++) {
      const def = targets[t];
      // The time left, shared by the targets left; each runs at least a little.
      const share = runUntil === Infinity
        ? Infinity
        : Math.max(500, (runUntil - Date.now()) / (targets.length - t));
      const until = Date.now() + share;
      const run = new TargetRun(def.name);
      current = run;
      const rssBefore = node.rss();
      targetPeak = rssBefore;
      const pingsBefore = { attempts: pinger.attempts, failures: pinger.failures };
      const started = performance.now();
      const both = def.live !== undefined && def.rest !== undefined;
      const liveShare = both ? options.liveShare ?? def.liveShare ?? 0.05 : def.live ? 1 : 0;
      const from = options.from ?? 0;
      const liveEnd = Math.min(perTarget, from + Math.ceil((perTarget - from) * liveShare));
      try {
        if (def.live && liveEnd > from) {
          const liveUntil = both && until !== Infinity
            ? Date.now() + (until - Date.now()) * Math.max(liveShare, 0.2)
            : until;
          await def.live(campaign, run, { inputs: liveEnd, until: liveUntil }, from);
        }
        if (def.rest) {
          const memory = def.rest === "memory" ||
            (options.memory === true && def.name.startsWith("noise."));
          await runLocal(run, {
            seed,
            mode: memory ? "memory" : "local",
            from: from + run.inputs,
            to: perTarget,
            until,
            hangMs: memory ? 3 * hangMs + 10_000 : localHangMs,
            liveHangMs: hangMs,
            concurrency: campaign.concurrency,
            workers: options.workers ?? 2,
          });
        }
      } catch (err) {
        run.add({
          kind: "crash",
          message: `the campaign failed in this target: ${(err as Error)?.message}`,
          stack: (err as Error)?.stack,
        });
      }
      current = undefined;
      await sleep(300);
      const seconds = (performance.now() - started) / 1000;
      const report: TargetReport = {
        name: def.name,
        about: def.about,
        inputs: run.inputs,
        liveInputs: run.liveInputs,
        seconds,
        crashes: run.crashes,
        hangs: run.hangs,
        pings: {
          attempts: pinger.attempts - pingsBefore.attempts,
          failures: pinger.failures - pingsBefore.failures,
        },
        rss: { before: rssBefore, peak: Math.max(targetPeak, rssBefore), after: node.rss() },
        outcomes: run.outcomes.top(Number(Deno.env.get("FUZZ_TOP") ?? 6)),
        findings: run.findings,
      };
      reports.push(report);
      log(
        `fuzz: ${def.name}: ${report.inputs.toLocaleString("en")} inputs (${
          report.liveInputs.toLocaleString("en")
        } live) in ${
          seconds.toFixed(1)
        } s, ${report.crashes} crashes, ${report.hangs} hangs, pings ${
          report.pings.attempts - report.pings.failures
        }/${report.pings.attempts}, RSS ${mib(report.rss.before)} → ${mib(report.rss.peak)} → ${
          mib(report.rss.after)
        }`,
      );
    }
  } finally {
    clearInterval(sampler);
    await pinger.stop();
    endRss = node.rss();
    stats = await node.stats();
    await node.close();
    transport.close();
  }
  return {
    seed,
    targets: reports,
    pings: {
      attempts: pinger.attempts,
      failures: pinger.failures,
      slowestMs: pinger.slowest,
      errors: pinger.errors,
    },
    rss: { start: startRss, peak, end: endRss, source: node.rssSource },
    seconds: (Date.now() - runStarted) / 1000,
    nodeErrors: stats?.errors ?? {},
  };
}

/** Time a worker may take to start (under `deno test` it is type-checked first) and prepare. */
const STARTUP_MS = 120_000;

/** How {@linkcode runLocal} runs a target's in-process part. */
interface LocalRun {
  seed: number;
  mode: "local" | "memory";
  from: number;
  to: number;
  until: number;
  /** The watchdog's bound: no new input started for this long is a hang. */
  hangMs: number;
  /** The memory mode's own hang bound (a batch or connection). */
  liveHangMs: number;
  concurrency: number;
  workers: number;
}

/** Runs the in-process part of a target in `workers` workers, each over a share of the inputs. */
async function runLocal(run: TargetRun, options: LocalRun): Promise<void> {
  const { from, to } = options;
  if (from >= to || (options.mode === "local" && !(run.name in LOCAL_INPUTS))) return;
  const span = to - from;
  const n = Math.max(1, Math.min(options.workers, Math.ceil(span / 200)));
  const step = Math.ceil(span / n);
  await Promise.all(
    Array.from(
      { length: n },
      (_, i) =>
        runLocalRange(run, options, from + i * step, Math.min(to, from + (i + 1) * step), i),
    ),
  );
}

/** Runs inputs `[from, to)` of a target in a worker, restarting it after a hang. */
async function runLocalRange(
  run: TargetRun,
  options: LocalRun,
  from: number,
  to: number,
  worker: number,
): Promise<void> {
  const { until, hangMs } = options;
  let start = from;
  while (start < to && Date.now() < until) {
    const heartbeat = new SharedArrayBuffer(8);
    const beat = new Int32Array(heartbeat);
    Atomics.store(beat, 0, -1);
    const w = new Worker(new URL("./_local_worker.ts", import.meta.url), { type: "module" });
    const { promise: finished, resolve } = Promise.withResolvers<"done" | "error">();
    w.onmessage = (event: MessageEvent<LocalMessage>) => {
      const m = event.data;
      if (m.type === "progress" || m.type === "done") {
        run.inputs += m.done;
        for (const [k, v] of Object.entries(m.outcomes)) run.outcomes.add(k, v);
        if (m.type === "done") resolve("done");
      } else if (m.type === "finding") {
        run.add({
          kind: m.kind ?? "violation",
          index: m.index,
          range: m.range,
          message: options.mode === "memory" ? `(memory transport) ${m.message}` : m.message,
          stack: m.stack,
          input: m.input,
        });
      } else if (m.type === "slow") {
        run.outcomes.add(`slow (> 1 s)`);
      }
    };
    w.onerror = (event) => {
      event.preventDefault();
      run.add({
        kind: "crash",
        index: Atomics.load(beat, 0),
        message: `the worker failed: ${event.message}`,
      });
      resolve("error");
    };
    const task: LocalTask = {
      name: run.name,
      mode: options.mode,
      seed: options.seed,
      start,
      end: to,
      duration: until === Infinity ? Number.MAX_SAFE_INTEGER : Math.max(0, until - Date.now()),
      slowMs: 1000,
      hangMs: options.liveHangMs,
      concurrency: options.concurrency,
      worker,
      heartbeat,
    };
    w.postMessage(task);
    let last = -1;
    let since = Date.now();
    let outcome: "done" | "error" | "hang" | undefined;
    while (outcome === undefined) {
      outcome = await within(finished, 100, undefined);
      if (outcome !== undefined) break;
      const index = Atomics.load(beat, 0);
      if (index !== last) {
        last = index;
        since = Date.now();
      } else if (Date.now() - since > (index < 0 ? STARTUP_MS : hangMs)) outcome = "hang";
    }
    w.terminate();
    const index = Math.max(start, Atomics.load(beat, 0));
    if (outcome === "done") break;
    if (outcome === "hang") {
      run.inputs++;
      run.add({
        kind: "hang",
        index,
        message:
          `input ${index} did not finish within ${hangMs} ms (the worker was stopped); replay: --target ${run.name} --replay ${index}`,
      });
    }
    // Inputs finished but not yet reported when the worker stopped are not counted; none runs twice.
    start = index + 1;
  }
}

/** Mebibytes, one decimal. */
export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

/** The report as text: a table per target, then outcomes and findings. */
export function formatReport(report: CampaignReport): string {
  const lines: string[] = [];
  const header = [
    "target",
    "inputs",
    "live",
    "inputs/s",
    "crashes",
    "hangs",
    "legit pings",
    "RSS before",
    "peak",
    "after",
  ];
  const rows = report.targets.map((t) => [
    t.name,
    t.inputs.toLocaleString("en"),
    t.liveInputs === t.inputs
      ? "all"
      : t.liveInputs === 0
      ? "-"
      : t.liveInputs.toLocaleString("en"),
    Math.round(t.inputs / Math.max(t.seconds, 0.001)).toLocaleString("en"),
    String(t.crashes),
    String(t.hangs),
    `${t.pings.attempts - t.pings.failures}/${t.pings.attempts}`,
    mib(t.rss.before),
    mib(t.rss.peak),
    mib(t.rss.after),
  ]);
  const totals = report.targets.reduce(
    (a, t) => ({
      inputs: a.inputs + t.inputs,
      live: a.live + t.liveInputs,
      seconds: a.seconds + t.seconds,
      crashes: a.crashes + t.crashes,
      hangs: a.hangs + t.hangs,
    }),
    { inputs: 0, live: 0, seconds: 0, crashes: 0, hangs: 0 },
  );
  rows.push([
    "total",
    totals.inputs.toLocaleString("en"),
    totals.live.toLocaleString("en"),
    Math.round(totals.inputs / Math.max(totals.seconds, 0.001)).toLocaleString("en"),
    String(totals.crashes),
    String(totals.hangs),
    `${report.pings.attempts - report.pings.failures}/${report.pings.attempts}`,
    mib(report.rss.start),
    mib(report.rss.peak),
    mib(report.rss.end),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    "| " + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ") +
    " |";
  lines.push(`carrier fuzz campaign: seed ${report.seed}, ${report.seconds.toFixed(0)} s`);
  lines.push("");
  lines.push(fmt(header));
  lines.push(
    "| " + widths.map((w, i) => (i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ") +
      " |",
  );
  for (const r of rows) lines.push(fmt(r));
  lines.push("");
  lines.push(
    `legit peer: ${report.pings.attempts} fresh connections + PING, ${report.pings.failures} failed, slowest ${
      Math.round(report.pings.slowestMs)
    } ms`,
  );
  for (const e of report.pings.errors) lines.push(`  ping failure: ${e}`);
  lines.push(
    `node RSS: ${mib(report.rss.start)} at start, ${mib(report.rss.peak)} peak, ${
      mib(report.rss.end)
    } at the end (${report.rss.source})`,
  );
  lines.push("");
  lines.push("outcomes (the most frequent replies or results per target: how deep inputs got):");
  for (const t of report.targets) lines.push(`  ${t.name}: ${t.outcomes.join("; ")}`);
  const errors = Object.entries(report.nodeErrors);
  if (errors.length > 0) {
    lines.push("");
    lines.push("node error events (typed ones are expected):");
    for (const [k, v] of errors.sort((a, b) => b[1] - a[1])) lines.push(`  ${v} × ${k}`);
  }
  const findings = report.targets.flatMap((t) => t.findings);
  lines.push("");
  if (findings.length === 0) lines.push("findings: none");
  else {
    lines.push(`findings (${findings.length}):`);
    for (const f of findings) {
      const where = f.index !== undefined
        ? `input ${f.index}`
        : f.range
        ? `inputs ${f.range[0]}–${f.range[1] - 1}`
        : "";
      lines.push(`- ${f.target} ${f.kind} ${where}: ${f.message}`);
      lines.push(
        `  replay: deno task fuzz --seed ${report.seed} --target ${f.target}${
          f.index !== undefined ? ` --replay ${f.index}` : ""
        }`,
      );
      if (f.input) {
        lines.push(`  input (hex): ${f.input.slice(0, 512)}${f.input.length > 512 ? "…" : ""}`);
      }
      if (f.stack) lines.push(...f.stack.split("\n").slice(0, 14).map((l) => `    ${l}`));
    }
  }
  return lines.join("\n");
}

/** Whether the run found nothing: no crash, no hang, every legit ping answered. */
export function isClean(report: CampaignReport): boolean {
  return report.pings.failures === 0 &&
    report.targets.every((t) => t.crashes === 0 && t.hangs === 0);
}
