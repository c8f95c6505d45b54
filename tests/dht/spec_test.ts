// Issue 13: the DHT as README "Protocol" (Refusals, DHT) and
// proto/carrier/v1/dht.proto specify it, over real connections: peers that
// accept no connections are never asked nor listed, DHT_CAS phases and the
// fields each needs, every DHT row of the refusal table, and record TTLs
// capped at 24 h.
import assert from "node:assert/strict";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import { ManualClock } from "../../lib/clock.ts";
import type { DhtHost } from "../../lib/dht/dht.ts";
import { isDhtOpcode } from "../../lib/dht/opcodes.ts";
import { createRecord, dhtKey } from "../../lib/dht/record.ts";
import { NackError } from "../../lib/errors.ts";
import { RecordError } from "../../lib/dht/errors.ts";
import { generateIdentitySync, type Identity } from "../../lib/identity/keys.ts";
import { createNode, type Node } from "../../mod.ts";
import { contactOf, RoutingTable } from "../../lib/overlay/routing_table.ts";
import { PeerConnection } from "../../lib/peer/connection.ts";
import {
  CasPhase,
  CasRequestSchema,
  ChangesReplySchema,
  ChangesRequestSchema,
  FindNodeReplySchema,
  FindNodeRequestSchema,
  FindValueReplySchema,
  FindValueRequestSchema,
  LockGrantSchema,
  LockHeldSchema,
  LockRequestSchema,
  NackReason,
  Opcode,
  PatchFormat,
  PatchRequestSchema,
  type PeerInfo,
  type Record,
  RecordSchema,
  StoreReplySchema,
  StoreRequestSchema,
  UnlockReplySchema,
  UnlockRequestSchema,
  VersionConflictSchema,
} from "../../lib/protocol.ts";
import { secureOutbound } from "../../lib/secure/channel.ts";
import { MemoryNetwork } from "../../lib/transport/memory.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";
import { dht as dhtService, replicaOf } from "../../lib/services/dht.ts";

const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HOUR = 3_600_000;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

async function until(condition: () => boolean, what: string, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await sleep(10);
  }
}

/** A payload: `init` of `schema`, serialized. */
function payload<Desc extends DescMessage>(
  schema: Desc,
  init: MessageInitShape<Desc>,
): Uint8Array {
  return toBinary(schema, create(schema, init));
}

/** A request from `from` to `to` over their connection (opened if needed): the ACK's data. */
async function ask(from: Node, to: Node, opcode: number, body: Uint8Array): Promise<Uint8Array> {
  if (!from.peer(to.address)) await from.connect(to.peerAddresses[0]);
  return await from.peer(to.address)!.request(opcode, body);
}

/** The NACK a request got (it must get one, with `reason`). */
async function nacked(request: Promise<unknown>, reason: NackReason, what: string) {
  try {
    await request;
  } catch (err) {
    if (!(err instanceof NackError)) throw err;
    assert.equal(
      NackReason[err.reason],
      NackReason[reason],
      `${what}: NACK ${NackReason[err.reason]} (${err.message})`,
    );
    return err;
  }
  throw new Error(`${what}: ACKed, not NACK ${NackReason[reason]}`);
}

/** The record a node holds of `key` (its own store, no network). */
function held(node: Node, key: Uint8Array): Record | undefined {
  const data = replicaOf(node.dht).serve(
    Opcode.FIND_VALUE,
    payload(FindValueRequestSchema, { key }),
    "",
  );
  return decodePayload(FindValueReplySchema, data).record;
}

/**
 * A peer that accepts no connections (its handshake says
 * `accepts_inbound = false`, with the listen addresses given, which such a
 * peer should not name) connected to each node, and that never answers a
 * request: a DHT command that waited on it would stall for 5 s. It records
 * the opcode of every frame it receives.
 */
class SilentPeer {
  readonly identity: Identity = generateIdentitySync({ difficulty: 0 });
  readonly received: number[] = [];
  readonly connections: PeerConnection[] = [];

  static async connect(nodes: Node[], listenAddrs: string[]): Promise<SilentPeer> {
    const peer = new SilentPeer();
    const transport = new TcpTransport();
    for (const node of nodes) {
      const stream = await transport.dial(node.listenAddrs[0]);
      const channel = await secureOutbound(stream, {
        identity: peer.identity,
        expectedRemote: node.identity.publicKey,
        acceptsInbound: false,
        listenAddrs,
      });
      peer.connections.push(
        new PeerConnection(channel, {
          onFrame: (frame) => {
            peer.received.push(frame.opcode); // and no reply, ever
          },
        }),
      );
    }
    return peer;
  }

