/**
 * One Jepsen-style run against the DHT (issue 12): a seeded swarm, a fault
 * mix, concurrent clients on hot and cold keys for a while, then heal, final
 * reads and the check of the history.
 *
 * Clients (each on a node that never crashes; outbound-only nodes always
 * host some):
 * - incrementers: read a counter, then `cas` it to `{"op": id, "n": n + 1}`
 *   at the version read; a lost CAS reads again;
 * - readers: `get` of counters and the register, some with
 *   `consistency: "any"`;
 * - putters: `put` of a unique value to the register;
 * - lockers (on distinct nodes: locks are per node): `lock` with a short
 *   TTL, hold for a while (sometimes past the lease), `unlock`.
 *
 * Faults stay within a minority of every key's replica set: a member that
 * crashes or restarts (a restart loses its store) counts once, whatever
 * else happens to it.
 *
 * @module
 */
import { LockHeldError, RecordError, VersionConflictError } from "../../lib/dht/errors.ts";
import type { Node } from "../../mod.ts";
import { Rng } from "./_faults.ts";
import { majority, type Member, Swarm } from "./_swarm.ts";
import {
  checkHistory,
  type CheckResult,
  History,
  type Op,
  parseValue,
  writtenValue,
} from "./history.ts";

/** The fault mixes. */
export type FaultMix = "none" | "outbound" | "crash" | "slow" | "restart" | "mixed";

/** Every fault mix, in table order. */
export const FAULT_MIXES: readonly FaultMix[] = [
  "none",
  "outbound",
  "crash",
  "slow",
  "restart",
  "mixed",
];

/** What each mix does. */
export const MIX_DESCRIPTIONS: Readonly<Record<FaultMix, string>> = {
  none: "every node listens, no faults",
  outbound: "3–5 outbound-only nodes (clients on them), no faults",
  crash: "outbound-only nodes; a minority of replicas crash mid-operation",
  slow:
    "outbound-only nodes; 1–2 slow replicas (10–250 ms a chunk) and 0–10 ms jitter on every link",
  restart: "outbound-only nodes; a minority of replicas crash and restart with empty stores",
  mixed: "outbound-only nodes; slow replicas, jitter, a crash and a restart",
};

/** Options of {@linkcode runJepsen}. */
export interface RunOptions {
  /** The seed: swarm, identities, clients' choices, faults. */
  seed: number;
  /** The fault mix. */
  mix: FaultMix;
  /** How long the clients run, in s. @default {a seeded 3 to 5} */
  seconds?: number;
  /** Progress lines. @default {none} */
  log?: (line: string) => void;
}

/** What one run did. */
export interface RunResult {
  seed: number;
  mix: FaultMix;
  /** The history, with the run's parameters in `meta`. */
  history: History;
  check: CheckResult;
  /** get latencies, ms, of operations that returned (final reads left out). */
  latency: { linearizable: number[]; any: number[] };
  /** Members crashed, restarted, slowed; chunks delayed. */
  faults: { crashed: number; restarted: number; slow: number; delayed: number };
  /** Refresh rounds until replica sets agreed (0: they did not). */
  rounds: number;
  /** Wall time of the whole run, ms. */
  elapsed: number;
}

const HOT = ["hot-0", "hot-1"];
const COLD = ["cold-0", "cold-1", "cold-2", "cold-3"];
const REGISTER = "reg-0";
const LOCKS = ["lock-0", "lock-1"];
const KEYS = [...HOT, ...COLD, REGISTER, ...LOCKS];

