/**
 * The demo's third part: a swarm of 24 nodes on loopback TCP, 4 of them
 * outbound-only: SHOUT and WHISPER, then the DHT on the same swarm.
 *
 * @module
 */
import { createNode, type Node, Opcode } from "../../mod.ts";
import { type CliOutput, hex } from "../output.ts";
import { demoDht } from "./dht.ts";

/** Part of the demo: 24 nodes on loopback TCP, 4 of them outbound-only; SHOUT and WHISPER. */
export async function demoSwarm(io: CliOutput): Promise<void> {
  io.out("== A swarm of 24 nodes on 127.0.0.1 (4 of them accept no connections): SHOUT, WHISPER");
  const nodes: Node[] = [];
  try {
    // Short-lived lookup connections close after 300 ms idle here (10 s by
    // default), so that what remains are the connections nodes chose.
    const seed = await createNode({
      listen: ["127.0.0.1:0"],
      maxPendingHandshakes: 64,
      ephemeralIdleTimeout: 300,
    });
    nodes.push(seed);
    const started = performance.now();
    for (let i = 0; i < 23; i++) {
      nodes.push(
        await createNode({
          listen: i < 19 ? ["127.0.0.1:0"] : [],
          bootstrap: [seed.peerAddresses[0]],
          ephemeralIdleTimeout: 300,
        }),
      );
    }
    for (let i = 0; i < 400 && nodes.some((n) => n.peers().length === 0); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(nodes.map((n) => n.refreshRoutingTable()));
    await new Promise((r) => setTimeout(r, 700)); // lookup connections close
    const connections = nodes.reduce((a, n) => a + n.peers().length, 0) / nodes.length;
    const table = nodes.reduce((a, n) => a + n.routingTable.size, 0) / nodes.length;
    io.out(
      `joined through one seed, looked up their own ids and refreshed their tables in ${
        (performance.now() - started).toFixed(0)
      } ms: ${connections.toFixed(1)} connections (ℓ = 8 dialed at most) and ${
        table.toFixed(1)
      } routing-table contacts per node`,
    );
    const outboundOnly = nodes.slice(20);

    // SHOUT from a listening node and from one that only dials out.
    for (const origin of [nodes[7], outboundOnly[0]]) {
      const before = nodes.reduce((a, n) => a + n.metrics().shouts.sent, 0);
      const hops: number[] = [];
      let last = 0;
      const t0 = performance.now();
      const listeners = nodes.filter((n) => n !== origin).map((n) => {
        const listener = (e: CustomEvent<{ opcode: number; hops?: number }>) => {
          if (e.detail.opcode !== Opcode.SHOUT) return;
          hops.push(e.detail.hops ?? 0);
          last = performance.now() - t0;
        };
        n.addEventListener("message", listener as EventListener);
        return () => n.removeEventListener("message", listener as EventListener);
      });
      await origin.shout(`hello from node ${nodes.indexOf(origin)}`);
      for (let i = 0; i < 1000 && hops.length < nodes.length - 1; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      for (const remove of listeners) remove();
      const sent = nodes.reduce((a, n) => a + n.metrics().shouts.sent, 0) - before;
      const kind = origin.listenAddrs.length > 0
        ? "a listening node"
        : "a node that only dials out";
      io.out(
        `SHOUT from ${kind}: delivered to ${hops.length} of ${
          nodes.length - 1
        } nodes, once each; ${sent} SHOUT frames (a flood over ℓ = 8 would send ${
          (2 * 8 - 1) * nodes.length + 1
        }); at most ${Math.max(...hops)} hops; last node after ${last.toFixed(1)} ms`,
      );
    }

    // WHISPER between two nodes that accept no connections, and across the swarm.
    const [from, to] = [outboundOnly[1], outboundOnly[2]];
    const received: string[] = [];
    to.addEventListener("message", (e) => {
      if (e.detail.opcode === Opcode.WHISPER) {
        received.push(
          `${new TextDecoder().decode(e.detail.body)} (${
            e.detail.encrypted ? "sealed" : "in the clear"
          })`,
        );
      }
    });
    const sealed = await from.whisper(to.address, "psst, only you can read this");
    io.out(
      `WHISPER between two nodes that accept no connections: ${sealed.hops} hops, acknowledged with hash ${
        hex(sealed.hash).slice(0, 16)
      }…; received "${received[0]}"`,
    );
    const hops: number[] = [];
    for (let i = 0; i < 60 && hops.length < 10; i++) {
      const a = nodes[(i * 5 + 1) % nodes.length];
      const b = nodes[(i * 7 + 3) % nodes.length];
      if (a === b || a.peer(b.address)) continue; // pairs not directly connected
      hops.push((await a.whisper(b.address, `note ${i}`)).hops);
    }
    io.out(
      `${hops.length} WHISPERs between nodes that were not connected: ${
        hops.join(", ")
      } hops (a sender that knows where the recipient listens dials it; ⌈log₂ 24⌉ + 1 = 6)`,
    );
    const relayed = nodes.reduce((a, n) => a + n.metrics().whispers.relayed, 0);
    io.out(`relays forwarded ${relayed} WHISPERs they could not read`);
    io.out(
      "(A node that only dials out is a leaf of the SHOUT tree: every node connected to it sends it a copy.)",
    );
    io.out("");
    await demoDht(io, nodes);
  } finally {
    await Promise.all(nodes.map((n) => n.close()));
  }
}
