/**
 * IDENTIFY, as a service: what a node announces after its handshake. When
 * its listen addresses or `accepts_inbound` change (a port mapping made or
 * lost, a dial-back result), it tells every connected peer in a one-way
 * IDENTIFY; a peer that receives one replaces what the handshake said and
 * updates the sender's routing-table contact (libp2p's identify push).
 * Every connection also reports where it sees the other side
 * (`observed_addr`): the node collects these in its {@linkcode AddressBook}.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { IdentifySchema } from "../../gen/carrier/v1/addresses_pb.ts";
import { Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { keptListenAddrs, keptRelays } from "../secure/_handshake_payload.ts";
import type { AddressSnapshot } from "../swarm/addresses.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";

/** IDENTIFY's opcode: one-way. */
export const IDENTIFY_OPCODE = protocolOpcode(Opcode.IDENTIFY, IdentifySchema, { oneWay: true });

/**
 * Options of the IDENTIFY service (the node passes what to do once a peer's
 * announcement changed).
 *
 * @example
 * ```ts
 * import type { IdentifyInit } from "./identify.ts";
 * const init: IdentifyInit = { updated: (peer) => console.log(peer.address, "moved") };
 * void init;
 * ```
 */
export interface IdentifyInit {
  /** A peer's IDENTIFY replaced its `listenAddrs` and `acceptsInbound` (in `peer.channel.remote`). */
  updated(peer: PeerConnection): void;
}

/** The IDENTIFY service (see the module documentation). */
export interface IdentifyService extends Service {
  /** Tells every connected peer what this node announces now. */
  push(snapshot: AddressSnapshot): void;
}

/**
 * The IDENTIFY service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { identify } from "./identify.ts";
 * assert.equal(typeof identify({ updated() {} }), "function");
 * ```
 */
export function identify(init: IdentifyInit): ServiceFactory<IdentifyService> {
  return (host) => new Identify(host, init);
}

class Identify implements IdentifyService {
  readonly name = "identify";
  readonly opcodes = [IDENTIFY_OPCODE];
  readonly #host: ServiceHost;
  readonly #init: IdentifyInit;

  constructor(host: ServiceHost, init: IdentifyInit) {
    this.#host = host;
    this.#init = init;
  }

  peerConnect(peer: PeerConnection): void {
    this.#host.addresses.observe(peer.address, peer.channel.remote.observedAddr);
  }

  push(snapshot: AddressSnapshot): void {
    const { signal } = this.#host;
    if (signal.aborted) return;
    for (const peer of this.#host.connections.all()) {
      const payload = toBinary(
        IdentifySchema,
        create(IdentifySchema, {
          listenAddrs: [...snapshot.listenAddrs],
          acceptsInbound: snapshot.acceptsInbound,
          observedAddr: peer.channel.stream.relay === undefined
            ? peer.channel.stream.remoteAddress
            : "",
          relays: snapshot.relays.map((r) => ({
            address: r.identityKey,
            listenAddrs: [...r.listenAddrs],
          })),
        }),
      );
      peer.send(Opcode.IDENTIFY, payload, { signal }).catch((err) => {
        if (!signal.aborted) this.#host.error(err, `identify ${peer.address}`);
      });
    }
  }

  receive({ frame, peer }: ReceiveContext): void {
    let message;
    try {
      message = decodePayload(IdentifySchema, frame.payload);
    } catch {
      return; // one-way: an IDENTIFY that does not parse is dropped
    }
    const remote = peer.channel.remote;
    remote.listenAddrs = keptListenAddrs(message.listenAddrs);
    remote.acceptsInbound = message.acceptsInbound;
    remote.relays = keptRelays(message.relays);
    this.#host.addresses.observe(peer.address, message.observedAddr);
    this.#init.updated(peer);
  }
}