  get address(): string {
    return this.identity.address;
  }

  /** The DHT requests it received, by opcode name. */
  dhtRequests(): string[] {
    return this.received.filter((op) => isDhtOpcode(op)).map((op) => Opcode[op]);
  }

  async close(): Promise<void> {
    await Promise.all(this.connections.map((c) => c.close()));
  }
}

/** Every peer each listening node's FIND_NODE and FIND_VALUE replies list near `target`. */
async function listedNear(prober: Node, nodes: Node[], target: Uint8Array): Promise<PeerInfo[]> {
  const listed: PeerInfo[] = [];
  for (const node of nodes) {
    const found = await ask(
      prober,
      node,
      Opcode.FIND_NODE,
      payload(FindNodeRequestSchema, { target }),
    );
    listed.push(...decodePayload(FindNodeReplySchema, found).peers);
    const value = await ask(
      prober,
      node,
      Opcode.FIND_VALUE,
      payload(FindValueRequestSchema, { key: target }),
    );
    listed.push(...decodePayload(FindValueReplySchema, value).peers);
  }
  return listed;
}

Deno.test("DHT over TCP: a peer that accepts no connections is never sent a DHT request nor listed in replies", async () => {
  const R = 5;
  const options = { listen: ["127.0.0.1:0"], puzzleDifficulty: 0, dht: { replicas: R } };
  const seed = await createNode(options);
  const listening = [seed];
  for (let i = 1; i < 4; i++) {
    listening.push(await createNode({ ...options, bootstrap: seed.peerAddresses }));
  }
  // A real node that only dials out: it asks, and is never asked.
  const outbound = await createNode({ ...options, listen: [], bootstrap: seed.peerAddresses });
  const prober = await createNode({ puzzleDifficulty: 0 });
  const nodes = [...listening, outbound];
  const silent: SilentPeer[] = [];
  try {
    await until(() => nodes.every((n) => n.peers().length > 0), "the nodes connect");
    for (const node of nodes) await node.refreshRoutingTable();
    // Records held before the silent peers arrive: each arrival would hand
    // them the ones they should hold, if they counted as replicas.
    for (let i = 0; i < 4; i++) await seed.dht.put(`before-${i}`, `b${i}`);
    // One names a listen address despite accepts_inbound = false; one names none.
    silent.push(await SilentPeer.connect(listening, ["127.0.0.1:9"]));
    silent.push(await SilentPeer.connect(listening, []));
    for (const peer of silent) {
      await until(
        () => listening.every((n) => n.routingTable.get(peer.address) !== undefined),
        "every listening node has the silent peers in its routing table",
      );
    }

    for (const [i, node] of nodes.entries()) {
      await node.dht.put(`key-${i}`, `v${i}`);
      assert.equal(decode((await node.dht.get(`key-${i}`))?.value), `v${i}`);
      assert.equal(
        decode((await node.dht.get(`before-${i % 4}`, { consistency: "any" }))?.value),
        `b${i % 4}`,
      );
      await node.dht.cas(`cas-${i}`, "1", 0);
      await node.dht.put(`doc-${i}`, "[]");
      await node.dht.patch(`doc-${i}`, { json: [{ op: "add", path: "/-", value: i }] }, 1);
      assert.equal((await node.dht.changes(`doc-${i}`, 1)).currentVersion, 2);
      const lease = await node.dht.lock(`lock-${i}`);
      await node.dht.unlock(await node.dht.renew(lease));
      const { closest } = await node.dht.lookup(`key-${i}`);
      for (const peer of silent) assert.ok(!closest.includes(peer.address), "a lookup result");
      await node.dht.republish();
    }
    // Read repair: a newer copy at two replicas is written back to the others.
    const key = dhtKey("repair");
    await seed.dht.put(key, "old");
    const newer = createRecord({ key, value: encode("new"), version: 2 });
    for (const replica of listening.slice(0, 2)) {
      replicaOf(replica.dht).serve(
        Opcode.STORE,
        payload(StoreRequestSchema, { record: newer }),
        "",
      );
    }
    assert.equal(decode((await outbound.dht.get(key))?.value), "new");
    assert.equal(decode((await listening[3].dht.get(key, { consistency: "any" }))?.value), "new");
    await until(() => listening.every((n) => held(n, key)?.version === 2n), "read repair");

    // Replies never list them (nor the real outbound-only node), connected...
    const notListed = async (when: string) => {
      for (const absent of [...silent.map((p) => p.identity), outbound.identity]) {
        for (const info of await listedNear(prober, listening, absent.nodeId)) {
          assert.ok(
            info.acceptsInbound && info.listenAddrs.length > 0,
            `${when}: listed without addresses`,
          );
          assert.notDeepEqual(
            info.address,
            absent.publicKey,
            `${when}: a peer that accepts no connections listed`,
          );
        }
      }
    };
    await notListed("connected");
    // ... or closed (the routing tables still know them).
    for (const peer of silent) await peer.close();
    await outbound.close();
    await until(
      () =>
        listening.every((n) =>
          [...silent.map((p) => p.address), outbound.address].every((a) => !n.peer(a))
        ),
      "the listening nodes see them gone",
    );
    assert.ok(listening.some((n) => silent.some((p) => n.routingTable.get(p.address))));
    await notListed("closed");
    // Nothing was sent to them: no lookup, read repair, republish, hand-off,
    // cas, lock or patch waited on a peer that never answers.
    for (const peer of silent) assert.deepEqual(peer.dhtRequests(), [], `sent to ${peer.address}`);
  } finally {
    for (const peer of silent) await peer.close();
    await Promise.all([...nodes, prober].map((n) => n.close()));
  }
});

