/**
 * The node: the composition root. A {@linkcode Node} holds the options,
 * builds the connection manager, the routing table and the services,
 * starts and stops them in order, dispatches each frame by opcode to the
 * service that registered it, and offers the facade methods (`shout`,
 * `whisper`, `speak`, `dht`, `request`…), each delegating to a service.
 *
 * How an incoming frame travels (after the connection layer has answered
 * ACK, NACK, PING, KEEPALIVE, SET_CONNECTION_OPT and DISCONNECT itself):
 *
 * 1. **Receive-then-lock.** If a handler waits on this peer for this opcode,
 *    the frame goes to it. While a peer is locked, its other frames are held
 *    (at most `maxHeldMessages`; beyond, requests get NACK `RATE_LIMITED` and
 *    one-way frames are dropped) and delivered in order on release.
 * 2. **Services that declare no opcodes** (plugins that watch every frame),
 *    in the order given, each `receive` in turn; the first that returns
 *    `true` claims the frame. One that throws is reported as an `error`
 *    event and skipped.
 * 3. **The owner of the opcode:** the service that declared it (SHOUT,
 *    WHISPER, SPEAK, METRICS, the DHT's, a plugin's), or the application
 *    handler `handle` registered. A request nobody owns gets NACK
 *    `UNKNOWN_OPCODE` from the connection; a one-way frame nobody owns
 *    becomes a `message` event.
 *
 * **One lifecycle.** After `close()` (and while closing) every method that
 * does something rejects with `NodeClosedError`, and what is in flight
 * aborts with it: every service shares one `AbortSignal` whose reason is
 * that error.
 *
 * @module
 */
import { toBinary } from "@bufbuild/protobuf";
import type { MessageOf, Schema } from "./_protobuf.ts";
import { type ResourceBudget, resourceBudget } from "./budget.ts";
import { NODE_LIMITS } from "./budget.ts";
import { type Clock, systemClock } from "./clock.ts";
import type { Dht } from "./dht/client.ts";
import { ConnectionClosedError, DialError, NodeClosedError, NodeStateError } from "./errors.ts";
import { type NodeEventMap, TypedEventTarget } from "./events.ts";
import { generateIdentity, type Identity } from "./identity/keys.ts";
import { DEFAULT_PUZZLE_DIFFICULTY } from "./identity/puzzle.ts";
import { Dispatcher } from "./node/dispatch.ts";
import { ApplicationHandlers, type Handler } from "./node/handlers.ts";
import { connectionOptions, type NodeOptions, serviceInits } from "./node/options.ts";
import { type ReceiveLock, type ReceiveLockOptions, ReceiveLocks } from "./node/receive_lock.ts";
import { AddressBook, CONNECTION_LIMITS, ConnectionManager } from "./swarm/mod.ts";
import { dialBack, type DialBackService } from "./services/dial_back.ts";
import { identify, type IdentifyService } from "./services/identify.ts";
import { nat, type NatService } from "./services/nat.ts";
import { formatAddress, parseAddress } from "./identity/address.ts";
import { nodeIdOf } from "./identity/node_id.ts";
import { relay, type RelayService } from "./services/relay.ts";
import { holePunch } from "./services/holepunch.ts";
import type { PortMapping } from "./nat/types.ts";
import { ContactRequester } from "./overlay/contacts.ts";
import type { LookupResult } from "./overlay/lookup.ts";
import { parsePeerAddress, type PeerAddress } from "./overlay/peer_address.ts";
import { type Contact, contactOf, DEFAULT_K, RoutingTable } from "./overlay/routing_table.ts";
import { TableUpkeep } from "./overlay/upkeep.ts";
import type { CloseInfo, PeerConnection, RequestOptions } from "./peer/connection.ts";
import { dht } from "./services/dht.ts";
import { metrics, type MetricsService, type NodeMetrics } from "./services/metrics.ts";
import type { ServiceHost } from "./service.ts";
import { shout, type ShoutOptions, type ShoutResult, type ShoutService } from "./services/shout.ts";
import { speak, type SpeakOptions, type SpeakService } from "./services/speak.ts";
import {
  whisper,
  type WhisperOptions,
  type WhisperResult,
  type WhisperService,
} from "./services/whisper.ts";
import type { Frame } from "./wire/frame.ts";
import { decodePayload, OpcodeRegistry, type OpcodeSpec } from "./wire/opcodes.ts";

