/**
 * The attackers of `bench/flood.ts` (issue 11): each attack as an attacker
 * on 127.0.0.1 would run it against one node, with the counters it can see
 * from its side (requests sent, ACKs, NACKs by reason and limit, connections
 * the node closed).
 *
 * Run as its own process by `bench/flood.ts`, so that an attacker's CPU
 * work never stalls the event loop that times the legit peer's probes:
 *
 * ```sh
 * deno run --allow-net=127.0.0.1 --allow-run=node --allow-read --allow-env \
 *   bench/_attacks.ts --attack NAME --target ADDRESS@HOST:PORT
 * ```
 *
 * It prepares (identities, the record a requester asks for), prints
 * `{"event":"ready"}`, attacks from the line `go` on its standard input
 * until that input ends, then prints `{"event":"done","counters":{…}}` and
 * exits. SIGINT or SIGTERM stop it the same way. A reset storm's Node.js
 * child is announced as `{"event":"child","pid":N}` so that its CPU counts
 * as the attacker's.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import {
  createNode,
  dhtKey,
  generateIdentity,
  generateIdentitySync,
  type Identity,
  NackError,
  nodeIdOf,
  Opcode,
  parseAddress,
  type SecureChannel,
  TcpTransport,
} from "../mod.ts";
import { PeerConnection, secureOutbound } from "../protocol.ts";
import { DisconnectReason, NackReason } from "../lib/protocol.ts";
import { createRecord } from "../lib/dht/record.ts";
import {
  CasPhase,
  CasRequestSchema,
  FindValueRequestSchema,
  LockRequestSchema,
  StoreRequestSchema,
} from "../lib/protocol.ts";
import { pack, paddedStore, pingPayload, requests, shoutFrom } from "../tests/attack/_attack.ts";
import { delay, lines } from "./_util.ts";

/** The node under attack. */
export interface Target {
  /** `ADDRESS@HOST:PORT`. */
  peerAddress: string;
  /** Its address (base58). */
  address: string;
  /** Where it listens, `HOST:PORT`. */
  hostPort: string;
  /** Its Ed25519 public key. */
  publicKey: Uint8Array;
  /** Its NodeId (SHA-256 of the public key). */
  nodeId: Uint8Array;
}

/** Parses `ADDRESS@HOST:PORT` into a {@linkcode Target}. */
export function targetOf(peerAddress: string): Target {
  const at = peerAddress.indexOf("@");
  const address = peerAddress.slice(0, at);
  return {
    peerAddress,
    address,
    hostPort: peerAddress.slice(at + 1),
    publicKey: parseAddress(address),
    nodeId: nodeIdOf(address),
  };
}

/** Named counts, in the order first counted. */
export class Counters {
  readonly #counts = new Map<string, number>();
  /** Adds `n` to `name`. */
  add(name: string, n = 1): void {
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + n);
  }
  /** The count of `name`. */
  get(name: string): number {
    return this.#counts.get(name) ?? 0;
  }
  /** Sets `name` to `value`. */
  set(name: string, value: number): void {
    this.#counts.set(name, value);
  }
  /** Raises `name` to `value` if it is below. */
  max(name: string, value: number): void {
    if (value > this.get(name)) this.#counts.set(name, value);
  }
  /** Counts a failed request: a NACK by reason and the limit it names, else the error's name. */
  refused(err: unknown): string {
    const name = refusalOf(err);
    this.add(name);
    return name;
  }
  /** Counts a connection the node closed, by its DISCONNECT reason. */
  closedByNode(reason: DisconnectReason | string): void {
    this.add(`closed by node: ${typeof reason === "string" ? reason : DisconnectReason[reason]}`);
  }
  /** A plain object of the counts. */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }
}

/**
 * `refused RATE_LIMITED (maxRecordsPerPeer)` for a NACK naming limits (all
 * it names: a full store names `maxRecords/maxBytes`), else the error's name.
 */
