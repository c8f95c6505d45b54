/**
 * Noise handshake patterns (revision 34 of the specification, sections 7.4,
 * 7.5 and 9.3): the table of one-way, fundamental interactive and deferred
 * patterns, and a parser for pattern names with `psk` modifiers.
 *
 * Private to `lib/secure/`.
 *
 * @module
 */
import { ArgumentError } from "../errors.ts";

/** A token of a Noise message pattern. */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

/** A parsed handshake pattern, ready for the handshake state machine. */
export interface HandshakePattern {
  /** The pattern name as it appears in the protocol name, e.g. `XXpsk3`. */
  readonly name: string;
  /** Keys the responder knows about the initiator before the handshake. */
  readonly initiatorPreMessage: readonly Token[];
  /** Keys the initiator knows about the responder before the handshake. */
  readonly responderPreMessage: readonly Token[];
  /** The messages; even indexes are written by the initiator, odd by the responder. */
  readonly messages: readonly (readonly Token[])[];
  /** Whether this is a one-way pattern (`N`, `K`, `X`): one message, one transport direction. */
  readonly oneWay: boolean;
  /** How many pre-shared keys the `psk` modifiers consume. */
  readonly pskCount: number;
}

/**
 * The base patterns in the specification's notation: pre-messages, `...`,
 * then the messages, separated by `;`.
 */
const BASE_PATTERNS: Readonly<Record<string, string>> = {
  // One-way (section 7.4).
  N: "<- s; ...; -> e, es",
  K: "-> s; <- s; ...; -> e, es, ss",
  X: "<- s; ...; -> e, es, s, ss",
  // Fundamental interactive (section 7.5).
  NN: "-> e; <- e, ee",
  NK: "<- s; ...; -> e, es; <- e, ee",
  NX: "-> e; <- e, ee, s, es",
  KN: "-> s; ...; -> e; <- e, ee, se",
  KK: "-> s; <- s; ...; -> e, es, ss; <- e, ee, se",
  KX: "-> s; ...; -> e; <- e, ee, se, s, es",
  XN: "-> e; <- e, ee; -> s, se",
  XK: "<- s; ...; -> e, es; <- e, ee; -> s, se",
  XX: "-> e; <- e, ee, s, es; -> s, se",
  IN: "-> e, s; <- e, ee, se",
  IK: "<- s; ...; -> e, es, s, ss; <- e, ee, se",
  IX: "-> e, s; <- e, ee, se, s, es",
  // Deferred (section 18.x of revision 34).
  NK1: "<- s; ...; -> e; <- e, ee, es",
  NX1: "-> e; <- e, ee, s; -> es",
  X1N: "-> e; <- e, ee; -> s; <- se",
  X1K: "<- s; ...; -> e, es; <- e, ee; -> s; <- se",
  XK1: "<- s; ...; -> e; <- e, ee, es; -> s, se",
  X1K1: "<- s; ...; -> e; <- e, ee, es; -> s; <- se",
  X1X: "-> e; <- e, ee, s, es; -> s; <- se",
  XX1: "-> e; <- e, ee, s; -> es, s, se",
  X1X1: "-> e; <- e, ee, s; -> es, s; <- se",
  K1N: "-> s; ...; -> e; <- e, ee; -> se",
  K1K: "-> s; <- s; ...; -> e, es; <- e, ee; -> se",
  KK1: "-> s; <- s; ...; -> e; <- e, ee, se, es",
  K1K1: "-> s; <- s; ...; -> e; <- e, ee, es; -> se",
  K1X: "-> s; ...; -> e; <- e, ee, s, es; -> se",
  KX1: "-> s; ...; -> e; <- e, ee, se, s; -> es",
  K1X1: "-> s; ...; -> e; <- e, ee, s; -> se, es",
  I1N: "-> e, s; <- e, ee; -> se",
  I1K: "<- s; ...; -> e, es, s; <- e, ee; -> se",
  IK1: "<- s; ...; -> e, s; <- e, ee, se, es",
  I1K1: "<- s; ...; -> e, s; <- e, ee, es; -> se",
  I1X: "-> e, s; <- e, ee, s, es; -> se",
  IX1: "-> e, s; <- e, ee, se, s; -> es",
  I1X1: "-> e, s; <- e, ee, s; -> se, es",
};

