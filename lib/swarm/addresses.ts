/**
 * What a node binds apart from what it announces (the README's address
 * rules). The node binds its `listen` addresses; it tells peers (in the
 * handshake's `listen_addrs` and in IDENTIFY) where to reach it:
 *
 * 1. external addresses, best first: what a port mapping got from the
 *    gateway (the `nat` service), then observed addresses a dial-back
 *    confirmed (`observedHost:listenPort`, e.g. behind a forwarded port);
 * 2. the `announce` addresses of the options, when given, else every bound
 *    address with a wildcard host (`0.0.0.0`, `::`) expanded to this host's
 *    interface addresses: public ones first, then private ones; loopback
 *    only when there is nothing else; link-local never.
 *
 * A wildcard, port 0 or `mem:0` is never announced. `acceptsInbound` is
 * true while the node listens and announces something, unless dial-backs
 * showed that no announced address reaches it (reachability `private`).
 *
 * @module
 */
import type { RelayHint } from "../secure/_handshake_payload.ts";
import { ipScope, isAnnounceable } from "../transport/ip.ts";
import { formatTransportAddress, parseTransportAddress } from "../transport/address.ts";

/**
 * Whether a node is reachable at what it announces: `unknown` until
 * dial-backs tell (a node then accepts inbound connections, as before
 * reachability was known), `public` when one arrived, `private` when peers
 * dialled every announced address they could and none arrived.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode, type Reachability } from "@carrier/p2p";
 * await using node = await createNode({ listen: ["127.0.0.1:0"], nat: false });
 * const reachability: Reachability = node.addresses.reachability;
 * assert.equal(reachability, "unknown"); // nothing to ask about loopback
 * ```
 */
export type Reachability = "unknown" | "public" | "private";

/**
 * Options of {@linkcode AddressBook}.
 *
 * @example
 * ```ts
 * import type { AddressBookOptions } from "@carrier/p2p";
 * const options: AddressBookOptions = { announce: ["203.0.113.7:4000"], reachability: "public" };
 * void options;
 * ```
 */
export interface AddressBookOptions {
  /**
   * Addresses to announce instead of the bound ones (`HOST:PORT`), e.g. a
   * port forwarded by hand or a public address in front of a container.
   *
   * @default {undefined} (the bound addresses, wildcards expanded)
   */
  announce?: string[];
  /**
   * `auto`: dial-backs tell; `public`: the node says it accepts inbound
   * connections without asking; `private`: it says it does not (it still
   * listens, for peers that know where).
   *
   * @default {"auto"}
   */
  reachability?: "auto" | "public" | "private";
  /**
   * This host's interface IP addresses, for the wildcard expansion.
   *
   * @default {Deno.networkInterfaces()} (none when the permission is missing)
   */
  interfaces?: () => string[];
}

/**
 * What changed the announced addresses: listeners, an external source (a
 * mapping), a dial-back verdict.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressBook, type AddressChange } from "@carrier/p2p";
 * const book = new AddressBook();
 * const changes: AddressChange[] = [];
 * book.onChange((_, change) => changes.push(change));
 * book.setBound(["10.0.0.5:4000"]);
 * book.setExternal("nat", ["80.100.100.1:4000"]);
 * assert.deepEqual(changes, ["bound", "external"]);
 * ```
 */
export type AddressChange = "bound" | "external" | "reachability" | "relays";

/**
 * What a node announces at one time (the detail of the `addresses` event).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressBook, type AddressSnapshot } from "@carrier/p2p";
 * const book = new AddressBook();
 * book.setBound(["10.0.0.5:4000"]);
 * const snapshot: AddressSnapshot = book.snapshot();
 * assert.deepEqual(snapshot, {
 *   listenAddrs: ["10.0.0.5:4000"],
 *   acceptsInbound: true,
 *   reachability: "unknown",
 *   relays: [],
 * });
 * ```
 */
export interface AddressSnapshot {
  /** Where the node says it accepts connections, best first. */
  readonly listenAddrs: readonly string[];
  /** Whether it says it accepts inbound connections. */
  readonly acceptsInbound: boolean;
  /** What dial-backs said. */
  readonly reachability: Reachability;
  /** The relays the node holds reservations at. */
  readonly relays: readonly RelayHint[];
}

