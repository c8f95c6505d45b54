/**
 * The replica side of the DHT: answering peers' requests from this node's
 * {@linkcode DhtStore} ({@linkcode DhtReplica.serve}) and handing the
 * records it holds to contacts that join near their keys
 * ({@linkcode DhtReplica.handOff}). The DHT service (`lib/services/dht.ts`)
 * turns frames into `serve` calls and its answers into ACKs and NACKs; this
 * node's own client (`client.ts`) asks it directly.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  CasRequestSchema,
  ChangesReplySchema,
  ChangesRequestSchema,
  FindNodeReplySchema,
  FindNodeRequestSchema,
  FindValueReplySchema,
  FindValueRequestSchema,
  LockGrantSchema,
  LockRequestSchema,
  PatchRequestSchema,
  type PeerInfo,
  PeerInfoSchema,
  StoreReplySchema,
  StoreRequestSchema,
  UnlockReplySchema,
  UnlockRequestSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { compareDistance, NODE_ID_LENGTH } from "../identity/node_id.ts";
import type { Contact } from "../overlay/routing_table.ts";
import { decodePayload } from "../wire/opcodes.ts";
import { DHT_DEFAULTS } from "./defaults.ts";
import { refusal } from "./refusal.ts";
import { DhtStore } from "./store.ts";
import type { DhtHost, DhtOptions } from "./types.ts";

/** Newcomers waiting for their hand-off at most (the oldest is dropped past it). */
const HANDOFF_QUEUE = 256;
/** Records handed off between two yields to the event loop. */
const HANDOFF_BATCH = 64;
/** The nodes closest to a key that hand it to a newcomer (so it gets each about this many times, not R). */
const HANDOFF_SENDERS = 3;

/** A node's replica: its store, answering peers, handing records to newcomers. */
export class DhtReplica {
  /** The records and locks this node holds as a replica. */
  readonly store: DhtStore;
  readonly #host: DhtHost;
  readonly #replicas: number;
  readonly #timeout: number;
  /** Newly seen contacts waiting for the values they should hold. */
  readonly #handoffQueue: Contact[] = [];
  #handoffRunning = false;
  #closed = false;

  /** Creates the replica of a node (its DHT service does). */
  constructor(host: DhtHost, options: DhtOptions = {}) {
    this.#host = host;
    this.store = new DhtStore({
      ...options,
      clock: host.clock,
      nodeId: host.contact.nodeId,
      address: host.contact.address,
    });
    this.#replicas = options.replicas ?? host.table.k;
    this.#timeout = options.requestTimeout ?? DHT_DEFAULTS.requestTimeout;
  }

