/**
 * Broadcast to 32 nodes on 127.0.0.1: carrier's SHOUT against js-libp2p
 * gossipsub (`bench/_gossipsub.ts`), in one run, printed as Markdown tables
 * with the ratios.
 *
 * Each swarm has {@linkcode NODES} nodes in this process; the swarms run one
 * after the other (carrier, then gossipsub twice; each is closed before the
 * next starts):
 *
 * - **carrier**: every node listens; a seed, the others bootstrap from it,
 *   then all run `refreshRoutingTable()` (what the periodic refresh does),
 *   as in `tests/shout_test.ts`. Defaults otherwise (ℓ = 8, k = 20).
 * - **gossipsub**: every node listens and subscribes to one topic; node i
 *   dials node i + 1 (a ring) and {@linkcode EXTRA_DIALS} others at random,
 *   about 2 + 2 × 3 = 8 connections each, and the mesh forms by itself
 *   (D = 6, Dlo = 4, heartbeat 1 s). The bench waits until every node
 *   knows each connected peer's subscription and has at least Dlo mesh
 *   peers (from the GRAFT/PRUNE events), then two more heartbeats.
 * - **gossipsub, all pairs connected**: the same, but each node dials every
 *   other. carrier's swarm ends up that way at this size (each node's
 *   routing-table refresh connects to the nodes it looks up), so this
 *   second table compares the two protocols on the same connections.
 *
 * Then {@linkcode MESSAGES} broadcasts of {@linkcode BODY} bytes, one at a
 * time, each from a node picked at random (the same sequence of picks for
 * both libraries): `node.shout(body)` or `pubsub.publish(topic, body)`. The
 * next one starts {@linkcode GAP} ms after every other node has delivered
 * the previous one (`message` event). After the last, the counters keep
 * running for {@linkcode SETTLE} ms (longer than carrier's SHOUT ACK
 * timeout and gossipsub's 3-heartbeat gossip window), so late retries,
 * duplicates and IHAVE/IWANT gossip about these messages are counted.
 *
 * What is counted (sums over all nodes, from before the first broadcast to
 * the end of the settle time, divided by the number of broadcasts):
 *
 * - **copies received**: every time a node received the message, first
 *   copy and duplicates alike. carrier: `shouts.delivered +
 *   shouts.duplicates` (SHOUT frames accepted, each then acknowledged);
 *   gossipsub: `gossipsub_msg_received_prevalidation_total` (messages in
 *   received RPCs, counted before the duplicate check).
 * - **message frames sent**: carrier: SHOUT frames, `shouts.sent +
 *   shouts.unacknowledged` (an unacknowledged hop is retried with another
 *   peer); gossipsub: `gossipsub_rpc_sent_message_total` (message copies
 *   in sent RPCs: publish, forward, and replies to IWANT).
 * - **control**: carrier: the ACK frames of those SHOUTs (one per accepted
 *   SHOUT frame, so `delivered + duplicates`); gossipsub: IHAVE, IWANT and
 *   IDONTWANT entries sent (`gossipsub_rpc_sent_{ihave,iwant,idontwant}_total`;
 *   an entry lists message ids: an IHAVE entry is one topic's recent ids for
 *   one peer at a heartbeat, so it can cover several broadcasts), plus
 *   GRAFT and PRUNE entries if the mesh changed.
 * - **all frames / RPCs sent**: everything each library sent in the
 *   window, background traffic included: carrier `totals.framesSent` (any
 *   frame: SHOUT, ACK, PING, KEEPALIVE…); gossipsub
 *   `gossipsub_rpc_sent_count_total` (RPCs; Yamux and identify traffic not
 *   counted).
 * - **bytes sent**, above the secure channel: carrier `totals.bytesSent`
 *   (frames, header and payload, before encryption); gossipsub
 *   `gossipsub_rpc_sent_bytes_total` (encoded RPCs, without their length
 *   prefix and the Yamux header).
 * - **time until the last node has it**: from just before the
 *   `shout`/`publish` call to the last other node's `message` event, ms,
 *   median and maximum over the broadcasts. All nodes share this process's
 *   event loop, so this includes every node's CPU work (both libraries
 *   verify an Ed25519 signature on each copy received) and not only
 *   loopback latency.
 *
 * Run: `deno task bench:broadcast`, about 30 s. Under Deno, js-libp2p keeps
 * the process alive after `stop()` (see `bench/peers.ts`), so the script
 * ends with `Deno.exit`.
 *
 * @module
 */

