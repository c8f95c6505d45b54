/**
 * The protocol's generated messages and enums (from `proto/carrier/v1` by
 * protoc-gen-es): the one place outside `lib/`'s own modules that reaches
 * into `gen/`. `mod.ts` re-exports only the enums; the message schemas are
 * here for the layers of `lib/` and for tests.
 *
 * @module
 */
export * from "../gen/carrier/v1/addresses_pb.ts";
export * from "../gen/carrier/v1/control_pb.ts";
export * from "../gen/carrier/v1/dht_pb.ts";
export * from "../gen/carrier/v1/frame_pb.ts";
export * from "../gen/carrier/v1/handshake_pb.ts";
export * from "../gen/carrier/v1/holepunch_pb.ts";
export * from "../gen/carrier/v1/messaging_pb.ts";
export * from "../gen/carrier/v1/options_pb.ts";
export * from "../gen/carrier/v1/relay_pb.ts";
