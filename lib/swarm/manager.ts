/**
 * The connection manager: listens and dials over its transports, runs the
 * secure handshake, enforces the connection limits, keeps exactly one
 * connection per pair of nodes, and redials persistent peers with backoff.
 *
 * Limits (all in {@linkcode ConnectionManagerOptions}, enforced by
 * `admission.ts`):
 *
 * - ℓ, `maxOutbound`: connections this node initiated (dials in flight
 *   count). A dial over it fails with {@linkcode ConnectionLimitError}.
 * - `maxPendingHandshakes`: inbound handshakes in progress. When they are all
 *   taken, a new socket evicts the oldest pending handshake whose peer has
 *   sent no message yet, else the oldest (silent sockets cannot lock new
 *   peers out); one IP address (an IPv6 /64) has at most
 *   `maxPendingHandshakesPerIp` of them, and a socket over that share is
 *   closed before any handshake work.
 * - `maxInbound`: connections others initiated. When they are all taken, a
 *   newly authenticated peer evicts the least useful inbound peer: from the
 *   subnet (/24, /48) with the most inbound peers, the one idle longest
 *   (KEEPALIVE traffic is not activity); peers redialed as persistent,
 *   peers with requests of this node pending, and up to half of `maxInbound`
 *   useful peers (`isUseful`: the node's routing-table contacts, longest
 *   connected first) are kept. When none can go, the
 *   socket is closed before any handshake work. One IP address has at most
 *   `maxInboundPerIp` inbound peers.
 * - The per-IP shares do not apply to loopback addresses unless
 *   `limitLoopback` is set (a swarm on one host shares 127.0.0.1), as
 *   go-libp2p's resource manager exempts them.
 *
 * One connection per pair: see `prefer.ts` ({@linkcode preferConnection}),
 * between connections of one kind; a direct connection always replaces a
 * relayed one (migration: the relayed one is closed once what is in flight
 * on it is answered, see `holepunch.proto`).
 *
 * @module
 */
import { DisconnectReason } from "../../gen/carrier/v1/control_pb.ts";
import { type Clock, systemClock } from "../clock.ts";
import { ConnectionLimitError, ListenError, NodeClosedError } from "../errors.ts";
import type { PeerAddress } from "../overlay/peer_address.ts";
import { type CloseInfo, DEFAULT_REQUEST_TIMEOUT, PeerConnection } from "../peer/connection.ts";
import { type SecureChannel, secureInbound, secureOutbound } from "../secure/channel.ts";
import { generateX25519KeyPair, type X25519KeyPair } from "../secure/noise.ts";
import { parseTransportAddress } from "../transport/address.ts";
import { combineTransports } from "../transport/multi.ts";
import type { ByteStream, Listener, Transport } from "../transport/types.ts";
import { AddressBook } from "./addresses.ts";
import { Admission } from "./admission.ts";
import {
  CONNECTION_LIMITS,
  DEFAULT_DIAL_TIMEOUT,
  DEFAULT_EPHEMERAL_IDLE_TIMEOUT,
  LISTEN_RETRY_DELAY,
  MAX_LISTEN_RETRY_DELAY,
  MIGRATION_LINGER,
} from "./limits.ts";
import type { ConnectionManagerOptions, ConnectionStats, ConnectOptions } from "./options.ts";
import { preferConnection } from "./prefer.ts";
import { Redialer } from "./redial.ts";

/**
 * Listens, dials and keeps the node's connections.
 *
 * @example
 * ```ts ignore
 * const manager = new ConnectionManager({ identity, transports: [new TcpTransport()], listen: ["127.0.0.1:0"] });
 * await manager.start();
 * const peer = await manager.connect(parsePeerAddress("…@127.0.0.1:4000"));
 * ```
 */
