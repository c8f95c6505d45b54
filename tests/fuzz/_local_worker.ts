/**
 * Runs part of one target in a worker, so that the campaign's watchdog can
 * stop an input that never returns:
 *
 * - `local`: the in-process parser drive of `_local.ts`, one input at a time;
 * - `memory`: the target's live part against a carrier node created in this
 *   worker over a {@linkcode MemoryNetwork} (the fast path of the targets
 *   whose every input costs a handshake), with the node's unhandled
 *   rejections, uncaught exceptions and unexpected `error` events reported
 *   as crashes.
 *
 * The index of the input being run is kept in a shared counter; progress,
 * outcomes and findings are posted back.
 *
 * @module
 */
import { CarrierError, createNode } from "../../mod.ts";
import { MemoryNetwork } from "../../testing.ts";
import { LOCAL_INPUTS, prepareLocal, Violation } from "./_local.ts";
import { material, nodeIdentity } from "./_material.ts";
import { Rng } from "./_rng.ts";
import {
  allTargets,
  type Campaign,
  type Finding,
  type NodeUnderTest,
  TargetRun,
} from "./_targets.ts";

/** What the campaign asks the worker to run. */
export interface LocalTask {
  /** The target. */
  name: string;
  /** In-process parsers, or the live part against a node over a memory transport. */
  mode: "local" | "memory";
  /** The campaign seed. */
  seed: number;
  /** First input index. */
  start: number;
  /** One past the last. */
  end: number;
  /** Milliseconds for inputs, counted once the worker has started and prepared. */
  duration: number;
  /** An input slower than this many ms is reported (local). */
  slowMs: number;
  /** A connection input that does not finish within this many ms is a hang (memory). */
  hangMs: number;
  /** Connections in flight (memory). */
  concurrency: number;
  /** This worker's number (names its memory network addresses). */
  worker: number;
  /**
   * Int32Array view: [0] the index being run (−1 while the worker starts and
   * prepares, which the watchdog gives longer), [1] set to 1 when done.
   */
  heartbeat: SharedArrayBuffer;
}

/** One message from the worker. */
export type LocalMessage =
  | { type: "progress"; done: number; outcomes: Record<string, number> }
  | {
    type: "finding";
    kind?: Finding["kind"];
    index?: number;
    range?: [number, number];
    message: string;
    stack?: string;
    input?: string;
  }
  | { type: "slow"; index: number; ms: number }
  | { type: "done"; done: number; outcomes: Record<string, number> };

const self = globalThis as unknown as {
  onmessage: ((event: MessageEvent<LocalTask>) => void) | null;
  postMessage(message: LocalMessage): void;
  addEventListener(type: string, listener: (event: Event) => void): void;
};

function stackOf(err: unknown): string {
  const e = err as Error;
  return String(e?.stack ?? e) +
    (e?.cause ? `\ncaused by: ${(e.cause as Error)?.stack ?? e.cause}` : "");
}

