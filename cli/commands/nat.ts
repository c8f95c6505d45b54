/**
 * `carrier nat`: what the gateway offers (NAT-PMP, PCP, UPnP IGD) and the
 * external address each gives, mapping nothing.
 *
 * @module
 */
import { type MappingProtocol, probeGateway } from "../../mod.ts";
import type { Command } from "../command.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
import { defaultedInteger, flagOf, JSON_OPTION, noPositionals, stringOf } from "../options.ts";

const PROTOCOLS: readonly MappingProtocol[] = ["natpmp", "pcp", "upnp"];

/** The command `carrier nat`. */
export const natCommand: Command = {
  summary: "show what the gateway offers for port mapping (NAT-PMP, PCP, UPnP IGD)",
  synopsis: "[--gateway IP] [--protocols LIST] [--timeout MS] [--json]",
  options: {
    gateway: {
      type: "string",
      value: "IP",
      help: "the NAT-PMP/PCP gateway",
      otherwise: "the IPv4 default route's",
    },
    protocols: {
      type: "string",
      value: "LIST",
      help: "the protocols to ask (comma-separated)",
      default: PROTOCOLS.join(","),
    },
    timeout: {
      type: "string",
      value: "MS",
      help: "how long each protocol may take",
      default: "3000",
    },
    json: JSON_OPTION,
  },
  details: () => [
    "Asks each protocol at once for the gateway's external address and leaves no mapping",
    "behind (PCP's probe maps a high UDP port and deletes it at once). Exit code 0 when one answered, 5 when",
    "none did. A private external address means another NAT lies beyond the gateway: a",
    "mapping there would not make a node reachable.",
  ],
  async run(parsed, { io }) {
    noPositionals(parsed);
    const protocols = (stringOf(parsed, "protocols") ?? "").split(",").map((p) => p.trim())
      .filter(Boolean);
    for (const p of protocols) {
      if (!PROTOCOLS.includes(p as MappingProtocol)) {
        throw new UsageError(`--protocols takes ${PROTOCOLS.join(", ")}; got "${p}"`);
      }
    }
    const report = await probeGateway({
      gateway: stringOf(parsed, "gateway"),
      protocols: protocols as MappingProtocol[],
      timeout: defaultedInteger(parsed, "timeout"),
    });
    if (flagOf(parsed, "json")) {
      io.out(JSON.stringify({
        ...report,
        protocols: report.protocols.map((p) => ({ ...p, ms: Math.round(p.ms) })),
      }));
    } else {
      io.out(`gateway  ${report.gateway ?? "(no IPv4 default route)"}`);
      io.out(`local    ${report.localAddress ?? "-"}`);
      for (const p of report.protocols) {
        const ms = `${Math.round(p.ms)} ms`;
        const what = !p.ok
          ? `no: ${p.error}`
          : p.doubleNat
          ? `answers, but ${
            p.externalAddress ?? "its external address"
          } is private: double NAT, mapping would not help`
          : `external address ${p.externalAddress}${p.service ? ` (${p.service})` : ""}`;
        io.out(`${p.protocol.padEnd(8)} ${what} [${ms}]`);
      }
    }
    return report.protocols.some((p) => p.ok) ? EXIT_CODES.OK : EXIT_CODES.UNREACHABLE;
  },
};
