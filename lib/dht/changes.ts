/**
 * A key's history, as the client sees it: a patch's wire form
 * ({@linkcode patchMessage}), a replica's DHT_CHANGES reply checked to be a
 * chain from the version asked ({@linkcode readChanges}), and the changes
 * applied to the value they start from ({@linkcode applyChanges}).
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  ByteSpliceSchema,
  ChangesReplySchema,
  type Patch,
  PatchFormat,
  PatchSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { bytesEqual } from "../_bytes.ts";
import { PatchError } from "./errors.ts";
import { decodePayload } from "../wire/opcodes.ts";
import { parseJsonPatch } from "./json_patch.ts";
import { applyPatch, splicesOf } from "./patch.ts";
import { checkRecord } from "./record.ts";
import { valueOf } from "./replies.ts";
import type { DhtChange, DhtChanges, DhtPatch, DhtValue } from "./types.ts";

/**
 * Applies what {@linkcode Dht.changes} returned to the value at the version
 * asked: the whole value when it was sent, else each patch in turn, checking
 * that each produces the value its hash names.
 *
 * @throws {PatchError} when a patch does not apply or its result differs.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { applyChanges, dhtKey } from "@carrier/p2p";
 * const key = dhtKey("doc");
 * const base = { key, value: new TextEncoder().encode('{"n":1}'), version: 1 };
 * assert.equal(applyChanges(base, { currentVersion: 1, changes: [] }), base);
 * ```
 */
export function applyChanges(
  base: DhtValue | undefined,
  changes: DhtChanges,
  maxSize = Number.MAX_SAFE_INTEGER,
): DhtValue | undefined {
  if (changes.value) return changes.value;
  if (changes.changes.length === 0) return base;
  if (!base) throw new PatchError("Changes need the value they start from");
  let value = base.value;
  let version = base.version;
  for (const change of changes.changes) {
    if (change.baseVersion !== version) {
      throw new PatchError(`Change from version ${change.baseVersion} does not follow ${version}`);
    }
    value = applyPatch(value, patchMessage(change.patch, change.baseVersion), maxSize);
    if (!bytesEqual(sha256(value), change.valueHash)) {
      throw new PatchError(`Change to version ${change.version} produced another value`);
    }
    version = change.version;
  }
  return { ...base, value, version };
}

/** The wire form of a patch (hash and signature left empty). */
export function patchMessage(patch: DhtPatch, baseVersion: number): Patch {
  const version = BigInt(baseVersion + 1);
  if ("json" in patch) {
    return create(PatchSchema, {
      baseVersion: BigInt(baseVersion),
      version,
      format: PatchFormat.JSON_PATCH,
      jsonPatch: JSON.stringify(patch.json),
    });
  }
  return create(PatchSchema, {
    baseVersion: BigInt(baseVersion),
    version,
    format: PatchFormat.BYTE_SPLICE,
    splices: patch.splices.map((s) =>
      create(ByteSpliceSchema, {
        offset: BigInt(s.offset),
        deleteCount: BigInt(s.deleteCount),
        insert: s.insert,
      })
    ),
  });
}

/** A replica's DHT_CHANGES reply, checked: a chain from `since` to its current version. */
export function readChanges(
  key: Uint8Array,
  since: number,
  data: Uint8Array,
): DhtChanges | undefined {
  let reply;
  try {
    reply = decodePayload(ChangesReplySchema, data);
  } catch {
    return undefined;
  }
  const currentVersion = Number(reply.currentVersion);
  if (reply.record) {
    try {
      checkRecord(reply.record);
    } catch {
      return undefined;
    }
    if (!bytesEqual(reply.record.key, key) || reply.record.version !== reply.currentVersion) {
      return undefined;
    }
    return { currentVersion, changes: [], value: valueOf(reply.record) };
  }
  const changes: DhtChange[] = [];
  let version = since;
  for (const p of reply.patches) {
    if (Number(p.baseVersion) !== version || p.version <= p.baseVersion) return undefined;
    let patch: DhtPatch;
    try {
      patch = p.format === PatchFormat.JSON_PATCH
        ? { json: parseJsonPatch(p.jsonPatch) }
        : { splices: splicesOf(p.splices) };
    } catch {
      return undefined; // a replica's malformed patch
    }
    changes.push({
      baseVersion: Number(p.baseVersion),
      version: Number(p.version),
      patch,
      valueHash: p.valueHash,
    });
    version = Number(p.version);
  }
  if (changes.length > 0 && version !== currentVersion) return undefined;
  return { currentVersion, changes };
}
