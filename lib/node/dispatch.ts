/**
 * The node's services and where each frame goes: receive-then-lock first,
 * then the services that watch every frame (and may claim it), then the
 * owner of the frame's opcode. The hooks of every service run from here, in
 * registration order (cleanup in reverse), one that throws reported and
 * skipped.
 *
 * @module
 */
import type { PeerConnection } from "../peer/connection.ts";
import type { ReceiveContext, Service } from "../service.ts";
import type { Frame } from "../wire/frame.ts";
import type { OpcodeRegistry, OpcodeSpec } from "../wire/opcodes.ts";
import type { ReceiveLocks } from "./receive_lock.ts";

/** What handles the frames of an opcode. */
export interface OpcodeOwner {
  /** A name for error reports. */
  readonly name: string;
  /** Handles one frame of the opcode. */
  receive?(context: ReceiveContext): boolean | void | Promise<boolean | void>;
}

/** What a {@linkcode Dispatcher} works with. */
export interface DispatcherOptions {
  /** The node's opcode registry: services' opcodes are added to it. */
  readonly registry: OpcodeRegistry;
  /** Receive-then-lock. */
  readonly locks: ReceiveLocks;
  /**
   * A frame nobody owns; `false` leaves it to the connection, which answers
   * a request with NACK `UNKNOWN_OPCODE`.
   */
  unowned(frame: Frame, peer: PeerConnection): void | false;
  /** Reports a failure that does not stop the node. */
  error(error: unknown, source: string): void;
}

/** The node's services, in order, and the owner of each opcode. */
export class Dispatcher {
  readonly #o: DispatcherOptions;
  /** Every service, in the order their hooks run. */
  readonly #services: Service[] = [];
  /** Services without opcodes that see every frame first. */
  readonly #watchers: Service[] = [];
  readonly #owners = new Map<number, OpcodeOwner>();

  /** Creates a dispatcher with no services. */
  constructor(options: DispatcherOptions) {
    this.#o = options;
  }

  /**
   * Adds a service: its opcodes are registered and dispatched to it; one
   * without opcodes watches every frame.
   *
   * @throws {OpcodeRegistryError} when one of its opcodes is registered already.
   */
  add<S extends Service>(service: S): S {
    for (const spec of service.opcodes ?? []) this.own(spec, service);
    if (service.opcodes === undefined && service.receive) this.#watchers.push(service);
    this.#services.push(service);
    return service;
  }

  /**
   * Registers `spec` and hands its frames to `owner`.
   *
   * @throws {OpcodeRegistryError} when the opcode is registered already.
   */
  own(spec: OpcodeSpec, owner: OpcodeOwner): void {
    this.#o.registry.add(spec);
    this.#owners.set(spec.opcode, owner);
  }

  /**
   * A frame for the layer above the connection. What is still being handled
   * is returned as a promise, so the connection counts it against its
   * `maxInboundRequests` and stops reading from a peer that sends faster
   * than it is served.
   */
  onFrame(frame: Frame, peer: PeerConnection): void | false | Promise<void | false> {
    if (this.#o.locks.intercept(frame, peer)) return;
    return this.deliver(frame, peer);
  }

  /** Watchers, then the opcode's owner (also for frames held by a receive lock). */
  deliver(frame: Frame, peer: PeerConnection): void | false | Promise<void | false> {
    if (this.#watchers.length === 0) return this.#dispatch(frame, peer);
    return (async () => {
      for (const service of this.#watchers) {
        try {
          if (await service.receive!({ peer, frame }) === true) return;
        } catch (err) {
          this.#o.error(err, `service ${service.name} receive`);
        }
      }
      return await this.#dispatch(frame, peer);
    })();
  }

  /** Runs a synchronous hook of every service. */
  hook(name: string, run: (service: Service) => void): void {
    for (const service of this.#services) {
      try {
        run(service);
      } catch (err) {
        this.#o.error(err, `service ${service.name} ${name}`);
      }
    }
  }

  /** Every service's `startup`, in order. */
  async startup(): Promise<void> {
    for (const service of this.#services) {
      try {
        await service.startup?.();
      } catch (err) {
        this.#o.error(err, `service ${service.name} startup`);
      }
    }
  }

  /** Every service's `cleanup`, in reverse order. */
  async cleanup(): Promise<void> {
    for (const service of [...this.#services].reverse()) {
      try {
        await service.cleanup?.();
      } catch (err) {
        this.#o.error(err, `service ${service.name} cleanup`);
      }
    }
  }

  #dispatch(frame: Frame, peer: PeerConnection): void | false | Promise<void> {
    const owner = this.#owners.get(frame.opcode);
    if (!owner?.receive) return this.#o.unowned(frame, peer);
    const handled = owner.receive({ peer, frame });
    if (handled instanceof Promise) return handled.then(() => {});
  }
}
