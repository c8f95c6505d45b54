/**
 * The js-libp2p side of `bench/peers.ts`: a node on TCP + Noise + Yamux with
 * the ping service, and the bench's two protocols (a byte sink and a
 * length-prefixed echo). `bench/_gossipsub.ts` builds on the same transport
 * options ({@linkcode libp2pBaseOptions}). The packages are pinned in
 * `bench/deno.json`, the benchmarks' own config and import map, so that they
 * stay out of the library's (the root `deno.json` and `deno.lock`);
 * {@linkcode LIBP2P_PACKAGES} reads their versions from there.
 *
 * @module
 */
import { noise } from "@chainsafe/libp2p-noise";
import { yamux } from "@chainsafe/libp2p-yamux";
import { type Ping, ping, PING_PROTOCOL } from "@libp2p/ping";
import { tcp } from "@libp2p/tcp";
import { lpStream } from "@libp2p/utils";
import { type Multiaddr, multiaddr } from "@multiformats/multiaddr";
import { createLibp2p, type Libp2p, type Libp2pOptions } from "libp2p";
import config from "./deno.json" with { type: "json" };

/**
 * The versions `bench/deno.json` pins for `names`: each maps to an exact
 * `npm:name@version` specifier there.
 */
export function pinnedVersions(names: readonly string[]): Readonly<Record<string, string>> {
  const imports: Readonly<Record<string, string>> = config.imports;
  return Object.fromEntries(names.map((name) => {
    const version = imports[name]?.match(/^npm:(?:@[^/@]+\/)?[^/@]+@(\d+\.\d+\.\d+)$/)?.[1];
    if (version === undefined) {
      throw new Error(`bench/deno.json maps ${name} to no exact npm version: ${imports[name]}`);
    }
    return [name, version];
  }));
}

/** The js-libp2p packages this bench runs, and their versions (from `bench/deno.json`). */
export const LIBP2P_PACKAGES: Readonly<Record<string, string>> = pinnedVersions([
  "libp2p",
  "@libp2p/tcp",
  "@chainsafe/libp2p-noise",
  "@chainsafe/libp2p-yamux",
  "@libp2p/ping",
  "@libp2p/utils",
  "@multiformats/multiaddr",
]);

/** One-way protocol: the listener counts the bytes it receives. */
export const SINK_PROTOCOL = "/carrier-bench/sink/1.0.0";
/** Request/reply protocol: the listener echoes each length-prefixed message. */
export const ECHO_PROTOCOL = "/carrier-bench/echo/1.0.0";

/** A node made by {@linkcode createLibp2pNode}. */
export type Libp2pNode = Libp2p<{ ping: Ping }>;

/** The options of a bench node other than its services. */
export type Libp2pBaseOptions = Pick<
  Libp2pOptions,
  "addresses" | "transports" | "connectionEncrypters" | "streamMuxers" | "connectionManager"
>;

/**
 * TCP on 127.0.0.1 (port 0 when `listen`), Noise, Yamux, and the connection
 * manager's limits raised for a bench; shared by every bench node.
 */
export function libp2pBaseOptions(listen: boolean): Libp2pBaseOptions {
  return {
    addresses: { listen: listen ? ["/ip4/127.0.0.1/tcp/0"] : [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // The defaults (300 connections; 5 inbound connections per second per
      // host; 10 pending) would refuse a bench that dials 127.0.0.1 over and
      // over. Raised like carrier's `maxInbound` / `maxPendingHandshakes`.
      maxConnections: 2_000,
      inboundConnectionThreshold: 1_000_000,
      maxIncomingPendingConnections: 64,
    },
  };
}

/** Creates a started js-libp2p node: TCP, Noise, Yamux and `@libp2p/ping`, defaults otherwise. */
export async function createLibp2pNode(listen: boolean): Promise<Libp2pNode> {
  return await createLibp2p({ ...libp2pBaseOptions(listen), services: { ping: ping() } });
}

/** Parses a multiaddr string (`/ip4/127.0.0.1/tcp/PORT/p2p/PEER_ID`). */
export function parseMultiaddr(text: string): Multiaddr {
  return multiaddr(text);
}

/**
 * Serves the bench protocols on `node`: the sink adds every received byte
 * count to `onBytes`, the echo writes back each length-prefixed message.
 */
export async function serveBenchProtocols(
  node: Libp2pNode,
  onBytes: (n: number) => void,
): Promise<void> {
  await node.handle(SINK_PROTOCOL, (stream) => {
    stream.addEventListener("message", (event) => onBytes(event.data.byteLength));
  });
  await node.handle(ECHO_PROTOCOL, async (stream) => {
    const lp = lpStream(stream);
    try {
      for (;;) await lp.write(await lp.read());
    } catch {
      // The dialer closed the stream.
    }
  });
}

/** Why a ping may fail when the previous one's streams are still closing. */
const PING_RACES = new Set(["TooManyOutboundProtocolStreamsError", "StreamStateError"]);

/**
 * One `@libp2p/ping` to `listener`, one ping stream at a time as the ping
 * spec asks: `ping()` resolves before its stream has closed on both sides
 * (and the listener accepts 2 inbound ping streams, the dialer opens 1), so
 * a back-to-back ping can be refused or reset. This waits for both ends of
 * the ping streams to close, and retries a ping that lost that race anyway
 * (the connection monitor pings too). Resolves the ping's ms.
 */
export async function pingInTurn(dialer: Libp2pNode, listener: Libp2pNode): Promise<number> {
  for (let attempt = 1;; attempt++) {
    try {
      const rtt = await dialer.services.ping.ping(listener.peerId);
      await pingStreamsClosed(dialer, listener);
      return rtt;
    } catch (err) {
      if (!PING_RACES.has((err as Error).name) || attempt === 10) throw err;
      await pingStreamsClosed(dialer, listener);
    }
  }
}

async function pingStreamsClosed(dialer: Libp2pNode, listener: Libp2pNode): Promise<void> {
  const connections = [
    ...dialer.getConnections(listener.peerId),
    ...listener.getConnections(dialer.peerId),
  ];
  for (const connection of connections) {
    for (const stream of connection.streams) {
      if (stream.protocol !== PING_PROTOCOL) continue;
      if (stream.status !== "open" && stream.status !== "closing") continue;
      await new Promise((resolve) => stream.addEventListener("close", resolve, { once: true }));
    }
  }
}

/** A byte sink stream: `write` waits for drain when the stream asks to. */
export interface SinkWriter {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** Opens a stream of {@linkcode SINK_PROTOCOL} to `listener`. */
export async function openSink(dialer: Libp2pNode, listener: Libp2pNode): Promise<SinkWriter> {
  const stream = await dialer.dialProtocol(listener.peerId, SINK_PROTOCOL);
  return {
    async write(bytes) {
      if (!stream.send(bytes)) await stream.onDrain();
    },
    close: () => stream.close(),
  };
}

/** One request/reply exchange on a long-lived echo stream. */
export interface EchoClient {
  /** Writes `message` length-prefixed and resolves the reply's length. */
  roundTrip(message: Uint8Array): Promise<number>;
  close(): Promise<void>;
}

/** Opens a stream of {@linkcode ECHO_PROTOCOL} to `listener`. */
export async function openEcho(dialer: Libp2pNode, listener: Libp2pNode): Promise<EchoClient> {
  const stream = await dialer.dialProtocol(listener.peerId, ECHO_PROTOCOL);
  const lp = lpStream(stream);
  return {
    async roundTrip(message) {
      await lp.write(message);
      return (await lp.read()).byteLength;
    },
    close: () => stream.close(),
  };
}