Deno.test("DHT_CAS over TCP: an unprepared COMMIT, or one naming another proposal, is refused and stores nothing", async () => {
  const replica = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const writer = await createNode({ puzzleDifficulty: 0 });
  try {
    const cas = (
      record: Record | undefined,
      expectedVersion: number,
      proposal: Uint8Array,
      phase: CasPhase,
    ) =>
      ask(
        writer,
        replica,
        Opcode.DHT_CAS,
        payload(CasRequestSchema, {
          record,
          expectedVersion: BigInt(expectedVersion),
          proposal,
          phase,
        }),
      );
    const conflict = (err: NackError) => decodePayload(VersionConflictSchema, err.data);
    const [p1, p2, p3] = [1, 2, 3].map((n) => new Uint8Array(16).fill(n));

    // Nothing held: a COMMIT never prepared, with a wrong expected version.
    const fresh = dhtKey("fresh");
    const v1 = createRecord({ key: fresh, value: encode("x"), version: 1 });
    for (const expected of [0, 7]) {
      const err = await nacked(
        cas(v1, expected, p1, CasPhase.COMMIT),
        NackReason.VERSION_CONFLICT,
        "unprepared COMMIT",
      );
      assert.equal(conflict(err).currentVersion, 0n);
    }
    assert.equal(held(replica, fresh), undefined);

    // Version 1 held; version 2 prepared for p1.
    const key = dhtKey("register");
    await ask(
      writer,
      replica,
      Opcode.STORE,
      payload(StoreRequestSchema, {
        record: createRecord({ key, value: encode("a"), version: 1 }),
      }),
    );
    const b = createRecord({ key, value: encode("b"), version: 2 });
    const prepared = decodePayload(StoreReplySchema, await cas(b, 1, p1, CasPhase.PREPARE));
    assert.equal(prepared.version, 2n);
    // A COMMIT naming another proposal, even with the prepared record: refused with what is held.
    for (const expected of [1, 5]) {
      const err = await nacked(
        cas(b, expected, p2, CasPhase.COMMIT),
        NackReason.VERSION_CONFLICT,
        "COMMIT of another proposal",
      );
      assert.equal(conflict(err).currentVersion, 1n);
      assert.equal(decode(conflict(err).current?.value), "a");
    }
    assert.equal(decode(held(replica, key)?.value), "a");
    // ABORT of an unknown proposal: ACK, and p1's reservation stays.
    assert.equal(decodePayload(StoreReplySchema, await cas(b, 0, p3, CasPhase.ABORT)).version, 1n);
    // COMMIT and ABORT read record.key and the proposal only.
    const keyOnly = create(RecordSchema, { key });
    assert.equal(
      decodePayload(StoreReplySchema, await cas(keyOnly, 99, p1, CasPhase.COMMIT)).version,
      2n,
    );
    assert.equal(decode(held(replica, key)?.value), "b");
    // The same COMMIT again (a retry) is acknowledged; an ABORT after it changes nothing.
    assert.equal(
      decodePayload(StoreReplySchema, await cas(keyOnly, 0, p1, CasPhase.COMMIT)).version,
      2n,
    );
    assert.equal(
      decodePayload(StoreReplySchema, await cas(keyOnly, 0, p1, CasPhase.ABORT)).version,
      2n,
    );
    // An aborted reservation commits nothing.
    const c = createRecord({ key, value: encode("c"), version: 3 });
    await cas(c, 2, p2, CasPhase.PREPARE);
    await cas(keyOnly, 0, p2, CasPhase.ABORT);
    await nacked(cas(c, 2, p2, CasPhase.COMMIT), NackReason.VERSION_CONFLICT, "COMMIT after ABORT");
    assert.equal(held(replica, key)?.version, 2n);

    // Every phase needs record.key and the proposal; PREPARE the whole record above expected.
    const short = new Uint8Array(15);
    for (const phase of [CasPhase.PREPARE, CasPhase.COMMIT, CasPhase.ABORT]) {
      const name = CasPhase[phase];
      await nacked(cas(undefined, 2, p3, phase), NackReason.MALFORMED, `${name} without a record`);
      await nacked(
        cas(create(RecordSchema, { key: new Uint8Array(31) }), 2, p3, phase),
        NackReason.MALFORMED,
        `${name} with a 31-byte key`,
      );
      await nacked(
        cas(keyOnly, 2, short, phase),
        NackReason.MALFORMED,
        `${name} with a 15-byte proposal`,
      );
      await nacked(
        cas(keyOnly, 2, new Uint8Array(0), phase),
        NackReason.MALFORMED,
        `${name} without a proposal`,
      );
    }
    await nacked(
      cas(keyOnly, 2, p3, CasPhase.PREPARE),
      NackReason.MALFORMED,
      "PREPARE of a key only",
    );
    await nacked(
      cas(c, 3, p3, CasPhase.PREPARE),
      NackReason.MALFORMED,
      "PREPARE not above expected",
    );
    for (const phase of [CasPhase.UNSPECIFIED, 4, 1000]) {
      await nacked(cas(c, 2, p3, phase), NackReason.MALFORMED, `phase ${phase}`);
    }
    assert.equal(held(replica, key)?.version, 2n);
  } finally {
    await Promise.all([replica, writer].map((n) => n.close()));
  }
});

