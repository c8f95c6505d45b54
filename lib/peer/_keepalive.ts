/**
 * The liveness of a connection: when nothing has arrived for
 * `keepaliveInterval`, a KEEPALIVE request goes out; when nothing has arrived
 * for `deadPeerTimeout`, the peer is dead.
 *
 * Private to `lib/peer/`.
 *
 * @module
 */

import { create, toBinary } from "@bufbuild/protobuf";
import { KeepaliveSchema } from "../../gen/carrier/v1/control_pb.ts";
import { Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import type { Clock, TimerHandle } from "../clock.ts";
import { TimeoutError } from "../errors.ts";
import type { RequestOptions } from "./_types.ts";

/** What the keepalive needs of its connection. */
export interface KeepaliveHost {
  /** The peer's address, for error messages. */
  readonly address: string;
  /** Whether the connection has closed. */
  isClosed(): boolean;
  /** Clock time of the last frame received from the peer. */
  lastReceived(): number;
  /** Sends a request and resolves its reply (the connection's `request`). */
  request(opcode: number, payload: Uint8Array, options: RequestOptions): Promise<Uint8Array>;
  /** Closes the connection: the peer went silent. */
  dead(error: TimeoutError): void;
  /** Takes a round-trip time sample, in ms. */
  observeRtt(sample: number): void;
}

/** The keepalive timer of one connection. */
export class Keepalive {
  readonly #clock: Clock;
  readonly #host: KeepaliveHost;
  readonly #interval: number;
  readonly #deadPeerTimeout: number;
  #timer: TimerHandle | undefined;
  #inFlight = false;

  /** Starts checking the connection's liveness. */
  constructor(
    clock: Clock,
    limits: { interval: number; deadPeerTimeout: number },
    host: KeepaliveHost,
  ) {
    this.#clock = clock;
    this.#host = host;
    this.#interval = limits.interval;
    this.#deadPeerTimeout = limits.deadPeerTimeout;
    this.#schedule();
  }

  /** Stops the timer. */
  stop(): void {
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
  }

  #schedule(): void {
    const check = Math.min(this.#interval, this.#deadPeerTimeout);
    this.#timer = this.#clock.setTimeout(() => this.#check(), check);
  }

  #check(): void {
    const host = this.#host;
    if (host.isClosed()) return;
    const silent = this.#clock.now() - host.lastReceived();
    if (silent >= this.#deadPeerTimeout) {
      host.dead(
        new TimeoutError(
          `${host.address} silent for ${silent} ms (deadPeerTimeout ${this.#deadPeerTimeout} ms)`,
        ),
      );
      return;
    }
    if (silent >= this.#interval && !this.#inFlight) {
      this.#inFlight = true;
      const started = this.#clock.now();
      const payload = toBinary(KeepaliveSchema, create(KeepaliveSchema));
      host.request(Opcode.KEEPALIVE, payload, {
        timeout: this.#deadPeerTimeout,
        sendBufferPolicy: "error",
      }).then(
        () => host.observeRtt(this.#clock.now() - started),
        () => {},
      ).finally(() => (this.#inFlight = false));
    }
    this.#schedule();
  }
}
