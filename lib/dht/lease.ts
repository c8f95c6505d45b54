/**
 * Locks, from the client's side: a lock is granted when a majority of the
 * key's replicas grant it, and its fencing token is the largest they
 * granted, confirmed at that majority in a second round (so tokens strictly
 * increase per key across holders). A lease is timed by the holder's clock
 * from before it asked, so the holder's view ends first. Renewing and
 * releasing go to the replicas that granted it.
 *
 * @module
 */
import { create, toBinary } from "@bufbuild/protobuf";
import {
  LockGrantSchema,
  LockRequestSchema,
  UnlockReplySchema,
  UnlockRequestSchema,
} from "../../gen/carrier/v1/dht_pb.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import type { Clock } from "../clock.ts";
import { NackError } from "../errors.ts";
import { QuorumError } from "./errors.ts";
import type { Contact } from "../overlay/routing_table.ts";
import { decodePayload } from "../wire/opcodes.ts";
import type { Quorum } from "./quorum.ts";
import { failure, heldBy, lockHeldError, majority } from "./replies.ts";
import type { DhtLease } from "./types.ts";

/**
 * Acquires the lock of `key` for `ttl` ms at `replicas`.
 *
 * @throws {LockHeldError} when another node holds it.
 * @throws {QuorumError} when too few replicas answered.
 */
export async function acquire(
  quorum: Quorum,
  clock: Clock,
  key: Uint8Array,
  ttl: number,
  replicas: readonly Contact[],
  signal: AbortSignal,
): Promise<DhtLease> {
  const needed = majority(replicas.length);
  const started = clock.now();
  const request = (min: number) =>
    toBinary(
      LockRequestSchema,
      create(LockRequestSchema, { key, ttlMs: BigInt(ttl), minFencingToken: BigInt(min) }),
    );
  const first = await quorum.sendAll(replicas, Opcode.DHT_LOCK, request(0), signal);
  const granted = replicas.filter((_, i) => first[i].status === "fulfilled");
  if (granted.length >= needed) {
    const grants = first.flatMap((r) =>
      r.status === "fulfilled" ? [decodePayload(LockGrantSchema, r.value)] : []
    );
    const token = Math.max(...grants.map((g) => Number(g.fencingToken)));
    // Second round: the granting majority takes the largest token.
    const second = await quorum.sendAll(granted, Opcode.DHT_LOCK, request(token), signal);
    const confirmed = second.flatMap((r) =>
      r.status === "fulfilled" ? [decodePayload(LockGrantSchema, r.value)] : []
    ).filter((g) => Number(g.fencingToken) === token);
    if (confirmed.length >= needed) {
      const leaseTtl = Math.min(...confirmed.map((g) => Number(g.ttlMs)));
      return { key, fencingToken: token, ttl: leaseTtl, expiresAt: started + leaseTtl };
    }
  }
  // Lost: release what was granted, so that another acquirer can win.
  await release(quorum, key, 0, granted);
  signal.throwIfAborted();
  const held = heldBy(first);
  if (held.length > 0) throw lockHeldError(held);
  throw failure(first, replicas.length, "lock", needed);
}

/**
 * Renews `lease` at `replicas` for `ttl` ms more from now.
 *
 * @throws {LockHeldError} or {@linkcode QuorumError} when the lease was lost.
 */
export async function renew(
  quorum: Quorum,
  clock: Clock,
  lease: DhtLease,
  ttl: number,
  replicas: readonly Contact[],
  signal: AbortSignal,
): Promise<DhtLease> {
  const started = clock.now();
  const payload = toBinary(
    LockRequestSchema,
    create(LockRequestSchema, {
      key: lease.key,
      ttlMs: BigInt(ttl),
      fencingToken: BigInt(lease.fencingToken),
    }),
  );
  const results = await quorum.sendAll(replicas, Opcode.DHT_LOCK, payload, signal);
  const grants = results.flatMap((r) =>
    r.status === "fulfilled" ? [decodePayload(LockGrantSchema, r.value)] : []
  );
  const needed = majority(replicas.length);
  if (grants.length < needed) {
    const held = heldBy(results);
    if (held.length > 0) throw lockHeldError(held);
    const lost = results.some((r) =>
      r.status === "rejected" && r.reason instanceof NackError &&
      r.reason.reason === NackReason.VERSION_CONFLICT
    );
    throw lost
      ? new QuorumError(
        `The lease (token ${lease.fencingToken}) was lost: it lapsed or was released`,
      )
      : failure(results, replicas.length, "renew", needed);
  }
  const leaseTtl = Math.min(...grants.map((g) => Number(g.ttlMs)));
  return { ...lease, ttl: leaseTtl, expiresAt: started + leaseTtl };
}

/**
 * Releases `lease` at `replicas`: whether one still held it.
 *
 * @throws {LockHeldError} when a majority of them say another node holds the lock.
 */
export async function unlock(
  quorum: Quorum,
  lease: DhtLease,
  replicas: readonly Contact[],
  signal: AbortSignal,
): Promise<boolean> {
  const results = await release(quorum, lease.key, lease.fencingToken, replicas, signal);
  const held = heldBy(results);
  if (held.length >= majority(replicas.length)) throw lockHeldError(held);
  return results.some((r) =>
    r.status === "fulfilled" && decodePayload(UnlockReplySchema, r.value).released
  );
}

/** DHT_UNLOCK of token `token` (0: whatever this node holds) at `replicas`, settled. */
function release(
  quorum: Quorum,
  key: Uint8Array,
  token: number,
  replicas: readonly Contact[],
  signal?: AbortSignal,
): Promise<PromiseSettledResult<Uint8Array>[]> {
  const payload = toBinary(
    UnlockRequestSchema,
    create(UnlockRequestSchema, { key, fencingToken: BigInt(token) }),
  );
  return quorum.sendAll(replicas, Opcode.DHT_UNLOCK, payload, signal);
}
