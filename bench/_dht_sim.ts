/**
 * The network of `bench/dht_sim.ts` (and its test): simulated nodes that each
 * run the library's own {@linkcode Dht} and {@linkcode RoutingTable} over a
 * function-call transport. See `bench/dht_sim.ts` for the scenario.
 *
 * @module
 */
import type { Dht } from "../lib/dht/dht.ts";
import { dht, type DhtService, replicaOf } from "../lib/services/dht.ts";
import { TimeoutError } from "../lib/errors.ts";
import { formatAddress } from "../lib/identity/address.ts";
import { bucketIndex, randomIdInBucket } from "../lib/identity/node_id.ts";
import { type Contact, contactOf, RoutingTable } from "../lib/overlay/routing_table.ts";
import { systemClock } from "../lib/clock.ts";
import { Rng } from "./_sim_clock.ts";

const K = 20;
const LOOKUPS = 200;

/** Options of {@linkcode simulate}. */
export interface SimulateOptions {
  /** Values put. @default {100} */
  values?: number;
  /** Seed. @default {1} */
  seed?: number;
}

interface SimNode {
  contact: Contact;
  table: RoutingTable;
  service: DhtService;
  dht: Dht;
}

/** n nodes over a function-call transport. */
class SimNetwork {
  readonly nodes: SimNode[] = [];
  readonly #byAddress = new Map<string, SimNode>();
  readonly dead = new Set<string>();
  requests = 0;
  readonly #rng: Rng;
  /** Never aborted: a simulated node does not close. */
  readonly #running = new AbortController();

  constructor(rng: Rng) {
    this.#rng = rng;
  }

  get live(): SimNode[] {
    return this.nodes.filter((n) => !this.dead.has(n.contact.address));
  }

  /** A new node joins through a random live node. */
  async join(): Promise<SimNode> {
    const key = this.#rng.bytes(32);
    const contact = contactOf(key, formatAddress(key), [`sim:${this.nodes.length}`]);
    const table = new RoutingTable(contact.nodeId, { k: K, clock: systemClock });
    const node = { contact, table } as SimNode;
    node.service = dht({ replicas: K })({
      contact,
      table,
      clock: systemClock,
      signal: this.#running.signal,
      request: (to, opcode, payload) => this.#request(node, to, opcode, payload),
      error: (error) => {
        throw error;
      },
    });
    node.dht = node.service.client;
    const live = this.live;
    this.nodes.push(node);
    this.#byAddress.set(contact.address, node);
    if (live.length === 0) return node;
    const bootstrap = live[this.#rng.int(live.length)];
    this.#learn(node, bootstrap.contact);
    await node.dht.findClosest(contact.nodeId);
    const [nearest] = table.closest(contact.nodeId, 1);
    if (nearest) {
      const from = bucketIndex(contact.nodeId, nearest.nodeId) + 1;
      for (let i = from; i < 256; i++) {
        if (table.occupiedBuckets().length === 0) break;
        await node.dht.findClosest(randomIdInBucket(contact.nodeId, i, this.#rng.bytes(32)));
      }
    }
    return node;
  }

  async #request(
    from: SimNode,
    to: Contact,
    opcode: number,
    payload: Uint8Array,
  ): Promise<Uint8Array> {
    this.requests++;
    await null;
    const target = this.#byAddress.get(to.address);
    if (!target || this.dead.has(to.address)) {
      from.table.remove(to.address);
      throw new TimeoutError(`${to.address} does not answer`);
    }
    this.#learn(target, from.contact);
    this.#learn(from, target.contact);
    return replicaOf(target.dht).serve(opcode, payload, from.contact.address); // NackError: a refusal
  }

  #learn(at: SimNode, contact: Contact): void {
    if (contact.address === at.contact.address) return;
    const result = at.table.add(contact);
    if (result.status === "added") at.service.contactAdded(contact);
  }
}

/** Lets queued hand-offs run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setTimeout(r, 0));
}

/** What {@linkcode simulate} measured. */
export interface Row {
  n: number;
  buildS: number;
  meanTable: number;
  hopsMean: number;
  hopsMax: number;
  putReplicas: number;
  crashRead: number;
  churnRead: number;
  requestsPerJoin: number;
  rssMiB: number;
}

async function build(n: number, rng: Rng): Promise<SimNetwork> {
  const net = new SimNetwork(rng);
  for (let i = 0; i < n; i++) await net.join();
  await settle();
  return net;
}

async function putValues(
  net: SimNetwork,
  rng: Rng,
  VALUES: number,
): Promise<{ keys: string[]; replicas: number }> {
  const keys: string[] = [];
  let replicas = 0;
  for (let v = 0; v < VALUES; v++) {
    const writer = net.live[rng.int(net.live.length)];
    const key = `value-${v}`;
    replicas += (await writer.dht.put(key, new TextEncoder().encode(key))).replicas;
    keys.push(key);
  }
  await settle();
  return { keys, replicas: replicas / VALUES };
}

async function readable(net: SimNetwork, keys: string[], rng: Rng): Promise<number> {
  let ok = 0;
  for (const key of keys) {
    const live = net.live;
    const reader = live[rng.int(live.length)];
    // Survival of the value, not linearizability: a linearizable read needs a
    // majority of the key's replica set up, and a 30% crash takes half of
    // some sets down.
    const found = await reader.dht.get(key, { consistency: "any" });
    if (found && new TextDecoder().decode(found.value) === key) ok++;
  }
  return ok / keys.length;
}

/** Builds n nodes and runs the crash and churn scenarios. */
export async function simulate(n: number, options: SimulateOptions = {}): Promise<Row> {
  const SEED = options.seed ?? 1;
  const VALUES = options.values ?? 100;
  const started = performance.now();
  // Crash: one network, 30% fail.
  let rng = new Rng(SEED * 1_000_003 + n);
  let net = await build(n, rng);
  const buildS = (performance.now() - started) / 1000;
  const requestsPerJoin = net.requests / n;
  const meanTable = net.nodes.reduce((s, x) => s + x.table.size, 0) / n;
  const { keys, replicas } = await putValues(net, rng, VALUES);
  let hopsSum = 0;
  let hopsMax = 0;
  for (let i = 0; i < LOOKUPS; i++) {
    const node = net.nodes[rng.int(n)];
    const { hops } = await node.dht.findClosest(rng.bytes(32));
    hopsSum += hops;
    hopsMax = Math.max(hopsMax, hops);
  }
  for (const i of rng.sample(n, Math.round(n * 0.3))) net.dead.add(net.nodes[i].contact.address);
  const crashRead = await readable(net, keys, rng);

  // Churn: a fresh network of the same seed, half replaced in ten rounds.
  rng = new Rng(SEED * 1_000_003 + n);
  net = await build(n, rng);
  const written = await putValues(net, rng, VALUES);
  const original = net.nodes.slice();
  const leaving = rng.sample(n, Math.round(n * 0.5));
  const perRound = Math.ceil(leaving.length / 10);
  for (let round = 0; round < 10; round++) {
    for (const i of leaving.slice(round * perRound, (round + 1) * perRound)) {
      net.dead.add(original[i].contact.address);
    }
    for (let j = 0; j < perRound; j++) await net.join();
    await settle();
  }
  for (const node of net.live) await node.dht.republish();
  await settle();
  const churnRead = await readable(net, written.keys, rng);
  return {
    n,
    buildS,
    meanTable,
    hopsMean: hopsSum / LOOKUPS,
    hopsMax,
    putReplicas: replicas,
    crashRead,
    churnRead,
    requestsPerJoin,
    rssMiB: Deno.memoryUsage().rss / 2 ** 20,
  };
}
