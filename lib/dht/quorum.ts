/**
 * How the DHT client reaches a key's replicas: one request (to this node's
 * own replica, or through the host), iterative lookups seeded from the
 * routing table, the replica set of a key (the R closest nodes that accept
 * connections, this node included), the FIND_VALUE lookup that gathers
 * their copies, and the two phases of an atomic write. The client's calls
 * (`client.ts`) are built from these.
 *
 * A request that must not be cancelled by its caller (a decided COMMIT, an
 * ABORT, a read repair, releasing a lost lock) is sent with the host's
 * signal only: it stops when the node closes, not before.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  CasPhase,
  CasRequestSchema,
  FindNodeReplySchema,
  FindNodeRequestSchema,
  FindValueReplySchema,
  FindValueRequestSchema,
  type Record,
  StoreRequestSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { bytesEqual } from "../_bytes.ts";
import { QuorumError } from "./errors.ts";
import { compareDistance } from "../identity/node_id.ts";
import { iterativeLookup, type LookupResult } from "../overlay/lookup.ts";
import type { Contact } from "../overlay/routing_table.ts";
import { decodePayload } from "../wire/opcodes.ts";
import { DHT_DEFAULTS } from "./defaults.ts";
import { checkRecord, PROPOSAL_LENGTH } from "./record.ts";
import { chooseRecord, contactsOf, failure, majority, valueOf } from "./replies.ts";
import type { DhtReplica } from "./replica.ts";
import type { DhtHost, DhtOptions, DhtValue, DhtWriteResult } from "./types.ts";

/** What a FIND_VALUE lookup found: the copy to believe, the lookup, and each replica's copy. */
export interface FoundValue {
  best: Record | undefined;
  found: LookupResult;
  copies: Map<string, Record>;
}

/** The client's way to a key's replicas. */
export class Quorum {
  readonly #host: DhtHost;
  readonly #replica: DhtReplica;
  readonly #replicas: number;
  readonly #alpha: number;
  readonly #paths: number;
  readonly #timeout: number;
  readonly #readQuorum: number;
  readonly #reservationTime: number;

  /** Creates the client's quorum over `host`, asking `replica` for this node's own part. */
  constructor(host: DhtHost, replica: DhtReplica, options: DhtOptions) {
    this.#host = host;
    this.#replica = replica;
    this.#replicas = options.replicas ?? host.table.k;
    this.#alpha = options.alpha ?? DHT_DEFAULTS.alpha;
    this.#paths = options.disjointPaths ?? DHT_DEFAULTS.disjointPaths;
    this.#timeout = options.requestTimeout ?? DHT_DEFAULTS.requestTimeout;
    this.#readQuorum = options.readQuorum ?? DHT_DEFAULTS.readQuorum;
    this.#reservationTime = options.reservationTime ?? DHT_DEFAULTS.reservationTime;
  }

  /** The largest value a record may hold here, in bytes. */
  get maxValueSize(): number {
    return this.#replica.store.maxValueSize;
  }

  /**
   * One request: to this node's own replica, or through the host.
   *
   * @throws {NackError} when the replica refuses.
   */
  async send(
    contact: Contact,
    opcode: number,
    payload: Uint8Array,
    signal: AbortSignal = this.#host.signal,
    timeout: number = this.#timeout,
  ): Promise<Uint8Array> {
    signal.throwIfAborted();
    if (contact.address === this.#host.contact.address) {
      return this.#replica.serve(opcode, payload, contact.address);
    }
    return await this.#host.request(contact, opcode, payload, { signal, timeout });
  }

  /** Sends `opcode` with `payload` to every contact in `to`, settled. */
  sendAll(
    to: readonly Contact[],
    opcode: number,
    payload: Uint8Array,
    signal?: AbortSignal,
  ): Promise<PromiseSettledResult<Uint8Array>[]> {
    return Promise.allSettled(to.map((c) => this.send(c, opcode, payload, signal)));
  }

