// Issue 11, items 5 and 6: sockets that never handshake, and authenticated
// peers that only idle, cannot lock new peers out of a node.
import assert from "node:assert/strict";
import type { PeerConnection } from "../../lib/peer/connection.ts";
import { TcpTransport } from "../../lib/transport/tcp.ts";
import type { ByteStream } from "../../lib/transport/types.ts";
import { legitPing, listeningNode, rawPeer, until } from "./_attack.ts";

Deno.test("sixteen silent sockets, reopened as they close, do not lock new peers out", async () => {
  await using node = await listeningNode(); // maxPendingHandshakes 16
  await using tcp = new TcpTransport();
  const silent = new Set<ByteStream>();
  let stop = false;
  // The attacker keeps 16 sockets open that never send a byte, opening a
  // new one whenever the node closes one.
  const hold = async () => {
    while (!stop) {
      const socket = await tcp.dial(node.listenAddrs[0]);
      silent.add(socket);
      await socket.read(new Uint8Array(1)); // resolves null when the node closes it
      silent.delete(socket);
      socket.close();
    }
  };
  const attackers = Array.from({ length: 16 }, () => hold().catch(() => {}));
  await until(
    () => node.metrics().connections.pendingHandshakes === 16,
    "16 silent sockets pending",
  );
  for (let i = 0; i < 3; i++) {
    assert.equal(await legitPing(node), undefined, `legit connection + PING ${i}`);
  }
  assert.ok(node.metrics().connections.rejectedHandshakes >= 3, "silent sockets were evicted");
  stop = true;
  for (const socket of silent) socket.close();
  await Promise.allSettled(attackers);
});

Deno.test("sixty-four idle authenticated peers do not lock new peers out", async () => {
  await using node = await listeningNode(); // maxInbound 64
  await using tcp = new TcpTransport();
  const idle: PeerConnection[] = [];
  // In batches of 8: within maxPendingHandshakes, so none evicts another.
  for (let i = 0; i < 8; i++) {
    idle.push(...await Promise.all(Array.from({ length: 8 }, () => rawPeer(node, tcp))));
  }
  await until(() => node.metrics().connections.inbound === 64, "64 idle peers registered");
  for (let i = 0; i < 3; i++) {
    assert.equal(await legitPing(node), undefined, `legit connection + PING ${i}`);
  }
  const evicted = idle.filter((p) => p.isClosed).length;
  assert.ok(evicted >= 1, "an idle peer made room");
  assert.ok(node.metrics().connections.inbound <= 64);
  await Promise.all(idle.map((p) => p.close()));
});