/** Fewer than this many ms of sleep are still a real turn of the event loop. */
function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** Runs one seed of one mix and checks its history. */
export async function runJepsen(options: RunOptions): Promise<RunResult> {
  const began = performance.now();
  const { seed, mix } = options;
  const log = options.log ?? (() => {});
  const rng = new Rng(seed).fork(`mix ${mix}`);
  const plan = rng.fork("plan");
  const listening = plan.int(10, 14);
  const outboundOnly = mix === "none" ? 0 : plan.int(3, 5);
  const replicas = plan.int(5, 7);
  const seconds = options.seconds ?? plan.int(3, 5);
  const history = new History();
  history.meta = { seed, mix, listening, outboundOnly, replicas, seconds };
  const swarm = await Swarm.start({ rng, listening, outboundOnly, replicas, keys: KEYS });
  try {
    log(
      `seed ${seed} ${mix}: ${listening} listening + ${outboundOnly} outbound-only, R = ${replicas}, ` +
        `converged in ${swarm.rounds || "no"} rounds`,
    );
    // Victims: crashed or restarted members, a minority of every key's replica set.
    const budget = replicas - majority(replicas);
    const sets = KEYS.map((key) => new Set(swarm.replicasOf(key)));
    const victims: Member[] = [];
    const wanted = mix === "crash" || mix === "restart"
      ? plan.int(1, budget)
      : mix === "mixed"
      ? Math.min(2, budget)
      : 0;
    const hotReplicas = new Set(HOT.flatMap((k) => swarm.replicasOf(k)));
    const candidates = plan.shuffle(
      swarm.members.filter((m) => m.listens && m !== swarm.members[0]),
    )
      .sort((a, b) => Number(hotReplicas.has(b)) - Number(hotReplicas.has(a)));
    for (const m of candidates) {
      if (victims.length >= wanted) break;
      const fits = sets.every((set) =>
        !set.has(m) || victims.filter((v) => set.has(v)).length + 1 <= budget
      );
      if (fits) victims.push(m);
    }
    // Slow members: replicas of the hot keys that stay up.
    const slow: Member[] = [];
    if (mix === "slow" || mix === "mixed") {
      const count = plan.int(1, 2);
      for (const m of plan.shuffle([...hotReplicas])) {
        if (slow.length < count && !victims.includes(m)) slow.push(m);
      }
      for (const m of slow) m.host.delay = { min: 10, max: plan.int(50, 250) };
      swarm.net.jitter = { min: 0, max: 10 };
    }
    history.meta.victims = victims.map((m) => m.name);
    history.meta.slow = slow.map((m) => m.name);
    // Clients: on members that stay up, outbound-only ones first.
    const hosts = [
      ...plan.shuffle(swarm.members.filter((m) => !m.listens)),
      ...plan.shuffle(swarm.members.filter((m) => m.listens && !victims.includes(m))),
    ];
    let stopped = false;
    const clients: Promise<void>[] = [];
    let next = 0;
    const place = () => hosts[next++ % hosts.length];
    const lockers = hosts.slice(0, 3);
    next = 3;
    for (let i = 0; i < lockers.length; i++) {
      const name = `locker-${i}`;
      clients.push(locker(name, lockers[i], rng.fork(name), history, () => stopped));
    }
    for (let i = 0; i < 6; i++) {
      const name = `incrementer-${i}`;
      clients.push(incrementer(name, place(), rng.fork(name), history, () => stopped));
    }
    for (let i = 0; i < 3; i++) {
      const name = `reader-${i}`;
      clients.push(reader(name, place(), rng.fork(name), history, () => stopped));
    }
    for (let i = 0; i < 2; i++) {
      const name = `putter-${i}`;
      clients.push(putter(name, place(), rng.fork(name), history, () => stopped));
    }
    // Faults, on a schedule drawn from the seed.
    const faults = (async () => {
      const schedule = rng.fork("faults");
      const duration = seconds * 1_000;
      const jobs = victims.map(async (victim, i) => {
        const restart = mix === "restart" || (mix === "mixed" && i === 1);
        await sleep(schedule.int(duration * 0.1, duration * 0.6));
        if (stopped) return;
        // Mid-operation: when the next few chunks of requests reach it.
        const crashed = Promise.withResolvers<void>();
        victim.host.crashAfter(schedule.int(1, 4), () => {
          log(`  crash ${victim.name}`);
          swarm.crash(victim).then(crashed.resolve, crashed.resolve);
        });
        const timer = setTimeout(() => {
          if (victim.node) {
            log(`  crash ${victim.name} (idle)`);
            swarm.crash(victim).then(crashed.resolve, crashed.resolve);
          }
        }, 500);
        await crashed.promise;
        clearTimeout(timer);
        if (!restart) return;
        await sleep(schedule.int(200, 1_500));
        if (stopped) return;
        log(`  restart ${victim.name}`);
        await swarm.restart(victim);
      });
      await Promise.all(jobs);
    })();
    await sleep(seconds * 1_000);
    stopped = true;
    await faults;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      Promise.all(clients).then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 30_000)),
    ]);
    clearTimeout(timer);
    if (!drained) log(`  clients still busy after 30 s: their operations count as indeterminate`);
    // Heal: no more delays; then the final reads, from a member that stayed up.
    swarm.net.jitter = undefined;
    for (const m of swarm.members) m.host.delay = undefined;
    const finalNode = hosts.find((m) => m.listens && m.node)!.node!;
    for (const key of [...HOT, ...COLD, REGISTER]) {
      for (let attempt = 0; attempt < 3; attempt++) {
        const op = history.invoke("final", "read", key, { final: true });
        if (await read(finalNode, op, history)) break;
        await sleep(200);
      }
    }
    history.freeze();
    const check = checkHistory(history);
    const latency = { linearizable: [] as number[], any: [] as number[] };
    for (const op of history.ops) {
      if (op.kind !== "read" || op.outcome !== "ok" || op.final) continue;
      latency[op.consistency ?? "linearizable"].push(op.completeWall! - op.invokeWall);
    }
    return {
      seed,
      mix,
      history,
      check,
      latency,
      faults: {
        crashed: victims.filter((m) => m.crashes > 0).length,
        restarted: victims.filter((m) => m.restarts > 0).length,
        slow: slow.length,
        delayed: swarm.net.stats.delayed,
      },
      rounds: swarm.rounds,
      elapsed: performance.now() - began,
    };
  } finally {
    history.freeze();
    await swarm.close();
  }
}