export function refusalOf(err: unknown): string {
  if (err instanceof NackError) {
    const limits = [...new Set(err.message.match(/\bmax[A-Z]\w+/g) ?? [])].join("/");
    return `refused ${NackReason[err.reason] ?? err.reason}${limits ? ` (${limits})` : ""}`;
  }
  return `failed ${(err as Error)?.name ?? String(err)}`;
}

/** What an attack gets to run with. */
export interface AttackContext {
  target: Target;
  /** Aborted when the attack must stop. */
  signal: AbortSignal;
  counters: Counters;
  transport: TcpTransport;
  /** Announces a child process whose CPU is the attacker's. */
  child(pid: number): void;
}

/** One attack of the bench. */
export interface Attack {
  /** Its `--attack` name. */
  name: string;
  /** What it does, with its sizes, for the table. */
  title: string;
  /** Runs before `go` (not timed): identities, the record asked for. */
  setup?(context: AttackContext): Promise<void>;
  /** Attacks until `context.signal` aborts; resolves once every socket of it is closed. */
  run(context: AttackContext): Promise<void>;
  /**
   * Run while the attack still goes on, just before it stops: what a fresh
   * honest peer gets from the node for the resource the attack goes after.
   */
  legitCheck?(context: AttackContext): Promise<string>;
}

// ---------------------------------------------------------------------------
// Sizes. The machine has 2 cores for the node, the attacker and the bench:
// each attack is paced so the attacker stays well under one core.

/** The node's defaults this bench leans on (see lib/swarm/limits.ts, lib/dht/defaults.ts). */
const MAX_PENDING_HANDSHAKES = 16;
const MAX_INBOUND = 64;
const PUZZLE_DIFFICULTY = 8;
const VALUE_64K = 64 * 1024;
const FRAME_1M = 1024 * 1024;

const RESET_CONCURRENCY = 16;
const RESETS_PER_SECOND = 1_000;
const NEVER_READ_PEERS = 16;
const NEVER_READ_BATCHES_PER_SECOND = 500; // of 80 requests
const PADDED_PEERS = 4;
const PADDED_WINDOW = 2;
const PADDED_PER_SECOND = 64;
const CAS_PEERS = 8;
const CAS_WINDOW = 4;
const CAS_PER_SECOND = 300;
const SILENT_SOCKETS = 2 * MAX_PENDING_HANDSHAKES;
const SILENT_REOPEN_MS = 100;
const IDLE_PEERS = MAX_INBOUND + 8;
const IDLE_BATCH = 8;
const IDLE_BATCH_MS = 250;
const SHOUT_WINDOW = 256;
const SHOUTS_PER_ORIGIN = 3;
const LOCK_PEERS = 4;
const LOCK_WINDOW = 8;
const LOCK_PER_SECOND = 500;
const LOCK_TTL_MS = 300_000; // the replicas' maxLockTtl
const FILL_PEERS = 4;
const FILL_WINDOW = 4;
const FILL_PER_SECOND = 200;

// ---------------------------------------------------------------------------
// Helpers.

/** Identities that pass the node's puzzle, made ahead in the background. */
class IdentityPool {
  readonly #ready: Identity[] = [];
  readonly #size: number;
  #filling: Promise<void> | undefined;
  made = 0;
  constructor(size: number) {
    this.#size = size;
  }
  /** Makes `count` now (setup). */
  async fill(count = this.#size): Promise<void> {
    while (this.#ready.length < count) {
      this.#ready.push(await generateIdentity({ difficulty: PUZZLE_DIFFICULTY }));
      this.made++;
    }
  }
  /** The next identity; refills the pool behind it. */
  async take(): Promise<Identity> {
    const identity = this.#ready.shift() ??
      (this.made++, await generateIdentity({ difficulty: PUZZLE_DIFFICULTY }));
    this.#filling ??= this.fill().finally(() => this.#filling = undefined);
    return identity;
  }
}

