/**
 * NAT port mapping, as a service (rust-libp2p's `upnp` behaviour in
 * spirit): for each TCP address the node listens on behind a NAT (a
 * wildcard or private host), it asks the gateway for a mapping of that
 * port, announces `externalAddress:externalPort` first among the node's
 * addresses, renews at half the granted lifetime, maps again when the
 * gateway lost its state (a NAT-PMP/PCP epoch reset or announcement) or a
 * renewal fails, and deletes its mappings when the node closes.
 *
 * Protocols are tried in the order of `protocols`, each starting
 * {@linkcode NAT_STAGGER} ms after the one before it (or as soon as it
 * failed), and the first mapping wins; the others are cancelled (and a
 * mapping one of them made meanwhile is deleted). `pcp` and `natpmp`
 * together are one attempt: PCP, falling back to NAT-PMP when the gateway
 * answers UNSUPP_VERSION. A gateway whose external address is private
 * (double NAT, carrier-grade NAT) gives no mapping: `nat:failed` with a
 * {@linkcode DoubleNatError}.
 *
 * Events: `nat:mapped` (with the mapping and how long it took),
 * `nat:lost` (a renewal failed; the node maps again), `nat:failed` (no
 * protocol mapped; tried again every `retryInterval`).
 *
 * @module
 */
import { errorMessage } from "../_error_message.ts";
import { DoubleNatError, PortMappingError } from "../nat/errors.ts";
import { defaultGateway, localAddressTowards } from "../nat/gateway.ts";
import { NatPmpClient } from "../nat/natpmp.ts";
import { PcpClient } from "../nat/pcp.ts";
import type { MappingProtocol, PortMapper, PortMapping } from "../nat/types.ts";
import { UpnpClient } from "../nat/upnp.ts";
import { formatTransportAddress, parseTransportAddress } from "../transport/address.ts";
import { ipScope } from "../transport/ip.ts";
import type { Service, ServiceFactory, ServiceHost } from "../service.ts";

/** How long one protocol has to itself before the next one starts, in ms. */
export const NAT_STAGGER = 1_000;

/** The lifetime a mapping asks for, in seconds (RFC 6886 recommends 7200). */
export const DEFAULT_MAPPING_LIFETIME = 7_200;

/** How long a node waits before trying again after every protocol failed, in ms: 5 minutes. */
export const DEFAULT_NAT_RETRY_INTERVAL = 300_000;

/** How long deleting the mappings may take when the node closes, in ms. */
export const NAT_UNMAP_TIMEOUT = 2_000;

/**
 * Options of the `nat` service (`NodeOptions.nat`).
 *
 * @example
 * ```ts
 * import type { NatInit } from "@carrier/p2p";
 * const init: NatInit = { protocols: ["natpmp"], lifetime: 600 };
 * void init;
 * ```
 */
export interface NatInit {
  /**
   * The protocols to try, in order of preference.
   * @default {["pcp", "natpmp", "upnp"]}
   */
  protocols?: readonly MappingProtocol[];
  /**
   * The gateway for NAT-PMP and PCP (UPnP finds its own by SSDP).
   * @default {the IPv4 default route's gateway}
   */
  gateway?: string;
  /**
   * The gateway's NAT-PMP/PCP port (a test's fake gateway listens elsewhere).
   * @default {5351}
   */
  pmpPort?: number;
  /**
   * The lifetime asked for, in seconds; the gateway may grant another,
   * and renewal follows what it granted.
   * @default {DEFAULT_MAPPING_LIFETIME}
   */
  lifetime?: number;
  /**
   * How long to wait before trying again once every protocol failed, in ms.
   * @default {DEFAULT_NAT_RETRY_INTERVAL}
   */
  retryInterval?: number;
  /**
   * The description a UPnP gateway shows for the mapping.
   * @default {"carrier"}
   */
  description?: string;
}

/** The `nat` service (see the module documentation). */
export interface NatService extends Service {
  /** The mappings held now. */
  mappings(): PortMapping[];
}

/**
 * The `nat` service's factory.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nat } from "./nat.ts";
 * assert.equal(typeof nat({ protocols: ["upnp"] }), "function");
 * ```
 */
export function nat(init: NatInit = {}): ServiceFactory<NatService> {
  return (host) => new Nat(host, init);
}

interface Held {
  client: PortMapper;
  mapping: PortMapping;
  timer?: number;
}

/** One protocol attempt: a client, once it exists, and its mapping. */
type Attempt = (signal: AbortSignal) => Promise<{ client: PortMapper; mapping: PortMapping }>;

class Nat implements NatService {
  readonly name = "nat";
  readonly #host: ServiceHost;
  readonly #init: NatInit;
  /** Bound address → its mapping. */
  readonly #held = new Map<string, Held>();
  readonly #retries = new Map<string, number>();
  readonly #tasks = new Set<Promise<unknown>>();

