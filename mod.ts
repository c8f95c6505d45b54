/**
 * carrier: peer-to-peer networking for Deno.
 *
 * Nodes are addressed by their Ed25519 public keys, talk over Noise XX
 * encrypted connections and exchange Protobuf frames (schemas in
 * `proto/carrier/v1`). A node speaks to its direct peers (`speak`), shouts
 * to the whole network (`shout`), whispers to any node through others
 * (`whisper`), and shares a Kademlia DHT with versioned records, atomic
 * compare-and-swap, locks and patches (`node.dht`). This module is the
 * application's API. `@carrier/p2p/protocol` holds what another
 * implementation, a raw client or a test needs (frames, opcodes, Noise,
 * envelopes), and `@carrier/p2p/testing` the in-memory network and the
 * manual clock; the protocol is documented in the README.
 *
 * @example Quick start: three nodes, one of which only dials out
 * ```ts
 * import assert from "node:assert/strict";
 * import { createNode } from "@carrier/p2p";
 *
 * await using a = await createNode({ listen: ["127.0.0.1:0"] });
 * await using b = await createNode({ listen: ["127.0.0.1:0"] });
 * await using c = await createNode(); // no listener: it only dials out
 * await b.connect(a.peerAddresses[0]); // "ADDRESS@127.0.0.1:PORT"
 * await c.connect(a.peerAddresses[0]);
 * const heard = new Promise<string>((resolve) =>
 *   c.addEventListener("message", (e) => resolve(new TextDecoder().decode(e.detail.body)))
 * );
 *
 * await a.dht.put("greeting", "hello");
 * const found = await c.dht.get("greeting");
 * assert.equal(new TextDecoder().decode(found?.value), "hello");
 * await b.whisper(c.address, "hi c"); // routed through a, encrypted end to end
 * assert.equal(await heard, "hi c");
 * await b.shout("hello, everyone"); // reaches a and c, once each
 * ```
 *
 * @example Identities and frames
 * ```ts
 * import assert from "node:assert/strict";
 * import { generateIdentity, Opcode } from "@carrier/p2p";
 * import { createFrame, encodeFrame, FrameDecoder } from "@carrier/p2p/protocol";
 *
 * const me = await generateIdentity({ difficulty: 4 });
 * console.log(me.address); // base58 of the 32-byte public key
 *
 * const bytes = encodeFrame(createFrame({ opcode: Opcode.PING, id: 1 }));
 * const [frame] = new FrameDecoder().push(bytes);
 * assert.equal(frame.opcode, Opcode.PING);
 * ```
 *
 * @module
 */

