// A replica's rules, without the network: DhtStore with a manual clock.
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import fc from "fast-check";
import { ManualClock } from "../../lib/clock.ts";
import { DhtStore } from "../../lib/dht/store.ts";
import { DHT_ENTRY_OVERHEAD } from "../../lib/dht/footprint.ts";
import { NackError } from "../../lib/errors.ts";
import { createRecord, dhtKey } from "../../lib/dht/record.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import {
  CasPhase,
  CasRequestSchema,
  LockRequestSchema,
  NackReason,
  PatchFormat,
  PatchRequestSchema,
  PatchSchema,
  type Record,
  RecordSchema,
} from "../../lib/protocol.ts";

const key = dhtKey("k");
const encode = (s: string) => new TextEncoder().encode(s);
const record = (value: string, version: number, ttl?: number) =>
  createRecord({ key, value: encode(value), version, ttl });
const refused = (reason: NackReason) => (err: unknown) =>
  err instanceof NackError && err.reason === reason;
const proposal = (n: number) => new Uint8Array(16).fill(n);
const cas = (store: DhtStore, r: Record, expected: number, p: number, phase: CasPhase) =>
  store.cas(create(CasRequestSchema, {
    record: r,
    expectedVersion: BigInt(expected),
    proposal: proposal(p),
    phase,
  }));

Deno.test("DhtStore: records expire at their ttl, capped by maxTtl", () => {
  const clock = new ManualClock();
  const store = new DhtStore({ clock, defaultTtl: 1_000, maxTtl: 5_000 });
  store.store(record("a", 1));
  store.store(createRecord({ key: dhtKey("long"), value: encode("b"), version: 1, ttl: 60_000 }));
  clock.advance(999);
  assert.equal(store.size, 2);
  clock.advance(1);
  assert.equal(store.get(key), undefined);
  clock.advance(4_000);
  assert.equal(store.get(dhtKey("long")), undefined);
  assert.equal(store.bytes, 0);
});

Deno.test("DhtStore: limits on records and bytes refuse new keys, not updates", () => {
  const entry = DHT_ENTRY_OVERHEAD + 32; // a record's overhead and key, beside its value
  const store = new DhtStore({ maxRecords: 2, maxBytes: 2 * entry + 100 });
  store.store(createRecord({ key: dhtKey("1"), value: new Uint8Array(40), version: 1 }));
  store.store(createRecord({ key: dhtKey("2"), value: new Uint8Array(40), version: 1 }));
  assert.throws(
    () => store.store(createRecord({ key: dhtKey("3"), value: new Uint8Array(1), version: 1 })),
    refused(NackReason.RATE_LIMITED),
  );
  assert.throws(
    () => store.store(createRecord({ key: dhtKey("1"), value: new Uint8Array(61), version: 2 })),
    refused(NackReason.RATE_LIMITED),
  );
  store.store(createRecord({ key: dhtKey("1"), value: new Uint8Array(50), version: 2 }));
  assert.equal(store.bytes, 2 * entry + 90);
});

Deno.test("DhtStore: one reservation per version; a lapsed one frees the key", () => {
  const clock = new ManualClock();
  const store = new DhtStore({ clock, reservationTime: 1_000 });
  store.store(record("v1", 1));
  cas(store, record("A", 2), 1, 1, CasPhase.PREPARE);
  assert.throws(
    () => cas(store, record("B", 2), 1, 2, CasPhase.PREPARE),
    (err: unknown) => refused(NackReason.VERSION_CONFLICT)(err) && /in progress/.test(`${err}`),
  );
  // Nothing is visible before the commit; an unknown proposal's abort is ignored.
  assert.equal(store.get(key)!.version, 1n);
  cas(store, record("B", 2), 1, 2, CasPhase.ABORT);
  clock.advance(1_000);
  cas(store, record("B", 2), 1, 2, CasPhase.PREPARE);
  cas(store, record("B", 2), 1, 2, CasPhase.COMMIT);
  assert.equal(new TextDecoder().decode(store.get(key)!.value), "B");
  // A late commit of the lapsed proposal at the same version is refused.
  assert.throws(
    () => cas(store, record("A", 2), 1, 1, CasPhase.COMMIT),
    refused(NackReason.VERSION_CONFLICT),
  );
  // Wrong expected version; version not above expected; bad phase.
  assert.throws(
    () => cas(store, record("C", 3), 1, 3, CasPhase.PREPARE),
    refused(NackReason.VERSION_CONFLICT),
  );
  assert.throws(
    () => cas(store, record("C", 2), 2, 3, CasPhase.PREPARE),
    refused(NackReason.MALFORMED),
  );
  assert.throws(
    () => cas(store, record("C", 3), 2, 3, CasPhase.UNSPECIFIED),
    refused(NackReason.MALFORMED),
  );
});

