import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { Opcode, OpcodeSchema } from "../../lib/protocol.ts";
import { PingSchema } from "../../lib/protocol.ts";
import { StoreRequestSchema } from "../../lib/protocol.ts";
import { APPLICATION_OPCODE_MIN, decodePayload, OpcodeRegistry } from "../../lib/wire/opcodes.ts";
import { PROTOCOL_OPCODES } from "../../lib/opcodes.ts";
import { OpcodeRegistryError, PayloadDecodeError, UnknownOpcodeError } from "../../lib/errors.ts";

Deno.test("PROTOCOL_OPCODES covers every Opcode in proto/ exactly once", () => {
  const fromProto = OpcodeSchema.values.map((v) => v.number).sort((a, b) => a - b);
  const fromTable = PROTOCOL_OPCODES.map((s) => s.opcode).sort((a, b) => a - b);
  assert.deepEqual(fromTable, fromProto);
  for (const s of PROTOCOL_OPCODES) {
    assert.ok(
      s.opcode < APPLICATION_OPCODE_MIN,
      `${s.name} is in the application range`,
    );
    assert.equal(s.name, Opcode[s.opcode]);
  }
});

Deno.test("OpcodeRegistry registers an application opcode and decodes its payload", () => {
  const registry = new OpcodeRegistry();
  const spec = registry.register(1000, {
    name: "ECHO",
    request: PingSchema,
    reply: PingSchema,
  });
  assert.equal(spec.oneWay, false);
  assert.equal(registry.require(1000).name, "ECHO");
  const bytes = toBinary(
    PingSchema,
    create(PingSchema, { data: new Uint8Array([9]) }),
  );
  const msg = registry.decodeRequest(1000, bytes) as unknown as {
    data: Uint8Array;
  };
  assert.deepEqual([...msg.data], [9]);
  assert.equal(registry.unregister(1000), true);
  assert.equal(registry.get(1000), undefined);
});

Deno.test("OpcodeRegistry refuses reserved values, duplicates and non-uint32 opcodes", () => {
  const registry = new OpcodeRegistry();
  assert.throws(
    () => registry.register(Opcode.PING, { request: PingSchema }),
    (err: unknown) =>
      err instanceof OpcodeRegistryError &&
      err.message ===
        "Cannot register opcode 2: values below 1000 are the protocol's (PING)",
  );
  assert.throws(
    () => registry.register(500, { request: PingSchema }),
    /values below 1000 are the protocol's \(reserved for the protocol\)/,
  );
  registry.register(4242, { request: PingSchema });
  assert.throws(
    () => registry.register(4242, { request: PingSchema }),
    /already registered as APP_4242/,
  );
  for (const bad of [-1, 1.5, 2 ** 32, NaN]) {
    assert.throws(
      () => registry.register(bad, { request: PingSchema }),
      OpcodeRegistryError,
    );
  }
  assert.equal(registry.unregister(Opcode.PING), false);
  assert.ok(registry.get(Opcode.PING));
});

Deno.test("OpcodeRegistry.lookup throws UnknownOpcodeError for an unregistered opcode", () => {
  const registry = new OpcodeRegistry();
  assert.throws(() => registry.require(1001), UnknownOpcodeError);
  assert.throws(
    () => registry.decodeRequest(20, new Uint8Array()),
    /Unknown opcode 20/,
  );
});

Deno.test("decodePayload throws PayloadDecodeError for bytes that do not parse", () => {
  assert.throws(
    () => decodePayload(StoreRequestSchema, new Uint8Array([0x0a, 0x05, 0x01])),
    (err: unknown) =>
      err instanceof PayloadDecodeError &&
      /Cannot decode carrier.v1.StoreRequest payload: 3 bytes are not a carrier.v1.StoreRequest/
        .test(err.message),
  );
});
