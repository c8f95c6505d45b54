/**
 * DIAL_BACK, as a service: a node learns whether it is reachable by asking
 * peers to dial it back (libp2p's AutoNAT v2 in spirit), and answers such
 * requests for its peers.
 *
 * Asking: the node sends a peer the addresses it could be dialled at from
 * where that peer sees it (its announced addresses on the peer's observed
 * host, and that host with each listen port) with a fresh 16-byte nonce.
 * The peer dials them in order, running the handshake with the nonce in
 * its payload; the node's listener takes the nonce as proof and closes that
 * connection. An address is reachable when its nonce *arrived*, not because
 * the peer says so. One arrival makes the node `public`; peers that tried
 * every address and failed make it `private` (it then announces
 * `accepts_inbound = false`). The node asks when its announced addresses
 * change, when it meets a peer while it does not know, and every
 * `interval`.
 *
 * Answering: only addresses on the host the request comes from (so that a
 * node cannot aim dials at a third host), at most 4, 5 s each, one request
 * per connection and 8 per node at a time.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  DialBackReplySchema,
  DialBackRequestSchema,
  type DialBackResult,
  DialBackResultSchema,
  DialBackStatus,
} from "../../gen/carrier/v1/addresses_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import { toHex } from "../_bytes.ts";
import { errorMessage } from "../_error_message.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { hostOf } from "../swarm/addresses.ts";
import { hostPrefixOf, ipScope } from "../transport/ip.ts";
import { decodePayload, protocolOpcode } from "../wire/opcodes.ts";
import { refuse } from "./refuse.ts";
import type { ReceiveContext, Service, ServiceFactory, ServiceHost } from "../service.ts";

/** DIAL_BACK's opcode: a request, ACKed with a `DialBackReply`. */
export const DIAL_BACK_OPCODE = protocolOpcode(Opcode.DIAL_BACK, DialBackRequestSchema, {
  reply: DialBackReplySchema,
});

/** Limits of DIAL_BACK (the spec's, in `proto/carrier/v1/addresses.proto`). */
export const DIAL_BACK_LIMITS = Object.freeze({
  /** Addresses in one request. */
  maxAddrs: 4,
  /** Length of the nonce. */
  nonceLength: 16,
  /** How long one dial (connection and handshake) may take, in ms. */
  dialTimeout: 5_000,
  /** Dial-backs a node runs at once for all its peers. */
  maxInFlight: 8,
});

/** How often a node asks again, in ms, once it knows: 10 minutes. */
export const DEFAULT_DIAL_BACK_INTERVAL = 600_000;

/**
 * Options of the DIAL_BACK service.
 *
 * @example
 * ```ts
 * import type { DialBackInit } from "./dial_back.ts";
 * const init: DialBackInit = { serve: true, peers: 3 };
 * void init;
 * ```
 */
export interface DialBackInit {
  /** Answer peers' DIAL_BACK requests (otherwise NACK `FORBIDDEN`). @default {true} */
  serve?: boolean;
  /** How many peers one check asks. @default {3} */
  peers?: number;
  /** How often to check again once reachability is known, in ms. @default {DEFAULT_DIAL_BACK_INTERVAL} */
  interval?: number;
}

/** What one check found. */
export interface DialBackOutcome {
  /** Addresses whose nonce arrived. */
  reached: string[];
  /** Peers that answered (whatever they found). */
  asked: number;
  /** Whether some peer dialled at least one address and none arrived. */
  failed: boolean;
}

/** The DIAL_BACK service (see the module documentation). */
export interface DialBackService extends Service {
  /** A probe's handshake arrived with `nonce` (the node's listener calls this). */
  arrived(nonce: Uint8Array): void;
  /** Asks peers now; sets the node's reachability from what arrives. */
  check(): Promise<DialBackOutcome>;
}

/**
 * The DIAL_BACK service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { dialBack } from "./dial_back.ts";
 * assert.equal(typeof dialBack({ serve: false }), "function");
 * ```
 */
export function dialBack(init: DialBackInit = {}): ServiceFactory<DialBackService> {
  return (host) => new DialBack(host, init);
}

/** Whether a transport address can be checked by a dial-back (an IP host, not loopback). */
function checkable(address: string): boolean {
  const scope = ipScope(address);
  return scope !== undefined && scope !== "loopback" && scope !== "unspecified";
}