Deno.test("DhtStore: only a live reservation commits, even a record equal to the one held", () => {
  const clock = new ManualClock();
  const store = new DhtStore({ clock, reservationTime: 1_000 });
  store.store(record("v1", 1));
  // Two writers of the same increment: A prepares, lapses; B prepares and commits.
  cas(store, record("2", 2), 1, 1, CasPhase.PREPARE);
  clock.advance(1_000);
  cas(store, record("2", 2), 1, 2, CasPhase.PREPARE);
  cas(store, record("2", 2), 1, 2, CasPhase.COMMIT);
  // A's late COMMIT carries an equal record: refused, so A is not acknowledged.
  assert.throws(
    () => cas(store, record("2", 2), 1, 1, CasPhase.COMMIT),
    refused(NackReason.VERSION_CONFLICT),
  );
  // B's COMMIT again (a retry) is acknowledged: it took effect.
  assert.equal(cas(store, record("2", 2), 1, 2, CasPhase.COMMIT).version, 2n);
  // A COMMIT never prepared, naming a version the replica does not hold, stores nothing.
  assert.throws(
    () => cas(store, record("x", 9), 7, 3, CasPhase.COMMIT),
    refused(NackReason.VERSION_CONFLICT),
  );
  assert.throws(
    () =>
      new DhtStore().cas(create(CasRequestSchema, {
        record: record("y", 1),
        proposal: proposal(4),
        phase: CasPhase.COMMIT,
      })),
    refused(NackReason.VERSION_CONFLICT),
  );
  assert.equal(store.get(key)!.version, 2n);
});

Deno.test("DhtStore: a first version is reserved like any other", () => {
  const store = new DhtStore();
  cas(store, record("A", 1), 0, 1, CasPhase.PREPARE);
  assert.throws(
    () => cas(store, record("B", 1), 0, 2, CasPhase.PREPARE),
    refused(NackReason.VERSION_CONFLICT),
  );
  assert.equal(store.get(key), undefined);
  cas(store, record("A", 1), 0, 1, CasPhase.COMMIT);
  assert.equal(store.get(key)!.version, 1n);
});

Deno.test("DhtStore: patch history is bounded and a full write clears it", () => {
  const store = new DhtStore({ historyLength: 3 });
  store.store(record("", 1));
  let value = "";
  for (let v = 1; v <= 5; v++) {
    const next = value + String(v);
    const patch = create(PatchSchema, {
      baseVersion: BigInt(v),
      version: BigInt(v + 1),
      format: PatchFormat.BYTE_SPLICE,
      splices: [{ offset: BigInt(value.length), deleteCount: 0n, insert: encode(String(v)) }],
      valueHash: sha256(encode(next)),
    });
    store.preparePatch(create(PatchRequestSchema, { key, patch, proposal: proposal(v) }));
    cas(store, record(next, v + 1), v, v, CasPhase.COMMIT);
    value = next;
  }
  assert.equal(new TextDecoder().decode(store.get(key)!.value), "12345");
  assert.equal(store.changes(key, 3n).patches.length, 3);
  const old = store.changes(key, 1n);
  assert.equal(old.patches.length, 0);
  assert.equal(old.record?.version, 6n);
  assert.equal(store.changes(key, 6n).patches.length, 0);
  // A patch whose hash disagrees with the replica's result is refused.
  const wrong = create(PatchSchema, {
    baseVersion: 6n,
    version: 7n,
    format: PatchFormat.BYTE_SPLICE,
    splices: [],
    valueHash: new Uint8Array(32),
  });
  assert.throws(
    () =>
      store.preparePatch(create(PatchRequestSchema, { key, patch: wrong, proposal: proposal(9) })),
    refused(NackReason.VERSION_CONFLICT),
  );
  store.store(record("reset", 7));
  assert.equal(store.changes(key, 5n).record?.version, 7n);
});

