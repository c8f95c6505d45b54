/**
 * HOLE_PUNCH, as a service (see `proto/carrier/v1/holepunch.proto`): over a
 * relayed connection, the two nodes exchange where they can be dialled,
 * time their dials by the round trip, and dial each other at once (TCP
 * simultaneous open, {@linkcode punchTcp}); the connection that results runs
 * the Noise XX handshake and replaces the relayed one (the connection
 * manager's migration). When no dial connects, the relayed connection
 * stays. Each outcome is a `holepunch` event.
 *
 * The relayed connection's target starts it (libp2p's DCUtR has the same
 * roles): it is the node behind a NAT that holds a reservation, and it
 * learns of the connection first.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import {
  type HolePunchConnect,
  HolePunchConnectSchema,
  HolePunchSchema,
} from "../../gen/carrier/v1/holepunch_pb.ts";
import type { TimerHandle } from "../clock.ts";
import { HolePunchError } from "../errors.ts";
import { errorMessage } from "../_error_message.ts";
import type { HolePunchEventDetail } from "../events.ts";
import type { PeerConnection } from "../peer/connection.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";
import { hostOf } from "../swarm/addresses.ts";
import { ipScope } from "../transport/ip.ts";
import { freeTcpPort, punchTcp } from "../transport/punch.ts";
import { formatHostPort, parseHostPort } from "../transport/tcp.ts";
import type { ByteStream } from "../transport/types.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import { refuse } from "./refuse.ts";

/** HOLE_PUNCH's opcode: a request, ACKed with a `HolePunchConnect` (to a connect) or nothing (to a sync). */
export const HOLE_PUNCH_OPCODE = protocolOpcode(Opcode.HOLE_PUNCH, HolePunchSchema, {
  reply: HolePunchConnectSchema,
});

/** Limits of HOLE_PUNCH (the spec's, in `proto/carrier/v1/holepunch.proto`). */
export const HOLE_PUNCH_LIMITS = Object.freeze({
  /** Addresses in one HolePunchConnect. */
  maxAddrs: 8,
  /** Longest dialling window, in ms. */
  maxWindow: 60_000,
  /** How long a responder waits for the sync after its ACK, in ms. */
  syncTimeout: 10_000,
});

/**
 * Options of hole punching (`NodeOptions.holePunch`).
 *
 * @example
 * ```ts
 * import type { HolePunchInit } from "@carrier/p2p";
 * const quick: HolePunchInit = { window: 3_000 };
 * void quick;
 * ```
 */
export interface HolePunchInit {
  /** Punch holes: start them on relayed connections this node is the target of, and answer them. @default {true} */
  enabled?: boolean;
  /** How long each side keeps dialling, in ms (1 to 60000). @default {10_000} */
  window?: number;
  /**
   * How long after starting one with a peer this node does not start
   * another on a new relayed connection to it, in ms. @default {60_000}
   */
  retryAfter?: number;
}

/** What the service needs of the connection manager (the node lends it). */
export interface HolePunchHost {
  /** The outbound handshake over a punched stream, expecting `identityKey`; registers (migrates). */
  connectOver(
    identityKey: Uint8Array,
    stream: ByteStream,
    signal: AbortSignal,
  ): Promise<PeerConnection>;
  /** The inbound handshake over a punched stream; registers (migrates). */
  acceptOver(stream: ByteStream): Promise<void>;
}

/**
 * The hole-punching service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { holePunch } from "./holepunch.ts";
 * const factory = holePunch({ enabled: false }, {
 *   connectOver: () => Promise.reject(new Error("unused")),
 *   acceptOver: () => Promise.reject(new Error("unused")),
 * });
 * assert.equal(typeof factory, "function");
 * ```
 */
export function holePunch(
  init: HolePunchInit,
  lend: HolePunchHost,
): ServiceFactory {
  return (host) => new HolePunch(host, init, lend);
}

/** Peers whose last hole punch's start is remembered (for `retryAfter`). */
const MAX_REMEMBERED = 1024;

/** A responder's state between its ACK of `connect` and the `sync`. */
interface Answered {
  port: number;
  remote: string[];
  window: number;
  started: number;
  timer: TimerHandle;
}

class HolePunch implements Service {
  readonly name = "holepunch";
  readonly opcodes = [HOLE_PUNCH_OPCODE];
  readonly #host: ServiceHost;
  readonly #lend: HolePunchHost;
  readonly #enabled: boolean;
  readonly #window: number;
  readonly #retryAfter: number;
  /** Peers (base58) with a hole punch running, either role. */
  readonly #running = new Set<string>();
  /** When this node last started one with a peer (base58 → ms). */
  readonly #started = new Map<string, number>();
  readonly #answered = new Map<string, Answered>();

  constructor(host: ServiceHost, init: HolePunchInit, lend: HolePunchHost) {
    this.#host = host;
    this.#lend = lend;
    this.#enabled = init.enabled ?? true;
    this.#retryAfter = init.retryAfter ?? 60_000;
    this.#window = Math.min(Math.max(1, init.window ?? 10_000), HOLE_PUNCH_LIMITS.maxWindow);
  }

