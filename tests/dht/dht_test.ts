// The DHT over real TCP on 127.0.0.1: 20 nodes, 7 replicas per key.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, type Node } from "../../mod.ts";
import {
  LockHeldError,
  QuorumError,
  RecordError,
  VersionConflictError,
} from "../../lib/dht/errors.ts";
import { NackError } from "../../lib/errors.ts";
import { applyChanges, type DhtLease } from "../../lib/dht/dht.ts";
import { createRecord, dhtKey } from "../../lib/dht/record.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { compareDistance } from "../../lib/identity/node_id.ts";
import { decodePayload } from "../../lib/wire/opcodes.ts";
import {
  FindValueReplySchema,
  FindValueRequestSchema,
  NackReason,
  Opcode,
  RecordSchema,
  StoreRequestSchema,
} from "../../lib/protocol.ts";

const N = 20;
const REPLICAS = 7;
const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array | undefined) => new TextDecoder().decode(b);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function swarm(n: number): Promise<Node[]> {
  const options = { listen: ["127.0.0.1:0"], puzzleDifficulty: 0, dht: { replicas: REPLICAS } };
  const seed = await createNode(options);
  const nodes = [seed];
  for (let i = 1; i < n; i++) {
    nodes.push(await createNode({ ...options, bootstrap: seed.peerAddresses }));
  }
  // Bootstrap connections open in the background; then every node learns
  // its neighbourhood (as its startup lookup does).
  for (let i = 0; i < 1_000 && nodes.some((n) => n.peers().length === 0); i++) await sleep(5);
  for (const node of nodes) await node.refreshRoutingTable();
  return nodes;
}

/** A raw request to a node from a prober outside the swarm (no ℓ to run into). */
let prober: Node | undefined;
async function raw(to: Node, opcode: number, payload: Uint8Array) {
  prober ??= await createNode({ puzzleDifficulty: 0, maxOutbound: 64 });
  await prober.connect(to.peerAddresses[0]);
  return prober.peer(to.address)!.request(opcode, payload);
}

const findValue = (key: Uint8Array) =>
  toBinary(FindValueRequestSchema, create(FindValueRequestSchema, { key }));
const storeRequest = (record: ReturnType<typeof createRecord>) =>
  toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));

