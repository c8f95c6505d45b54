/**
 * The relay service (see `proto/carrier/v1/relay.proto`), both roles:
 *
 * - **Relay** (`serve`, off by default): grants reservations to peers that
 *   ask, and bridges circuits to them, within {@linkcode RelayLimits}: a
 *   request over a limit gets a typed NACK, a circuit over its budget is
 *   closed with DISCONNECT `LIMIT_REACHED` at both ends.
 * - **Client**: while the node does not accept connections, it keeps
 *   reservations at up to `maxRelays` connected peers that announce they
 *   relay (`serves_relay` in their handshake), renews them at half their
 *   lifetime, and announces them (the address book's relays: handshakes,
 *   IDENTIFY, the DHT's contacts); it accepts the circuits they announce
 *   (`incoming`) as inbound connections; and it connects to a node by key
 *   through one of that node's relays ({@linkcode RelayService.connect}).
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { DisconnectReason } from "../../gen/carrier/v1/control_pb.ts";
import { AckSchema, NackReason, NackSchema, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import {
  CircuitInfoSchema,
  type CircuitLimits,
  CircuitLimitsSchema,
  type IncomingRequest,
  RelayDataSchema,
  RelayRequestSchema,
  ReservationSchema,
} from "../../gen/carrier/v1/relay_pb.ts";
import { toHex } from "../_bytes.ts";
import type { TimerHandle } from "../clock.ts";
import { errorMessage } from "../_error_message.ts";
import { NackError, NodeClosedError, TimeoutError } from "../errors.ts";
import { formatAddress } from "../identity/address.ts";
import type { Contact } from "../overlay/routing_table.ts";
import type { PeerConnection } from "../peer/connection.ts";
import type { RelayHint } from "../secure/_handshake_payload.ts";
import type { SecureChannel } from "../secure/channel.ts";
import { CircuitStream, FrameChannel } from "../swarm/circuit.ts";
import { encodeAck } from "../wire/ack.ts";
import { createFrame, encodeFrame, type Frame } from "../wire/frame.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";
import { refuse } from "./refuse.ts";

/** RELAY's opcode: a request, ACKed with a `Reservation`, a `CircuitInfo` or nothing. */
export const RELAY_OPCODE = protocolOpcode(Opcode.RELAY, RelayRequestSchema, {
  reply: ReservationSchema,
});

/** RELAY_DATA's opcode: one-way, only on circuit connections (dropped on a peer connection). */
export const RELAY_DATA_OPCODE = protocolOpcode(Opcode.RELAY_DATA, RelayDataSchema, {
  oneWay: true,
});

/**
 * What a relay allows (see {@linkcode RelayInit.serve}).
 *
 * @example
 * ```ts
 * import type { RelayLimits } from "@carrier/p2p";
 * const small: RelayLimits = { maxReservations: 16, maxCircuitBytes: 1 << 20 };
 * void small;
 * ```
 */
export interface RelayLimits {
  /** Reservations held at once. @default {128} */
  maxReservations?: number;
  /** How long a reservation lasts, in seconds (renewed by its holder). @default {3600} */
  reservationTtl?: number;
  /** Circuits open at once. @default {64} */
  maxCircuits?: number;
  /** Circuits open at once per node, as dialler or target. @default {4} */
  maxCircuitsPerPeer?: number;
  /** Bytes one circuit may carry (both directions); 0: no limit. @default {67108864} (64 MiB) */
  maxCircuitBytes?: number;
  /** Seconds one circuit may stay open; 0: no limit. @default {1800} */
  maxCircuitSeconds?: number;
}

/**
 * The defaults of {@linkcode RelayLimits}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_RELAY_LIMITS } from "@carrier/p2p";
 * assert.equal(DEFAULT_RELAY_LIMITS.maxCircuitsPerPeer, 4);
 * ```
 */
export const DEFAULT_RELAY_LIMITS: Readonly<Required<RelayLimits>> = Object.freeze({
  maxReservations: 128,
  reservationTtl: 3600,
  maxCircuits: 64,
  maxCircuitsPerPeer: 4,
  maxCircuitBytes: 64 * 1024 * 1024,
  maxCircuitSeconds: 1800,
});

