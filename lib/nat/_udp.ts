/**
 * What NAT-PMP and PCP share: a UDP exchange with one gateway that sends one
 * request at a time and retransmits it on a doubling schedule, the epoch
 * (seconds since start of epoch) check that tells a gateway's restart, and
 * the listener for the gateway's multicast announcements on 224.0.0.1:5350.
 * Imported only by `natpmp.ts` and `pcp.ts`.
 *
 * @module
 */

import dgram from "node:dgram";
import type { Clock, TimerHandle } from "../clock.ts";
import { ArgumentError, TimeoutError } from "../errors.ts";
import { errorMessage } from "../_error_message.ts";
import { PortMappingError } from "./errors.ts";
import type { MappingProtocol } from "./types.ts";

/** The retransmission schedule of a {@linkcode UdpExchange}. */
export interface Schedule {
  /** First wait for an answer, in ms. */
  initialTimeout: number;
  /** How many times a request is sent before it fails with a TimeoutError. */
  tries: number;
  /** The wait never doubles past this, in ms. */
  maxTimeout: number;
  /** Each wait is multiplied by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

/** Options of a {@linkcode UdpExchange}. */
export interface UdpExchangeOptions extends Schedule {
  /** The gateway's IPv4 address. */
  gateway: string;
  /** The gateway's port. */
  port: number;
  /** Timers. */
  clock: Clock;
  /** The protocol, for errors. */
  protocol: MappingProtocol;
  /** The local address to bind (default: any). */
  bindAddress?: string;
}

/**
 * Reads a datagram from the gateway: a value when it answers the request, undefined to
 * ignore it; it throws to fail the request (a result code).
 */
export type Matcher<T> = (datagram: Uint8Array, firstSent: number) => T | undefined;

interface Job {
  bytes: Uint8Array;
  what: string;
  match: Matcher<unknown>;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
  timer?: TimerHandle;
  sent: number;
  firstSent: number;
  waited: number;
}

/** Checks a schedule's numbers; throws an ArgumentError naming the bad one. */
export function checkSchedule(schedule: Schedule, owner: string): void {
  const { initialTimeout, tries, maxTimeout, jitter } = schedule;
  if (!(Number.isFinite(initialTimeout) && initialTimeout > 0)) {
    throw new ArgumentError(
      `${owner} initialTimeout must be a positive number of ms, got ${initialTimeout}`,
    );
  }
  if (!(tries === Infinity || (Number.isInteger(tries) && tries >= 1))) {
    throw new ArgumentError(`${owner} tries must be a positive integer or Infinity, got ${tries}`);
  }
  if (!(maxTimeout >= initialTimeout)) {
    throw new ArgumentError(
      `${owner} maxTimeout must be at least initialTimeout (${initialTimeout}), got ${maxTimeout}`,
    );
  }
  if (!(jitter >= 0 && jitter < 1)) {
    throw new ArgumentError(`${owner} jitter must be in [0, 1), got ${jitter}`);
  }
}

/** Checks a port number; `min` is 0 where 0 means "no preference". */
export function checkPort(name: string, port: unknown, min: number): void {
  if (!(Number.isInteger(port) && (port as number) >= min && (port as number) <= 65535)) {
    throw new ArgumentError(`${name} must be an integer in [${min}, 65535], got ${port}`);
  }
}

/** Checks a requested lifetime in seconds (1 … 2³² − 1). */
export function checkLifetime(lifetime: unknown): void {
  if (
    !(Number.isInteger(lifetime) && (lifetime as number) >= 1 && (lifetime as number) <= 0xffffffff)
  ) {
    throw new ArgumentError(
      `lifetime must be an integer number of seconds in [1, 4294967295], got ${lifetime}`,
    );
  }
}

/** The 4 bytes of a dotted IPv4 literal, or undefined. */
export function ipv4Bytes(text: string): Uint8Array | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
  if (match === null) return undefined;
  const bytes = match.slice(1).map(Number);
  return bytes.every((b) => b <= 255) ? Uint8Array.from(bytes) : undefined;
}

/** The AbortError every call of a closed client rejects with. */
export function closedError(owner: string): DOMException {
  return new DOMException(`${owner} is closed`, "AbortError");
}

