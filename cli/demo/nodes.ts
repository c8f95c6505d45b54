/**
 * The demo's second part: three nodes on loopback TCP, one of them
 * outbound-only: connections, PING, SPEAK, metrics.
 *
 * @module
 */
import { createNode, type Node } from "../../mod.ts";
import type { CliOutput } from "../output.ts";

/** Part of the demo: three nodes on loopback TCP, one of them outbound-only. */
export async function demoNodes(io: CliOutput): Promise<void> {
  io.out("== Nodes on 127.0.0.1: Noise XX connections, PING, SPEAK, metrics");
  const nodes: Node[] = [];
  try {
    const hub = await createNode({ listen: ["127.0.0.1:0"], serveMetrics: true });
    nodes.push(hub);
    const alice = await createNode({ listen: ["127.0.0.1:0"] });
    nodes.push(alice);
    const bob = await createNode(); // no listener: dials out only
    nodes.push(bob);
    const names = new Map([[hub.address, "hub"], [alice.address, "alice"], [bob.address, "bob"]]);
    const name = (address: string) => names.get(address) ?? address.slice(0, 8);
    io.out(`hub    ${hub.peerAddresses[0]}`);
    io.out(`alice  ${alice.peerAddresses[0]}`);
    io.out(`bob    ${bob.address} (outbound only)`);
    const heard: string[] = [];
    for (const n of nodes) {
      n.addEventListener("message", (e) => {
        heard.push(
          `${name(n.address)} heard "${new TextDecoder().decode(e.detail.body)}" from ${
            name(e.detail.from)
          }`,
        );
      });
    }
    const started = performance.now();
    await alice.connect(hub.peerAddresses[0]);
    io.out(
      `alice -> hub: connect + Noise XX handshake in ${
        (performance.now() - started).toFixed(1)
      } ms`,
    );
    await bob.connect(hub.peerAddresses[0]);
    await bob.connect(alice.peerAddresses[0]);
    for (const [from, to] of [[alice, hub], [bob, hub], [bob, alice]] as const) {
      const rtts = [];
      for (let i = 0; i < 5; i++) rtts.push(await from.ping(to.address));
      io.out(
        `${name(from.address)} -> ${name(to.address)}: PING round trip ${
          Math.min(...rtts).toFixed(3)
        } ms (best of 5)`,
      );
    }
    // Wait until the hub has registered both inbound connections, then SPEAK.
    for (let i = 0; i < 100 && hub.peers().length < 2; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const sent = await hub.speak("hello, direct peers");
    for (let i = 0; i < 100 && heard.length < sent; i++) await new Promise((r) => setTimeout(r, 5));
    io.out(`hub SPEAKs to its ${sent} direct peers:`);
    for (const line of heard.sort()) io.out(`  ${line}`);
    const metrics = await alice.requestMetrics(hub.address);
    io.out(
      `hub's metrics, as alice asked for them (METRICS): ${metrics.connections.inbound} connections, ${metrics.totals.framesReceived} frames and ${metrics.totals.bytesReceived} bytes received`,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}