/**
 * Options of the relay service (`NodeOptions.relay`).
 *
 * @example
 * ```ts
 * import type { RelayInit } from "@carrier/p2p";
 * const relay: RelayInit = { serve: { maxReservations: 16 } };
 * void relay;
 * ```
 */
export interface RelayInit {
  /**
   * Relay for others: `true` with {@linkcode DEFAULT_RELAY_LIMITS}, or
   * limits. A relay should accept connections (a public node).
   *
   * @default {false}
   */
  serve?: boolean | RelayLimits;
  /**
   * How many relays to hold reservations at while this node does not
   * accept connections; 0 never reserves.
   *
   * @default {2}
   */
  maxRelays?: number;
  /** Relayed inbound connections at once. @default {16} */
  maxRelayedInbound?: number;
}

/** How long a circuit's other end has to accept, and a circuit request to be answered, in ms. */
export const CIRCUIT_TIMEOUT = 10_000;

/** How long a node waits before it asks again for a reservation it lost or could not get, in ms. */
const RESERVE_RETRY = 5_000;

/** Peers that refused a reservation, remembered (bounded) so as not to ask again soon. */
const MAX_REFUSED = 256;

/**
 * The relay service's counters (`node.metrics().relay`).
 *
 * @example
 * ```ts
 * import type { RelayCounters } from "@carrier/p2p";
 * const none: RelayCounters = {
 *   reservations: 0,
 *   circuits: 0,
 *   circuitsTotal: 0,
 *   bytesRelayed: 0,
 *   refused: 0,
 *   relays: 0,
 *   relayedConnections: 0,
 * };
 * void none;
 * ```
 */
export interface RelayCounters {
  /** As a relay: reservations held for others now. */
  reservations: number;
  /** As a relay: circuits open now. */
  circuits: number;
  /** As a relay: circuits bridged since start. */
  circuitsTotal: number;
  /** As a relay: RELAY_DATA bytes forwarded (both directions), since start. */
  bytesRelayed: number;
  /** As a relay: reservation and circuit requests refused, since start. */
  refused: number;
  /** As a client: relays this node holds reservations at now. */
  relays: number;
  /** As a client: relayed connections open now. */
  relayedConnections: number;
}

/** What the node's relay service offers the node. */
export interface RelayService extends Service {
  /** Its counters. */
  counters(): RelayCounters;
  /** The relays this node holds reservations at. */
  readonly relays: RelayHint[];
  /**
   * Connects to `contact` through one of `relays` (its relays, the first
   * that works): a circuit, then the Noise XX handshake end to end inside it.
   *
   * @throws {NackError} the relay's refusal (UNREACHABLE: no reservation; RATE_LIMITED; FORBIDDEN).
   * @throws {DialError} and the handshake's errors as the dials fail.
   */
  connect(
    contact: Pick<Contact, "identityKey" | "address">,
    relays: readonly RelayHint[],
    options?: { signal?: AbortSignal; ephemeral?: boolean },
  ): Promise<PeerConnection>;
  /** A circuit connection arrived at this node (as a relay). */
  circuit(channel: SecureChannel): void;
}

/** What the node lends the service beyond a {@linkcode ServiceHost}. */
export interface RelayHost {
  /** Dials `relay` for a circuit connection. */
  dialCircuit(relay: RelayHint, signal: AbortSignal): Promise<SecureChannel>;
  /** Connects to `peer` over the stream `open` makes. */
  connectThrough(
    peer: Pick<Contact, "identityKey" | "address">,
    open: (signal: AbortSignal) => Promise<CircuitStream>,
    options: { signal?: AbortSignal; ephemeral?: boolean },
  ): Promise<PeerConnection>;
  /** Accepts a circuit's stream as an inbound connection. */
  acceptThrough(stream: CircuitStream): Promise<void>;
}

/**
 * The relay service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { relay } from "./relay.ts";
 * assert.equal(typeof relay({ serve: true }, {} as never), "function");
 * ```
 */
export function relay(init: RelayInit, lend: RelayHost): ServiceFactory<RelayService> {
  return (host) => new Relay(host, init, lend);
}

interface Held {
  peer: PeerConnection;
  expires: number;
}

interface Waiting {
  target: string;
  resolve(frames: FrameChannel, frame: Frame): void;
}

interface Mine {
  hint: RelayHint;
  peer: PeerConnection;
  renew: TimerHandle | undefined;
}

