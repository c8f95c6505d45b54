/**
 * Requests to routing-table contacts: over the open connection, else a
 * short-lived one to where the contact listens; the one retry rule (only a
 * connection that closed under the request is retried) and the one
 * liveness rule (a contact that cannot be reached and is not connected
 * leaves the table). The DHT, SHOUT and WHISPER all ask through this.
 *
 * @module
 */
import {
  ConnectionClosedError,
  ConnectionLimitError,
  DialError,
  NackError,
  NodeClosedError,
} from "../errors.ts";
import type { PeerConnection } from "../peer/connection.ts";
import type { PeerAddress } from "./peer_address.ts";
import type { Contact, RoutingTable } from "./routing_table.ts";

/** The connections a {@linkcode ContactRequester} uses (the node's connection manager). */
export interface ContactDialer {
  /** The open connection to `address`, if any. */
  get(address: string): PeerConnection | undefined;
  /** Whether the connection to `address` is a short-lived one. */
  isEphemeral(address: string): boolean;
  /** Whether a transport of this node dials `transportAddress`. */
  canDial(transportAddress: string): boolean;
  /** Dials `peer` (or returns the open connection). */
  connect(
    peer: PeerAddress,
    options: { signal?: AbortSignal; ephemeral?: boolean },
  ): Promise<PeerConnection>;
}

/** How many of a contact's addresses one reach tries, in order. */
const MAX_ADDRESSES_TRIED = 3;

/** How many times a request whose connection closed under it is sent again. */
const CLOSED_CONNECTION_RETRIES = 2;

/**
 * Reaches contacts and asks them things, with one retry rule and one
 * liveness rule (see the module documentation).
 */
export class ContactRequester {
  readonly #dialer: ContactDialer;
  readonly #table: RoutingTable;
  /**
   * Connects to a contact that accepts no connections through one of its
   * relays (the relay service's); unset, such a contact cannot be reached.
   */
  relayed?: (
    contact: Contact,
    options: { signal?: AbortSignal; ephemeral?: boolean },
  ) => Promise<PeerConnection>;

  /** Creates a requester over `dialer`, keeping `table` live. */
  constructor(dialer: ContactDialer, table: RoutingTable) {
    this.#dialer = dialer;
    this.#table = table;
  }

  /**
   * The connection to `contact`: the open one (unless it is short-lived and
   * the contact listens, so that it cannot close as idle under a request),
   * else a short-lived one to its listen addresses this node can dial, the
   * first that connects of the first three.
   *
   * @throws {DialError} when it is not connected and accepts no connections.
   */
  async reach(
    contact: Contact,
    options: { signal?: AbortSignal; ephemeral?: boolean } = {},
  ): Promise<PeerConnection> {
    const { signal, ephemeral = true } = options;
    const open = this.#dialer.get(contact.address);
    if (open && !this.#dialer.isEphemeral(contact.address)) return open;
    const dialable = contact.listenAddrs.filter((a) => this.#dialer.canDial(a))
      .slice(0, MAX_ADDRESSES_TRIED);
    if (open && dialable.length === 0) return open;
    const relayed = contact.relays?.length && this.relayed ? this.relayed : undefined;
    if (dialable.length === 0 && relayed === undefined) {
      const why = contact.listenAddrs.length === 0
        ? "accepts no connections and names no relay"
        : `listens only where this node cannot dial (${contact.listenAddrs.join(", ")})`;
      throw new DialError(`${contact.address} is not connected and ${why}`);
    }
    // Best first (an external address, then a LAN one, …); the next when one
    // does not connect; its relays when none does.
    for (let i = 0; i < dialable.length; i++) {
      try {
        return await this.#dialer.connect(
          {
            identityKey: contact.identityKey,
            address: contact.address,
            transportAddress: dialable[i],
          },
          { signal, ephemeral },
        );
      } catch (err) {
        // Another address may work where this one did not connect, or reached another node.
        const final = err instanceof ConnectionLimitError || err instanceof NodeClosedError;
        if (signal?.aborted || final || (i === dialable.length - 1 && !relayed)) throw err;
      }
    }
    return await relayed!(contact, { signal, ephemeral });
  }

  /**
   * One request to `contact`; resolves the ACK's data. Sent again (at most
   * twice) only when the connection closed under it (a simultaneous dial
   * replaced it, a short-lived one timed out). A contact that fails for any
   * other reason than a NACK, and is not connected, leaves the routing table.
   *
   * @throws {NackError} when the contact answers NACK.
   */
  async request(
    contact: Contact,
    opcode: number,
    payload: Uint8Array,
    options: { signal?: AbortSignal; timeout?: number } = {},
  ): Promise<Uint8Array> {
    const { signal } = options;
    for (let attempt = 0;; attempt++) {
      try {
        const peer = await this.reach(contact, { signal });
        return await peer.request(opcode, payload, options);
      } catch (err) {
        if (signal?.aborted) throw signal.reason;
        if (err instanceof ConnectionClosedError && attempt < CLOSED_CONNECTION_RETRIES) continue;
        if (!(err instanceof NackError) && !this.#dialer.get(contact.address)) {
          this.#table.remove(contact.address);
        }
        throw err;
      }
    }
  }
}
