/**
 * What `carrier` prints: where it writes, events and command results as
 * text or JSON lines, and the formatting helpers they share.
 *
 * @module
 */
import { CarrierError, LockHeldError, Opcode, VersionConflictError } from "../mod.ts";
import type { Outcome } from "./node_command.ts";

/** Where a command writes: injectable so tests can capture it. */
export interface CliOutput {
  /** Writes one line to standard output. */
  out(line: string): void;
  /** Writes one line to standard error. */
  err(line: string): void;
}

/** The process's standard output and standard error. */
export const consoleOutput: CliOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** Prints events and command results: JSON lines with `--json`, else text. */
export class Printer {
  readonly #io: CliOutput;
  readonly #json: boolean;
  /** A printer to `io`, of JSON lines if `json`. */
  constructor(io: CliOutput, json: boolean) {
    this.#io = io;
    this.#json = json;
  }

  /** An event: `{"event":NAME,...fields}`, or `human`. */
  event(name: string, fields: Record<string, unknown>, human: string): void {
    this.#io.out(this.#json ? JSON.stringify({ event: name, ...fields }) : human);
  }

  /** A command's result: `{"command":NAME,"ok":true,...fields}`, or its text. */
  result(command: string, outcome: Outcome): void {
    this.#io.out(
      this.#json ? JSON.stringify({ command, ok: true, ...outcome.fields }) : outcome.text,
    );
  }

  /** A failed command: `{"command":NAME,"ok":false,"error":{name,message}}`, or a line on stderr. */
  failure(command: string, err: unknown, usage?: string): void {
    const error = err instanceof Error ? err : new Error(String(err));
    if (this.#json) {
      this.#io.out(JSON.stringify({
        command,
        ok: false,
        error: errorFields(error),
        ...(usage === undefined ? {} : { usage }),
      }));
      return;
    }
    const prefix = error instanceof CarrierError ? `${error.name}: ` : "";
    this.#io.err(
      `error: ${command}: ${prefix}${error.message}${
        usage === undefined ? "" : `\nusage: ${usage}`
      }`,
    );
  }
}

/**
 * An error as JSON: its name and message, and what a script acts on: the
 * version a lost compare-and-swap or patch found, a held lock's holder.
 */
function errorFields(error: Error): Record<string, unknown> {
  const fields: Record<string, unknown> = { name: error.name, message: error.message };
  if (error instanceof VersionConflictError) {
    fields.currentVersion = error.currentVersion;
    if (error.currentValue !== undefined) {
      Object.assign(fields, bytesFields("currentValue", error.currentValue));
    }
  }
  if (error instanceof LockHeldError) {
    Object.assign(fields, {
      holder: error.holder,
      fencingToken: error.fencingToken,
      expiresIn: error.expiresIn,
    });
  }
  return fields;
}

/** Bytes as JSON: `{NAME: text}` if they are UTF-8, else `{NAMEBase64: base64}`. */
export function bytesFields(name: string, bytes: Uint8Array): Record<string, string> {
  try {
    return { [name]: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
  } catch {
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    }
    return { [`${name}Base64`]: btoa(binary) };
  }
}

/** What {@linkcode bytesFields} made, for people: the text, or its size. */
export function shown(fields: Record<string, unknown>): string {
  for (const [name, value] of Object.entries(fields)) {
    if (name.endsWith("Base64")) return `(${atob(String(value)).length} bytes, not UTF-8)`;
    if (name === "value" || name === "body" || name === "insert") return String(value);
  }
  return "";
}

/** An opcode's name: `PING`, or `APP_1000` for an application's. */
export function opcodeName(opcode: number): string {
  return Opcode[opcode] ?? `APP_${opcode}`;
}

/** Bytes as lowercase hexadecimal. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
