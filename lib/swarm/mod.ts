/**
 * The swarm: the connection manager over the node's transports (listening,
 * dialing, the handshake, the connection limits, one connection per pair,
 * redials), in `manager.ts`, `admission.ts`, `redial.ts` and `prefer.ts`.
 *
 * @module
 */
export { ConnectionManager } from "./manager.ts";
export {
  AddressBook,
  type AddressBookOptions,
  type AddressSnapshot,
  type Reachability,
} from "./addresses.ts";
export type { ConnectionManagerOptions, ConnectionStats, ConnectOptions } from "./options.ts";
export {
  CONNECTION_LIMITS,
  DEFAULT_DIAL_TIMEOUT,
  DEFAULT_EPHEMERAL_IDLE_TIMEOUT,
  DEFAULT_MAX_RECONNECT_DELAY,
  DEFAULT_RECONNECT_DELAY,
  LISTEN_RETRY_DELAY,
  MAX_LISTEN_RETRY_DELAY,
} from "./limits.ts";
export { preferConnection } from "./prefer.ts";
