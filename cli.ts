#!/usr/bin/env -S deno run --allow-read --allow-write --allow-net
/**
 * The `carrier` command line. Imports only `mod.ts`.
 *
 *   carrier demo                                    what carrier does, on this machine
 *   carrier keygen --out FILE                       make a key file (mode 0600)
 *   carrier id --key FILE                           print a key file's address and NodeId
 *   carrier run --listen HOST:PORT                  run a node; commands on standard input
 *   carrier ping ADDRESS@HOST:PORT                  measure the round-trip time to a node
 *   carrier shout --bootstrap PEER TEXT             join, SHOUT to the network, leave
 *   carrier whisper --bootstrap PEER ADDRESS TEXT   join, WHISPER to one node, leave
 *   carrier dht get --bootstrap PEER KEY            join, act on the DHT (get, put, cas,
 *                                                   lock, unlock, patch, changes), leave
 *   carrier help [COMMAND]                          a command's options
 *
 * `carrier run` reads commands from standard input, one per line (`help`
 * lists them): the table `NODE_COMMANDS`. The one-shot commands (`shout`,
 * `whisper`, `dht …`) run an entry of that same table on a short-lived
 * outbound-only node.
 *
 * Exit codes: see {@linkcode EXIT_CODES}.
 *
 * @module
 */
import {
  CarrierError,
  compress,
  COMPRESSION_SETTINGS,
  type CompressionName,
  createFrame,
  createNode,
  decompress,
  DEFAULT_PUZZLE_DIFFICULTY,
  encodeFrame,
  FrameDecoder,
  generateIdentity,
  type Identity,
  KeyFileError,
  loadKeyFile,
  LockHeldError,
  type Node,
  nodeIdOf,
  Opcode,
  parseAddress,
  parseJsonPatch,
  parsePeerAddress,
  puzzleWork,
  QuorumError,
  saveKeyFile,
  TimeoutError,
  VersionConflictError,
} from "./mod.ts";
import {
  type CliContext,
  type Command,
  type CommandGroup,
  commandHelp,
  groupHelp,
  isCommandGroup,
  overview,
  usageLine,
} from "./cli/command.ts";
import { EXIT_CODES, exitCodeOf, UsageError } from "./cli/errors.ts";
import {
  type NodeCommand,
  type NodeCommandGroup,
  nodeCommandsHelp,
  type Outcome,
} from "./cli/node_command.ts";
import {
  DIFFICULTY_OPTION,
  flagOf,
  integerOf,
  JSON_OPTION,
  KEY_OPTION,
  noPositionals,
  type OptionSpecs,
  type Parsed,
  parseWith,
  stringOf,
  stringsOf,
  wrap,
} from "./cli/options.ts";
import {
  bytesFields,
  type CliOutput,
  consoleOutput,
  hex,
  opcodeName,
  Printer,
  shown,
} from "./cli/output.ts";

import { NODE_COMMANDS } from "./cli/node_commands.ts";
import { serveCommands } from "./cli/repl.ts";
import { defaultBudgetText } from "./cli/commands/limits.ts";

export { EXIT_CODES } from "./cli/errors.ts";
export type { CliOutput } from "./cli/output.ts";

// ---- output of `carrier run` and the one-shots ----

// ---- the `carrier` commands ----

/** The options every one-shot command adds to its node command's. */
const ONE_SHOT_OPTIONS: OptionSpecs = {
  bootstrap: {
    type: "string",
    short: "b",
    multiple: true,
    value: "ADDRESS@HOST:PORT",
    help: "join through this node (required; repeatable)",
  },
  key: KEY_OPTION,
  difficulty: DIFFICULTY_OPTION,
  timeout: {
    type: "string",
    short: "t",
    value: "MS",
    help: "give up after this long, exit code 6",
    default: "10000",
  },
  json: JSON_OPTION,
};