/** Runs a read as `op`; true when it returned. */
async function read(
  node: Node,
  op: Op,
  history: History,
  consistency?: "linearizable" | "any",
): Promise<boolean> {
  try {
    const found = await node.dht.get(op.key, consistency ? { consistency } : {});
    history.ok(op, { version: found?.version ?? 0, read: found ? text(found.value) : null });
    return true;
  } catch (err) {
    history.info(op, err);
    return false;
  }
}

async function incrementer(
  client: string,
  member: Member,
  rng: Rng,
  history: History,
  stopped: () => boolean,
): Promise<void> {
  while (!stopped()) {
    const node = member.node;
    if (!node) return;
    const dice = rng.next();
    const key = dice < 0.5 ? HOT[0] : dice < 0.8 ? HOT[1] : rng.pick(COLD);
    const r = history.invoke(client, "read", key);
    if (!await read(node, r, history)) {
      await sleep(rng.int(5, 30));
      continue;
    }
    if (stopped()) return;
    const n = r.read ? parseValue(r.read)?.n ?? 0 : 0;
    const op = history.invoke(client, "cas", key, { expected: r.version!, base: r.read });
    op.value = writtenValue(op.id, n + 1);
    await recordWrite(history, op, node.dht.cas(key, op.value, r.version!));
    await sleep(rng.int(0, 10));
  }
}

/**
 * Records a write's outcome: ok with its version; a definite failure
 * (VersionConflictError: no replica took it; RecordError); anything else
 * indeterminate (a ReplicationError or QuorumError: some replicas may hold it).
 */
async function recordWrite(
  history: History,
  op: Parameters<History["ok"]>[0],
  write: Promise<{ version: number }>,
): Promise<void> {
  try {
    history.ok(op, { version: (await write).version });
  } catch (err) {
    if (err instanceof VersionConflictError || err instanceof RecordError) history.fail(op, err);
    else history.info(op, err);
  }
}

async function reader(
  client: string,
  member: Member,
  rng: Rng,
  history: History,
  stopped: () => boolean,
): Promise<void> {
  while (!stopped()) {
    const node = member.node;
    if (!node) return;
    const key = rng.chance(0.6) ? rng.pick(HOT) : rng.pick([...COLD, REGISTER]);
    const consistency = rng.chance(0.3) ? "any" : "linearizable";
    const op = history.invoke(client, "read", key, { consistency });
    await read(node, op, history, consistency);
    await sleep(rng.int(0, 20));
  }
}

async function putter(
  client: string,
  member: Member,
  rng: Rng,
  history: History,
  stopped: () => boolean,
): Promise<void> {
  while (!stopped()) {
    const node = member.node;
    if (!node) return;
    const op = history.invoke(client, "put", REGISTER);
    op.value = writtenValue(op.id);
    await recordWrite(history, op, node.dht.put(REGISTER, op.value));
    await sleep(rng.int(20, 120));
  }
}

async function locker(
  client: string,
  member: Member,
  rng: Rng,
  history: History,
  stopped: () => boolean,
): Promise<void> {
  while (!stopped()) {
    const node = member.node;
    if (!node) return;
    const key = rng.chance(0.8) ? LOCKS[0] : LOCKS[1];
    const ttl = rng.int(300, 800);
    const op = history.invoke(client, "lock", key, { ttl });
    try {
      const lease = await node.dht.lock(key, { ttl });
      history.ok(op, { fencingToken: lease.fencingToken, expiresAt: lease.expiresAt });
      // Mostly short holds; sometimes one past the lease.
      await sleep(rng.chance(0.1) ? ttl + rng.int(50, 300) : rng.int(5, 100));
      const u = history.invoke(client, "unlock", key, { token: lease.fencingToken });
      try {
        history.ok(u, { released: await node.dht.unlock(lease) });
      } catch (err) {
        history.info(u, err);
      }
    } catch (err) {
      if (err instanceof LockHeldError) {
        history.fail(op, err);
        await sleep(rng.int(0, Math.min(Math.max(err.expiresIn, 0), 50)));
        continue;
      }
      if (err instanceof RecordError) history.fail(op, err);
      else history.info(op, err);
    }
    await sleep(rng.int(0, 20));
  }
}
