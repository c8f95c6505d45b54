/**
 * carrier: peer-to-peer networking for Deno.
 *
 * Nodes are addressed by their Ed25519 public keys, talk over Noise XX
 * encrypted connections and exchange Protobuf frames (schemas in
 * `proto/carrier/v1`). A node speaks to its direct peers (`speak`), shouts
 * to the whole network (`shout`), whispers to any node through others
 * (`whisper`), and shares a Kademlia DHT with versioned records, atomic
 * compare-and-swap, locks and patches (`node.dht`). This module is the
 * whole public API; the protocol is documented in the README.
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
 * import {
 *   createFrame,
 *   encodeFrame,
 *   FrameDecoder,
 *   generateIdentity,
 *   Opcode,
 * } from "@carrier/p2p";
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
export { type BudgetLine, type ResourceBudget, resourceBudget } from "./lib/budget.ts";

export {
  ADDRESS_LENGTH,
  addressEquals,
  assertAddressBytes,
  BASE58_ALPHABET,
  formatAddress,
  MAX_ADDRESS_TEXT_LENGTH,
  parseAddress,
} from "./lib/identity/address.ts";
export {
  assertNodeId,
  bucketIndex,
  compareDistance,
  leadingZeroBits,
  NODE_ID_BITS,
  NODE_ID_LENGTH,
  nodeIdOf,
  xorDistance,
} from "./lib/identity/node_id.ts";
export {
  assertPuzzle,
  assertPuzzleDifficulty,
  DEFAULT_PUZZLE_DIFFICULTY,
  MAX_PUZZLE_DIFFICULTY,
  puzzleHash,
  puzzleWork,
  verifyPuzzle,
} from "./lib/identity/puzzle.ts";
export {
  generateIdentity,
  type GenerateIdentityOptions,
  generateIdentitySync,
  type Identity,
  identityFromSecretKey,
  SECRET_KEY_LENGTH,
  sign,
  SIGNATURE_LENGTH,
  verify,
} from "./lib/identity/keys.ts";
export {
  KEY_FILE_MAGIC,
  KEY_FILE_SIZE,
  loadKeyFile,
  type LoadKeyFileOptions,
  saveKeyFile,
  type SaveKeyFileOptions,
} from "./lib/identity/key_file.ts";

export {
  createFrame,
  decodeFrameMessage,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameFlag,
  type FrameInit,
  type FrameLimitOptions,
  isCompressed,
  MAX_FRAME_SIZE_LIMIT,
} from "./lib/wire/frame.ts";
export {
  APPLICATION_OPCODE_MIN,
  type ApplicationOpcodeInit,
  decodePayload,
  defineOpcode,
  encodePayload,
  Opcode,
  OPCODE_MAX,
  OpcodeRegistry,
  type OpcodeSpec,
} from "./lib/wire/opcodes.ts";
export { PROTOCOL_OPCODES } from "./lib/opcodes.ts";
export {
  CasPhase,
  Compression,
  ConnectionOption,
  DisconnectReason,
  NackReason,
  PatchFormat,
} from "./lib/protocol.ts";

export type {
  ByteStream,
  DialOptions,
  Listener,
  ListenOptions,
  Transport,
} from "./lib/transport/types.ts";
export {
  formatTransportAddress,
  MEMORY_SCHEME,
  parseTransportAddress,
  TCP_SCHEME,
  type TransportAddress,
} from "./lib/transport/address.ts";
export { hostPrefixOf, ipPrefixOf, isLoopback, subnetOf } from "./lib/transport/ip.ts";
export { combineTransports, MultiTransport } from "./lib/transport/multi.ts";
export { formatHostPort, type HostPort, parseHostPort, TcpTransport } from "./lib/transport/tcp.ts";
export {
  DEFAULT_MEMORY_BACKLOG,
  DEFAULT_MEMORY_BUFFER_SIZE,
  MemoryNetwork,
  type MemoryNetworkOptions,
  type MemoryTransport,
  parseMemoryAddress,
} from "./lib/transport/memory.ts";
export {
  type Codec,
  compress,
  COMPRESSION_SETTINGS,
  type CompressionName,
  decompress,
  type DecompressOptions,
  getCodec,
  SUPPORTED_COMPRESSIONS,
} from "./lib/wire/compression.ts";
export { type Clock, ManualClock, systemClock, type TimerHandle } from "./lib/clock.ts";
export {
  DEFAULT_HANDSHAKE_TIMEOUT,
  type HandshakeInfo,
  IDENTITY_SIGNATURE_CONTEXT,
  MAX_PLAINTEXT,
  NOISE_PROTOCOL_NAME,
  PROLOGUE,
  SecureChannel,
  type SecureChannelOptions,
  secureInbound,
  secureOutbound,
} from "./lib/secure/channel.ts";
export { generateX25519KeyPair, type X25519KeyPair } from "./lib/secure/noise.ts";
export {
  chooseCompression,
  type CloseInfo,
  type ConnectionCounters,
  PeerConnection,
  type PeerConnectionOptions,
  type RequestOptions,
  type SendBufferPolicy,
  type SendOptions,
} from "./lib/peer/connection.ts";
export { createNode, Node } from "./lib/node.ts";
export type { NodeOptions } from "./lib/node/options.ts";
export type { Handler, HandlerContext } from "./lib/node/handlers.ts";
export type { ReceiveLock, ReceiveLockOptions } from "./lib/node/receive_lock.ts";
export {
  shout,
  type ShoutCounters,
  type ShoutInit,
  type ShoutOptions,
  type ShoutResult,
  type ShoutService,
} from "./lib/services/shout.ts";
export {
  whisper,
  type WhisperCounters,
  type WhisperInit,
  type WhisperOptions,
  type WhisperResult,
  type WhisperService,
} from "./lib/services/whisper.ts";
export {
  speak,
  type SpeakInit,
  type SpeakOptions,
  type SpeakService,
} from "./lib/services/speak.ts";
export {
  metrics,
  type MetricsInit,
  type MetricsService,
  type NodeMetrics,
} from "./lib/services/metrics.ts";
export {
  type ErrorEventDetail,
  type MessageEventDetail,
  type NodeEventMap,
  type PeerEventDetail,
  TypedEventTarget,
} from "./lib/events.ts";
export type {
  ContactRequestOptions,
  ReceiveContext,
  Service,
  ServiceConnections,
  ServiceFactory,
  ServiceHost,
} from "./lib/services/service.ts";
export {
  type ConnectionManagerOptions,
  type ConnectionStats,
  type ConnectOptions,
  preferConnection,
} from "./lib/swarm/mod.ts";
export {
  formatPeerAddress,
  parsePeerAddress,
  type PeerAddress,
} from "./lib/overlay/peer_address.ts";
export { SeenCache, type SeenCacheOptions } from "./lib/overlay/seen_cache.ts";
export {
  type AddResult,
  type Contact,
  contactOf,
  RoutingTable,
  type RoutingTableOptions,
} from "./lib/overlay/routing_table.ts";
export {
  DEFAULT_MAX_WHISPER_BODY_SIZE,
  DEFAULT_WHISPER_TTL,
  MAX_ENCRYPTED_ENVELOPE_PAYLOAD,
  WHISPER_NOISE_OVERHEAD,
  WHISPER_PROLOGUE,
  WHISPER_SIGNATURE_CONTEXT,
  whisperHash,
} from "./lib/overlay/whisper.ts";
export { sealWhisper, type SealWhisperOptions } from "./lib/overlay/whisper_seal.ts";
export {
  openWhisper,
  type OpenWhisperOptions,
  type WhisperContent,
} from "./lib/overlay/whisper_open.ts";
export {
  x25519PrivateKeyFromEd25519,
  x25519PublicKeyFromEd25519,
} from "./lib/overlay/ed25519_x25519.ts";
export { iterativeLookup, type LookupOptions, type LookupResult } from "./lib/overlay/lookup.ts";
export {
  type BroadcastCandidates,
  type BucketChoice,
  type ForwardTarget,
  nextInBucket,
  type NextInBucketOptions,
  ORIGIN_HEIGHT,
  planForward,
  type PlanForwardOptions,
} from "./lib/overlay/broadcast.ts";
export {
  applyChanges,
  Dht,
  type DhtCallOptions,
  type DhtChange,
  type DhtChanges,
  type DhtGetOptions,
  type DhtHost,
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
export type { DhtStoreOptions } from "./lib/dht/store.ts";
export { DHT_OPCODES, isDhtOpcode } from "./lib/dht/opcodes.ts";
export { dht, type DhtService } from "./lib/services/dht.ts";
export { DEFAULT_MAX_VALUE_SIZE, DHT_KEY_LENGTH, type DhtKey, dhtKey } from "./lib/dht/record.ts";
export {
  applyJsonPatch,
  applyJsonPatchToBytes,
  applySplices,
  DEFAULT_MAX_PATCH_RESULT_SIZE,
  diffBytes,
  diffJson,
  type JsonPatchOperation,
  MAX_JSON_DEPTH,
  MAX_PATCH_OPERATIONS,
  parseJsonPatch,
  type Splice,
} from "./lib/dht/patch.ts";