  peerConnect(peer: PeerConnection): void {
    if (!this.#enabled || peer.channel.stream.relay === undefined || peer.channel.initiator) return;
    const last = this.#started.get(peer.address);
    if (last !== undefined && this.#host.clock.now() - last < this.#retryAfter) return;
    this.#start(peer).catch((err) => this.#host.error(err, "holepunch"));
  }

  cleanup(): void {
    for (const a of this.#answered.values()) this.#host.clock.clearTimeout(a.timer);
    this.#answered.clear();
  }

  /** Runs one hole punch as its initiator; the outcome is also a `holepunch` event. */
  async #start(peer: PeerConnection): Promise<HolePunchEventDetail> {
    const { clock, signal } = this.#host;
    const started = clock.now();
    const outcome: HolePunchEventDetail = {
      address: peer.address,
      direct: false,
      initiator: true,
      ms: 0,
      rtt: 0,
      attempts: 0,
      dialled: [],
    };
    if (this.#running.has(peer.address)) {
      return this.#report(outcome, started, "a hole punch with this peer is already running");
    }
    if (peer.channel.stream.relay === undefined) {
      return this.#report(outcome, started, "the connection is direct already");
    }
    this.#running.add(peer.address);
    this.#started.delete(peer.address);
    this.#started.set(peer.address, started);
    // Bounded: the oldest (whose retryAfter has likely passed) go first.
    if (this.#started.size > MAX_REMEMBERED) {
      this.#started.delete(this.#started.keys().next().value!);
    }
    try {
      const port = await freeTcpPort();
      const addrs = this.#candidates(peer, port);
      if (addrs.length === 0) throw new Error("this node knows no address of its own to offer");
      const sent = clock.now();
      const reply = decodePayload(
        HolePunchConnectSchema,
        await peer.request(Opcode.HOLE_PUNCH, this.#encodeConnect(addrs), { signal }),
      );
      const rtt = outcome.rtt = clock.now() - sent;
      const remote = outcome.dialled = checkAddrs(reply);
      const window = Math.min(this.#window, reply.windowMs || this.#window);
      const sync = toBinary(
        HolePunchSchema,
        create(HolePunchSchema, { kind: { case: "sync", value: {} } }),
      );
      // Not awaited: the peer starts dialling when the sync arrives, this
      // side half a round trip after sending it.
      const synced = peer.request(Opcode.HOLE_PUNCH, sync, { signal }).catch(() => {});
      await new Promise((r) => clock.setTimeout(() => r(undefined), rtt / 2));
      const punched = await this.#punch(outcome, remote, port, window);
      outcome.connected = punched.address;
      await this.#lend.acceptOver(punched.stream);
      await synced;
      if (!this.#direct(peer.address)) {
        throw new Error("the punched connection did not become the peer's connection");
      }
      outcome.direct = true;
      return this.#report(outcome, started);
    } catch (err) {
      return this.#report(outcome, started, errorMessage(err));
    } finally {
      this.#running.delete(peer.address);
    }
  }

  async receive({ frame, peer }: ReceiveContext): Promise<void> {
    if (frame.id === 0) return; // a request only
    let message;
    try {
      message = decodePayload(HolePunchSchema, frame.payload);
    } catch (err) {
      return refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
    }
    if (peer.channel.stream.relay === undefined) {
      return refuse(
        frame,
        peer,
        NackReason.FORBIDDEN,
        "hole punching runs over a relayed connection only",
      );
    }
    if (!this.#enabled) {
      return refuse(frame, peer, NackReason.FORBIDDEN, "this node does not punch holes");
    }
    switch (message.kind.case) {
      case "connect":
        return await this.#answerConnect(frame, peer, message.kind.value);
      case "sync":
        return await this.#answerSync(frame, peer);
      default:
        return refuse(frame, peer, NackReason.MALFORMED, "a HolePunch with no field set");
    }
  }

  async #answerConnect(
    frame: ReceiveContext["frame"],
    peer: PeerConnection,
    connect: HolePunchConnect,
  ): Promise<void> {
    let remote: string[];
    try {
      remote = checkAddrs(connect);
    } catch (err) {
      return refuse(frame, peer, NackReason.MALFORMED, errorMessage(err));
    }
    if (this.#running.has(peer.address) || this.#answered.has(peer.address)) {
      return refuse(
        frame,
        peer,
        NackReason.RATE_LIMITED,
        "a hole punch with this peer is already running",
      );
    }
    const window = Math.min(
      this.#window,
      Math.max(1, Math.min(connect.windowMs || this.#window, HOLE_PUNCH_LIMITS.maxWindow)),
    );
    const port = await freeTcpPort();
    const addrs = this.#candidates(peer, port);
    if (addrs.length === 0) {
      return refuse(
        frame,
        peer,
        NackReason.UNREACHABLE,
        "this node knows no address of its own to offer",
      );
    }
    const timer = this.#host.clock.setTimeout(
      () => this.#answered.delete(peer.address),
      HOLE_PUNCH_LIMITS.syncTimeout,
    );
    this.#answered.set(peer.address, {
      port,
      remote,
      window,
      started: this.#host.clock.now(),
      timer,
    });
    const reply = create(HolePunchConnectSchema, { addrs, windowMs: window });
    await peer.ack(frame, toBinary(HolePunchConnectSchema, reply)).catch(() => {});
  }

  async #answerSync(frame: ReceiveContext["frame"], peer: PeerConnection): Promise<void> {
    const answered = this.#answered.get(peer.address);
    if (answered === undefined) {
      return refuse(frame, peer, NackReason.MALFORMED, "a sync before a connect");
    }
    this.#answered.delete(peer.address);
    this.#host.clock.clearTimeout(answered.timer);
    await peer.ack(frame).catch(() => {});
    // Dial at once, in the background (the reply is sent; the frame is handled).
    this.#dialBack(peer, answered).catch((err) => this.#host.error(err, "holepunch"));
  }

  async #dialBack(peer: PeerConnection, answered: Answered): Promise<void> {
    const { signal } = this.#host;
    const outcome: HolePunchEventDetail = {
      address: peer.address,
      direct: false,
      initiator: false,
      ms: 0,
      rtt: 0,
      attempts: 0,
      dialled: answered.remote,
    };
    this.#running.add(peer.address);
    try {
      const punched = await this.#punch(outcome, answered.remote, answered.port, answered.window);
      outcome.connected = punched.address;
      const connection = await this.#lend.connectOver(peer.identityKey, punched.stream, signal);
      if (connection.channel.stream.relay !== undefined || !this.#direct(peer.address)) {
        throw new Error("the punched connection did not become the peer's connection");
      }
      outcome.direct = true;
      this.#report(outcome, answered.started);
    } catch (err) {
      this.#report(outcome, answered.started, errorMessage(err));
    } finally {
      this.#running.delete(peer.address);
    }
  }