Deno.test("DHT: 20 nodes over TCP", async (t) => {
  const nodes = await swarm(N);
  try {
    await t.step("put on any node, get from every node", async () => {
      for (let i = 0; i < 5; i++) {
        const writer = nodes[(i * 7) % N];
        const result = await writer.dht.put(`key-${i}`, encode(`value ${i}`));
        assert.equal(result.version, 1);
        assert.ok(result.replicas >= Math.floor(REPLICAS / 2) + 1, `${result.replicas} replicas`);
      }
      for (const node of nodes) {
        for (let i = 0; i < 5; i++) {
          const found = await node.dht.get(`key-${i}`);
          assert.equal(decode(found?.value), `value ${i}`);
          assert.equal(found?.version, 1);
        }
      }
      assert.equal(await nodes[3].dht.get("never written"), undefined);
      // A put without a version goes one above what it finds.
      assert.equal((await nodes[9].dht.put("key-0", encode("again"))).version, 2);
      assert.equal(decode((await nodes[13].dht.get("key-0"))?.value), "again");
    });

    await t.step("10 writers racing 100 CAS increments end at the acknowledged count", async () => {
      const key = "counter";
      let successes = 0;
      let conflicts = 0;
      const writer = async (node: Node) => {
        for (let attempt = 0; attempt < 10; attempt++) {
          const current = await node.dht.get(key);
          const n = current ? Number(decode(current.value)) : 0;
          try {
            await node.dht.cas(key, encode(String(n + 1)), current?.version ?? 0);
            successes++;
          } catch (err) {
            if (!(err instanceof VersionConflictError)) throw err;
            conflicts++;
            await sleep(Math.random() * 20);
          }
        }
      };
      await Promise.all(nodes.slice(0, 10).map(writer));
      assert.equal(successes + conflicts, 100);
      assert.ok(successes > 0, `${successes} successes`); // one per round of racing writers
      for (const node of [nodes[0], nodes[11], nodes[19]]) {
        const final = await node.dht.get(key);
        assert.equal(Number(decode(final?.value)), successes);
        assert.equal(final?.version, successes);
      }
    });

    await t.step("a CAS loser learns the current version", async () => {
      await nodes[2].dht.cas("cas-once", encode("first"), 0);
      await assert.rejects(
        nodes[5].dht.cas("cas-once", encode("second"), 0),
        (err: unknown) => err instanceof VersionConflictError && err.currentVersion === 1,
      );
      assert.equal(decode((await nodes[8].dht.get("cas-once"))?.value), "first");
    });

    await t.step("concurrent lock acquirers never both hold the lock", async () => {
      const key = "mutex";
      let holder: string | undefined;
      let overlaps = 0;
      const tokens: number[] = [];
      const acquirer = async (node: Node) => {
        let held = 0;
        for (let tries = 0; held < 2 && tries < 200; tries++) {
          let lease: DhtLease;
          try {
            lease = await node.dht.lock(key, { ttl: 5_000 });
          } catch (err) {
            if (!(err instanceof LockHeldError) && !(err instanceof QuorumError)) throw err;
            await sleep(5 + Math.random() * 30);
            continue;
          }
          if (holder !== undefined) overlaps++;
          holder = node.address;
          tokens.push(lease.fencingToken);
          await sleep(10);
          holder = undefined;
          await node.dht.unlock(lease);
          held++;
        }
      };
      await Promise.all(nodes.slice(4, 9).map(acquirer));
      assert.equal(overlaps, 0);
      assert.ok(tokens.length >= 5, `${tokens.length} acquisitions`);
      for (let i = 1; i < tokens.length; i++) {
        assert.ok(tokens[i] > tokens[i - 1], `tokens ${tokens}`);
      }
    });

    await t.step(
      "a crashed holder loses the lock at expiry; the next token is higher",
      async () => {
        const crashing = nodes.pop()!;
        const lease = await crashing.dht.lock("lease", { ttl: 1_500 });
        await crashing.close();
        const next = nodes[1];
        await assert.rejects(next.dht.lock("lease"), (err: unknown) => {
          assert.ok(err instanceof LockHeldError);
          assert.equal(err.holder, crashing.address);
          assert.equal(err.fencingToken, lease.fencingToken);
          assert.ok(err.expiresIn > 0 && err.expiresIn <= 1_500, `${err.expiresIn}`);
          return true;
        });
        await sleep(1_600);
        const taken = await next.dht.lock("lease");
        assert.ok(taken.fencingToken > lease.fencingToken);
        // Renew keeps the token; after unlock another node takes it.
        const renewed = await next.dht.renew(taken, { ttl: 3_000 });
        assert.equal(renewed.fencingToken, taken.fencingToken);
        await next.dht.unlock(renewed);
        const third = await nodes[2].dht.lock("lease");
        assert.ok(third.fencingToken > taken.fencingToken);
        // Another node cannot release it; releasing a lease released already is no error.
        await assert.rejects(
          nodes[3].dht.unlock({ ...third }),
          (err: unknown) => err instanceof LockHeldError && err.holder === nodes[2].address,
        );
        await nodes[2].dht.unlock(third);
        await next.dht.unlock(renewed);
      },
    );

    await t.step("patch chains reproduce the value", async () => {
      const key = "doc";
      await nodes[0].dht.put(key, encode(JSON.stringify({ n: 0, items: [] })));
      const first = (await nodes[6].dht.get(key))!;
      for (let i = 0; i < 8; i++) {
        const node = nodes[(i * 3) % nodes.length];
        const current = (await node.dht.get(key))!;
        await node.dht.patch(key, {
          json: [
            { op: "replace", path: "/n", value: i + 1 },
            { op: "add", path: "/items/-", value: `item ${i}` },
          ],
        }, current.version);
      }
      const latest = (await nodes[10].dht.get(key))!;
      assert.equal(latest.version, 9);
      assert.deepEqual(JSON.parse(decode(latest.value)), {
        n: 8,
        items: Array.from({ length: 8 }, (_, i) => `item ${i}`),
      });
      const changes = await nodes[12].dht.changes(key, first.version);
      assert.equal(changes.currentVersion, 9);
      assert.equal(changes.changes.length, 8);
      assert.equal(changes.value, undefined);
      const rebuilt = applyChanges(first, changes)!;
      assert.equal(rebuilt.version, 9);
      assert.deepEqual(rebuilt.value, latest.value);
      // Byte splices on a binary value, and a patch against a stale version.
      await nodes[1].dht.put("blob", new Uint8Array([1, 2, 3, 4]));
      await nodes[4].dht.patch("blob", {
        splices: [{ offset: 1, deleteCount: 2, insert: new Uint8Array([9, 9, 9]) }],
      }, 1);
      assert.deepEqual((await nodes[7].dht.get("blob"))?.value, new Uint8Array([1, 9, 9, 9, 4]));
      await assert.rejects(
        nodes[4].dht.patch("blob", { splices: [] }, 1),
        (err: unknown) => err instanceof VersionConflictError && err.currentVersion === 2,
      );
      // A full write clears the history: changes since then send the value.
      await nodes[3].dht.put(key, encode("{}"));
      const reset = await nodes[5].dht.changes(key, first.version);
      assert.equal(reset.currentVersion, 10);
      assert.equal(decode(reset.value?.value), "{}");
    });

    await t.step("owned records: only the owner writes", async () => {
      const [owner, other] = [nodes[3], nodes[14]];
      await owner.dht.put("profile", encode("mine"), { owned: true });
      const found = await other.dht.get("profile");
      assert.equal(found?.owner, owner.address);
      await assert.rejects(
        other.dht.put("profile", encode("stolen"), { owned: true }),
        (err: unknown) => err instanceof NackError && err.reason === NackReason.FORBIDDEN,
      );
      await assert.rejects(
        other.dht.put("profile", encode("stolen")),
        (err: unknown) => err instanceof NackError && err.reason === NackReason.FORBIDDEN,
      );
      assert.equal(decode((await nodes[0].dht.get("profile"))?.value), "mine");
    });

    await t.step("bad input is refused, never stored", async () => {
      const [a, b] = [nodes[0], nodes[1]];
      await assert.rejects(
        a.dht.put("big", new Uint8Array(64 * 1024 + 1)),
        (err: unknown) => err instanceof RecordError && /over the limit/.test(err.message),
      );
      assert.throws(() => dhtKey(new Uint8Array(5)), RecordError);
      const nack = (reason: NackReason) => (err: unknown) =>
        err instanceof NackError && err.reason === reason;
      // Malformed key.
      await assert.rejects(
        raw(
          b,
          Opcode.FIND_VALUE,
          toBinary(
            FindValueRequestSchema,
            create(FindValueRequestSchema, { key: new Uint8Array(5) }),
          ),
        ),
        nack(NackReason.MALFORMED),
      );
      // Oversized value, straight to a replica.
      const key = dhtKey("raw");
      const big = createRecord({ key, value: new Uint8Array(70_000), version: 1 });
      await assert.rejects(raw(b, Opcode.STORE, storeRequest(big)), nack(NackReason.TOO_LARGE));
      // Forged owner: a record claiming someone else's key, signed by another.
      const victim = generateIdentitySync({ difficulty: 0 });
      const forger = generateIdentitySync({ difficulty: 0 });
      const forged = createRecord({ key, value: encode("x"), version: 1, owner: forger });
      forged.owner = victim.publicKey;
      await assert.rejects(
        raw(b, Opcode.STORE, storeRequest(forged)),
        nack(NackReason.BAD_SIGNATURE),
      );
      // Stale version and a reused version with another value.
      await raw(
        b,
        Opcode.STORE,
        storeRequest(createRecord({ key, value: encode("v2"), version: 2 })),
      );
      await assert.rejects(
        raw(b, Opcode.STORE, storeRequest(createRecord({ key, value: encode("v1"), version: 1 }))),
        nack(NackReason.VERSION_CONFLICT),
      );
      await assert.rejects(
        raw(b, Opcode.STORE, storeRequest(createRecord({ key, value: encode("v2'"), version: 2 }))),
        nack(NackReason.VERSION_CONFLICT),
      );
      // Garbage payloads.
      for (const opcode of [Opcode.STORE, Opcode.DHT_CAS, Opcode.DHT_LOCK, Opcode.DHT_PATCH]) {
        await assert.rejects(
          raw(b, opcode, new Uint8Array([0xff, 0xff, 0xff])),
          nack(NackReason.MALFORMED),
        );
      }
      const record = create(RecordSchema, {
        key: new Uint8Array(3),
        value: encode("x"),
        version: 1n,
      });
      await assert.rejects(
        raw(b, Opcode.STORE, storeRequest(record)),
        nack(NackReason.MALFORMED),
      );
      // The node still serves.
      assert.equal(decode((await b.dht.get("key-1"))?.value), "value 1");
    });

    await t.step("a newly joined node closest to a key is handed its value", async () => {
      const key = dhtKey("handed");
      await nodes[0].dht.put(key, encode("over"));
      const identity = Array.from({ length: 300 }, () => generateIdentitySync({ difficulty: 0 }))
        .sort((a, b) => compareDistance(key, a.nodeId, b.nodeId))[0];
      const newcomer = await createNode({
        identity,
        listen: ["127.0.0.1:0"],
        puzzleDifficulty: 0,
        dht: { replicas: REPLICAS },
        bootstrap: nodes[5].peerAddresses,
      });
      nodes.push(newcomer);
      const holds = async () => {
        const data = await raw(newcomer, Opcode.FIND_VALUE, findValue(key));
        return decodePayload(FindValueReplySchema, data).record !== undefined;
      };
      for (let i = 0; i < 500 && !await holds(); i++) await sleep(10);
      assert.ok(await holds(), "the value reached the newcomer");
      // It now answers for the key as a replica.
      const { closest } = await nodes[9].dht.lookup(key);
      assert.ok(closest.slice(0, REPLICAS).includes(newcomer.address));
      assert.equal(decode((await nodes[9].dht.get(key))?.value), "over");
    });

    await t.step("every call takes an AbortSignal", async () => {
      const aborted = AbortSignal.abort(new Error("cancelled"));
      const node = nodes[4];
      const calls = [
        () => node.dht.get("key-1", { signal: aborted }),
        () => node.dht.put("key-1", encode("x"), { signal: aborted }),
        () => node.dht.cas("key-1", encode("x"), 1, { signal: aborted }),
        () => node.dht.patch("doc", { json: [] }, 1, { signal: aborted }),
        () => node.dht.changes("doc", 1, { signal: aborted }),
        () => node.dht.lock("mutex", { signal: aborted }),
        () => node.dht.lookup("key-1", { signal: aborted }),
      ];
      for (const call of calls) await assert.rejects(call(), /cancelled/);
      assert.equal(decode((await node.dht.get("key-1"))?.value), "value 1");
    });

    await t.step("a replica that lies about a version is outvoted", async () => {
      const key = dhtKey("honest");
      await nodes[0].dht.put(key, encode("truth"));
      const { closest } = await nodes[0].dht.lookup(key);
      const liar = nodes.find((n) => n.address === closest[0])!;
      const lie = createRecord({ key, value: encode("lie"), version: 100 });
      await raw(liar, Opcode.STORE, storeRequest(lie));
      for (const node of nodes) {
        const found = await node.dht.get(key);
        assert.equal(decode(found?.value), "truth", `read by ${node.address}`);
      }
    });
  } finally {
    await Promise.all([...nodes, ...(prober ? [prober] : [])].map((n) => n.close()));
  }
});
