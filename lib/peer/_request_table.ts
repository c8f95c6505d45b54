/**
 * The requests of one connection that await a reply: their ids, their
 * deadlines (one timer serves them all) and the matching of an ACK or NACK
 * to its request.
 *
 * Private to `lib/peer/`.
 *
 * @module
 */

import { AckSchema, NackReason, NackSchema } from "../../gen/carrier/v1/frame_pb.ts";
import type { Clock, TimerHandle } from "../clock.ts";
import { NackError, TimeoutError } from "../errors.ts";
import type { Frame } from "../wire/frame.ts";
import { decodePayload } from "../wire/opcodes.ts";
import { opcodeName } from "./_opcode_name.ts";
import { WaitQueue } from "./_wait_queue.ts";

/** Largest request id; ids wrap around to 1 after it (0 is a one-way frame). */
const MAX_ID = 0xffff_ffff;

interface Pending {
  opcode: number;
  /** Clock time at which the request times out. */
  deadline: number;
  /** Its timeout, in ms, for the error message. */
  timeout: number;
  resolve(data: Uint8Array): void;
  reject(err: Error): void;
}

/** The pending requests of one connection. */
export class RequestTable {
  readonly #clock: Clock;
  /** The peer's address, for error messages. */
  readonly #peer: string;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #timer: TimerHandle | undefined;
  /** The deadline the timer is armed for (Infinity: not armed). */
  #timerAt = Infinity;
  #closed = false;
  /** Requests waiting for a pending-request slot (policy "wait"); one is woken per settled request. */
  readonly slots: WaitQueue = new WaitQueue();

  constructor(clock: Clock, peer: string) {
    this.#clock = clock;
    this.#peer = peer;
  }

  /** Requests awaiting a reply. */
  get size(): number {
    return this.#pending.size;
  }

  /** The opcode of pending request `id`, if there is one. */
  opcodeOf(id: number): number | undefined {
    return this.#pending.get(id)?.opcode;
  }

  /**
   * Registers a request of `opcode` under a fresh id. Its reply rejects with
   * {@linkcode TimeoutError} after `timeout` ms, with the signal's reason if
   * `signal` aborts, or with what {@linkcode RequestTable.reject} is given.
   */
  add(
    opcode: number,
    timeout: number,
    signal?: AbortSignal,
  ): { id: number; reply: Promise<Uint8Array> } {
    const id = this.#allocateId();
    const deadline = this.#clock.now() + timeout;
    const reply = new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => settle(() => reject(signal!.reason));
      const settle = (fn: () => void) => {
        if (!this.#pending.delete(id)) return;
        signal?.removeEventListener("abort", onAbort);
        this.slots.wakeOne();
        fn();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#pending.set(id, {
        opcode,
        deadline,
        timeout,
        resolve: (data) => settle(() => resolve(data)),
        reject: (err) => settle(() => reject(err)),
      });
    });
    this.#watchDeadline(deadline);
    return { id, reply };
  }

  /** Fails request `id` with `error`, if it is pending. */
  reject(id: number, error: Error): void {
    this.#pending.get(id)?.reject(error);
  }

  /**
   * Settles the request that an ACK or NACK frame (payload decompressed)
   * answers: an ACK resolves its data, a NACK rejects with
   * {@linkcode NackError}, a payload that does not decode rejects with the
   * decoding error. Returns `false` when the frame answers no pending request.
   */
  settle(frame: Frame, ack: boolean): boolean {
    const pending = this.#pending.get(frame.id);
    if (!pending) return false;
    try {
      if (ack) {
        pending.resolve(decodePayload(AckSchema, frame.payload).data);
        return true;
      }
      const nack = decodePayload(NackSchema, frame.payload);
      pending.reject(
        new NackError(
          `${opcodeName(pending.opcode)} to ${this.#peer} got NACK ${
            NackReason[nack.reason] ?? nack.reason
          }${nack.message ? `: ${nack.message}` : ""}`,
          { opcode: pending.opcode, reason: nack.reason, data: nack.data },
        ),
      );
    } catch (err) {
      pending.reject(err as Error);
    }
    return true;
  }

  /** Stops the timer and fails every pending request with `error`. */
  close(error: Error): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const pending of [...this.#pending.values()]) pending.reject(error);
  }

  /**
   * Makes sure the timer fires by `deadline`. One timer serves every
   * pending request: it is armed for the earliest deadline, and a request
   * that settles leaves it alone (requests usually share one timeout, so
   * later ones never move it).
   */
  #watchDeadline(deadline: number): void {
    if (deadline >= this.#timerAt || this.#closed) return;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = this.#clock.setTimeout(
      () => this.#expire(),
      Math.max(0, deadline - this.#clock.now()),
    );
  }

  /** Times out the requests whose deadline passed and re-arms for the next one. */
  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    let next = Infinity;
    for (const pending of [...this.#pending.values()]) {
      if (pending.deadline <= now) {
        pending.reject(
          new TimeoutError(
            `Request ${
              opcodeName(pending.opcode)
            } to ${this.#peer} timed out after ${pending.timeout} ms`,
          ),
        );
      } else if (pending.deadline < next) next = pending.deadline;
    }
    if (next !== Infinity) this.#watchDeadline(next);
  }

  #allocateId(): number {
    for (;;) {
      const id = this.#nextId;
      this.#nextId = this.#nextId >= MAX_ID ? 1 : this.#nextId + 1;
      if (!this.#pending.has(id)) return id;
    }
  }
}
