/**
 * `carrier run`: run a node, reading commands from standard input.
 *
 * @module
 */
import { CarrierError, createNode, Opcode, parsePeerAddress } from "../../mod.ts";
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
    "[--listen HOST:PORT]... [--no-listen] [--bootstrap ADDRESS@HOST:PORT]... [--key FILE] [--difficulty N] [--serve-metrics] [--no-stdin] [--json]",
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
    const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
    const node = await createNode({
      identity,
      listen,
      bootstrap,
      puzzleDifficulty: difficulty,
      serveMetrics: flagOf(parsed, "serve-metrics"),
    });
    const printer = new Printer(io, json);
    printer.event(
      "listening",
      { address: node.address, listen: node.listenAddrs },
      node.listenAddrs.length > 0
        ? `listening as ${node.address} on ${node.listenAddrs.join(", ")}`
        : `running as ${node.address} (outbound only)`,
    );
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
