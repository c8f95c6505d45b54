/**
 * METRICS, as a service: a node's counters, and (opt-in) answering a peer
 * that asks for them.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  type ConnectionMetrics,
  ConnectionMetricsSchema,
  CountersSchema,
  MetricsRequestSchema,
  MetricsSchema,
} from "../../gen/carrier/v1/control_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { formatAddress } from "../identity/address.ts";
import type { ConnectionCounters, PeerConnection, RequestOptions } from "../peer/connection.ts";
import type { ConnectionStats } from "../swarm/mod.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import { refuse } from "./refuse.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";
import { noShouts, type ShoutCounters } from "./shout.ts";
import type { WhisperCounters } from "./whisper.ts";
import type { RelayCounters } from "./relay.ts";

/** METRICS's opcode: a request, ACKed with the node's `Metrics`. */
export const METRICS_OPCODE = protocolOpcode(Opcode.METRICS, MetricsRequestSchema, {
  reply: MetricsSchema,
});

/**
 * A node's counters.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type NodeMetrics } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * await b.connect(a.peerAddresses[0]);
 * await b.ping(a.address);
 * const metrics: NodeMetrics = b.metrics();
 * assert.equal(metrics.connections.outbound, 1);
 * assert.deepEqual(metrics.peers.map((p) => p.address), [a.address]);
 * assert(metrics.totals.framesReceived >= 1);
 * ```
 */
export interface NodeMetrics {
  /** Totals over every connection the node has had. */
  totals: ConnectionCounters;
  /** Connection counts and refused handshakes. */
  connections: ConnectionStats;
  /** Each open connection's counters. */
  peers: { address: string; counters: ConnectionCounters }[];
  /** SHOUT counters (zero in metrics read from a peer). */
  shouts: ShoutCounters;
  /** WHISPERs delivered here, relayed for others, refused (zero in metrics read from a peer). */
  whispers: WhisperCounters;
  /** Reservations and circuits, as a relay and as a client (zero in metrics read from a peer). */
  relay: RelayCounters;
}

/**
 * Options of the METRICS service (the node passes `serveMetrics` and the
 * counters it does not keep here).
 *
 * @example
 * ```ts
 * import type { MetricsInit } from "./metrics.ts";
 * import type { NodeMetrics } from "@carrier/p2p";
 * const counters = (): Pick<NodeMetrics, "connections" | "shouts" | "whispers" | "relay"> => {
 *   throw new Error("the node's");
 * };
 * const init: MetricsInit = { serve: true, counters };
 * void init;
 * ```
 */
export interface MetricsInit {
  /** Answer peers' METRICS requests (otherwise NACK `FORBIDDEN`). @default {false} */
  serve?: boolean;
  /** The counters other parts of the node keep: connections, SHOUTs, WHISPERs. */
  counters(): Pick<NodeMetrics, "connections" | "shouts" | "whispers" | "relay">;
}

/** The METRICS service (see the module documentation). */
export interface MetricsService extends Service {
  /** This node's counters now: the totals over every connection it has had, and each open one's. */
  snapshot(): NodeMetrics;
  /**
   * Asks a peer for its metrics; it answers only if it runs with
   * `serveMetrics`, else the request fails with NACK `FORBIDDEN`.
   */
  request(peer: PeerConnection, options?: RequestOptions): Promise<NodeMetrics>;
}

/**
 * The METRICS service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { metrics } from "./metrics.ts";
 * import type { NodeMetrics } from "@carrier/p2p";
 * const factory = metrics({ serve: false, counters: () => ({} as NodeMetrics) });
 * assert.equal(typeof factory, "function");
 * ```
 */
export function metrics(init: MetricsInit): ServiceFactory<MetricsService> {
  return (host) => new Metrics(host, init);
}

class Metrics implements MetricsService {
  readonly name = "metrics";
  readonly opcodes = [METRICS_OPCODE];
  readonly #host: ServiceHost;
  readonly #init: MetricsInit;
  /** Counters of the connections that have closed. */
  readonly #closed: ConnectionCounters = zeroCounters();

  constructor(host: ServiceHost, init: MetricsInit) {
    this.#host = host;
    this.#init = init;
  }