  constructor(host: ServiceHost, init: NatInit) {
    this.#host = host;
    this.#init = init;
  }

  mappings(): PortMapping[] {
    return [...this.#held.values()].map((h) => h.mapping);
  }

  startup(): void {
    for (const bound of this.#host.addresses.bound) {
      if (this.#mappable(bound)) this.#track(this.#establish(bound));
    }
  }

  async cleanup(): Promise<void> {
    const { clock } = this.#host;
    for (const timer of this.#retries.values()) clock.clearTimeout(timer);
    this.#retries.clear();
    await Promise.allSettled([...this.#tasks]);
    const held = [...this.#held.values()];
    this.#held.clear();
    await Promise.allSettled(held.map(async ({ client, mapping, timer }) => {
      if (timer !== undefined) clock.clearTimeout(timer);
      try {
        await client.unmap(mapping, { signal: AbortSignal.timeout(NAT_UNMAP_TIMEOUT) });
      } finally {
        client.close();
      }
    }));
  }

  /** A TCP address on a wildcard or private IPv4 host: one a NAT may hide. */
  #mappable(bound: string): boolean {
    try {
      const { scheme, host } = parseTransportAddress(bound);
      if (scheme !== "tcp" || host === undefined || host.includes(":")) return false;
      const scope = ipScope(host);
      return scope === "unspecified" || scope === "private";
    } catch {
      return false;
    }
  }

  #track(task: Promise<unknown>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task)).catch(() => {});
  }

  async #establish(bound: string): Promise<void> {
    const { clock, signal } = this.#host;
    if (signal.aborted) return;
    const started = clock.now();
    try {
      const { client, mapping } = await this.#race(bound);
      if (signal.aborted) {
        await client.unmap(mapping, { signal: AbortSignal.timeout(NAT_UNMAP_TIMEOUT) })
          .catch(() => {});
        client.close();
        return;
      }
      const held: Held = { client, mapping };
      this.#held.set(bound, held);
      client.onReset = () => this.#track(this.#renew(bound, "the gateway lost its mappings"));
      this.#announce();
      this.#schedule(bound, held);
      this.#host.emit("nat:mapped", { bound, mapping, elapsed: clock.now() - started });
    } catch (err) {
      if (signal.aborted) return;
      const error = err instanceof Error ? err : new PortMappingError(String(err), {
        protocol: "upnp",
      });
      this.#host.emit("nat:failed", { bound, error });
      this.#retry(bound, this.#init.retryInterval ?? DEFAULT_NAT_RETRY_INTERVAL);
    }
  }

  #retry(bound: string, delay: number): void {
    const { clock, signal } = this.#host;
    if (signal.aborted) return;
    const old = this.#retries.get(bound);
    if (old !== undefined) clock.clearTimeout(old);
    this.#retries.set(
      bound,
      clock.setTimeout(() => {
        this.#retries.delete(bound);
        this.#track(this.#establish(bound));
      }, delay),
    );
  }

  /** Renewal at half the granted lifetime (a permanent UPnP lease: every half hour). */
  #schedule(bound: string, held: Held): void {
    const { clock } = this.#host;
    if (held.timer !== undefined) clock.clearTimeout(held.timer);
    const lifetime = held.mapping.lifetime > 0 ? held.mapping.lifetime : 3_600;
    held.timer = clock.setTimeout(
      () => this.#track(this.#renew(bound, "renewal")),
      Math.max(1_000, (lifetime * 1_000) / 2),
    );
  }

