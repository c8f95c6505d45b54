/**
 * The live side of the fuzz campaign: the node under test in a child process
 * ({@linkcode LiveNode}, running `_node.ts`), fuzz connections that speak
 * frames over the library's own secure channel ({@linkcode FrameSession}),
 * raw byte streams for the handshake and transport targets
 * ({@linkcode RawReader}, {@linkcode rawInitiator}), the legit peer that
 * makes a fresh connection and a PING every second ({@linkcode LegitPinger}),
 * and the node's RSS from `/proc/<pid>/status`.
 *
 * @module
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AckSchema, NackReason, NackSchema, Opcode } from "../../lib/protocol.ts";
import { HandshakePayloadSchema } from "../../lib/protocol.ts";
import { PingSchema } from "../../lib/protocol.ts";
import {
  createNode,
  type Frame,
  type Identity,
  type Node,
  type SecureChannel,
  sign,
  type Transport,
} from "../../mod.ts";
import {
  createFrame,
  decompress,
  encodeFrame,
  FrameDecoder,
  generateX25519KeyPair,
  IDENTITY_SIGNATURE_CONTEXT,
  isCompressed,
  MAX_PLAINTEXT,
  PROLOGUE,
  secureOutbound,
  type X25519KeyPair,
} from "../../protocol.ts";
import type { ByteStream } from "../../lib/transport/types.ts";
import { type CipherState, createHandshake } from "../../lib/secure/noise.ts";

const encoder = new TextEncoder();

/** A crash seen in the node process: an unhandled rejection, an uncaught exception, or its death. */
export interface CrashEvent {
  /** `unhandledrejection`, `uncaught`, `exit` (the process died) or `unexpected-error`. */
  kind: string;
  /** The error message (or the exit status and the end of stderr). */
  message: string;
  /** The stack trace, where there is one. */
  stack: string;
}

/** What the node process reports when asked (`stats`). */
export interface NodeStats {
  /** Node `error` events by kind (source without addresses, error name). */
  errors: Record<string, number>;
  /** `error` events whose error was not a CarrierError. */
  unexpected: number;
  /** Unhandled rejections and uncaught exceptions so far. */
  crashes: number;
  /** Open connections. */
  peers: number;
  /** DHT records held. */
  dhtRecords: number;
}

