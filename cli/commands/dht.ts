/**
 * `dht get|put|cas|lock|unlock|patch|changes`: the DHT's values,
 * compare-and-swap, locks and patches.
 *
 * @module
 */
import type { DhtChange, Splice } from "../../mod.ts";
import { parseJsonPatch } from "../../protocol.ts";
import { EXIT_CODES, UsageError } from "../errors.ts";
import type { NodeCommand, NodeCommandGroup, Outcome } from "../node_command.ts";
import {
  defaultedInteger,
  flagOf,
  keyOf,
  optionalInteger,
  type OptionSpecs,
  type Parsed,
  textOf,
} from "../options.ts";
import { bytesFields, hex, shown } from "../output.ts";
import { lockNodeCommand, unlockNodeCommand } from "./dht_lock.ts";

/** The options of the DHT's writes. */
const WRITE_OPTIONS: OptionSpecs = {
  owned: {
    type: "boolean",
    help: "sign the record as this node's: replicas then refuse other writers",
  },
  ttl: {
    type: "string",
    value: "MS",
    help: "time to live at the replicas",
    otherwise: "theirs, 1 hour",
  },
};

const get: NodeCommand = {
  summary: "read KEY's value",
  synopsis: "KEY",
  options: {},
  prepare(parsed) {
    const key = keyOf(parsed, 1);
    return {
      routesItself: true,
      async run(node, signal) {
        const found = await node.dht.get(key, { signal });
        if (!found) {
          return {
            fields: { key, found: false },
            text: `${key}: not found (no replica holds a value)`,
            exitCode: EXIT_CODES.FAILURE,
          };
        }
        const value = bytesFields("value", found.value);
        return {
          fields: {
            key,
            found: true,
            version: found.version,
            ...value,
            ...(found.owner === undefined ? {} : { owner: found.owner }),
          },
          text: `${key} = ${shown(value)} (version ${found.version}${
            found.owner === undefined ? "" : `, owned by ${found.owner}`
          })`,
        };
      },
    };
  },
};

const put: NodeCommand = {
  summary: "write VALUE under KEY (the highest version wins)",
  synopsis: "KEY [--version N] [--owned] [--ttl MS] VALUE",
  options: {
    version: {
      type: "string",
      value: "N",
      help: "the version to write",
      otherwise: "one above the highest found",
    },
    ...WRITE_OPTIONS,
  },
  prepare(parsed) {
    const key = keyOf(parsed);
    const value = new TextEncoder().encode(textOf(parsed, 1, "VALUE"));
    const version = optionalInteger(parsed, "version", 1);
    const options = writeOptions(parsed);
    return {
      routesItself: true,
      async run(node, signal) {
        const written = await node.dht.put(key, value, { ...options, version, signal });
        return writeOutcome(key, written);
      },
    };
  },
};

const cas: NodeCommand = {
  summary: "write VALUE under KEY only if KEY is at version --expect (0: no value yet)",
  synopsis: "KEY --expect N [--owned] [--ttl MS] VALUE",
  options: {
    expect: {
      type: "string",
      value: "N",
      help: "the version KEY must be at (required; 0: no value yet)",
    },
    ...WRITE_OPTIONS,
  },
  prepare(parsed) {
    const key = keyOf(parsed);
    const value = new TextEncoder().encode(textOf(parsed, 1, "VALUE"));
    const expected = optionalInteger(parsed, "expect", 0);
    if (expected === undefined) throw new UsageError("--expect N is required");
    const options = writeOptions(parsed);
    return {
      routesItself: true,
      async run(node, signal) {
        const written = await node.dht.cas(key, value, expected, { ...options, signal });
        return writeOutcome(key, written);
      },
    };
  },
};

