// The history checker on hand-made histories: each kind of violation is
// found, with the operations involved, and valid concurrent histories pass.
import assert from "node:assert/strict";
import { checkHistory, History, type Op, type ViolationKind, writtenValue } from "./history.ts";

const conflict = new Error("lost");
conflict.name = "VersionConflictError";
const uncertain = new Error("decided but only 2 of 5 replicas committed it");
uncertain.name = "QuorumError";

function kinds(history: History): ViolationKind[] {
  return [...new Set(checkHistory(history).violations.map((v) => v.kind))].sort();
}

/** Invokes a CAS of counter `key` from `base` (the op whose value it read, or none) to count `n`. */
function cas(h: History, client: string, key: string, expected: number, base: Op | undefined) {
  const n = base ? JSON.parse(base.value!).n + 1 : 1;
  const op = h.invoke(client, "cas", key, { expected, base: base?.value ?? null });
  op.value = writtenValue(op.id, n);
  return op;
}

function read(h: History, client: string, key: string, final = false): Op {
  return h.invoke(client, "read", key, final ? { final } : {});
}

function saw(h: History, op: Op, write: Op | undefined, version: number): void {
  h.ok(op, { version, read: write ? write.value! : null });
}

Deno.test("checker accepts a valid concurrent history of CAS, reads, puts and locks", () => {
  const h = new History();
  // Two concurrent increments from nothing: one wins, one loses.
  const r0 = read(h, "a", "c");
  const r1 = read(h, "b", "c");
  saw(h, r0, undefined, 0);
  saw(h, r1, undefined, 0);
  const a = cas(h, "a", "c", 0, undefined);
  const b = cas(h, "b", "c", 0, undefined);
  // A read concurrent with a's CAS may see either version.
  const during = read(h, "r", "c");
  h.ok(a, { version: 1 });
  h.fail(b, conflict);
  saw(h, during, undefined, 0);
  const after = read(h, "r", "c");
  saw(h, after, a, 1);
  // b retries on a's value; its CAS is indeterminate but later seen.
  const c = cas(h, "b", "c", 1, a);
  h.info(c, uncertain);
  const late = read(h, "r", "c");
  saw(h, late, c, 2);
  // An indeterminate CAS nobody saw constrains nothing.
  const lost = cas(h, "a", "c", 2, c);
  h.info(lost, uncertain);
  const final = read(h, "final", "c", true);
  saw(h, final, c, 2);
  // Puts on a register: sequential versions, a read concurrent with a put.
  const p1 = h.invoke("p", "put", "reg", {});
  p1.value = writtenValue(p1.id);
  h.ok(p1, { version: 1 });
  const p2 = h.invoke("p", "put", "reg", {});
  p2.value = writtenValue(p2.id);
  const rr = read(h, "r", "reg");
  h.ok(p2, { version: 2 });
  saw(h, rr, p1, 1);
  // Locks: a hold, its unlock, then the next holder with a larger token.
  const l1 = h.invoke("x", "lock", "job", { ttl: 60_000 });
  const l2 = h.invoke("y", "lock", "job", { ttl: 60_000 });
  h.ok(l1, { fencingToken: 1, expiresAt: performance.now() + 60_000 });
  h.fail(l2, new Error("held"));
  const u1 = h.invoke("x", "unlock", "job", { token: 1 });
  const l3 = h.invoke("y", "lock", "job", { ttl: 60_000 });
  h.ok(u1, { released: true });
  h.ok(l3, { fencingToken: 2, expiresAt: performance.now() + 60_000 });
  const result = checkHistory(h);
  assert.deepEqual(result.violations, []);
  assert.equal(result.keys, 3);
  assert.equal(result.ops, h.ops.length);
  // The same history from JSON.
  assert.deepEqual(checkHistory(JSON.parse(JSON.stringify(h.toJSON()))).violations, []);
});