/** Resolves after `ms` milliseconds, early (and without a timer left) if `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** `promise`, or `fallback` once `ms` have passed (the timer is always cleared). */
export async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The RSS of process `pid` in bytes (VmRSS), or 0 when it cannot be read. */
export function rssOf(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * The node under test: `_node.ts` in a child process started with
 * `Deno.execPath()`. Crashes it reports (and its death) are collected in
 * {@linkcode LiveNode.crashes}; {@linkcode LiveNode.close} ends it.
 */
export class LiveNode {
  /** The node's address (base58). */
  address = "";
  /** The node's 32-byte public key. */
  publicKey: Uint8Array = new Uint8Array(32);
  /** Its TCP listen address, `127.0.0.1:PORT`. */
  tcp = "";
  /** The child's pid. */
  pid = 0;
  /** Crashes seen, in order. */
  readonly crashes: CrashEvent[] = [];
  /** First reports of each kind of node `error` event (with a stack). */
  readonly errorReports: { key: string; unexpected: boolean; message: string; stack: string }[] =
    [];
  /** Called for every crash as it is seen. */
  onCrash: ((crash: CrashEvent) => void) | undefined;
  /** Whether the process has exited. */
  exited = false;
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #replies = new Map<number, (value: Record<string, unknown>) => void>();
  #nextId = 1;
  #stderrTail = "";
  #readers: Promise<unknown>[] = [];
  #ready: Promise<void>;
  #closing = false;
  #status: Promise<Deno.CommandStatus>;
  #reportedRss = 0;

  private constructor(seed: number) {
    const script = new URL("./_node.ts", import.meta.url).pathname;
    const config = new URL("../../deno.json", import.meta.url).pathname;
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        // e.g. FUZZ_NODE_FLAGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the node
        ...(Deno.env.get("FUZZ_NODE_FLAGS")?.split(" ").filter((f) => f !== "") ?? []),
        "--config",
        config,
        "--allow-net",
        "--allow-env",
        "--allow-read",
        script,
        "--seed",
        String(seed),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#stdin = this.#child.stdin.getWriter();
    const { promise: ready, resolve, reject } = Promise.withResolvers<void>();
    this.#ready = ready;
    this.#readers.push(this.#readStdout(resolve), this.#readStderr());
    this.#status = this.#child.status.then((status) => {
      this.exited = true;
      if (!this.#closing) {
        const crash = {
          kind: "exit",
          message: `node process exited (code ${status.code}, signal ${status.signal})`,
          stack: this.#stderrTail.slice(-4000),
        };
        this.crashes.push(crash);
        this.onCrash?.(crash);
      }
      reject(new Error(`node process exited before it was ready: ${this.#stderrTail}`));
      for (const reply of this.#replies.values()) reply({ ok: false, error: "exited" });
      this.#replies.clear();
      return status;
    });
    ready.catch(() => {});
  }

  /** Starts the node process and waits until it listens. */
  static async start(seed: number): Promise<LiveNode> {
    const node = new LiveNode(seed);
    try {
      await within(node.#ready, 60_000, undefined).then(() => {
        if (!node.tcp) throw new Error("node process did not get ready in 60 s");
      });
    } catch (err) {
      await node.close();
      throw err;
    }
    return node;
  }

  async #readStdout(ready: () => void): Promise<void> {
    let buffered = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.#child.stdout) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(line);
        } catch {
          continue;
        }
        this.#onMessage(message, ready);
      }
    }
  }

  #onMessage(message: Record<string, unknown>, ready: () => void): void {
    switch (message.type) {
      case "ready":
        this.address = message.address as string;
        this.publicKey = Uint8Array.from(message.publicKey as number[]);
        this.tcp = (message.listen as string[])[0];
        this.pid = message.pid as number;
        this.#reportedRss = message.rss as number;
        ready();
        return;
      case "rss":
        this.#reportedRss = message.rss as number;
        return;
      case "crash": {
        const crash = {
          kind: message.kind as string,
          message: message.message as string,
          stack: message.stack as string,
        };
        this.crashes.push(crash);
        this.onCrash?.(crash);
        return;
      }
      case "error": {
        const report = {
          key: message.key as string,
          unexpected: message.unexpected as boolean,
          message: message.message as string,
          stack: message.stack as string,
        };
        this.errorReports.push(report);
        if (report.unexpected) {
          const crash = { kind: "unexpected-error", message: report.key, stack: report.stack };
          this.crashes.push(crash);
          this.onCrash?.(crash);
        }
        return;
      }
      default: {
        const id = message.id as number;
        const reply = this.#replies.get(id);
        if (reply) {
          this.#replies.delete(id);
          reply(message);
        }
      }
    }
  }

  async #readStderr(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.#child.stderr) {
      this.#stderrTail = (this.#stderrTail + decoder.decode(chunk, { stream: true })).slice(
        -16_000,
      );
    }
  }

  /**
   * The node process's resident set size, in bytes: VmRSS from
   * `/proc/<pid>/status`, or else (when this process may not read it) what
   * the node last reported of itself.
   */
  rss(): number {
    if (this.exited) return 0;
    const vm = rssOf(this.pid);
    if (vm > 0) this.rssSource = "VmRSS from /proc/<pid>/status";
    return vm || this.#reportedRss;
  }

  /** Where {@linkcode LiveNode.rss} comes from. */
  rssSource = "Deno.memoryUsage().rss reported by the node (this process may not read /proc)";

  /** The peer address others dial: `ADDRESS@127.0.0.1:PORT`. */
  get peerAddress(): string {
    return `${this.address}@${this.tcp}`;
  }

  #command(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.exited) return Promise.resolve({ ok: false, error: "exited" });
    const id = this.#nextId++;
    const reply = new Promise<Record<string, unknown>>((resolve) => this.#replies.set(id, resolve));
    this.#stdin.write(encoder.encode(JSON.stringify({ ...command, id }) + "\n")).catch(() => {});
    return reply;
  }

  /** Makes the node dial `peerAddress` (and close the connection again if it succeeds). */
  async dial(peerAddress: string): Promise<{ ok: boolean; error?: string }> {
    const reply = await this.#command({ cmd: "dial", addr: peerAddress });
    return { ok: reply.ok === true, error: reply.error as string | undefined };
  }

  /** The node's counters (`undefined` if it does not answer within 10 s). */
  async stats(): Promise<NodeStats | undefined> {
    const reply = await within(this.#command({ cmd: "stats" }), 10_000, undefined);
    if (reply === undefined || reply.type !== "stats") return undefined;
    return reply as unknown as NodeStats;
  }

  /** Asks the node to close, kills it if it does not within 5 s, and waits for the process. */
  async close(): Promise<void> {
    this.#closing = true;
    if (!this.exited) {
      await this.#stdin.write(encoder.encode(JSON.stringify({ cmd: "quit" }) + "\n")).catch(
        () => {},
      );
    }
    const exited = await within(this.#status, 5_000, undefined);
    if (exited === undefined) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Gone already.
      }
      await this.#status;
    }
    await this.#stdin.close().catch(() => {});
    await Promise.allSettled(this.#readers);
  }
}

