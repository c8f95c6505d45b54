/**
 * Fault injection for the Jepsen-style DHT checks (issue 12): a seeded RNG,
 * and a {@linkcode FaultNetwork} over {@linkcode MemoryNetwork} whose hosts
 * can be slowed (every chunk a host reads is held for a seeded delay; order
 * within a connection is kept, order across connections is not, so messages
 * to several replicas arrive reordered), crashed (every connection of the host
 * drops at once, as a killed process's would) and restarted (a new transport
 * on the same `mem:` name).
 *
 * @module
 */
import type { ByteStream, Listener, Transport } from "../../lib/transport/types.ts";
import type { DialOptions, ListenOptions } from "../../lib/transport/types.ts";
import { MemoryNetwork, type MemoryTransport } from "../../lib/transport/memory.ts";
import { ConnectionClosedError, DialError, ListenError } from "../../lib/errors.ts";
import { hashString, mix32, Sfc32 } from "../../bench/_sim_clock.ts";

/**
 * A deterministic random source (sfc32). {@linkcode Rng.fork} gives an
 * independent stream per name, so that one client's choices do not depend on
 * how many numbers another client drew (the event loop's interleaving).
 */
export class Rng {
  #core: Sfc32;
  /** The seed it was made from. */
  readonly seed: number;
  /** The names of the forks it descends from (`""`: the root). */
  readonly path: string;

  /** A generator for `seed` (a 32-bit integer) and a stream named `path`. */
  constructor(seed: number, path = "") {
    this.seed = seed >>> 0;
    this.path = path;
    const a = mix32(this.seed ^ 0x1234567);
    const b = mix32(hashString(path) ^ a);
    const c = mix32(b ^ 0x5bd1e995);
    this.#core = new Sfc32(a, b, c, mix32(c ^ 0x27d4eb2d), 12);
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    return this.#core.next();
  }

  /** A uniform float in [0, 1). */
  next(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** A uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("Cannot pick from an empty list");
    return items[this.int(0, items.length - 1)];
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }

  /** An independent generator named `name` under this one (the same for the same seed and path). */
  fork(name: string): Rng {
    return new Rng(this.seed, `${this.path}/${name}`);
  }
}

/** How a host's incoming data is delayed: a uniform delay per chunk read, in ms. */
export interface Delay {
  /** Shortest delay, in ms. @default {0} */
  min: number;
  /** Longest delay, in ms. @default {0} */
  max: number;
}

/** Counters of what the fault network did. */
export interface FaultStats {
  /** Chunks delivered late. */
  delayed: number;
  /** Crashes. */
  crashes: number;
  /** Restarts. */
  restarts: number;
}

/**
 * A byte stream whose reads are delivered after a seeded delay per chunk:
 * a pump reads the inner stream as soon as data is there, and each chunk is
 * released no earlier than its delay and no earlier than the chunk before it
 * (order within the connection is kept).
 */
class DelayedStream implements ByteStream {
  readonly #inner: ByteStream;
  readonly #delay: () => number;
  readonly #onDelayed: () => void;
  readonly #queue: { data: Uint8Array; at: number }[] = [];
  #ended = false;
  #closed = false;
  #wake: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastAt = 0;

  constructor(inner: ByteStream, delay: () => number, onDelayed: () => void) {
    this.#inner = inner;
    this.#delay = delay;
    this.#onDelayed = onDelayed;
    this.#pump();
  }

  get localAddress(): string {
    return this.#inner.localAddress;
  }

  get remoteAddress(): string {
    return this.#inner.remoteAddress;
  }

  async #pump(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (!this.#closed) {
        const n = await this.#inner.read(buffer);
        if (n === null) break;
        if (n === 0) continue;
        const at = Math.max(performance.now() + this.#delay(), this.#lastAt);
        this.#lastAt = at;
        this.#queue.push({ data: buffer.slice(0, n), at });
        this.#onDelayed();
        this.#notify();
      }
    } catch {
      // The inner stream failed: the end of this one.
    }
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (true) {
      if (this.#closed) return null;
      if (buffer.length === 0) return 0;
      const head = this.#queue[0];
      if (head !== undefined) {
        const wait = head.at - performance.now();
        if (wait <= 0) {
          const n = Math.min(buffer.length, head.data.length);
          buffer.set(head.data.subarray(0, n));
          if (n === head.data.length) this.#queue.shift();
          else head.data = head.data.subarray(n);
          return n;
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
          this.#timer = setTimeout(() => {
            this.#timer = undefined;
            this.#notify();
          }, Math.ceil(wait));
        });
        if (this.#timer !== undefined) clearTimeout(this.#timer);
        this.#timer = undefined;
        continue;
      }
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  write(data: Uint8Array): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new ConnectionClosedError("Cannot write: the stream is closed"));
    }
    return this.#inner.write(data);
  }

  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#inner.close();
    this.#notify();
  }
}

/** A listener whose accepted streams are wrapped by the host. */
class FaultListener implements Listener {
  readonly #inner: Listener;
  readonly #wrap: (stream: ByteStream) => ByteStream;

  constructor(inner: Listener, wrap: (stream: ByteStream) => ByteStream) {
    this.#inner = inner;
    this.#wrap = wrap;
  }

