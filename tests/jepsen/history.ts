/**
 * A history of concurrent DHT operations and a checker of it (issue 12).
 *
 * The recorder stamps every invocation and every completion with a logical
 * clock (one counter for the whole history, so "a completed before b began"
 * is exact) and with wall time (`performance.now()`, the clock the nodes'
 * leases are timed by). An operation ends `ok` (with what it returned),
 * `fail` (it definitely had no effect: `VersionConflictError`,
 * `LockHeldError`) or `info` (its effect is unknown: a `QuorumError` whose
 * outcome is uncertain, a timeout, a crash); one that never completes is
 * `info` too.
 *
 * The checker works per key (each key is one history) and relies on what the
 * workload guarantees: every value written is unique (it names the operation
 * that wrote it), so a read says which write it saw; and versions are unique
 * per key when the DHT is correct, so they give the order of the writes (the
 * "version-chain shortcut": no search over interleavings is needed). With the
 * write order fixed by versions, each operation has a position (a write at
 * version v at (v, 0), a read of v at (v, 1)); all order a linearization must
 * keep (write v before its reads, its reads before write v + 1, real time) is
 * then acyclic exactly when no operation that completed before another began
 * has a later position than it (two reads may share one). So the linearizability
 * check is one sweep over the events in logical time, keeping the highest
 * position completed so far. See {@linkcode checkHistory} for every rule.
 *
 * @module
 */

/** What an operation does. */
export type OpKind = "read" | "cas" | "put" | "lock" | "unlock";

/** How an operation ended: with its result, definitely without effect, or unknown. */
export type Outcome = "ok" | "fail" | "info";

/** One operation of a history. */
export interface Op {
  /** Unique in the history, from 1. */
  id: number;
  /** Who ran it (clients run one operation at a time). */
  client: string;
  /** What it does. */
  kind: OpKind;
  /** The key (text). */
  key: string;
  /** Logical time of the invocation. */
  invoke: number;
  /** Logical time of the completion; absent while pending or when it never completed. */
  complete?: number;
  /** Wall time of the invocation, ms (`performance.now()`). */
  invokeWall: number;
  /** Wall time of the completion, ms. */
  completeWall?: number;
  /** How it ended; absent: it never completed (counts as `info`). */
  outcome?: Outcome;
  /** cas: the version it expects (0: none). */
  expected?: number;
  /** cas: the value it based its write on (what a read returned at `expected`), `null`: none. */
  base?: string | null;
  /** cas, put: the value it writes. */
  value?: string;
  /** read: `"linearizable"` (the default) or `"any"`. */
  consistency?: "linearizable" | "any";
  /** read: the read after the run healed, whose value counts the increments. */
  final?: boolean;
  /** lock: the lease asked for, ms. */
  ttl?: number;
  /** unlock: the fencing token of the lease released. */
  token?: number;
  /** read ok: the version found (0: none); cas, put ok: the version written. */
  version?: number;
  /** read ok: the value found (`null`: none). */
  read?: string | null;
  /** lock ok: the fencing token. */
  fencingToken?: number;
  /** lock ok: when the lease ends by the holder's clock, wall ms. */
  expiresAt?: number;
  /** unlock ok: whether a replica still held the lease. */
  released?: boolean;
  /** fail, info: the error's name and message. */
  error?: string;
}

/** A history as stored (JSON). */
export interface HistoryData {
  /** Free-form description: seed, mix, code it ran against. */
  meta?: Record<string, unknown>;
  /** The operations, by id. */
  ops: Op[];
}

/** The input fields of an operation. */
export type OpInput = Pick<
  Op,
  "expected" | "base" | "value" | "consistency" | "final" | "ttl" | "token"
>;

/** The result fields of an operation. */
export type OpResult = Pick<
  Op,
  "version" | "read" | "fencingToken" | "expiresAt" | "released"
>;

/** Records operations as they are invoked and complete. */
export class History {
  readonly ops: Op[] = [];
  #tick = 0;
  /** Free-form description, stored with the history. */
  meta: Record<string, unknown> = {};