class Relay implements RelayService {
  readonly name = "relay";
  readonly opcodes = [RELAY_OPCODE, RELAY_DATA_OPCODE];
  readonly #host: ServiceHost;
  readonly #lend: RelayHost;
  readonly #limits: Required<RelayLimits> | undefined;
  readonly #maxRelays: number;
  readonly #maxInbound: number;
  // As a relay.
  readonly #reservations = new Map<string, Held>();
  readonly #waiting = new Map<string, Waiting>();
  readonly #circuits = new Set<FrameChannel>();
  readonly #perPeer = new Map<string, number>();
  // As a client.
  readonly #mine = new Map<string, Mine>();
  readonly #asking = new Set<string>();
  readonly #refused = new Set<string>();
  #relayedInbound = 0;
  #retry: TimerHandle | undefined;
  #circuitsTotal = 0;
  #bridged = 0;
  #bytesRelayed = 0;
  #refusedCount = 0;

  constructor(host: ServiceHost, init: RelayInit, lend: RelayHost) {
    this.#host = host;
    this.#lend = lend;
    const serve = init.serve ?? false;
    this.#limits = serve === false
      ? undefined
      : { ...DEFAULT_RELAY_LIMITS, ...(serve === true ? {} : serve) };
    this.#maxRelays = init.maxRelays ?? 2;
    this.#maxInbound = init.maxRelayedInbound ?? 16;
  }

  counters(): RelayCounters {
    return {
      reservations: this.#reservations.size,
      circuits: this.#bridged,
      circuitsTotal: this.#circuitsTotal,
      bytesRelayed: this.#bytesRelayed,
      refused: this.#refusedCount,
      relays: this.#mine.size,
      relayedConnections: this.#host.connections.all().filter((p) => p.channel.stream.relay)
        .length,
    };
  }

