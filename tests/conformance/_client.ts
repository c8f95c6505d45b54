/**
 * A raw client for the conformance test: the library's Noise channel (the
 * handshake is not under test here) over real TCP, then hand-built frames
 * with any id, opcode, flags and payload. Every frame the node sends back is
 * decoded and kept, in order, so a test can say what arrived and what did
 * not.
 *
 * @module
 */
import { until } from "../attack/_attack.ts";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type Ack,
  AckSchema,
  type Nack,
  NackReason,
  NackSchema,
  Opcode,
  PingSchema,
  WhisperAckSchema,
  WhisperSchema,
} from "../../lib/protocol.ts";
import {
  type Frame,
  generateIdentity,
  type Identity,
  type Node,
  type SecureChannel,
  TcpTransport,
} from "../../mod.ts";
import {
  createFrame,
  decompress,
  encodeFrame,
  FrameDecoder,
  isCompressed,
  MAX_PLAINTEXT,
  secureOutbound,
  whisperHash,
} from "../../protocol.ts";

/** The largest frame the client decodes, whatever it announced (to see a node's oversized reply). */
const DECODE_LIMIT = 64 * 1024 * 1024;

/** A frame received, with its payload decompressed and, for ACK and NACK, decoded. */
export interface Received {
  frame: Frame;
  /** The payload, decompressed. */
  payload: Uint8Array;
  ack?: Ack;
  nack?: Nack;
  /** Position among the frames received on this connection, from 0. */
  index: number;
}

/** A request's reply: the ACK or NACK frame that carries its id. */
export type Reply = Received & ({ ack: Ack; nack?: undefined } | { nack: Nack; ack?: undefined });

/** Options of {@linkcode RawClient.connect}. */
export interface RawClientOptions {
  /** The client's identity. @default {a new one (puzzle difficulty 0)} */
  identity?: Identity;
  /** The max_frame_size announced. @default {0 (the protocol default)} */
  maxFrameSize?: number;
  /** The compression settings announced. @default {all five} */
  compressions?: number[];
  /** The preferred compression announced. @default {none} */
  preferredCompression?: number;
  /**
   * How the client answers the node's requests: `"silent"` never answers
   * (the test does, by hand); `"ack"` answers each with ACK (PING echoed,
   * WHISPER acknowledged with its hash and hops 1, anything else without
   * data).
   * @default {"silent"}
   */
  answer?: "silent" | "ack";
}

/** One connection to a node, frames in and out by hand. */
export class RawClient {
  readonly identity: Identity;
  readonly channel: SecureChannel;
  /** Every frame received, in order. */
  readonly received: Received[] = [];
  /** Why the connection ended, once it has. */
  endedBy: string | undefined;
  readonly #transport: TcpTransport;
  readonly #decoder = new FrameDecoder({ maxFrameSize: DECODE_LIMIT });
  readonly #answer: "silent" | "ack";
  #waiters: { match: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];
  readonly #ended: Promise<void>;
  #syncId = 0xffff_0000;
  #nextId = 1;

  private constructor(
    identity: Identity,
    channel: SecureChannel,
    transport: TcpTransport,
    answer: "silent" | "ack",
  ) {
    this.identity = identity;
    this.channel = channel;
    this.#transport = transport;
    this.#answer = answer;
    this.#ended = this.#read();
  }

  /** Dials `node` over TCP and runs the handshake. */
  static async connect(node: Node, options: RawClientOptions = {}): Promise<RawClient> {
    const identity = options.identity ?? await generateIdentity({ difficulty: 0 });
    const transport = new TcpTransport();
    const stream = await transport.dial(node.listenAddrs[0]);
    const channel = await secureOutbound(stream, {
      identity,
      expectedRemote: node.identity.publicKey,
      maxFrameSize: options.maxFrameSize ?? 0,
      compressions: options.compressions ?? [0, 1, 2, 3, 4],
      preferredCompression: options.preferredCompression,
      agent: "carrier-conformance",
    });
    const client = new RawClient(identity, channel, transport, options.answer ?? "silent");
    // The node has the connection once it lists it (its handshake side may finish later).
    await until(() => node.peer(identity.address) !== undefined, "the node lists the client");
    return client;
  }

  /** A request id of the client's own: 1, 2, 3… (the barrier PINGs use ids from 0xffff0001). */
  newId(): number {
    return this.#nextId++;
  }

  /** The client's address (base58). */
  get address(): string {
    return this.identity.address;
  }

  /** Whether the connection is still open. */
  get open(): boolean {
    return this.endedBy === undefined;
  }

