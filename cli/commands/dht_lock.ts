/**
 * `dht lock KEY` and `dht unlock KEY`: a lease with a fencing token.
 *
 * @module
 */
import { dhtKey, type DhtLease, LockHeldError, type Node } from "../../mod.ts";
import { UsageError } from "../errors.ts";
import type { NodeCommand } from "../node_command.ts";
import { keyOf, optionalInteger, stringOf } from "../options.ts";

/** The node command `dht lock`. */
export const lockNodeCommand: NodeCommand = {
  summary: "take the lock KEY: a lease with a fencing token, until `dht unlock KEY`",
  synopsis: "KEY [--ttl MS]",
  options: {
    ttl: { type: "string", value: "MS", help: "the lease time", otherwise: "10000" },
  },
  prepare(parsed, form) {
    const key = keyOf(parsed, 1);
    const ttl = optionalInteger(parsed, "ttl", 1);
    const keyFile = stringOf(parsed, "key");
    return {
      routesItself: true,
      async run(node, signal) {
        const lease = await node.dht.lock(key, { ttl, signal });
        leasesOf(node).set(key, lease);
        const release = form === "line"
          ? ""
          : keyFile === undefined
          ? `\n(taken with a fresh identity: only its lapse in ${lease.ttl} ms releases it; lock with --key FILE to be able to unlock it)`
          : `\n(release it with \`carrier dht unlock ${
            shellWord(key)
          } --token ${lease.fencingToken} --key ${shellWord(keyFile)}\`)`;
        return {
          fields: {
            key,
            fencingToken: lease.fencingToken,
            ttl: lease.ttl,
            holder: node.address,
          },
          text:
            `locked ${key}: fencing token ${lease.fencingToken}, lease ${lease.ttl} ms${release}`,
        };
      },
    };
  },
};

/** The node command `dht unlock`. */
export const unlockNodeCommand: NodeCommand = {
  summary: "release the lock KEY that `dht lock KEY` took (or that --token names)",
  synopsis: "KEY [--token N]",
  oneShotSynopsis: "KEY --token N",
  options: {
    token: {
      type: "string",
      value: "N",
      help:
        "the lease's fencing token, as `dht lock` printed it; the lock must have been taken with this identity (--key)",
      otherwise: "the lease taken here",
    },
  },
  prepare(parsed, form) {
    const key = keyOf(parsed, 1);
    const token = optionalInteger(parsed, "token", 1);
    if (form === "one-shot" && token === undefined) {
      throw new UsageError(
        "--token N is required: the fencing token `carrier dht lock` printed",
      );
    }
    return {
      routesItself: true,
      async run(node, signal) {
        const lease = token === undefined
          ? leasesOf(node).get(key)
          : { key: dhtKey(key), fencingToken: token, ttl: 0, expiresAt: 0 };
        if (lease === undefined) {
          throw new UsageError(
            `no lock on "${key}" was taken here (\`dht lock ${key}\`); --token N names one taken elsewhere`,
          );
        }
        const released = await release(node, lease, signal);
        if (leasesOf(node).get(key)?.fencingToken === lease.fencingToken) {
          leasesOf(node).delete(key);
        }
        return {
          fields: { key, fencingToken: lease.fencingToken, released },
          text: released
            ? `unlocked ${key} (fencing token ${lease.fencingToken})`
            : `${key}: no lease with fencing token ${lease.fencingToken} was held (it lapsed or was released): nothing to unlock`,
        };
      },
    };
  },
};

/** Leases `dht lock` took, per node and key, for `dht unlock`. */
const LEASES = new WeakMap<Node, Map<string, DhtLease>>();

function leasesOf(node: Node): Map<string, DhtLease> {
  let leases = LEASES.get(node);
  if (leases === undefined) LEASES.set(node, leases = new Map());
  return leases;
}

/** Releases `lease`; resolves whether it was still held (see `Dht.unlock`). */
async function release(node: Node, lease: DhtLease, signal: AbortSignal): Promise<boolean> {
  try {
    return await node.dht.unlock(lease, { signal });
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err;
    throw new LockHeldError(
      `Cannot unlock: the lock is held by ${err.holder} (token ${err.fencingToken}) for ${err.expiresIn} ms more; only the identity that took it (its --key) releases it`,
      { holder: err.holder, fencingToken: err.fencingToken, expiresIn: err.expiresIn, cause: err },
    );
  }
}

/** `word` as one shell word (quoted unless it needs no quotes). */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}