class DialBack implements DialBackService {
  readonly name = "dial-back";
  readonly opcodes = [DIAL_BACK_OPCODE];
  readonly #host: ServiceHost;
  readonly #init: DialBackInit;
  /** Nonces sent and not yet arrived (hex → resolve). */
  readonly #waiting = new Map<string, () => void>();
  /** Peers whose request this node is answering. */
  readonly #serving = new Set<string>();
  #checking: Promise<DialBackOutcome> | undefined;
  #timer: number | undefined;
  #pending = false;

  constructor(host: ServiceHost, init: DialBackInit) {
    this.#host = host;
    this.#init = init;
    host.signal.addEventListener("abort", () => this.cleanup(), { once: true });
  }

  /** Whether this node has anything a dial-back can check. */
  get #applies(): boolean {
    const { addresses } = this.#host;
    return addresses.probing && addresses.bound.length > 0 &&
      addresses.listenAddrs.some(checkable);
  }

  startup(): void {
    const stop = this.#host.addresses.onChange((_, change) => {
      // New addresses (a mapping) are checked; a verdict of ours is not a reason to ask again.
      if (change !== "reachability") this.#schedule(0);
    });
    this.#host.signal.addEventListener("abort", stop, { once: true });
  }

  peerConnect(peer: PeerConnection): void {
    if (this.#host.addresses.reachability === "unknown" && this.#asks(peer)) this.#schedule(0);
  }

  cleanup(): void {
    if (this.#timer !== undefined) this.#host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiting.clear();
  }

  arrived(nonce: Uint8Array): void {
    this.#waiting.get(toHex(nonce))?.();
  }

  /** Whether `peer` is one to ask: it sees this node at a host a dial-back can check. */
  #asks(peer: PeerConnection): boolean {
    const observed = this.#host.addresses.observedBy(peer.address);
    return observed !== undefined && checkable(observed) && this.#applies;
  }

  #schedule(delay: number): void {
    const { clock, signal } = this.#host;
    if (signal.aborted || !this.#applies) return;
    if (this.#checking) {
      this.#pending = true; // once more after the one running
      return;
    }
    if (this.#timer !== undefined) clock.clearTimeout(this.#timer);
    this.#timer = clock.setTimeout(() => {
      this.#timer = undefined;
      this.check().catch((err) => {
        if (!signal.aborted) this.#host.error(err, "dial-back check");
      });
    }, delay);
  }

  check(): Promise<DialBackOutcome> {
    if (this.#checking) return this.#checking;
    const run = this.#check().finally(() => {
      this.#checking = undefined;
      if (this.#host.signal.aborted) return;
      if (this.#pending) {
        this.#pending = false;
        this.#schedule(0);
      } else {
        this.#schedule(this.#init.interval ?? DEFAULT_DIAL_BACK_INTERVAL);
      }
    });
    this.#checking = run;
    return run;
  }

  async #check(): Promise<DialBackOutcome> {
    const { addresses, connections, signal } = this.#host;
    const outcome: DialBackOutcome = { reached: [], asked: 0, failed: false };
    if (signal.aborted || !this.#applies) return outcome;
    const seen = new Set<string>();
    const askable = connections.all().filter((p) => {
      if (!this.#asks(p)) return false;
      const host = hostOf(addresses.observedBy(p.address)!)!;
      if (seen.has(host + p.address)) return false;
      seen.add(host + p.address);
      return true;
    });
    // Peers that accept connections first: they are the likeliest to be outside our NAT.
    askable.sort((a, b) =>
      Number(b.channel.remote.acceptsInbound) - Number(a.channel.remote.acceptsInbound)
    );
    const chosen = askable.slice(0, this.#init.peers ?? 3);
    const results = await Promise.all(chosen.map((p) => this.#ask(p).catch(() => undefined)));
    for (const r of results) {
      if (r === undefined) continue;
      outcome.asked++;
      outcome.reached.push(...r.reached);
      if (r.dialled && r.reached.length === 0) outcome.failed = true;
    }
    if (signal.aborted) return outcome;
    if (outcome.reached.length > 0) {
      const announced = new Set(addresses.listenAddrs);
      const confirmed = [...new Set(outcome.reached)].filter((a) => !announced.has(a));
      addresses.setReachability("public", confirmed);
    } else if (outcome.failed) {
      addresses.setReachability("private");
    }
    return outcome;
  }

  /** One request to `peer`: which of its candidates' nonces arrived. */
  async #ask(peer: PeerConnection): Promise<{ reached: string[]; dialled: boolean }> {
    const { addresses, signal } = this.#host;
    const observedHost = hostOf(addresses.observedBy(peer.address)!)!;
    const addrs = addresses.dialBackCandidates(observedHost);
    if (addrs.length === 0) return { reached: [], dialled: false };
    const nonce = crypto.getRandomValues(new Uint8Array(DIAL_BACK_LIMITS.nonceLength));
    const key = toHex(nonce);
    const arrival = Promise.withResolvers<void>();
    let arrived = false;
    this.#waiting.set(key, () => {
      arrived = true;
      arrival.resolve();
    });
    try {
      const data = await peer.request(
        Opcode.DIAL_BACK,
        toBinary(DialBackRequestSchema, create(DialBackRequestSchema, { addrs, nonce })),
        { signal, timeout: DIAL_BACK_LIMITS.dialTimeout * addrs.length + 5_000 },
      );
      const reply = decodePayload(DialBackReplySchema, data);
      const ok = reply.results.find((r) => r.status === DialBackStatus.OK);
      const dialled = reply.results.some((r) => r.status !== DialBackStatus.REFUSED);
      if (ok !== undefined && !arrived) {
        // The ACK can overtake the probe's last handshake message: give it a moment.
        const { clock } = this.#host;
        let timer: number | undefined;
        await Promise.race([
          arrival.promise,
          new Promise<void>((r) => timer = clock.setTimeout(r, 2_000)),
        ]);
        clock.clearTimeout(timer!);
      }
      return { reached: arrived && ok ? [ok.addr] : [], dialled };
    } finally {
      this.#waiting.delete(key);
    }
  }

  async receive({ frame, peer }: ReceiveContext): Promise<void> {
    if (frame.id === 0) return; // a DIAL_BACK's only effect is its reply
    let request;
    try {
      request = decodePayload(DialBackRequestSchema, frame.payload);
    } catch (err) {
      return refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
    }
    const { addrs, nonce } = request;
    if (addrs.length === 0 || addrs.length > DIAL_BACK_LIMITS.maxAddrs) {
      return refuse(
        frame,
        peer,
        NackReason.MALFORMED,
        `a dial-back names 1 to ${DIAL_BACK_LIMITS.maxAddrs} addresses, got ${addrs.length}`,
      );
    }
    if (nonce.length !== DIAL_BACK_LIMITS.nonceLength) {
      return refuse(
        frame,
        peer,
        NackReason.MALFORMED,
        `a dial-back nonce is ${DIAL_BACK_LIMITS.nonceLength} bytes, got ${nonce.length}`,
      );
    }
    if (!(this.#init.serve ?? true)) {
      return refuse(frame, peer, NackReason.FORBIDDEN, "dial-backs are not served by this node");
    }
    if (this.#serving.has(peer.address) || this.#serving.size >= DIAL_BACK_LIMITS.maxInFlight) {
      const why = this.#serving.has(peer.address)
        ? "a dial-back for this connection is in flight"
        : `${DIAL_BACK_LIMITS.maxInFlight} dial-backs are in flight`;
      return refuse(frame, peer, NackReason.RATE_LIMITED, why);
    }
    this.#serving.add(peer.address);
    try {
      const results = await this.#dialAll(peer, addrs, nonce);
      const reply = create(DialBackReplySchema, { results });
      await peer.ack(frame, toBinary(DialBackReplySchema, reply)).catch(() => {});
    } finally {
      this.#serving.delete(peer.address);
    }
  }

  async #dialAll(
    peer: PeerConnection,
    addrs: string[],
    nonce: Uint8Array,
  ): Promise<DialBackResult[]> {
    const from = hostPrefixOf(peer.channel.stream.remoteAddress);
    const results: DialBackResult[] = [];
    const result = (addr: string, status: DialBackStatus, message = "") =>
      create(DialBackResultSchema, { addr, status, message });
    for (const addr of addrs) {
      if (from === undefined || hostPrefixOf(addr) !== from) {
        results.push(result(addr, DialBackStatus.REFUSED, "not the host the request comes from"));
        continue;
      }
      try {
        const signal = AbortSignal.any([
          this.#host.signal,
          AbortSignal.timeout(DIAL_BACK_LIMITS.dialTimeout),
        ]);
        await this.#host.probe(
          { identityKey: peer.identityKey, address: peer.address, transportAddress: addr },
          nonce,
          { signal },
        );
        results.push(result(addr, DialBackStatus.OK));
        break;
      } catch (err) {
        if (this.#host.signal.aborted) throw this.#host.signal.reason;
        results.push(result(addr, DialBackStatus.DIAL_FAILED, errorMessage(err)));
      }
    }
    return results;
  }
}