export * from "./lib/errors.ts";
export * from "./lib/secure/errors.ts";
export * from "./lib/dht/errors.ts";
export * from "./lib/nat/errors.ts";
export type {
  MappedTransport,
  MappingProtocol,
  MappingRequest,
  NatEventDetail,
  PortMapper,
  PortMapping,
} from "./lib/nat/types.ts";
export type { NatInit } from "./lib/services/nat.ts";
export {
  DEFAULT_RELAY_LIMITS,
  type RelayCounters,
  type RelayInit,
  type RelayLimits,
} from "./lib/services/relay.ts";
export type { RelayHint } from "./lib/secure/_handshake_payload.ts";
export type { HolePunchInit } from "./lib/services/holepunch.ts";
export { aesGcmImplementation } from "./lib/secure/_aes_gcm.ts";
export { NatPmpClient, type NatPmpClientOptions } from "./lib/nat/natpmp.ts";
export { PcpClient, type PcpClientOptions } from "./lib/nat/pcp.ts";
export {
  UpnpClient,
  type UpnpClientOptions,
  type UpnpDiscoverOptions,
  type UpnpService,
} from "./lib/nat/upnp.ts";
export { defaultGateway, type DefaultGatewayOptions } from "./lib/nat/gateway.ts";
export {
  type SsdpResponse,
  ssdpSearch,
  type SsdpSearchOptions,
  type SsdpSearchResult,
} from "./lib/nat/ssdp.ts";
export {
  type GatewayReport,
  probeGateway,
  type ProbeGatewayOptions,
  type ProtocolReport,
} from "./lib/nat/probe.ts";
export { type BudgetLine, type ResourceBudget, resourceBudget } from "./lib/budget.ts";
export { addressEquals, formatAddress, parseAddress } from "./lib/identity/address.ts";
export { nodeIdOf } from "./lib/identity/node_id.ts";
export { DEFAULT_PUZZLE_DIFFICULTY } from "./lib/identity/puzzle.ts";
export {
  generateIdentity,
  type GenerateIdentityOptions,
  generateIdentitySync,
  type Identity,
  identityFromSecretKey,
  sign,
  verify,
} from "./lib/identity/keys.ts";
export {
  loadKeyFile,
  type LoadKeyFileOptions,
  saveKeyFile,
  type SaveKeyFileOptions,
} from "./lib/identity/key_file.ts";
export type { Frame } from "./lib/wire/frame.ts";
export {
  APPLICATION_OPCODE_MIN,
  type ApplicationOpcodeInit,
  defineOpcode,
  Opcode,
  type OpcodeRegistry,
  type OpcodeSpec,
} from "./lib/wire/opcodes.ts";
export { DisconnectReason, NackReason } from "./lib/protocol.ts";
export type {
  ByteStream,
  DialOptions,
  Listener,
  ListenOptions,
  Transport,
} from "./lib/transport/types.ts";
export {
  formatTransportAddress,
  parseTransportAddress,
  type TransportAddress,
} from "./lib/transport/address.ts";
export { TcpTransport } from "./lib/transport/tcp.ts";
export type { CompressionName } from "./lib/wire/compression.ts";
export { type Clock, systemClock, type TimerHandle } from "./lib/clock.ts";
export type { HandshakeInfo, SecureChannel } from "./lib/secure/channel.ts";
export type {
  CloseInfo,
  ConnectionCounters,
  PeerConnection,
  PeerConnectionOptions,
  RequestOptions,
  SendBufferPolicy,
  SendOptions,
} from "./lib/peer/connection.ts";
export { createNode, Node } from "./lib/node.ts";
export type { NodeOptions } from "./lib/node/options.ts";
export type { Handler, HandlerContext } from "./lib/node/handlers.ts";
export type { ReceiveLock, ReceiveLockOptions } from "./lib/node/receive_lock.ts";
export type { ShoutCounters, ShoutOptions, ShoutResult } from "./lib/services/shout.ts";
export type { WhisperCounters, WhisperOptions, WhisperResult } from "./lib/services/whisper.ts";
export type { SpeakOptions } from "./lib/services/speak.ts";
export type { NodeMetrics } from "./lib/services/metrics.ts";
export {
  type ErrorEventDetail,
  type HolePunchEventDetail,
  type MessageEventDetail,
  type NodeEventMap,
  type PathEventDetail,
  type PeerEventDetail,
  type RelaysEventDetail,
  TypedEventTarget,
} from "./lib/events.ts";
export type {
  ContactRequestOptions,
  ReceiveContext,
  Service,
  ServiceConnections,
  ServiceFactory,
  ServiceHost,
} from "./lib/service.ts";
export type { ConnectionManagerOptions, ConnectionStats } from "./lib/swarm/mod.ts";
export {
  AddressBook,
  type AddressBookOptions,
  type AddressChange,
  type AddressSnapshot,
  type Reachability,
} from "./lib/swarm/addresses.ts";
export {
  formatPeerAddress,
  parsePeerAddress,
  type PeerAddress,
} from "./lib/overlay/peer_address.ts";
export type {
  AddResult,
  Contact,
  RoutingTable,
  RoutingTableOptions,
} from "./lib/overlay/routing_table.ts";
export type { LookupResult } from "./lib/overlay/lookup.ts";
export {
  applyChanges,
  Dht,
  type DhtCallOptions,
  type DhtChange,
  type DhtChanges,
  type DhtGetOptions,
  type DhtLease,
  type DhtLockOptions,
  type DhtLookup,
  type DhtOptions,
  type DhtPatch,
  type DhtPutOptions,
  type DhtValue,
  type DhtWriteOptions,
  type DhtWriteResult,
} from "./lib/dht/dht.ts";
export type { DhtStoreOptions } from "./lib/dht/defaults.ts";
export { DEFAULT_MAX_VALUE_SIZE, type DhtKey, dhtKey } from "./lib/dht/record.ts";
export { diffBytes, diffJson, type JsonPatchOperation, type Splice } from "./lib/dht/patch.ts";
