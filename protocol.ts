/**
 * carrier's wire protocol, for another implementation, a raw client or a
 * test: frames and their codec, the opcode table and registry, the enums,
 * compression codecs, the Noise secure channel and its constants, a raw
 * {@linkcode PeerConnection}, WHISPER envelopes, the routing table, the
 * puzzle and NodeId arithmetic, DHT key and patch primitives. Each opcode's
 * Protobuf schemas are on its `OpcodeSpec` in
 * {@linkcode PROTOCOL_OPCODES}; the schemas themselves are `proto/`, from
 * which another implementation generates its own code. An application
 * needs none of this: it uses `@carrier/p2p`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createFrame, encodeFrame, FrameDecoder, Opcode } from "@carrier/p2p/protocol";
 * const bytes = encodeFrame(createFrame({ id: 1, opcode: Opcode.PING }));
 * const [frame] = new FrameDecoder().push(bytes);
 * assert.equal(frame.opcode, Opcode.PING);
 * ```
 *
 * @module
 */
export {
  ADDRESS_LENGTH,
  assertAddressBytes,
  BASE58_ALPHABET,
  MAX_ADDRESS_TEXT_LENGTH,
} from "./lib/identity/address.ts";
export {
  assertNodeId,
  bucketIndex,
  compareDistance,
  leadingZeroBits,
  NODE_ID_BITS,
  NODE_ID_LENGTH,
  xorDistance,
} from "./lib/identity/node_id.ts";
export {
  assertPuzzle,
  assertPuzzleDifficulty,
  MAX_PUZZLE_DIFFICULTY,
  puzzleHash,
  puzzleWork,
  verifyPuzzle,
} from "./lib/identity/puzzle.ts";
export { SECRET_KEY_LENGTH, SIGNATURE_LENGTH } from "./lib/identity/keys.ts";
export { KEY_FILE_MAGIC, KEY_FILE_SIZE } from "./lib/identity/key_file.ts";
export {
  createFrame,
  decodeFrameMessage,
  DEFAULT_MAX_FRAME_SIZE,
  encodeFrame,
  FrameDecoder,
  FrameFlag,
  type FrameInit,
  type FrameLimitOptions,
  isCompressed,
  MAX_FRAME_SIZE_LIMIT,
} from "./lib/wire/frame.ts";
export {
  decodePayload,
  encodePayload,
  LINK_OPCODES,
  Opcode,
  OPCODE_MAX,
  OpcodeRegistry,
  protocolOpcode,
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
export { MEMORY_SCHEME, TCP_SCHEME } from "./lib/transport/address.ts";
export { combineTransports, MultiTransport } from "./lib/transport/multi.ts";
export { formatHostPort, type HostPort, parseHostPort } from "./lib/transport/tcp.ts";
export {
  type Codec,
  compress,
  COMPRESSION_SETTINGS,
  decompress,
  type DecompressOptions,
  getCodec,
  SUPPORTED_COMPRESSIONS,
} from "./lib/wire/compression.ts";
export {
  DEFAULT_HANDSHAKE_TIMEOUT,
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
export { PeerConnection } from "./lib/peer/connection.ts";
export { SHOUT_CONTEXT } from "./lib/services/shout.ts";
export { contactOf, DEFAULT_K, RoutingTable } from "./lib/overlay/routing_table.ts";
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
export { DHT_OPCODES, isDhtOpcode } from "./lib/dht/opcodes.ts";
export { DHT_KEY_LENGTH } from "./lib/dht/record.ts";
export {
  applyJsonPatch,
  applyJsonPatchToBytes,
  applySplices,
  DEFAULT_MAX_PATCH_RESULT_SIZE,
  MAX_JSON_DEPTH,
  MAX_PATCH_OPERATIONS,
  parseJsonPatch,
} from "./lib/dht/patch.ts";
