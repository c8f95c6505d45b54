#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net --allow-env
/**
 * The `carrier` command line. Imports only `mod.ts`.
 *
 *   carrier demo                          what carrier does, on this machine
 *   carrier keygen --out FILE             make a key file (mode 0600)
 *   carrier id --key FILE                 print a key file's address and NodeId
 *   carrier run --listen HOST:PORT        run a node (`--json` for machine-readable events)
 *   carrier ping ADDRESS@HOST:PORT        measure the round-trip time to a node
 *
 * Exit codes: see {@linkcode EXIT_CODES}.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  AddressError,
  CarrierError,
  compress,
  COMPRESSION_SETTINGS,
  type CompressionName,
  ConnectionClosedError,
  createFrame,
  createNode,
  decompress,
  DEFAULT_PUZZLE_DIFFICULTY,
  DialError,
  encodeFrame,
  FrameDecoder,
  generateIdentity,
  HandshakeError,
  type Identity,
  IdentityMismatchError,
  KeyFileError,
  loadKeyFile,
  type Node,
  Opcode,
  PeerAddressError,
  puzzleWork,
  saveKeyFile,
  TimeoutError,
} from "./mod.ts";

/** Exit codes of the `carrier` command, one per kind of failure. */
export const EXIT_CODES = Object.freeze({
  /** Success. */
  OK: 0,
  /** An unexpected failure. */
  FAILURE: 1,
  /** Bad command-line usage. */
  USAGE: 2,
  /** A key file is missing, unreadable or corrupt. */
  BAD_KEY_FILE: 3,
  /** An address is malformed. */
  BAD_ADDRESS: 4,
  /** A peer or bootstrap node cannot be reached. */
  UNREACHABLE: 5,
  /** An operation timed out. */
  TIMEOUT: 6,
  /** The peer at that address proved another identity. */
  IDENTITY_MISMATCH: 7,
});

/** Where a command writes: injectable so tests can capture it. */
export interface CliOutput {
  /** Writes one line to standard output. */
  out(line: string): void;
  /** Writes one line to standard error. */
  err(line: string): void;
}

const consoleOutput: CliOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** A usage error: bad flags or arguments. */
class UsageError extends Error {}

interface Command {
  summary: string;
  usage: string;
  run(args: string[], io: CliOutput): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  demo: {
    summary: "show what carrier does, on this machine",
    usage: "carrier demo",
    run: runDemo,
  },
  keygen: {
    summary: "generate an identity and write it to a key file (mode 0600)",
    usage: "carrier keygen --out FILE [--difficulty N] [--force]",
    run: runKeygen,
  },
  id: {
    summary: "print the address and NodeId of a key file",
    usage: "carrier id --key FILE [--json]",
    run: runId,
  },
  run: {
    summary: "run a node until interrupted",
    usage:
      "carrier run [--listen HOST:PORT]... [--no-listen] [--bootstrap ADDRESS@HOST:PORT]... [--key FILE] [--difficulty N] [--json]",
    run: runNode,
  },
  ping: {
    summary: "connect to a node and print the round-trip time",
    usage:
      "carrier ping ADDRESS@HOST:PORT [--count N] [--timeout MS] [--key FILE] [--difficulty N] [--json]",
    run: runPing,
  },
};

function help(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  return [
    "carrier: peer-to-peer networking (Ed25519 addresses, Noise, Protobuf frames)",
    "",
    "Usage: carrier <command> [options]",
    "",
    "Commands:",
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    "",
    "Run `carrier <command> --help` for a command's options.",
  ].join("\n");
}

/** Runs `parseArgs`, turning its errors into usage errors that show the command's usage. */
function parse<R>(command: Command, run: () => R): R {
  try {
    return run();
  } catch (err) {
    throw new UsageError(`${(err as Error).message}\nUsage: ${command.usage}`);
  }
}

const HELP = { help: { type: "boolean", short: "h" } } as const;