Deno.test("DhtStore: locks have one holder, lapse, and tokens only grow", () => {
  const clock = new ManualClock();
  const store = new DhtStore({ clock, maxLockTtl: 2_000 });
  const lock = (who: string, ttl: number, token = 0, min = 0) =>
    store.lock(
      create(LockRequestSchema, {
        key,
        ttlMs: BigInt(ttl),
        fencingToken: BigInt(token),
        minFencingToken: BigInt(min),
      }),
      who,
    );
  const a = "11111111111111111111111111111111";
  const b = "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi";
  const first = lock(a, 60_000);
  assert.equal(first.fencingToken, 1n);
  assert.equal(first.ttlMs, 2_000n); // capped
  assert.throws(() => lock(b, 1_000), refused(NackReason.LOCK_HELD));
  // Renewal with the token, and the second round's minimum.
  assert.equal(lock(a, 1_000, 1).fencingToken, 1n);
  assert.equal(lock(a, 1_000, 0, 5).fencingToken, 5n);
  assert.throws(() => lock(a, 1_000, 4), refused(NackReason.VERSION_CONFLICT));
  clock.advance(1_000);
  assert.equal(lock(b, 1_000).fencingToken, 6n);
  store.unlock(key, 6n, b);
  assert.equal(lock(a, 1_000).fencingToken, 7n);
  assert.throws(() => store.unlock(key, 7n, b), refused(NackReason.LOCK_HELD));
});

Deno.test("DhtStore: a forgotten lock never lets a token be granted again", () => {
  const store = new DhtStore({ maxLocks: 2 });
  const who = "11111111111111111111111111111111";
  const take = (name: string) => {
    const grant = store.lock(create(LockRequestSchema, { key: dhtKey(name), ttlMs: 1_000n }), who);
    store.unlock(dhtKey(name), grant.fencingToken, who);
    return grant.fencingToken;
  };
  const tokens = [take("a"), take("a"), take("a")]; // 1, 2, 3
  take("b");
  take("c"); // forgets "a", the least recently used released lock
  assert.equal(store.locks, 2);
  const again = take("a");
  assert.ok(again > tokens[2], `token ${again} after ${tokens}`);
});

Deno.test("DhtStore: reservations count against maxRecords and maxBytes", () => {
  const clock = new ManualClock();
  const entry = DHT_ENTRY_OVERHEAD + 32;
  const store = new DhtStore({ clock, maxRecords: 2, maxBytes: 2 * entry + 20 });
  const peer = "11111111111111111111111111111111";
  const prepare = (name: string, value: string, p: number) =>
    store.cas(
      create(CasRequestSchema, {
        record: createRecord({ key: dhtKey(name), value: encode(value), version: 1 }),
        expectedVersion: 0n,
        proposal: proposal(p),
        phase: CasPhase.PREPARE,
      }),
      peer,
    );
  prepare("a", "0123456789", 1);
  assert.equal(store.bytes, entry + 10);
  assert.equal(store.reservations, 1);
  assert.throws(() => prepare("b", "01234567890", 2), refused(NackReason.RATE_LIMITED)); // bytes
  prepare("b", "0123456789", 2);
  assert.throws(() => prepare("c", "", 3), refused(NackReason.RATE_LIMITED)); // records
  assert.throws(() => store.store(record("x", 1)), refused(NackReason.RATE_LIMITED));
  // A commit turns the reservation into the record; an abort frees it.
  cas(store, createRecord({ key: dhtKey("a"), value: encode("0123456789"), version: 1 }), 0, 1, 2);
  assert.equal(store.size, 1);
  cas(store, createRecord({ key: dhtKey("b"), value: encode("0123456789"), version: 1 }), 0, 2, 3);
  assert.equal(store.reservations, 0);
  assert.equal(store.bytes, entry + 10);
  prepare("c", "", 3);
  clock.advance(5_000); // lapsed: swept, and counted no more
  store.sweep();
  assert.equal(store.bytes, entry + 10);
  assert.equal(store.reservations, 0);
});

