/**
 * A swarm for the Jepsen-style DHT checks: n nodes on a
 * {@linkcode FaultNetwork}, some outbound-only, with seeded identities, DHT
 * replicas R and k = R; bootstrapped through one seed node and refreshed
 * until every node sees the same replica set for the workload's keys. It
 * crashes and restarts members (a restart is a new node with the same
 * identity and address and an empty store: there is no persistence).
 *
 * @module
 */
import { createNode, type Node } from "../../mod.ts";
import { type Identity, identityFromSecretKey } from "../../lib/identity/keys.ts";
import { compareDistance } from "../../lib/identity/node_id.ts";
import { dhtKey } from "../../lib/dht/record.ts";
import type { DhtOptions } from "../../lib/dht/dht.ts";
import { type FaultHost, FaultNetwork, type Rng } from "./_faults.ts";

/** One node of the swarm, across crashes and restarts. */
export interface Member {
  /** Its host name on the network (`mem:<name>` when it listens). */
  readonly name: string;
  readonly identity: Identity;
  /** Whether it accepts connections (else it only dials out, and is never a replica). */
  readonly listens: boolean;
  readonly host: FaultHost;
  /** The running node; `undefined` while crashed. */
  node: Node | undefined;
  /** Times it crashed, and restarted. */
  crashes: number;
  restarts: number;
}

/** Options of {@linkcode Swarm.start}. */
export interface SwarmOptions {
  /** Source of identities and delays. */
  rng: Rng;
  /** Nodes that listen. @default {12} */
  listening?: number;
  /** Nodes that only dial out. @default {4} */
  outboundOnly?: number;
  /** Replicas per key (R), also k. @default {5} */
  replicas?: number;
  /** Keys whose replica sets must agree at every node before the run. @default {[]} */
  keys?: readonly string[];
  /** More DHT options. @default {{}} */
  dht?: DhtOptions;
}

/** The majority of `n` replicas. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** A swarm of carrier nodes on a fault network. */
export class Swarm implements AsyncDisposable {
  readonly net: FaultNetwork;
  readonly members: Member[] = [];
  readonly replicas: number;
  readonly #dht: DhtOptions;
  /** Routing-table refresh rounds it took to converge (0: not converged after 4). */
  rounds = 0;

  private constructor(net: FaultNetwork, replicas: number, dht: DhtOptions) {
    this.net = net;
    this.replicas = replicas;
    this.#dht = dht;
  }

  /** Builds, bootstraps and converges a swarm. */
  static async start(options: SwarmOptions): Promise<Swarm> {
    const { rng, listening = 12, outboundOnly = 0, replicas = 5, keys = [] } = options;
    const net = new FaultNetwork(rng.fork("network"));
    const swarm = new Swarm(net, replicas, { ...options.dht, replicas });
    const ids = rng.fork("identities");
    try {
      for (let i = 0; i < listening + outboundOnly; i++) {
        const name = `n${i}`;
        swarm.members.push({
          name,
          identity: identityFromSecretKey(ids.bytes(32)),
          listens: i < listening,
          host: net.host(name),
          node: undefined,
          crashes: 0,
          restarts: 0,
        });
      }
      const [seed] = swarm.members;
      seed.node = await swarm.#create(seed, []);
      const bootstrap = seed.node.peerAddresses;
      for (const member of swarm.members.slice(1)) {
        member.node = await swarm.#create(member, bootstrap);
      }
      const nodes = swarm.nodes();
      for (let i = 0; i < 2_000 && nodes.some((n) => n.peers().length === 0); i++) {
        await new Promise((r) => setTimeout(r, 2));
      }
      for (let round = 1; round <= 4; round++) {
        for (const node of nodes) await node.refreshRoutingTable();
        if (await swarm.converged(keys)) {
          swarm.rounds = round;
          break;
        }
      }
      return swarm;
    } catch (err) {
      await swarm.close();
      throw err;
    }
  }

  #create(member: Member, bootstrap: readonly string[]): Promise<Node> {
    return createNode({
      identity: member.identity,
      puzzleDifficulty: 0,
      transport: member.host,
      listen: member.listens ? [`mem:${member.name}`] : [],
      bootstrap,
      k: this.replicas,
      dht: this.#dht,
    });
  }

  /** The running nodes. */
  nodes(): Node[] {
    return this.members.flatMap((m) => m.node ? [m.node] : []);
  }

  /** The members that are replicas of `key`: the R closest listening ones by XOR distance. */
  replicasOf(key: string): Member[] {
    const k = dhtKey(key);
    return this.members.filter((m) => m.listens)
      .sort((a, b) => compareDistance(k, a.identity.nodeId, b.identity.nodeId))
      .slice(0, this.replicas);
  }

  /** Whether every running node's lookup of each key finds the true replica set. */
  async converged(keys: readonly string[]): Promise<boolean> {
    for (const key of keys) {
      const truth = this.replicasOf(key).filter((m) => m.node).map((m) => m.identity.address);
      const expected = truth.slice().sort().join();
      for (const member of this.members) {
        const node = member.node;
        if (!node) continue;
        const { closest } = await node.dht.lookup(key);
        const seen = member.listens ? [...closest, node.address] : closest;
        const byDistance = seen.map((a) => this.members.find((m) => m.identity.address === a)!)
          .filter((m) => m !== undefined)
          .sort((a, b) => compareDistance(dhtKey(key), a.identity.nodeId, b.identity.nodeId))
          .slice(0, truth.length).map((m) => m.identity.address);
        if (byDistance.slice().sort().join() !== expected) return false;
      }
    }
    return true;
  }

  /** Crashes a member: every connection drops at once, then its node stops. */
  async crash(member: Member): Promise<void> {
    if (!member.node) return;
    member.host.crash();
    const node = member.node;
    member.node = undefined;
    member.crashes++;
    await node.close();
  }

  /**
   * Restarts a crashed member: a new node with the same identity and
   * address, an empty store, bootstrapped through a running listening member,
   * its routing table refreshed.
   */
  async restart(member: Member): Promise<void> {
    if (member.node) return;
    this.net.restart(member.name);
    const via = this.members.find((m) => m !== member && m.listens && m.node);
    const node = await this.#create(member, via ? via.node!.peerAddresses : []);
    member.node = node;
    member.restarts++;
    for (let i = 0; i < 500 && node.peers().length === 0; i++) {
      await new Promise((r) => setTimeout(r, 2));
    }
    await node.refreshRoutingTable();
  }

  /** Closes every node and the network. */
  async close(): Promise<void> {
    await Promise.allSettled(this.nodes().map((n) => n.close()));
    for (const m of this.members) m.node = undefined;
    this.net.close();
  }

  /** Same as {@linkcode Swarm.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