async function runKeygen(args: string[], io: CliOutput): Promise<number> {
  const { values } = parse(COMMANDS.keygen, () =>
    parseArgs({
      args,
      strict: true,
      options: {
        ...HELP,
        out: { type: "string", short: "o" },
        difficulty: { type: "string" },
        force: { type: "boolean" },
      },
    }));
  if (values.help) return usage(COMMANDS.keygen, io);
  if (!values.out) {
    throw new UsageError(
      `--out FILE is required\nUsage: ${COMMANDS.keygen.usage}`,
    );
  }
  const difficulty = parseInteger(
    "--difficulty",
    values.difficulty,
    DEFAULT_PUZZLE_DIFFICULTY,
  );
  const identity = await generateIdentity({ difficulty });
  await saveKeyFile(values.out, identity, { overwrite: values.force === true });
  io.out(identity.address);
  return EXIT_CODES.OK;
}

async function runId(args: string[], io: CliOutput): Promise<number> {
  const { values } = parse(COMMANDS.id, () =>
    parseArgs({
      args,
      strict: true,
      options: { ...HELP, key: { type: "string", short: "k" }, json: { type: "boolean" } },
    }));
  if (values.help) return usage(COMMANDS.id, io);
  if (!values.key) {
    throw new UsageError(`--key FILE is required\nUsage: ${COMMANDS.id.usage}`);
  }
  const identity = await loadKeyFile(values.key);
  const info = {
    address: identity.address,
    nodeId: hex(identity.nodeId),
    puzzleBits: puzzleWork(identity.publicKey),
  };
  if (values.json) io.out(JSON.stringify(info));
  else {
    io.out(`address  ${info.address}`);
    io.out(`node id  ${info.nodeId}`);
    io.out(`puzzle   ${info.puzzleBits} leading zero bits`);
  }
  return EXIT_CODES.OK;
}