  get relays(): RelayHint[] {
    return [...this.#mine.values()].map((m) => m.hint);
  }

  startup(): void {
    this.#host.addresses.onChange(() => this.#maintain());
  }

  cleanup(): void {
    const clock = this.#host.clock;
    if (this.#retry !== undefined) clock.clearTimeout(this.#retry);
    for (const m of this.#mine.values()) if (m.renew !== undefined) clock.clearTimeout(m.renew);
    for (const c of this.#circuits) c.close();
    this.#circuits.clear();
  }

  peerConnect(): void {
    this.#maintain();
  }

  peerDisconnect(peer: PeerConnection): void {
    const held = this.#reservations.get(peer.address);
    if (held?.peer === peer) this.#reservations.delete(peer.address);
    const mine = this.#mine.get(peer.address);
    if (mine?.peer === peer) {
      if (mine.renew !== undefined) this.#host.clock.clearTimeout(mine.renew);
      this.#mine.delete(peer.address);
      this.#announce();
      this.#maintain();
    }
  }

  // ---- client: reservations ----

  /** Reserves at more relays while this node accepts no connections and has too few. */
  #maintain(): void {
    const { addresses, signal, connections } = this.#host;
    if (signal.aborted || this.#maxRelays === 0) return;
    if (addresses.acceptsInbound) {
      if (this.#mine.size > 0) {
        // Reachable directly now: relays are not needed.
        for (const m of this.#mine.values()) {
          if (m.renew !== undefined) this.#host.clock.clearTimeout(m.renew);
        }
        this.#mine.clear();
        this.#announce();
      }
      return;
    }
    const wanted = this.#maxRelays - this.#mine.size - this.#asking.size;
    if (wanted <= 0) return;
    const candidates = connections.all().filter((p) =>
      p.channel.remote.servesRelay && p.channel.remote.acceptsInbound &&
      p.channel.remote.listenAddrs.length > 0 && p.channel.stream.relay === undefined &&
      !this.#mine.has(p.address) && !this.#asking.has(p.address) && !this.#refused.has(p.address)
    ).slice(0, wanted);
    for (const peer of candidates) void this.#reserve(peer);
  }

  async #reserve(peer: PeerConnection): Promise<void> {
    const { signal, clock } = this.#host;
    this.#asking.add(peer.address);
    try {
      const data = await peer.request(
        Opcode.RELAY,
        toBinary(
          RelayRequestSchema,
          create(RelayRequestSchema, {
            kind: { case: "reserve", value: {} },
          }),
        ),
        { signal },
      );
      const reservation = decodePayload(ReservationSchema, data);
      if (peer.isClosed || this.#host.addresses.acceptsInbound) return;
      const previous = this.#mine.get(peer.address);
      if (previous?.renew !== undefined) clock.clearTimeout(previous.renew);
      const ttl = Math.max(reservation.ttlSeconds, 10) * 1000;
      const mine: Mine = {
        hint: { identityKey: peer.identityKey, listenAddrs: [...peer.channel.remote.listenAddrs] },
        peer,
        renew: clock.setTimeout(() => {
          mine.renew = undefined;
          void this.#reserve(peer);
        }, ttl / 2),
      };
      this.#mine.set(peer.address, mine);
      if (previous === undefined) this.#announce();
    } catch (err) {
      if (signal.aborted) return;
      const lost = this.#mine.get(peer.address);
      if (lost !== undefined) {
        this.#mine.delete(peer.address);
        this.#announce();
      }
      if (err instanceof NackError) {
        this.#refused.add(peer.address);
        if (this.#refused.size > MAX_REFUSED) {
          this.#refused.delete(this.#refused.values().next().value!);
        }
      }
      this.#host.error(err, `relay reservation at ${peer.address}`);
      this.#scheduleRetry();
    } finally {
      this.#asking.delete(peer.address);
    }
  }

  #scheduleRetry(): void {
    if (this.#retry !== undefined || this.#host.signal.aborted) return;
    this.#retry = this.#host.clock.setTimeout(() => {
      this.#retry = undefined;
      this.#refused.clear();
      this.#maintain();
    }, RESERVE_RETRY);
  }

  #announce(): void {
    const relays = this.relays;
    this.#host.addresses.setRelays(relays);
    this.#host.emit("relays", { relays: relays.map((r) => formatAddress(r.identityKey)) });
  }

  // ---- client: connecting through a relay ----

  async connect(
    contact: Pick<Contact, "identityKey" | "address">,
    relays: readonly RelayHint[],
    options: { signal?: AbortSignal; ephemeral?: boolean } = {},
  ): Promise<PeerConnection> {
    if (this.#host.signal.aborted) throw new NodeClosedError("Cannot connect: the node is closed");
    let last: unknown = new NackError(`${contact.address} names no relay`, {
      opcode: Opcode.RELAY,
      reason: NackReason.UNREACHABLE,
    });
    for (const r of relays) {
      try {
        return await this.#lend.connectThrough(
          contact,
          (signal) => this.#openCircuit(r, contact, signal),
          { signal: options.signal, ephemeral: options.ephemeral ?? true },
        );
      } catch (err) {
        last = err;
        if (options.signal?.aborted || this.#host.signal.aborted) throw err;
      }
    }
    throw last;
  }

  async #openCircuit(
    r: RelayHint,
    target: Pick<Contact, "identityKey" | "address">,
    signal: AbortSignal,
  ): Promise<CircuitStream> {
    const relayAddress = formatAddress(r.identityKey);
    const channel = await this.#lend.dialCircuit(r, signal);
    const frames = new FrameChannel(channel);
    try {
      const info = await this.#ask(frames, {
        case: "connect",
        value: { target: target.identityKey },
      }, relayAddress);
      const peer = decodePayload(CircuitInfoSchema, info).peer;
      if (formatAddress(peer) !== target.address) {
        throw new NackError(`The relay ${relayAddress} bridged another node`, {
          opcode: Opcode.RELAY,
          reason: NackReason.INTERNAL,
        });
      }
      return new CircuitStream(frames, relayAddress, target.address);
    } catch (err) {
      frames.close();
      throw err;
    }
  }

  /** Sends one RELAY request on a circuit connection and reads its reply. */
  async #ask(
    frames: FrameChannel,
    kind: { case: "connect"; value: { target: Uint8Array } } | {
      case: "accept";
      value: { circuitId: Uint8Array };
    },
    relayAddress: string,
  ): Promise<Uint8Array> {
    const payload = toBinary(RelayRequestSchema, create(RelayRequestSchema, { kind }));
    await frames.write(encodeFrame(createFrame({ opcode: Opcode.RELAY, id: 1, payload })));
    const reply = await within(
      this.#host,
      frames.next(),
      CIRCUIT_TIMEOUT,
      () => new TimeoutError(`The relay ${relayAddress} did not answer RELAY ${kind.case} in time`),
    );
    if (reply?.opcode === Opcode.ACK && reply.id === 1) {
      return decodePayload(AckSchema, reply.payload).data;
    }
    if (reply?.opcode === Opcode.NACK && reply.id === 1) throw nackOf(reply, relayAddress);
    throw new NackError(`The relay ${relayAddress} closed the circuit connection`, {
      opcode: Opcode.RELAY,
      reason: NackReason.UNSPECIFIED,
    });
  }

  /** The relay `peer` announces a circuit from `request.from`: dial in and accept it. */
  async #incoming(frame: Frame, peer: PeerConnection, request: IncomingRequest): Promise<void> {
    const mine = this.#mine.get(peer.address);
    if (mine === undefined || mine.peer !== peer) {
      return refuse(frame, peer, NackReason.FORBIDDEN, "no reservation at this relay");
    }
    if (this.#relayedInbound >= this.#maxInbound) {
      return refuse(frame, peer, NackReason.RATE_LIMITED, "relayed inbound connections at limit");
    }
    this.#relayedInbound++;
    try {
      await peer.ack(frame).catch(() => {});
      const signal = AbortSignal.any([this.#host.signal, AbortSignal.timeout(CIRCUIT_TIMEOUT)]);
      const channel = await this.#lend.dialCircuit(mine.hint, signal);
      const frames = new FrameChannel(channel);
      try {
        await this.#ask(frames, {
          case: "accept",
          value: { circuitId: request.circuitId },
        }, peer.address);
      } catch (err) {
        frames.close();
        throw err;
      }
      const stream = new CircuitStream(frames, peer.address, formatAddress(request.from));
      await this.#lend.acceptThrough(stream);
    } catch (err) {
      if (!this.#host.signal.aborted) this.#host.error(err, `relayed circuit via ${peer.address}`);
    } finally {
      this.#relayedInbound--;
    }
  }

  // ---- relay ----

  async receive({ frame, peer }: ReceiveContext): Promise<void> {
    if (frame.opcode === Opcode.RELAY_DATA) return; // only a circuit connection carries it
    let request;
    try {
      request = decodePayload(RelayRequestSchema, frame.payload);
    } catch (err) {
      return refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
    }
    switch (request.kind.case) {
      case "incoming":
        return await this.#incoming(frame, peer, request.kind.value);
      case "reserve":
        return this.#grant(frame, peer);
      case "connect":
      case "accept":
        return refuse(
          frame,
          peer,
          NackReason.MALFORMED,
          `RELAY ${request.kind.case} belongs on a circuit connection`,
        );
      default:
        return refuse(frame, peer, NackReason.MALFORMED, "RELAY names no request");
    }
  }

  #grant(frame: Frame, peer: PeerConnection): void {
    const limits = this.#limits;
    if (limits === undefined) {
      this.#refusedCount++;
      return refuse(frame, peer, NackReason.FORBIDDEN, "this node does not relay");
    }
    if (peer.channel.stream.relay !== undefined) {
      this.#refusedCount++;
      return refuse(frame, peer, NackReason.FORBIDDEN, "no reservation over a relayed connection");
    }
    const now = this.#host.clock.now();
    for (const [address, held] of this.#reservations) {
      if (held.expires <= now || held.peer.isClosed) this.#reservations.delete(address);
    }
    if (
      !this.#reservations.has(peer.address) &&
      this.#reservations.size >= limits.maxReservations
    ) {
      this.#refusedCount++;
      return refuse(frame, peer, NackReason.RATE_LIMITED, "reservations at limit");
    }
    this.#reservations.set(peer.address, { peer, expires: now + limits.reservationTtl * 1000 });
    const reply = create(ReservationSchema, {
      ttlSeconds: limits.reservationTtl,
      limits: this.#circuitLimits(limits),
    });
    peer.ack(frame, toBinary(ReservationSchema, reply)).catch(() => {});
  }

  #circuitLimits(limits: Required<RelayLimits>): CircuitLimits {
    return create(CircuitLimitsSchema, {
      maxBytes: BigInt(limits.maxCircuitBytes),
      maxSeconds: limits.maxCircuitSeconds,
    });
  }

  circuit(channel: SecureChannel): void {
    const frames = new FrameChannel(channel);
    this.#circuits.add(frames);
    void this.#serveCircuit(frames).catch((err) => {
      frames.close();
      this.#circuits.delete(frames);
      if (!this.#host.signal.aborted) {
        this.#host.error(err, `circuit from ${channel.remote.address}`);
      }
    });
  }

  async #serveCircuit(frames: FrameChannel): Promise<void> {
    const from = frames.channel.remote.address;
    const first = await within(
      this.#host,
      frames.next(),
      CIRCUIT_TIMEOUT,
      () => new TimeoutError(`${from} sent no RELAY request on its circuit connection`),
    );
    if (first === null) {
      throw new NackError(`${from} closed its circuit connection`, {
        opcode: Opcode.RELAY,
        reason: NackReason.UNSPECIFIED,
      });
    }
    const answer = (reason: NackReason, message: string) => {
      this.#refusedCount++;
      return frames.write(nackFrame(first, reason, message)).finally(() => frames.close());
    };
    if (first.opcode !== Opcode.RELAY || first.id === 0) {
      return await frames.disconnect(
        DisconnectReason.PROTOCOL_ERROR,
        "a circuit connection starts with a RELAY request",
      );
    }
    let request;
    try {
      request = decodePayload(RelayRequestSchema, first.payload);
    } catch (err) {
      return await answer(NackReason.MALFORMED, (err as Error).message);
    }
    const limits = this.#limits;
    if (limits === undefined) return await answer(NackReason.FORBIDDEN, "this node does not relay");
    if (request.kind.case === "accept") {
      const key = toHex(request.kind.value.circuitId);
      const waiting = this.#waiting.get(key);
      if (waiting === undefined || waiting.target !== from) {
        return await answer(NackReason.UNREACHABLE, "no such circuit waiting for this node");
      }
      this.#waiting.delete(key);
      waiting.resolve(frames, first);
      return;
    }
    if (request.kind.case !== "connect") {
      return await answer(NackReason.MALFORMED, "a circuit connection takes connect or accept");
    }
    const target = formatAddress(request.kind.value.target);
    const held = this.#reservations.get(target);
    if (held === undefined || held.peer.isClosed || held.expires <= this.#host.clock.now()) {
      return await answer(NackReason.UNREACHABLE, `no reservation for ${target}`);
    }
    if (this.#circuits.size > limits.maxCircuits) {
      return await answer(NackReason.RATE_LIMITED, "circuits at limit");
    }
    const count = (a: string) => this.#perPeer.get(a) ?? 0;
    if (count(from) >= limits.maxCircuitsPerPeer || count(target) >= limits.maxCircuitsPerPeer) {
      return await answer(NackReason.RATE_LIMITED, "circuits per node at limit");
    }
    const circuitId = crypto.getRandomValues(new Uint8Array(16));
    const key = toHex(circuitId);
    const accepted = Promise.withResolvers<{ frames: FrameChannel; frame: Frame }>();
    this.#waiting.set(key, {
      target,
      resolve: (f, frame) => accepted.resolve({ frames: f, frame }),
    });
    const add = (a: string, d: number) => {
      const n = count(a) + d;
      if (n === 0) this.#perPeer.delete(a);
      else this.#perPeer.set(a, n);
    };
    add(from, 1);
    add(target, 1);
    let other: FrameChannel | undefined;
    try {
      const circuitLimits = this.#circuitLimits(limits);
      try {
        await held.peer.request(
          Opcode.RELAY,
          toBinary(
            RelayRequestSchema,
            create(RelayRequestSchema, {
              kind: {
                case: "incoming",
                value: {
                  circuitId,
                  from: frames.channel.remote.identityKey,
                  limits: circuitLimits,
                },
              },
            }),
          ),
          { signal: this.#host.signal, timeout: CIRCUIT_TIMEOUT },
        );
      } catch (err) {
        if (err instanceof NackError) return await answer(err.reason, `the target: ${err.message}`);
        return await answer(NackReason.UNREACHABLE, `the target: ${errorMessage(err)}`);
      }
      const got = await within(
        this.#host,
        accepted.promise,
        CIRCUIT_TIMEOUT,
        () => new TimeoutError("no accept"),
      ).catch(() => undefined);
      if (got === undefined) {
        return await answer(NackReason.TIMEOUT, `${target} did not accept the circuit in time`);
      }
      other = got.frames;
      this.#circuits.add(other);
      const info = (peer: Uint8Array) =>
        toBinary(CircuitInfoSchema, create(CircuitInfoSchema, { peer, limits: circuitLimits }));
      await other.write(ackFrame(got.frame, info(frames.channel.remote.identityKey)));
      await frames.write(ackFrame(first, info(held.peer.identityKey)));
      this.#circuitsTotal++;
      this.#bridged++;
      try {
        await this.#bridge(frames, other, limits);
      } finally {
        this.#bridged--;
      }
    } finally {
      this.#waiting.delete(key);
      add(from, -1);
      add(target, -1);
      frames.close();
      other?.close();
      this.#circuits.delete(frames);
      if (other) this.#circuits.delete(other);
    }
  }

  /** Forwards RELAY_DATA both ways until an end closes or the budget runs out. */
  async #bridge(a: FrameChannel, b: FrameChannel, limits: Required<RelayLimits>): Promise<void> {
    let bytes = 0;
    let ended = false;
    const end = async (reason: DisconnectReason, message: string) => {
      if (ended) return;
      ended = true;
      await Promise.all([a.disconnect(reason, message), b.disconnect(reason, message)]);
    };
    const clock = this.#host.clock;
    const timer = limits.maxCircuitSeconds > 0
      ? clock.setTimeout(
        () => void end(DisconnectReason.LIMIT_REACHED, "the circuit's time limit"),
        limits.maxCircuitSeconds * 1000,
      )
      : undefined;
    const pump = async (from: FrameChannel, to: FrameChannel) => {
      try {
        for (;;) {
          const frame = await from.next();
          if (ended) return;
          if (frame === null) {
            return await end(DisconnectReason.SHUTDOWN, "the other end closed the circuit");
          }
          if (frame.opcode === Opcode.DISCONNECT) {
            return await end(DisconnectReason.SHUTDOWN, "the other end closed the circuit");
          }
          if (frame.opcode !== Opcode.RELAY_DATA) {
            return await end(DisconnectReason.PROTOCOL_ERROR, "only RELAY_DATA on a circuit");
          }
          bytes += frame.payload.length;
          this.#bytesRelayed += frame.payload.length;
          if (limits.maxCircuitBytes > 0 && bytes > limits.maxCircuitBytes) {
            return await end(DisconnectReason.LIMIT_REACHED, "the circuit's byte limit");
          }
          await to.write(encodeFrame(frame, { maxFrameSize: 64 * 1024 }));
        }
      } catch {
        await end(DisconnectReason.PROTOCOL_ERROR, "the circuit failed");
      }
    };
    try {
      await Promise.all([pump(a, b), pump(b, a)]);
    } finally {
      if (timer !== undefined) clock.clearTimeout(timer);
    }
  }
}

