// Issue 11, item 2: a peer that sends requests and never reads the replies
// must not make the node hold unbounded memory. The node stops reading from
// it once its replies cannot be sent, so the work it takes on stays within
// maxSendBuffer plus maxInboundRequests replies.
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { defineOpcode, dhtKey, Opcode } from "../../mod.ts";
import { FindValueRequestSchema } from "../../lib/protocol.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import {
  countersOf,
  delay,
  legitPing,
  listeningNode,
  pack,
  pingPayload,
  rawChannel,
  rawPeer,
  requests,
  until,
} from "./_attack.ts";

const MAX_SEND_BUFFER = 256 * 1024;

for (
  const attack of [
    {
      name: "FIND_VALUE requests for a 64 KiB record",
      opcode: Opcode.FIND_VALUE,
      payload: toBinary(
        FindValueRequestSchema,
        create(FindValueRequestSchema, { key: dhtKey("big") }),
      ),
      count: 1_500, // about 60 KB of requests, 96 MiB of replies
    },
    { name: "PINGs", opcode: Opcode.PING, payload: pingPayload(), count: 1_000_000 },
  ]
) {
  Deno.test(`a peer that never reads its replies to ${attack.name} stops being read`, async () => {
    await using node = await listeningNode({ connection: { maxSendBuffer: MAX_SEND_BUFFER } });
    await node.dht.put("big", new Uint8Array(64 * 1024).fill(7));
    await using transport = new TcpTransport();
    const channel = await rawChannel(node, transport);
    const address = channel.local.address;
    // Write every request and never read. Once the node stops reading, the
    // kernel's buffers fill and this write waits; closing ends it.
    const writing = channel.writeMany(pack(requests(attack.opcode, attack.payload, attack.count)))
      .catch(() => {});
    await until(() => (countersOf(node, address)?.framesReceived ?? 0) > 0, "requests arrive");
    // Let the node work through what it will take on, then look again.
    let before = -1, after = countersOf(node, address)!.framesReceived;
    while (before !== after) {
      await delay(300);
      [before, after] = [after, countersOf(node, address)!.framesReceived];
    }
    const counters = countersOf(node, address)!;
    assert.ok(
      counters.framesReceived < attack.count,
      `the node read all ${attack.count} requests of a peer that never reads`,
    );
    // What it took on: replies that fill the send buffer and the kernel's
    // socket buffers, plus at most maxInboundRequests (32) handled at once.
    assert.equal(await legitPing(node), undefined, "others are served meanwhile");
    channel.close();
    await writing;
    await until(() => countersOf(node, address) === undefined, "the node drops the connection");
  });
}

Deno.test("a peer gets at most maxInboundRequests frames handled at once; the rest wait unread", async () => {
  const SLOW = defineOpcode(1000, { name: "SLOW", request: StringValueSchema });
  await using node = await listeningNode({ connection: { maxInboundRequests: 32 } });
  const gate = Promise.withResolvers<void>();
  node.handle(SLOW, () => gate.promise);
  await using transport = new TcpTransport();
  const peer = await rawPeer(node, transport);
  const payload = toBinary(StringValueSchema, create(StringValueSchema, { value: "x" }));
  const replies = Array.from({ length: 100 }, () => peer.request(SLOW.opcode, payload));
  await until(
    () => countersOf(node, peer.channel.local.address)?.framesReceived === 32,
    "32 in hand",
  );
  await delay(200);
  assert.equal(
    countersOf(node, peer.channel.local.address)?.framesReceived,
    32,
    "no more are read",
  );
  gate.resolve();
  await Promise.all(replies);
  assert.equal(countersOf(node, peer.channel.local.address)?.framesReceived, 100);
  await peer.close();
});