  /** Whether the connection ends within `ms` milliseconds. */
  async endsWithin(ms: number): Promise<boolean> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    try {
      return await Promise.race([this.#ended.then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves when the connection has ended. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const plaintext = await this.channel.read();
        if (plaintext === null) break;
        for (const frame of this.#decoder.push(plaintext)) this.#onFrame(frame);
      }
      this.endedBy ??= "the node closed the connection";
    } catch (err) {
      this.endedBy ??= `read failed: ${(err as Error).message}`;
    }
  }

  #onFrame(frame: Frame): void {
    const payload = isCompressed(frame)
      ? decompress(frame.compression, frame.payload, { maxOutputSize: DECODE_LIMIT })
      : frame.payload;
    const received: Received = { frame, payload, index: this.received.length };
    if (frame.opcode === Opcode.ACK) received.ack = fromBinary(AckSchema, payload);
    if (frame.opcode === Opcode.NACK) received.nack = fromBinary(NackSchema, payload);
    this.received.push(received);
    if (this.#answer === "ack" && frame.id !== 0 && !received.ack && !received.nack) {
      this.#answerRequest(frame, payload);
    }
    for (const waiter of [...this.#waiters]) {
      if (waiter.match(received)) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve(received);
      }
    }
  }

  #answerRequest(frame: Frame, payload: Uint8Array): void {
    let data = new Uint8Array(0);
    if (frame.opcode === Opcode.PING) {
      data = toBinary(PingSchema, fromBinary(PingSchema, payload));
    } else if (frame.opcode === Opcode.WHISPER) {
      const whisper = fromBinary(WhisperSchema, payload);
      data = toBinary(
        WhisperAckSchema,
        create(WhisperAckSchema, { hash: whisperHash(whisper), hops: 1 }),
      );
    }
    this.write(ackBytes(frame.id, frame.opcode, data)).catch(() => {});
  }

  /** Writes encoded frames (split into Noise messages of at most 65519 bytes). */
  async write(...frames: Uint8Array[]): Promise<void> {
    const size = frames.reduce((n, f) => n + f.length, 0);
    const all = new Uint8Array(size);
    let at = 0;
    for (const f of frames) {
      all.set(f, at);
      at += f.length;
    }
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < all.length; i += MAX_PLAINTEXT) {
      chunks.push(all.subarray(i, i + MAX_PLAINTEXT));
    }
    await this.channel.writeMany(chunks);
  }

  /** Sends one frame built from its fields (any values). */
  send(init: FrameFields): Promise<void> {
    this.#noteRequest(init);
    return this.write(frameBytes(init));
  }

  /** Ids of the frames with an id sent through `send` and `request` (ACK and NACK aside). */
  readonly sentIds = new Set<number>();

  #noteRequest(init: FrameFields): void {
    if (init.id && init.opcode !== Opcode.ACK && init.opcode !== Opcode.NACK) {
      this.sentIds.add(init.id);
    }
  }

  /**
   * What is wrong with the replies received so far: an ACK or NACK with id
   * 0, or with an id the client never sent, or several with one id.
   */
  replyProblems(): string[] {
    const problems: string[] = [];
    const counts = new Map<number, Received[]>();
    for (const r of this.received) {
      if (!r.ack && !r.nack) continue;
      if (r.frame.id === 0) problems.push(`a reply with id 0: ${describe(r)}`);
      else if (!this.sentIds.has(r.frame.id)) {
        problems.push(`a reply to id ${r.frame.id}, which the client never sent: ${describe(r)}`);
      }
      counts.set(r.frame.id, [...(counts.get(r.frame.id) ?? []), r]);
    }
    for (const [id, replies] of counts) {
      if (id !== 0 && replies.length > 1) {
        problems.push(`${replies.length} replies to id ${id}: ${replies.map(describe).join(", ")}`);
      }
    }
    return problems;
  }

  /**
   * The first frame received (since `after`, an index) that `match` accepts,
   * waiting up to `timeout` ms; `undefined` when none came in time or the
   * connection ended first.
   */
  async next(
    match: (r: Received) => boolean,
    options: { timeout?: number; after?: number } = {},
  ): Promise<Received | undefined> {
    const after = options.after ?? 0;
    const found = this.received.find((r) => r.index >= after && match(r));
    if (found) return found;
    if (!this.open) return undefined;
    const { promise, resolve } = Promise.withResolvers<Received | undefined>();
    const waiter = { match: (r: Received) => r.index >= after && match(r), resolve };
    this.#waiters.push(waiter);
    const timer = setTimeout(() => resolve(undefined), options.timeout ?? 5_000);
    void this.#ended.then(() => resolve(undefined));
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
      const i = this.#waiters.indexOf(waiter);
      if (i >= 0) this.#waiters.splice(i, 1);
    }
  }

  /** The replies (ACK or NACK frames) received with `id`. */
  repliesTo(id: number): Reply[] {
    return this.received.filter((r) => r.frame.id === id && (r.ack || r.nack)) as Reply[];
  }

  /**
   * Sends a request (the frame as given; `id` must be nonzero for a reply)
   * and resolves its first ACK or NACK, or `undefined` after `timeout` ms.
   */
  async request(init: FrameFields, timeout = 5_000): Promise<Reply | undefined> {
    const after = this.received.length;
    await this.send(init);
    return await this.next(
      (r) => r.frame.id === init.id && (r.ack !== undefined || r.nack !== undefined),
      { timeout, after },
    ) as Reply | undefined;
  }

  /**
   * Sends several requests in one write; resolves each one's first reply
   * (or `undefined` when none came within `timeout` ms of the write).
   */
  async requestMany(inits: FrameFields[], timeout = 5_000): Promise<(Reply | undefined)[]> {
    const after = this.received.length;
    for (const init of inits) this.#noteRequest(init);
    await this.write(...inits.map(frameBytes));
    return await Promise.all(inits.map((init) =>
      this.next(
        (r) => r.frame.id === init.id && (r.ack !== undefined || r.nack !== undefined),
        { timeout, after },
      ) as Promise<Reply | undefined>
    ));
  }

  /**
   * A barrier: a PING with an id of the client's own that nothing else
   * uses, and its ACK. The node answers PING in the order frames arrive, and
   * its writes keep their order, so a reply the node made to anything sent
   * before (synchronously handled) has arrived once this resolves.
   *
   * @throws {Error} when the PING gets no ACK within 5 s.
   */
  async sync(): Promise<Received> {
    const id = ++this.#syncId;
    const ping = toBinary(PingSchema, create(PingSchema, { data: new Uint8Array([1, 2, 3]) }));
    const reply = await this.request({ id, opcode: Opcode.PING, payload: ping });
    if (!reply?.ack) {
      throw new Error(
        `sync PING ${id} got ${reply ? describe(reply) : "no reply"} (${this.endedBy ?? "open"})`,
      );
    }
    return reply;
  }

  /** Closes the connection and waits until it has ended. */
  async close(): Promise<void> {
    this.endedBy ??= "closed by the test";
    this.channel.close();
    await this.#ended;
    this.#transport.close();
  }
}

