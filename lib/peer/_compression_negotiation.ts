/**
 * The compression of one connection: what each side decodes and prefers
 * (announced in the handshake, changed by SET_CONNECTION_OPT), and the
 * setting this side sends with.
 *
 * Private to `lib/peer/`; `connection.ts` re-exports {@linkcode chooseCompression}.
 *
 * @module
 */

import { Compression, ConnectionOption } from "../../gen/carrier/v1/options_pb.ts";
import type { HandshakeInfo } from "../secure/channel.ts";

/**
 * The deterministic compression choice: the initiator's preference when both
 * sides decode it, else the responder's, else none.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chooseCompression } from "./connection.ts";
 * import { Compression } from "@carrier/p2p/protocol";
 * const { GZIP, SNAPPY } = Compression;
 * const initiator = { preferred: SNAPPY, decodes: [SNAPPY, GZIP] };
 * const responder = { preferred: GZIP, decodes: [GZIP] };
 * assert.equal(chooseCompression(initiator, responder), GZIP); // both decode only GZIP
 * assert.equal(chooseCompression(initiator, { decodes: [] }), undefined);
 * ```
 */
export function chooseCompression(
  initiator: { preferred?: Compression; decodes: readonly Compression[] },
  responder: { preferred?: Compression; decodes: readonly Compression[] },
): Compression | undefined {
  for (const preferred of [initiator.preferred, responder.preferred]) {
    if (
      preferred !== undefined && initiator.decodes.includes(preferred) &&
      responder.decodes.includes(preferred)
    ) return preferred;
  }
  return undefined;
}

/** What one side decodes and prefers. */
interface Side {
  preferred: Compression | undefined;
  decodes: Compression[];
}

/** Both sides' compression settings and the choice they make. */
export class CompressionNegotiation {
  readonly #initiator: boolean;
  readonly #local: Side;
  readonly #remote: Side;
  #compression: Compression | undefined;

  /** Starts from what each side announced in the handshake. */
  constructor(local: HandshakeInfo, remote: HandshakeInfo, initiator: boolean) {
    this.#initiator = initiator;
    this.#local = {
      decodes: [...local.compressions] as Compression[],
      preferred: local.preferredCompression as Compression | undefined,
    };
    this.#remote = {
      decodes: [...remote.compressions] as Compression[],
      preferred: remote.preferredCompression as Compression | undefined,
    };
    this.#recompute();
  }

  /** The compression this side sends with, if any. */
  get compression(): Compression | undefined {
    return this.#compression;
  }

  /** What this side decodes and prefers, as the peer was told. */
  get local(): { decodes: readonly Compression[]; preferred?: Compression } {
    return { decodes: [...this.#local.decodes], preferred: this.#local.preferred };
  }

  /** Whether this side decodes `setting` (it announced it and did not disable it). */
  decodes(setting: Compression): boolean {
    return this.#local.decodes.includes(setting);
  }

  /** Applies an option this side set, once the peer has ACKed it. */
  applyLocal(option: ConnectionOption, setting: Compression): void {
    applyCompressionOption(this.#local, option, setting);
    this.#recompute();
  }

  /**
   * Why this side refuses the peer's SET_CONNECTION_OPT `option` `setting`
   * (the NACK UNSUPPORTED message), or `undefined` when it accepts it.
   */
  refusal(option: number, setting: number): string | undefined {
    return !(option in ConnectionOption)
      ? `connection option ${option} is not supported`
      : !(setting in Compression)
      ? `compression setting ${setting} is not a Compression`
      : option !== ConnectionOption.DISABLE_COMPRESSION &&
          !this.#local.decodes.includes(setting as Compression)
      ? `compression setting ${setting} is not supported`
      : undefined;
  }

  /** Applies an option the peer set (one {@linkcode CompressionNegotiation.refusal} accepts). */
  applyRemote(option: ConnectionOption, setting: Compression): void {
    applyCompressionOption(this.#remote, option, setting);
    this.#recompute();
  }

  #recompute(): void {
    const choice = this.#initiator
      ? chooseCompression(this.#local, this.#remote)
      : chooseCompression(this.#remote, this.#local);
    // bz2 and lzma cost 15–40 ms of CPU per 60 KB to compress: a side sends
    // them only when they are its own preference, or a peer preferring lzma
    // could make every reply cost that (found by the fuzz campaign).
    const costly = choice === Compression.BZ2 || choice === Compression.LZMA;
    this.#compression = costly && choice !== this.#local.preferred ? undefined : choice;
  }
}

/**
 * Applies a compression option to one side's state (what it decodes, what it
 * prefers), as its peer and then itself see it.
 */
function applyCompressionOption(
  state: Side,
  option: ConnectionOption,
  setting: Compression,
): void {
  const i = state.decodes.indexOf(setting);
  if (option === ConnectionOption.DISABLE_COMPRESSION) {
    if (i >= 0) state.decodes.splice(i, 1);
    if (state.preferred === setting) state.preferred = undefined;
    return;
  }
  if (i < 0) state.decodes.push(setting);
  if (option === ConnectionOption.PREFERRED_COMPRESSION) state.preferred = setting;
}