import { createNode, type Node } from "../mod.ts";
import { Opcode } from "../lib/wire/opcodes.ts";
import { LIBP2P_PACKAGES } from "./_libp2p.ts";
import { delay, until } from "./_util.ts";
import { Rng } from "./_sim_clock.ts";
import {
  createGossipsubNode,
  GOSSIPSUB_PACKAGES,
  type GossipsubCounters,
  type GossipsubNode,
} from "./_gossipsub.ts";

/** Nodes per library. */
const NODES = 32;
/** Broadcasts per library. */
const MESSAGES = 20;
/** Bytes of each broadcast's body (gossipsub sends IDONTWANT from 512 B). */
const BODY = 256;
/** Ms between one broadcast's last delivery and the next broadcast. */
const GAP = 100;
/** Ms the counters keep running after the last delivery. */
const SETTLE = 3_500;
/** Ms a broadcast may take to reach every node before it counts as incomplete. */
const TIMEOUT = 10_000;
/** Random dials per gossipsub node, besides its ring neighbour. */
const EXTRA_DIALS = 3;
/** The gossipsub topic. */
const TOPIC = "carrier-bench";
/** Gossipsub's Dlo: the mesh size the swarm waits for. */
const D_LO = 4;

/** Counters summed over a swarm; the keys are the table's rows. */
interface Counts {
  copiesReceived: number;
  duplicates: number;
  messageFrames: number;
  control: number;
  allFrames: number;
  bytes: number;
}

/** What one library's run measured. */
interface Outcome {
  /** Per-broadcast ms until the last node had it (incomplete ones excluded). */
  times: number[];
  /** Other nodes reached, summed over the broadcasts. */
  reached: number;
  /** Counter deltas over the measured window. */
  counts: Counts;
  /** How the swarm looked before the first broadcast and after the last (for the notes). */
  shape: { before: string; after: string };
}

/** A swarm under test (its nodes report deliveries to a {@linkcode Deliveries}). */
interface Swarm {
  /** Broadcasts a body from node `from`. */
  broadcast(from: number, body: Uint8Array): Promise<unknown>;
  /** Sums the counters over every node. */
  counts(): Counts;
  shape(): string;
  close(): Promise<void>;
}

/** The body of broadcast `index`: its index, then random bytes. */
function bodyOf(index: number): Uint8Array {
  const body = new Uint8Array(BODY);
  crypto.getRandomValues(body);
  new DataView(body.buffer).setUint32(0, index);
  return body;
}

function indexOf(body: Uint8Array): number {
  return new DataView(body.buffer, body.byteOffset, body.byteLength).getUint32(0);
}

/** Tracks which nodes have which broadcast, and when the last one got it. */
class Deliveries {
  #current = -1;
  #started = 0;
  #missing = new Set<number>();
  #last = 0;
  #done: () => void = () => {};

