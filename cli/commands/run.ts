/**
 * `carrier run`: run a node, reading commands from standard input.
 *
 * @module
 */
import {
  aesGcmImplementation,
  CarrierError,
  createNode,
  type MappingProtocol,
  type NatInit,
  type Node,
  Opcode,
  parsePeerAddress,
  parseTransportAddress,
} from "../../mod.ts";
import type { Command } from "../command.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
import { identityFor } from "../identity.ts";
import { nodeCommandsHelp } from "../node_command.ts";
import { NODE_COMMANDS } from "../node_commands.ts";
import {
  defaultedInteger,
  DIFFICULTY_OPTION,
  flagOf,
  JSON_OPTION,
  KEY_OPTION,
  noPositionals,
  stringOf,
  stringsOf,
} from "../options.ts";
import { bytesFields, opcodeName, Printer, shown } from "../output.ts";
import { serveCommands } from "../repl.ts";
import { defaultBudgetText } from "./limits.ts";

/** The command `carrier run`. */
export const runCommand: Command = {
  summary: "run a node, reading commands from standard input until `quit` or its end",
  synopsis:
    "[--listen HOST:PORT]... [--no-listen] [--announce HOST:PORT]... [--nat PROTOCOLS | --no-nat] [--bootstrap ADDRESS@HOST:PORT]... [--key FILE] [--difficulty N] [--serve-metrics] [--relay] [--no-holepunch] [--no-stdin] [--json]",
  options: {
    listen: {
      type: "string",
      short: "l",
      multiple: true,
      value: "HOST:PORT",
      help: "accept connections here (repeatable)",
      otherwise: "0.0.0.0:0",
    },
    "no-listen": { type: "boolean", help: "accept no connections: dial out only" },
    announce: {
      type: "string",
      multiple: true,
      value: "HOST:PORT",
      help: "tell peers to reach this node here (a forwarded port; repeatable)",
      otherwise: "the listen addresses, 0.0.0.0 expanded to this host's interfaces",
    },
    nat: {
      type: "string",
      value: "PROTOCOLS",
      help: "port-mapping protocols to try, in order (comma-separated: pcp, natpmp, upnp)",
      default: "pcp,natpmp,upnp",
    },
    "no-nat": { type: "boolean", help: "map no port on the gateway" },
    bootstrap: {
      type: "string",
      short: "b",
      multiple: true,
      value: "ADDRESS@HOST:PORT",
      help: "connect to this node and keep the connection (repeatable)",
    },
    key: KEY_OPTION,
    difficulty: DIFFICULTY_OPTION,
    "serve-metrics": { type: "boolean", help: "answer peers' METRICS requests" },
    relay: {
      type: "boolean",
      help:
        "relay for nodes that accept no connections (reservations and circuits, default limits)",
    },
    "no-holepunch": {
      type: "boolean",
      help: "neither start nor answer hole punches (relayed connections stay relayed)",
    },
    "no-stdin": {
      type: "boolean",
      help: "read no commands: run until SIGINT or SIGTERM (for services)",
    },
    json: JSON_OPTION,
  },
  details: () => [
    "Commands on standard input, one per line. A word that starts with ' or \" runs to the",
    "matching quote: quote text whose spaces matter, and JSON with spaces, that way.",
    ...nodeCommandsHelp(NODE_COMMANDS),
    "`COMMAND --help` shows a command's options. `quit`, the end of input, SIGINT and SIGTERM",
    "close the node.",
    "",
    "Output: events (connections, messages received) and command results, as text; with",
    '--json one object per line: {"event":"listening"|"peer:connect"|"peer:disconnect"|',
    '"shout"|"speak"|"whisper"|"message"|"error"|"closed",...} for events and',
    '{"command":NAME,"ok":true,...} or {"command":NAME,"ok":false,"error":{"name","message",...}}',
    "for command results. Errors in text mode go to standard error.",
    "",
    "Resource budget with the default options (what peers can make the node hold; `limits`",
    "prints the running node's):",
    ...defaultBudgetText(),
  ],
  async run(parsed, { io, input }) {
    noPositionals(parsed);
    const json = flagOf(parsed, "json");
    const difficulty = defaultedInteger(parsed, "difficulty");
    const listenFlags = stringsOf(parsed, "listen");
    if (flagOf(parsed, "no-listen") && listenFlags.length > 0) {
      throw new UsageError("--listen and --no-listen exclude each other");
    }
    const bootstrap = stringsOf(parsed, "bootstrap");
    for (const peer of bootstrap) parsePeerAddress(peer); // a malformed one: exit code 4
    const listen = flagOf(parsed, "no-listen")
      ? []
      : (listenFlags.length > 0 ? listenFlags : ["0.0.0.0:0"]);
    const announce = stringsOf(parsed, "announce");
    for (const a of announce) parseTransportAddress(a); // a malformed one: exit code 4
    const nat = natOption(parsed);
    const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
    const node = await createNode({
      identity,
      listen,
      bootstrap,
      announce: announce.length > 0 ? announce : undefined,
      nat,
      puzzleDifficulty: difficulty,
      serveMetrics: flagOf(parsed, "serve-metrics"),
      relay: flagOf(parsed, "relay") ? { serve: true } : undefined,
      holePunch: flagOf(parsed, "no-holepunch") ? false : undefined,
    });
    const printer = new Printer(io, json);
    printer.event(
      "listening",
      {
        address: node.address,
        listen: node.listenAddrs,
        announced: node.peerAddresses,
        aesGcm: aesGcmImplementation(),
      },
      node.listenAddrs.length > 0
        ? `listening as ${node.address} on ${node.listenAddrs.join(", ")}; reach it at ${
          node.peerAddresses.join(", ") || "(no address to announce)"
        }`
        : `running as ${node.address} (outbound only)`,
    );
    printAddressEvents(node, printer);
    node.addEventListener(
      "peer:connect",
      (e) =>
        printer.event(
          "peer:connect",
          { address: e.detail.address },
          `connected ${e.detail.address}`,
        ),
    );
    node.addEventListener("peer:disconnect", (e) =>
      printer.event(
        "peer:disconnect",
        { address: e.detail.address, reason: e.detail.info?.error?.message ?? "" },
        `disconnected ${e.detail.address}`,
      ));
    node.addEventListener("message", (e) => {
      const { name, fields, human } = describeMessage(e.detail);
      printer.event(name, fields, human);
    });
    node.addEventListener("error", (e) =>
      printer.event(
        "error",
        { source: e.detail.source, error: e.detail.error.message },
        `error (${e.detail.source}): ${e.detail.error.message}`,
      ));

    const stop = new AbortController();
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const onSignal = () => stop.abort(new CarrierError("Interrupted"));
    for (const s of signals) Deno.addSignalListener(s, onSignal);
    const stopped = new Promise<void>((resolve) =>
      stop.signal.addEventListener("abort", () => resolve(), { once: true })
    );
    try {
      if (flagOf(parsed, "no-stdin")) await stopped;
      else await Promise.race([serveCommands(input(), node, printer, stop.signal), stopped]);
    } finally {
      for (const s of signals) Deno.removeSignalListener(s, onSignal);
      stop.abort();
      await node.close();
      printer.event("closed", {}, "closed");
    }
    return EXIT_CODES.OK;
  },
};

