// The node agent of the network lab: one carrier node in a process, run by
// `Host.spawnNode` inside a lab namespace as
//
//   ip netns exec NS deno run -A tests/lab/_agent.ts '<AgentOptions as JSON>'
//
// It prints JSON lines on stdout: first `{"event":"ready", address,
// listenAddrs, peerAddresses}`, then the node's events (`peer:connect`,
// `peer:disconnect`, `message`, `addresses`, `nat:mapped`, `nat:lost`,
// `nat:failed`, `error`) and the replies to the commands it
// reads on stdin, one JSON object a line: `{"id":1,"command":"ping",
// "params":{"address":"…"}}` → `{"id":1,"ok":true,"result":{…}}` or
// `{"id":1,"ok":false,"error":{"name":"…","message":"…"}}`.
//
// A new command is one entry in COMMANDS (`close` alone is served apart: it
// waits for the commands in flight, closes the node and ends the process).
// Bytes travel as hex.
import { create } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import {
  createNode,
  defineOpcode,
  DisconnectReason,
  formatAddress,
  type Node,
  type NodeOptions,
  type RelayHint,
} from "../../mod.ts";

/** An application opcode every agent answers: the request's text, prefixed with "echo ". */
const ECHO = defineOpcode(1000, {
  name: "ECHO",
  request: StringValueSchema,
  reply: StringValueSchema,
});

const relaysOf = (relays: readonly RelayHint[]) =>
  relays.map((r) => ({ address: formatAddress(r.identityKey), listenAddrs: [...r.listenAddrs] }));
import type { PeerConnection } from "../../mod.ts";

/** What the agent reads from its first argument. */
export interface AgentOptions {
  /** Addresses to listen on (`HOST:PORT`). @default {[]} */
  listen?: string[];
  /** Bootstrap peers (`ADDRESS@HOST:PORT`). @default {[]} */
  bootstrap?: string[];
  /** More `createNode` options (JSON-serialisable ones). @default {{ puzzleDifficulty: 0 }} */
  options?: Record<string, unknown>;
}

/** A command's parameters, as the JSON line carried them. */
// deno-lint-ignore no-explicit-any
export type Params = Record<string, any>;

/** A command: what it answers is the reply's `result`. */
export type Command = (node: Node, params: Params) => unknown | Promise<unknown>;

const text = new TextDecoder();

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhex(value: string): Uint8Array {
  if (!/^([0-9a-f]{2})*$/i.test(value)) throw new TypeError(`expected hex, got "${value}"`);
  return Uint8Array.from(value.match(/../g) ?? [], (b) => parseInt(b, 16));
}

function required(params: Params, name: string): string {
  const value = params[name];
  if (typeof value !== "string" || value === "") {
    throw new TypeError(`missing string parameter "${name}", got ${JSON.stringify(value)}`);
  }
  return value;
}

/** What the agent says about a connection. */
function describePeer(peer: PeerConnection): Record<string, unknown> {
  const { remote, initiator, stream } = peer.channel;
  return {
    address: peer.address,
    direction: initiator ? "outbound" : "inbound",
    initiator,
    remoteAddress: stream.remoteAddress,
    localAddress: stream.localAddress,
    listenAddrs: [...remote.listenAddrs],
    acceptsInbound: remote.acceptsInbound,
    observedAddr: remote.observedAddr,
    agent: remote.agent,
    relay: stream.relay,
    relays: relaysOf(remote.relays),
  };
}

/** The commands, by name. */
export const COMMANDS: Record<string, Command> = {
  info: (node) => ({
    address: node.address,
    listenAddrs: node.listenAddrs,
    peerAddresses: node.peerAddresses,
  }),
  async connect(node, params) {
    const peer = await node.connect(required(params, "peer"), {
      persistent: params.persistent === true,
    });
    return describePeer(peer);
  },
  async ping(node, params) {
    return { rttMs: await node.ping(required(params, "address")) };
  },
  peers: (node) => node.peers().map(describePeer),
  table: (node) => ({
    size: node.routingTable.size,
    contacts: node.routingTable.all().map((c) => ({
      address: c.address,
      nodeId: hex(c.nodeId),
      listenAddrs: [...c.listenAddrs],
      lastSeen: c.lastSeen,
    })),
  }),
  async findClosest(node, params) {
    const target = typeof params.target === "string" ? unhex(params.target) : node.identity.nodeId;
    const result = await node.findClosest(target);
    const contact = (c: { address: string; listenAddrs: string[] }) => ({
      address: c.address,
      listenAddrs: [...c.listenAddrs],
    });
    return {
      closest: result.closest.map(contact),
      unreachable: result.unreachable.map(contact),
      queries: result.queries,
      hops: result.hops,
    };
  },
  addresses: (node) => ({
    ...node.addresses.snapshot(),
    relays: relaysOf(node.addresses.relays),
    bound: node.addresses.bound,
    observedHosts: node.addresses.observedHosts(),
    mappings: node.portMappings,
  }),
  async echo(node, params) {
    const reply = await node.request(
      required(params, "address"),
      ECHO,
      create(StringValueSchema, { value: String(params.text ?? "") }),
    );
    return { text: reply?.value };
  },
  async dhtPut(node, params) {
    const result = await node.dht.put(required(params, "key"), String(params.value ?? ""));
    return { version: result.version, replicas: result.replicas };
  },
  async dhtGet(node, params) {
    const found = await node.dht.get(required(params, "key"));
    return { value: found === undefined ? null : text.decode(found.value) };
  },
  metrics: (node) => {
    const { relay, connections } = node.metrics();
    return { relay, connections };
  },
  async disconnect(node, params) {
    const info = await node.peer(required(params, "address"))?.close();
    return { closed: info !== undefined };
  },
  async whisper(node, params) {
    const options = typeof params.encrypted === "boolean" ? { encrypted: params.encrypted } : {};
    const result = await node.whisper(required(params, "to"), String(params.text ?? ""), options);
    return { hops: result.hops, hash: hex(result.hash) };
  },
};