  /**
   * Answers a DHT request from `from` (an address): returns the ACK's data.
   *
   * @throws {NackError} to answer NACK (its reason, message and typed data).
   */
  serve(opcode: number, payload: Uint8Array, from: string): Uint8Array {
    const decode = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (err) {
        throw refusal(opcode, NackReason.MALFORMED, (err as Error).message);
      }
    };
    switch (opcode) {
      case Opcode.FIND_NODE: {
        const { target } = decode(() => decodePayload(FindNodeRequestSchema, payload));
        checkTarget(opcode, target, "FIND_NODE target");
        const peers = this.#peerInfos(target, from);
        return toBinary(FindNodeReplySchema, create(FindNodeReplySchema, { peers }));
      }
      case Opcode.FIND_VALUE: {
        const { key } = decode(() => decodePayload(FindValueRequestSchema, payload));
        checkTarget(opcode, key, "FIND_VALUE key");
        const reply = create(FindValueReplySchema, {
          record: this.store.get(key),
          peers: this.#peerInfos(key, from),
        });
        return toBinary(FindValueReplySchema, reply);
      }
      case Opcode.STORE: {
        const { record } = decode(() => decodePayload(StoreRequestSchema, payload));
        if (!record) throw refusal(opcode, NackReason.MALFORMED, "STORE without a record");
        return toBinary(StoreReplySchema, this.store.store(record, from));
      }
      case Opcode.DHT_CAS: {
        const request = decode(() => decodePayload(CasRequestSchema, payload));
        return toBinary(StoreReplySchema, this.store.cas(request, from));
      }
      case Opcode.DHT_PATCH: {
        const request = decode(() => decodePayload(PatchRequestSchema, payload));
        return toBinary(StoreReplySchema, this.store.preparePatch(request, from));
      }
      case Opcode.DHT_CHANGES: {
        const request = decode(() => decodePayload(ChangesRequestSchema, payload));
        return toBinary(
          ChangesReplySchema,
          this.store.changes(request.key, request.sinceVersion),
        );
      }
      case Opcode.DHT_LOCK: {
        const request = decode(() => decodePayload(LockRequestSchema, payload));
        return toBinary(LockGrantSchema, this.store.lock(request, from));
      }
      case Opcode.DHT_UNLOCK: {
        const request = decode(() => decodePayload(UnlockRequestSchema, payload));
        const released = this.store.unlock(request.key, request.fencingToken, from);
        return toBinary(UnlockReplySchema, create(UnlockReplySchema, { released }));
      }
      default:
        throw refusal(opcode, NackReason.UNKNOWN_OPCODE, `Opcode ${opcode} is not a DHT opcode`);
    }
  }

  /**
   * A contact joined the routing table: the records it should now hold are
   * handed to it, by the nodes among the three closest to each key (so a
   * newcomer gets each value about three times, not R times).
   */
  handOff(contact: Contact): void {
    if (this.#stopped || contact.listenAddrs.length === 0 || this.store.size === 0) return;
    if (this.#handoffQueue.length >= HANDOFF_QUEUE) this.#handoffQueue.shift();
    this.#handoffQueue.push(contact);
    if (!this.#handoffRunning) void this.#handoff();
  }

  /** Stops the hand-off work (the DHT service's cleanup). */
  close(): void {
    this.#closed = true;
    this.#handoffQueue.length = 0;
  }

  get #stopped(): boolean {
    return this.#closed || this.#host.signal.aborted;
  }

  async #handoff(): Promise<void> {
    this.#handoffRunning = true;
    try {
      while (this.#handoffQueue.length > 0 && !this.#stopped) {
        const newcomer = this.#handoffQueue.shift()!;
        let n = 0;
        for (const record of [...this.store.records()]) {
          if (++n % HANDOFF_BATCH === 0) await new Promise((r) => setTimeout(r, 0));
          if (this.#stopped) return;
          const near = this.#host.table.closest(
            record.key,
            this.#replicas,
            (c) => c.listenAddrs.length > 0, // replicas accept connections
          );
          const index = near.findIndex((c) => c.address === newcomer.address);
          if (index < 0) continue; // not among the R closest
          const others = near.filter((c) => c !== near[index]).slice(0, HANDOFF_SENDERS);
          const self = this.#host.contact.nodeId;
          const closer = others.filter((c) => compareDistance(record.key, c.nodeId, self) < 0);
          if (closer.length >= HANDOFF_SENDERS) continue; // others are closer: they hand it over
          const payload = toBinary(StoreRequestSchema, create(StoreRequestSchema, { record }));
          await this.#host.request(newcomer, Opcode.STORE, payload, {
            signal: this.#host.signal,
            timeout: this.#timeout,
          }).catch(() => {});
        }
      }
    } finally {
      this.#handoffRunning = false;
    }
  }

  #peerInfos(target: Uint8Array, except: string): PeerInfo[] {
    const k = this.#host.table.k;
    return this.#host.table.closest(
      target,
      k,
      (c) => c.address !== except && (c.listenAddrs.length > 0 || c.relays !== undefined),
    ).map((c) =>
      create(PeerInfoSchema, {
        address: c.identityKey,
        listenAddrs: c.listenAddrs,
        acceptsInbound: c.listenAddrs.length > 0,
        relays: (c.relays ?? []).map((r) => ({
          address: r.identityKey,
          listenAddrs: r.listenAddrs,
        })),
      })
    );
  }
}

function checkTarget(opcode: Opcode, target: Uint8Array, what: string): void {
  if (target.length !== NODE_ID_LENGTH) {
    throw refusal(
      opcode,
      NackReason.MALFORMED,
      `${what} must be ${NODE_ID_LENGTH} bytes, got ${target.length}`,
    );
  }
}