  /** Stores `record` at each of `to`, in the background (read repair). */
  repair(to: readonly Contact[], record: Record): void {
    const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
    for (const c of to) this.send(c, Opcode.STORE, payload).catch(() => {});
  }

  /**
   * One FIND_NODE: the contacts `contact` knows closest to `target` (up to
   * k, closest first, never the asker).
   */
  async findNode(
    contact: Contact,
    target: Uint8Array,
    signal: AbortSignal,
    timeout?: number,
  ): Promise<Contact[]> {
    const payload = toBinary(FindNodeRequestSchema, create(FindNodeRequestSchema, { target }));
    const data = await this.send(contact, Opcode.FIND_NODE, payload, signal, timeout);
    return contactsOf(decodePayload(FindNodeReplySchema, data).peers);
  }

  /** The k contacts closest to a 32-byte target, by iterative FIND_NODE. */
  findClosest(target: Uint8Array, signal: AbortSignal, alpha?: number): Promise<LookupResult> {
    return this.#lookup(
      target,
      signal,
      (contact) => this.findNode(contact, target, signal),
      undefined,
      alpha,
    );
  }

  /** The replicas of `key`: the R closest that accept connections, this node included. */
  async replicasOf(key: Uint8Array, signal: AbortSignal): Promise<Contact[]> {
    return this.replicaSet(key, await this.findClosest(key, signal));
  }

  /**
   * The replicas of `key` from a lookup: the R closest nodes that accept
   * connections, this node included when it is one of them, and those that
   * did not answer included too: they count as replicas that said no, so a
   * crashed replica does not let the next node in (which would move the
   * majority to a set another writer does not see).
   */
  replicaSet(key: Uint8Array, found: Pick<LookupResult, "closest" | "unreachable">): Contact[] {
    const candidates = [...found.closest, ...found.unreachable].filter((c) =>
      c.listenAddrs.length > 0
    );
    if (this.#host.contact.listenAddrs.length > 0) candidates.push(this.#host.contact);
    candidates.sort((a, b) => compareDistance(key, a.nodeId, b.nodeId));
    return candidates.slice(0, this.#replicas);
  }

  /** FIND_VALUE lookup; with `early`, stops once `readQuorum` replicas agree on the newest copy. */
  async findValue(key: Uint8Array, signal: AbortSignal, early: boolean): Promise<FoundValue> {
    const copies = new Map<string, Record>();
    const own = this.#replica.store.get(key);
    if (own) copies.set(this.#host.contact.address, own);
    let best: Record | undefined;
    const stop = () => {
      best = chooseRecord([...copies.values()]);
      if (!early || !best) return false;
      let agree = 0;
      for (const c of copies.values()) {
        if (c.version === best.version && bytesEqual(c.value, best.value)) agree++;
      }
      return agree >= this.#readQuorum;
    };
    const result = await this.#lookup(key, signal, async (contact) => {
      const payload = toBinary(FindValueRequestSchema, create(FindValueRequestSchema, { key }));
      const data = await this.send(contact, Opcode.FIND_VALUE, payload, signal);
      const reply = decodePayload(FindValueReplySchema, data);
      if (reply.record && bytesEqual(reply.record.key, key)) {
        try {
          checkRecord(reply.record, this.maxValueSize);
          copies.set(contact.address, reply.record);
        } catch {
          // A forged or malformed copy: ignored.
        }
      }
      return contactsOf(reply.peers);
    }, stop);
    stop();
    return { best, found: result, copies };
  }

  /**
   * A read (`Dht.get`): the newest copy the replicas hold, written back to a
   * majority first; with `any`, the first `readQuorum` agree on, the others
   * repaired in the background.
   *
   * @throws {QuorumError} when the copy cannot be written back to a majority.
   */
  async read(k: Uint8Array, any: boolean, signal: AbortSignal): Promise<DhtValue | undefined> {
    const { found, copies } = await this.findValue(k, signal, any);
    const replicas = this.replicaSet(k, found);
    const held = replicas.flatMap((c) => copies.has(c.address) ? [copies.get(c.address)!] : []);
    const best = chooseRecord(any ? [...copies.values()] : held);
    if (!best) return undefined;
    const same = (r: Record | undefined) =>
      r !== undefined && r.version === best.version && bytesEqual(r.value, best.value);
    const behind = replicas.filter((c) => !same(copies.get(c.address)));
    const holders = replicas.length - behind.length;
    const quorum = majority(replicas.length);
    if (any || holders >= quorum) {
      this.repair(behind, best); // in the background
      return valueOf(best);
    }
    const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record: best }));
    const results = await this.sendAll(behind, Opcode.STORE, payload, signal);
    signal.throwIfAborted();
    const written = results.filter((r) => r.status === "fulfilled").length;
    if (holders + written < quorum) {
      throw new QuorumError(
        `The read found version ${best.version} at ${holders} of ${replicas.length} replicas ` +
          `and wrote it back to ${written}; ${quorum} needed`,
      );
    }
    return valueOf(best);
  }

  /**
   * The two phases of an atomic write of `record`: PREPARE (built by
   * `prepare` for a proposal) at every replica of its key; COMMIT at all of
   * them if a majority prepared in time, else ABORT.
   *
   * @throws {VersionConflictError} or {@linkcode QuorumError} when it lost.
   */
  async atomic(
    record: Record,
    expected: bigint,
    signal: AbortSignal,
    prepare: (proposal: Uint8Array) => [number, Uint8Array],
  ): Promise<DhtWriteResult> {
    const replicas = await this.replicasOf(record.key, signal);
    if (replicas.length === 0) throw new QuorumError("No replica of the key can be reached");
    const proposal = crypto.getRandomValues(new Uint8Array(PROPOSAL_LENGTH));
    const quorum = majority(replicas.length);
    const started = this.#host.clock.now();
    const [opcode, payload] = prepare(proposal);
    const prepared = await this.sendAll(replicas, opcode, payload, signal);
    const reserved = replicas.filter((_, i) => prepared[i].status === "fulfilled");
    const phase = (p: CasPhase) =>
      toBinary(
        CasRequestSchema,
        create(CasRequestSchema, { record, expectedVersion: expected, proposal, phase: p }),
      );
    const inTime = this.#host.clock.now() - started < this.#reservationTime / 2;
    if (reserved.length >= quorum && inTime && !signal.aborted) {
      // Not cancellable: a decided write is committed everywhere it can be.
      const results = await this.sendAll(replicas, Opcode.DHT_CAS, phase(CasPhase.COMMIT));
      const committed = results.filter((r) => r.status === "fulfilled").length;
      if (committed >= quorum) return { version: Number(record.version), replicas: committed };
      throw new QuorumError(
        `The write was decided but only ${committed} of ${replicas.length} replicas committed ` +
          `it (${quorum} needed): its outcome is uncertain`,
      );
    }
    await this.sendAll(reserved, Opcode.DHT_CAS, phase(CasPhase.ABORT));
    signal.throwIfAborted();
    throw failure(prepared, replicas.length, "write", quorum);
  }

  #lookup(
    target: Uint8Array,
    signal: AbortSignal,
    query: (contact: Contact) => Promise<Contact[]>,
    stop?: () => boolean,
    alpha?: number,
  ): Promise<LookupResult> {
    const self = this.#host.contact.address;
    const k = this.#host.table.k;
    // Only nodes that accept connections are asked, replicas, results or
    // voters: a node that only dials out answers over its connection to the
    // asker, and would take a slot that another asker does not see.
    const exclude = (c: Contact) => c.address === self || c.listenAddrs.length === 0;
    const seeds = this.#host.table.closest(target, k, (c) => !exclude(c));
    return iterativeLookup(target, seeds, query, {
      k,
      alpha: alpha ?? this.#alpha,
      disjointPaths: this.#paths,
      exclude,
      stop,
      signal,
    });
  }
}
