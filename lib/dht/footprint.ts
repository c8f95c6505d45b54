/**
 * What a replica's store holds costs: its own copy of each record and patch
 * (one new buffer each, never a view into a received frame) and the bytes
 * each is counted for against `maxBytes` and a peer's quota, a fixed
 * overhead included.
 *
 * @module
 */
import { create } from "@bufbuild/protobuf";
import {
  ByteSpliceSchema,
  type Patch,
  PatchSchema,
  type Record,
  RecordSchema,
} from "../../gen/carrier/v1/dht_pb.ts";

/**
 * Bytes a held record or a reservation is counted for beyond its own bytes
 * (key, value, owner and signature): the objects that hold it (the entry,
 * the record message, its typed arrays and their buffers, the map slot, the
 * key's hex id and the value's SHA-256), so that `maxBytes` bounds memory
 * even for records of a few bytes. Deno 2.9 (V8) allocates about 550 bytes
 * for them (measured over 50,000 records); this leaves room for other
 * engines and versions.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_ENTRY_OVERHEAD } from "./footprint.ts";
 * import { DhtStore } from "./store.ts";
 * import { createRecord, dhtKey } from "./record.ts";
 * const store = new DhtStore();
 * store.store(createRecord({ key: dhtKey("k"), value: new Uint8Array(10), version: 1 }));
 * assert.equal(store.bytes, DHT_ENTRY_OVERHEAD + 32 + 10); // overhead, key, value
 * ```
 */
export const DHT_ENTRY_OVERHEAD = 1024;

/**
 * Bytes a patch kept in a key's history (or carried by a reservation) is
 * counted for beyond its own bytes (JSON text as UTF-16, splice inserts,
 * hash and signature); each splice adds {@linkcode DHT_SPLICE_OVERHEAD}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_PATCH_OVERHEAD, DHT_SPLICE_OVERHEAD } from "./footprint.ts";
 * assert.ok(DHT_PATCH_OVERHEAD > DHT_SPLICE_OVERHEAD);
 * ```
 */
export const DHT_PATCH_OVERHEAD = 512;

/**
 * Bytes each splice of a kept patch is counted for beyond its insert.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DHT_SPLICE_OVERHEAD } from "./footprint.ts";
 * assert.equal(DHT_SPLICE_OVERHEAD, 256);
 * ```
 */
export const DHT_SPLICE_OVERHEAD = 256;

/**
 * The store's own copy of a record, its bytes in one new buffer (nothing in
 * it is a view into a received frame, and one buffer costs less than four),
 * with `extra` bytes after them for the caller.
 */
export function ownRecord(record: Record, extra = 0): { record: Record; extra: Uint8Array } {
  const parts = [record.key, record.value, record.owner, record.signature];
  const buffer = new Uint8Array(parts.reduce((n, p) => n + p.length, extra));
  let at = 0;
  const [key, value, owner, signature] = parts.map((p) => {
    buffer.set(p, at);
    return buffer.subarray(at, at += p.length);
  });
  const copy = create(RecordSchema, {
    key,
    value,
    version: record.version,
    owner,
    signature,
    ttlMs: record.ttlMs,
  });
  return { record: copy, extra: buffer.subarray(at) };
}

/** The store's own copy of a patch, its bytes in one new buffer. */
export function ownPatch(patch: Patch): Patch {
  const parts = [patch.valueHash, patch.signature, ...patch.splices.map((s) => s.insert)];
  const buffer = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  const [valueHash, signature, ...inserts] = parts.map((p) => {
    buffer.set(p, at);
    return buffer.subarray(at, at += p.length);
  });
  return create(PatchSchema, {
    baseVersion: patch.baseVersion,
    version: patch.version,
    format: patch.format,
    jsonPatch: patch.jsonPatch,
    valueHash,
    signature,
    splices: patch.splices.map((s, i) =>
      create(ByteSpliceSchema, {
        offset: s.offset,
        deleteCount: s.deleteCount,
        insert: inserts[i],
      })
    ),
  });
}

/** Bytes a held record is counted for: its own and the entry's overhead. */
export function recordBytes(record: Record): number {
  return DHT_ENTRY_OVERHEAD + record.key.length + record.value.length + record.owner.length +
    record.signature.length;
}

/** Bytes a kept patch is counted for: its own (JSON text as UTF-16) and the overheads. */
export function patchBytes(patch: Patch): number {
  return DHT_PATCH_OVERHEAD + 2 * patch.jsonPatch.length + patch.valueHash.length +
    patch.signature.length +
    patch.splices.reduce((n, s) => n + DHT_SPLICE_OVERHEAD + s.insert.length, 0);
}
