// Test helper: two PeerConnections joined over a real transport.
import { generateIdentity, type Identity } from "../../lib/identity/keys.ts";
import { PeerConnection, type PeerConnectionOptions } from "../../lib/peer/connection.ts";
import {
  type SecureChannel,
  type SecureChannelOptions,
  secureInbound,
  secureOutbound,
} from "../../lib/secure/channel.ts";
import { MemoryNetwork } from "../../lib/transport/memory.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import type { ByteStream, Transport } from "../../lib/transport/types.ts";

export type TransportKind = "tcp" | "memory";
export const TRANSPORTS: TransportKind[] = ["tcp", "memory"];

let identities: Promise<[Identity, Identity]> | undefined;
/** Two identities, made once per test file. */
export function twoIdentities(): Promise<[Identity, Identity]> {
  identities ??= Promise.all([
    generateIdentity({ difficulty: 0 }),
    generateIdentity({ difficulty: 0 }),
  ]);
  return identities;
}

/** A ByteStream wrapper counting write calls (to see coalescing). */
export class CountingStream implements ByteStream {
  writes = 0;
  constructor(readonly inner: ByteStream) {}
  get localAddress(): string {
    return this.inner.localAddress;
  }
  get remoteAddress(): string {
    return this.inner.remoteAddress;
  }
  read(buffer: Uint8Array): Promise<number | null> {
    return this.inner.read(buffer);
  }
  write(data: Uint8Array): Promise<void> {
    this.writes++;
    return this.inner.write(data);
  }
  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }
  close(): void {
    this.inner.close();
  }
}

export interface Channels {
  a: SecureChannel;
  b: SecureChannel;
  aStream: CountingStream;
  close(): Promise<void>;
}

/** Dials B from A over `kind` and runs the Noise handshake. */
export async function channels(
  kind: TransportKind,
  options: { a?: Partial<SecureChannelOptions>; b?: Partial<SecureChannelOptions> } = {},
): Promise<Channels> {
  const [idA, idB] = await twoIdentities();
  let transport: Transport & { close(): void };
  let network: MemoryNetwork | undefined;
  let address: string;
  if (kind === "tcp") {
    transport = new TcpTransport();
    address = "127.0.0.1:0";
  } else {
    network = new MemoryNetwork();
    transport = network.transport();
    address = "mem:0";
  }
  const listener = await transport.listen(address);
  const accepted = (async () => {
    for await (const stream of listener) return stream;
    throw new Error("listener closed");
  })();
  const aStream = new CountingStream(await transport.dial(listener.address));
  const bStream = await accepted;
  listener.close();
  const [a, b] = await Promise.all([
    secureOutbound(aStream, { identity: idA, ...options.a }),
    secureInbound(bStream, { identity: idB, ...options.b }),
  ]);
  return {
    a,
    b,
    aStream,
    async close() {
      a.close();
      b.close();
      transport.close();
      network?.close();
      await Promise.resolve();
    },
  };
}

export interface Peers extends Channels {
  pa: PeerConnection;
  pb: PeerConnection;
}

/** Two PeerConnections over `kind`. */
export async function peers(
  kind: TransportKind,
  options: {
    a?: Partial<PeerConnectionOptions>;
    b?: Partial<PeerConnectionOptions>;
    channelA?: Partial<SecureChannelOptions>;
    channelB?: Partial<SecureChannelOptions>;
  } = {},
): Promise<Peers> {
  const ch = await channels(kind, { a: options.channelA, b: options.channelB });
  const pa = new PeerConnection(ch.a, { ...options.a });
  const pb = new PeerConnection(ch.b, { ...options.b });
  return {
    ...ch,
    pa,
    pb,
    async close() {
      await Promise.all([pa.close(), pb.close()]);
      await ch.close();
    },
  };
}