/**
 * A carrier node. Create one with {@linkcode createNode}.
 *
 * @example
 * ```ts
 * import { createNode } from "@carrier/p2p";
 * await using a = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
 * await using b = await createNode({ puzzleDifficulty: 0 }); // dials out only
 * await b.connect(`${a.address}@${a.listenAddrs[0]}`);
 * console.log(`${await b.ping(a.address)} ms`);
 * ```
 */
export class Node extends TypedEventTarget<NodeEventMap> implements AsyncDisposable {
  /** This node's identity. */
  readonly identity: Identity;
  /** The DHT: `get`, `put`, `cas`, `lock`, `unlock`, `patch`, `changes` (see {@linkcode Dht}). */
  readonly dht: Dht;
  readonly #options: NodeOptions;
  readonly #clock: Clock;
  readonly #closing = new AbortController();
  readonly #manager: ConnectionManager;
  readonly #registry = new OpcodeRegistry();
  readonly #table: RoutingTable;
  readonly #contacts: ContactRequester;
  readonly #upkeep: TableUpkeep;
  readonly #locks: ReceiveLocks;
  readonly #handlers: ApplicationHandlers;
  readonly #shout: ShoutService;
  readonly #whisper: WhisperService;
  readonly #speak: SpeakService;
  readonly #metrics: MetricsService;
  readonly #identify: IdentifyService;
  readonly #dialBack: DialBackService;
  readonly #nat: NatService | undefined;
  readonly #relay: RelayService;
  readonly #addresses: AddressBook;
  readonly #dispatcher: Dispatcher;
  readonly #tasks = new Set<Promise<unknown>>();
  #state: "new" | "running" | "closing" | "closed" = "new";

