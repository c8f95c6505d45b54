/**
 * The specification as data: the README's tables (a small Markdown table
 * parser) and the enums and messages of `proto/carrier/v1` (a small
 * `.proto` text parser). The conformance test and `tests/readme_test.ts`
 * read the spec only through this module.
 *
 * @module
 */

const root = new URL("../../", import.meta.url);

/** The README, as text. */
export const README: string = await Deno.readTextFile(new URL("README.md", root));

/** The text of every `.proto` file under `proto/carrier/v1`, by file name. */
export const PROTO_FILES: ReadonlyMap<string, string> = await (async () => {
  const dir = new URL("proto/carrier/v1/", root);
  const files = new Map<string, string>();
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".proto")) names.push(entry.name);
  }
  for (const name of names.sort()) files.set(name, await Deno.readTextFile(new URL(name, dir)));
  return files;
})();

/**
 * The body rows of the Markdown table between the markers `start` and `end`
 * of `markdown`: cells trimmed, backticks removed, the header row and the
 * separator row left out.
 *
 * @throws {Error} when the markers are missing.
 */
export function tableBetween(markdown: string, start: string, end: string): string[][] {
  return markdownTable(markdown, start, end).rows;
}

/** A Markdown table: its header cells and its body rows (cells trimmed, backticks removed). */
export interface MarkdownTable {
  header: string[];
  rows: string[][];
}

/** The Markdown table between the markers `start` and `end` of `markdown`. */
export function markdownTable(markdown: string, start: string, end: string): MarkdownTable {
  const from = markdown.indexOf(start);
  const to = markdown.indexOf(end, from);
  if (from < 0 || to <= from) throw new Error(`No ${start} … ${end} section`);
  const lines = markdown.slice(from, to).split("\n").filter((line) => line.startsWith("|"));
  const cells = (line: string) =>
    line.split("|").slice(1, -1).map((cell) => cell.trim().replaceAll("`", ""));
  const separator = (line: string) => /^\|(\s*:?-+:?\s*\|)+\s*$/.test(line);
  const [head, ...body] = lines;
  if (head === undefined) throw new Error(`No table between ${start} and ${end}`);
  return { header: cells(head), rows: body.filter((l) => !separator(l)).map(cells) };
}

/** The rows of a table as records keyed by the header's cells. */
export function tableRecords(table: MarkdownTable): Record<string, string>[] {
  return table.rows.map((row) => {
    if (row.length !== table.header.length) {
      throw new Error(
        `Row [${row.join(" | ")}] has ${row.length} cells, the header has ` +
          `${table.header.length}`,
      );
    }
    return Object.fromEntries(table.header.map((h, i) => [h, row[i]]));
  });
}

// ---- proto/ ----

/** One value of a proto enum. */
export interface ProtoEnumValue {
  /** The full name (`OPCODE_PING`). */
  fullName: string;
  /** The name without the enum's prefix (`PING`). */
  name: string;
  /** Its number. */
  value: number;
  /** The `//` comment lines right above it, joined with spaces. */
  comment: string;
}

/** A proto enum. */
export interface ProtoEnum {
  name: string;
  /** The file it is in. */
  file: string;
  values: ProtoEnumValue[];
  /** Numbers kept out by `reserved` (ranges expanded; `max` not supported). */
  reserved: number[];
  /** Names kept out by `reserved "NAME"`. */
  reservedNames: string[];
}

/** `NackReason` → `NACK_REASON_`: the prefix buf's lint rules give an enum's values. */
export function enumPrefix(enumName: string): string {
  return enumName.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase() + "_";
}

/** Strips `//` comments (not inside strings: the files have no `//` in strings). */
function stripComment(line: string): { code: string; comment: string | undefined } {
  const at = line.indexOf("//");
  if (at < 0) return { code: line, comment: undefined };
  return { code: line.slice(0, at), comment: line.slice(at + 2).trim() };
}

/**
 * The top-level enums of a `.proto` file's text. Values are `NAME = N;`
 * (options in brackets are allowed and ignored); `reserved 18;`,
 * `reserved 2, 15, 9 to 11;` and `reserved "FOO";` are read.
 *
 * @throws {Error} on a line inside an enum that is none of these.
 */
export function parseEnums(text: string, file = ""): ProtoEnum[] {
  const enums: ProtoEnum[] = [];
  let current: ProtoEnum | undefined;
  let comments: string[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const { code, comment } = stripComment(raw);
    const line = code.trim();
    if (line === "") {
      if (comment !== undefined) comments.push(comment);
      else comments = [];
      continue;
    }
    if (current === undefined) {
      const open = /^enum\s+(\w+)\s*\{$/.exec(line);
      if (open) {
        current = { name: open[1], file, values: [], reserved: [], reservedNames: [] };
        enums.push(current);
      }
      comments = [];
      continue;
    }
    if (line === "}") {
      current = undefined;
      comments = [];
      continue;
    }
    const value = /^(\w+)\s*=\s*(-?\d+)\s*(\[[^\]]*\])?\s*;$/.exec(line);
    const reserved = /^reserved\s+(.+);$/.exec(line);
    if (value) {
      const prefix = enumPrefix(current.name);
      const fullName = value[1];
      current.values.push({
        fullName,
        name: fullName.startsWith(prefix) ? fullName.slice(prefix.length) : fullName,
        value: Number(value[2]),
        comment: comments.join(" "),
      });
    } else if (reserved) {
      for (const part of reserved[1].split(",").map((p) => p.trim())) {
        const range = /^(\d+)\s+to\s+(\d+)$/.exec(part);
        const name = /^"(\w+)"$/.exec(part);
        if (range) {
          for (let n = Number(range[1]); n <= Number(range[2]); n++) current.reserved.push(n);
        } else if (/^\d+$/.test(part)) current.reserved.push(Number(part));
        else if (name) current.reservedNames.push(name[1]);
        else throw new Error(`${file}:${i + 1}: cannot read reserved part "${part}"`);
      }
    } else if (!line.startsWith("option ")) {
      throw new Error(`${file}:${i + 1}: cannot read "${line}" in enum ${current.name}`);
    }
    comments = [];
  }
  return enums;
}

