/**
 * The protocol's messages and enums, generated from `proto/carrier/v1` by
 * protoc-gen-es. Each message comes as a type and an `XxxSchema` descriptor
 * for `create`, `toBinary` and `fromBinary` from `@bufbuild/protobuf`.
 *
 * @module
 */
export * from "../gen/carrier/v1/control_pb.ts";
export * from "../gen/carrier/v1/dht_pb.ts";
export * from "../gen/carrier/v1/frame_pb.ts";
export * from "../gen/carrier/v1/handshake_pb.ts";
export * from "../gen/carrier/v1/messaging_pb.ts";
export * from "../gen/carrier/v1/options_pb.ts";