const PROTOCOLS: readonly MappingProtocol[] = ["pcp", "natpmp", "upnp"];

/** `--nat PROTOCOLS` / `--no-nat` as the node's `nat` option. */
function natOption(parsed: Parameters<Command["run"]>[0]): NatInit | false {
  if (flagOf(parsed, "no-nat")) return false;
  const protocols = (stringOf(parsed, "nat") ?? "").split(",").map((p) => p.trim()).filter(Boolean);
  for (const p of protocols) {
    if (!PROTOCOLS.includes(p as MappingProtocol)) {
      throw new UsageError(`--nat takes ${PROTOCOLS.join(", ")}; got "${p}"`);
    }
  }
  if (protocols.length === 0) {
    throw new UsageError("--nat needs at least one protocol (or use --no-nat)");
  }
  return { protocols: protocols as MappingProtocol[] };
}

/** What the node announces and maps, as it changes. */
function printAddressEvents(node: Node, printer: Printer): void {
  node.addEventListener("addresses", (e) => {
    const { listenAddrs, acceptsInbound, reachability } = e.detail;
    const verdict = reachability === "unknown"
      ? "reachability not known yet"
      : reachability === "public"
      ? "reachable (a peer's dial-back arrived)"
      : "not reachable from its peers: accepts no inbound connections";
    printer.event(
      "addresses",
      { listen: listenAddrs, acceptsInbound, reachability },
      `announcing ${listenAddrs.join(", ") || "nothing"}; ${verdict}`,
    );
  });
  node.addEventListener("nat:mapped", (e) => {
    const { mapping, elapsed } = e.detail;
    const external = `${mapping!.externalAddress}:${mapping!.externalPort}`;
    printer.event(
      "nat:mapped",
      {
        protocol: mapping!.protocol,
        gateway: mapping!.gateway,
        internalPort: mapping!.internalPort,
        external,
        lifetime: mapping!.lifetime,
        ms: Math.round(elapsed ?? 0),
      },
      `mapped port ${mapping!.internalPort} with ${mapping!.protocol} on ${
        mapping!.gateway
      }: reach it at ${node.address}@${external}`,
    );
  });
  node.addEventListener("relays", (e) => {
    const { relays } = e.detail;
    printer.event(
      "relays",
      { relays },
      relays.length > 0
        ? `reachable by key through ${relays.length === 1 ? "relay" : "relays"} ${
          relays.join(", ")
        }`
        : "holds no relay reservation",
    );
  });
  node.addEventListener("holepunch", (e) => {
    const { address, direct, ms, attempts, connected, error } = e.detail;
    printer.event(
      "holepunch",
      { address, direct, ms, attempts, connected: connected ?? null, error: error ?? null },
      direct
        ? `direct connection to ${address} through the NATs (${connected}) in ${ms} ms`
        : `no direct connection to ${address} (${error}); it stays relayed`,
    );
  });
  for (const type of ["nat:lost", "nat:failed"] as const) {
    node.addEventListener(type, (e) =>
      printer.event(
        type,
        { bound: e.detail.bound, error: e.detail.error?.message ?? "" },
        `${
          type === "nat:lost" ? "lost the port mapping" : "no port mapping"
        } for ${e.detail.bound}: ${e.detail.error?.message}`,
      ));
  }
}