  async #renew(bound: string, why: string): Promise<void> {
    const { signal } = this.#host;
    const held = this.#held.get(bound);
    if (held === undefined || signal.aborted) return;
    const old = held.mapping;
    try {
      const mapping = await held.client.map({
        transport: old.transport,
        internalPort: old.internalPort,
        externalPort: old.externalPort,
        lifetime: this.#init.lifetime ?? DEFAULT_MAPPING_LIFETIME,
        description: this.#init.description ?? "carrier",
        signal,
      });
      held.mapping = mapping;
      if (
        mapping.externalPort !== old.externalPort || mapping.externalAddress !== old.externalAddress
      ) {
        this.#announce();
        this.#host.emit("nat:mapped", { bound, mapping, elapsed: 0 });
      }
      this.#schedule(bound, held);
    } catch (err) {
      if (signal.aborted) return;
      if (held.timer !== undefined) this.#host.clock.clearTimeout(held.timer);
      this.#held.delete(bound);
      held.client.close();
      this.#announce();
      const error = new PortMappingError(
        `Cannot keep the ${old.protocol} mapping of port ${old.internalPort} (${why}): ${
          errorMessage(err)
        }`,
        { protocol: old.protocol, cause: err, code: (err as PortMappingError).code },
      );
      this.#host.emit("nat:lost", { bound, mapping: old, error });
      this.#retry(bound, 1_000);
    }
  }

  /** Sets the node's external addresses from the mappings held. */
  #announce(): void {
    const external = this.mappings().map((m) =>
      formatTransportAddress({ scheme: "tcp", host: m.externalAddress, port: m.externalPort })
    );
    this.#host.addresses.setExternal("nat", external);
  }

  /** Runs the protocols' attempts, staggered; the first mapping wins (module documentation). */
  async #race(bound: string): Promise<{ client: PortMapper; mapping: PortMapping }> {
    const port = parseTransportAddress(bound).port!;
    const attempts = await this.#attempts(port);
    if (attempts.length === 0) {
      throw new PortMappingError(
        "No port-mapping protocol to try (no gateway for NAT-PMP/PCP, UPnP not enabled)",
        { protocol: "natpmp" },
      );
    }
    const race = new AbortController();
    const stop = () => race.abort(this.#host.signal.reason);
    this.#host.signal.addEventListener("abort", stop, { once: true });
    const errors: Error[] = [];
    let winner: { client: PortMapper; mapping: PortMapping } | undefined;
    const { clock } = this.#host;
    try {
      await new Promise<void>((resolve, reject) => {
        let started = 0, settled = 0;
        let timer: number | undefined;
        const next = () => {
          if (timer !== undefined) clock.clearTimeout(timer);
          timer = undefined;
          if (started >= attempts.length || race.signal.aborted) return;
          const attempt = attempts[started++];
          if (started < attempts.length) timer = clock.setTimeout(next, NAT_STAGGER);
          attempt(race.signal).then(async (result) => {
            if (winner === undefined && !race.signal.aborted) {
              winner = result;
              race.abort(new DOMException("another protocol mapped first", "AbortError"));
              resolve();
              return;
            }
            await result.client.unmap(result.mapping, {
              signal: AbortSignal.timeout(NAT_UNMAP_TIMEOUT),
            }).catch(() => {});
            result.client.close();
          }, (err) => {
            errors.push(err instanceof Error ? err : new Error(String(err)));
            next(); // the next protocol need not wait for the stagger
          }).finally(() => {
            settled++;
            if (settled === attempts.length && winner === undefined) {
              if (timer !== undefined) clock.clearTimeout(timer);
              if (this.#host.signal.aborted) return reject(this.#host.signal.reason);
              const double = errors.find((e) => e instanceof DoubleNatError);
              reject(
                double ?? new PortMappingError(
                  `No gateway mapped port ${port}: ${errors.map(errorMessage).join("; ")}`,
                  { protocol: "natpmp", cause: errors[0] },
                ),
              );
            }
          });
        };
        next();
      });
    } finally {
      this.#host.signal.removeEventListener("abort", stop);
    }
    return winner!;
  }

  /** One attempt per protocol family, in the order of `protocols`. */
  async #attempts(internalPort: number): Promise<Attempt[]> {
    const protocols = this.#init.protocols ?? ["pcp", "natpmp", "upnp"];
    const lifetime = this.#init.lifetime ?? DEFAULT_MAPPING_LIFETIME;
    const description = this.#init.description ?? "carrier";
    const request = (signal: AbortSignal) => ({
      transport: "tcp" as const,
      internalPort,
      lifetime,
      description,
      signal,
    });
    const gateway = this.#init.gateway ??
      await defaultGateway({ signal: this.#host.signal }).catch(() => undefined);
    const attempts: Attempt[] = [];
    const withClient =
      (make: () => PortMapper | Promise<PortMapper>): Attempt => async (signal) => {
        const client = await make();
        const onAbort = () => client.close();
        signal.addEventListener("abort", onAbort, { once: true });
        try {
          return { client, mapping: await client.map(request(signal)) };
        } catch (err) {
          client.close();
          throw err;
        } finally {
          signal.removeEventListener("abort", onAbort);
        }
      };
    let pmpAdded = false;
    for (const protocol of protocols) {
      if (protocol === "upnp") {
        attempts.push(async (signal) => {
          const local = gateway === undefined
            ? undefined
            : await localAddressTowards(gateway, { signal }).catch(() => undefined);
          return await withClient(() =>
            UpnpClient.discover({ signal, internalClient: local, clock: this.#host.clock })
          )(signal);
        });
      } else if (!pmpAdded && gateway !== undefined) {
        pmpAdded = true;
        const port = this.#init.pmpPort;
        const both = protocols.includes("pcp") && protocols.includes("natpmp");
        attempts.push(
          withClient(() =>
            protocol === "natpmp" && !both
              ? new NatPmpClient({ gateway, port, clock: this.#host.clock })
              : new PcpClient({ gateway, port, clock: this.#host.clock, fallback: both })
          ),
        );
      }
    }
    return attempts;
  }
}