/**
 * One request at a time to one gateway, retransmitted until the matcher
 * accepts a datagram from the gateway's address and port (anything else is
 * ignored), the tries run out (TimeoutError), the signal aborts or the
 * exchange closes.
 */
export class UdpExchange {
  #options: UdpExchangeOptions;
  #socket: dgram.Socket | undefined;
  #bound: Promise<void> | undefined;
  #queue: Job[] = [];
  #current: Job | undefined;
  #closed: DOMException | undefined;

  constructor(options: UdpExchangeOptions) {
    this.#options = options;
  }

  /** Sends `bytes` until `match` accepts an answer. */
  request<T>(
    bytes: Uint8Array,
    match: Matcher<T>,
    options: { what: string; signal?: AbortSignal },
  ): Promise<T> {
    if (this.#closed) return Promise.reject(this.#closed);
    if (options.signal?.aborted) return Promise.reject(options.signal.reason);
    return new Promise<T>((resolve, reject) => {
      const job: Job = {
        bytes,
        what: options.what,
        match: match as Matcher<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
        signal: options.signal,
        sent: 0,
        firstSent: 0,
        waited: 0,
      };
      if (options.signal) {
        const signal = options.signal;
        job.onAbort = () => this.#finish(job, () => reject(signal.reason));
        signal.addEventListener("abort", job.onAbort, { once: true });
      }
      this.#queue.push(job);
      this.#next();
    });
  }

  /** Closes the socket; every pending request rejects with `error`. */
  close(error: DOMException): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const job of [...this.#queue, ...(this.#current ? [this.#current] : [])]) {
      this.#finish(job, () => job.reject(error));
    }
    this.#socket?.close();
    this.#socket = undefined;
  }

  #next(): void {
    if (this.#current || this.#closed) return;
    const job = this.#queue.shift();
    if (!job) return;
    this.#current = job;
    this.#ready().then(
      () => {
        if (this.#current === job) this.#send(job);
      },
      (error) => {
        this.#finish(job, () =>
          job.reject(
            new PortMappingError(
              `Cannot open a UDP socket for ${job.what} to ${this.#target()}: ${
                errorMessage(error)
              }`,
              { protocol: this.#options.protocol, cause: error },
            ),
          ));
      },
    );
  }

  #target(): string {
    return `${this.#options.gateway}:${this.#options.port}`;
  }

  #ready(): Promise<void> {
    if (this.#bound) return this.#bound;
    const socket = dgram.createSocket("udp4");
    this.#socket = socket;
    socket.on("message", (data: Uint8Array, rinfo: dgram.RemoteInfo) => this.#receive(data, rinfo));
    socket.on("error", (error: Error) => {
      const job = this.#current;
      if (!job) return;
      this.#finish(job, () =>
        job.reject(
          new PortMappingError(`${job.what} to ${this.#target()} failed: ${error.message}`, {
            protocol: this.#options.protocol,
            cause: error,
          }),
        ));
    });
    this.#bound = new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ port: 0, address: this.#options.bindAddress }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    return this.#bound;
  }

  #send(job: Job): void {
    const socket = this.#socket;
    if (!socket) return;
    const schedule = this.#options;
    if (job.sent++ === 0) job.firstSent = this.#options.clock.now();
    socket.send(job.bytes, this.#options.port, this.#options.gateway, (error) => {
      if (error && this.#current === job) {
        this.#finish(job, () =>
          job.reject(
            new PortMappingError(
              `Cannot send ${job.what} to ${this.#target()}: ${error.message}`,
              { protocol: this.#options.protocol, cause: error },
            ),
          ));
      }
    });
    const base = Math.min(schedule.initialTimeout * 2 ** (job.sent - 1), schedule.maxTimeout);
    const wait = schedule.jitter === 0
      ? base
      : base * (1 + schedule.jitter * (2 * Math.random() - 1));
    job.timer = this.#options.clock.setTimeout(() => {
      job.timer = undefined;
      job.waited += wait;
      if (job.sent < schedule.tries) return this.#send(job);
      this.#finish(job, () =>
        job.reject(
          new TimeoutError(
            `No answer to ${job.what} from ${this.#target()} after ${job.sent} tries over ${
              Math.round(job.waited)
            } ms`,
          ),
        ));
    }, wait);
  }

  #receive(data: Uint8Array, rinfo: dgram.RemoteInfo): void {
    const job = this.#current;
    if (!job) return;
    if (rinfo.address !== this.#options.gateway || rinfo.port !== this.#options.port) return;
    let value: unknown;
    try {
      const datagram = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      value = job.match(datagram, job.firstSent);
    } catch (error) {
      this.#finish(job, () => job.reject(error));
      return;
    }
    if (value !== undefined) this.#finish(job, () => job.resolve(value));
  }

  /** Settles `job` once, whether it is queued or in flight, and starts the next. */
  #finish(job: Job, settle: () => void): void {
    if (job.timer !== undefined) this.#options.clock.clearTimeout(job.timer);
    job.timer = undefined;
    if (job.onAbort) job.signal?.removeEventListener("abort", job.onAbort);
    job.onAbort = undefined;
    if (this.#current === job) {
      this.#current = undefined;
    } else {
      const at = this.#queue.indexOf(job);
      if (at === -1) return; // settled already
      this.#queue.splice(at, 1);
    }
    settle();
    this.#next();
  }
}

