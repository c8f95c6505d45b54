// The values the protocol seed fixes, checked against the generated code.
import assert from "node:assert/strict";
import { Opcode, OpcodeSchema } from "../lib/protocol.ts";
import {
  Compression,
  CompressionSchema,
  ConnectionOption,
  ConnectionOptionSchema,
} from "../lib/protocol.ts";

Deno.test("opcodes keep the protocol seed's values", () => {
  assert.deepEqual(
    {
      ACK: Opcode.ACK,
      NACK: Opcode.NACK,
      PING: Opcode.PING,
      SET_CONNECTION_OPT: Opcode.SET_CONNECTION_OPT,
      SHOUT: Opcode.SHOUT,
      SPEAK: Opcode.SPEAK,
      WHISPER: Opcode.WHISPER,
      FIND_NODE: Opcode.FIND_NODE,
      FIND_VALUE: Opcode.FIND_VALUE,
      STORE: Opcode.STORE,
    },
    {
      ACK: 0,
      NACK: 1,
      PING: 2,
      SET_CONNECTION_OPT: 3,
      SHOUT: 4,
      SPEAK: 5,
      WHISPER: 6,
      FIND_NODE: 7,
      FIND_VALUE: 8,
      STORE: 9,
    },
  );
});

Deno.test("carrier's opcodes stay in their documented ranges", () => {
  for (const { number, name } of OpcodeSchema.values) {
    if (number <= 9) continue;
    const range = number >= 16 && number <= 63
      ? "control"
      : number >= 64 && number <= 127
      ? "dht"
      : "outside";
    assert.notEqual(range, "outside", `${name} = ${number} is outside 16-127`);
    if (range === "dht") assert.match(name, /^OPCODE_DHT_/);
  }
});

Deno.test("connection options and settings keep the protocol seed's values", () => {
  assert.equal(ConnectionOption.COMPRESSION, 0);
  assert.equal(ConnectionOption.PREFERRED_COMPRESSION, 1);
  assert.deepEqual(
    CompressionSchema.values.map((v) => [v.name, v.number]),
    [
      ["COMPRESSION_BZ2", 0],
      ["COMPRESSION_GZIP", 1],
      ["COMPRESSION_LZMA", 2],
      ["COMPRESSION_ZLIB", 3],
      ["COMPRESSION_SNAPPY", 4],
    ],
  );
  assert.equal(Compression.SNAPPY, 4);
  // The seed's two, then carrier's own.
  assert.deepEqual(
    ConnectionOptionSchema.values.map((v) => [v.name, v.number]),
    [
      ["CONNECTION_OPTION_COMPRESSION", 0],
      ["CONNECTION_OPTION_PREFERRED_COMPRESSION", 1],
      ["CONNECTION_OPTION_DISABLE_COMPRESSION", 2],
    ],
  );
});