/** What a one-shot command's exit codes mean, where they differ from or add to `ONE_SHOT_EXIT_CODES`. */
const ONE_SHOT_EXITS: Record<string, Record<number, string>> = {
  "dht get": { 1: "no value under KEY (found: false), or another failure" },
  "dht put": { 8: "the replicas hold a newer version than --version" },
  "dht cas": { 8: "KEY is not at version --expect (the compare-and-swap lost)" },
  "dht patch": { 8: "KEY is not at version --base" },
  "dht lock": { 9: "another node holds the lock" },
  "dht unlock": {
    9: "another node holds the lock (it was taken with another --key, or lapsed and was taken again)",
  },
};

/** What every one-shot command's exit codes mean. */
const ONE_SHOT_EXIT_CODES: Record<number, string> = {
  [EXIT_CODES.OK]: "done",
  [EXIT_CODES.FAILURE]: "failure",
  [EXIT_CODES.USAGE]: "usage",
  [EXIT_CODES.BAD_KEY_FILE]: "bad key file",
  [EXIT_CODES.BAD_ADDRESS]: "bad address",
  [EXIT_CODES.UNREACHABLE]: "bootstrap unreachable",
  [EXIT_CODES.TIMEOUT]: "timeout",
  [EXIT_CODES.IDENTITY_MISMATCH]: "the bootstrap node proved another identity",
};

/** `carrier NAME --bootstrap PEER ...`: the node command NAME on a short-lived node. */
function oneShot(name: string, command: NodeCommand, summary: string): Command {
  const first = name.startsWith("dht ")
    ? "looks up KEY's replicas"
    : name === "whisper"
    ? "looks up the recipient's neighbourhood"
    : "looks up its neighbourhood";
  const exits = Object.entries({
    ...ONE_SHOT_EXIT_CODES,
    ...(name === "whisper"
      ? { [EXIT_CODES.UNREACHABLE]: "bootstrap or recipient unreachable" }
      : {}),
    ...ONE_SHOT_EXITS[name],
  }).map(([code, meaning]) => `${code} ${meaning}`);
  return {
    summary,
    synopsis:
      `--bootstrap ADDRESS@HOST:PORT [--key FILE] [--difficulty N] [--timeout MS] [--json] ${
        (command.oneShotSynopsis ?? command.synopsis).replace("ADDRESS|--all", "ADDRESS")
      }`,
    options: { ...command.options, ...ONE_SHOT_OPTIONS },
    details: () => [
      ...wrap(
        `The node dials out only and uses a fresh identity unless --key is given. It connects to the bootstrap node, ${first}, acts and leaves.`,
      ),
      ...wrap(`Exit codes: ${exits.join(", ")}.`),
      ...wrap(
        'With --json the result is one line {"command":"' + name +
          '","ok":true,...} and a failure one line {"command":"' + name +
          '","ok":false,"error":{"name","message",...}} on standard output, as `carrier run --json` prints them.',
      ),
    ],
    jsonErrors: true,
    run: (parsed, context) => runOneShot(name, command, parsed, context),
  };
}

/** The `dht` node commands as one-shots: `carrier dht get --bootstrap PEER KEY`… */
function dhtOneShots(): Record<string, Command> {
  const group = NODE_COMMANDS.dht as NodeCommandGroup;
  const commands: Record<string, Command> = {};
  for (const [sub, command] of Object.entries(group.subcommands)) {
    const summary = `join through a bootstrap node, ${command.summary}, leave`;
    commands[sub] = { ...oneShot(`dht ${sub}`, command, summary), listing: command.summary };
  }
  return commands;
}