  /** Starts broadcast `index` from node `from`; resolves when all others have it (or at TIMEOUT). */
  start(index: number, from: number): Promise<void> {
    this.#current = index;
    this.#missing = new Set(Array.from({ length: NODES }, (_, i) => i).filter((i) => i !== from));
    this.#started = performance.now();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, TIMEOUT);
      this.#done = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /** Node `node` delivered a broadcast. */
  deliver(node: number, body: Uint8Array): void {
    if (indexOf(body) !== this.#current || !this.#missing.delete(node)) return;
    this.#last = performance.now();
    if (this.#missing.size === 0) this.#done();
  }

  /** How many other nodes have the current broadcast. */
  get reached(): number {
    return NODES - 1 - this.#missing.size;
  }

  /** Ms from the start to the last node's delivery, if all have it. */
  get time(): number | undefined {
    return this.#missing.size === 0 ? this.#last - this.#started : undefined;
  }
}

async function carrierSwarm(deliveries: Deliveries): Promise<Swarm> {
  const seed = await createNode({ listen: ["127.0.0.1:0"], puzzleDifficulty: 0 });
  const nodes: Node[] = [seed];
  for (let i = 1; i < NODES; i++) {
    nodes.push(
      await createNode({
        listen: ["127.0.0.1:0"],
        puzzleDifficulty: 0,
        bootstrap: [seed.peerAddresses[0]],
      }),
    );
  }
  await until(() => nodes.every((n) => n.peers().length > 0), "carrier bootstrap connections");
  await Promise.all(nodes.map((n) => n.refreshRoutingTable()));
  await delay(500);
  for (const [i, node] of nodes.entries()) {
    node.addEventListener("message", (e) => {
      if (e.detail.opcode === Opcode.SHOUT) deliveries.deliver(i, e.detail.body);
    });
  }
  return {
    broadcast: (from, body) => nodes[from].shout(body),
    counts() {
      const c: Counts = {
        copiesReceived: 0,
        duplicates: 0,
        messageFrames: 0,
        control: 0,
        allFrames: 0,
        bytes: 0,
      };
      for (const node of nodes) {
        const { shouts, totals } = node.metrics();
        c.copiesReceived += shouts.delivered + shouts.duplicates;
        c.duplicates += shouts.duplicates;
        c.messageFrames += shouts.sent + shouts.unacknowledged;
        c.control += shouts.delivered + shouts.duplicates;
        c.allFrames += totals.framesSent;
        c.bytes += totals.bytesSent;
      }
      return c;
    },
    shape() {
      const peers = nodes.map((n) => n.peers().length);
      return `${min(peers)}–${max(peers)} connections per node (mean ${fixed(mean(peers), 1)})`;
    },
    async close() {
      await Promise.all(nodes.map((n) => n.close()));
    },
  };
}

/** Node i dials node i + 1 (a ring) and EXTRA_DIALS others at random. */
function randomDials(i: number, pick: () => number): number[] {
  const targets = new Set([(i + 1) % NODES]);
  while (targets.size < 1 + EXTRA_DIALS) {
    const j = Math.floor(pick() * NODES);
    if (j !== i) targets.add(j);
  }
  return [...targets];
}

/** Node i dials every node after it: all pairs connected. */
function allPairs(i: number): number[] {
  return Array.from({ length: NODES - 1 - i }, (_, k) => i + 1 + k);
}

async function gossipsubSwarm(
  deliveries: Deliveries,
  dials: (i: number) => number[],
): Promise<Swarm> {
  const counters: GossipsubCounters[] = [];
  const nodes: GossipsubNode[] = [];
  const meshes: Set<string>[] = [];
  for (let i = 0; i < NODES; i++) {
    const c: GossipsubCounters = new Map();
    const node = await createGossipsubNode(c);
    const mesh = new Set<string>();
    const pubsub = node.services.pubsub;
    pubsub.addEventListener("gossipsub:graft", (e) => mesh.add(e.detail.peerId));
    pubsub.addEventListener("gossipsub:prune", (e) => mesh.delete(e.detail.peerId));
    node.addEventListener("peer:disconnect", (e) => mesh.delete(e.detail.toString()));
    pubsub.addEventListener("message", (e) => {
      if (e.detail.topic === TOPIC) deliveries.deliver(i, e.detail.data);
    });
    pubsub.subscribe(TOPIC);
    counters.push(c);
    nodes.push(node);
    meshes.push(mesh);
  }
  const addresses = nodes.map((n) => n.getMultiaddrs()[0]);
  const dialing: Promise<unknown>[] = [];
  for (let i = 0; i < NODES; i++) {
    for (const j of dials(i)) dialing.push(nodes[i].dial(addresses[j]));
  }
  await Promise.all(dialing);
  await until(
    () =>
      nodes.every((n) =>
        n.services.pubsub.getSubscribers(TOPIC).length === new Set(
          n.getConnections().map((c) => c.remotePeer.toString()),
        ).size
      ),
    "gossipsub subscriptions",
  );
  await until(() => meshes.every((m) => m.size >= D_LO), "gossipsub meshes of Dlo peers");
  await delay(2_000); // two heartbeats
  const sum = (name: string) => counters.reduce((a, c) => a + (c.get(name) ?? 0), 0);
  return {
    broadcast: (from, body) => nodes[from].services.pubsub.publish(TOPIC, body),
    counts: () => ({
      copiesReceived: sum("gossipsub_msg_received_prevalidation_total"),
      duplicates: sum("gossipsub_pre_validation_duplicate_total"),
      messageFrames: sum("gossipsub_rpc_sent_message_total"),
      control: ["ihave", "iwant", "idontwant", "graft", "prune"].reduce(
        (a, kind) => a + sum(`gossipsub_rpc_sent_${kind}_total`),
        0,
      ),
      allFrames: sum("gossipsub_rpc_sent_count_total"),
      bytes: sum("gossipsub_rpc_sent_bytes_total"),
    }),
    shape() {
      const peers = nodes.map((n) => new Set(n.getConnections().map((c) => c.remotePeer)).size);
      const mesh = meshes.map((m) => m.size);
      return `${min(peers)}–${max(peers)} connections per node (mean ${
        fixed(mean(peers), 1)
      }), mesh ${min(mesh)}–${max(mesh)} peers`;
    },
    async close() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

/** Runs the broadcasts on `swarm` from the nodes in `origins`. */
async function measure(swarm: Swarm, deliveries: Deliveries, origins: number[]): Promise<Outcome> {
  const shapeBefore = swarm.shape();
  const before = swarm.counts();
  const times: number[] = [];
  let reached = 0;
  for (const [index, from] of origins.entries()) {
    const delivered = deliveries.start(index, from);
    await swarm.broadcast(from, bodyOf(index));
    await delivered;
    reached += deliveries.reached;
    const time = deliveries.time;
    if (time !== undefined) times.push(time);
    await delay(GAP);
  }
  await delay(SETTLE);
  const after = swarm.counts();
  const counts = { ...after };
  for (const key of Object.keys(counts) as (keyof Counts)[]) counts[key] -= before[key];
  return { times, reached, counts, shape: { before: shapeBefore, after: swarm.shape() } };
}

const min = (values: readonly number[]) => Math.min(...values);
const max = (values: readonly number[]) => Math.max(...values);
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const fixed = (value: number, digits: number) =>
  value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function row(metric: string, carrier: number, gossipsub: number, digits: number): string {
  const ratio = gossipsub === 0 ? "—" : `${(carrier / gossipsub).toFixed(2)}×`;
  return `| ${metric} | ${fixed(carrier, digits)} | ${fixed(gossipsub, digits)} | ${ratio} |`;
}

/** Builds a swarm, runs the broadcasts on it, and closes it. */
async function run(
  make: (deliveries: Deliveries) => Promise<Swarm>,
  origins: number[],
): Promise<Outcome> {
  const deliveries = new Deliveries();
  const swarm = await make(deliveries);
  try {
    return await measure(swarm, deliveries, origins);
  } finally {
    await swarm.close();
  }
}

/** The comparison table of `carrier` and a gossipsub run. */
function table(c: Outcome, g: Outcome, gossipsubColumn: string): string {
  const per = (o: Outcome, key: keyof Counts) => o.counts[key] / MESSAGES;
  const counted = (metric: string, key: keyof Counts) => row(metric, per(c, key), per(g, key), 1);
  return [
    `| metric (per broadcast) | carrier SHOUT | ${gossipsubColumn} | ratio (carrier / gossipsub) |`,
    "| --- | ---: | ---: | ---: |",
    row(
      `other nodes reached (of ${NODES - 1}), mean`,
      c.reached / MESSAGES,
      g.reached / MESSAGES,
      1,
    ),
    counted("copies received, duplicates included", "copiesReceived"),
    counted("… of which duplicates", "duplicates"),
    counted("message frames sent (SHOUT / RPC message copies)", "messageFrames"),
    counted("control sent (SHOUT ACKs / IHAVE+IWANT+IDONTWANT+GRAFT+PRUNE entries)", "control"),
    counted("all frames / RPCs sent, background included", "allFrames"),
    row("KiB sent above the secure channel", per(c, "bytes") / 1024, per(g, "bytes") / 1024, 1),
    row("time until the last node has it, median, ms", median(c.times), median(g.times), 1),
    row("time until the last node has it, max, ms", max(c.times), max(g.times), 1),
  ].join("\n");
}

async function main(): Promise<void> {
  const started = performance.now();
  const packages = { ...LIBP2P_PACKAGES, ...GOSSIPSUB_PACKAGES };
  const used = [
    "libp2p",
    "@libp2p/tcp",
    "@chainsafe/libp2p-noise",
    "@chainsafe/libp2p-yamux",
    "@libp2p/identify",
    "@libp2p/gossipsub",
  ];
  console.log(`# Broadcast to ${NODES} nodes, carrier SHOUT vs js-libp2p gossipsub, 127.0.0.1\n`);
  console.log(
    `js-libp2p: ${
      used.map((name) => `${name}@${packages[name]}`).join(", ")
    }; gossipsub defaults except the IP colocation score (127.0.0.1 whitelisted; see bench/_gossipsub.ts).`,
  );
  console.log(
    `Deno ${Deno.version.deno}, V8 ${Deno.version.v8}, ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, load average ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }.`,
  );
  console.log(
    `${MESSAGES} broadcasts of ${BODY} B per swarm, one at a time from random nodes (the same picks), all ${NODES} nodes in this process.\n`,
  );

  const rng = new Rng(0xca771e5);
  const pick = () => rng.next();
  const origins = Array.from({ length: MESSAGES }, () => Math.floor(pick() * NODES));
  const c = await run(carrierSwarm, origins);
  const g = await run((d) => gossipsubSwarm(d, (i) => randomDials(i, pick)), origins);
  const full = await run((d) => gossipsubSwarm(d, allPairs), origins);

  console.log(table(c, g, "js-libp2p gossipsub"));
  console.log(
    `\ngossipsub: node i dials i + 1 and ${EXTRA_DIALS} random others. ` +
      `carrier swarm: ${c.shape.before} before the broadcasts, ${c.shape.after} after; ` +
      `gossipsub swarm: ${g.shape.before} before, ${g.shape.after} after. ` +
      `Broadcasts that reached every node: carrier ${c.times.length}/${MESSAGES}, gossipsub ${g.times.length}/${MESSAGES}.`,
  );
  console.log(
    "\nThe carrier swarm ends up with every pair connected (its routing-table refresh connects to the " +
      "nodes it looks up); the same for gossipsub (each node dials every other; same counts, same picks):\n",
  );
  console.log(table(c, full, "gossipsub, all pairs connected"));
  console.log(
    `\ngossipsub swarm: ${full.shape.before} before, ${full.shape.after} after; ` +
      `broadcasts that reached every node: ${full.times.length}/${MESSAGES}.`,
  );
  console.log(
    "\nDefinitions (the header of bench/broadcast.ts has them in full): sums over all nodes from before the first broadcast to " +
      `${SETTLE} ms after the last delivery, divided by ${MESSAGES}. carrier: copies received = shouts.delivered + shouts.duplicates; ` +
      "message frames = shouts.sent + shouts.unacknowledged; control = the ACKs of the accepted SHOUT frames; all frames = totals.framesSent; " +
      "bytes = totals.bytesSent (frames before encryption). gossipsub (its own metrics): copies received = msg_received_prevalidation; " +
      "duplicates = pre_validation_duplicate; message frames = rpc_sent_message; control = rpc_sent_{ihave,iwant,idontwant,graft,prune} entries; " +
      "all RPCs = rpc_sent_count; bytes = rpc_sent_bytes (RPC protobufs, no length prefix or Yamux/Noise framing). Time: from just before " +
      "shout()/publish() to the last other node's message event, one event loop for all nodes.",
  );
  console.log(`\nTotal time ${((performance.now() - started) / 1000).toFixed(0)} s.`);
}

if (import.meta.main) {
  await main();
  // js-libp2p keeps the process alive after stop() under Deno (mortice's
  // BroadcastChannel has no `unref` in Deno; see bench/peers.ts).
  Deno.exit(0);
}