async function runDemo(args: string[], io: CliOutput): Promise<number> {
  const { values } = parse(COMMANDS.demo, () => parseArgs({ args, strict: true, options: HELP }));
  if (values.help) return usage(COMMANDS.demo, io);

  io.out(
    "== Identity: an Ed25519 key that passes the S/Kademlia static puzzle",
  );
  const difficulty = 12;
  const started = performance.now();
  const me = await generateIdentity({ difficulty });
  const ms = performance.now() - started;
  io.out(`address     ${me.address}  (base58 of the 32-byte public key)`);
  io.out(`node id     ${hex(me.nodeId)}  (SHA-256 of the address)`);
  io.out(
    `puzzle      SHA-256(SHA-256(key)) has ${
      puzzleWork(me.publicKey)
    } leading zero bits (needed ${difficulty}; ~${
      2 ** difficulty
    } keys tried on average), found in ${ms.toFixed(0)} ms`,
  );

  io.out("");
  io.out("== Frames: size-delimited carrier.v1.Frame messages");
  const frames = [
    createFrame({ opcode: Opcode.PING, id: 1 }),
    createFrame({
      opcode: 1000,
      id: 2,
      payload: new TextEncoder().encode("hello, carrier"),
    }),
    createFrame({ opcode: Opcode.ACK, id: 1 }),
  ];
  const encoded = frames.map((f) => encodeFrame(f));
  for (const [i, bytes] of encoded.entries()) {
    io.out(
      `${opcodeName(frames[i].opcode).padEnd(8)} id=${frames[i].id}  ${bytes.length} bytes  ${
        hex(bytes)
      }`,
    );
  }
  const stream = concat(encoded);
  const decoder = new FrameDecoder();
  const decoded = [];
  for (let i = 0; i < stream.length; i += 5) {
    decoded.push(...decoder.push(stream.subarray(i, i + 5)));
  }
  decoder.end();
  io.out(
    `decoded ${decoded.length} frames from ${stream.length} bytes fed in 5-byte chunks: ${
      decoded.map((f) => `${opcodeName(f.opcode)}#${f.id}`).join(", ")
    }`,
  );

  io.out("");
  io.out("== Compression settings on a 64 KiB sample (JSON log records)");
  const sample = sampleLogRecords(64 * 1024);
  io.out(
    `${"setting".padEnd(8)} ${"value".padStart(5)} ${"bytes".padStart(8)} ${
      "ratio".padStart(7)
    }  round trip`,
  );
  for (
    const [name, setting] of Object.entries(COMPRESSION_SETTINGS) as [
      CompressionName,
      number,
    ][]
  ) {
    const packed = compress(setting, sample);
    const back = decompress(setting, packed, { maxOutputSize: sample.length });
    const ok = back.length === sample.length &&
      back.every((b, i) => b === sample[i]);
    io.out(
      `${name.padEnd(8)} ${String(setting).padStart(5)} ${String(packed.length).padStart(8)} ${
        (sample.length / packed.length).toFixed(1).padStart(6)
      }x  ${ok ? "ok" : "MISMATCH"}`,
    );
  }
  io.out("");
  await demoNodes(io);
  io.out("");
  await demoSwarm(io);
  io.out("");
  io.out("Not yet built: the DHT's values, locks and patches (see the README's status table).");
  return EXIT_CODES.OK;
}

/** Part of the demo: three nodes on loopback TCP, one of them outbound-only. */
async function demoNodes(io: CliOutput): Promise<void> {
  io.out("== Nodes on 127.0.0.1: Noise XX connections, PING, SPEAK, metrics");
  const nodes: Node[] = [];
  try {
    const hub = await createNode({ listen: ["127.0.0.1:0"], serveMetrics: true });
    nodes.push(hub);
    const alice = await createNode({ listen: ["127.0.0.1:0"] });
    nodes.push(alice);
    const bob = await createNode(); // no listener: dials out only
    nodes.push(bob);
    const names = new Map([[hub.address, "hub"], [alice.address, "alice"], [bob.address, "bob"]]);
    const name = (address: string) => names.get(address) ?? address.slice(0, 8);
    io.out(`hub    ${hub.peerAddresses[0]}`);
    io.out(`alice  ${alice.peerAddresses[0]}`);
    io.out(`bob    ${bob.address} (outbound only)`);
    const heard: string[] = [];
    for (const n of nodes) {
      n.addEventListener("message", (e) => {
        heard.push(
          `${name(n.address)} heard "${new TextDecoder().decode(e.detail.body)}" from ${
            name(e.detail.from)
          }`,
        );
      });
    }
    const started = performance.now();
    await alice.connect(hub.peerAddresses[0]);
    io.out(
      `alice -> hub: connect + Noise XX handshake in ${
        (performance.now() - started).toFixed(1)
      } ms`,
    );
    await bob.connect(hub.peerAddresses[0]);
    await bob.connect(alice.peerAddresses[0]);
    for (const [from, to] of [[alice, hub], [bob, hub], [bob, alice]] as const) {
      const rtts = [];
      for (let i = 0; i < 5; i++) rtts.push(await from.ping(to.address));
      io.out(
        `${name(from.address)} -> ${name(to.address)}: PING round trip ${
          Math.min(...rtts).toFixed(3)
        } ms (best of 5)`,
      );
    }
    // Wait until the hub has registered both inbound connections, then SPEAK.
    for (let i = 0; i < 100 && hub.peers().length < 2; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const sent = await hub.speak("hello, direct peers");
    for (let i = 0; i < 100 && heard.length < sent; i++) await new Promise((r) => setTimeout(r, 5));
    io.out(`hub SPEAKs to its ${sent} direct peers:`);
    for (const line of heard.sort()) io.out(`  ${line}`);
    const metrics = await alice.requestMetrics(hub.address);
    io.out(
      `hub's metrics, as alice asked for them (METRICS): ${metrics.connections.inbound} connections, ${metrics.totals.framesReceived} frames and ${metrics.totals.bytesReceived} bytes received`,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

/** Part of the demo: 24 nodes on loopback TCP, 4 of them outbound-only; SHOUT and WHISPER. */
async function demoSwarm(io: CliOutput): Promise<void> {
  io.out("== A swarm of 24 nodes on 127.0.0.1 (4 of them accept no connections): SHOUT, WHISPER");
  const nodes: Node[] = [];
  try {
    // Short-lived lookup connections close after 300 ms idle here (10 s by
    // default), so that what remains are the connections nodes chose.
    const seed = await createNode({
      listen: ["127.0.0.1:0"],
      maxPendingHandshakes: 64,
      ephemeralIdleTimeout: 300,
    });
    nodes.push(seed);
    const started = performance.now();
    for (let i = 0; i < 23; i++) {
      nodes.push(
        await createNode({
          listen: i < 19 ? ["127.0.0.1:0"] : [],
          bootstrap: [seed.peerAddresses[0]],
          ephemeralIdleTimeout: 300,
        }),
      );
    }
    for (let i = 0; i < 400 && nodes.some((n) => n.peers().length === 0); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(nodes.map((n) => n.refreshRoutingTable()));
    await new Promise((r) => setTimeout(r, 700)); // lookup connections close
    const connections = nodes.reduce((a, n) => a + n.peers().length, 0) / nodes.length;
    const table = nodes.reduce((a, n) => a + n.routingTable.size, 0) / nodes.length;
    io.out(
      `joined through one seed, looked up their own ids and refreshed their tables in ${
        (performance.now() - started).toFixed(0)
      } ms: ${connections.toFixed(1)} connections (ℓ = 8 dialed at most) and ${
        table.toFixed(1)
      } routing-table contacts per node`,
    );
    const outboundOnly = nodes.slice(20);

    // SHOUT from a listening node and from one that only dials out.
    for (const origin of [nodes[7], outboundOnly[0]]) {
      const before = nodes.reduce((a, n) => a + n.metrics().shouts.sent, 0);
      const hops: number[] = [];
      let last = 0;
      const t0 = performance.now();
      const listeners = nodes.filter((n) => n !== origin).map((n) => {
        const listener = (e: CustomEvent<{ opcode: number; hops?: number }>) => {
          if (e.detail.opcode !== Opcode.SHOUT) return;
          hops.push(e.detail.hops ?? 0);
          last = performance.now() - t0;
        };
        n.addEventListener("message", listener as EventListener);
        return () => n.removeEventListener("message", listener as EventListener);
      });
      await origin.shout(`hello from node ${nodes.indexOf(origin)}`);
      for (let i = 0; i < 1000 && hops.length < nodes.length - 1; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      for (const remove of listeners) remove();
      const sent = nodes.reduce((a, n) => a + n.metrics().shouts.sent, 0) - before;
      const kind = origin.listenAddrs.length > 0
        ? "a listening node"
        : "a node that only dials out";
      io.out(
        `SHOUT from ${kind}: delivered to ${hops.length} of ${
          nodes.length - 1
        } nodes, once each; ${sent} SHOUT frames (a flood over ℓ = 8 would send ${
          (2 * 8 - 1) * nodes.length + 1
        }); at most ${Math.max(...hops)} hops; last node after ${last.toFixed(1)} ms`,
      );
    }

    // WHISPER between two nodes that accept no connections, and across the swarm.
    const [from, to] = [outboundOnly[1], outboundOnly[2]];
    const received: string[] = [];
    to.addEventListener("message", (e) => {
      if (e.detail.opcode === Opcode.WHISPER) {
        received.push(
          `${new TextDecoder().decode(e.detail.body)} (${
            e.detail.encrypted ? "sealed" : "in the clear"
          })`,
        );
      }
    });
    const sealed = await from.whisper(to.address, "psst, only you can read this");
    io.out(
      `WHISPER between two nodes that accept no connections: ${sealed.hops} hops, acknowledged with hash ${
        hex(sealed.hash).slice(0, 16)
      }…; received "${received[0]}"`,
    );
    const hops: number[] = [];
    for (let i = 0; i < 60 && hops.length < 10; i++) {
      const a = nodes[(i * 5 + 1) % nodes.length];
      const b = nodes[(i * 7 + 3) % nodes.length];
      if (a === b || a.peer(b.address)) continue; // pairs not directly connected
      hops.push((await a.whisper(b.address, `note ${i}`)).hops);
    }
    io.out(
      `${hops.length} WHISPERs between nodes that were not connected: ${
        hops.join(", ")
      } hops (a sender that knows where the recipient listens dials it; ⌈log₂ 24⌉ + 1 = 6)`,
    );
    const relayed = nodes.reduce((a, n) => a + n.metrics().whispers.relayed, 0);
    io.out(`relays forwarded ${relayed} WHISPERs they could not read`);
    io.out(
      "(A node that only dials out is a leaf of the SHOUT tree: every node connected to it sends it a copy.)",
    );
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

/** Loads `--key FILE`, creating it (mode 0600) if it does not exist; else a fresh identity. */
async function identityFor(
  keyFile: string | undefined,
  difficulty: number,
  io: CliOutput,
  json: boolean,
): Promise<Identity> {
  if (keyFile === undefined) return await generateIdentity({ difficulty });
  try {
    return await loadKeyFile(keyFile);
  } catch (err) {
    if (!(err instanceof KeyFileError && err.cause instanceof Deno.errors.NotFound)) throw err;
  }
  const identity = await generateIdentity({ difficulty });
  await saveKeyFile(keyFile, identity);
  if (json) io.out(JSON.stringify({ event: "keygen", address: identity.address, key: keyFile }));
  else io.err(`created key file ${keyFile} for ${identity.address}`);
  return identity;
}

async function runNode(args: string[], io: CliOutput): Promise<number> {
  const { values } = parse(COMMANDS.run, () =>
    parseArgs({
      args,
      strict: true,
      options: {
        ...HELP,
        listen: { type: "string", short: "l", multiple: true },
        "no-listen": { type: "boolean" },
        bootstrap: { type: "string", short: "b", multiple: true },
        key: { type: "string", short: "k" },
        difficulty: { type: "string" },
        json: { type: "boolean" },
      },
    }));
  if (values.help) return usage(COMMANDS.run, io);
  const json = values.json === true;
  const difficulty = parseInteger("--difficulty", values.difficulty, DEFAULT_PUZZLE_DIFFICULTY);
  if (values["no-listen"] && values.listen?.length) {
    throw new UsageError(
      `--listen and --no-listen exclude each other\nUsage: ${COMMANDS.run.usage}`,
    );
  }
  const listen = values["no-listen"] ? [] : (values.listen ?? ["0.0.0.0:0"]);
  const identity = await identityFor(values.key, difficulty, io, json);
  const node = await createNode({
    identity,
    listen,
    bootstrap: values.bootstrap ?? [],
    puzzleDifficulty: difficulty,
  });
  const say = (event: string, fields: Record<string, unknown>, human: string) =>
    io.out(json ? JSON.stringify({ event, ...fields }) : human);
  say(
    "listening",
    { address: node.address, listen: node.listenAddrs },
    node.listenAddrs.length > 0
      ? `listening as ${node.address} on ${node.listenAddrs.join(", ")}`
      : `running as ${node.address} (outbound only)`,
  );
  node.addEventListener(
    "peer:connect",
    (e) => say("peer:connect", { address: e.detail.address }, `connected ${e.detail.address}`),
  );
  node.addEventListener("peer:disconnect", (e) =>
    say(
      "peer:disconnect",
      { address: e.detail.address, reason: e.detail.info?.error?.message ?? "" },
      `disconnected ${e.detail.address}`,
    ));
  node.addEventListener("message", (e) => {
    const { from, opcode, topic, body } = e.detail;
    const text = new TextDecoder().decode(body);
    say("message", { from, opcode, topic, body: text }, `message from ${from}: ${text}`);
  });
  node.addEventListener("error", (e) =>
    say(
      "error",
      { source: e.detail.source, error: e.detail.error.message },
      `error (${e.detail.source}): ${e.detail.error.message}`,
    ));
  await untilInterrupted();
  await node.close();
  say("closed", {}, "closed");
  return EXIT_CODES.OK;
}

/** Resolves on SIGINT or SIGTERM. */
function untilInterrupted(): Promise<void> {
  return new Promise((resolve) => {
    const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
    const stop = () => {
      for (const s of signals) Deno.removeSignalListener(s, stop);
      resolve();
    };
    for (const s of signals) Deno.addSignalListener(s, stop);
  });
}

async function runPing(args: string[], io: CliOutput): Promise<number> {
  const { values, positionals } = parse(COMMANDS.ping, () =>
    parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        ...HELP,
        count: { type: "string", short: "c" },
        timeout: { type: "string", short: "t" },
        key: { type: "string", short: "k" },
        difficulty: { type: "string" },
        json: { type: "boolean" },
      },
    }));
  if (values.help) return usage(COMMANDS.ping, io);
  if (positionals.length !== 1) {
    throw new UsageError(`expected one ADDRESS@HOST:PORT\nUsage: ${COMMANDS.ping.usage}`);
  }
  const count = parseInteger("--count", values.count, 1);
  const timeout = parseInteger("--timeout", values.timeout, 5_000);
  const difficulty = parseInteger("--difficulty", values.difficulty, DEFAULT_PUZZLE_DIFFICULTY);
  const identity = await identityFor(values.key, difficulty, io, values.json === true);
  let node: Node | undefined;
  try {
    node = await createNode({
      identity,
      puzzleDifficulty: difficulty,
      dialTimeout: timeout,
      handshakeTimeout: timeout,
    });
    const peer = await node.connect(positionals[0]);
    for (let i = 0; i < count; i++) {
      const rtt = await node.ping(peer.address, { timeout });
      io.out(
        values.json
          ? JSON.stringify({ event: "pong", address: peer.address, rtt_ms: rtt })
          : `pong from ${peer.address}: rtt ${rtt.toFixed(3)} ms`,
      );
    }
  } finally {
    await node?.close();
  }
  return EXIT_CODES.OK;
}

function usage(command: Command, io: CliOutput): number {
  io.out(`Usage: ${command.usage}\n\n${command.summary}`);
  return EXIT_CODES.OK;
}

function parseInteger(
  flag: string,
  text: string | undefined,
  fallback: number,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new UsageError(
      `${flag} must be a non-negative integer, got "${text}"`,
    );
  }
  return n;
}

function opcodeName(opcode: number): string {
  return Opcode[opcode] ?? `APP_${opcode}`;
}

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Deterministic JSON log lines: realistic, compressible, not trivial. */
function sampleLogRecords(size: number): Uint8Array {
  const levels = ["info", "debug", "warn", "error"];
  const lines: string[] = [];
  let length = 0;
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  for (let i = 0; length < size; i++) {
    const line = JSON.stringify({
      ts: 1_763_700_000_000 + i * 137,
      level: levels[next() % 4],
      peer: `12D3KooW${(next() % 1e9).toString(36)}`,
      msg: [
        "frame received",
        "handshake complete",
        "ping",
        "store accepted",
      ][next() % 4],
      bytes: next() % 65536,
      rtt_ms: (next() % 5000) / 100,
    });
    lines.push(line);
    length += line.length + 1;
  }
  return new TextEncoder().encode(lines.join("\n")).subarray(0, size);
}

function isDomTimeout(err: unknown): boolean {
  return err instanceof DOMException && err.name === "TimeoutError";
}

/** Exit code for an error escaping a command. */
function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT_CODES.USAGE;
  if (err instanceof KeyFileError) return EXIT_CODES.BAD_KEY_FILE;
  if (err instanceof AddressError || err instanceof PeerAddressError) return EXIT_CODES.BAD_ADDRESS;
  if (err instanceof IdentityMismatchError) return EXIT_CODES.IDENTITY_MISMATCH;
  if (err instanceof TimeoutError || isDomTimeout(err)) return EXIT_CODES.TIMEOUT;
  if (
    err instanceof DialError || err instanceof HandshakeError ||
    err instanceof ConnectionClosedError
  ) return EXIT_CODES.UNREACHABLE;
  return EXIT_CODES.FAILURE;
}

/**
 * Runs the command line with `args`; resolves the exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 * Deno.exit(await main(["demo"]));
 * ```
 */
export async function main(
  args: string[],
  io: CliOutput = consoleOutput,
): Promise<number> {
  const [name, ...rest] = args;
  if (
    name === undefined || name === "--help" || name === "-h" || name === "help"
  ) {
    io.out(help());
    return name === undefined ? EXIT_CODES.USAGE : EXIT_CODES.OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`carrier: unknown command "${name}"\n\n${help()}`);
    return EXIT_CODES.USAGE;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    const prefix = err instanceof CarrierError ? `${err.name}: ` : "";
    io.err(`carrier ${name}: ${prefix}${(err as Error).message}`);
    return exitCodeOf(err);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