Deno.test("DhtStore: per-peer quotas default to 16 reservations and 64 leases; this node is exempt", () => {
  const self = "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi";
  const peer = "11111111111111111111111111111111";
  const store = new DhtStore({ address: self });
  const prepare = (i: number, who: string) =>
    store.cas(
      create(CasRequestSchema, {
        record: createRecord({ key: dhtKey(`${who} ${i}`), value: encode("v"), version: 1 }),
        expectedVersion: 0n,
        proposal: proposal(1),
        phase: CasPhase.PREPARE,
      }),
      who,
    );
  const lock = (i: number, who: string) =>
    store.lock(create(LockRequestSchema, { key: dhtKey(`${who} lock ${i}`) }), who);
  for (let i = 0; i < 16; i++) prepare(i, peer);
  assert.throws(
    () => prepare(16, peer),
    (err: unknown) =>
      refused(NackReason.RATE_LIMITED)(err) && /maxReservationsPerPeer 16/.test(`${err}`),
  );
  for (let i = 0; i < 64; i++) lock(i, peer);
  assert.throws(
    () => lock(64, peer),
    (err: unknown) => refused(NackReason.RATE_LIMITED)(err) && /maxLocksPerPeer 64/.test(`${err}`),
  );
  for (let i = 0; i < 100; i++) prepare(i, self);
  for (let i = 0; i < 100; i++) lock(i, self);
});

Deno.test("DhtStore: a kept patch is the store's own copy", () => {
  const store = new DhtStore();
  store.store(record("", 1));
  const frame = new Uint8Array(100_000); // what a received frame's bytes would be
  frame.set(encode("hello"), 50_000);
  const patch = create(PatchSchema, {
    baseVersion: 1n,
    version: 2n,
    format: PatchFormat.BYTE_SPLICE,
    splices: [{ offset: 0n, deleteCount: 0n, insert: frame.subarray(50_000, 50_005) }],
    valueHash: sha256(encode("hello")),
  });
  store.preparePatch(create(PatchRequestSchema, { key, patch, proposal: proposal(1) }));
  cas(store, record("hello", 2), 1, 1, CasPhase.COMMIT);
  assert.equal(new TextDecoder().decode(store.get(key)!.value), "hello");
  assert.equal(store.changes(key, 1n).patches.length, 1);
  assert.ok(store.retainedBytes() <= store.bytes, `${store.retainedBytes()} > ${store.bytes}`);
  assert.ok(store.retainedBytes() < 1_000);
});