async function runLocal(task: LocalTask, beat: Int32Array): Promise<void> {
  const input = LOCAL_INPUTS[task.name];
  await prepareLocal(task.name, task.seed);
  // Starting (type-checked under `deno test`) and preparing (samples, bombs,
  // fixed handshakes) do not eat into the time for inputs.
  const until = Date.now() + task.duration;
  let outcomes: Record<string, number> = {};
  let done = 0;
  let lastPost = performance.now();
  for (let i = task.start; i < task.end && (i === task.start || Date.now() < until); i++) {
    Atomics.store(beat, 0, i);
    const rng = Rng.forInput(task.seed, task.name, i);
    const started = performance.now();
    let key: string;
    try {
      const result = input(rng, i, task.seed);
      key = typeof result === "string" ? result : await result;
    } catch (err) {
      key = "finding";
      const e = err as Error;
      self.postMessage({
        type: "finding",
        kind: e instanceof Violation ? "violation" : "crash",
        index: i,
        message: e instanceof Violation ? e.message : `uncaught ${e?.name}: ${e?.message}`,
        stack: stackOf(e),
        input: e instanceof Violation ? e.input : undefined,
      });
    }
    const ms = performance.now() - started;
    if (ms > task.slowMs) self.postMessage({ type: "slow", index: i, ms });
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    done++;
    const now = performance.now();
    if (now - lastPost > 200) {
      self.postMessage({ type: "progress", done, outcomes });
      outcomes = {};
      done = 0;
      lastPost = now;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  self.postMessage({ type: "done", done, outcomes });
}

async function runMemory(task: LocalTask, beat: Int32Array): Promise<void> {
  const def = allTargets().find((t) => t.name === task.name);
  if (!def?.live) throw new Error(`target ${task.name} has no live part`);
  const run = new TargetRun(task.name);
  const report = (finding: Omit<Finding, "target">) => {
    self.postMessage({ type: "finding", ...finding });
  };
  run.add = (finding) => report(finding);
  const crash = (kind: string, err: unknown) =>
    report({
      kind: "crash",
      range: run.range,
      message: `${kind}: ${(err as Error)?.message ?? err}`,
      stack: stackOf(err),
    });
  self.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    crash("unhandledrejection", (event as PromiseRejectionEvent).reason);
  });
  self.addEventListener("error", (event) => {
    event.preventDefault();
    crash("uncaught", (event as ErrorEvent).error);
  });

  const net = new MemoryNetwork();
  const address = `mem:fuzz-node-${task.worker}`;
  const node = await createNode({
    identity: nodeIdentity(task.seed),
    transport: net.transport(),
    listen: [address],
    serveMetrics: true,
  });
  node.addEventListener("error", (event) => {
    const { error, source } = event.detail;
    if (!(error instanceof CarrierError)) crash(`unexpected error event from ${source}`, error);
  });
  const nodeUnderTest: NodeUnderTest = {
    address: node.address,
    publicKey: node.identity.publicKey,
    tcp: node.listenAddrs[0],
    exited: false,
    dial: async (peerAddress) => {
      try {
        const peer = await node.connect(peerAddress);
        await peer.close();
        return { ok: true };
      } catch (err) {
        return { ok: false, error: `${(err as Error)?.name}: ${(err as Error)?.message}` };
      }
    },
  };
  const { ids, weak, signers, keys } = material(task.seed);
  let cursor = task.worker * 7;
  const campaign: Campaign = {
    seed: task.seed,
    node: nodeUnderTest,
    transport: net.transport(),
    ids,
    weak,
    signers,
    keys,
    hangMs: task.hangMs,
    concurrency: task.concurrency,
    nextId: () => ids[cursor++ % ids.length],
    restart: () => Promise.resolve(),
  };
  let reported = 0;
  let snapshot = new Map<string, number>();
  const post = (type: "progress" | "done") => {
    const outcomes: Record<string, number> = {};
    for (const [k, v] of run.outcomes.counts) {
      const delta = v - (snapshot.get(k) ?? 0);
      if (delta > 0) outcomes[k] = delta;
    }
    snapshot = new Map(run.outcomes.counts);
    self.postMessage({ type, done: run.inputs - reported, outcomes });
    reported = run.inputs;
  };
  Atomics.store(beat, 0, task.start);
  const ticker = setInterval(() => {
    Atomics.store(beat, 0, run.range[1]);
    post("progress");
  }, 200);
  try {
    await def.live(
      campaign,
      run,
      { inputs: task.end, until: Date.now() + task.duration },
      task.start,
    );
  } finally {
    clearInterval(ticker);
    await node.close();
    await net[Symbol.asyncDispose]?.();
  }
  post("done");
}

self.onmessage = async (event) => {
  const task = event.data;
  const beat = new Int32Array(task.heartbeat);
  try {
    if (task.mode === "memory") await runMemory(task, beat);
    else await runLocal(task, beat);
  } catch (err) {
    self.postMessage({
      type: "finding",
      kind: "crash",
      message: `the worker's driver failed: ${(err as Error)?.message}`,
      stack: stackOf(err),
    });
    self.postMessage({ type: "done", done: 0, outcomes: {} });
  }
  Atomics.store(beat, 1, 1);
};