/** A token bucket: `take` resolves at most `perSecond` times a second. */
class Pacer {
  readonly #interval: number;
  #next = 0;
  constructor(perSecond: number) {
    this.#interval = 1000 / perSecond;
  }
  async take(signal: AbortSignal): Promise<void> {
    const now = performance.now();
    this.#next = Math.max(this.#next + this.#interval, now - 250); // at most 250 ms of burst
    const wait = this.#next - now;
    if (wait > 1 && !signal.aborted) await abortableDelay(wait, signal);
  }
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** A raw authenticated channel to the target: the attacker decides what to read and write. */
async function channelTo(context: AttackContext, identity: Identity): Promise<SecureChannel> {
  const stream = await context.transport.dial(context.target.hostPort, {
    signal: context.signal,
  });
  try {
    return await secureOutbound(stream, { identity, expectedRemote: context.target.publicKey });
  } catch (err) {
    stream.close();
    throw err;
  }
}

/**
 * An authenticated PeerConnection to the target (it answers PING and
 * KEEPALIVE like any peer, and ACKs the SHOUTs the node forwards to it, as a
 * leaf must). Counts its close when the node closed it.
 */
async function peerTo(
  context: AttackContext,
  identity: Identity,
  options: { maxPendingRequests?: number } = {},
): Promise<PeerConnection> {
  const channel = await channelTo(context, identity);
  const peer = new PeerConnection(channel, {
    maxPendingRequests: options.maxPendingRequests,
    requestTimeout: 60_000,
    onFrame(frame, connection) {
      if (frame.id === 0) return;
      if (frame.opcode === Opcode.SHOUT) {
        context.counters.add("SHOUTs forwarded to the leaf");
        return connection.ack(frame);
      }
      return connection.nack(frame, NackReason.UNKNOWN_OPCODE);
    },
  });
  context.counters.add("connections");
  peer.closed.then((info) => {
    if (info.remote) context.counters.closedByNode(info.reason);
  });
  return peer;
}

/** Runs `slots` loops of `body` until the signal aborts; a failing body is counted and retried. */
async function slots(
  context: AttackContext,
  count: number,
  body: (slot: number) => Promise<void>,
): Promise<void> {
  await Promise.all(Array.from({ length: count }, async (_, slot) => {
    while (!context.signal.aborted) {
      try {
        await body(slot);
      } catch (err) {
        if (context.signal.aborted) return;
        context.counters.add(`attacker errors: ${(err as Error).name}`);
        await abortableDelay(100, context.signal);
      }
    }
  }));
}

/**
 * Requests from rotating identities: `peers` connections, each with
 * `window` requests outstanding, paced to `perSecond` in all. A peer refused
 * for a per-peer quota (`max…PerPeer`) is closed and a fresh identity takes
 * its place, as an attacker who wants more than one peer's share would do
 * (`rotate` decides when, from the quotas that refused the peer so far).
 */
async function rotatingRequests(
  context: AttackContext,
  options: {
    peers: number;
    window: number;
    perSecond: number;
    pool: IdentityPool;
    /** The next request of a peer (`quotas`: its per-peer quotas reached so far). */
    next(i: number, quotas: Set<string>): { opcode: number; payload: Uint8Array; granted: string };
    /** Whether a peer whose quotas `quotas` were reached makes room for a fresh identity. @default {any} */
    rotate?(quotas: Set<string>): boolean;
  },
): Promise<void> {
  const pacer = new Pacer(options.perSecond);
  const rotateWhen = options.rotate ?? ((quotas) => quotas.size > 0);
  let sequence = 0;
  await slots(context, options.peers, async () => {
    const identity = await options.pool.take();
    context.counters.add("identities");
    const peer = await peerTo(context, identity);
    const quotas = new Set<string>();
    let rotate = false;
    const stop = () => peer.close().catch(() => {});
    context.signal.addEventListener("abort", stop, { once: true });
    try {
      await Promise.all(Array.from({ length: options.window }, async () => {
        while (!context.signal.aborted && !rotate && !peer.isClosed) {
          await pacer.take(context.signal);
          if (context.signal.aborted || rotate) return;
          const { opcode, payload, granted } = options.next(sequence++, quotas);
          context.counters.add("requests sent");
          try {
            await peer.request(opcode, payload);
            context.counters.add(granted);
          } catch (err) {
            if (context.signal.aborted) return;
            const quota = /\((max\w+PerPeer)\)$/.exec(context.counters.refused(err))?.[1];
            if (quota) quotas.add(quota);
            if (rotateWhen(quotas)) rotate = true;
            if (peer.isClosed) return;
          }
        }
      }));
    } finally {
      context.signal.removeEventListener("abort", stop);
      await peer.close();
    }
  });
}

/** A fresh honest peer sends one request; "ok" or what refused it. */
async function legitRequest(
  context: AttackContext,
  what: string,
  opcode: number,
  payload: Uint8Array,
): Promise<string> {
  const identity = await generateIdentity({ difficulty: PUZZLE_DIFFICULTY });
  let peer: PeerConnection | undefined;
  try {
    const stream = await context.transport.dial(context.target.hostPort);
    peer = new PeerConnection(
      await secureOutbound(stream, { identity, expectedRemote: context.target.publicKey }),
    );
    await peer.request(opcode, payload, { timeout: 10_000 });
    return `${what}: ok`;
  } catch (err) {
    return `${what}: ${refusalOf(err)}${
      err instanceof NackError ? "" : ` ${(err as Error).message}`
    }`;
  } finally {
    await peer?.close();
  }
}

/**
 * A fresh honest peer's request with a 1-byte value and one with a 64 KiB
 * value (a full store may still have room for the small one).
 */
async function legitRequests(
  context: AttackContext,
  what: string,
  request: (value: Uint8Array) => [number, Uint8Array],
): Promise<string> {
  const small = await legitRequest(context, `legit ${what} 1 B`, ...request(Uint8Array.of(1)));
  const large = await legitRequest(
    context,
    `legit ${what} 64 KiB`,
    ...request(new Uint8Array(VALUE_64K).fill(9)),
  );
  return `${small}; ${large}`;
}

const random32 = () => crypto.getRandomValues(new Uint8Array(32));

/** A STORE of `value` at `key`, version 1. */
function storeRequest(key: Uint8Array, value: Uint8Array): Uint8Array {
  return toBinary(
    StoreRequestSchema,
    create(StoreRequestSchema, { record: createRecord({ key, value, version: 1 }) }),
  );
}

/** The padding that makes `paddedStore` of a 32-byte key and a 1-byte value `total` bytes (or just under). */
function paddingFor(total: number): number {
  let padding = total - 64;
  for (
    let length;
    (length = paddedStore(new Uint8Array(32), Uint8Array.of(0), padding).length) > total;
  ) {
    padding -= length - total;
  }
  return padding;
}

/** A DHT_CAS PREPARE of a first version (expected 0) of `key`. */
function prepare(key: Uint8Array, value: Uint8Array): Uint8Array {
  return toBinary(
    CasRequestSchema,
    create(CasRequestSchema, {
      record: createRecord({ key, value, version: 1 }),
      expectedVersion: 0n,
      proposal: crypto.getRandomValues(new Uint8Array(16)),
      phase: CasPhase.PREPARE,
    }),
  );
}

const lockRequest = (key: Uint8Array, ttl: number) =>
  toBinary(LockRequestSchema, create(LockRequestSchema, { key, ttlMs: BigInt(ttl) }));

// ---------------------------------------------------------------------------
// The attacks.

const RESET_SCRIPT = `
const net = require("node:net");
const [port, concurrency, perSecond] = process.argv.slice(1).map(Number);
const counts = { connects: 0, resets: 0, "connect errors": 0 };
let active = 0, credit = 0, stopping = false;
function one() {
  active++;
  counts.connects++;
  const s = net.connect(port, "127.0.0.1", () => { s.resetAndDestroy(); counts.resets++; });
  s.on("error", () => counts["connect errors"]++);
  s.on("close", () => active--);
}
const timer = setInterval(() => {
  credit = Math.min(credit + perSecond / 100, perSecond / 10);
  while (!stopping && credit >= 1 && active < concurrency) { credit--; one(); }
}, 10);
function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  const wait = setInterval(() => {
    if (active > 0) return;
    clearInterval(wait);
    process.stdout.write(JSON.stringify(counts) + "\\n", () => process.exit(0));
  }, 10);
}
process.stdin.on("end", stop);
process.stdin.resume();
process.on("SIGTERM", stop);
`;

const resetStorm: Attack = {
  name: "reset-storm",
  title: `reset storm (Node.js, ${RESET_CONCURRENCY} at once, ≤ ${RESETS_PER_SECOND}/s)`,
  async run(context) {
    const port = context.target.hostPort.slice(context.target.hostPort.lastIndexOf(":") + 1);
    while (!context.signal.aborted) {
      const child = new Deno.Command("node", {
        args: ["-e", RESET_SCRIPT, port, String(RESET_CONCURRENCY), String(RESETS_PER_SECOND)],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      context.child(child.pid);
      const writer = child.stdin.getWriter();
      const stop = () => writer.close().catch(() => {});
      context.signal.addEventListener("abort", stop, { once: true });
      let out = "";
      for await (const line of lines(child.stdout)) out = line;
      const status = await child.status;
      context.signal.removeEventListener("abort", stop);
      if (out) {
        for (const [name, n] of Object.entries(JSON.parse(out) as Record<string, number>)) {
          context.counters.add(name, n);
        }
      }
      if (!status.success) {
        context.counters.add(`reset script exits ${status.code}`);
        await abortableDelay(500, context.signal);
      }
    }
  },
};

const neverRead: Attack = {
  name: "never-read",
  title: `never-read requester (${NEVER_READ_PEERS} peers: FIND_VALUE of a 64 KiB record + PING)`,
  async setup(context) {
    // A legit writer puts the record the requesters then ask for.
    await using writer = await createNode();
    await writer.connect(context.target.peerAddress);
    const put = await writer.dht.put("big", new Uint8Array(VALUE_64K).fill(7), {
      minReplicas: 1,
    });
    context.counters.add("64 KiB record put, replicas", put.replicas);
  },
  async run(context) {
    const findValue = toBinary(
      FindValueRequestSchema,
      create(FindValueRequestSchema, { key: dhtKey("big") }),
    );
    const ping = pingPayload();
    const pool = new IdentityPool(NEVER_READ_PEERS);
    await pool.fill();
    const pacer = new Pacer(NEVER_READ_BATCHES_PER_SECOND);
    await slots(context, NEVER_READ_PEERS, async () => {
      const channel = await channelTo(context, await pool.take());
      context.counters.add("connections");
      const stop = () => channel.close();
      context.signal.addEventListener("abort", stop, { once: true });
      let id = 1;
      try {
        // Write requests and never read: once the node stops reading, the
        // kernel's buffers fill and the write waits until the node closes.
        while (!context.signal.aborted) {
          await pacer.take(context.signal);
          const frames = [
            ...requests(Opcode.FIND_VALUE, findValue, 40, id),
            ...requests(Opcode.PING, ping, 40, id + 40),
          ];
          id += 80;
          await channel.writeMany(pack(frames));
          context.counters.add("requests written", frames.length);
        }
      } catch (err) {
        if (!context.signal.aborted) {
          context.counters.closedByNode(`write fails (${(err as Error).name})`);
        }
      } finally {
        context.signal.removeEventListener("abort", stop);
        channel.close();
      }
      await abortableDelay(100, context.signal);
    });
  },
};

const paddedStores: Attack = {
  name: "padded-stores",
  title:
    `padded STOREs (1-byte values in 1 MiB frames, ${PADDED_PEERS} rotating peers, ≤ ${PADDED_PER_SECOND}/s)`,
  run(context) {
    const pool = new IdentityPool(PADDED_PEERS);
    // The frame's own fields and prefix fit in the rest.
    const padding = paddingFor(FRAME_1M - 64);
    return rotatingRequests(context, {
      peers: PADDED_PEERS,
      window: PADDED_WINDOW,
      perSecond: PADDED_PER_SECOND,
      pool,
      next: () => ({
        opcode: Opcode.STORE,
        payload: paddedStore(random32(), Uint8Array.of(0), padding),
        granted: "stored",
      }),
    });
  },
  legitCheck: (context) =>
    legitRequest(context, "legit STORE", Opcode.STORE, storeRequest(random32(), Uint8Array.of(1))),
};

const casReservations: Attack = {
  name: "cas-reservations",
  title:
    `CAS reservations (PREPAREs of 64 KiB records, ${CAS_PEERS} rotating peers, ≤ ${CAS_PER_SECOND}/s)`,
  run(context) {
    const pool = new IdentityPool(CAS_PEERS);
    const value = new Uint8Array(VALUE_64K).fill(0x55);
    return rotatingRequests(context, {
      peers: CAS_PEERS,
      window: CAS_WINDOW,
      perSecond: CAS_PER_SECOND,
      pool,
      next: () => ({
        opcode: Opcode.DHT_CAS,
        payload: prepare(random32(), value),
        granted: "reserved",
      }),
    });
  },
  legitCheck: (context) =>
    legitRequests(context, "PREPARE", (value) => [Opcode.DHT_CAS, prepare(random32(), value)]),
};

const silentSockets: Attack = {
  name: "silent-sockets",
  title: `silent sockets (${SILENT_SOCKETS} that never send; each reopened ≤ ${
    1000 / SILENT_REOPEN_MS
  }/s)`,
  async run(context) {
    let held = 0;
    await slots(context, SILENT_SOCKETS, async () => {
      const opened = performance.now();
      const socket = await context.transport.dial(context.target.hostPort, {
        signal: context.signal,
      });
      context.counters.add("sockets opened");
      const stop = () => socket.close();
      context.signal.addEventListener("abort", stop, { once: true });
      try {
        // Resolves null (or fails) when the node closes it.
        await socket.read(new Uint8Array(1)).catch(() => null);
      } finally {
        context.signal.removeEventListener("abort", stop);
        socket.close();
      }
      if (context.signal.aborted) return;
      const lasted = performance.now() - opened;
      context.counters.closedByNode("socket");
      held += lasted;
      await abortableDelay(SILENT_REOPEN_MS - lasted, context.signal);
    });
    const closed = context.counters.get("closed by node: socket");
    context.counters.set("ms held per socket (mean)", closed ? Math.round(held / closed) : 0);
  },
};

/** The idle peers' identities, made in setup: an evicted peer comes back as itself. */
const idleIdentities: Identity[] = [];

const idlePeers: Attack = {
  name: "idle-peers",
  title: `idle peers (${IDLE_PEERS} authenticated, reconnected in batches of ${IDLE_BATCH})`,
  async setup() {
    for (let i = 0; i < IDLE_PEERS; i++) {
      idleIdentities.push(await generateIdentity({ difficulty: PUZZLE_DIFFICULTY }));
    }
  },
  async run(context) {
    const identities = idleIdentities;
    const open = new Map<number, PeerConnection>();
    const stop = () => {
      for (const peer of open.values()) peer.close().catch(() => {});
    };
    context.signal.addEventListener("abort", stop, { once: true });
    try {
      while (!context.signal.aborted) {
        const started = performance.now();
        const closed = identities.map((_, i) => i).filter((i) =>
          !open.get(i) || open.get(i)!.isClosed
        );
        const batch = closed.slice(0, IDLE_BATCH);
        await Promise.all(batch.map(async (i) => {
          try {
            const peer = await peerTo(context, identities[i]);
            open.set(i, peer);
            if (context.signal.aborted) await peer.close();
          } catch (err) {
            if (!context.signal.aborted) context.counters.refused(err);
          }
        }));
        context.counters.max(
          "most open at once",
          [...open.values()].filter((p) => !p.isClosed).length,
        );
        await abortableDelay(IDLE_BATCH_MS - (performance.now() - started), context.signal);
      }
    } finally {
      context.signal.removeEventListener("abort", stop);
      await Promise.all([...open.values()].map((p) => p.close()));
    }
  },
};

/**
 * One connection floods; a second one of the attacker only listens, as a
 * leaf the node forwards every SHOUT to (and ACKs them). Two flooding
 * connections would each be the other's leaf: the node, which stops reading
 * a peer with `maxInboundRequests` SHOUTs being forwarded, then waits for
 * ACKs queued behind the requests it no longer reads, and takes about 16
 * SHOUTs a second per connection (each forward times out after 2 s): less
 * load, not more.
 */
const shoutFlood: Attack = {
  name: "shout-flood",
  title:
    `SHOUT flood (1 peer, ${SHOUT_WINDOW} outstanding, a fresh origin every ${SHOUTS_PER_ORIGIN}; 1 listening leaf)`,
  async run(context) {
    const pool = new IdentityPool(2);
    await pool.fill();
    const leaf = await peerTo(context, await pool.take());
    const stopLeaf = () => leaf.close().catch(() => {});
    context.signal.addEventListener("abort", stopLeaf, { once: true });
    try {
      await slots(context, 1, async () => {
        const peer = await peerTo(context, await pool.take(), {
          maxPendingRequests: SHOUT_WINDOW,
        });
        const stop = () => peer.close().catch(() => {});
        context.signal.addEventListener("abort", stop, { once: true });
        let origin = generateIdentitySync({ difficulty: 0 });
        let sequence = 0;
        context.counters.add("origins");
        try {
          await Promise.all(Array.from({ length: SHOUT_WINDOW }, async () => {
            while (!context.signal.aborted && !peer.isClosed) {
              if (sequence === SHOUTS_PER_ORIGIN) {
                origin = generateIdentitySync({ difficulty: 0 });
                context.counters.add("origins");
                sequence = 0;
              }
              const payload = shoutFrom(origin, ++sequence);
              context.counters.add("SHOUTs sent");
              try {
                await peer.request(Opcode.SHOUT, payload);
                context.counters.add("acked");
              } catch (err) {
                if (context.signal.aborted || peer.isClosed) return;
                context.counters.refused(err);
              }
            }
          }));
        } finally {
          context.signal.removeEventListener("abort", stop);
          await peer.close();
        }
      });
    } finally {
      context.signal.removeEventListener("abort", stopLeaf);
      await leaf.close();
    }
  },
};

const lockExhaustion: Attack = {
  name: "lock-exhaustion",
  title: `lock/CAS exhaustion (DHT_LOCK ${
    LOCK_TTL_MS / 1000
  } s + PREPAREs, ${LOCK_PEERS} rotating peers, ≤ ${LOCK_PER_SECOND}/s)`,
  run(context) {
    const pool = new IdentityPool(LOCK_PEERS);
    const squat = new TextEncoder().encode("squat");
    return rotatingRequests(context, {
      peers: LOCK_PEERS,
      window: LOCK_WINDOW,
      perSecond: LOCK_PER_SECOND,
      pool,
      // Leases and reservations alternate until the reservation quota is
      // reached; then leases only, until the lease quota rotates the peer.
      next: (i, quotas) =>
        i % 2 === 0 || quotas.has("maxReservationsPerPeer")
          ? {
            opcode: Opcode.DHT_LOCK,
            payload: lockRequest(random32(), LOCK_TTL_MS),
            granted: "leases",
          }
          : { opcode: Opcode.DHT_CAS, payload: prepare(random32(), squat), granted: "reserved" },
      rotate: (quotas) => quotas.has("maxLocksPerPeer"),
    });
  },
  async legitCheck(context) {
    const lock = await legitRequest(
      context,
      "legit DHT_LOCK",
      Opcode.DHT_LOCK,
      lockRequest(random32(), 10_000),
    );
    const cas = await legitRequest(
      context,
      "legit PREPARE",
      Opcode.DHT_CAS,
      prepare(random32(), Uint8Array.of(1)),
    );
    return `${lock}; ${cas}`;
  },
};

const storeFilling: Attack = {
  name: "store-filling",
  title:
    `store filling (STOREs of 64 KiB values at keys next to the node's id, ${FILL_PEERS} rotating peers, ≤ ${FILL_PER_SECOND}/s)`,
  run(context) {
    const pool = new IdentityPool(FILL_PEERS);
    const value = new Uint8Array(VALUE_64K).fill(0x33);
    // Keys as close to the node as can be (its id, the low 8 bytes random):
    // a full store has nothing farther to evict for an honest key.
    const nearKey = () => {
      const key = context.target.nodeId.slice();
      key.set(crypto.getRandomValues(new Uint8Array(8)), 24);
      return key;
    };
    return rotatingRequests(context, {
      peers: FILL_PEERS,
      window: FILL_WINDOW,
      perSecond: FILL_PER_SECOND,
      pool,
      next: () => ({
        opcode: Opcode.STORE,
        payload: storeRequest(nearKey(), value),
        granted: "stored",
      }),
    });
  },
  legitCheck: (context) =>
    legitRequests(context, "STORE", (value) => [Opcode.STORE, storeRequest(random32(), value)]),
};

/** Every attack, in the issue's order. */
export const ATTACKS: readonly Attack[] = [
  resetStorm,
  neverRead,
  paddedStores,
  casReservations,
  silentSockets,
  idlePeers,
  shoutFlood,
  lockExhaustion,
  storeFilling,
];

// ---------------------------------------------------------------------------
// The attacker process.

async function main(args: string[]): Promise<void> {
  const option = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const name = option("--attack");
  const peerAddress = option("--target");
  const attack = ATTACKS.find((a) => a.name === name);
  if (!attack || !peerAddress) {
    console.error(
      `usage: _attacks.ts --attack ${
        ATTACKS.map((a) => a.name).join("|")
      } --target ADDRESS@HOST:PORT`,
    );
    Deno.exit(2);
  }
  const out = (event: Record<string, unknown>) => console.log(JSON.stringify(event));
  const controller = new AbortController();
  const transport = new TcpTransport();
  const context: AttackContext = {
    target: targetOf(peerAddress),
    signal: controller.signal,
    counters: new Counters(),
    transport,
    child: (pid) => out({ event: "child", pid }),
  };
  const stopRequested = Promise.withResolvers<void>();
  const onSignal = () => stopRequested.resolve();
  for (const s of ["SIGINT", "SIGTERM"] as const) Deno.addSignalListener(s, onSignal);
  // Standard input: "go" starts the attack; its end stops it.
  const go = Promise.withResolvers<void>();
  (async () => {
    for await (const line of lines(Deno.stdin.readable)) if (line.trim() === "go") go.resolve();
  })().catch(() => {}).finally(() => stopRequested.resolve());

  await attack.setup?.(context);
  out({ event: "ready" });
  const started = await Promise.race([
    go.promise.then(() => true),
    stopRequested.promise.then(() => false),
  ]);
  let legit: string | undefined;
  if (started) {
    const running = attack.run(context).catch((err) => {
      context.counters.add(`attack failed: ${(err as Error).message}`);
    });
    await stopRequested.promise;
    legit = await attack.legitCheck?.(context);
    controller.abort();
    // Everything the attack opened closes; a stuck close does not hold the report.
    await Promise.race([running, delay(10_000)]);
  }
  transport.close();
  out({ event: "done", counters: context.counters.toJSON(), legit });
  Deno.exit(0);
}

if (import.meta.main) await main(Deno.args);
