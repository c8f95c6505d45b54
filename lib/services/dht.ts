/**
 * The DHT as a service: {@linkcode dht}`(init)` is the factory a node runs
 * over its host. The service declares the DHT's opcodes, answers each such
 * request from this node's replica (ACK with the reply, NACK with the
 * replica's `NackError`), hands records to contacts that join the routing
 * table, republishes what this node wrote, and exposes the client,
 * {@linkcode Dht}, that `node.dht` is.
 *
 * @module
 */
import { NackReason } from "../../gen/carrier/v1/frame_pb.ts";
import { Dht } from "../dht/client.ts";
import { DHT_DEFAULTS } from "../dht/defaults.ts";
import { DHT_OPCODES } from "../dht/opcodes.ts";
import { DhtReplica } from "../dht/replica.ts";
import type { DhtHost, DhtOptions } from "../dht/types.ts";
import { NackError } from "../errors.ts";
import type { Contact } from "../overlay/routing_table.ts";
import type { OpcodeSpec } from "../wire/opcodes.ts";
import type { ReceiveContext, Service } from "../service.ts";

export type { DhtHost } from "../dht/types.ts";

/**
 * The DHT service of a node: its opcodes, its hooks, and its client.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dht, type DhtService } from "./dht.ts";
 * import { generateIdentitySync } from "@carrier/p2p";
 * import { contactOf, DHT_OPCODES, RoutingTable } from "@carrier/p2p/protocol";
 * import { ManualClock } from "@carrier/p2p/testing";
 * const identity = generateIdentitySync({ difficulty: 0 });
 * const closing = new AbortController();
 * const service: DhtService = dht({ replicas: 3 })({
 *   contact: contactOf(identity.publicKey, identity.address, ["mem:me"]),
 *   identity,
 *   table: new RoutingTable(identity.nodeId),
 *   clock: new ManualClock(),
 *   signal: closing.signal,
 *   request: () => Promise.reject(new Error("no peers")),
 *   error: () => {},
 * });
 * assert.deepEqual(service.opcodes, DHT_OPCODES);
 * service.startup();
 * await service.client.put("key", "value"); // alone: this node is the only replica
 * closing.abort(new Error("closed"));
 * service.cleanup();
 * await assert.rejects(service.client.get("key"), { message: "closed" });
 * ```
 */
export interface DhtService extends Service {
  /** `"dht"`. */
  readonly name: string;
  /** The DHT's opcodes ({@linkcode DHT_OPCODES}). */
  readonly opcodes: readonly OpcodeSpec[];
  /** The client: what `node.dht` is. */
  readonly client: Dht;
  /**
   * A DHT request: ACKed with the replica's answer, NACKed with its
   * refusal, or NACKed `INTERNAL` (and reported) when it fails otherwise.
   * A frame with id 0 is not answered.
   */
  receive(context: ReceiveContext): void;
  /** Starts republishing what this node writes, every `republishInterval`. */
  startup(): void;
  /** A contact joined the routing table: hands it the records it should now hold. */
  contactAdded(contact: Contact): void;
  /** Stops the republishing timer and the hand-off. */
  cleanup(): void;
}

/**
 * The DHT service's factory: `dht(init)(host)` is what a node runs (a
 * {@linkcode ServiceFactory} of a {@linkcode DhtService}, over the narrow
 * {@linkcode DhtHost} part of its host).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dht, type DhtService } from "./dht.ts";
 * import type { ServiceFactory } from "@carrier/p2p";
 * const factory: ServiceFactory<DhtService> = dht({ replicas: 5, requestTimeout: 2_000 });
 * assert.equal(typeof factory, "function");
 * ```
 */
export function dht(init: DhtOptions = {}): (host: DhtHost) => DhtService {
  return (host) => new DhtNodeService(host, init);
}

const services = new WeakMap<Dht, DhtNodeService>();

/**
 * The replica behind a node's DHT client (for tests and simulations, which
 * ask a node's own store directly: `replicaOf(node.dht).serve(...)`).
 *
 * @throws {TypeError} for a client no DHT service made.
 */
export function replicaOf(client: Dht): DhtReplica {
  const service = services.get(client);
  if (!service) throw new TypeError("This Dht was not made by the DHT service");
  return service.replica;
}

/** The DHT service: a replica and a client over one host. */
class DhtNodeService implements DhtService {
  readonly name = "dht";
  readonly opcodes: readonly OpcodeSpec[] = DHT_OPCODES;
  readonly client: Dht;
  readonly replica: DhtReplica;
  readonly #host: DhtHost;
  readonly #republishInterval: number;
  #republishTimer: number | undefined;
  #closed = false;

  constructor(host: DhtHost, init: DhtOptions) {
    this.#host = host;
    this.replica = new DhtReplica(host, init);
    this.client = new Dht(host, this.replica, init);
    this.#republishInterval = init.republishInterval ??
      (init.defaultTtl ?? DHT_DEFAULTS.defaultTtl) / 2;
    services.set(this.client, this);
  }

  receive({ frame, peer }: ReceiveContext): void {
    if (frame.id === 0) return;
    try {
      const data = this.replica.serve(frame.opcode, frame.payload, peer.address);
      peer.ack(frame, data).catch(() => {});
    } catch (err) {
      if (err instanceof NackError) {
        peer.nack(frame, err.reason, err.message, err.data).catch(() => {});
      } else {
        this.#host.error(err, `DHT opcode ${frame.opcode}`);
        peer.nack(frame, NackReason.INTERNAL, (err as Error).message).catch(() => {});
      }
    }
  }

  startup(): void {
    if (this.#republishTimer !== undefined || this.#stopped) return;
    const tick = () => {
      this.#republishTimer = this.#host.clock.setTimeout(() => {
        this.#republishTimer = undefined;
        if (this.#stopped) return;
        this.client.republish().catch(() => {}).finally(() => {
          if (!this.#stopped) tick();
        });
      }, this.#republishInterval);
    };
    tick();
  }

  contactAdded(contact: Contact): void {
    this.replica.handOff(contact);
  }

  cleanup(): void {
    this.#closed = true;
    if (this.#republishTimer !== undefined) this.#host.clock.clearTimeout(this.#republishTimer);
    this.#republishTimer = undefined;
    this.replica.close();
  }

  get #stopped(): boolean {
    return this.#closed || this.#host.signal.aborted;
  }
}