/** A frame's fields, for {@linkcode frameBytes}. */
export interface FrameFields {
  id?: number;
  opcode: number;
  payload?: Uint8Array;
  flags?: number;
  compression?: number;
}

/** Encodes a frame from its fields, unchecked (any uint32 values). */
export function frameBytes(init: FrameFields): Uint8Array {
  const frame = createFrame({ id: init.id ?? 0, opcode: init.opcode, payload: init.payload });
  frame.flags = init.flags ?? 0;
  frame.compression = init.compression ?? 0;
  return encodeFrame(frame, { maxFrameSize: DECODE_LIMIT });
}

/** An encoded ACK frame answering request `id` of `opcode` with `data`. */
export function ackBytes(
  id: number,
  opcode: number,
  data: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return frameBytes({
    id,
    opcode: Opcode.ACK,
    payload: toBinary(AckSchema, create(AckSchema, { opcode, data })),
  });
}

/** An encoded NACK frame answering request `id` of `opcode`. */
export function nackBytes(id: number, opcode: number, reason: NackReason): Uint8Array {
  return frameBytes({
    id,
    opcode: Opcode.NACK,
    payload: toBinary(NackSchema, create(NackSchema, { opcode, reason, message: "test" })),
  });
}

/** A reply in words: `ACK PING (3 bytes of data)`, `NACK STORE MALFORMED "…"`. */
export function describe(r: Received): string {
  const name = (op: number) => Opcode[op] ?? `opcode ${op}`;
  if (r.ack) return `ACK ${name(r.ack.opcode)} (${r.ack.data.length} bytes of data)`;
  if (r.nack) {
    return `NACK ${name(r.nack.opcode)} ${NackReason[r.nack.reason] ?? r.nack.reason}` +
      (r.nack.message ? ` "${r.nack.message.slice(0, 160)}"` : "");
  }
  return `${name(r.frame.opcode)} id ${r.frame.id}`;
}