Deno.test("DHT over TCP: each DHT row of the README's refusal table", async (t) => {
  const replica = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const strict = await createNode({
    listen: ["127.0.0.1:0"],
    puzzleDifficulty: 0,
    dht: { maxRecordsPerPeer: 1, maxReservationsPerPeer: 1, maxLocksPerPeer: 1 },
  });
  const peer = await createNode({ puzzleDifficulty: 0 });
  const other = await createNode({ puzzleDifficulty: 0 });
  const send = (opcode: number, body: Uint8Array, to = replica, from = peer) =>
    ask(from, to, opcode, body);
  const store = (record: Record, to = replica) =>
    send(Opcode.STORE, payload(StoreRequestSchema, { record }), to);
  const conflict = (err: NackError) => decodePayload(VersionConflictSchema, err.data);
  const proposal = (n: number) => new Uint8Array(16).fill(n);
  const owner = generateIdentitySync({ difficulty: 0 });
  try {
    await t.step(
      "find-node-target, find-value-key: MALFORMED; a missing key is an ACK",
      async () => {
        for (const length of [0, 31, 33]) {
          const bad = new Uint8Array(length);
          await nacked(
            send(Opcode.FIND_NODE, payload(FindNodeRequestSchema, { target: bad })),
            NackReason.MALFORMED,
            `FIND_NODE ${length}`,
          );
          await nacked(
            send(Opcode.FIND_VALUE, payload(FindValueRequestSchema, { key: bad })),
            NackReason.MALFORMED,
            `FIND_VALUE ${length}`,
          );
        }
        const missing = await send(
          Opcode.FIND_VALUE,
          payload(FindValueRequestSchema, { key: dhtKey("missing") }),
        );
        assert.equal(decodePayload(FindValueReplySchema, missing).record, undefined); // never NOT_FOUND
      },
    );

    await t.step("store-malformed, store-signature, store-too-large", async () => {
      const key = dhtKey("store");
      const ok = () => createRecord({ key, value: encode("x"), version: 1 });
      const cases: [string, (r: Record) => void][] = [
        ["a 31-byte key", (r) => (r.key = new Uint8Array(31))],
        ["version 0", (r) => (r.version = 0n)],
        ["version 2^53", (r) => (r.version = MAX_SAFE + 1n)],
        ["an open record with a signature", (r) => (r.signature = new Uint8Array(64))],
        ["a 31-byte owner", (r) => (r.owner = owner.publicKey.subarray(0, 31))],
      ];
      for (const [what, spoil] of cases) {
        const record = ok();
        spoil(record);
        await nacked(store(record), NackReason.MALFORMED, what);
      }
      await nacked(
        send(Opcode.STORE, payload(StoreRequestSchema, {})),
        NackReason.MALFORMED,
        "no record",
      );
      const forged = createRecord({ key, value: encode("x"), version: 1, owner });
      forged.value = encode("y");
      await nacked(store(forged), NackReason.BAD_SIGNATURE, "a forged signature");
      const big = createRecord({ key, value: new Uint8Array(64 * 1024 + 1), version: 1 });
      await nacked(store(big), NackReason.TOO_LARGE, "a value over 64 KiB");
      assert.equal(held(replica, key), undefined);
    });

    await t.step(
      "store-stale: VERSION_CONFLICT with the replica's record; store-owner: FORBIDDEN",
      async () => {
        const key = dhtKey("stale");
        await store(createRecord({ key, value: encode("two"), version: 2 }));
        for (
          const [what, record] of [
            ["a lower version", createRecord({ key, value: encode("one"), version: 1 })],
            [
              "the same version, another value",
              createRecord({ key, value: encode("2'"), version: 2 }),
            ],
          ] as const
        ) {
          const err = await nacked(store(record), NackReason.VERSION_CONFLICT, what);
          assert.equal(conflict(err).currentVersion, 2n);
          assert.equal(decode(conflict(err).current?.value), "two");
        }
        const same = await store(createRecord({ key, value: encode("two"), version: 2 }));
        assert.equal(decodePayload(StoreReplySchema, same).version, 2n); // the same again: ACK
        const owned = dhtKey("owned");
        await store(createRecord({ key: owned, value: encode("mine"), version: 1, owner }));
        const thief = generateIdentitySync({ difficulty: 0 });
        const theirs = createRecord({
          key: owned,
          value: encode("theirs"),
          version: 2,
          owner: thief,
        });
        await nacked(store(theirs), NackReason.FORBIDDEN, "another owner");
        const open = createRecord({ key: owned, value: encode("open"), version: 2 });
        await nacked(store(open), NackReason.FORBIDDEN, "an open record for an owned key");
        assert.equal(decode(held(replica, owned)?.value), "mine");
      },
    );

    await t.step("store-quota, cas-quota, lock-quota: RATE_LIMITED", async () => {
      await store(createRecord({ key: dhtKey("q1"), value: encode("x"), version: 1 }), strict);
      await nacked(
        store(createRecord({ key: dhtKey("q2"), value: encode("x"), version: 1 }), strict),
        NackReason.RATE_LIMITED,
        "record quota",
      );
      // Reservations: one live per peer (of a key it holds, so the record quota is not the limit).
      const q1 = dhtKey("q1");
      const prepare = (n: number) =>
        send(
          Opcode.DHT_CAS,
          payload(CasRequestSchema, {
            record: createRecord({ key: q1, value: encode(`${n}`), version: 2 }),
            expectedVersion: 1n,
            proposal: proposal(n),
            phase: CasPhase.PREPARE,
          }),
          strict,
        );
      await prepare(1);
      const q3 = createRecord({ key: dhtKey("q3"), value: encode("x"), version: 1 });
      const err = await nacked(
        send(
          Opcode.DHT_CAS,
          payload(CasRequestSchema, { record: q3, proposal: proposal(2), phase: CasPhase.PREPARE }),
          strict,
        ),
        NackReason.RATE_LIMITED,
        "reservation quota",
      );
      assert.match(err.message, /maxReservationsPerPeer 1/);
      const lock = (name: string) =>
        send(
          Opcode.DHT_LOCK,
          payload(LockRequestSchema, { key: dhtKey(name), ttlMs: 5_000n }),
          strict,
        );
      await lock("l1");
      await nacked(lock("l2"), NackReason.RATE_LIMITED, "lease quota");
    });

    await t.step(
      "cas-malformed, cas-expected (busy), and a PREPARE's record refused as a STORE's",
      async () => {
        const key = dhtKey("cas");
        await store(createRecord({ key, value: encode("one"), version: 1 }));
        const prepare = (record: Record, expected: number, n: number) =>
          send(
            Opcode.DHT_CAS,
            payload(CasRequestSchema, {
              record,
              expectedVersion: BigInt(expected),
              proposal: proposal(n),
              phase: CasPhase.PREPARE,
            }),
          );
        const two = createRecord({ key, value: encode("two"), version: 2 });
        await nacked(prepare(two, 2, 1), NackReason.MALFORMED, "version not above expected");
        const err = await nacked(
          prepare(createRecord({ key, value: encode("x"), version: 6 }), 5, 1),
          NackReason.VERSION_CONFLICT,
          "expected not held",
        );
        assert.equal(conflict(err).currentVersion, 1n);
        assert.equal(conflict(err).busy, false);
        await prepare(two, 1, 1);
        const busy = await nacked(
          prepare(createRecord({ key, value: encode("2'"), version: 2 }), 1, 2),
          NackReason.VERSION_CONFLICT,
          "reserved for another",
        );
        assert.equal(conflict(busy).busy, true);
        const forged = createRecord({
          key: dhtKey("cas-forged"),
          value: encode("x"),
          version: 1,
          owner,
        });
        forged.value = encode("y");
        await nacked(prepare(forged, 0, 3), NackReason.BAD_SIGNATURE, "PREPARE of a forged record");
        const big = createRecord({
          key: dhtKey("cas-big"),
          value: new Uint8Array(64 * 1024 + 1),
          version: 1,
        });
        await nacked(prepare(big, 0, 3), NackReason.TOO_LARGE, "PREPARE of a value over 64 KiB");
      },
    );

    await t.step(
      "lock-malformed, lock-held, lock-lost, unlock-malformed, unlock-held",
      async () => {
        const lockBody = (key: Uint8Array, fencingToken = 0n, minFencingToken = 0n) =>
          payload(LockRequestSchema, { key, ttlMs: 5_000n, fencingToken, minFencingToken });
        const key = dhtKey("mutex");
        await nacked(
          send(Opcode.DHT_LOCK, lockBody(new Uint8Array(31))),
          NackReason.MALFORMED,
          "a 31-byte key",
        );
        await nacked(
          send(Opcode.DHT_LOCK, lockBody(key, 0n, MAX_SAFE + 1n)),
          NackReason.MALFORMED,
          "min_fencing_token 2^53",
        );
        const grant = decodePayload(
          LockGrantSchema,
          await send(Opcode.DHT_LOCK, lockBody(key), replica, other),
        );
        await nacked(
          send(Opcode.DHT_LOCK, lockBody(key, grant.fencingToken, MAX_SAFE + 1n), replica, other),
          NackReason.MALFORMED,
          "renew, min_fencing_token 2^53",
        );
        const err = await nacked(
          send(Opcode.DHT_LOCK, lockBody(key)),
          NackReason.LOCK_HELD,
          "held by another",
        );
        const holder = decodePayload(LockHeldSchema, err.data);
        assert.deepEqual(holder.holder, other.identity.publicKey);
        assert.equal(holder.fencingToken, grant.fencingToken);
        await nacked(
          send(Opcode.DHT_UNLOCK, payload(UnlockRequestSchema, { key: new Uint8Array(5) })),
          NackReason.MALFORMED,
          "UNLOCK, a 5-byte key",
        );
        await nacked(
          send(Opcode.DHT_UNLOCK, payload(UnlockRequestSchema, { key })),
          NackReason.LOCK_HELD,
          "UNLOCK of another's lease",
        );
        // Renewing a released lease, or a token never granted: VERSION_CONFLICT.
        const released = await send(
          Opcode.DHT_UNLOCK,
          payload(UnlockRequestSchema, { key, fencingToken: grant.fencingToken }),
          replica,
          other,
        );
        assert.equal(decodePayload(UnlockReplySchema, released).released, true);
        await nacked(
          send(Opcode.DHT_LOCK, lockBody(key, grant.fencingToken), replica, other),
          NackReason.VERSION_CONFLICT,
          "renew of a released lease",
        );
        await nacked(
          send(Opcode.DHT_LOCK, lockBody(dhtKey("never"), 7n)),
          NackReason.VERSION_CONFLICT,
          "renew of no lease",
        );
        // Releasing what is not held is an ACK.
        const nothing = await send(
          Opcode.DHT_UNLOCK,
          payload(UnlockRequestSchema, { key: dhtKey("never") }),
        );
        assert.equal(decodePayload(UnlockReplySchema, nothing).released, false);
      },
    );

    await t.step(
      "patch-malformed, patch-base, patch-hash (with the replica's record), changes-key",
      async () => {
        const key = dhtKey("patched");
        await store(createRecord({ key, value: encode("abc"), version: 1 }));
        const splice = (
          offset: number,
          insert: string,
          value: string,
          base = 1,
          version = base + 1,
        ) => ({
          baseVersion: BigInt(base),
          version: BigInt(version),
          format: PatchFormat.BYTE_SPLICE,
          splices: [{ offset: BigInt(offset), deleteCount: 0n, insert: encode(insert) }],
          valueHash: sha256(encode(value)),
        });
        const patch = (init: MessageInitShape<typeof PatchRequestSchema>) =>
          send(
            Opcode.DHT_PATCH,
            payload(PatchRequestSchema, { key, proposal: proposal(1), ...init }),
          );
        const good = splice(3, "d", "abcd");
        await nacked(patch({ patch: undefined }), NackReason.MALFORMED, "no patch");
        await nacked(
          patch({ key: new Uint8Array(31), patch: good }),
          NackReason.MALFORMED,
          "a 31-byte key",
        );
        await nacked(
          patch({ patch: good, proposal: new Uint8Array(15) }),
          NackReason.MALFORMED,
          "a 15-byte proposal",
        );
        await nacked(
          patch({ patch: splice(3, "d", "abcd", 1, 1) }),
          NackReason.MALFORMED,
          "version not above base",
        );
        await nacked(
          patch({ patch: splice(9, "d", "abcd") }),
          NackReason.MALFORMED,
          "a splice out of range",
        );
        await nacked(
          patch({ patch: { ...good, format: PatchFormat.UNSPECIFIED } }),
          NackReason.MALFORMED,
          "no format",
        );
        const json = {
          baseVersion: 1n,
          version: 2n,
          format: PatchFormat.JSON_PATCH,
          jsonPatch: "[]",
          valueHash: sha256(encode("abc")),
        };
        await nacked(
          patch({ patch: json }),
          NackReason.MALFORMED,
          "a JSON patch of a value that is not JSON",
        );
        const base = await nacked(
          patch({ patch: splice(3, "d", "abcd", 4) }),
          NackReason.VERSION_CONFLICT,
          "base not held",
        );
        assert.equal(conflict(base).currentVersion, 1n);
        const none = await nacked(
          patch({ key: dhtKey("no value"), patch: good }),
          NackReason.VERSION_CONFLICT,
          "nothing held",
        );
        assert.equal(conflict(none).currentVersion, 0n);
        const hash = await nacked(
          patch({ patch: splice(3, "d", "abcX") }),
          NackReason.VERSION_CONFLICT,
          "another value_hash",
        );
        assert.equal(conflict(hash).currentVersion, 1n);
        assert.equal(decode(conflict(hash).current?.value), "abc", "the replica's record");
        assert.equal(conflict(hash).busy, false);
        assert.equal(held(replica, key)?.version, 1n);
        for (const length of [0, 31]) {
          const body = payload(ChangesRequestSchema, {
            key: new Uint8Array(length),
            sinceVersion: 0n,
          });
          await nacked(
            send(Opcode.DHT_CHANGES, body),
            NackReason.MALFORMED,
            `DHT_CHANGES ${length}`,
          );
        }
        const empty = await send(
          Opcode.DHT_CHANGES,
          payload(ChangesRequestSchema, { key: dhtKey("no value") }),
        );
        assert.equal(decodePayload(ChangesReplySchema, empty).currentVersion, 0n);
      },
    );
  } finally {
    await Promise.all([replica, strict, peer, other].map((n) => n.close()));
  }
});