const encoder = new TextEncoder();

/** Writes one JSON line to stdout (whole, so lines never interleave). */
function print(value: unknown): void {
  const bytes = encoder.encode(`${JSON.stringify(value)}\n`);
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

function errorOf(err: unknown): { name: string; message: string } {
  return err instanceof Error
    ? { name: err.name, message: err.message }
    : { name: "Error", message: String(err) };
}

function forwardEvents(node: Node): void {
  node.addEventListener("peer:connect", (e) => {
    print({ event: "peer:connect", ...describePeer(e.detail.connection) });
  });
  node.addEventListener("peer:disconnect", (e) => {
    const info = e.detail.info;
    print({
      event: "peer:disconnect",
      address: e.detail.address,
      reason: info ? DisconnectReason[info.reason] ?? info.reason : undefined,
      remote: info?.remote,
      error: info?.error?.message,
    });
  });
  node.addEventListener("message", (e) => {
    const { from, opcode, topic, body, hops, encrypted } = e.detail;
    print({ event: "message", from, opcode, topic, text: text.decode(body), hops, encrypted });
  });
  node.addEventListener("addresses", (e) => {
    print({ event: "addresses", ...e.detail, relays: relaysOf(e.detail.relays) });
  });
  node.addEventListener("relays", (e) => {
    print({ event: "relays", relays: e.detail.relays });
  });
  node.addEventListener("peer:path", (e) => {
    const { address, path, relay } = e.detail;
    print({ event: "peer:path", address, path, relay });
  });
  node.addEventListener("holepunch", (e) => {
    print({ event: "holepunch", ...e.detail });
  });
  for (const type of ["nat:mapped", "nat:lost", "nat:failed"] as const) {
    node.addEventListener(type, (e) => {
      const { bound, mapping, elapsed, error } = e.detail;
      print({ event: type, bound, mapping, elapsed, error: error && errorOf(error) });
    });
  }
  node.addEventListener("error", (e) => {
    print({ event: "error", source: e.detail.source, ...errorOf(e.detail.error) });
  });
}

/** Serves the JSON-line commands on stdin until `close` or the end of input. */
async function serve(node: Node): Promise<void> {
  const pending = new Set<Promise<void>>();
  let buffer = "";
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  for await (const chunk of lines) {
    buffer += chunk;
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    for (const line of parts) {
      if (line.trim() === "") continue;
      let request: { id?: unknown; command?: unknown; params?: Params };
      try {
        request = JSON.parse(line);
      } catch (err) {
        print({ event: "error", source: "stdin", ...errorOf(err), line });
        continue;
      }
      const { id, command } = request;
      if (command === "close") {
        await Promise.allSettled(pending);
        await node.close();
        print({ id, ok: true, result: null });
        return;
      }
      const run = typeof command === "string" && Object.hasOwn(COMMANDS, command)
        ? COMMANDS[command]
        : () => {
          throw new TypeError(
            `unknown command ${JSON.stringify(command)}; known: close, ${
              Object.keys(COMMANDS).join(", ")
            }`,
          );
        };
      const task = (async () => {
        try {
          print({ id, ok: true, result: (await run(node, request.params ?? {})) ?? null });
        } catch (err) {
          print({ id, ok: false, error: errorOf(err) });
        }
      })();
      pending.add(task);
      task.finally(() => pending.delete(task));
    }
  }
  await Promise.allSettled(pending);
}

async function main(): Promise<void> {
  const agent: AgentOptions = JSON.parse(Deno.args[0] ?? "{}");
  const options = {
    puzzleDifficulty: 0,
    ...agent.options,
    listen: agent.listen ?? [],
    bootstrap: agent.bootstrap ?? [],
  } as NodeOptions;
  const node = await createNode(options);
  node.handle(ECHO, (m) => create(StringValueSchema, { value: `echo ${m.value}` }));
  forwardEvents(node);
  const stop = () => node.close().finally(() => Deno.exit(0));
  Deno.addSignalListener("SIGTERM", stop);
  print({
    event: "ready",
    address: node.address,
    listenAddrs: node.listenAddrs,
    peerAddresses: node.peerAddresses,
  });
  try {
    await serve(node);
  } finally {
    await node.close();
  }
  Deno.exit(0);
}

if (import.meta.main) await main();