  /** Records an invocation and returns the operation (complete it with ok, fail or info). */
  invoke(client: string, kind: OpKind, key: string, input: OpInput = {}): Op {
    if (this.#frozen) throw new Error("The history is frozen");
    const op: Op = {
      id: this.ops.length + 1,
      client,
      kind,
      key,
      invoke: ++this.#tick,
      invokeWall: performance.now(),
      ...input,
    };
    this.ops.push(op);
    return op;
  }

  #frozen = false;

  #complete(op: Op, outcome: Outcome): boolean {
    if (this.#frozen) return false;
    if (op.outcome !== undefined) throw new Error(`Operation ${op.id} completed twice`);
    op.complete = ++this.#tick;
    op.completeWall = performance.now();
    op.outcome = outcome;
    return true;
  }

  /** The operation returned `result`. */
  ok(op: Op, result: OpResult = {}): void {
    if (this.#complete(op, "ok")) Object.assign(op, result);
  }

  /** The operation definitely had no effect. */
  fail(op: Op, error: unknown): void {
    if (this.#complete(op, "fail")) op.error = errorText(error);
  }

  /** The operation's effect is unknown. */
  info(op: Op, error: unknown): void {
    if (this.#complete(op, "info")) op.error = errorText(error);
  }

  /**
   * Ends the history: later invocations throw, later completions are
   * ignored (those operations stay without outcome: indeterminate).
   */
  freeze(): void {
    this.#frozen = true;
  }

  /** The history as JSON-ready data. */
  toJSON(): HistoryData {
    return { meta: this.meta, ops: this.ops };
  }
}

function errorText(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return String(error);
}

/**
 * A history as JSON lines: a first line `{"meta": …, …extra}`, then one
 * operation per line (the form `deno task jepsen --save` writes and the
 * regression history is stored in).
 */
export function historyToLines(history: HistoryData, extra: Record<string, unknown> = {}): string {
  const head = JSON.stringify({ meta: history.meta ?? {}, ...extra });
  return [head, ...history.ops.map((op) => JSON.stringify(op))].join("\n") + "\n";
}

/** Reads {@linkcode historyToLines}'s form back: the history and the first line's other fields. */
export function historyFromLines(text: string): HistoryData & { head: Record<string, unknown> } {
  const [first, ...rest] = text.split("\n").filter((line) => line.trim() !== "");
  const head = JSON.parse(first);
  return { meta: head.meta, ops: rest.map((line) => JSON.parse(line) as Op), head };
}

/** The kinds of violation the checker reports. */
export type ViolationKind =
  /** Two different writes acknowledged (or read by linearizable reads) at one version. */
  | "duplicate-version"
  /** An acknowledged CAS whose expected version holds another value than the one it was based on. */
  | "cas-off-chain"
  /** A read older than a write acknowledged, or a read completed, before it began. */
  | "stale-read"
  /** A write at a version not above one acknowledged or read before it began. */
  | "stale-write"
  /** A read returned a value whose write began after the read completed. */
  | "future-read"
  /** A read returned the value of a write that definitely failed. */
  | "failed-write-visible"
  /** A read returned a value no write of this key wrote, or at another version than its write's. */
  | "phantom-value"
  /** The final value counts fewer increments than were acknowledged (or more than were tried). */
  | "lost-increment"
  /** Two lock holds overlapped in real time, each within its lease. */
  | "lock-overlap"
  /** A lock granted after another hold began got a token not above that hold's. */
  | "token-order";

/** One violation: what, on which key, and the operations involved. */
export interface Violation {
  /** What was violated. */
  kind: ViolationKind;
  /** The key. */
  key: string;
  /** The operations involved (ids). */
  ops: number[];
  /** What happened, in words. */
  message: string;
}

/** What {@linkcode checkHistory} found. */
export interface CheckResult {
  /** Keys checked: each key is one history. */
  keys: number;
  /** Operations checked. */
  ops: number;
  /** Every violation found. */
  violations: Violation[];
  /** Counter keys whose final read is missing (their increments were not counted). */
  uncounted: string[];
}

/** A written value's author and count: `{"op":17,"n":3}` (`n` only for counters). */
export interface WrittenValue {
  /** The id of the operation that wrote it. */
  op: number;
  /** The counter's value. */
  n?: number;
}

/** Parses a value the workload wrote; `undefined` when it is not one. */
export function parseValue(text: string): WrittenValue | undefined {
  try {
    const value = JSON.parse(text);
    if (typeof value !== "object" || value === null || !Number.isSafeInteger(value.op)) {
      return undefined;
    }
    if (value.n !== undefined && !Number.isSafeInteger(value.n)) return undefined;
    return { op: value.op, n: value.n };
  } catch {
    return undefined;
  }
}

/** The value a workload writes: unique per operation. */
export function writtenValue(op: number, n?: number): string {
  return JSON.stringify(n === undefined ? { op } : { op, n });
}

const isWrite = (op: Op) => op.kind === "cas" || op.kind === "put";
const undone = (op: Op) => op.outcome === undefined || op.outcome === "info";

/**
 * Checks a history, key by key. For keys with cas, put and read operations:
 *
 * - **Values.** Each read's value names its write; that write must be of this
 *   key, at the version read (a CAS writes `expected + 1`), and not one that
 *   definitely failed (`phantom-value`, `failed-write-visible`); no read may
 *   return a write invoked after the read completed (`future-read`). These
 *   hold for `consistency: "any"` reads too; the rules below take only
 *   linearizable reads.
 * - **One chain.** Writes acknowledged and values read give at most one write
 *   per version (`duplicate-version`), and an acknowledged CAS at v was based
 *   on the write that holds v − 1 (`cas-off-chain`): the acknowledged CAS
 *   writes form one chain, each on its predecessor.
 * - **Linearizable.** In logical time, no read returns a version below the
 *   highest one acknowledged or read before it began (`stale-read`), and no
 *   write that took effect (acknowledged, or indeterminate but seen) is at a
 *   version not above those (`stale-write`). An indeterminate write may take
 *   effect any time after its invocation, so it only constrains what comes
 *   after others, never what follows it.
 * - **Counts.** For counters (CAS writes `{"n": count}` based on a read), the
 *   final read's count is at least the number of acknowledged CAS and at most
 *   acknowledged plus indeterminate (`lost-increment`).
 *
 * For keys with lock operations, a hold is [grant completed, unlock invoked]
 * in logical time, cut at the lease's end by wall time (`expiresAt`, the
 * holder's own view: it times the lease from before it asked, the replicas
 * from when they received, so the holder's lease ends first). A hold past its
 * lease is the fencing token's business, not the lock's: the holder must not
 * act on it, so it is not an overlap. Then:
 *
 * - **Exclusion.** No lock is granted while another hold is within its lease
 *   and not being released (`lock-overlap`): for holds A before B, B's grant
 *   completed before A's unlock was invoked and before A's lease ended.
 * - **Tokens.** A lock invoked after another hold was granted gets a larger
 *   token (`token-order`; two holds with one token are always reported).
 */
export function checkHistory(history: HistoryData | History): CheckResult {
  const ops = history instanceof History ? history.ops : history.ops;
  const byId = new Map(ops.map((op) => [op.id, op]));
  const byKey = new Map<string, Op[]>();
  for (const op of ops) {
    const list = byKey.get(op.key);
    if (list) list.push(op);
    else byKey.set(op.key, [op]);
  }
  const violations: Violation[] = [];
  const uncounted: string[] = [];
  for (const [key, keyOps] of byKey) {
    if (keyOps.some((op) => op.kind === "lock" || op.kind === "unlock")) {
      violations.push(...checkLocks(key, keyOps));
    } else {
      const found = checkRegister(key, keyOps, byId);
      violations.push(...found.violations);
      if (found.uncounted) uncounted.push(key);
    }
  }
  return { keys: byKey.size, ops: ops.length, violations, uncounted };
}

interface Placed {
  op: Op;
  version: number;
  write: boolean;
  /** For reads: the id of the write read (0: none). */
  writer: number;
}

function checkRegister(
  key: string,
  ops: Op[],
  byId: Map<number, Op>,
): { violations: Violation[]; uncounted: boolean } {
  const violations: Violation[] = [];
  const seen = new Set<string>();
  const report = (kind: ViolationKind, involved: number[], message: string) => {
    const id = `${kind} ${involved.join(",")}`;
    if (seen.has(id)) return;
    seen.add(id);
    violations.push({ kind, key, ops: involved, message });
  };
  /** The version each write is at: known for CAS, for acknowledged puts, or from a read. */
  const versionOf = new Map<number, number>();
  /** The write holding each version (acknowledged or read linearizably). */
  const holder = new Map<number, number>();
  /** Writes that took effect: acknowledged, or read. */
  const effective = new Set<number>();
  const hold = (version: number, writer: number, witness: number[]) => {
    const other = holder.get(version);
    if (other === undefined) holder.set(version, writer);
    else if (other !== writer) {
      report(
        "duplicate-version",
        [other, writer, ...witness.filter((id) => id !== writer && id !== other)],
        `Two writes at version ${version}: operations ${other} and ${writer}`,
      );
    }
  };
  for (const op of ops) {
    if (!isWrite(op)) continue;
    if (op.kind === "cas") versionOf.set(op.id, op.expected! + 1);
    if (op.outcome === "ok") {
      if (op.kind === "put") versionOf.set(op.id, op.version!);
      if (op.kind === "cas" && op.version !== op.expected! + 1) {
        report(
          "phantom-value",
          [op.id],
          `CAS ${op.id} expected ${op.expected} but reported version ${op.version}`,
        );
      }
      effective.add(op.id);
      hold(versionOf.get(op.id)!, op.id, []);
    }
  }
  // Reads: which write each saw.
  const placed: Placed[] = [];
  for (const op of ops) {
    if (op.kind !== "read" || op.outcome !== "ok") continue;
    const linearizable = op.consistency !== "any";
    const version = op.version ?? 0;
    let writer = 0;
    if (op.read === null || op.read === undefined) {
      if (version !== 0) {
        report("phantom-value", [op.id], `Read ${op.id} found version ${version} without a value`);
        continue;
      }
    } else {
      const parsed = parseValue(op.read);
      const write = parsed && byId.get(parsed.op);
      if (!parsed || !write || !isWrite(write) || write.key !== key) {
        report("phantom-value", [op.id], `Read ${op.id} returned ${op.read}: no write of ${key}`);
        continue;
      }
      writer = write.id;
      if (write.value !== undefined && write.value !== op.read) {
        report(
          "phantom-value",
          [write.id, op.id],
          `Read ${op.id} returned ${op.read}, not the ${write.value} ${write.kind} ${write.id} wrote`,
        );
        continue;
      }
      if (write.outcome === "fail") {
        report(
          "failed-write-visible",
          [write.id, op.id],
          `Read ${op.id} returned the value of ${write.kind} ${write.id}, which failed (${write.error})`,
        );
      }
      if (write.invoke > op.complete!) {
        report(
          "future-read",
          [write.id, op.id],
          `Read ${op.id} completed before ${write.kind} ${write.id}, whose value it returned, began`,
        );
      }
      const at = versionOf.get(write.id);
      if (at === undefined) versionOf.set(write.id, version);
      else if (at !== version) {
        report(
          "phantom-value",
          [write.id, op.id],
          `Read ${op.id} found the value of ${write.kind} ${write.id} at version ${version}, ` +
            `not the ${at} it wrote`,
        );
        continue;
      }
      if (linearizable) {
        effective.add(write.id);
        hold(version, write.id, [op.id]);
      }
    }
    if (linearizable) placed.push({ op, version, write: false, writer });
  }
  // One chain: each acknowledged CAS on the write holding its expected version.
  for (const op of ops) {
    if (op.kind !== "cas" || op.outcome !== "ok") continue;
    const v = op.expected!;
    const base = op.base === null || op.base === undefined ? undefined : parseValue(op.base);
    const before = holder.get(v);
    if (v === 0) {
      if (base !== undefined) {
        report("cas-off-chain", [op.id], `CAS ${op.id} expected no value but was based on one`);
      }
      continue;
    }
    if (base === undefined) {
      report("cas-off-chain", [op.id], `CAS ${op.id} expected version ${v} but had no base`);
      continue;
    }
    if (before !== undefined && before !== base.op) {
      report(
        "cas-off-chain",
        [before, base.op, op.id],
        `CAS ${op.id} was acknowledged at version ${v + 1} on write ${base.op}, ` +
          `but version ${v} is write ${before}'s`,
      );
    }
    const baseAt = versionOf.get(base.op);
    if (baseAt !== undefined && baseAt !== v) {
      report(
        "cas-off-chain",
        [base.op, op.id],
        `CAS ${op.id} expected version ${v} of write ${base.op}, which is at version ${baseAt}`,
      );
    }
    // Its base took effect (a read saw it); a base from nowhere is a phantom.
    const baseWrite = byId.get(base.op);
    if (!baseWrite || baseWrite.key !== key || !isWrite(baseWrite)) {
      report("phantom-value", [op.id], `CAS ${op.id} was based on ${op.base}: no write of ${key}`);
    } else effective.add(base.op);
  }
  // Linearizability: one sweep in logical time over writes that took effect and reads.
  for (const id of effective) {
    const op = byId.get(id)!;
    const version = versionOf.get(id);
    if (version === undefined) continue;
    placed.push({ op, version, write: true, writer: id });
  }
  type Event = { at: number; start: boolean; p: Placed };
  const events: Event[] = [];
  for (const p of placed) {
    events.push({ at: p.op.invoke, start: true, p });
    // An indeterminate write may take effect at any time: it never completes.
    if (p.op.outcome === "ok" && p.op.complete !== undefined) {
      events.push({ at: p.op.complete, start: false, p });
    }
  }
  events.sort((a, b) => a.at - b.at);
  let top: Placed | undefined;
  for (const { start, p } of events) {
    if (!start) {
      if (!top || p.version > top.version) top = p;
      continue;
    }
    if (!top) continue;
    if (!p.write && p.version < top.version) {
      report(
        "stale-read",
        [top.op.id, p.op.id],
        `Read ${p.op.id} returned version ${p.version} after ${top.op.kind} ${top.op.id} ` +
          `had completed at version ${top.version}`,
      );
    } else if (p.write && p.version <= top.version) {
      if (!top.write && top.writer === p.op.id) continue; // reported as a future read
      report(
        "stale-write",
        [top.op.id, p.op.id],
        `${p.op.kind} ${p.op.id} took effect at version ${p.version} after ` +
          `${top.op.kind} ${top.op.id} had completed at version ${top.version}`,
      );
    }
  }
  // Counts.
  const cas = ops.filter((op) => op.kind === "cas");
  const finals = ops.filter((op) => op.kind === "read" && op.final);
  let uncounted = false;
  if (cas.length > 0 && finals.length > 0) {
    const final = finals.find((op) => op.outcome === "ok" && op.consistency !== "any");
    if (!final) uncounted = true;
    else {
      const count = final.read ? parseValue(final.read)?.n ?? 0 : 0;
      const acked = cas.filter((op) => op.outcome === "ok").length;
      const tried = acked + cas.filter(undone).length;
      if (count < acked || count > tried) {
        report(
          "lost-increment",
          [final.id],
          `The final value counts ${count} (version ${final.version ?? 0}); ${acked} increments ` +
            `were acknowledged and ${tried - acked} indeterminate`,
        );
      }
    }
  }
  return { violations, uncounted };
}

interface Hold {
  lock: Op;
  token: number;
  /** Logical time it began (grant completed) and ended (unlock invoked; Infinity: never). */
  start: number;
  end: number;
  /** Wall time the grant completed and the lease ended. */
  startWall: number;
  leaseEnd: number;
  unlock?: Op;
}

function checkLocks(key: string, ops: Op[]): Violation[] {
  const violations: Violation[] = [];
  const holds: Hold[] = [];
  for (const lock of ops) {
    if (lock.kind !== "lock" || lock.outcome !== "ok") continue;
    const unlock = ops.find((op) =>
      op.kind === "unlock" && op.client === lock.client && op.token === lock.fencingToken &&
      op.invoke > lock.complete!
    );
    holds.push({
      lock,
      token: lock.fencingToken!,
      start: lock.complete!,
      end: unlock?.invoke ?? Infinity,
      startWall: lock.completeWall!,
      leaseEnd: lock.expiresAt!,
      unlock,
    });
  }
  holds.sort((a, b) => a.start - b.start);
  for (let j = 0; j < holds.length; j++) {
    const b = holds[j];
    for (let i = 0; i < j; i++) {
      const a = holds[i];
      if (b.start < a.end && b.startWall < a.leaseEnd) {
        violations.push({
          kind: "lock-overlap",
          key,
          ops: [a.lock.id, b.lock.id],
          message: `Lock ${b.lock.id} (${b.lock.client}, token ${b.token}) was granted while ` +
            `lock ${a.lock.id} (${a.lock.client}, token ${a.token}) was held, ` +
            `${(a.leaseEnd - b.startWall).toFixed(1)} ms before its lease ended`,
        });
      }
      if (a.token === b.token || (a.start < b.lock.invoke && b.token <= a.token)) {
        violations.push({
          kind: "token-order",
          key,
          ops: [a.lock.id, b.lock.id],
          message: `Lock ${b.lock.id} got token ${b.token} after lock ${a.lock.id} ` +
            `had been granted token ${a.token}`,
        });
      }
    }
  }
  return violations;
}