/** Every enum of `proto/carrier/v1`, by name. */
export function protoEnums(): Map<string, ProtoEnum> {
  const all = new Map<string, ProtoEnum>();
  for (const [file, text] of PROTO_FILES) {
    for (const e of parseEnums(text, file)) all.set(e.name, e);
  }
  return all;
}

/** The names of the messages defined in a `.proto` file's text (nested ones too). */
export function parseMessageNames(text: string): string[] {
  const names: string[] = [];
  for (const raw of text.split("\n")) {
    const match = /^\s*message\s+(\w+)\s*\{/.exec(stripComment(raw).code);
    if (match) names.push(match[1]);
  }
  return names;
}

/** The `//` comment right above each message of a `.proto` file's text, joined with spaces. */
export function parseMessageComments(text: string): Map<string, string> {
  const comments = new Map<string, string>();
  let lines: string[] = [];
  for (const raw of text.split("\n")) {
    const { code, comment } = stripComment(raw);
    const match = /^\s*message\s+(\w+)\s*\{/.exec(code);
    if (match) comments.set(match[1], lines.join(" "));
    if (code.trim() === "" && comment !== undefined) lines.push(comment);
    else lines = [];
  }
  return comments;
}

/** The comments of every message of `proto/carrier/v1`, by message name. */
export function protoMessageComments(): Map<string, string> {
  const all = new Map<string, string>();
  for (const text of PROTO_FILES.values()) {
    for (const [name, comment] of parseMessageComments(text)) all.set(name, comment);
  }
  return all;
}

/** Every message name defined in `proto/carrier/v1`, with its file. */
export function protoMessages(): Map<string, string> {
  const all = new Map<string, string>();
  for (const [file, text] of PROTO_FILES) {
    for (const name of parseMessageNames(text)) all.set(name, file);
  }
  return all;
}

// ---- the README's protocol tables ----

/** A row of the README's opcode table. */
export interface OpcodeRow {
  opcode: number;
  name: string;
  kind: "request" | "one-way";
  /** The payload message. */
  payload: string;
  /** The ACK data message; "" for an ACK without data; "(no reply)" for a one-way opcode. */
  ack: string;
  /** The NACK data message; "" for a NACK without data; "(no reply)" for a one-way opcode. */
  nack: string;
}

/** The cell a one-way opcode has in its ACK and NACK data columns. */
export const NO_REPLY = "(no reply)";

/** The README's `<!-- opcode-table -->`. */
export function opcodeTable(): OpcodeRow[] {
  const table = markdownTable(README, "<!-- opcode-table", "<!-- /opcode-table -->");
  const expected = ["opcode", "name", "kind", "payload", "ACK data", "NACK data"];
  if (table.header.join("|") !== expected.join("|")) {
    throw new Error(`opcode table header is [${table.header}], expected [${expected}]`);
  }
  return tableRecords(table).map((r) => {
    if (r.kind !== "request" && r.kind !== "one-way") {
      throw new Error(`opcode ${r.opcode}: kind "${r.kind}" is neither request nor one-way`);
    }
    if (!/^\d+$/.test(r.opcode)) throw new Error(`opcode "${r.opcode}" is not a number`);
    return {
      opcode: Number(r.opcode),
      name: r.name,
      kind: r.kind,
      payload: r.payload,
      ack: r["ACK data"],
      nack: r["NACK data"],
    };
  });
}

/** A row of the README's refusal table. */
export interface RefusalRow {
  /** The case id (`shout-stale`). */
  case: string;
  /** An opcode name, `any request` or `application`. */
  opcode: string;
  /** A `NackReason` name without its prefix (`STALE`). */
  reason: string;
  /** When it applies. */
  when: string;
}

/** The README's `<!-- refusal-table -->`. */
export function refusalTable(): RefusalRow[] {
  const table = markdownTable(README, "<!-- refusal-table", "<!-- /refusal-table -->");
  const expected = ["case", "opcode", "reason", "when"];
  if (table.header.join("|") !== expected.join("|")) {
    throw new Error(`refusal table header is [${table.header}], expected [${expected}]`);
  }
  return tableRecords(table).map((r) => ({
    case: r.case,
    opcode: r.opcode,
    reason: r.reason,
    when: r.when,
  }));
}