/** How many peers' observed addresses are kept. */
const MAX_OBSERVERS = 64;

/** This host's interface addresses, through Deno (none without `--allow-sys`). */
function systemInterfaces(): string[] {
  try {
    return Deno.networkInterfaces().map((i) => i.address);
  } catch {
    return [];
  }
}

const SCOPE_ORDER = { public: 0, private: 1, loopback: 2 } as const;

/**
 * A node's own addresses: bound, announced, external, observed, and its
 * reachability (see the module documentation).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressBook } from "@carrier/p2p";
 * const book = new AddressBook({ interfaces: () => ["127.0.0.1", "10.0.0.5", "fe80::1"] });
 * book.setBound(["0.0.0.0:4000"]);
 * assert.deepEqual(book.listenAddrs, ["10.0.0.5:4000"]); // no wildcard, no loopback, no link-local
 * book.setExternal("nat", ["80.100.100.1:4000"]);
 * assert.deepEqual(book.listenAddrs, ["80.100.100.1:4000", "10.0.0.5:4000"]);
 * book.setReachability("private");
 * assert.equal(book.acceptsInbound, false);
 * ```
 */
export class AddressBook {
  readonly #o: AddressBookOptions;
  #bound: string[] = [];
  readonly #external = new Map<string, string[]>();
  /** Peer address → the transport address it sees this node at. */
  readonly #observed = new Map<string, string>();
  #confirmed: string[] = [];
  #reachability: Reachability;
  #relays: RelayHint[] = [];
  #last = "";
  readonly #listeners = new Set<(snapshot: AddressSnapshot, change: AddressChange) => void>();

  /** Creates the book; `setBound` gives it what the node listens on. */
  constructor(options: AddressBookOptions = {}) {
    this.#o = options;
    this.#reachability = options.reachability === "public"
      ? "public"
      : options.reachability === "private"
      ? "private"
      : "unknown";
  }