/** A fuzz identity: an Ed25519 identity with its Noise static key and identity signature. */
export interface FuzzIdentity {
  /** The Ed25519 identity. */
  identity: Identity;
  /** A long-lived X25519 static key for its handshakes. */
  staticKeyPair: X25519KeyPair;
  /** Its identity signature over the static key. */
  signature: Uint8Array;
}

/** Wraps an identity with a static key (fresh unless given) and the signature binding them. */
export function fuzzIdentity(
  identity: Identity,
  staticKeyPair: X25519KeyPair = generateX25519KeyPair(),
): FuzzIdentity {
  const context = encoder.encode(IDENTITY_SIGNATURE_CONTEXT);
  const message = new Uint8Array(context.length + 32);
  message.set(context);
  message.set(staticKeyPair.publicKey, context.length);
  return { identity, staticKeyPair, signature: sign(identity, message) };
}

/** A buffered reader of a raw byte stream, for the handshake and transport targets. */
export class RawReader {
  #stream: ByteStream;
  #buffer = new Uint8Array(70_000);
  #start = 0;
  #end = 0;
  #eof = false;

  /** Reads from `stream`. */
  constructor(stream: ByteStream) {
    this.#stream = stream;
  }

  async #fill(): Promise<boolean> {
    if (this.#eof) return false;
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buffer.length) {
      const grown = new Uint8Array(this.#buffer.length * 2);
      grown.set(this.#buffer);
      this.#buffer = grown;
    }
    let n: number | null;
    try {
      n = await this.#stream.read(this.#buffer.subarray(this.#end));
    } catch {
      n = null;
    }
    if (n === null) {
      this.#eof = true;
      return false;
    }
    this.#end += n;
    return true;
  }

  /** One length-prefixed Noise message, or `null` at the end of the stream. */
  async message(): Promise<Uint8Array | null> {
    while (this.#end - this.#start < 2) if (!await this.#fill()) return null;
    const length = (this.#buffer[this.#start] << 8) | this.#buffer[this.#start + 1];
    while (this.#end - this.#start < 2 + length) if (!await this.#fill()) return null;
    const out = this.#buffer.slice(this.#start + 2, this.#start + 2 + length);
    this.#start += 2 + length;
    return out;
  }

  /** Reads and discards until the end of the stream; resolves the bytes read. */
  async drain(): Promise<number> {
    let total = 0;
    while (await this.#fill()) {
      total += this.#end - this.#start;
      this.#start = this.#end = 0;
    }
    return total;
  }
}

/** `message` with its 2-byte big-endian length prefix. */
export function framed(message: Uint8Array, length = message.length): Uint8Array {
  const out = new Uint8Array(2 + message.length);
  out[0] = (length >>> 8) & 0xff;
  out[1] = length & 0xff;
  out.set(message, 2);
  return out;
}

const PROLOGUE_BYTES = encoder.encode(PROLOGUE);

/** Options of {@linkcode rawInitiator}. */
export interface RawInitiatorOptions {
  /** Who connects. */
  id: FuzzIdentity;
  /** The HandshakePayload bytes sent in message 3 (default: a valid one for `id`). */
  payload?: Uint8Array;
  /** The static key pair sent in message 3 (default: `id`'s). */
  staticKeyPair?: X25519KeyPair;
  /** Changes the framed message 3 before it is written (a raw mutation). */
  mutateMessage3?: (framedMessage: Uint8Array) => Uint8Array;
  /** Fixed ephemeral key (saves a key generation per connection). */
  ephemeralKeyPair?: X25519KeyPair;
}

/** A valid HandshakePayload for `id`. */
export function handshakePayload(id: FuzzIdentity, observedAddr = "127.0.0.1:1"): Uint8Array {
  return toBinary(
    HandshakePayloadSchema,
    create(HandshakePayloadSchema, {
      identityKey: id.identity.publicKey,
      identitySignature: id.signature,
      compressions: [0, 1, 2, 3, 4],
      observedAddr,
      agent: "carrier-fuzz",
    }),
  );
}

/**
 * Runs the initiator's side of the handshake by hand over `stream` (so that
 * message 3 can be anything), without checking the responder. Resolves the
 * transport ciphers, or `undefined` when the responder never sent message 2.
 */
export async function rawInitiator(
  stream: ByteStream,
  reader: RawReader,
  options: RawInitiatorOptions,
): Promise<{ send: CipherState; receive: CipherState } | undefined> {
  const hs = createHandshake({
    pattern: "XX",
    initiator: true,
    prologue: PROLOGUE_BYTES,
    staticKeyPair: options.staticKeyPair ?? options.id.staticKeyPair,
    ephemeralKeyPair: options.ephemeralKeyPair,
  });
  await stream.write(framed(await hs.writeMessage()));
  const message2 = await reader.message();
  if (message2 === null) return undefined;
  await hs.readMessage(message2);
  const payload = options.payload ?? handshakePayload(options.id);
  let message3 = framed(await hs.writeMessage(payload));
  if (options.mutateMessage3) message3 = options.mutateMessage3(message3);
  await stream.write(message3);
  return hs.split();
}

/** Encodes a frame from its fields (no checks: any uint32 values). */
export function frameBytes(
  opcode: number,
  id: number,
  payload: Uint8Array,
  flags = 0,
  compression = 0,
): Uint8Array {
  const frame = createFrame({ opcode, id, payload });
  frame.flags = flags;
  frame.compression = compression;
  return encodeFrame(frame, { maxFrameSize: 64 * 1024 * 1024 });
}

const SENTINEL_MAGIC = encoder.encode("fuzzsent");

/** Reply accounting shared by the sessions of one target. */
export class Outcomes {
  /** Counts by outcome ("NACK STORE MALFORMED", "ACK PING", …). */
  readonly counts = new Map<string, number>();
  /** NACK INTERNAL replies: an exception escaped a handler. */
  readonly internal: { id: number; opcode: number; message: string }[] = [];

  /** Counts one outcome. */
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  /** The most frequent outcomes, as "key n%" strings. */
  top(n: number): string[] {
    let total = 0;
    for (const v of this.counts.values()) total += v;
    return [...this.counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map((
      [k, v],
    ) => `${k} ${(100 * v / Math.max(1, total)).toFixed(v / total < 0.01 ? 2 : 0)}%`);
  }
}

/** The name of an opcode. */
export function opcodeName(opcode: number): string {
  return Opcode[opcode] ?? `op${opcode}`;
}

/** Options of {@linkcode FrameSession.open}. */
export interface FrameSessionOptions {
  /** Where replies are counted. */
  outcomes: Outcomes;
  /** Answers a request the node sends (default: an empty ACK). */
  onRequest?: (frame: Frame, session: FrameSession) => void;
  /** The compression settings announced. @default {all five} */
  compressions?: number[];
  /** The compression this side prefers (announced in the handshake). @default {none} */
  preferredCompression?: number;
  /** The transport to dial with (closed by its owner). */
  transport: Transport;
}

/**
 * A fuzz connection: the library's secure channel to the node, over which
 * raw frame bytes are written in batches, and whose replies are decoded and
 * counted. {@linkcode FrameSession.probe} sends a PING whose ACK shows that
 * everything written before it was processed.
 */
export class FrameSession {
  /** The channel. */
  readonly channel: SecureChannel;
  /** Why the session ended, once it has. */
  closedBy: string | undefined;
  #outcomes: Outcomes;
  #decoder = new FrameDecoder({ maxFrameSize: 64 * 1024 * 1024 });
  #probes = new Map<number, (answered: boolean) => void>();
  #probeSeq = 0;
  #onRequest: FrameSessionOptions["onRequest"];
  #loop: Promise<void>;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #flushQueued = false;

  private constructor(channel: SecureChannel, options: FrameSessionOptions) {
    this.channel = channel;
    this.#outcomes = options.outcomes;
    this.#onRequest = options.onRequest;
    this.#loop = this.#read();
  }

  /** Connects to the node as `id` and runs the handshake. */
  static async open(
    node: { tcp: string; publicKey: Uint8Array },
    id: FuzzIdentity,
    options: FrameSessionOptions,
  ): Promise<FrameSession> {
    const stream = await options.transport.dial(node.tcp);
    const channel = await secureOutbound(stream, {
      identity: id.identity,
      expectedRemote: node.publicKey,
      noiseStaticKeyPair: id.staticKeyPair,
      compressions: options.compressions ?? [0, 1, 2, 3, 4],
      preferredCompression: options.preferredCompression,
    });
    return new FrameSession(channel, options);
  }

  /** Whether the connection is still open. */
  get open(): boolean {
    return this.closedBy === undefined && !this.channel.closed;
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const plaintext = await this.channel.read();
        if (plaintext === null) break;
        for (const frame of this.#decoder.push(plaintext)) this.#onFrame(frame);
      }
      this.closedBy ??= "the node closed the connection";
    } catch (err) {
      this.closedBy ??= `read failed: ${(err as Error).message}`;
    } finally {
      for (const wake of this.#probes.values()) wake(false);
      this.#probes.clear();
    }
  }

  #payload(frame: Frame): Uint8Array {
    if (!isCompressed(frame)) return frame.payload;
    return decompress(frame.compression, frame.payload, { maxOutputSize: 64 * 1024 * 1024 });
  }

  #onFrame(frame: Frame): void {
    const outcomes = this.#outcomes;
    try {
      switch (frame.opcode) {
        case Opcode.ACK: {
          const ack = fromBinary(AckSchema, this.#payload(frame));
          if (ack.opcode === Opcode.PING && ack.data.length >= 20) {
            const ping = fromBinary(PingSchema, ack.data);
            if (isSentinel(ping.data)) {
              const seq = new DataView(ping.data.buffer, ping.data.byteOffset).getUint32(8);
              const wake = this.#probes.get(seq);
              this.#probes.delete(seq);
              wake?.(true);
              return;
            }
          }
          outcomes.add(`ACK ${opcodeName(ack.opcode)}`);
          return;
        }
        case Opcode.NACK: {
          const nack = fromBinary(NackSchema, this.#payload(frame));
          const reason = NackReason[nack.reason] ?? String(nack.reason);
          const detail =
            nack.reason === NackReason.RATE_LIMITED || nack.reason === NackReason.INTERNAL ||
              nack.reason === NackReason.UNREACHABLE
              ? ` (${nack.message.replace(/\d+/g, "N").slice(0, 40)})`
              : "";
          outcomes.add(`NACK ${opcodeName(nack.opcode)} ${reason}${detail}`);
          if (nack.reason === NackReason.INTERNAL) {
            outcomes.internal.push({ id: frame.id, opcode: nack.opcode, message: nack.message });
          }
          return;
        }
        case Opcode.DISCONNECT:
          this.closedBy = `the node sent DISCONNECT`;
          outcomes.add("node sent DISCONNECT");
          return;
      }
      if (frame.id !== 0) {
        if (this.#onRequest) this.#onRequest(frame, this);
        else this.send([frameBytes(Opcode.ACK, frame.id, new Uint8Array(0))]);
      }
      outcomes.add(`node sent ${opcodeName(frame.opcode)}`);
    } catch (err) {
      outcomes.add(`undecodable reply (${(err as Error).name})`);
    }
  }

  /**
   * Queues encoded frames; they are written together, packed into Noise
   * messages of up to 65519 bytes, by {@linkcode FrameSession.flush}.
   */
  write(frames: readonly Uint8Array[]): void {
    for (const f of frames) {
      this.#pending.push(f);
      this.#pendingBytes += f.length;
    }
  }

  /** Queues frames and flushes them soon (those queued in the same turn go together). */
  send(frames: readonly Uint8Array[]): void {
    this.write(frames);
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      void this.flush();
    });
  }

  /** Bytes queued and not yet flushed. */
  get queuedBytes(): number {
    return this.#pendingBytes;
  }

  /** Writes the queued frames; resolves once the channel has written them. */
  async flush(): Promise<void> {
    if (this.#pending.length === 0) return;
    const all = new Uint8Array(this.#pendingBytes);
    let o = 0;
    for (const f of this.#pending) {
      all.set(f, o);
      o += f.length;
    }
    this.#pending = [];
    this.#pendingBytes = 0;
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < all.length; i += MAX_PLAINTEXT) {
      chunks.push(all.subarray(i, i + MAX_PLAINTEXT));
    }
    if (!this.open) return;
    try {
      await this.channel.writeMany(chunks);
    } catch (err) {
      this.closedBy ??= `write failed: ${(err as Error).message}`;
    }
  }

  /**
   * Queues a sentinel PING and flushes; resolves `"answered"` when its ACK
   * comes back, `"closed"` if the connection ends first, `"timeout"` after
   * `timeout` ms (a hang).
   */
  async probe(timeout: number): Promise<"answered" | "closed" | "timeout"> {
    if (!this.open) return "closed";
    const seq = ++this.#probeSeq;
    const data = new Uint8Array(20);
    data.set(SENTINEL_MAGIC);
    new DataView(data.buffer).setUint32(8, seq);
    const answered = new Promise<boolean>((resolve) => this.#probes.set(seq, resolve));
    this.write([
      frameBytes(Opcode.PING, 0xffff_fff0, toBinary(PingSchema, create(PingSchema, { data }))),
    ]);
    await this.flush();
    const result = await within(
      answered.then((ok) => (ok ? "answered" as const : "closed" as const)),
      timeout,
      "timeout" as const,
    );
    this.#probes.delete(seq);
    return result;
  }

  /** Closes the connection and waits for its read loop. */
  async close(): Promise<void> {
    this.closedBy ??= "closed by the fuzzer";
    this.channel.close();
    await this.#loop;
  }
}

function isSentinel(data: Uint8Array): boolean {
  if (data.length !== 20) return false;
  for (let i = 0; i < SENTINEL_MAGIC.length; i++) if (data[i] !== SENTINEL_MAGIC[i]) return false;
  return true;
}

/**
 * The legit peer: every `interval` ms a fresh connection to the node, a
 * PING, and a close, from a node of its own in this process. Each attempt
 * must finish within `timeout` ms.
 */
export class LegitPinger {
  /** Attempts made. */
  attempts = 0;
  /** Attempts that failed (connect, handshake or PING failed or took too long). */
  failures = 0;
  /** The slowest successful attempt, in ms. */
  slowest = 0;
  /** The failures' messages (the first 20). */
  readonly errors: string[] = [];
  #node: Node;
  #target: () => string;
  #stop = new AbortController();
  #loop: Promise<void>;
  #interval: number;
  #timeout: number;

  private constructor(node: Node, target: () => string, interval: number, timeout: number) {
    this.#node = node;
    this.#target = target;
    this.#interval = interval;
    this.#timeout = timeout;
    this.#loop = this.#run();
  }

  /** Starts pinging the node whose peer address `target()` gives. */
  static async start(
    target: () => string,
    options: { interval?: number; timeout?: number } = {},
  ): Promise<LegitPinger> {
    const node = await createNode();
    return new LegitPinger(node, target, options.interval ?? 1000, options.timeout ?? 5000);
  }

  async #run(): Promise<void> {
    const stop = this.#stop.signal;
    while (!stop.aborted) {
      const started = performance.now();
      await this.#attempt();
      await sleep(Math.max(0, this.#interval - (performance.now() - started)), stop);
    }
  }

  async #attempt(): Promise<void> {
    this.attempts++;
    const started = performance.now();
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new Error(`no PING reply within ${this.#timeout} ms`)),
      this.#timeout,
    );
    try {
      const peer = await this.#node.connect(this.#target(), { signal: abort.signal });
      try {
        await peer.ping({ timeout: this.#timeout, signal: abort.signal });
      } finally {
        await peer.close();
      }
      this.slowest = Math.max(this.slowest, performance.now() - started);
    } catch (err) {
      this.failures++;
      if (this.errors.length < 20) {
        this.errors.push(`${new Date().toISOString()} ${(err as Error)?.message ?? err}`);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops pinging and closes its node. */
  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#loop;
    await this.#node.close();
  }
}