/** A `message` event as printed: `shout`, `speak`, `whisper`, or `message` for other opcodes. */
function describeMessage(
  detail: {
    from: string;
    opcode: number;
    topic: string;
    body: Uint8Array;
    hops?: number;
    encrypted?: boolean;
  },
): { name: string; fields: Record<string, unknown>; human: string } {
  const { from, opcode, topic, body, hops, encrypted } = detail;
  const content = bytesFields("body", body);
  const text = shown(content);
  const onTopic = topic ? ` on "${topic}"` : "";
  switch (opcode) {
    case Opcode.SHOUT:
      return {
        name: "shout",
        fields: { from, topic, ...content, hops },
        human: `shout from ${from}${onTopic} (${hops ?? 0} hops): ${text}`,
      };
    case Opcode.SPEAK:
      return {
        name: "speak",
        fields: { from, topic, ...content },
        human: `speak from ${from}${onTopic}: ${text}`,
      };
    case Opcode.WHISPER:
      return {
        name: "whisper",
        fields: { from, topic, ...content, encrypted: encrypted === true },
        human: `whisper from ${from}${onTopic} (${encrypted ? "sealed" : "in the clear"}): ${text}`,
      };
    default:
      return {
        name: "message",
        fields: { from, opcode, topic, ...content },
        human: `message ${opcodeName(opcode)} from ${from}: ${text}`,
      };
  }
}
