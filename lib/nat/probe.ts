/**
 * What the gateway offers: {@linkcode probeGateway} asks it, over each
 * protocol at once, for its external address (no mapping is left behind),
 * for `carrier nat` and for diagnostics.
 *
 * @module
 */
import { errorMessage } from "../_error_message.ts";
import { ipScope } from "../transport/ip.ts";
import { DoubleNatError } from "./errors.ts";
import { defaultGateway, localAddressTowards } from "./gateway.ts";
import { NatPmpClient } from "./natpmp.ts";
import { PcpClient } from "./pcp.ts";
import { UpnpClient } from "./upnp.ts";
import type { MappingProtocol } from "./types.ts";

/**
 * What one protocol said.
 *
 * @example
 * ```ts
 * import type { ProtocolReport } from "@carrier/p2p";
 * const report: ProtocolReport = { protocol: "natpmp", ok: true, externalAddress: "80.100.100.1", ms: 3 };
 * void report;
 * ```
 */
export interface ProtocolReport {
  /** The protocol. */
  protocol: MappingProtocol;
  /** Whether the gateway answered it with an external address. */
  ok: boolean;
  /** The external address it gave. */
  externalAddress?: string;
  /** A private external address: another NAT lies beyond this gateway. */
  doubleNat?: boolean;
  /** For UPnP: the device description's URL and the WAN service type. */
  location?: string;
  /** For UPnP: the WAN connection service (`urn:…:WANIPConnection:2`, …). */
  service?: string;
  /** Why it failed (no answer, refused, …). */
  error?: string;
  /** How long the answer took, in ms. */
  ms: number;
}

/**
 * What {@linkcode probeGateway} found.
 *
 * @example
 * ```ts
 * import type { GatewayReport } from "@carrier/p2p";
 * const report: GatewayReport = { gateway: undefined, localAddress: undefined, protocols: [] };
 * void report;
 * ```
 */
export interface GatewayReport {
  /** The IPv4 default route's gateway, if there is one. */
  gateway: string | undefined;
  /** This host's address towards it. */
  localAddress: string | undefined;
  /** One report per protocol, in the order asked. */
  protocols: ProtocolReport[];
}

/**
 * Options of {@linkcode probeGateway}.
 *
 * @example
 * ```ts
 * import type { ProbeGatewayOptions } from "@carrier/p2p";
 * const options: ProbeGatewayOptions = { protocols: ["upnp"], timeout: 2_000 };
 * void options;
 * ```
 */
export interface ProbeGatewayOptions {
  /** The protocols to ask. @default {["natpmp", "pcp", "upnp"]} */
  protocols?: readonly MappingProtocol[];
  /** The gateway for NAT-PMP and PCP. @default {the IPv4 default route's gateway} */
  gateway?: string;
  /** How long each protocol may take, in ms. @default {3_000} */
  timeout?: number;
  /** Aborts the probe. */
  signal?: AbortSignal;
}

/**
 * Asks the gateway for its external address over each protocol (at once),
 * and reports what answered. PCP has no address request: its probe is a
 * mapping of a random high UDP port, deleted as soon as it is granted.
 *
 * @param options Protocols, gateway, timeout.
 * @returns One report per protocol.
 *
 * @example
 * ```ts ignore
 * import { probeGateway } from "@carrier/p2p";
 * const { gateway, protocols } = await probeGateway();
 * for (const p of protocols) console.log(gateway, p.protocol, p.ok ? p.externalAddress : p.error);
 * ```
 */
export async function probeGateway(options: ProbeGatewayOptions = {}): Promise<GatewayReport> {
  const timeout = options.timeout ?? 3_000;
  const signal = options.signal
    ? AbortSignal.any([options.signal, AbortSignal.timeout(timeout)])
    : AbortSignal.timeout(timeout);
  const gateway = options.gateway ?? await defaultGateway({ signal }).catch(() => undefined);
  const localAddress = gateway === undefined
    ? undefined
    : await localAddressTowards(gateway, { signal }).catch(() => undefined);
  const tries = 5; // 250 ms doubling: about 8 s at most, cut short by the timeout
  const ask = async (
    protocol: MappingProtocol,
    run: () => Promise<Omit<ProtocolReport, "protocol" | "ok" | "ms">>,
  ): Promise<ProtocolReport> => {
    const started = performance.now();
    try {
      const found = await run();
      const doubleNat = found.externalAddress !== undefined &&
        ipScope(found.externalAddress) === "private";
      return { protocol, ok: true, ...found, doubleNat, ms: performance.now() - started };
    } catch (err) {
      const ms = performance.now() - started;
      if (err instanceof DoubleNatError) {
        return { protocol, ok: true, doubleNat: true, error: err.message, ms };
      }
      return { protocol, ok: false, error: errorMessage(err), ms };
    }
  };
  const noGateway = () => Promise.reject(new Error("no IPv4 default gateway"));
  const probes = (options.protocols ?? ["natpmp", "pcp", "upnp"]).map((protocol) => {
    switch (protocol) {
      case "natpmp":
        return ask(protocol, async () => {
          if (gateway === undefined) return await noGateway();
          using client = new NatPmpClient({ gateway, tries, announcements: false });
          signal.addEventListener("abort", () => client.close(), { once: true });
          return { externalAddress: await client.externalAddress({ signal }) };
        });
      case "pcp":
        return ask(protocol, async () => {
          if (gateway === undefined) return await noGateway();
          using client = new PcpClient({ gateway, tries, fallback: false, announcements: false });
          signal.addEventListener("abort", () => client.close(), { once: true });
          return { externalAddress: await client.externalAddress({ signal }) };
        });
      case "upnp":
        return ask(protocol, async () => {
          await using client = await UpnpClient.discover({ signal, internalClient: localAddress });
          signal.addEventListener("abort", () => client.close(), { once: true });
          return {
            location: client.location,
            service: (await client.service({ signal })).serviceType,
            externalAddress: await client.externalAddress({ signal }),
          };
        });
    }
  });
  return { gateway, localAddress, protocols: await Promise.all(probes) };
}
