// What the fuzz campaign's op.IDENTIFY target met: batches of IDENTIFY
// frames, a few of them over the node's maxFrameSize (1 MiB; a mutated
// `listen_addrs` repeating a 70 000-character string). Valid IDENTIFYs keep
// the connection serving; a frame over the maximum closes it, and the peer
// is told so with a DISCONNECT PROTOCOL_ERROR before the stream ends (it used
// to end with no DISCONNECT: the connection closed its channel before the
// frame was written). Real TCP on 127.0.0.1.
import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { DisconnectReason, DisconnectSchema, IdentifySchema, Opcode } from "../../lib/protocol.ts";
import { MAX_PLAINTEXT } from "../../lib/secure/channel.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import { createFrame, encodeFrame, FrameDecoder } from "../../lib/wire/frame.ts";
import { legitPing, listeningNode, pack, pingPayload, rawChannel } from "./_attack.ts";

const identifyFrame = (listenAddrs: string[], id = 0) =>
  encodeFrame(
    createFrame({
      opcode: Opcode.IDENTIFY,
      id,
      payload: toBinary(
        IdentifySchema,
        create(IdentifySchema, {
          listenAddrs,
          acceptsInbound: true,
          observedAddr: "10.0.0.1:4000",
        }),
      ),
    }),
    { maxFrameSize: 64 * 1024 * 1024 },
  );

Deno.test("IDENTIFY batches keep the connection; one over maxFrameSize gets DISCONNECT PROTOCOL_ERROR", async () => {
  await using node = await listeningNode();
  const transport = new TcpTransport();
  const channel = await rawChannel(node, transport);
  const decoder = new FrameDecoder();
  const received: ReturnType<FrameDecoder["push"]> = [];
  const reading = (async () => {
    try {
      for (let m; (m = await channel.read()) !== null;) received.push(...decoder.push(m));
    } catch (err) {
      return err as Error;
    }
  })();
  const ping = (id: number) =>
    encodeFrame(createFrame({ opcode: Opcode.PING, id, payload: pingPayload() }));
  const acked = async (id: number) => {
    const deadline = Date.now() + 5_000;
    while (!received.some((f) => f.opcode === Opcode.ACK && f.id === id)) {
      assert.ok(Date.now() < deadline, `no ACK for PING ${id}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  try {
    // A batch of valid IDENTIFYs (this node's own address among them), then a PING.
    const own = node.listenAddrs[0];
    const valid = Array.from(
      { length: 500 },
      (_, i) => identifyFrame([`127.0.0.1:${1000 + i}`, own, "x".repeat(600)], i % 3 ? 0 : i + 1),
    );
    await channel.writeMany(pack([...valid, ping(0xfff0)]));
    await acked(0xfff0);
    assert.equal(node.peers().length, 1);

    // One over the node's maxFrameSize (about 2.8 MB): the node refuses it from
    // its length prefix. (This side sends its first Noise message only: writing
    // on would race the node's close, and a failed write closes this channel.)
    const oversized = identifyFrame(Array(40).fill("x".repeat(70_000)));
    assert.ok(oversized.length > 1024 * 1024);
    const bytes = new Uint8Array([...identifyFrame([own]), ...oversized]);
    await channel.write(bytes.subarray(0, MAX_PLAINTEXT));
    await reading; // the stream ends (or is reset after the node's close)
    const last = received.at(-1)!;
    assert.equal(last.opcode, Opcode.DISCONNECT, "the stream ended without a DISCONNECT");
    const disconnect = fromBinary(DisconnectSchema, last.payload);
    assert.equal(disconnect.reason, DisconnectReason.PROTOCOL_ERROR);
    assert.match(disconnect.message, /exceeds maxFrameSize/);

    // The node keeps serving.
    assert.equal(await legitPing(node), undefined);
  } finally {
    channel.close();
    await reading;
    transport.close();
  }
});
