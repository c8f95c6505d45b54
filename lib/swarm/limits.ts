/**
 * The connection manager's defaults, one named constant each, for the layers
 * that repeat them (the node, its resource budget, the docs).
 *
 * @module
 */

/** The connection limits' defaults (see `ConnectionManagerOptions`). */
export const CONNECTION_LIMITS = {
  maxOutbound: 8,
  maxInbound: 64,
  maxInboundPerIp: 8,
  maxPendingHandshakes: 16,
  maxPendingHandshakesPerIp: 4,
} as const;

/** Default of `ConnectionManagerOptions.dialTimeout`: time for a dial (TCP connect), in ms. */
export const DEFAULT_DIAL_TIMEOUT = 5_000;

/** Default of `ConnectionManagerOptions.ephemeralIdleTimeout`: idle time before a short-lived connection closes, in ms. */
export const DEFAULT_EPHEMERAL_IDLE_TIMEOUT = 10_000;

/** Default of `ConnectionManagerOptions.reconnectDelay`: the first redial delay of a persistent peer, in ms. */
export const DEFAULT_RECONNECT_DELAY = 500;

/** Default of `ConnectionManagerOptions.maxReconnectDelay`: the longest redial delay, in ms. */
export const DEFAULT_MAX_RECONNECT_DELAY = 30_000;

/** First delay before listening again on the address of a listener that failed, in ms; it doubles. */
export const LISTEN_RETRY_DELAY = 100;

/** Longest delay before listening again on the address of a listener that keeps failing, in ms. */
export const MAX_LISTEN_RETRY_DELAY = 5_000;

/** How long a relayed connection replaced by a direct one stays open at least, in ms, for the frames already on their way. */
export const MIGRATION_LINGER = 1_000;