  /** Whether dial-backs decide reachability (option `reachability: "auto"`). */
  get probing(): boolean {
    return (this.#o.reachability ?? "auto") === "auto";
  }

  /** The addresses the node listens on, as bound (ports resolved). */
  get bound(): string[] {
    return [...this.#bound];
  }

  /** Where the node says it accepts connections, best first. */
  get listenAddrs(): string[] {
    const out = new Set<string>();
    for (const list of this.#external.values()) list.forEach((a) => out.add(a));
    this.#confirmed.forEach((a) => out.add(a));
    const local = this.#o.announce ?? this.#expanded();
    local.forEach((a) => out.add(a));
    return [...out].filter(isAnnounceable);
  }

  /** Whether the node says it accepts inbound connections. */
  get acceptsInbound(): boolean {
    return this.#bound.length > 0 && this.#reachability !== "private" &&
      this.listenAddrs.length > 0;
  }

  /** What dial-backs said. */
  get reachability(): Reachability {
    return this.#reachability;
  }

  /** The relays the node holds reservations at, announced with its addresses. */
  get relays(): RelayHint[] {
    return [...this.#relays];
  }

  /**
   * Calls `listener` whenever what the node announces changes; returns the
   * function that stops it.
   */
  onChange(listener: (snapshot: AddressSnapshot, change: AddressChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The announced state, as sent in handshakes and IDENTIFY. */
  snapshot(): AddressSnapshot {
    return {
      listenAddrs: this.listenAddrs,
      acceptsInbound: this.acceptsInbound,
      reachability: this.#reachability,
      relays: this.relays,
    };
  }

  /** Sets what the node listens on (the listeners' resolved addresses). */
  setBound(addresses: readonly string[]): void {
    this.#bound = [...addresses];
    this.#changed("bound");
  }

  /** Sets the external addresses `source` (e.g. `"nat"`) found; `[]` removes them. */
  setExternal(source: string, addresses: readonly string[]): void {
    if (addresses.length === 0) this.#external.delete(source);
    else this.#external.set(source, [...addresses]);
    this.#changed("external");
  }

  /**
   * Sets reachability; `confirmed` are addresses a dial-back reached that
   * the node did not announce before (an observed host with its listen port).
   */
  setReachability(reachability: Reachability, confirmed: readonly string[] = []): void {
    if (!this.probing) return;
    this.#reachability = reachability;
    this.#confirmed = [...confirmed];
    this.#changed("reachability");
  }

  /** Sets the relays the node holds reservations at (`[]`: none). */
  setRelays(relays: readonly RelayHint[]): void {
    this.#relays = [...relays];
    this.#changed("relays");
  }

  /**
   * Records the transport address `peer` (base58) sees this node at; bounded.
   * A relayed circuit's address (`relay://…`) is not one.
   */
  observe(peer: string, observedAddr: string): void {
    if (observedAddr === "" || observedAddr.startsWith("relay://")) return;
    this.#observed.delete(peer);
    this.#observed.set(peer, observedAddr);
    if (this.#observed.size > MAX_OBSERVERS) {
      this.#observed.delete(this.#observed.keys().next().value!);
    }
  }

  /** The transport address `peer` said it sees this node at, if it said. */
  observedBy(peer: string): string | undefined {
    return this.#observed.get(peer);
  }

  /**
   * Hosts peers see this node at, with how many peers said so, most first
   * (what a node behind NAT learns of its public address).
   */
  observedHosts(): { host: string; peers: number }[] {
    const counts = new Map<string, number>();
    for (const a of this.#observed.values()) {
      const host = hostOf(a);
      if (host !== undefined) counts.set(host, (counts.get(host) ?? 0) + 1);
    }
    return [...counts].map(([host, peers]) => ({ host, peers })).sort((a, b) => b.peers - a.peers);
  }

  /**
   * Where a peer that sees this node at `observedHost` could dial it back:
   * the announced addresses on that host, then `observedHost` with each
   * bound port (a forwarded port, a full-cone NAT), at most 4.
   */
  dialBackCandidates(observedHost: string): string[] {
    const out = new Set(this.listenAddrs.filter((a) => hostOf(a) === observedHost));
    for (const bound of this.#bound) {
      try {
        const parsed = parseTransportAddress(bound);
        if (parsed.scheme !== "tcp" || parsed.port === undefined) continue;
        out.add(
          formatTransportAddress({ scheme: parsed.scheme, host: observedHost, port: parsed.port }),
        );
      } catch {
        // a bound address that is not HOST:PORT has no dial-back
      }
    }
    return [...out].filter(isAnnounceable).slice(0, 4);
  }

  /** The bound addresses, wildcard hosts expanded (module documentation, rule 2). */
  #expanded(): string[] {
    const out: string[] = [];
    for (const bound of this.#bound) {
      let parsed;
      try {
        parsed = parseTransportAddress(bound);
      } catch {
        continue;
      }
      if (parsed.host === undefined || ipScope(parsed) !== "unspecified") {
        out.push(bound);
        continue;
      }
      const v6 = parsed.host.includes(":");
      const ips = (this.#o.interfaces ?? systemInterfaces)()
        .filter((ip) => v6 || !ip.includes(":")) // `::` takes IPv4 too (dual stack)
        .map((ip) => ({ ip, scope: ipScope(ip) }))
        .filter((x): x is { ip: string; scope: keyof typeof SCOPE_ORDER } =>
          x.scope !== undefined && x.scope in SCOPE_ORDER
        )
        .sort((a, b) => SCOPE_ORDER[a.scope] - SCOPE_ORDER[b.scope]);
      const usable = ips.some((x) => x.scope !== "loopback")
        ? ips.filter((x) => x.scope !== "loopback")
        : ips;
      for (const { ip } of usable) {
        out.push(formatTransportAddress({ scheme: parsed.scheme, host: ip, port: parsed.port }));
      }
    }
    return out;
  }

  #changed(change: AddressChange): void {
    const snapshot = this.snapshot();
    const key = JSON.stringify(snapshot);
    if (key === this.#last) return;
    this.#last = key;
    for (const listener of this.#listeners) listener(snapshot, change);
  }
}

/** The host of a transport address, if it has one. */
export function hostOf(address: string): string | undefined {
  let host: string | undefined;
  try {
    host = parseTransportAddress(address).host;
  } catch {
    return undefined;
  }
  // What a dual-stack listener reports for an IPv4 peer.
  return host?.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
}