Deno.test("DhtStore: random writes from a few peers stay within the limits and count back to 0", () => {
  const peers = ["11111111111111111111111111111111", "4vJ9JU1bJJE96FWSJKvHsmmFADCg4gpZQff4P3bkLKi"];
  const op = fc.record({
    kind: fc.constantFrom(
      "store",
      "prepare",
      "patch",
      "commit",
      "abort",
      "lock",
      "unlock",
      "tick",
    ),
    key: fc.integer({ min: 0, max: 11 }),
    version: fc.integer({ min: 1, max: 4 }),
    size: fc.integer({ min: 0, max: 3_000 }),
    peer: fc.integer({ min: 0, max: 2 }), // 2: this node
    p: fc.integer({ min: 0, max: 3 }),
  });
  const self = generateIdentitySync({ difficulty: 0 }).address;
  fc.assert(
    fc.property(fc.array(op, { maxLength: 80 }), fc.boolean(), (ops, withId) => {
      const clock = new ManualClock();
      const limits = { maxRecords: 6, maxBytes: 4 * DHT_ENTRY_OVERHEAD + 6_000 };
      const store = new DhtStore({
        clock,
        ...limits,
        nodeId: withId ? dhtKey("self") : undefined,
        address: self,
        maxRecordsPerPeer: 4,
        maxBytesPerPeer: 3 * DHT_ENTRY_OVERHEAD + 4_000,
        maxReservationsPerPeer: 2,
        maxLocksPerPeer: 2,
        reservationTime: 1_000,
        defaultTtl: 5_000,
        maxLocks: 4,
      });
      for (const o of ops) {
        const who = o.peer === 2 ? self : peers[o.peer];
        const k = dhtKey(`k${o.key}`);
        const r = createRecord({ key: k, value: new Uint8Array(o.size), version: o.version });
        const phase = { prepare: 1, commit: 2, abort: 3 }[o.kind as string];
        try {
          const held = store.get(k);
          if (o.kind === "store") store.store(r, who);
          else if (o.kind === "patch" && held) {
            const insert = new Uint8Array(o.size % 200).fill(o.p);
            const value = new Uint8Array([...insert, ...held.value]);
            const patch = create(PatchSchema, {
              baseVersion: held.version,
              version: held.version + 1n,
              format: PatchFormat.BYTE_SPLICE,
              splices: [{ offset: 0n, deleteCount: 0n, insert }],
              valueHash: sha256(value),
            });
            store.preparePatch(
              create(PatchRequestSchema, { key: k, patch, proposal: proposal(o.p) }),
              who,
            );
          } else if (phase) {
            store.cas(
              create(CasRequestSchema, {
                record: r,
                expectedVersion: BigInt(o.version - 1),
                proposal: proposal(o.p),
                phase,
              }),
              who,
            );
          } else if (o.kind === "lock") {
            store.lock(create(LockRequestSchema, { key: k, ttlMs: 2_000n }), who);
          } else if (o.kind === "unlock") store.unlock(k, 0n, who);
          else clock.advance(o.size);
        } catch (err) {
          if (!(err instanceof NackError)) throw err;
        }
        assert.ok(store.bytes <= limits.maxBytes, `${store.bytes} bytes`);
        assert.ok(store.size <= limits.maxRecords);
        assert.ok(store.retainedBytes() <= store.bytes);
      }
      clock.advance(10_000);
      store.sweep();
      assert.deepEqual([store.size, store.reservations, store.bytes], [0, 0, 0]);
    }),
    { numRuns: 300 },
  );
});

Deno.test("DhtStore: a ttl over 24 h is capped at 24 h and 0 is the 1 h default, for STORE, CAS and patch commits", () => {
  const clock = new ManualClock();
  const store = new DhtStore({ clock }); // the defaults: 1 h, at most 24 h
  const hour = 3_600_000;
  const long = 25 * hour;
  const keyOf = (name: string) => dhtKey(name);
  const rec = (name: string, value: string, version: number, ttl: number) =>
    createRecord({ key: keyOf(name), value: encode(value), version, ttl });
  // STORE, with 25 h, with 0 and with 2^64 - 1 (no overflow to "never").
  store.store(rec("store", "s", 1, long));
  store.store(rec("default", "d", 1, 0));
  const huge = rec("huge", "h", 1, 0);
  huge.ttlMs = 2n ** 64n - 1n;
  store.store(huge);
  // A DHT_CAS commit of a record asking 25 h.
  const casRecord = rec("cas", "c", 1, long);
  for (const phase of [CasPhase.PREPARE, CasPhase.COMMIT]) {
    store.cas(create(CasRequestSchema, { record: casRecord, proposal: proposal(1), phase }));
  }
  // A DHT_PATCH commit asking 25 h, on a base stored with 0 (1 h).
  store.store(rec("patch", "ab", 1, 0));
  const patch = create(PatchSchema, {
    baseVersion: 1n,
    version: 2n,
    format: PatchFormat.BYTE_SPLICE,
    splices: [{ offset: 2n, deleteCount: 0n, insert: encode("c") }],
    valueHash: sha256(encode("abc")),
  });
  store.preparePatch(
    create(PatchRequestSchema, {
      key: keyOf("patch"),
      patch,
      proposal: proposal(2),
      ttlMs: BigInt(long),
    }),
  );
  store.cas(create(CasRequestSchema, {
    record: create(RecordSchema, { key: keyOf("patch") }), // COMMIT reads the key only
    proposal: proposal(2),
    phase: CasPhase.COMMIT,
  }));
  assert.equal(store.get(keyOf("patch"))?.version, 2n);
  clock.advance(hour - 1);
  assert.ok(store.get(keyOf("default")), "a ttl of 0 lives the default hour");
  clock.advance(1);
  assert.equal(store.get(keyOf("default")), undefined);
  clock.advance(23 * hour - 1); // 24 h - 1 ms after every write
  for (const name of ["store", "huge", "cas", "patch"]) {
    assert.ok(store.get(keyOf(name)), `${name} is held until 24 h`);
  }
  clock.advance(1);
  for (const name of ["store", "huge", "cas", "patch"]) {
    assert.equal(store.get(keyOf(name)), undefined, `${name} expired at 24 h, not 25 h`);
  }
});

