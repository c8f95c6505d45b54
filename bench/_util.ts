/**
 * Small helpers the benches share: waiting, polling, and reading a child
 * process's output line by line.
 *
 * @module
 */

/** Resolves after `ms` milliseconds. */
export const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

/** Options of {@linkcode until}. */
export interface UntilOptions {
  /** Give up after this long, in ms. @default {60_000} */
  timeout?: number;
  /** Check this often, in ms. @default {20} */
  interval?: number;
}

/** Polls `check` until it holds; throws naming `what` on timeout. */
export async function until(
  check: () => boolean,
  what: string,
  options: UntilOptions = {},
): Promise<void> {
  const { timeout = 60_000, interval = 20 } = options;
  const started = performance.now();
  while (!check()) {
    if (performance.now() - started > timeout) throw new Error(`Timed out waiting for ${what}`);
    await delay(interval);
  }
}

/** The lines of a byte stream (UTF-8), without their line breaks. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    pending += text;
    let newline;
    while ((newline = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, newline);
      pending = pending.slice(newline + 1);
    }
  }
  if (pending) yield pending;
}
