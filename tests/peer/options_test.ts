// Connection options, id 0 and replies over the asker's max_frame_size, as the
// README's Protocol section ("Frames", "Connection options") specifies them.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { NackError } from "../../lib/errors.ts";
import { NackReason, Opcode } from "../../gen/carrier/v1/frame_pb.ts";
import {
  Compression,
  ConnectionOption,
  SetConnectionOptSchema,
} from "../../gen/carrier/v1/options_pb.ts";
import { peers } from "./_pair.ts";
import { ArgumentError } from "../../lib/errors.ts";

const APP = 1000;

/** 40 KiB that every compression shrinks a lot. */
const compressible = new Uint8Array(40 * 1024).fill(7);

/** A request whose handler echoes the payload back: a large compressible round trip. */
function echo(frame: { id: number; opcode: number; payload: Uint8Array }, conn: {
  ack(frame: unknown, data: Uint8Array): Promise<void>;
}): void {
  void conn.ack(frame, frame.payload);
}

Deno.test("DISABLE_COMPRESSION: the peer stops compressing with the setting before its ACK, and compression goes off", async () => {
  const p = await peers("tcp", {
    channelA: { preferredCompression: Compression.GZIP },
    a: { onFrame: echo },
    b: { onFrame: echo },
  });
  try {
    assert.equal(p.pa.compression, Compression.GZIP);
    assert.equal(p.pb.compression, Compression.GZIP);
    await p.pa.setOption(ConnectionOption.DISABLE_COMPRESSION, Compression.GZIP);
    // B switched before it answered; A, on the ACK. Nobody prefers anything now.
    assert.equal(p.pb.compression, undefined);
    assert.equal(p.pa.compression, undefined);
    assert.ok(!p.pa.compressionSettings.decodes.includes(Compression.GZIP));
    assert.equal(p.pa.compressionSettings.preferred, undefined);
    // A no longer decodes gzip: a gzip frame from B would be refused, so a
    // large round trip both ways shows B sends none.
    assert.deepEqual(await p.pb.request(APP, compressible), compressible);
    assert.deepEqual(await p.pa.request(APP, compressible), compressible);
    // Enabling it again as the preference turns compression back on.
    await p.pa.setOption(ConnectionOption.PREFERRED_COMPRESSION, Compression.GZIP);
    assert.equal(p.pa.compression, Compression.GZIP);
    await p.pa.ping(); // B handled the option before answering this
    assert.equal(p.pb.compression, Compression.GZIP);
    assert.deepEqual(await p.pb.request(APP, compressible), compressible);
  } finally {
    await p.close();
  }
});

Deno.test("COMPRESSION: a side that also decodes the peer's preference makes it the connection's", async () => {
  const p = await peers("tcp", {
    channelA: { compressions: [Compression.ZLIB] },
    channelB: {
      compressions: [Compression.ZLIB, Compression.SNAPPY],
      preferredCompression: Compression.SNAPPY,
    },
    a: { onFrame: echo },
  });
  try {
    // B prefers snappy, which A did not announce: nothing is chosen.
    assert.equal(p.pa.compression, undefined);
    assert.equal(p.pb.compression, undefined);
    await p.pa.setOption(ConnectionOption.COMPRESSION, Compression.SNAPPY);
    assert.equal(p.pa.compression, Compression.SNAPPY);
    assert.equal(p.pb.compression, Compression.SNAPPY);
    assert.deepEqual(await p.pb.request(APP, compressible), compressible);
  } finally {
    await p.close();
  }
});

Deno.test("SET_CONNECTION_OPT: an unknown option and a number that is no Compression get NACK UNSUPPORTED", async () => {
  const p = await peers("tcp");
  try {
    for (const [option, setting] of [[9, 1], [ConnectionOption.COMPRESSION, 77]]) {
      const payload = toBinary(
        SetConnectionOptSchema,
        create(SetConnectionOptSchema, { option, setting }),
      );
      await assert.rejects(
        p.pa.request(Opcode.SET_CONNECTION_OPT, payload),
        (err) => err instanceof NackError && err.reason === NackReason.UNSUPPORTED,
      );
    }
    // The local API refuses them before sending.
    await assert.rejects(p.pa.setOption(9 as ConnectionOption, 1), ArgumentError);
  } finally {
    await p.close();
  }
});

Deno.test("SET_CONNECTION_OPT with id 0 changes nothing and is not answered", async () => {
  const p = await peers("tcp", { channelA: { preferredCompression: Compression.ZLIB } });
  try {
    const payload = toBinary(
      SetConnectionOptSchema,
      create(SetConnectionOptSchema, {
        option: ConnectionOption.DISABLE_COMPRESSION,
        setting: Compression.ZLIB,
      }),
    );
    const framesBefore = p.pa.counters.framesReceived;
    await p.pa.send(Opcode.SET_CONNECTION_OPT, payload);
    await p.pa.ping();
    assert.equal(p.pb.compression, Compression.ZLIB);
    // Only the PING's ACK came back.
    assert.equal(p.pa.counters.framesReceived, framesBefore + 1);
  } finally {
    await p.close();
  }
});

Deno.test("a reply over the asker's max_frame_size becomes NACK TOO_LARGE; the connection goes on", async () => {
  const big = crypto.getRandomValues(new Uint8Array(10_000)); // incompressible
  const p = await peers("tcp", {
    channelB: { maxFrameSize: 4096 },
    a: { onFrame: (frame, conn) => void conn.ack(frame, big) },
  });
  try {
    await assert.rejects(
      p.pb.request(APP, new Uint8Array([1])),
      (err) =>
        err instanceof NackError && err.reason === NackReason.TOO_LARGE &&
        /max_frame_size 4096/.test(err.message),
    );
    assert.equal(p.pb.isClosed, false);
    await p.pb.ping();
  } finally {
    await p.close();
  }
});