Deno.test("checker finds two CAS writes acknowledged at one version", () => {
  const h = new History();
  const a = cas(h, "a", "c", 0, undefined);
  const b = cas(h, "b", "c", 0, undefined);
  h.ok(a, { version: 1 });
  h.ok(b, { version: 1 });
  const [v] = checkHistory(h).violations;
  assert.equal(v.kind, "duplicate-version");
  assert.deepEqual(v.ops, [a.id, b.id]);
});

Deno.test("checker finds an acknowledged CAS that is not on its predecessor", () => {
  const h = new History();
  const a = cas(h, "a", "c", 0, undefined);
  h.info(a, uncertain);
  const b = cas(h, "b", "c", 0, undefined);
  h.info(b, uncertain);
  // Version 1 is a's (a read saw it), yet a CAS based on b's value at 1 was acknowledged.
  const r = read(h, "r", "c");
  saw(h, r, a, 1);
  const c = cas(h, "b", "c", 1, b);
  h.ok(c, { version: 2 });
  const found = checkHistory(h).violations.find((v) => v.kind === "cas-off-chain");
  assert.ok(found);
  assert.deepEqual(found.ops, [a.id, b.id, c.id]);
});

Deno.test("checker finds a read older than an acknowledged write", () => {
  const h = new History();
  const a = cas(h, "a", "c", 0, undefined);
  h.ok(a, { version: 1 });
  const r = read(h, "r", "c");
  saw(h, r, undefined, 0);
  const [v] = checkHistory(h).violations;
  assert.equal(v.kind, "stale-read");
  assert.deepEqual(v.ops, [a.id, r.id]);
});

Deno.test("checker finds reads going backwards", () => {
  const h = new History();
  const a = cas(h, "a", "c", 0, undefined);
  h.info(a, uncertain);
  const r1 = read(h, "r", "c");
  saw(h, r1, a, 1);
  const r2 = read(h, "s", "c");
  saw(h, r2, undefined, 0);
  const [v] = checkHistory(h).violations;
  assert.equal(v.kind, "stale-read");
  assert.deepEqual(v.ops, [r1.id, r2.id]);
});

Deno.test("checker finds a read of a write that began after it", () => {
  const h = new History();
  const r = read(h, "r", "c");
  const value = writtenValue(r.id + 1, 1); // the next operation's value
  h.ok(r, { version: 1, read: value });
  const a = cas(h, "a", "c", 0, undefined);
  assert.equal(a.value, value);
  h.info(a, uncertain);
  const [v] = checkHistory(h).violations;
  assert.equal(v.kind, "future-read");
  assert.deepEqual(v.ops, [a.id, r.id]);
});

Deno.test("checker finds the value of a failed write, and values nobody wrote", () => {
  const h = new History();
  const a = cas(h, "a", "c", 0, undefined);
  h.fail(a, conflict);
  const r = read(h, "r", "c");
  saw(h, r, a, 1);
  const phantom = read(h, "r", "c");
  h.ok(phantom, { version: 2, read: writtenValue(999, 2) });
  const garbage = read(h, "r", "c");
  h.ok(garbage, { version: 2, read: "not json" });
  assert.deepEqual(kinds(h), ["failed-write-visible", "phantom-value"]);
  const phantoms = checkHistory(h).violations.filter((v) => v.kind === "phantom-value");
  assert.deepEqual(phantoms.map((v) => v.ops), [[phantom.id], [garbage.id]]);
});

Deno.test("checker finds a write acknowledged below a version already acknowledged", () => {
  const h = new History();
  const p1 = h.invoke("p", "put", "reg");
  p1.value = writtenValue(p1.id);
  h.ok(p1, { version: 2 });
  const p2 = h.invoke("q", "put", "reg");
  p2.value = writtenValue(p2.id);
  h.ok(p2, { version: 1 });
  const [v] = checkHistory(h).violations;
  assert.equal(v.kind, "stale-write");
  assert.deepEqual(v.ops, [p1.id, p2.id]);
});

