/**
 * The node's resource budget in one place: every bound on what peers can
 * make a node hold (connections, pending handshakes, frames in hand, send
 * buffers, seen-caches, the DHT store, reservations, leases), with its
 * value, the share one peer or one IP address gets of it, and the memory it
 * can hold at most. The values come from the options the node runs with and
 * the defaults of the layers that enforce them, so the budget and the
 * limits cannot drift apart. `carrier run --help` and its `limits` command
 * print it; the README states it.
 *
 * The memory figures are upper bounds of what each resource can pin, from
 * the sizes the layers allow (a frame, a reply, a record) plus a fixed
 * overhead per item measured on Deno 2.9; the total is their sum with every
 * connection slot taken. It does not count the application's own requests
 * (`maxPendingRequests` of this node's, ephemeral lookup connections) or
 * what an application handler keeps.
 *
 * @module
 */
import { DEFAULT_MAX_VALUE_SIZE } from "./dht/record.ts";
import { DHT_STORE_LIMITS } from "./dht/defaults.ts";
import type { NodeOptions } from "./node/options.ts";
import { DEFAULT_K } from "./overlay/routing_table.ts";
import { SHOUT_DEFAULTS } from "./services/shout.ts";
import { CONNECTION_LIMITS } from "./swarm/mod.ts";
import { PEER_CONNECTION_LIMITS } from "./peer/connection.ts";
import { MAX_MESSAGE_LENGTH } from "./secure/noise.ts";
import { DEFAULT_MAX_FRAME_SIZE } from "./wire/frame.ts";

/**
 * The node's own bounds: what its caches remember at most, and the default
 * of `maxHeldMessages`.
 */
export const NODE_LIMITS = {
  /** Frames held per peer locked by receive-then-lock. */
  maxHeldMessages: 256,
  /** Entries of each seen-cache (SPEAK, WHISPER, WHISPER relayed). */
  seenEntries: 16_384,
  /** SHOUT ids remembered, with the height forwarded. */
  shoutIds: 65_536,
  /** Origins whose SHOUT rate is tracked at once. */
  shoutOrigins: 4_096,
} as const;

/**
 * One bounded resource.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type BudgetLine, resourceBudget } from "@carrier/p2p";
 * const line: BudgetLine = resourceBudget().lines[0];
 * assert.equal(line.option, "maxInbound");
 * ```
 */
export interface BudgetLine {
  /** What is bounded. */
  resource: string;
  /** The option that sets it (`dht.` for the DHT's, `connection.` for each connection's). */
  option: string;
  /** Its value. */
  limit: number;
  /** The share of one peer, where it has one. */
  perPeer?: number;
  /** The share of one IP address (an IPv6 /64; loopback exempt unless `limitLoopback`). */
  perIp?: number;
  /** Bytes it can pin at most, in all. */
  bytes: number;
  /** How the bound is kept, and what happens past it. */
  note: string;
}

/**
 * The budget: its lines and the bytes they add up to.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ResourceBudget, resourceBudget } from "@carrier/p2p";
 * const budget: ResourceBudget = resourceBudget({ maxInbound: 8 });
 * assert.equal(budget.totalBytes, budget.lines.reduce((sum, l) => sum + l.bytes, 0));
 * ```
 */
export interface ResourceBudget {
  /** Every bounded resource. */
  lines: BudgetLine[];
  /** The sum of `bytes`: what peers can make the node hold at most. */
  totalBytes: number;
}

/** Bytes of an open connection with nothing in flight (measured: 43 KiB idle, bench:peers). */
const CONNECTION_OVERHEAD = 48 * 1024;
/** A built-in reply at its largest: a FIND_VALUE with a value at the limit and k peers. */
const REPLY_OVERHEAD = 8 * 1024;
/** Bytes of a remembered id in a seen-cache or map, with its key string (measured). */
const SEEN_ENTRY = 160;
/** Bytes of a routing-table contact with its addresses (measured). */
const CONTACT = 512;
/** Bytes of a lock's state when the store remembers it. */
const LOCK_ENTRY = 256;

/**
 * The resource budget of a node created with `options`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { resourceBudget } from "@carrier/p2p";
 * const budget = resourceBudget();
 * const inbound = budget.lines.find((l) => l.option === "maxInbound")!;
 * assert.deepEqual([inbound.limit, inbound.perIp], [64, 8]);
 * assert(budget.totalBytes < 1024 * 1024 * 1024); // under 1 GiB with the defaults
 * ```
 */