/**
 * The epoch check. NAT-PMP (RFC 6886 §3.6): the new value must be at least
 * the previous one plus 7/8 of the time elapsed on the client's clock, minus
 * 2 s. PCP (RFC 6887 §8.5): the value must not go back by more than 1 s, and
 * the server's and client's deltas must agree within 1/16 plus 2 s either way.
 *
 * The client's elapsed time is taken as an interval, not a point: the gateway
 * read its clock somewhere between the request's first send and the answer's
 * arrival. "Too slow" compares with the shortest interval (this request's first
 * send minus the previous answer's arrival), "too fast" with the longest: a
 * gateway that sat on a request for two minutes (miniupnpd searching 65535
 * ports with debug logging does) is not taken for one that restarted.
 */
export class EpochTracker {
  #clock: Clock;
  #rule: "natpmp" | "pcp";
  #previous: { epoch: number; sent: number; received: number } | undefined;

  constructor(clock: Clock, rule: "natpmp" | "pcp") {
    this.#clock = clock;
    this.#rule = rule;
  }

  /**
   * Records `epoch` (seconds) from an answer to a request first sent at
   * `sent` (the clock's ms; now for an announcement); returns why it shows
   * lost state, or undefined.
   */
  update(epoch: number, sent: number = this.#clock.now()): string | undefined {
    const received = this.#clock.now();
    const previous = this.#previous;
    this.#previous = { epoch, sent: Math.min(sent, received), received };
    if (!previous) return undefined;
    const shortest = Math.max(0, sent - previous.received) / 1000;
    const longest = (received - previous.sent) / 1000;
    const server = epoch - previous.epoch;
    const lost = this.#rule === "natpmp"
      ? epoch < previous.epoch + (7 / 8) * shortest - 2
      : epoch + 1 < previous.epoch || longest + 2 < server - server / 16 ||
        server + 2 < shortest - shortest / 16;
    if (!lost) return undefined;
    const elapsed = ((received - previous.received) / 1000).toFixed(1);
    return `epoch went from ${previous.epoch} s to ${epoch} s in ${elapsed} s`;
  }
}

/** Options of {@linkcode listenAnnouncements}. */
export interface AnnouncementOptions {
  /** Only datagrams from this address count. */
  gateway: string;
  /** The multicast group. */
  group: string;
  /** The UDP port. */
  port: number;
  /** Called with each datagram from the gateway. */
  onDatagram(datagram: Uint8Array): void;
}

/**
 * Listens for the gateway's announcements (best effort: when the port cannot
 * be bound or the group joined, nothing is heard and nothing fails). Returns
 * the function that stops listening.
 */
export function listenAnnouncements(options: AnnouncementOptions): () => void {
  const socket = dgram.createSocket({ type: "udp4", reuseAddr: true });
  let open = true;
  const close = () => {
    if (!open) return;
    open = false;
    socket.close();
  };
  socket.on("error", close);
  socket.on("message", (data: Uint8Array, rinfo: dgram.RemoteInfo) => {
    if (rinfo.address !== options.gateway) return;
    options.onDatagram(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  });
  socket.bind(options.port, () => {
    try {
      socket.addMembership(options.group);
    } catch {
      // Unicast announcements (and a host already in 224.0.0.1) are still heard.
    }
  });
  return close;
}
