/**
 * Callers waiting for their turn (send-buffer room, a request slot), woken
 * first in, first out.
 *
 * Private to `lib/peer/`.
 *
 * @module
 */

/** A FIFO of waiting callers. */
export class WaitQueue {
  #waiters: (() => void)[] = [];

  /** How many callers wait. */
  get length(): number {
    return this.#waiters.length;
  }

  /** Waits until woken; rejects with the signal's reason if `signal` aborts first. */
  wait(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    const waiters = this.#waiters;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        const i = waiters.indexOf(wake);
        if (i >= 0) waiters.splice(i, 1);
        reject(signal!.reason);
      };
      const wake = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.push(wake);
    });
  }

  /** Wakes the caller that has waited longest, if any. */
  wakeOne(): void {
    this.#waiters.shift()?.();
  }

  /** Wakes every waiting caller. */
  wakeAll(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