export function resourceBudget(options: NodeOptions = {}): ResourceBudget {
  const c = options.connection ?? {};
  const dht = options.dht ?? {};
  const maxInbound = options.maxInbound ?? CONNECTION_LIMITS.maxInbound;
  const maxOutbound = options.maxOutbound ?? CONNECTION_LIMITS.maxOutbound;
  const pending = options.maxPendingHandshakes ?? CONNECTION_LIMITS.maxPendingHandshakes;
  const maxFrame = options.maxFrameSize ?? DEFAULT_MAX_FRAME_SIZE;
  const sendBuffer = c.maxSendBuffer ?? PEER_CONNECTION_LIMITS.maxSendBuffer;
  const inHand = c.maxInboundRequests ?? PEER_CONNECTION_LIMITS.maxInboundRequests;
  const maxValue = dht.maxValueSize ?? DEFAULT_MAX_VALUE_SIZE;
  const held = options.maxHeldMessages ?? NODE_LIMITS.maxHeldMessages;
  const k = options.k ?? DEFAULT_K;
  const connections = maxInbound + maxOutbound;
  const reply = maxValue + REPLY_OVERHEAD;
  const storeBytes = dht.maxBytes ?? DHT_STORE_LIMITS.maxBytes;
  const maxLocks = dht.maxLocks ?? DHT_STORE_LIMITS.maxLocks;
  const lines: BudgetLine[] = [
    {
      resource: "inbound connections",
      option: "maxInbound",
      limit: maxInbound,
      perIp: options.maxInboundPerIp ?? CONNECTION_LIMITS.maxInboundPerIp,
      bytes: maxInbound * CONNECTION_OVERHEAD,
      note: "full: a new peer evicts the longest idle one of the largest subnet",
    },
    {
      resource: "outbound connections (ℓ)",
      option: "maxOutbound",
      limit: maxOutbound,
      bytes: maxOutbound * CONNECTION_OVERHEAD,
      note: "this node's own dials; a dial over it fails with ConnectionLimitError",
    },
    {
      resource: "pending inbound handshakes",
      option: "maxPendingHandshakes",
      limit: pending,
      perIp: options.maxPendingHandshakesPerIp ?? CONNECTION_LIMITS.maxPendingHandshakesPerIp,
      bytes: pending * (CONNECTION_OVERHEAD + 2 * MAX_MESSAGE_LENGTH),
      note: "full: a new socket evicts the oldest; each has handshakeTimeout (10 s)",
    },
    {
      resource: "send buffer, per connection",
      option: "connection.maxSendBuffer",
      limit: sendBuffer,
      perPeer: sendBuffer,
      bytes: connections * (sendBuffer + maxFrame),
      note: "full: a sender waits (or gets SendBufferFullError); a write stuck 30 s closes",
    },
    {
      resource: "writes handed to the channel, per connection",
      option: "(fixed)",
      limit: PEER_CONNECTION_LIMITS.writesInFlight,
      perPeer: PEER_CONNECTION_LIMITS.writesInFlight,
      bytes: connections * PEER_CONNECTION_LIMITS.writesInFlight,
      note: "two batches of 16 Noise messages, plaintext and ciphertext, beyond the send buffer",
    },
    {
      resource: "frames in hand, per connection",
      option: "connection.maxInboundRequests",
      limit: inHand,
      perPeer: inHand,
      bytes: connections * (inHand + 1) * reply,
      note: "at the bound, or while a reply waits for room, the peer is not read",
    },
    {
      resource: "frame being received, per connection",
      option: "maxFrameSize",
      limit: maxFrame,
      perPeer: maxFrame,
      bytes: connections * (maxFrame + 2 * MAX_MESSAGE_LENGTH),
      note: "a larger frame closes the connection; decompression is bounded likewise",
    },
    {
      resource: "frames held while a peer is locked",
      option: "maxHeldMessages",
      limit: held,
      perPeer: held,
      bytes: 0,
      note:
        `only while the application holds a receive-lock: ${held} × maxFrameSize per locked peer`,
    },
    {
      resource: "SHOUTs from one peer per second",
      option: "maxShoutsPerPeerPerSecond",
      limit: options.maxShoutsPerPeerPerSecond ?? SHOUT_DEFAULTS.maxPerPeerPerSecond,
      perPeer: options.maxShoutsPerPeerPerSecond ?? SHOUT_DEFAULTS.maxPerPeerPerSecond,
      bytes: 0,
      note: "paced, not refused: the peer's frames wait in hand, then unread",
    },
    {
      resource: "SHOUT ids and origin rates remembered",
      option: "(fixed)",
      limit: NODE_LIMITS.shoutIds + NODE_LIMITS.shoutOrigins,
      bytes: (NODE_LIMITS.shoutIds + NODE_LIMITS.shoutOrigins) * SEEN_ENTRY,
      note: "oldest forgotten first; maxShoutAge (10 min) outlives a forgotten replay",
    },
    {
      resource: "SPEAK and WHISPER ids remembered",
      option: "(fixed)",
      limit: 3 * NODE_LIMITS.seenEntries,
      bytes: 3 * NODE_LIMITS.seenEntries * SEEN_ENTRY,
      note: "three seen-caches (SPEAK, WHISPER delivered, and the WHISPERs relayed in flight, " +
        "which work in hand bounds); oldest forgotten first",
    },
    {
      resource: "routing-table contacts",
      option: "k",
      limit: k * 256 * 2,
      bytes: k * 256 * 2 * CONTACT,
      note: "k per bucket and k replacements; a per-subnet share outside loopback",
    },
    {
      resource: "DHT records and reservations",
      option: "dht.maxBytes",
      limit: storeBytes,
      perPeer: dht.maxBytesPerPeer ?? DHT_STORE_LIMITS.maxBytesPerPeer,
      bytes: storeBytes,
      note: `at most dht.maxRecords (${
        dht.maxRecords ?? DHT_STORE_LIMITS.maxRecords
      }); full: the farthest key goes for a closer one`,
    },
    {
      resource: "DHT reservations (prepared writes)",
      option: "dht.maxReservationsPerPeer",
      limit: dht.maxRecords ?? DHT_STORE_LIMITS.maxRecords,
      perPeer: dht.maxReservationsPerPeer ?? DHT_STORE_LIMITS.maxReservationsPerPeer,
      bytes: 0,
      note: "counted in dht.maxBytes and dht.maxRecords; each lapses after 5 s",
    },
    {
      resource: "DHT locks (leases and remembered tokens)",
      option: "dht.maxLocks",
      limit: maxLocks,
      perPeer: dht.maxLocksPerPeer ?? DHT_STORE_LIMITS.maxLocksPerPeer,
      bytes: maxLocks * LOCK_ENTRY,
      note: "over a peer's share: NACK RATE_LIMITED; a token is never granted twice",
    },
  ];
  return { lines, totalBytes: lines.reduce((sum, line) => sum + line.bytes, 0) };
}