  get address(): string {
    return this.#inner.address;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<ByteStream, void, undefined> {
    for await (const stream of this.#inner) yield this.#wrap(stream);
  }

  close(): void {
    this.#inner.close();
  }
}

/**
 * One host of a {@linkcode FaultNetwork}: a transport whose incoming data is
 * delayed by the host's current {@linkcode Delay}, and which the network can
 * crash (every stream and listener closed at once, later dials and listens
 * refused).
 */
export class FaultHost implements Transport {
  readonly name: string;
  readonly #network: FaultNetwork;
  readonly #rng: Rng;
  #inner: MemoryTransport;
  #streams = new Set<ByteStream>();
  #crashed = false;
  /** The delay of data this host reads; `undefined`: none. */
  delay: Delay | undefined;

  constructor(network: FaultNetwork, name: string, inner: MemoryTransport, rng: Rng) {
    this.#network = network;
    this.name = name;
    this.#inner = inner;
    this.#rng = rng;
  }

  /** Whether the host is crashed (until the network restarts it). */
  get crashed(): boolean {
    return this.#crashed;
  }

  #wrap = (stream: ByteStream): ByteStream => {
    if (this.#crashed) {
      stream.close();
      return stream;
    }
    let wrapped: ByteStream = stream;
    // A host always gets a delaying wrapper, so that a delay set later (a
    // replica that becomes slow mid-run) applies to its open connections.
    wrapped = new DelayedStream(stream, () => {
      const d = this.delay ?? this.#network.jitter;
      if (d === undefined || d.max <= 0) return 0;
      return d.min + this.#rng.next() * (d.max - d.min);
    }, () => {
      if ((this.delay ?? this.#network.jitter)?.max) this.#network.stats.delayed++;
      this.#received();
    });
    this.#streams.add(wrapped);
    return wrapped;
  };

  async dial(address: string, options?: DialOptions): Promise<ByteStream> {
    if (this.#crashed) throw new DialError(`Cannot dial ${address}: host ${this.name} is down`);
    return this.#wrap(await this.#inner.dial(address, options));
  }

  async listen(address: string, options?: ListenOptions): Promise<Listener> {
    if (this.#crashed) {
      throw new ListenError(`Cannot listen on ${address}: host ${this.name} is down`);
    }
    return new FaultListener(await this.#inner.listen(address, options), this.#wrap);
  }

  #tripwire: { chunks: number; fire: () => void } | undefined;

  /**
   * Arms a crash in the middle of an operation: once this host has received
   * `chunks` more chunks of data (requests in flight to it), `fire` is called
   * (at once, before the chunk is delivered; it should crash the host).
   */
  crashAfter(chunks: number, fire: () => void): void {
    this.#tripwire = { chunks, fire };
  }

  #received(): void {
    const wire = this.#tripwire;
    if (wire === undefined || --wire.chunks > 0) return;
    this.#tripwire = undefined;
    wire.fire();
  }

  /** Drops every connection of this host at once and refuses dials and listens. */
  crash(): void {
    if (this.#crashed) return;
    this.#crashed = true;
    this.#tripwire = undefined;
    this.#network.stats.crashes++;
    this.#inner.close();
    for (const stream of this.#streams) stream.close();
    this.#streams.clear();
  }

  /** Brings a crashed host back with a fresh transport (its `mem:` name is free again). */
  revive(inner: MemoryTransport): void {
    if (!this.#crashed) throw new Error(`Host ${this.name} is not crashed`);
    this.#inner = inner;
    this.#crashed = false;
    this.#network.stats.restarts++;
  }

  /** Closes the host for good. */
  close(): void {
    this.#inner.close();
    for (const stream of this.#streams) stream.close();
    this.#streams.clear();
  }
}

/**
 * A {@linkcode MemoryNetwork} with faults: hosts ({@linkcode FaultNetwork.host})
 * that can be slowed, crashed and restarted, and an optional jitter on every
 * host's incoming data (reordering across connections).
 */
export class FaultNetwork implements AsyncDisposable {
  readonly #net = new MemoryNetwork();
  readonly #rng: Rng;
  readonly #hosts = new Map<string, FaultHost>();
  /** The delay of hosts that have none of their own (reordering); `undefined`: none. */
  jitter: Delay | undefined;
  /** What the network did. */
  readonly stats: FaultStats = { delayed: 0, crashes: 0, restarts: 0 };

  /** A network whose delays are drawn from `rng`. */
  constructor(rng: Rng) {
    this.#rng = rng;
  }

  /** The host called `name` (a new one the first time). */
  host(name: string): FaultHost {
    let host = this.#hosts.get(name);
    if (!host) {
      host = new FaultHost(this, name, this.#net.transport(), this.#rng.fork(`host ${name}`));
      this.#hosts.set(name, host);
    }
    return host;
  }

  /** Restarts a crashed host on a fresh transport. */
  restart(name: string): FaultHost {
    const host = this.#hosts.get(name);
    if (!host) throw new Error(`No host ${name}`);
    host.revive(this.#net.transport());
    return host;
  }

  /** Closes every host. */
  close(): void {
    for (const host of this.#hosts.values()) host.close();
    this.#net.close();
  }

  /** Same as {@linkcode FaultNetwork.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