Deno.test("DhtStore: the owner and signature must pair (MALFORMED), or verify (BAD_SIGNATURE)", () => {
  const store = new DhtStore();
  const owner = generateIdentitySync({ difficulty: 0 });
  const open = record("x", 1);
  open.signature = new Uint8Array(64).fill(1); // an open record with a signature
  assert.throws(() => store.store(open), refused(NackReason.MALFORMED));
  const short = createRecord({ key, value: encode("x"), version: 1, owner });
  short.owner = short.owner.subarray(0, 31); // an owner not 32 bytes
  assert.throws(() => store.store(short), refused(NackReason.MALFORMED));
  const unsigned = createRecord({ key, value: encode("x"), version: 1, owner });
  unsigned.signature = new Uint8Array(0); // an owner without its signature
  assert.throws(() => store.store(unsigned), refused(NackReason.BAD_SIGNATURE));
  const forged = createRecord({ key, value: encode("x"), version: 1, owner });
  forged.value = encode("y");
  assert.throws(() => store.store(forged), refused(NackReason.BAD_SIGNATURE));
  assert.equal(store.size, 0);
});

Deno.test("DhtStore: a PREPARE is refused for the record quota its COMMIT would pass; a COMMIT never is", () => {
  const peer = "11111111111111111111111111111111";
  const store = new DhtStore({ maxRecordsPerPeer: 1 });
  const prepare = (name: string, p: number) =>
    store.cas(
      create(CasRequestSchema, {
        record: createRecord({ key: dhtKey(name), value: encode(name), version: 1 }),
        proposal: proposal(p),
        phase: CasPhase.PREPARE,
      }),
      peer,
    );
  const commit = (name: string, p: number) =>
    store.cas(
      create(CasRequestSchema, {
        record: create(RecordSchema, { key: dhtKey(name) }),
        proposal: proposal(p),
        phase: CasPhase.COMMIT,
      }),
      peer,
    );
  // Prepared while the peer holds nothing here; it then fills its quota.
  prepare("a", 1);
  store.store(createRecord({ key: dhtKey("b"), value: encode("b"), version: 1 }), peer);
  // The COMMIT of what a majority may have prepared still stores it.
  assert.equal(commit("a", 1).version, 1n);
  assert.equal(store.get(dhtKey("a"))?.version, 1n);
  // A new PREPARE by a peer at its record quota is refused now, not at COMMIT.
  assert.throws(
    () => prepare("c", 2),
    (err: unknown) => refused(NackReason.RATE_LIMITED)(err) && /maxRecordsPerPeer 1/.test(`${err}`),
  );
});

Deno.test("DhtStore: DHT_LOCK refuses min_fencing_token above 2^53 - 1 before anything else", () => {
  const store = new DhtStore();
  const lock = (fencingToken: bigint, minFencingToken: bigint, who = "a") =>
    store.lock(
      create(LockRequestSchema, { key, ttlMs: 1_000n, fencingToken, minFencingToken }),
      who,
    );
  const { fencingToken } = lock(0n, 0n);
  const tooBig = BigInt(Number.MAX_SAFE_INTEGER) + 1n;
  assert.throws(() => lock(0n, tooBig), refused(NackReason.MALFORMED)); // acquire
  assert.throws(() => lock(fencingToken, tooBig), refused(NackReason.MALFORMED)); // renew
  assert.throws(() => lock(0n, tooBig, "b"), refused(NackReason.MALFORMED)); // while held by a
  assert.equal(
    lock(0n, BigInt(Number.MAX_SAFE_INTEGER)).fencingToken,
    BigInt(Number.MAX_SAFE_INTEGER),
  );
});
