/**
 * TCP hole punching's dialling (see `proto/carrier/v1/holepunch.proto`):
 * connections *from* a chosen local port, so that two nodes behind NATs can
 * open one connection by dialling each other at once (TCP simultaneous
 * open).
 *
 * `Deno.connect` cannot choose its local port, so these sockets are
 * `node:net`'s (`connect({ localPort })`, which binds with `SO_REUSEADDR`):
 * several attempts, to several addresses, can leave from the same port. The
 * port must not be one a listener holds (Linux refuses it without
 * `SO_REUSEPORT` on both, which `node:net`'s dialling does not set), so a
 * hole punch uses a port of its own, {@linkcode freeTcpPort}, and tells the
 * peer its observed host with that port; a NAT that keeps source ports
 * (Linux masquerade, most home routers) maps it to the same port outside.
 *
 * @module
 */
import { connect, createServer, type Socket } from "node:net";
import { ConnectionClosedError, DialError, HolePunchError } from "../errors.ts";
import { errorMessage } from "../_error_message.ts";
import { StreamBase } from "./_stream.ts";
import { formatHostPort, parseHostPort } from "./tcp.ts";
import type { ByteStream } from "./types.ts";

/** Unread bytes a socket may hold before it stops reading from the kernel. */
const READ_HIGH_WATER = 256 * 1024;

/** An attempt refused at once is retried after a pause in this range, in ms. */
const RETRY_PAUSE = [2, 10] as const;

/** Connection attempts of one punch, every address, at most. */
const MAX_ATTEMPTS = 2000;

/**
 * A free TCP port on IPv4's wildcard address: bound for a moment to learn
 * it, then released for dialling from.
 *
 * @throws {DialError} When no port can be bound.
 */
export function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once(
      "error",
      (err) =>
        reject(new DialError(`Cannot find a free TCP port: ${errorMessage(err)}`, { cause: err })),
    );
    server.listen({ host: "0.0.0.0", port: 0, exclusive: true }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Options of {@linkcode punchTcp}. */
export interface PunchOptions {
  /** The local port every attempt dials from (see {@linkcode freeTcpPort}). */
  localPort: number;
  /** How long to keep dialling, in ms. */
  window: number;
  /** Ends the punch at once: it rejects with the signal's reason, and every socket is closed. */
  signal?: AbortSignal;
}

/** What {@linkcode punchTcp} returns. */
export interface PunchResult {
  /** The connected stream. */
  stream: ByteStream;
  /** The address that connected. */
  address: string;
  /** Connection attempts made (every address). */
  attempts: number;
}

/**
 * Dials every address in `targets` from `options.localPort` at once, each
 * with one attempt in flight, retrying an attempt that fails (a NAT or host
 * that answers with a reset) after a short pause, until one connects.
 * The first to connect wins; every other socket is closed.
 *
 * @throws {HolePunchError} When nothing connected within `window`, or
 * every attempt failed and none may be made (2000 in all).
 * @throws {TransportAddressError} When an address is not `host:port`.
 * @throws The signal's reason when `options.signal` aborts first.
 */
export function punchTcp(targets: readonly string[], options: PunchOptions): Promise<PunchResult> {
  const { localPort, signal, window } = options;
  const [minPause, maxPause] = RETRY_PAUSE;
  const parsed = targets.map((t) => ({ target: t, ...parseHostPort(t) }));
  return new Promise((resolve, reject) => {
    const sockets = new Set<Socket>();
    const timers = new Set<ReturnType<typeof setTimeout>>();
    let attempts = 0, running = 0, settled = false, lastError: unknown;
    const finish = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      sockets.clear();
      outcome();
    };
    const failed = (why: string) =>
      finish(() =>
        reject(
          new HolePunchError(
            `Cannot punch a hole to ${
              targets.join(", ")
            } from port ${localPort}: ${why}, ${attempts} attempts (last: ${
              lastError === undefined ? "none failed" : errorMessage(lastError)
            })`,
            { cause: lastError, attempts },
          ),
        )
      );
    const onAbort = () => finish(() => reject(signal!.reason));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const deadline = setTimeout(() => failed(`nothing connected within ${window} ms`), window);
    timers.add(deadline);
    const attempt = (t: (typeof parsed)[number]) => {
      if (settled) return;
      if (attempts >= MAX_ATTEMPTS) {
        if (running === 0) failed("every attempt failed");
        return;
      }
      attempts++;
      running++;
      const socket = connect({
        host: t.hostname,
        port: t.port,
        localPort,
        localAddress: t.hostname.includes(":") ? "::" : "0.0.0.0",
      });
      sockets.add(socket);
      socket.once("connect", () => {
        running--;
        sockets.delete(socket);
        if (settled) socket.destroy(); // another attempt won
        else {finish(() =>
            resolve({ stream: new SocketStream(socket), address: t.target, attempts })
          );}
      });
      socket.once("error", (err) => {
        running--;
        sockets.delete(socket);
        socket.destroy();
        lastError = err;
        if (settled) return;
        const pause = minPause + Math.random() * (maxPause - minPause);
        const timer = setTimeout(() => {
          timers.delete(timer);
          attempt(t);
        }, pause);
        timers.add(timer);
      });
    };
    for (const t of parsed) attempt(t);
  });
}

/** A connected `node:net` socket behind the {@linkcode ByteStream} interface. */
class SocketStream extends StreamBase {
  readonly localAddress: string;
  readonly remoteAddress: string;
  readonly #socket: Socket;
  readonly #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    socket.setNoDelay(true);
    this.localAddress = formatHostPort(unmapped(socket.localAddress), socket.localPort ?? 0);
    this.remoteAddress = formatHostPort(unmapped(socket.remoteAddress), socket.remotePort ?? 0);
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered >= READ_HIGH_WATER) socket.pause();
      this.#notify();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#notify();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.closed) return null;
      if (this.#chunks.length > 0) {
        let n = 0;
        while (n < buffer.length && this.#chunks.length > 0) {
          const chunk = this.#chunks[0];
          const take = Math.min(chunk.length, buffer.length - n);
          buffer.set(chunk.subarray(0, take), n);
          n += take;
          if (take === chunk.length) this.#chunks.shift();
          else this.#chunks[0] = chunk.subarray(take);
        }
        this.#buffered -= n;
        if (this.#buffered < READ_HIGH_WATER && this.#socket.isPaused()) this.#socket.resume();
        return n;
      }
      if (this.#error !== undefined) {
        throw new ConnectionClosedError(
          `Cannot read from ${this.remoteAddress}: ${errorMessage(this.#error)}`,
          { cause: this.#error },
        );
      }
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  protected writeAll(data: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#socket.write(data, (err?: Error | null) => {
        if (err) {
          reject(
            new ConnectionClosedError(
              `Cannot write to ${this.remoteAddress}: ${
                this.closed ? "the stream was closed" : errorMessage(err)
              }`,
              { cause: err },
            ),
          );
        } else resolve();
      });
    });
  }

  protected endWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(resolve));
  }

  protected release(): void {
    this.#socket.destroy();
    this.#notify();
  }
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; `undefined` (a socket already gone) → `0.0.0.0`. */
function unmapped(host: string | undefined): string {
  if (host === undefined) return "0.0.0.0";
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}
