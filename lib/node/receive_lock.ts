/**
 * Receive-then-lock: a handler waits for the next frame of an opcode from
 * one peer, then holds that peer's other frames (bounded) until it is done,
 * so that a multi-message exchange does not interleave with anything else.
 *
 * @module
 */
import { NackReason } from "../../gen/carrier/v1/frame_pb.ts";
import type { Clock } from "../clock.ts";
import { CarrierError, ConnectionClosedError, TimeoutError } from "../errors.ts";
import type { CloseInfo, PeerConnection } from "../peer/connection.ts";
import { DEFAULT_REQUEST_TIMEOUT } from "../peer/connection.ts";
import { refuse } from "../services/refuse.ts";
import type { Frame } from "../wire/frame.ts";

/**
 * Options of {@linkcode Node.receiveLock}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type ReceiveLockOptions, TimeoutError } from "@carrier/p2p";
 * import { ManualClock, MemoryNetwork } from "@carrier/p2p/testing";
 * const clock = new ManualClock();
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"], clock });
 * await using b = await createNode({ transport: net.transport() });
 * const joined = new Promise((resolve) => a.addEventListener("peer:connect", resolve));
 * await b.connect(a.peerAddresses[0]);
 * await joined;
 * const options: ReceiveLockOptions = { timeout: 1_000 };
 * const waiting = a.receiveLock(b.address, 1001, options);
 * clock.advance(1_000);
 * await assert.rejects(waiting, TimeoutError);
 * ```
 */
export interface ReceiveLockOptions {
  /** Time to wait for the message, in ms. @default {the connection's request timeout (10 s)} */
  timeout?: number;
  /** Cancels the wait. */
  signal?: AbortSignal;
}

/**
 * A peer locked by {@linkcode Node.receiveLock}: its first awaited frame,
 * and a way to await more; the peer's other frames wait until `release()`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type ReceiveLock } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * const joined = new Promise((resolve) => a.addEventListener("peer:connect", resolve));
 * const peer = await b.connect(a.peerAddresses[0]);
 * await joined;
 * const locking = a.receiveLock(b.address, 1001);
 * for (const step of [1, 2]) await peer.send(1001, new Uint8Array([step]));
 * using lock: ReceiveLock = await locking;
 * assert.equal(lock.frame.payload[0], 1);
 * assert.equal((await lock.next()).payload[0], 2);
 * ```
 */
export interface ReceiveLock extends Disposable {
  /** The locked peer's address (base58). */
  readonly address: string;
  /** The connection. */
  readonly peer: PeerConnection;
  /** The frame that was awaited (payload decompressed). */
  readonly frame: Frame;
  /** Waits for the peer's next frame of `opcode` (default: the lock's opcode). */
  next(opcode?: number, options?: ReceiveLockOptions): Promise<Frame>;
  /** Releases the peer: held frames are delivered, in order. Idempotent. */
  release(): void;
}

interface LockWaiter {
  opcode: number;
  resolve(frame: Frame): void;
  reject(err: Error): void;
}

interface PeerLock {
  locked: boolean;
  waiters: LockWaiter[];
  held: { frame: Frame; peer: PeerConnection }[];
}

/** What {@linkcode ReceiveLocks} works with. */
export interface ReceiveLocksOptions {
  /** Source of time. */
  readonly clock: Clock;
  /** Frames held per locked peer; beyond, requests get NACK `RATE_LIMITED`, one-way frames are dropped. */
  readonly maxHeld: number;
  /** The default wait, in ms. @default {DEFAULT_REQUEST_TIMEOUT} */
  readonly timeout?: number;
  /** Delivers a frame held while its peer was locked (on release, in order). */
  deliver(frame: Frame, peer: PeerConnection): unknown;
  /** Reports a failure that does not stop the node. */
  error(error: unknown, source: string): void;
}

/** Every receive lock of a node, by peer address. */
export class ReceiveLocks {
  readonly #o: ReceiveLocksOptions;
  readonly #locks = new Map<string, PeerLock>();

  /** Creates the node's locks. */
  constructor(options: ReceiveLocksOptions) {
    this.#o = options;
  }