Deno.test("checker finds a final value that misses acknowledged increments", () => {
  const h = new History();
  const a = cas(h, "a", "c", 0, undefined);
  h.ok(a, { version: 1 });
  const b = cas(h, "b", "c", 1, a);
  h.ok(b, { version: 2 });
  const final = read(h, "final", "c", true);
  saw(h, final, a, 1); // the second increment is gone
  assert.deepEqual(kinds(h), ["lost-increment", "stale-read"]);
  const lost = checkHistory(h).violations.find((v) => v.kind === "lost-increment")!;
  assert.deepEqual(lost.ops, [final.id]);
  // An indeterminate increment may or may not count; more than tried is a violation too.
  const h2 = new History();
  const c = cas(h2, "a", "c", 0, undefined);
  h2.info(c, uncertain);
  const f0 = read(h2, "final", "c", true);
  saw(h2, f0, undefined, 0);
  assert.deepEqual(checkHistory(h2).violations, []);
  const f1 = read(h2, "final", "c", true);
  h2.ok(f1, { version: 5, read: writtenValue(c.id, 5) });
  assert.ok(kinds(h2).includes("phantom-value")); // c wrote n = 1 at version 1
});

Deno.test("checker finds two lock holds at once, within their leases", () => {
  const h = new History();
  const far = () => performance.now() + 60_000;
  const a = h.invoke("x", "lock", "job", { ttl: 60_000 });
  h.ok(a, { fencingToken: 1, expiresAt: far() });
  const b = h.invoke("y", "lock", "job", { ttl: 60_000 });
  h.ok(b, { fencingToken: 1, expiresAt: far() });
  h.ok(h.invoke("x", "unlock", "job", { token: 1 }), { released: true });
  const violations = checkHistory(h).violations;
  assert.deepEqual(violations.map((v) => [v.kind, v.ops]), [
    ["lock-overlap", [a.id, b.id]],
    ["token-order", [a.id, b.id]],
  ]);
});

Deno.test("checker does not count a hold past its lease as an overlap", () => {
  const h = new History();
  const a = h.invoke("x", "lock", "job", { ttl: 100 });
  h.ok(a, { fencingToken: 1, expiresAt: 0 });
  a.expiresAt = a.completeWall! + 100; // the lease ends 100 ms after the grant
  const b = h.invoke("y", "lock", "job", { ttl: 100 });
  h.ok(b, { fencingToken: 2, expiresAt: 0 });
  b.completeWall = a.completeWall! + 150; // granted after a's lease ended
  b.expiresAt = b.completeWall + 100;
  h.ok(h.invoke("x", "unlock", "job", { token: 1 }), { released: false });
  h.ok(h.invoke("y", "unlock", "job", { token: 2 }), { released: true });
  assert.deepEqual(checkHistory(h).violations, []);
  // Granted within a's lease, it is an overlap.
  b.completeWall = a.completeWall! + 50;
  assert.deepEqual(kinds(h), ["lock-overlap"]);
});

Deno.test("checker finds fencing tokens that do not increase", () => {
  const h = new History();
  const far = () => performance.now() + 60_000;
  const a = h.invoke("x", "lock", "job", { ttl: 60_000 });
  h.ok(a, { fencingToken: 5, expiresAt: far() });
  h.ok(h.invoke("x", "unlock", "job", { token: 5 }), { released: true });
  const b = h.invoke("y", "lock", "job", { ttl: 60_000 });
  h.ok(b, { fencingToken: 4, expiresAt: far() });
  const [v] = checkHistory(h).violations;
  assert.equal(v.kind, "token-order");
  assert.deepEqual(v.ops, [a.id, b.id]);
  // Concurrent acquisitions may be granted in either order of tokens.
  const h2 = new History();
  const c = h2.invoke("x", "lock", "job", { ttl: 60_000 });
  const d = h2.invoke("y", "lock", "job", { ttl: 60_000 });
  h2.ok(d, { fencingToken: 7, expiresAt: performance.now() - 1 }); // lapsed at once
  h2.ok(c, { fencingToken: 6, expiresAt: far() });
  assert.deepEqual(checkHistory(h2).violations, []);
});
