/**
 * The protocol's enums, generated from `proto/carrier/v1` by protoc-gen-es,
 * for the layers above `lib/wire` and for users. (Only `lib/` imports `gen/`.)
 *
 * @module
 */
export { Compression, ConnectionOption } from "../gen/carrier/v1/options_pb.ts";
export { DisconnectReason } from "../gen/carrier/v1/control_pb.ts";
export { NackReason } from "../gen/carrier/v1/frame_pb.ts";