const TOKENS: ReadonlySet<string> = new Set(["e", "s", "ee", "es", "se", "ss"]);

/** The names of every base pattern this module knows, e.g. `XX`, `I1K1`. */
export const BASE_PATTERN_NAMES: readonly string[] = Object.keys(BASE_PATTERNS);

/**
 * Parses a pattern name such as `XX`, `X1X1`, `NNpsk0` or `NNpsk0+psk2`.
 *
 * @throws {ArgumentError} If the base pattern or a modifier is unknown.
 */
export function parsePattern(name: string): HandshakePattern {
  // The longest base name that prefixes `name` and leaves only modifiers.
  let base: string | undefined;
  for (const candidate of BASE_PATTERN_NAMES) {
    if (!name.startsWith(candidate)) continue;
    const rest = name.slice(candidate.length);
    if (rest !== "" && !rest.startsWith("psk")) continue;
    if (base === undefined || candidate.length > base.length) base = candidate;
  }
  if (base === undefined) {
    throw new ArgumentError(
      `Cannot parse Noise pattern "${name}": unknown base pattern (known: ${
        BASE_PATTERN_NAMES.join(", ")
      })`,
    );
  }
  const parsed = parseNotation(BASE_PATTERNS[base]);
  const modifiers = name.slice(base.length);
  const messages = parsed.messages.map((m) => [...m]);
  let pskCount = 0;
  if (modifiers !== "") {
    const seen = new Set<number>();
    for (const modifier of modifiers.split("+")) {
      const match = /^psk(\d)$/.exec(modifier);
      const position = match === null ? NaN : Number(match[1]);
      if (
        Number.isNaN(position) || position > messages.length ||
        seen.has(position)
      ) {
        throw new ArgumentError(
          `Cannot parse Noise pattern "${name}": invalid modifier "${modifier}" for ${messages.length}-message pattern ${base}`,
        );
      }
      seen.add(position);
      if (position === 0) messages[0].unshift("psk");
      else messages[position - 1].push("psk");
      pskCount++;
    }
  }
  return {
    name,
    initiatorPreMessage: parsed.initiatorPreMessage,
    responderPreMessage: parsed.responderPreMessage,
    messages,
    oneWay: base.length === 1,
    pskCount,
  };
}

function parseNotation(
  notation: string,
): Omit<HandshakePattern, "name" | "oneWay" | "pskCount"> {
  const lines = notation.split(";").map((line) => line.trim());
  const split = lines.indexOf("...");
  const pre = split === -1 ? [] : lines.slice(0, split);
  const body = split === -1 ? lines : lines.slice(split + 1);
  const initiatorPreMessage: Token[] = [];
  const responderPreMessage: Token[] = [];
  for (const line of pre) {
    const { outgoing, tokens } = parseLine(line);
    (outgoing ? initiatorPreMessage : responderPreMessage).push(...tokens);
  }
  const messages = body.map((line, i) => {
    const { outgoing, tokens } = parseLine(line);
    if (outgoing !== (i % 2 === 0)) {
      throw new ArgumentError(`Malformed pattern table entry: ${notation}`);
    }
    return tokens;
  });
  return { initiatorPreMessage, responderPreMessage, messages };
}

function parseLine(line: string): { outgoing: boolean; tokens: Token[] } {
  const outgoing = line.startsWith("->");
  if (!outgoing && !line.startsWith("<-")) {
    throw new ArgumentError(`Malformed pattern line: ${line}`);
  }
  const tokens = line.slice(2).split(",").map((t) => t.trim());
  for (const token of tokens) {
    if (!TOKENS.has(token)) throw new ArgumentError(`Malformed pattern line: ${line}`);
  }
  return { outgoing, tokens: tokens as Token[] };
}
