// A replica's rules, without the network: DhtStore with a manual clock.
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { ManualClock } from "../../lib/clock.ts";
import { DhtStore } from "../../lib/dht/store.ts";
import { Refusal } from "../../lib/errors.ts";
import { createRecord, dhtKey } from "../../lib/dht/record.ts";
import {
  CasPhase,
  CasRequestSchema,
  LockRequestSchema,
  NackReason,
  PatchFormat,
  PatchRequestSchema,
  PatchSchema,
  type Record,
} from "../../lib/protocol.ts";

const key = dhtKey("k");
const encode = (s: string) => new TextEncoder().encode(s);
const record = (value: string, version: number, ttl?: number) =>
  createRecord({ key, value: encode(value), version, ttl });
const refused = (reason: NackReason) => (err: unknown) =>
  err instanceof Refusal && err.reason === reason;
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
  const store = new DhtStore({ maxRecords: 2, maxBytes: 100 });
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
  assert.equal(store.bytes, 90);
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