export class ConnectionManager {
  readonly #o: ConnectionManagerOptions;
  readonly #clock: Clock;
  /** The transports as one: a {@linkcode MultiTransport} when there are several. */
  readonly #transport: Transport;
  readonly #connections = new Map<string, PeerConnection>();
  /** Relayed connections a direct one replaced, until they close. */
  readonly #retired = new Set<PeerConnection>();
  readonly #dials = new Map<string, Promise<PeerConnection>>();
  readonly #redial: Redialer;
  readonly #admission: Admission;
  readonly #listeners = new Set<Listener>();
  readonly #streams = new Set<ByteStream>();
  readonly #tasks = new Set<Promise<unknown>>();
  readonly #abort = new AbortController();
  // One Noise static key per node (per process): its identity signature is
  // made once and reused by every handshake; ephemeral keys still give each
  // connection fresh secrets.
  readonly #staticKey: X25519KeyPair = generateX25519KeyPair();
  /** Ephemeral connections (address → last use); not counted against ℓ. */
  readonly #ephemeral = new Map<string, number>();
  #sweepTimer: number | undefined;
  #listenAddrs: string[] = [];
  readonly #addresses: AddressBook;
  #rejected = 0;
  #state: "new" | "running" | "closed" = "new";

  /**
   * Creates a manager; {@linkcode ConnectionManager.start} starts listening.
   *
   * @throws {ArgumentError} When `transports` is empty, or several do not each declare distinct schemes.
   */
  constructor(options: ConnectionManagerOptions) {
    this.#o = options;
    this.#clock = options.clock ?? systemClock;
    this.#transport = combineTransports(options.transports);
    this.#addresses = options.addresses ?? new AddressBook();
    this.#redial = new Redialer({
      clock: this.#clock,
      running: () => this.#state === "running",
      connected: (address) => this.#connections.has(address),
      connect: (peer) => this.connect(peer),
    }, options);
    this.#admission = new Admission(options, {
      connections: this.#connections,
      isPersistent: (address) => this.#redial.has(address),
    });
  }

  /** The addresses actually listened on (ports resolved). */
  get listenAddrs(): string[] {
    return [...this.#listenAddrs];
  }

  /** What the node announces (see {@linkcode AddressBook}). */
  get addresses(): AddressBook {
    return this.#addresses;
  }

  /** Connection counts. */
  get stats(): ConnectionStats {
    let outbound = 0, inbound = 0;
    for (const [address, c] of this.#connections) {
      if (!c.channel.initiator) inbound++;
      else if (!this.#ephemeral.has(address)) outbound++;
    }
    return {
      outbound,
      inbound,
      dialing: this.#dials.size,
      pendingHandshakes: this.#admission.pendingCount,
      rejectedHandshakes: this.#rejected,
    };
  }

  /** Starts listening on the configured addresses, each with the transport of its scheme. */
  async start(): Promise<void> {
    if (this.#state !== "new") throw new NodeClosedError("ConnectionManager already started");
    this.#state = "running";
    for (const address of this.#o.listen ?? []) {
      const listener = await this.#transport.listen(address, { signal: this.#abort.signal });
      this.#listeners.add(listener);
      this.#listenAddrs.push(listener.address);
      this.#track(this.#serve(listener));
    }
    this.#addresses.setBound(this.#listenAddrs);
  }

  /**
   * Whether a transport of this manager takes `transportAddress` (its scheme
   * is one a transport declares; a lone transport that declares none is
   * trusted with every address), so that a caller can pick, among a
   * contact's listen addresses, one it can dial.
   */
  canDial(transportAddress: string): boolean {
    const schemes = this.#transport.schemes;
    if (schemes === undefined) return true;
    try {
      return schemes.includes(parseTransportAddress(transportAddress).scheme);
    } catch {
      return false;
    }
  }

  /** The connection to `address` (base58), if there is one. */
  get(address: string): PeerConnection | undefined {
    return this.#connections.get(address);
  }

  /** Whether the connection to `address` is a short-lived one (see {@linkcode ConnectOptions.ephemeral}). */
  isEphemeral(address: string): boolean {
    return this.#ephemeral.has(address);
  }

  /** Every open connection. */
  all(): PeerConnection[] {
    return [...this.#connections.values()];
  }

  /**
   * Connects to `peer`, or returns the existing connection to it.
   *
   * @throws {ConnectionLimitError} when ℓ connections are already initiated.
   * @throws {TransportAddressError} when no transport takes `peer.transportAddress`.
   * @throws {DialError}, {@linkcode HandshakeError}, {@linkcode IdentityMismatchError},
   * {@linkcode TimeoutError} as the dial or handshake fails.
   */
  connect(peer: PeerAddress, options: ConnectOptions = {}): Promise<PeerConnection> {
    return this.#connect(peer, options);
  }

  #connect(
    peer: PeerAddress,
    options: ConnectOptions,
    open?: (signal?: AbortSignal) => Promise<PeerConnection>,
  ): Promise<PeerConnection> {
    if (this.#state !== "running") {
      return Promise.reject(new NodeClosedError("Cannot connect: the node is not running"));
    }
    if (options.persistent) this.#redial.add(peer);
    const maxOutbound = this.#o.maxOutbound ?? CONNECTION_LIMITS.maxOutbound;
    const stats = this.stats;
    const overLimit = () =>
      new ConnectionLimitError(
        `Cannot connect to ${peer.address}: ${stats.outbound} connections and ${stats.dialing} dials reach maxOutbound (ℓ) ${maxOutbound}`,
      );
    const existing = this.#connections.get(peer.address);
    // A direct dial asked for over a relayed connection goes on: it migrates.
    const upgrade = options.direct === true && open === undefined &&
      existing?.channel.stream.relay !== undefined;
    if (existing && !upgrade) {
      if (options.ephemeral) {
        if (this.#ephemeral.has(peer.address)) this.#ephemeral.set(peer.address, this.#clock.now());
      } else if (this.#ephemeral.has(peer.address)) {
        // Promote a short-lived connection to a regular one, within ℓ.
        if (stats.outbound + stats.dialing >= maxOutbound) return Promise.reject(overLimit());
        this.#ephemeral.delete(peer.address);
      }
      return Promise.resolve(existing);
    }
    const inFlight = this.#dials.get(peer.address);
    // A dial of another path (a relayed circuit) waits for the one in flight, and goes on if it fails.
    if (inFlight) return open ? inFlight.catch(() => this.#connect(peer, options, open)) : inFlight;
    if (!options.ephemeral && !upgrade && stats.outbound + stats.dialing >= maxOutbound) {
      return Promise.reject(overLimit());
    }
    const dial = (open ?? ((signal) => this.#dial(peer, signal)))(options.signal).then(
      (connection) => {
        if (options.ephemeral && connection.channel.initiator) this.#markEphemeral(peer.address);
        return connection;
      },
    ).finally(() => this.#dials.delete(peer.address));
    this.#dials.set(peer.address, dial);
    // A persistent peer that cannot be reached now is retried with backoff.
    if (open === undefined) this.#track(dial.catch(() => this.#redial.schedule(peer.address)));
    return dial;
  }

  /**
   * Connects to `peer` over a stream that `open` makes (a relayed circuit):
   * the handshake expects `peer`'s identity; the same rules as
   * {@linkcode ConnectionManager.connect} for an existing connection, a dial
   * in flight and ℓ. Never redialed.
   */
  connectThrough(
    peer: Pick<PeerAddress, "identityKey" | "address">,
    open: (signal: AbortSignal) => Promise<ByteStream>,
    options: Omit<ConnectOptions, "persistent"> = {},
  ): Promise<PeerConnection> {
    const signalOf = (signal?: AbortSignal) =>
      signal ? AbortSignal.any([this.#abort.signal, signal]) : this.#abort.signal;
    return this.#connect(
      { ...peer, transportAddress: "" },
      options,
      async (signal) => {
        const s = signalOf(signal);
        return await this.#secure(await open(s), peer.identityKey, s);
      },
    );
  }

  #markEphemeral(address: string): void {
    this.#ephemeral.set(address, this.#clock.now());
    if (this.#sweepTimer !== undefined) return;
    const idle = this.#o.ephemeralIdleTimeout ?? DEFAULT_EPHEMERAL_IDLE_TIMEOUT;
    const sweep = () => {
      this.#sweepTimer = undefined;
      const now = this.#clock.now();
      for (const [address, lastUsed] of this.#ephemeral) {
        if (now - lastUsed < idle) continue;
        this.#ephemeral.delete(address);
        const connection = this.#connections.get(address);
        if (connection) {
          this.#track(
            connection.close(DisconnectReason.APPLICATION, "short-lived connection idle"),
          );
        }
      }
      if (this.#ephemeral.size > 0 && this.#state === "running") {
        this.#sweepTimer = this.#clock.setTimeout(sweep, idle);
      }
    };
    this.#sweepTimer = this.#clock.setTimeout(sweep, idle);
  }

  /** Stops redialing `address` (base58). */
  forget(address: string): void {
    this.#redial.forget(address);
  }

  /** Closes listeners, dials and connections (DISCONNECT `SHUTDOWN`), and stops redialing. */
  async close(): Promise<void> {
    if (this.#state === "closed") return;
    this.#state = "closed";
    if (this.#sweepTimer !== undefined) this.#clock.clearTimeout(this.#sweepTimer);
    this.#redial.clear();
    this.#abort.abort(new NodeClosedError("The node is closing"));
    for (const listener of this.#listeners) listener.close();
    for (const stream of this.#streams) stream.close();
    const open = [...this.all(), ...this.#retired];
    await Promise.all(open.map((c) => c.close(DisconnectReason.SHUTDOWN)));
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }

  // ---- inbound ----

  /**
   * Accepts on `listener` for as long as the node runs. A listener that fails
   * is never lost silently: the failure is reported and the manager listens
   * on the same (resolved) address again, backing off while that fails.
   */
  async #serve(listener: Listener): Promise<void> {
    const address = listener.address;
    for (let failures = 0; this.#state === "running"; failures++) {
      let error: Error;
      try {
        if (await this.#accept(listener)) failures = 0;
        error = new ListenError(`Listener on ${address} stopped accepting`);
      } catch (err) {
        error = err instanceof Error ? err : new ListenError(String(err));
      }
      this.#listeners.delete(listener);
      listener.close();
      if (this.#state !== "running") return;
      this.#o.onListenError?.(error, address);
      for (;;) {
        const delay = Math.min(
          MAX_LISTEN_RETRY_DELAY,
          LISTEN_RETRY_DELAY * 2 ** Math.min(failures, 6),
        );
        if (!await this.#sleep(delay)) return;
        try {
          listener = await this.#transport.listen(address, { signal: this.#abort.signal });
          break;
        } catch (err) {
          if (this.#state !== "running") return;
          failures++;
          this.#o.onListenError?.(err as Error, address);
        }
      }
      this.#listeners.add(listener);
    }
  }

  /** Waits `ms` on the clock; false when the manager closed meanwhile. */
  #sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const signal = this.#abort.signal;
      if (signal.aborted) return resolve(false);
      const onAbort = () => {
        this.#clock.clearTimeout(timer);
        resolve(false);
      };
      const timer = this.#clock.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Admits what `listener` accepts until it ends or throws; whether it accepted any. */
  async #accept(listener: Listener): Promise<boolean> {
    let accepted = false;
    for await (const stream of listener) {
      accepted = true;
      if (this.#state !== "running") {
        stream.close();
        continue;
      }
      const verdict = this.#admission.admit(stream);
      if (verdict.refused !== undefined) {
        this.#refuse(stream, new ConnectionLimitError(verdict.refused));
        continue;
      }
      if (verdict.evicted) this.#refuse(verdict.evicted.stream, verdict.evicted.reason);
      this.#track(this.#handshakeInbound(stream));
    }
    return accepted;
  }

  #refuse(stream: ByteStream, reason: Error): void {
    // Cheap: no handshake work, the socket is closed at once.
    stream.close();
    this.#rejected++;
    this.#o.onRejected?.(reason, stream.remoteAddress);
  }

  async #handshakeInbound(stream: ByteStream, admitted = true): Promise<void> {
    this.#streams.add(stream);
    const admission = this.#admission;
    let channel: SecureChannel;
    try {
      channel = await secureInbound(stream, {
        ...this.#channelOptions(),
        onHandshakeMessage: admitted ? () => admission.progressed(stream) : undefined,
      });
    } catch (err) {
      // An evicted handshake was reported when it was evicted.
      if (!admitted || admission.isPending(stream)) {
        this.#rejected++;
        this.#o.onRejected?.(err as Error, stream.remoteAddress);
      }
      stream.close();
      return;
    } finally {
      if (admitted) admission.done(stream);
      this.#streams.delete(stream);
    }
    if (this.#state !== "running") {
      channel.close();
      return;
    }
    if (channel.remote.dialBackNonce.length > 0) {
      // A dial-back probe: proof that this address reaches us, never a peer.
      channel.close();
      this.#o.onDialBack?.(channel.remote.dialBackNonce, channel.remote.address);
      return;
    }
    if (channel.remote.relayCircuit) {
      // A circuit connection to this node as a relay: the relay service's.
      if (admitted && this.#o.onCircuit) this.#o.onCircuit(channel);
      else channel.close();
      return;
    }
    if (
      admission.inboundCount() >= admission.maxInbound &&
      !this.#connections.has(channel.remote.address)
    ) {
      const victim = admission.evictionCandidate();
      if (victim === undefined) {
        this.#rejected++;
        const connection = this.#wrap(channel);
        await connection.close(DisconnectReason.LIMIT_REACHED, "too many inbound connections");
        return;
      }
      this.#track(victim.close(DisconnectReason.LIMIT_REACHED, "evicted for a new peer"));
    }
    this.#register(channel);
  }

  // ---- outbound ----

  async #dial(peer: PeerAddress, signal?: AbortSignal): Promise<PeerConnection> {
    const timeout = this.#o.dialTimeout ?? DEFAULT_DIAL_TIMEOUT;
    const timer = new AbortController();
    const handle = this.#clock.setTimeout(
      () =>
        timer.abort(
          new DOMException(
            `Dial to ${peer.transportAddress} timed out after ${timeout} ms`,
            "TimeoutError",
          ),
        ),
      timeout,
    );
    const signals = [this.#abort.signal, timer.signal];
    if (signal) signals.push(signal);
    let stream: ByteStream;
    try {
      stream = await this.#transport.dial(peer.transportAddress, {
        signal: AbortSignal.any(signals),
      });
    } finally {
      this.#clock.clearTimeout(handle);
    }
    return await this.#secure(
      stream,
      peer.identityKey,
      signal ? AbortSignal.any([this.#abort.signal, signal]) : this.#abort.signal,
    );
  }

  /** Runs the outbound handshake over `stream`, expecting `identityKey`, and registers it. */
  async #secure(
    stream: ByteStream,
    identityKey: Uint8Array,
    signal: AbortSignal,
  ): Promise<PeerConnection> {
    this.#streams.add(stream);
    let channel: SecureChannel;
    try {
      channel = await secureOutbound(stream, {
        ...this.#channelOptions(),
        expectedRemote: identityKey,
        signal,
      });
    } catch (err) {
      stream.close();
      throw err;
    } finally {
      this.#streams.delete(stream);
    }
    if (this.#state !== "running") {
      channel.close();
      throw new NodeClosedError("The node closed during the dial");
    }
    return this.#register(channel);
  }

  /**
   * Runs the outbound handshake over `stream`, already open to `peer` (a
   * punched hole, see `holepunch.proto`), expecting its identity, and
   * registers the connection: a direct one replaces the pair's relayed one
   * (migration).
   *
   * @throws {HandshakeError}, {@linkcode IdentityMismatchError},
   * {@linkcode TimeoutError} as the handshake fails.
   */
  connectOver(
    peer: Pick<PeerAddress, "identityKey">,
    stream: ByteStream,
    signal?: AbortSignal,
  ): Promise<PeerConnection> {
    if (this.#state !== "running") {
      stream.close();
      return Promise.reject(new NodeClosedError("Cannot connect: the node is not running"));
    }
    const s = signal ? AbortSignal.any([this.#abort.signal, signal]) : this.#abort.signal;
    return this.#secure(stream, peer.identityKey, s);
  }

  /**
   * Accepts a stream that no listener produced (a relayed circuit's, see
   * `relay.proto`; a punched hole's, see `holepunch.proto`) as an inbound
   * connection: the responder's handshake, then the inbound limit, as for a
   * listener's stream (without the per-host shares: the relay applies them,
   * and a punched hole was asked for).
   */
  acceptThrough(stream: ByteStream): Promise<void> {
    if (this.#state !== "running") {
      stream.close();
      return Promise.reject(new NodeClosedError("Cannot accept: the node is not running"));
    }
    const task = this.#handshakeInbound(stream, false);
    this.#track(task);
    return task;
  }

  /**
   * Dials `relay` for a circuit connection (`relay_circuit` in the
   * handshake): a secure channel that is not a peer connection; the caller
   * owns and closes it.
   *
   * @throws {DialError}, {@linkcode HandshakeError}, {@linkcode IdentityMismatchError},
   * {@linkcode TimeoutError} as the dial or handshake fails.
   */
  async dialCircuit(relay: PeerAddress, signal?: AbortSignal): Promise<SecureChannel> {
    if (this.#state !== "running") {
      throw new NodeClosedError("Cannot open a circuit: the node is not running");
    }
    const s = signal ? AbortSignal.any([this.#abort.signal, signal]) : this.#abort.signal;
    const stream = await this.#transport.dial(relay.transportAddress, { signal: s });
    this.#streams.add(stream);
    try {
      const channel = await secureOutbound(stream, {
        ...this.#channelOptions(),
        expectedRemote: relay.identityKey,
        relayCircuit: true,
        signal: s,
      });
      return channel;
    } catch (err) {
      stream.close();
      throw err;
    } finally {
      this.#streams.delete(stream);
    }
  }

  /**
   * Dials `peer` with a dial-back `nonce` in the handshake, to show it that
   * the address reaches it; closes once the handshake is done. Not a peer
   * connection: no limit counts it, nothing registers it.
   *
   * @throws {DialError}, {@linkcode HandshakeError}, {@linkcode IdentityMismatchError},
   * {@linkcode TimeoutError} as the dial or handshake fails.
   */
  async probe(
    peer: PeerAddress,
    nonce: Uint8Array,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    if (this.#state !== "running") {
      throw new NodeClosedError("Cannot dial back: the node is not running");
    }
    const signal = options.signal
      ? AbortSignal.any([this.#abort.signal, options.signal])
      : this.#abort.signal;
    const stream = await this.#transport.dial(peer.transportAddress, { signal });
    this.#streams.add(stream);
    try {
      const channel = await secureOutbound(stream, {
        ...this.#channelOptions(),
        expectedRemote: peer.identityKey,
        dialBackNonce: nonce,
        signal,
      });
      channel.close();
    } finally {
      this.#streams.delete(stream);
      stream.close();
    }
  }

  #channelOptions() {
    return {
      identity: this.#o.identity,
      noiseStaticKeyPair: this.#staticKey,
      acceptsInbound: this.#addresses.acceptsInbound,
      listenAddrs: this.#addresses.listenAddrs,
      relays: this.#addresses.relays,
      servesRelay: this.#o.servesRelay ?? false,
      compressions: this.#o.compressions,
      preferredCompression: this.#o.preferredCompression,
      maxFrameSize: this.#o.maxFrameSize,
      agent: this.#o.agent,
      puzzleDifficulty: this.#o.puzzleDifficulty ?? 0,
      handshakeTimeout: this.#o.handshakeTimeout,
      clock: this.#clock,
      signal: this.#abort.signal,
    };
  }

  // ---- registry ----

  #wrap(channel: SecureChannel): PeerConnection {
    return new PeerConnection(channel, {
      ...this.#o.connection,
      clock: this.#clock,
      onFrame: this.#o.onFrame,
      isOneWay: this.#o.isOneWay,
    });
  }

  /** Registers a new connection, resolving a duplicate by the pair rule; returns the survivor. */
  #register(channel: SecureChannel): PeerConnection {
    const address = channel.remote.address;
    const incoming = this.#wrap(channel);
    const existing = this.#connections.get(address);
    if (existing) {
      const relayed = (c: PeerConnection) => c.channel.stream.relay !== undefined;
      if (relayed(existing) && !relayed(incoming)) {
        this.#migrate(address, existing, incoming);
        return incoming;
      }
      if (!relayed(existing) && relayed(incoming)) {
        this.#track(
          incoming.close(DisconnectReason.DUPLICATE_CONNECTION, "a direct connection exists"),
        );
        return existing;
      }
      const initiatorOf = (c: PeerConnection) =>
        c.channel.initiator ? this.#o.identity.publicKey : c.identityKey;
      const keep = preferConnection(
        { initiator: initiatorOf(existing) },
        { initiator: initiatorOf(incoming) },
      );
      const loser = keep === "existing" ? incoming : existing;
      const winner = keep === "existing" ? existing : incoming;
      if (keep === "incoming") this.#adopt(address, incoming);
      this.#track(loser.close(DisconnectReason.DUPLICATE_CONNECTION, "one connection per pair"));
      return winner;
    }
    this.#adopt(address, incoming);
    this.#o.onConnect?.(incoming);
    return incoming;
  }

  /** `to`, direct, replaces the relayed `from`, which closes once idle. */
  #migrate(address: string, from: PeerConnection, to: PeerConnection): void {
    if (this.#ephemeral.has(address)) this.#ephemeral.set(address, this.#clock.now());
    this.#retired.add(from);
    this.#adopt(address, to);
    this.#o.onMigrate?.(from, to);
    this.#track(this.#retire(from));
  }

  /**
   * Closes a replaced connection after {@linkcode MIGRATION_LINGER} and once
   * no request is in flight on it either way (at most the request timeout).
   */
  async #retire(connection: PeerConnection): Promise<void> {
    const deadline = this.#clock.now() + MIGRATION_LINGER +
      (this.#o.connection?.requestTimeout ?? DEFAULT_REQUEST_TIMEOUT);
    if (!await this.#sleep(MIGRATION_LINGER)) return;
    while (!connection.isClosed && !connection.idle && this.#clock.now() < deadline) {
      if (!await this.#sleep(50)) return;
    }
    await connection.close(DisconnectReason.DUPLICATE_CONNECTION, "moved to a direct connection");
  }

  #adopt(address: string, connection: PeerConnection): void {
    this.#connections.set(address, connection);
    this.#redial.connected(address);
    this.#track(connection.closed.then((info: CloseInfo) => {
      if (this.#retired.delete(connection)) return this.#o.onRetired?.(connection, info);
      if (this.#connections.get(address) !== connection) return;
      this.#connections.delete(address);
      this.#ephemeral.delete(address);
      this.#o.onDisconnect?.(connection, info);
      this.#redial.schedule(address);
    }));
  }

  #track<T>(task: Promise<T>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task)).catch(() => {});
  }
}