function ackFrame(request: Frame, data: Uint8Array): Uint8Array {
  return encodeFrame(createFrame({
    opcode: Opcode.ACK,
    id: request.id,
    payload: encodeAck(request.opcode, data),
  }));
}

function nackFrame(request: Frame, reason: NackReason, message: string): Uint8Array {
  return encodeFrame(createFrame({
    opcode: Opcode.NACK,
    id: request.id,
    payload: toBinary(
      NackSchema,
      create(NackSchema, { opcode: request.opcode, reason, message: message.slice(0, 200) }),
    ),
  }));
}

function nackOf(frame: Frame, relayAddress: string): NackError {
  const nack = decodePayload(NackSchema, frame.payload);
  return new NackError(
    `The relay ${relayAddress} refused: ${NackReason[nack.reason] ?? nack.reason}${
      nack.message ? ` (${nack.message})` : ""
    }`,
    { opcode: Opcode.RELAY, reason: nack.reason },
  );
}

/** `promise`, or a rejection with `timeout()` after `ms`. */
async function within<T>(
  host: ServiceHost,
  promise: Promise<T>,
  ms: number,
  timeout: () => Error,
): Promise<T> {
  let timer: TimerHandle | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = host.clock.setTimeout(() => reject(timeout()), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    if (timer !== undefined) host.clock.clearTimeout(timer);
  }
}