  /**
   * Offers an incoming frame: `true` when a waiter took it or it is held
   * (or refused) because its peer is locked; `false` to dispatch it.
   */
  intercept(frame: Frame, peer: PeerConnection): boolean {
    const lock = this.#locks.get(peer.address);
    if (!lock) return false;
    const waiter = lock.waiters.find((w) => w.opcode === frame.opcode);
    if (waiter) {
      waiter.resolve(frame);
      return true;
    }
    if (!lock.locked) return false;
    const max = this.#o.maxHeld;
    if (lock.held.length >= max) {
      refuse(frame, peer, NackReason.RATE_LIMITED, `peer is locked; ${max} frames held`);
      return true;
    }
    lock.held.push({ frame, peer });
    return true;
  }

  /**
   * Waits for the next frame of `opcode` on `peer`, then locks the peer.
   *
   * @throws {TimeoutError} when no such frame arrives in time.
   * @throws {CarrierError} when the peer is already locked.
   */
  async acquire(
    peer: PeerConnection,
    opcode: number,
    options: ReceiveLockOptions = {},
  ): Promise<ReceiveLock> {
    const { address } = peer;
    let state = this.#locks.get(address);
    if (state?.locked || state?.waiters.length) {
      throw new CarrierError(`Cannot lock ${address}: already locked or awaited`);
    }
    state ??= { locked: false, waiters: [], held: [] };
    this.#locks.set(address, state);
    const s = state;
    const frame = await this.#await(address, s, opcode, options, true);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      s.locked = false;
      for (const w of s.waiters.splice(0)) {
        w.reject(new CarrierError(`Receive lock on ${address} released`));
      }
      const held = s.held.splice(0);
      this.#locks.delete(address);
      for (const h of held) {
        Promise.resolve(this.#o.deliver(h.frame, h.peer)).catch((err) =>
          this.#o.error(err, `held frame from ${h.peer.address}`)
        );
      }
    };
    return {
      address,
      peer,
      frame,
      next: (op = opcode, opts = {}) => {
        if (released) {
          return Promise.reject(new CarrierError(`Receive lock on ${address} released`));
        }
        // It may have arrived already, and be held with the others.
        const i = s.held.findIndex((h) => h.frame.opcode === op);
        if (i >= 0) return Promise.resolve(s.held.splice(i, 1)[0].frame);
        return this.#await(address, s, op, opts, false);
      },
      release,
      [Symbol.dispose]: release,
    };
  }

  /** The peer disconnected: its waiters fail, its held frames are dropped. */
  peerGone(peer: PeerConnection, info: CloseInfo): void {
    const lock = this.#locks.get(peer.address);
    if (!lock) return;
    this.#locks.delete(peer.address);
    for (const w of lock.waiters.splice(0)) {
      w.reject(new ConnectionClosedError(`${peer.address} disconnected`, { cause: info.error }));
    }
    lock.held.length = 0;
  }

  #await(
    address: string,
    state: PeerLock,
    opcode: number,
    options: ReceiveLockOptions,
    acquire: boolean,
  ): Promise<Frame> {
    options.signal?.throwIfAborted();
    const { clock } = this.#o;
    const timeout = options.timeout ?? this.#o.timeout ?? DEFAULT_REQUEST_TIMEOUT;
    return new Promise<Frame>((resolve, reject) => {
      const done = () => {
        state.waiters = state.waiters.filter((w) => w !== waiter);
        clock.clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
        if (!state.locked && state.waiters.length === 0 && state.held.length === 0) {
          this.#locks.delete(address);
        }
      };
      const waiter: LockWaiter = {
        opcode,
        resolve: (frame) => {
          // Lock before anything else can arrive: the peer's next frames are held.
          if (acquire) state.locked = true;
          done();
          resolve(frame);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const onAbort = () => waiter.reject(options.signal!.reason);
      const timer = clock.setTimeout(
        () =>
          waiter.reject(
            new TimeoutError(`No opcode ${opcode} from ${address} within ${timeout} ms`),
          ),
        timeout,
      );
      options.signal?.addEventListener("abort", onAbort, { once: true });
      state.waiters.push(waiter);
    });
  }
}