const COMMANDS: Record<string, Command | CommandGroup> = {
  demo: {
    summary: "show what carrier does, on this machine",
    synopsis: "",
    options: {},
    run: runDemo,
  },
  keygen: {
    summary: "generate an identity and write it to a key file (mode 0600)",
    synopsis: "--out FILE [--difficulty N] [--force]",
    options: {
      out: { type: "string", short: "o", value: "FILE", help: "the key file to write (required)" },
      difficulty: {
        type: "string",
        value: "N",
        help: "static puzzle difficulty the key must pass",
        default: String(DEFAULT_PUZZLE_DIFFICULTY),
      },
      force: { type: "boolean", help: "overwrite an existing file" },
    },
    run: runKeygen,
  },
  id: {
    summary: "print the address and NodeId of a key file",
    synopsis: "--key FILE [--json]",
    options: {
      key: { type: "string", short: "k", value: "FILE", help: "the key file to read (required)" },
      json: JSON_OPTION,
    },
    run: runId,
  },
  run: {
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
    run: runNode,
  },
  ping: {
    summary: "connect to a node and print the round-trip time",
    synopsis: "ADDRESS@HOST:PORT [--count N] [--timeout MS] [--key FILE] [--difficulty N] [--json]",
    options: {
      count: { type: "string", short: "c", value: "N", help: "PINGs to send", default: "1" },
      timeout: {
        type: "string",
        short: "t",
        value: "MS",
        help: "time for the connection and each reply, exit code 6",
        default: "5000",
      },
      key: KEY_OPTION,
      difficulty: DIFFICULTY_OPTION,
      json: JSON_OPTION,
    },
    run: runPing,
  },
  shout: oneShot(
    "shout",
    NODE_COMMANDS.shout as NodeCommand,
    "join through a bootstrap node, SHOUT TEXT to the network, leave",
  ),
  whisper: oneShot(
    "whisper",
    NODE_COMMANDS.whisper as NodeCommand,
    "join through a bootstrap node, WHISPER TEXT to the node ADDRESS, leave",
  ),
  dht: {
    summary:
      "join through a bootstrap node, use the DHT (get, put, cas, lock, unlock, patch, changes), leave",
    subcommands: dhtOneShots(),
  },
  help: {
    summary: "list the commands, or show one command's options",
    synopsis: "[COMMAND [SUBCOMMAND]]",
    options: {},
    run(parsed, { io }) {
      const [name, sub, extra] = parsed.positionals;
      if (name === undefined) {
        io.out(overview(COMMANDS));
        return Promise.resolve(EXIT_CODES.OK);
      }
      if (!Object.hasOwn(COMMANDS, name)) throw new UsageError(`unknown command "${name}"`);
      const entry = COMMANDS[name];
      if (!isCommandGroup(entry) || sub === undefined) {
        const unexpected = isCommandGroup(entry) ? extra : sub;
        if (unexpected !== undefined) throw new UsageError(`unexpected argument "${unexpected}"`);
        io.out(isCommandGroup(entry) ? groupHelp(name, entry) : commandHelp(name, entry));
        return Promise.resolve(EXIT_CODES.OK);
      }
      if (!Object.hasOwn(entry.subcommands, sub)) {
        throw new UsageError(`unknown command "${name} ${sub}"`);
      }
      if (extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
      io.out(commandHelp(`${name} ${sub}`, entry.subcommands[sub]));
      return Promise.resolve(EXIT_CODES.OK);
    },
  },
};

async function runKeygen(parsed: Parsed, { io }: CliContext): Promise<number> {
  noPositionals(parsed);
  const out = stringOf(parsed, "out");
  if (!out) throw new UsageError("--out FILE is required");
  const difficulty = integerOf(parsed, "difficulty");
  const identity = await generateIdentity({ difficulty });
  await saveKeyFile(out, identity, { overwrite: flagOf(parsed, "force") });
  io.out(identity.address);
  return EXIT_CODES.OK;
}

async function runId(parsed: Parsed, { io }: CliContext): Promise<number> {
  noPositionals(parsed);
  const key = stringOf(parsed, "key");
  if (!key) throw new UsageError("--key FILE is required");
  const identity = await loadKeyFile(key);
  const info = {
    address: identity.address,
    nodeId: hex(identity.nodeId),
    puzzleBits: puzzleWork(identity.publicKey),
  };
  if (flagOf(parsed, "json")) io.out(JSON.stringify(info));
  else {
    io.out(`address  ${info.address}`);
    io.out(`node id  ${info.nodeId}`);
    io.out(`puzzle   ${info.puzzleBits} leading zero bits`);
  }
  return EXIT_CODES.OK;
}

async function runDemo(parsed: Parsed, { io }: CliContext): Promise<number> {
  noPositionals(parsed);
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
  io.out("Not yet built: NAT port mapping (see the README's status table).");
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
    io.out("");
    await demoDht(io, nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

/**
 * Part of the demo, on the swarm of `demoSwarm` (nodes 20 to 23 accept no
 * connections: they read and write through the replicas, the 20 closest
 * listening nodes to a key): a value, a compare-and-swap race, a lock, a
 * JSON patch.
 */
async function demoDht(io: CliOutput, nodes: Node[]): Promise<void> {
  io.out("== The DHT on the same swarm: values, compare-and-swap, a lock, a JSON patch");
  const label = (n: Node) =>
    `node ${nodes.indexOf(n)}${n.listenAddrs.length === 0 ? " (outbound only)" : ""}`;
  const encode = (text: string) => new TextEncoder().encode(text);
  const decode = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);
  const since = (t0: number) => `${(performance.now() - t0).toFixed(0)} ms`;

  // A value: put on one node, get on another.
  const [writer, reader] = [nodes[3], nodes[21]];
  let t0 = performance.now();
  const put = await writer.dht.put("greeting", encode("hello, dht"));
  const putTime = since(t0);
  t0 = performance.now();
  const got = await reader.dht.get("greeting");
  io.out(
    `${
      label(writer)
    } put "greeting" = "hello, dht": version ${put.version} at ${put.replicas} replicas in ${putTime}; ${
      label(reader)
    } got "${decode(got?.value)}", version ${got?.version}, in ${since(t0)}`,
  );

  // A race: each racer adds one to the counter, retrying (read, compare-and-swap) when it loses.
  const racers = [nodes[1], nodes[6], nodes[11], nodes[16], nodes[22]];
  await racers[0].dht.cas("counter", encode("0"), 0);
  let won = 0, lost = 0, uncertain = 0;
  t0 = performance.now();
  await Promise.all(racers.map(async (racer) => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await racer.dht.get("counter");
      const next = encode(String(Number(decode(current?.value)) + 1));
      try {
        await racer.dht.cas("counter", next, current?.version ?? 0);
        won++;
        return;
      } catch (err) {
        if (err instanceof VersionConflictError) lost++;
        else if (err instanceof QuorumError) uncertain++;
        else throw err;
      }
      await new Promise((r) => setTimeout(r, Math.random() * 10 * (attempt + 1))); // back off
    }
  }));
  const counter = await nodes[9].dht.get("counter");
  const count = Number(decode(counter?.value));
  io.out(
    `${racers.length} nodes each added 1 to "counter" by compare-and-swap, retrying when they lost, in ${
      since(t0)
    }: ${won} acknowledged, ${lost} lost with VersionConflictError${
      uncertain > 0 ? `, ${uncertain} uncertain (QuorumError)` : ""
    }; ${label(nodes[9])} reads ${count} at version ${counter?.version}: ${
      count === won
        ? "every acknowledged increment, no other"
        : count > won && count <= won + uncertain
        ? `every acknowledged increment, and ${count - won} of the uncertain ones`
        : `MISMATCH with ${won} acknowledged`
    }`,
  );

  // A lock: one holder at a time; fencing tokens only grow.
  const [holder, rival] = [nodes[4], nodes[23]];
  const lease = await holder.dht.lock("job", { ttl: 5_000 });
  let refusal = "granted to both: MISMATCH";
  try {
    await rival.dht.unlock(await rival.dht.lock("job"));
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err;
    refusal = `held by ${err.holder.slice(0, 8)}… (${
      err.holder === holder.address ? label(holder) : "another node"
    }), token ${err.fencingToken}, ${err.expiresIn} ms left`;
  }
  await holder.dht.unlock(lease);
  const next = await rival.dht.lock("job", { ttl: 5_000 });
  await rival.dht.unlock(next);
  io.out(
    `${label(holder)} locked "job": fencing token ${lease.fencingToken}, lease ${lease.ttl} ms; ${
      label(rival)
    } tried: ${refusal}; after the unlock it got the lock with token ${next.fencingToken}`,
  );

  // A JSON document changed by a patch, and the change read back.
  const [author, editor, follower] = [nodes[5], nodes[12], nodes[20]];
  const doc = JSON.stringify({ title: "shopping", items: ["bread"] });
  const first = await author.dht.put("list", encode(doc));
  const ops = parseJsonPatch(
    '[{"op":"add","path":"/items/-","value":"milk"},{"op":"replace","path":"/title","value":"groceries"}]',
  );
  const patched = await editor.dht.patch("list", { json: ops }, first.version);
  const { changes } = await follower.dht.changes("list", first.version);
  const now = await follower.dht.get("list");
  io.out(
    `${label(author)} put "list" = ${doc} (version ${first.version}); ${
      label(editor)
    } patched it to version ${patched.version}: ${ops.map((o) => `${o.op} ${o.path}`).join(", ")}`,
  );
  io.out(
    `${label(follower)} read the changes since version ${first.version}: ${changes.length} ${
      changes.length === 1 ? "change" : "changes"
    }${
      changes.map((c) =>
        `, ${c.baseVersion} -> ${c.version} (${
          "json" in c.patch
            ? c.patch.json.map((o) => `${o.op} ${o.path}`).join(", ")
            : "splices"
        })`
      ).join("")
    }; the value now: ${decode(now?.value)}`,
  );
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

async function runNode(parsed: Parsed, { io, input }: CliContext): Promise<number> {
  noPositionals(parsed);
  const json = flagOf(parsed, "json");
  const difficulty = integerOf(parsed, "difficulty");
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
      printer.event("peer:connect", { address: e.detail.address }, `connected ${e.detail.address}`),
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

/**
 * A one-shot command: an outbound-only node joins through `--bootstrap`,
 * looks up its neighbourhood (or the node the command addresses), runs the
 * node command `name` once, prints its result and closes.
 */
async function runOneShot(
  name: string,
  command: NodeCommand,
  parsed: Parsed,
  { io }: CliContext,
): Promise<number> {
  const action = command.prepare(parsed, "one-shot");
  const bootstraps = stringsOf(parsed, "bootstrap");
  if (bootstraps.length === 0) throw new UsageError("--bootstrap ADDRESS@HOST:PORT is required");
  const peers = bootstraps.map((b) => parsePeerAddress(b));
  const timeout = integerOf(parsed, "timeout", 1);
  const difficulty = integerOf(parsed, "difficulty");
  const json = flagOf(parsed, "json");
  const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
  const deadline = new AbortController();
  const timer = setTimeout(
    () =>
      deadline.abort(
        new TimeoutError(`carrier ${name} did not finish within ${timeout} ms (--timeout)`),
      ),
    timeout,
  );
  let node: Node | undefined;
  try {
    node = await createNode({
      identity,
      listen: [],
      puzzleDifficulty: difficulty,
      dialTimeout: timeout,
      handshakeTimeout: timeout,
    });
    const joining = node;
    const joined = await Promise.allSettled(
      peers.map((peer) => joining.connect(peer, { signal: deadline.signal })),
    );
    const failed = joined.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed && joined.every((r) => r.status === "rejected")) {
      throw deadline.signal.aborted ? deadline.signal.reason : failed.reason;
    }
    // Fill the routing table: around the recipient (a route to it), else
    // around this node's own id, as a joining node does (the SHOUT's tree).
    // The bootstrap node is a route on its own, so a failed lookup is not
    // fatal; a timeout is.
    // (A DHT command looks up its key itself.)
    if (!action.routesItself) {
      const target = action.reach ? nodeIdOf(parseAddress(action.reach)) : node.identity.nodeId;
      try {
        await node.lookup(target, { signal: deadline.signal });
      } catch {
        if (deadline.signal.aborted) throw deadline.signal.reason;
      }
    }
    let outcome: Outcome;
    try {
      outcome = await action.run(node, deadline.signal);
    } catch (err) {
      throw deadline.signal.aborted ? deadline.signal.reason : err;
    }
    new Printer(io, json).result(name, outcome);
    return outcome.exitCode ?? EXIT_CODES.OK;
  } finally {
    clearTimeout(timer);
    await node?.close();
  }
}

async function runPing(parsed: Parsed, { io }: CliContext): Promise<number> {
  if (parsed.positionals.length !== 1) throw new UsageError("expected one ADDRESS@HOST:PORT");
  const count = integerOf(parsed, "count");
  const timeout = integerOf(parsed, "timeout", 1);
  const difficulty = integerOf(parsed, "difficulty");
  const json = flagOf(parsed, "json");
  const identity = await identityFor(stringOf(parsed, "key"), difficulty, io, json);
  let node: Node | undefined;
  try {
    node = await createNode({
      identity,
      puzzleDifficulty: difficulty,
      dialTimeout: timeout,
      handshakeTimeout: timeout,
    });
    const peer = await node.connect(parsed.positionals[0]);
    for (let i = 0; i < count; i++) {
      const rtt = await node.ping(peer.address, { timeout });
      io.out(
        json
          ? JSON.stringify({ event: "pong", address: peer.address, rtt_ms: rtt })
          : `pong from ${peer.address}: rtt ${rtt.toFixed(3)} ms`,
      );
    }
  } finally {
    await node?.close();
  }
  return EXIT_CODES.OK;
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

/**
 * Runs the command line with `args`; resolves the exit code. `carrier run`
 * reads its commands from `input` (standard input unless given).
 *
 * @example
 * ```ts ignore
 * import {
  main,
} from "./cli.ts";
 * Deno.exit(await main(["demo"]));
 * ```
 */
export async function main(
  args: string[],
  io: CliOutput = consoleOutput,
  input?: ReadableStream<Uint8Array>,
): Promise<number> {
  let [name, ...rest] = args;
  if (name === undefined) {
    io.err(overview(COMMANDS));
    return EXIT_CODES.USAGE;
  }
  if (name === "--help" || name === "-h") {
    io.out(overview(COMMANDS));
    return EXIT_CODES.OK;
  }
  if (!Object.hasOwn(COMMANDS, name)) {
    io.err(`carrier: unknown command "${name}"\n\n${overview(COMMANDS)}`);
    return EXIT_CODES.USAGE;
  }
  const entry = COMMANDS[name];
  let command: Command;
  if (isCommandGroup(entry)) {
    const [sub, ...more] = rest;
    if (sub === "--help" || sub === "-h") {
      io.out(groupHelp(name, entry));
      return EXIT_CODES.OK;
    }
    if (sub === undefined || !Object.hasOwn(entry.subcommands, sub)) {
      const problem = sub === undefined ? "COMMAND is missing" : `unknown command "${name} ${sub}"`;
      io.err(`carrier ${name}: ${problem}\n\n${groupHelp(name, entry)}`);
      return EXIT_CODES.USAGE;
    }
    name = `${name} ${sub}`;
    command = entry.subcommands[sub];
    rest = more;
  } else command = entry;
  const context: CliContext = { io, input: () => input ?? Deno.stdin.readable };
  let parsed: Parsed | undefined;
  try {
    parsed = parseWith(command.options, rest);
    if (flagOf(parsed, "help")) {
      io.out(commandHelp(name, command));
      return EXIT_CODES.OK;
    }
    return await command.run(parsed, context);
  } catch (err) {
    const usage = err instanceof UsageError ? err.usage ?? usageLine(name, command) : undefined;
    if (command.jsonErrors && (parsed ? flagOf(parsed, "json") : rest.includes("--json"))) {
      new Printer(io, true).failure(name, err, usage);
    } else if (usage !== undefined) {
      io.err(
        `carrier ${name}: ${
          (err as Error).message
        }\n${usage}\nRun \`carrier help ${name}\` for its options.`,
      );
    } else {
      const prefix = err instanceof CarrierError ? `${err.name}: ` : "";
      io.err(`carrier ${name}: ${prefix}${(err as Error).message}`);
    }
    return exitCodeOf(err);
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