  /** Dials `remote` from `port` for `window` ms, counting the attempts in `outcome`. */
  async #punch(outcome: HolePunchEventDetail, remote: string[], port: number, window: number) {
    try {
      const punched = await punchTcp(remote, {
        localPort: port,
        window,
        signal: this.#host.signal,
      });
      outcome.attempts = punched.attempts;
      return punched;
    } catch (err) {
      if (err instanceof HolePunchError) outcome.attempts = err.attempts;
      throw err;
    }
  }

  /** Whether the node's connection to `address` is a direct one now. */
  #direct(address: string): boolean {
    const now = this.#host.connections.get(address);
    return now !== undefined && now.channel.stream.relay === undefined;
  }

  #report(outcome: HolePunchEventDetail, started: number, error?: string): HolePunchEventDetail {
    outcome.ms = Math.round(this.#host.clock.now() - started);
    if (error !== undefined) outcome.error = error;
    this.#host.emit("holepunch", outcome);
    return outcome;
  }

  #encodeConnect(addrs: string[]): Uint8Array {
    return toBinary(
      HolePunchSchema,
      create(HolePunchSchema, {
        kind: { case: "connect", value: { addrs, windowMs: this.#window } },
      }),
    );
  }

  /**
   * Where `peer` could dial this node from `port`: the hosts its peers see
   * it at (the observed addresses; through a NAT that keeps source ports,
   * the port outside is the same), then the local hosts of its direct
   * connections (a peer on the same network), at most 8.
   */
  #candidates(peer: PeerConnection, port: number): string[] {
    const { addresses, connections } = this.#host;
    const hosts = new Set<string>();
    const seenBy = addresses.observedBy(peer.address);
    if (seenBy !== undefined) hosts.add(hostOf(seenBy)!);
    for (const { host } of addresses.observedHosts()) hosts.add(host);
    for (const c of connections.all()) {
      if (c.channel.stream.relay === undefined) hosts.add(hostOf(c.channel.stream.localAddress)!);
    }
    return [...hosts]
      .filter((h) => {
        const scope = h === undefined ? undefined : ipScope(h);
        return scope !== undefined && scope !== "unspecified";
      })
      .slice(0, HOLE_PUNCH_LIMITS.maxAddrs)
      .map((h) => formatHostPort(h, port));
  }
}

/** The addresses of a HolePunchConnect, checked: 1 to 8 `host:port` with IP hosts. */
function checkAddrs(connect: HolePunchConnect): string[] {
  const { addrs } = connect;
  if (addrs.length === 0 || addrs.length > HOLE_PUNCH_LIMITS.maxAddrs) {
    throw new Error(
      `a HolePunchConnect names 1 to ${HOLE_PUNCH_LIMITS.maxAddrs} addresses, got ${addrs.length}`,
    );
  }
  for (const a of addrs) {
    const { port } = parseHostPort(a);
    if (port === 0 || ipScope(a) === undefined) {
      throw new Error(`a HolePunchConnect address must be an IP host and a port, got "${a}"`);
    }
  }
  return [...addrs];
}
