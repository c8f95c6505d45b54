// Announced addresses, IDENTIFY and DIAL_BACK between nodes over real TCP on
// this host's own (non-loopback) interface address. Across NAT routers: the
// network lab (tests/lab/).
import assert from "node:assert/strict";
import { create, toBinary } from "@bufbuild/protobuf";
import { createNode, NackError, NackReason, type Node, type NodeOptions, Opcode } from "../mod.ts";
import { DialBackReplySchema, DialBackRequestSchema, DialBackStatus } from "../lib/protocol.ts";
import { decodePayload } from "../lib/wire/opcodes.ts";
import { ipScope } from "../lib/transport/ip.ts";

/** An IPv4 address of this host that is not loopback, if it has one. */
const HOST_IP = Deno.networkInterfaces().find((i) =>
  i.family === "IPv4" && ipScope(i.address) !== "loopback" && ipScope(i.address) !== "link-local"
)?.address;
const ignore = HOST_IP === undefined;
if (ignore) console.warn("reachability tests skipped: this host has no non-loopback IPv4 address");

async function withNodes(
  fn: (make: (o?: NodeOptions) => Promise<Node>) => Promise<void>,
): Promise<void> {
  const nodes: Node[] = [];
  try {
    await fn(async (o = {}) => {
      const n = await createNode({ listen: ["0.0.0.0:0"], puzzleDifficulty: 0, nat: false, ...o });
      nodes.push(n);
      return n;
    });
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}

function portOf(node: Node): number {
  return Number(node.listenAddrs[0].split(":").pop());
}

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test({
  name: "a node bound to 0.0.0.0 announces its interface addresses, never the wildcard",
  ignore,
}, async () => {
  await withNodes(async (make) => {
    const a = await make();
    const b = await make();
    assert.equal(a.listenAddrs[0], `0.0.0.0:${portOf(a)}`, "bound as asked");
    assert.ok(
      a.peerAddresses.includes(`${a.address}@${HOST_IP}:${portOf(a)}`),
      a.peerAddresses.join(),
    );
    await b.connect(`${a.address}@${HOST_IP}:${portOf(a)}`);
    await until(() => a.peer(b.address) !== undefined, "a sees b");
    for (const [self, other] of [[a, b], [b, a]]) {
      const remote = self.peer(other.address)!.channel.remote;
      assert.ok(
        remote.listenAddrs.includes(`${HOST_IP}:${portOf(other)}`),
        remote.listenAddrs.join(),
      );
      assert.ok(remote.listenAddrs.every((x) => !x.startsWith("0.0.0.0") && !x.startsWith("[::]")));
      assert.equal(
        ipScope(remote.observedAddr),
        ipScope(HOST_IP!),
        "the peer reports where it sees us",
      );
    }
    const contact = a.routingTable.get(b.address);
    assert.ok(contact?.listenAddrs.every((x) => !x.startsWith("0.0.0.0")));
  });
});

Deno.test({
  name:
    "dial-back: a peer's probe arrives, the node is public and announces the confirmed observed address",
  ignore,
}, async () => {
  await withNodes(async (make) => {
    const a = await make();
    // b announces a wrong port: only the dial-back finds where it is reachable.
    const b = await make({ announce: [`${HOST_IP}:1`] });
    const joined: string[] = [];
    b.addEventListener("peer:connect", (e) => joined.push(e.detail.address));
    await b.connect(`${a.address}@${HOST_IP}:${portOf(a)}`);
    await until(() => b.addresses.reachability === "public", "b's dial-back");
    assert.equal(b.addresses.reachability, "public");
    assert.deepEqual(b.addresses.listenAddrs, [`${HOST_IP}:${portOf(b)}`, `${HOST_IP}:1`]);
    assert.deepEqual(joined, [a.address], "the probe is no peer connection");
    assert.equal(b.peers().length, 1);
    // IDENTIFY told a.
    await until(
      () => a.peer(b.address)!.channel.remote.listenAddrs[0] === `${HOST_IP}:${portOf(b)}`,
      "a learns b's confirmed address",
    );
    assert.deepEqual(a.routingTable.get(b.address)?.listenAddrs, b.addresses.listenAddrs);
  });
});

Deno.test({
  name: "IDENTIFY: an external address reaches connected peers and their routing tables",
  ignore,
}, async () => {
  await withNodes(async (make) => {
    const a = await make({ reachability: "public" });
    const b = await make({ reachability: "public" });
    await b.connect(`${a.address}@${HOST_IP}:${portOf(a)}`);
    await until(() => a.peer(b.address) !== undefined, "a sees b");
    b.addresses.setExternal("test", ["80.100.100.1:31000"]);
    await until(
      () => a.routingTable.get(b.address)?.listenAddrs[0] === "80.100.100.1:31000",
      "a's table follows b's IDENTIFY",
    );
    assert.deepEqual(a.peer(b.address)!.channel.remote.listenAddrs, b.addresses.listenAddrs);
  });
});

Deno.test({
  name:
    "DIAL_BACK: another host is refused, a port nothing listens on fails, serveDialBack: false is FORBIDDEN",
  ignore,
}, async () => {
  await withNodes(async (make) => {
    const a = await make({ reachability: "public" });
    const quiet = await make({ reachability: "public", serveDialBack: false });
    const b = await make({ reachability: "public" });
    const free = Deno.listen({ hostname: HOST_IP, port: 0 });
    const closedPort = free.addr.port;
    free.close();
    const ask = async (to: Node, addrs: string[]) => {
      const peer = await b.connect(`${to.address}@${HOST_IP}:${portOf(to)}`);
      const payload = toBinary(
        DialBackRequestSchema,
        create(DialBackRequestSchema, { addrs, nonce: crypto.getRandomValues(new Uint8Array(16)) }),
      );
      return decodePayload(DialBackReplySchema, await peer.request(Opcode.DIAL_BACK, payload));
    };
    const reply = await ask(a, [
      "10.9.9.9:4000",
      `${HOST_IP}:${closedPort}`,
      `${HOST_IP}:${portOf(b)}`,
    ]);
    assert.deepEqual(reply.results.map((r) => r.status), [
      DialBackStatus.REFUSED,
      DialBackStatus.DIAL_FAILED,
      DialBackStatus.OK,
    ]);
    const refused = await ask(quiet, [`${HOST_IP}:${portOf(b)}`]).catch((e) => e);
    assert.ok(
      refused instanceof NackError && refused.reason === NackReason.FORBIDDEN,
      String(refused),
    );
  });
});