  /** Use {@linkcode createNode}. */
  constructor(identity: Identity, options: NodeOptions = {}) {
    super();
    this.identity = identity;
    this.#options = options;
    const clock = this.#clock = options.clock ?? systemClock;
    const signal = this.#closing.signal;
    this.#table = new RoutingTable(identity.nodeId, {
      k: options.k ?? DEFAULT_K,
      clock,
      limitLoopback: options.limitLoopback,
    });
    const addresses = this.#addresses = new AddressBook({
      announce: options.announce,
      reachability: options.reachability,
    });
    const manager = this.#manager = new ConnectionManager({
      ...connectionOptions(options),
      identity,
      clock,
      addresses,
      onDialBack: (nonce) => this.#dialBack.arrived(nonce),
      onCircuit: (channel) => this.#relay.circuit(channel),
      servesRelay: options.relay?.serve !== undefined && options.relay.serve !== false,
      isOneWay: (opcode) => this.#registry.get(opcode)?.oneWay ?? false,
      onFrame: (frame, peer) => {
        this.#table.touch(peer.address);
        return this.#dispatcher.onFrame(frame, peer);
      },
      onConnect: (peer) => this.#onConnect(peer),
      onDisconnect: (peer, info) => this.#onDisconnect(peer, info),
      onMigrate: (_from, to) => this.#onMigrate(to),
      onRetired: (peer, info) =>
        this.#dispatcher.hook("peerDisconnect", (s) => s.peerDisconnect?.(peer, info)),
      onListenError: (error, address) => this.#error(error, `listener ${address}`),
      isUseful: (peer) => this.#table.get(peer.address) !== undefined,
    });
    this.#contacts = new ContactRequester(manager, this.#table);
    this.#locks = new ReceiveLocks({
      clock,
      maxHeld: options.maxHeldMessages ?? NODE_LIMITS.maxHeldMessages,
      timeout: options.connection?.requestTimeout,
      deliver: async (frame, peer) => {
        if (await this.#dispatcher.deliver(frame, peer) === false) peer.unhandled(frame);
      },
      error: (err, source) => this.#error(err, source),
    });
    const dispatcher = this.#dispatcher = new Dispatcher({
      registry: this.#registry,
      locks: this.#locks,
      unowned: (frame, peer) => this.#unowned(frame, peer),
      error: (err, source) => this.#error(err, source),
    });
    const self = contactOf(identity.publicKey, identity.address);
    const host: ServiceHost = {
      identity,
      clock,
      table: this.#table,
      get contact() {
        // Known once the node listens; a node that accepts no connections is no replica.
        self.listenAddrs = addresses.acceptsInbound ? addresses.listenAddrs : [];
        return self;
      },
      connections: manager,
      addresses,
      probe: (peer, nonce, o) => manager.probe(peer, nonce, o),
      signal,
      reach: (contact, o) => this.#contacts.reach(contact, o),
      request: (contact, opcode, payload, o = {}) =>
        this.#contacts.request(contact, opcode, payload, {
          ...o,
          signal: o.signal ? AbortSignal.any([signal, o.signal]) : signal,
        }),
      emit: (type, detail) => this.#emit(type, detail),
      error: (err, source) => this.#error(err, source),
    };
    const inits = serviceInits(options);
    this.#shout = dispatcher.add(shout(inits.shout)(host));
    this.#whisper = dispatcher.add(whisper(inits.whisper)(host));
    this.#speak = dispatcher.add(speak(inits.speak)(host));
    this.#metrics = dispatcher.add(
      metrics({
        serve: options.serveMetrics,
        counters: () => ({
          connections: manager.stats,
          shouts: this.#shout.counters(),
          whispers: this.#whisper.counters(),
          relay: this.#relay.counters(),
        }),
      })(host),
    );
    this.dht = dispatcher.add(dht(options.dht)(host)).client;
    this.#identify = dispatcher.add(identify({ updated: (peer) => this.#identified(peer) })(host));
    this.#dialBack = dispatcher.add(dialBack({ serve: options.serveDialBack })(host));
    this.#nat = options.nat === false ? undefined : dispatcher.add(nat(options.nat)(host));
    this.#relay = dispatcher.add(
      relay(options.relay ?? {}, {
        dialCircuit: (hint, s) => {
          const transportAddress = hint.listenAddrs.find((a) => manager.canDial(a));
          if (transportAddress === undefined) {
            return Promise.reject(
              new DialError(`The relay ${formatAddress(hint.identityKey)} has no address to dial`),
            );
          }
          const address = formatAddress(hint.identityKey);
          return manager.dialCircuit(
            { identityKey: hint.identityKey, address, transportAddress },
            s,
          );
        },
        connectThrough: (peer, open, o) => manager.connectThrough(peer, open, o),
        acceptThrough: (stream) => manager.acceptThrough(stream),
      })(host),
    );
    // Registered even when off, to refuse HOLE_PUNCH with FORBIDDEN.
    dispatcher.add(
      holePunch(options.holePunch === false ? { enabled: false } : options.holePunch ?? {}, {
        connectOver: (identityKey, stream, s) => manager.connectOver({ identityKey }, stream, s),
        acceptOver: (stream) => manager.acceptThrough(stream),
      })(host),
    );
    this.#contacts.relayed = (contact, o) => this.#relay.connect(contact, contact.relays ?? [], o);
    this.#handlers = new ApplicationHandlers(host);
    for (const factory of options.services ?? []) dispatcher.add(factory(host));
    this.#upkeep = new TableUpkeep({
      self: identity.nodeId,
      table: this.#table,
      connections: manager,
      lookup: (target, s) => this.dht.findClosest(target, { signal: s }),
      added: (contact) => dispatcher.hook("contactAdded", (s) => s.contactAdded?.(contact)),
      error: (err, source) => this.#error(err, source),
      signal,
      clock,
      maxOutbound: options.maxOutbound ?? CONNECTION_LIMITS.maxOutbound,
      refreshInterval: options.refreshInterval,
    });
    let told = "";
    addresses.onChange((snapshot, change) => {
      this.#emit("addresses", snapshot);
      const announced = JSON.stringify([
        snapshot.listenAddrs,
        snapshot.acceptsInbound,
        snapshot.relays.map((r) => [formatAddress(r.identityKey), r.listenAddrs]),
      ]);
      if (announced === told) return; // reachability alone: nothing new for peers
      told = announced;
      this.#identify.push(snapshot);
      // Closer nodes hear the new addresses in the handshakes of a self-lookup.
      if (change !== "bound" && this.#state === "running" && manager.all().length > 0) {
        this.#track(this.#upkeep.refresh([identity.nodeId]));
      }
    });
  }

  /** This node's address (base58 of its public key). */
  get address(): string {
    return this.identity.address;
  }

  /**
   * Where this node listens, as bound (`HOST:PORT`, ports resolved; a
   * wildcard host stays one); empty for an outbound-only node. What it
   * tells peers is {@linkcode Node.addresses}.
   */
  get listenAddrs(): string[] {
    return this.#manager.listenAddrs;
  }

  /**
   * What this node announces: its listen addresses with wildcards expanded
   * (or the `announce` option), external addresses from port mapping and
   * dial-backs first, whether it accepts inbound connections, and its
   * reachability (see the README's address rules).
   */
  get addresses(): AddressBook {
    return this.#addresses;
  }

  /** The port mappings the gateway granted this node (see `NodeOptions.nat`). */
  get portMappings(): PortMapping[] {
    return this.#nat?.mappings() ?? [];
  }

  /** `ADDRESS@HOST:PORT` for each announced address: what others pass to `connect`. */
  get peerAddresses(): string[] {
    return this.#addresses.listenAddrs.map((a) => `${this.address}@${a}`);
  }

  /** The opcode registry: the link layer's, the services' and the application's opcodes. */
  get registry(): OpcodeRegistry {
    return this.#registry;
  }

  /**
   * The Kademlia routing table. Every connected peer is offered to it; when
   * a bucket is full, a connected (so live) oldest contact stays and the
   * newcomer waits as a replacement, else the oldest makes way.
   */
  get routingTable(): RoutingTable {
    return this.#table;
  }

  /** Open connections. */
  peers(): PeerConnection[] {
    return this.#manager.all();
  }

  /** The connection to `address` (base58), if any. */
  peer(address: string): PeerConnection | undefined {
    return this.#manager.get(address);
  }

  /**
   * Starts listening, runs service startups, dials bootstrap peers. Called by {@linkcode createNode}.
   *
   * @throws {NodeStateError} when the node has started already.
   * @throws {NodeClosedError} when it is closed.
   */
  async start(): Promise<void> {
    this.#open();
    if (this.#state !== "new") {
      throw new NodeStateError("Cannot start the node: it has started already");
    }
    this.#state = "running";
    await this.#manager.start();
    await this.#dispatcher.startup();
    const bootstraps = (this.#options.bootstrap ?? []).map((entry) => {
      const peer = typeof entry === "string" ? parsePeerAddress(entry) : entry;
      return this.#manager.connect(peer, { persistent: true }).catch((err) =>
        this.#error(err, `bootstrap ${peer.address}@${peer.transportAddress}`)
      );
    });
    if (bootstraps.length > 0) {
      // Then find our neighbourhood (FIND_NODE on our own id) and open
      // outbound connections across the buckets.
      this.#track(
        Promise.all(bootstraps).then(() => this.#upkeep.refresh([this.identity.nodeId])),
      );
    }
    this.#upkeep.schedule((task) => this.#track(task));
  }

  /**
   * Kademlia's iterative lookup: the k contacts closest to `target` (a
   * 32-byte NodeId) that accept connections, α FIND_NODE requests in
   * flight. Contacts that are not connected are asked over a short-lived
   * connection (not counted against ℓ, closed once idle for 10 s). Every
   * contact that answers joins the routing table.
   */
  async findClosest(
    target: Uint8Array,
    options: { signal?: AbortSignal; alpha?: number } = {},
  ): Promise<LookupResult> {
    this.#open();
    const result = await this.dht.findClosest(target, {
      ...options,
      signal: this.#signal(options),
    });
    for (const c of result.closest) this.#upkeep.offer({ ...c, lastSeen: this.#clock.now() });
    return result;
  }

  /**
   * Asks a connected peer for the contacts it knows closest to `target`
   * (FIND_NODE): up to k, closest first, never the asker itself.
   *
   * @throws {NackError} (`MALFORMED`) when `target` is not 32 bytes.
   */
  async findNode(
    address: string,
    target: Uint8Array,
    options: RequestOptions = {},
  ): Promise<Contact[]> {
    const peer = this.#connected(address);
    const contact = contactOf(peer.identityKey, peer.address, [...peer.channel.remote.listenAddrs]);
    return await this.dht.findNode(contact, target, { ...options, signal: this.#signal(options) });
  }

  /**
   * Repairs the routing table now: looks up this node's own id and a random
   * id in every bucket up to the farthest occupied one (at most 16 lookups),
   * then tops outbound connections up to ℓ. The node also does this for
   * stale buckets every `refreshInterval`.
   */
  async refreshRoutingTable(options: { signal?: AbortSignal } = {}): Promise<void> {
    this.#open();
    options.signal?.throwIfAborted();
    await this.#upkeep.refreshAll();
  }

  /**
   * Connects to a peer, or returns the open connection: at `ADDRESS@HOST:PORT`,
   * or by its `ADDRESS` alone, found in the routing table or the DHT and
   * reached where it listens, else through one of its relays (a relayed
   * connection: see `NodeOptions.relay`).
   *
   * @throws {PeerAddressError} for a malformed peer address.
   * @throws {AddressError} for a malformed `ADDRESS`.
   * @throws {DialError} when a node named by its address alone is not found, or accepts no connections and names no relay.
   * @throws {ConnectionLimitError} when ℓ outbound connections exist.
   */
  async connect(
    peer: string | PeerAddress,
    options: { signal?: AbortSignal; persistent?: boolean } = {},
  ): Promise<PeerConnection> {
    this.#open();
    const signal = this.#signal(options);
    if (typeof peer === "string" && !peer.includes("@")) {
      return await this.#connectByKey(peer, signal);
    }
    const target = typeof peer === "string" ? parsePeerAddress(peer) : peer;
    // Where it listens: over a relayed connection, a direct one replaces it.
    return await this.#manager.connect(target, { ...options, signal, direct: true });
  }

  async #connectByKey(address: string, signal: AbortSignal): Promise<PeerConnection> {
    const identityKey = parseAddress(address);
    const open = this.#manager.get(address);
    if (open) return open;
    const reachable = (c: Contact | undefined) =>
      c !== undefined && (c.listenAddrs.length > 0 || (c.relays?.length ?? 0) > 0);
    const lookup = async () =>
      (await this.dht.findClosest(nodeIdOf(identityKey), { signal })).target;
    const known = this.#table.get(address);
    const contact = reachable(known) ? known : await lookup();
    if (!reachable(contact)) {
      throw new DialError(
        contact === undefined
          ? `${address} was not found in the network`
          : `${address} accepts no connections and names no relay`,
      );
    }
    // A regular connection, as to an ADDRESS@HOST:PORT: direct first, else through a relay.
    try {
      return await this.#contacts.reach(contact!, { signal, ephemeral: false });
    } catch (err) {
      // The table's contact may be stale (the node since moved behind a
      // relay): what the network says of it now, once.
      if (contact !== known || signal.aborted) throw err;
      const fresh = await lookup();
      if (!reachable(fresh)) throw err;
      return await this.#contacts.reach(fresh!, { signal, ephemeral: false });
    }
  }

  /** Sends PING to a connected peer; resolves the round-trip time in ms. */
  async ping(address: string, options: RequestOptions = {}): Promise<number> {
    return await this.#connected(address).ping({ ...options, signal: this.#signal(options) });
  }

  /**
   * Registers the handler of an application opcode (see `defineOpcode`).
   *
   * @throws {OpcodeRegistryError} if the opcode is reserved or already handled.
   */
  handle<Request extends Schema, Reply extends Schema>(
    spec: OpcodeSpec<Request, Reply>,
    handler: Handler<Request, Reply>,
  ): void {
    this.#dispatcher.own(spec, this.#handlers);
    this.#handlers.add(spec, handler);
  }

  /**
   * Sends an application request to a connected peer and decodes the ACK's data.
   *
   * @throws {NackError} when the peer answers NACK (its reason and data attached).
   * @throws {TimeoutError}, {@linkcode ConnectionClosedError}, {@linkcode PayloadDecodeError}.
   * @throws {FrameTooLargeError} when the request is over a frame size limit.
   */
  async request<Request extends Schema, Reply extends Schema>(
    address: string,
    spec: OpcodeSpec<Request, Reply>,
    message: MessageOf<Request>,
    options: RequestOptions = {},
  ): Promise<MessageOf<Reply> | undefined> {
    const peer = this.#connected(address);
    const payload = toBinary(spec.request, message);
    const data = await peer.request(spec.opcode, payload, {
      ...options,
      signal: this.#signal(options),
    });
    return spec.reply ? decodePayload(spec.reply, data, spec.name) : undefined;
  }

  /**
   * Sends a one-way application message to a connected peer.
   *
   * @throws {FrameTooLargeError} when the message is over a frame size limit.
   */
  async send<Request extends Schema>(
    address: string,
    spec: OpcodeSpec<Request>,
    message: MessageOf<Request>,
    options: RequestOptions = {},
  ): Promise<void> {
    const peer = this.#connected(address);
    const payload = toBinary(spec.request, message);
    await peer.send(spec.opcode, payload, { ...options, signal: this.#signal(options) });
  }

  /**
   * SHOUT: broadcasts `body` to the whole network, each node delivering it
   * once (a `message` event with opcode SHOUT). The message is signed; it
   * travels down the Kademlia bucket tree (Kadcast), each hop acknowledged,
   * an unacknowledged hop retried with the next peer of the same bucket (see
   * `lib/services/shout.ts`). Resolves the message id (hex SHA-256 of the
   * signed envelope) once the first hops have acknowledged it.
   *
   * @throws {SizeLimitError} when the SHOUT would be over `maxFrameSize`.
   */
  shout(body: Uint8Array | string, options: ShoutOptions = {}): Promise<ShoutResult> {
    return this.#shout.shout(body, options);
  }

  /**
   * WHISPER: sends `body` to the node with address `recipient` (base58),
   * directly when connected, else hop by hop towards its NodeId through
   * connected peers and routing-table contacts (see
   * `lib/services/whisper.ts`). Encrypted end to end by default
   * (`encrypted: false`, or the node option `encryptWhispers: false`, sends
   * it signed in the clear). Resolves when the recipient has acknowledged
   * it, with the SHA-256 of the envelope it received and the hops taken.
   *
   * @throws {NackError} (`UNREACHABLE`) when no route reaches the recipient.
   * @throws {SizeLimitError} when it would not fit one frame (or, encrypted, one Noise message).
   */
  whisper(
    recipient: string,
    body: Uint8Array | string,
    options: WhisperOptions = {},
  ): Promise<WhisperResult> {
    return this.#whisper.whisper(recipient, body, options);
  }

  /**
   * SPEAK: sends `body` to every direct peer, once each. Not forwarded
   * unless `ttl` > 0 and the receivers run with `forwardSpeak`. Resolves
   * the number of peers it was sent to.
   *
   * @throws {SizeLimitError} when the SPEAK would be over `maxFrameSize`.
   */
  speak(body: Uint8Array | string, options: SpeakOptions = {}): Promise<number> {
    return this.#speak.speak(body, options);
  }

  /**
   * Asks a peer for its metrics (METRICS); the peer answers only if it runs
   * with `serveMetrics`, else the request fails with NACK `FORBIDDEN`.
   */
  async requestMetrics(address: string, options: RequestOptions = {}): Promise<NodeMetrics> {
    return await this.#metrics.request(this.#connected(address), options);
  }

  /**
   * The bounds on what peers can make this node hold, with their values
   * for this node's options and the memory each can pin (see
   * {@linkcode resourceBudget}).
   */
  budget(): ResourceBudget {
    return resourceBudget(this.#options);
  }

  /** This node's counters. */
  metrics(): NodeMetrics {
    return this.#metrics.snapshot();
  }

  /**
   * Receive-then-lock: waits for the next frame of `opcode` from `address`,
   * then holds the peer's other frames until the lock is released, so that a
   * multi-message exchange does not interleave with anything else.
   *
   * @throws {TimeoutError} when no such frame arrives in time.
   * @throws {CarrierError} when the peer is already locked.
   * @example
   * ```ts ignore
   * using lock = await node.receiveLock(peerAddress, HELLO.opcode);
   * const second = await lock.next(STEP.opcode);
   * const third = await lock.next(STEP.opcode);
   * ```
   */
  async receiveLock(
    address: string,
    opcode: number,
    options: ReceiveLockOptions = {},
  ): Promise<ReceiveLock> {
    const peer = this.#connected(address);
    return await this.#locks.acquire(peer, opcode, { ...options, signal: this.#signal(options) });
  }

  /**
   * Closes every connection, runs service cleanups, stops listening.
   * Idempotent. What is in flight rejects with `NodeClosedError`.
   */
  async close(): Promise<void> {
    if (this.#state === "closing" || this.#state === "closed") return;
    this.#state = "closing";
    this.#closing.abort(new NodeClosedError("Node closed"));
    await this.#manager.close();
    await Promise.allSettled([...this.#tasks]);
    await this.#dispatcher.cleanup();
    this.#state = "closed";
  }

  /** Closes the node. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- internals ----

  /** @throws {NodeClosedError} once the node is closing or closed. */
  #open(): void {
    if (this.#closing.signal.aborted) throw this.#closing.signal.reason;
  }

  /** The call's signal combined with the node's: either aborts it. */
  #signal(options: { signal?: AbortSignal }): AbortSignal {
    const node = this.#closing.signal;
    return options.signal ? AbortSignal.any([node, options.signal]) : node;
  }

  #connected(address: string): PeerConnection {
    this.#open();
    const peer = this.#manager.get(address);
    if (!peer) throw new ConnectionClosedError(`Not connected to ${address}`);
    return peer;
  }

  #track(task: Promise<unknown>): void {
    this.#tasks.add(task);
    task.catch(() => {}).finally(() => this.#tasks.delete(task));
  }

  /**
   * A frame nobody owns: a request is left to the connection (NACK
   * `UNKNOWN_OPCODE`), a one-way frame becomes a `message` event.
   */
  #unowned(frame: Frame, peer: PeerConnection): void | false {
    if (frame.id !== 0) return false;
    this.#emit("message", {
      from: peer.address,
      opcode: frame.opcode,
      topic: "",
      body: frame.payload,
    });
  }

  /** A peer's IDENTIFY changed where it accepts connections: its contact follows. */
  #identified(peer: PeerConnection): void {
    const { remote } = peer.channel;
    this.#table.setListenAddrs(
      peer.address,
      remote.acceptsInbound ? [...remote.listenAddrs] : [],
      remote.relays,
    );
    this.#upkeep.learn(peer);
  }

  #onConnect(peer: PeerConnection): void {
    this.#upkeep.learn(peer);
    this.#dispatcher.hook("peerConnect", (s) => s.peerConnect?.(peer));
    this.#emit("peer:connect", { address: peer.address, connection: peer });
    this.#emitPath(peer);
  }

  /** A direct connection replaced the peer's relayed one: services see a new connection; the app, a new path. */
  #onMigrate(peer: PeerConnection): void {
    this.#upkeep.learn(peer);
    this.#dispatcher.hook("peerConnect", (s) => s.peerConnect?.(peer));
    this.#emitPath(peer);
  }

  #emitPath(peer: PeerConnection): void {
    const relay = peer.channel.stream.relay;
    this.#emit(
      "peer:path",
      relay === undefined
        ? { address: peer.address, path: "direct", connection: peer }
        : { address: peer.address, path: "relayed", relay, connection: peer },
    );
  }

  #onDisconnect(peer: PeerConnection, info: CloseInfo): void {
    this.#locks.peerGone(peer, info);
    this.#dispatcher.hook("peerDisconnect", (s) => s.peerDisconnect?.(peer, info));
    this.#emit("peer:disconnect", { address: peer.address, connection: peer, info });
  }

  #error(err: unknown, source: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    this.#emit("error", { error, source });
  }

  #emit<K extends keyof NodeEventMap>(type: K, detail: NodeEventMap[K]["detail"]): void {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}

/**
 * Creates and starts a node: listens (if `listen` is given), runs service
 * startups, and starts dialing bootstrap peers. The dials (and then the
 * lookup of the node's neighbourhood) run in the background, so that a
 * listener added after `createNode` still sees their `peer:connect` events;
 * `await node.connect(peer)` for a connection needed at once.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode } from "@carrier/p2p";
 * await using node = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
 * assert.equal(node.listenAddrs.length, 1);
 * ```
 */
export async function createNode(options: NodeOptions = {}): Promise<Node> {
  const identity = options.identity ??
    await generateIdentity({
      difficulty: options.puzzleDifficulty ?? DEFAULT_PUZZLE_DIFFICULTY,
    });
  const node = new Node(identity, options);
  try {
    await node.start();
  } catch (err) {
    await node.close();
    throw err;
  }
  return node;
}