Deno.test("DHT put, cas and patch with a 25 h ttl: each replica keeps the record 24 h; 0 is 1 h", async () => {
  await using net = new MemoryNetwork();
  const clock = new ManualClock(); // the replicas'; the writer keeps the system clock
  const options = { puzzleDifficulty: 0, dht: { replicas: 3 } };
  const first = await createNode({
    ...options,
    clock,
    transport: net.transport(),
    listen: ["mem:0"],
  });
  const replicas = [first];
  for (let i = 0; i < 2; i++) {
    replicas.push(
      await createNode({
        ...options,
        clock,
        transport: net.transport(),
        listen: ["mem:0"],
        bootstrap: first.peerAddresses,
      }),
    );
  }
  const writer = await createNode({
    ...options,
    transport: net.transport(),
    bootstrap: first.peerAddresses,
  });
  try {
    await until(
      () => [...replicas, writer].every((n) => n.peers().length > 0),
      "the nodes connect",
    );
    for (const node of [...replicas, writer]) await node.refreshRoutingTable();
    const ttl = 25 * HOUR;
    assert.equal((await writer.dht.put("put", "p", { ttl })).replicas, 3);
    assert.equal((await writer.dht.cas("cas", "c", 0, { ttl })).replicas, 3);
    await writer.dht.put("patch", "ab", { ttl });
    await writer.dht.patch(
      "patch",
      { splices: [{ offset: 2, deleteCount: 0, insert: encode("c") }] },
      1,
      { ttl },
    );
    await writer.dht.put("default", "d");
    await writer.dht.put("zero", "z", { ttl: 0 });
    const keys = ["put", "cas", "patch"].map((k) => dhtKey(k));
    const holders = (key: Uint8Array) => replicas.filter((n) => held(n, key) !== undefined).length;
    for (const key of keys) assert.equal(holders(key), 3);
    assert.equal(decode(held(replicas[0], dhtKey("patch"))?.value), "abc");
    clock.advance(HOUR);
    assert.equal(holders(dhtKey("default")), 0, "no ttl: the replicas' 1 h");
    assert.equal(holders(dhtKey("zero")), 0, "ttl 0: the replicas' 1 h");
    clock.advance(23 * HOUR - 1);
    for (const key of keys) assert.equal(holders(key), 3, "held until 24 h");
    clock.advance(1);
    for (const key of keys) assert.equal(holders(key), 0, "expired at 24 h, not 25 h");
  } finally {
    await Promise.all([...replicas, writer].map((n) => n.close()));
  }
});

