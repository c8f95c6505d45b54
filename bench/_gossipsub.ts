/**
 * The js-libp2p gossipsub side of `bench/broadcast.ts`: a node of
 * `bench/_libp2p.ts` (TCP + Noise + Yamux) with `@libp2p/identify` and
 * `@libp2p/gossipsub`, and a minimal gossipsub metrics register that keeps
 * every counter as a plain number. The packages are pinned in
 * `bench/deno.json`, like those of `bench/_libp2p.ts`;
 * {@linkcode GOSSIPSUB_PACKAGES} reads their versions from there.
 *
 * `@chainsafe/libp2p-gossipsub` stopped at 14.1.2, built on
 * `@libp2p/interface` 2 (libp2p 2.x); for libp2p 3 gossipsub moved into the
 * js-libp2p monorepo as `@libp2p/gossipsub`, whose 17.1.1 depends on the same
 * `@libp2p/interface` ^3.3.0 and `@libp2p/interface-internal` ^3.1.13 as
 * libp2p 3.3.11.
 *
 * @module
 */
import { type GossipSub, gossipsub, type GossipsubOpts } from "@libp2p/gossipsub";
import { type Identify, identify } from "@libp2p/identify";
import { createLibp2p, type Libp2p } from "libp2p";
import { libp2pBaseOptions, pinnedVersions } from "./_libp2p.ts";

/** The packages this file adds to `LIBP2P_PACKAGES`, and their versions (from `bench/deno.json`). */
export const GOSSIPSUB_PACKAGES: Readonly<Record<string, string>> = pinnedVersions([
  "@libp2p/gossipsub",
  "@libp2p/identify",
]);

/** Gossipsub's metrics interface (not exported by the package by name). */
type MetricsRegister = NonNullable<GossipsubOpts["metricsRegister"]>;

/** A node made by {@linkcode createGossipsubNode}. */
export type GossipsubNode = Libp2p<{ identify: Identify; pubsub: GossipSub }>;

/**
 * Gossipsub's counters (`gossipsub_*` gauges), each summed over its labels:
 * `gossipsub_rpc_sent_message_total`, `gossipsub_rpc_sent_ihave_total`…
 */
export type GossipsubCounters = Map<string, number>;

/**
 * A {@linkcode MetricsRegister} whose gauges add into `counters` (labels
 * summed); histograms and min/max/average figures are dropped.
 */
function countingRegister(counters: GossipsubCounters): MetricsRegister {
  const add = (name: string, value: number) =>
    counters.set(name, (counters.get(name) ?? 0) + value);
  // Gauges are called `inc(value?)` or `inc(labels, value?)`, same for `set`.
  const valueOf = (a: unknown, b: unknown): number =>
    typeof a === "number" ? a : typeof b === "number" ? b : 1;
  return {
    // deno-lint-ignore no-explicit-any
    gauge: ({ name }): any => ({
      inc: (a?: unknown, b?: unknown) => add(name, valueOf(a, b)),
      set: () => {},
      addCollect: () => {},
    }),
    // deno-lint-ignore no-explicit-any
    histogram: (): any => ({ startTimer: () => () => {}, observe: () => {}, reset: () => {} }),
    // deno-lint-ignore no-explicit-any
    avgMinMax: (): any => ({ set: () => {} }),
  };
}

/**
 * Creates a started node listening on 127.0.0.1: TCP, Noise, Yamux,
 * identify (gossipsub learns from it which peers speak its protocol) and
 * gossipsub with its defaults (D = 6, heartbeat 1 s, `floodPublish`,
 * `StrictSign`) except for:
 *
 * - the peer score's IP colocation factor, which would count every peer as
 *   one more node behind the same IP (all are on 127.0.0.1) and graylist
 *   them past 10 peers: 127.0.0.1 is whitelisted, as if each node had its
 *   own address;
 * - `metricsRegister` (with the `metricsTopicStrToLabel` it requires): its
 *   counters add into `counters`.
 */
export async function createGossipsubNode(
  counters: GossipsubCounters,
  options: Partial<GossipsubOpts> = {},
): Promise<GossipsubNode> {
  return await createLibp2p({
    ...libp2pBaseOptions(true),
    services: {
      identify: identify(),
      pubsub: gossipsub({
        scoreParams: { IPColocationFactorWhitelist: new Set(["127.0.0.1"]) },
        metricsRegister: countingRegister(counters),
        metricsTopicStrToLabel: new Map(), // required with a register; labels are summed anyway
        ...options,
      }),
    },
  });
}
