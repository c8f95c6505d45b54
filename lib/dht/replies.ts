/**
 * Reading replicas' answers, for the client: which copy of a record to
 * believe, the value a caller gets, the contacts a reply lists, who holds a
 * lock by the NACKs, majorities, and the error for a call that too few
 * replicas took.
 *
 * @module
 */
import { keptRelays } from "../secure/_handshake_payload.ts";
import { sha256 } from "@noble/hashes/sha2.js";
import {
  type LockHeld,
  LockHeldSchema,
  type PeerInfo,
  type Record,
  VersionConflictSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason } from "../../gen/carrier/v1/frame_pb.ts";
import { toHex } from "../_bytes.ts";
import { LockHeldError, QuorumError, VersionConflictError } from "./errors.ts";
import { NackError } from "../errors.ts";
import { formatAddress } from "../identity/address.ts";
import { type Contact, contactOf } from "../overlay/routing_table.ts";
import { isAnnounceable } from "../transport/ip.ts";
import { decodePayload } from "../wire/opcodes.ts";
import type { DhtValue } from "./types.ts";

/**
 * The copy to believe: the newest version among owned (signed) copies and
 * open copies that two replicas agree on; when none qualifies, the newest.
 */
export function chooseRecord(copies: Record[]): Record | undefined {
  if (copies.length === 0) return undefined;
  const groups = new Map<string, { record: Record; count: number }>();
  for (const r of copies) {
    const id = `${r.version}:${toHex(sha256(r.value))}:${toHex(r.owner)}`;
    const group = groups.get(id);
    if (group) group.count++;
    else groups.set(id, { record: r, count: 1 });
  }
  const all = [...groups.values()].sort((a, b) =>
    a.record.version === b.record.version
      ? b.count - a.count
      : (a.record.version < b.record.version ? 1 : -1)
  );
  const trusted = all.find((g) => g.record.owner.length > 0 || g.count >= 2 || copies.length === 1);
  return (trusted ?? all[0]).record;
}

/** What a caller gets: copies, so that changing them cannot change a replica's store. */
export function valueOf(record: Record): DhtValue {
  const value: DhtValue = {
    key: record.key.slice(),
    value: record.value.slice(),
    version: Number(record.version),
  };
  if (record.owner.length > 0) value.owner = formatAddress(record.owner);
  return value;
}

/**
 * The contacts of a FIND_NODE or FIND_VALUE reply: only nodes that accept
 * connections are listed (a reply that lists one that does not, or one
 * without a listen address, has it dropped: it is no replica and cannot be
 * dialed). A wildcard or port-0 address is dropped too (the address rules).
 */
export function contactsOf(peers: readonly PeerInfo[]): Contact[] {
  return peers.map((p) => ({
    p,
    addrs: p.acceptsInbound ? p.listenAddrs.filter(isAnnounceable).slice(0, 4) : [],
    relays: keptRelays(p.relays),
  }))
    .filter(({ p, addrs, relays }) =>
      p.address.length === 32 && (addrs.length > 0 || relays.length > 0)
    )
    .map(({ p, addrs, relays }) =>
      contactOf(p.address, formatAddress(p.address), addrs, 0, relays)
    );
}

/** The `LockHeld` data of the replicas that answered NACK `LOCK_HELD`. */
export function heldBy(results: readonly PromiseSettledResult<unknown>[]): LockHeld[] {
  return results.flatMap((r) =>
    r.status === "rejected" && r.reason instanceof NackError &&
      r.reason.reason === NackReason.LOCK_HELD
      ? [decodePayload(LockHeldSchema, r.reason.data)]
      : []
  );
}

/** The error naming the holder most replicas report (the highest token among them). */
export function lockHeldError(held: readonly LockHeld[]): LockHeldError {
  const top = held.reduce((a, b) => (b.fencingToken > a.fencingToken ? b : a));
  const holder = formatAddress(top.holder);
  return new LockHeldError(
    `The lock is held by ${holder} (token ${top.fencingToken}) for ${top.expiresInMs} ms more`,
    { holder, fencingToken: Number(top.fencingToken), expiresIn: Number(top.expiresInMs) },
  );
}

/** An error's message, or the thrown value as text. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A majority of `n` replicas: ⌊n/2⌋ + 1. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** The error for a call that too few replicas took: the conflict if there was one. */
export function failure(
  results: readonly PromiseSettledResult<unknown>[],
  asked: number,
  what: string,
  needed = 1,
): Error {
  const nacks = results.flatMap((r) =>
    r.status === "rejected" && r.reason instanceof NackError ? [r.reason] : []
  );
  const conflicts = nacks.filter((n) => n.reason === NackReason.VERSION_CONFLICT).flatMap((n) => {
    try {
      return [decodePayload(VersionConflictSchema, n.data)];
    } catch {
      return [];
    }
  });
  if (conflicts.length > 0) {
    const newest = conflicts.reduce((a, b) => (b.currentVersion > a.currentVersion ? b : a));
    const busy = conflicts.every((c) => c.busy);
    return new VersionConflictError(
      busy
        ? `The ${what} lost: another write to version ${newest.currentVersion + 1n} was in progress`
        : `The ${what} lost: the replicas hold version ${newest.currentVersion}`,
      { currentVersion: Number(newest.currentVersion), currentValue: newest.current?.value },
    );
  }
  const refused = nacks.find((n) => n.reason !== NackReason.VERSION_CONFLICT);
  const ok = results.filter((r) => r.status === "fulfilled").length;
  if (refused && ok === 0) return refused;
  return new QuorumError(
    `The ${what} reached ${ok} of ${asked} replicas; ${needed} needed`,
    { cause: results.find((r) => r.status === "rejected")?.reason },
  );
}