Deno.test("DHT writes refuse a ttl that is not an integer from 0 to 2^53 - 1 before sending anything", async () => {
  const identity = generateIdentitySync({ difficulty: 0 });
  const peer = generateIdentitySync({ difficulty: 0 });
  const table = new RoutingTable(identity.nodeId);
  table.add(contactOf(peer.publicKey, peer.address, ["mem:peer"]));
  const sent: number[] = [];
  const host: DhtHost = {
    contact: contactOf(identity.publicKey, identity.address, ["mem:me"]),
    identity,
    table,
    clock: new ManualClock(),
    signal: new AbortController().signal,
    request: (_contact, opcode) => {
      sent.push(opcode);
      return Promise.reject(new Error("not connected"));
    },
    error: (error) => {
      throw error;
    },
  };
  const service = dhtService()(host);
  const dht = service.client;
  for (const ttl of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53]) {
    await assert.rejects(dht.put("k", "v", { ttl }), RecordError, `put, ttl ${ttl}`);
    await assert.rejects(dht.cas("k", "v", 0, { ttl }), RecordError, `cas, ttl ${ttl}`);
    await assert.rejects(
      dht.patch("k", { splices: [] }, 1, { ttl }),
      RecordError,
      `patch, ttl ${ttl}`,
    );
  }
  assert.equal(sent.length, 0, `sent ${sent.map((op) => Opcode[op])}`);
  // A ttl above a replica's 24 h is no error here: it is sent, and each replica caps it.
  await dht.put("k", "v", { ttl: 25 * HOUR, minReplicas: 1 });
  assert.ok(sent.includes(Opcode.STORE));
  service.cleanup();
});
