/**
 * A scriptable NAT-PMP / PCP gateway on 127.0.0.1 (a random port) for the
 * clients' tests: it records every request with the clock's time, drops the
 * first `drop` of them, answers result codes, grants what `grant` says,
 * restarts its epoch, and answers PCP with NAT-PMP's UNSUPP_VERSION when
 * `pcp` is false.
 *
 * @module
 */

import dgram from "node:dgram";
import { type Clock, ManualClock } from "../../lib/clock.ts";

/** A request as the fake received it. */
export interface Received {
  /** The datagram. */
  bytes: Uint8Array;
  /** The clock's time when it arrived. */
  at: number;
  /** The client's port. */
  from: number;
}

/** What a mapping request asked for, either protocol. */
export interface Ask {
  transport: "tcp" | "udp";
  internalPort: number;
  externalPort: number;
  lifetime: number;
}

/** A datagram the fake sends instead of (or before) its answer. */
export interface Send {
  bytes: Uint8Array;
  /** Send it from another socket (another source port). */
  fromElsewhere?: boolean;
}

/** The scriptable gateway. */
export class FakePmpServer {
  readonly address = "127.0.0.1";
  /** Every request received, dropped ones too. */
  readonly requests: Received[] = [];
  /** Drop this many of the next requests. */
  drop = 0;
  /** The result code of NAT-PMP answers. */
  natPmpResult = 0;
  /** The result code of PCP answers. */
  pcpResult = 0;
  /** Whether it speaks PCP (else: NAT-PMP's UNSUPP_VERSION). */
  pcp = true;
  /** The external address it reports. */
  externalAddress = "80.100.100.1";
  /** What it grants. */
  grant: (ask: Ask) => { externalPort: number; lifetime: number } = (ask) => ({
    externalPort: ask.lifetime === 0 ? 0 : ask.externalPort || ask.internalPort,
    lifetime: ask.lifetime,
  });
  /** Sent before the answer (decoys); an empty list sends just the answer. */
  before: (request: Uint8Array) => Send[] = () => [];
  /** Holds answers until `release()` when true. */
  hold = false;
  /** Events in order: "request <n>", "answer <n>". */
  readonly log: string[] = [];