  snapshot(): NodeMetrics {
    const totals = { ...this.#closed };
    const peers = this.#host.connections.all().map((p) => ({
      address: p.address,
      counters: p.counters,
    }));
    for (const { counters } of peers) add(totals, counters);
    return { totals, peers, ...this.#init.counters() };
  }

  peerDisconnect(peer: PeerConnection): void {
    add(this.#closed, peer.counters);
  }

  async request(peer: PeerConnection, options: RequestOptions = {}): Promise<NodeMetrics> {
    const host = this.#host;
    if (host.signal.aborted) throw host.signal.reason;
    const payload = toBinary(
      MetricsRequestSchema,
      create(MetricsRequestSchema, { includeConnections: true }),
    );
    const signal = options.signal ? AbortSignal.any([host.signal, options.signal]) : host.signal;
    const data = await peer.request(Opcode.METRICS, payload, { ...options, signal });
    const m = decodePayload(MetricsSchema, data);
    const counters = (c?: typeof m.node): ConnectionCounters => ({ // rtt: not sent
      bytesSent: Number(c?.bytesSent ?? 0),
      bytesReceived: Number(c?.bytesReceived ?? 0),
      framesSent: Number(c?.framesSent ?? 0),
      framesReceived: Number(c?.framesReceived ?? 0),
      drops: Number(c?.drops ?? 0),
      rtt: 0,
    });
    return {
      totals: counters(m.node),
      connections: {
        outbound: 0,
        inbound: m.connections,
        dialing: 0,
        pendingHandshakes: 0,
        rejectedHandshakes: Number(m.rejectedHandshakes),
      },
      peers: m.peers.map((p) => ({
        address: formatAddress(p.address),
        counters: { ...counters(p.counters), rtt: p.rttMicros / 1000 },
      })),
      whispers: { delivered: 0, relayed: 0, rejected: 0 },
      shouts: noShouts(), // a peer's metrics do not carry them
      relay: {
        reservations: 0,
        circuits: 0,
        circuitsTotal: 0,
        bytesRelayed: 0,
        refused: 0,
        relays: 0,
        relayedConnections: 0,
      },
    };
  }

  receive({ frame, peer }: ReceiveContext): void {
    if (frame.id === 0) return;
    // "Any request" refusals come first: a payload that does not parse is MALFORMED.
    let include = false;
    try {
      include = decodePayload(MetricsRequestSchema, frame.payload).includeConnections;
    } catch (err) {
      refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    if (!this.#init.serve) {
      refuse(frame, peer, NackReason.FORBIDDEN, "metrics are not served by this node");
      return;
    }
    const m = this.snapshot();
    const counters = (c: ConnectionCounters) =>
      create(CountersSchema, {
        bytesSent: BigInt(c.bytesSent),
        bytesReceived: BigInt(c.bytesReceived),
        framesSent: BigInt(c.framesSent),
        framesReceived: BigInt(c.framesReceived),
        drops: BigInt(c.drops),
      });
    const open = this.#host.connections.all();
    const peers: ConnectionMetrics[] = include
      ? open.map((p) =>
        create(ConnectionMetricsSchema, {
          address: p.identityKey,
          counters: counters(p.counters),
          rttMicros: Math.round(p.counters.rtt * 1000),
        })
      )
      : [];
    const reply = create(MetricsSchema, {
      node: counters(m.totals),
      connections: open.length,
      rejectedHandshakes: BigInt(m.connections.rejectedHandshakes),
      peers,
    });
    peer.ack(frame, toBinary(MetricsSchema, reply)).catch(() => {});
  }
}

/** Counters at zero. */
function zeroCounters(): ConnectionCounters {
  return { bytesSent: 0, bytesReceived: 0, framesSent: 0, framesReceived: 0, drops: 0, rtt: 0 };
}

/** Adds `counters` (but its rtt) to `totals`. */
function add(totals: ConnectionCounters, counters: ConnectionCounters): void {
  totals.bytesSent += counters.bytesSent;
  totals.bytesReceived += counters.bytesReceived;
  totals.framesSent += counters.framesSent;
  totals.framesReceived += counters.framesReceived;
  totals.drops += counters.drops;
}