const patch: NodeCommand = {
  summary: "patch KEY's value at version --base: a JSON Patch (RFC 6902), or --splices",
  synopsis: "KEY --base N [--splices] [--owned] [--ttl MS] PATCH",
  options: {
    base: {
      type: "string",
      value: "N",
      help: "the version the patch applies to (required)",
    },
    splices: {
      type: "boolean",
      help: 'PATCH is [{"offset":N,"deleteCount":N,"insert":"text"},...] (byte splices)',
    },
    ...WRITE_OPTIONS,
  },
  prepare(parsed) {
    const key = keyOf(parsed);
    const text = textOf(parsed, 1, "PATCH");
    const base = optionalInteger(parsed, "base", 1);
    if (base === undefined) throw new UsageError("--base N is required");
    const patch = flagOf(parsed, "splices")
      ? { splices: parseSplices(text) }
      : { json: parseJsonPatch(text) };
    const options = writeOptions(parsed);
    return {
      routesItself: true,
      async run(node, signal) {
        const written = await node.dht.patch(key, patch, base, { ...options, signal });
        return writeOutcome(key, written);
      },
    };
  },
};

const changes: NodeCommand = {
  summary: "list the changes to KEY since version --since",
  synopsis: "KEY [--since N]",
  options: {
    since: { type: "string", value: "N", help: "the version to start from", default: "0" },
  },
  prepare(parsed) {
    const key = keyOf(parsed, 1);
    const since = defaultedInteger(parsed, "since", 0);
    return {
      routesItself: true,
      async run(node, signal) {
        const found = await node.dht.changes(key, since, { signal });
        const changes = found.changes.map(changeFields);
        const value = found.value === undefined ? undefined : {
          version: found.value.version,
          ...bytesFields("value", found.value.value),
        };
        const lines = [
          `${key}: version ${found.currentVersion}; ${changes.length} ${
            changes.length === 1 ? "change" : "changes"
          } since ${since}${value ? `; whole value: ${shown(value)}` : ""}`,
          ...changes.map((c) => `  ${c.baseVersion} -> ${c.version}  ${JSON.stringify(c.patch)}`),
        ];
        return {
          fields: {
            key,
            currentVersion: found.currentVersion,
            changes,
            ...(value ? { value } : {}),
          },
          text: lines.join("\n"),
        };
      },
    };
  },
};

/** The node commands `dht get|put|cas|lock|unlock|patch|changes`; `carrier dht …` are their one-shot forms. */
export const dhtNodeCommands: NodeCommandGroup = {
  summary: "the DHT: values, compare-and-swap, locks, patches",
  subcommands: {
    get,
    put,
    cas,
    lock: lockNodeCommand,
    unlock: unlockNodeCommand,
    patch,
    changes,
  },
};

function writeOptions(parsed: Parsed): { owned: boolean; ttl?: number } {
  const ttl = optionalInteger(parsed, "ttl", 1);
  return { owned: flagOf(parsed, "owned"), ...(ttl === undefined ? {} : { ttl }) };
}

function writeOutcome(key: string, written: { version: number; replicas: number }): Outcome {
  return {
    fields: { key, version: written.version, replicas: written.replicas },
    text: `wrote ${key} version ${written.version} at ${written.replicas} ${
      written.replicas === 1 ? "replica" : "replicas"
    }`,
  };
}

/** `[{"offset":N,"deleteCount":N,"insert":"text"},...]` as splices. */
function parseSplices(text: string): Splice[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--splices: PATCH is not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(parsed)) throw new UsageError("--splices: PATCH must be a JSON array");
  return parsed.map((s, i) => {
    const { offset, deleteCount = 0, insert = "" } = (s ?? {}) as Record<string, unknown>;
    if (
      typeof s !== "object" || !Number.isSafeInteger(offset) ||
      !Number.isSafeInteger(deleteCount) || typeof insert !== "string"
    ) {
      throw new UsageError(
        `--splices: splice ${i} must be {"offset":N,"deleteCount":N,"insert":"text"}, got ${
          JSON.stringify(s)
        }`,
      );
    }
    return {
      offset: offset as number,
      deleteCount: deleteCount as number,
      insert: new TextEncoder().encode(insert),
    };
  });
}

/** A change as JSON: splices' inserted bytes as text (or base64). */
function changeFields(change: DhtChange): {
  baseVersion: number;
  version: number;
  patch: unknown;
  valueHash: string;
} {
  const patch = "json" in change.patch ? { json: change.patch.json } : {
    splices: change.patch.splices.map((s) => ({
      offset: s.offset,
      deleteCount: s.deleteCount,
      ...bytesFields("insert", s.insert),
    })),
  };
  return {
    baseVersion: change.baseVersion,
    version: change.version,
    patch,
    valueHash: hex(change.valueHash),
  };
}