  #socket: dgram.Socket;
  #other: dgram.Socket;
  #clock: Clock;
  #epochOrigin: number;
  #epochOffset: number;
  #held: (() => void)[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  private constructor(socket: dgram.Socket, other: dgram.Socket, clock: Clock) {
    this.#socket = socket;
    this.#other = other;
    this.#clock = clock;
    this.#epochOrigin = clock.now();
    this.#epochOffset = 1000; // a router that has been up a while
    socket.on("message", (data: Uint8Array, rinfo: dgram.RemoteInfo) => {
      this.#receive(new Uint8Array(data), rinfo.port);
    });
  }

  /** Starts a fake on 127.0.0.1, port 0. */
  static async start(clock: Clock): Promise<FakePmpServer> {
    const bind = (socket: dgram.Socket) =>
      new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
    const socket = dgram.createSocket("udp4");
    const other = dgram.createSocket("udp4");
    await Promise.all([bind(socket), bind(other)]);
    return new FakePmpServer(socket, other, clock);
  }

  /** The fake's port. */
  get port(): number {
    return this.#socket.address().port;
  }

  /** Seconds since start of epoch, on the shared clock. */
  get epoch(): number {
    return this.#epochOffset + Math.floor((this.#clock.now() - this.#epochOrigin) / 1000);
  }

  /** A restart: the epoch starts again from 0, all state lost. */
  restart(): void {
    this.#epochOrigin = this.#clock.now();
    this.#epochOffset = 0;
  }

  /** Resolves when `n` requests have arrived. */
  received(n: number): Promise<void> {
    if (this.requests.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ n, resolve }));
  }

  /** Sends the held answers. */
  release(): void {
    this.hold = false;
    for (const send of this.#held.splice(0)) send();
  }

  /** Sends `bytes` to 127.0.0.1:`port` from the fake's socket (an announcement). */
  sendTo(bytes: Uint8Array, port: number): Promise<void> {
    return new Promise((resolve) => this.#socket.send(bytes, port, "127.0.0.1", () => resolve()));
  }

  /** Closes both sockets. */
  close(): Promise<void> {
    return Promise.all(
      [this.#socket, this.#other].map((socket) =>
        new Promise<void>((resolve) => socket.close(() => resolve()))
      ),
    ).then(() => {});
  }

  #receive(bytes: Uint8Array, from: number): void {
    const n = this.requests.push({ bytes, at: this.#clock.now(), from });
    this.log.push(`request ${n}`);
    for (const waiter of this.#waiters.filter((w) => this.requests.length >= w.n)) {
      this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    if (this.drop > 0) {
      this.drop--;
      return;
    }
    const decoys = this.before(bytes); // first: it may change the script
    const answer = bytes[0] === 2 ? this.#answerPcp(bytes) : this.#answerNatPmp(bytes);
    const send = () => {
      for (const decoy of decoys) {
        (decoy.fromElsewhere ? this.#other : this.#socket).send(decoy.bytes, from, "127.0.0.1");
      }
      if (answer) {
        this.log.push(`answer ${n}`);
        this.#socket.send(answer, from, "127.0.0.1");
      }
    };
    if (this.hold) this.#held.push(send);
    else send();
  }

  #answerNatPmp(request: Uint8Array): Uint8Array | undefined {
    if (request[0] !== 0) {
      // UNSUPP_VERSION, in RFC 6886 §3.5's 8-byte form
      return natPmpHeader(request[1], 1, this.epoch);
    }
    const opcode = request[1];
    if (opcode === 0) {
      const out = new Uint8Array(12);
      out.set(natPmpHeader(0, this.natPmpResult, this.epoch));
      out.set(this.externalAddress.split(".").map(Number), 8);
      return out;
    }
    if (opcode !== 1 && opcode !== 2) return natPmpHeader(opcode, 5, this.epoch);
    const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
    const ask: Ask = {
      transport: opcode === 1 ? "udp" : "tcp",
      internalPort: view.getUint16(4),
      externalPort: view.getUint16(6),
      lifetime: view.getUint32(8),
    };
    const granted = this.grant(ask);
    const out = new Uint8Array(16);
    const o = new DataView(out.buffer);
    out.set(natPmpHeader(opcode, this.natPmpResult, this.epoch));
    o.setUint16(8, ask.internalPort);
    o.setUint16(10, granted.externalPort);
    o.setUint32(12, granted.lifetime);
    return out;
  }

  #answerPcp(request: Uint8Array): Uint8Array | undefined {
    if (!this.pcp) return natPmpHeader(request[1], 1, this.epoch);
    const view = new DataView(request.buffer, request.byteOffset, request.byteLength);
    const ask: Ask = {
      transport: request[36] === 17 ? "udp" : "tcp",
      internalPort: view.getUint16(40),
      externalPort: view.getUint16(42),
      lifetime: view.getUint32(4),
    };
    const result = this.pcpResult;
    const granted = this.grant(ask);
    const out = new Uint8Array(60);
    const o = new DataView(out.buffer);
    o.setUint8(0, 2);
    o.setUint8(1, 0x80 | request[1]);
    o.setUint8(3, result);
    o.setUint32(4, granted.lifetime);
    o.setUint32(8, this.epoch);
    out.set(request.subarray(24, 44), 24); // nonce, protocol, internal port, …
    o.setUint16(42, granted.externalPort);
    out[54] = 0xff;
    out[55] = 0xff;
    out.set(this.externalAddress.split(".").map(Number), 56);
    return out;
  }
}

/** NAT-PMP's 8-byte answer header. */
export function natPmpHeader(opcode: number, result: number, epoch: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint8(0, 0);
  view.setUint8(1, 128 + opcode);
  view.setUint16(2, result);
  view.setUint32(4, epoch);
  return out;
}

/** A NAT-PMP external-address answer (or announcement). */
export function natPmpAddress(address: string, epoch: number): Uint8Array {
  const out = new Uint8Array(12);
  out.set(natPmpHeader(0, 0, epoch));
  out.set(address.split(".").map(Number), 8);
  return out;
}

/** A PCP ANNOUNCE answer (RFC 6887 §14.1.3). */
export function pcpAnnounce(epoch: number): Uint8Array {
  const out = new Uint8Array(24);
  const view = new DataView(out.buffer);
  view.setUint8(0, 2);
  view.setUint8(1, 0x80);
  view.setUint32(8, epoch);
  return out;
}

/** A free UDP port on 127.0.0.1 (bound, then released). */
export async function freeUdpPort(): Promise<number> {
  const socket = dgram.createSocket("udp4");
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", () => resolve()));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** The big-endian reader of a request. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** What a client under test is built from: the fake's address and a manual clock. */
export interface ClientBase {
  gateway: string;
  port: number;
  clock: ManualClock;
  announcements: false;
}

/** A fake gateway, a client of it, and their clock; disposing closes both. */
export interface ClientSetup<C> extends AsyncDisposable {
  clock: ManualClock;
  fake: FakePmpServer;
  client: C;
}

/** Starts a fake gateway and builds a client of it with `create`. */
export async function clientOfFake<C extends { close(): void }>(
  create: (base: ClientBase) => C,
): Promise<ClientSetup<C>> {
  const clock = new ManualClock(10_000);
  const fake = await FakePmpServer.start(clock);
  const client = create({ gateway: fake.address, port: fake.port, clock, announcements: false });
  return {
    clock,
    fake,
    client,
    async [Symbol.asyncDispose]() {
      client.close();
      await fake.close();
    },
  };
}
