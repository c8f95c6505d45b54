/**
 * The demo's last part: the DHT on the swarm: a value, a compare-and-swap
 * race, a lock, a JSON patch.
 *
 * @module
 */
import { LockHeldError, type Node, QuorumError, VersionConflictError } from "../../mod.ts";
import { parseJsonPatch } from "../../protocol.ts";
import type { CliOutput } from "../output.ts";

/**
 * Part of the demo, on the swarm of `demoSwarm` (nodes 20 to 23 accept no
 * connections: they read and write through the replicas, the 20 closest
 * listening nodes to a key): a value, a compare-and-swap race, a lock, a
 * JSON patch.
 */
export async function demoDht(io: CliOutput, nodes: Node[]): Promise<void> {
  io.out("== The DHT on the same swarm: values, compare-and-swap, a lock, a JSON patch");
  const label = (n: Node) =>
    `node ${nodes.indexOf(n)}${n.listenAddrs.length === 0 ? " (outbound only)" : ""}`;
  const encode = (text: string) => new TextEncoder().encode(text);
  const decode = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);
  const since = (t0: number) => `${(performance.now() - t0).toFixed(0)} ms`;

  // A value: put on one node, get on another.
  const [writer, reader] = [nodes[3], nodes[21]];
  let t0 = performance.now();
  const put = await writer.dht.put("greeting", encode("hello, dht"));
  const putTime = since(t0);
  t0 = performance.now();
  const got = await reader.dht.get("greeting");
  io.out(
    `${
      label(writer)
    } put "greeting" = "hello, dht": version ${put.version} at ${put.replicas} replicas in ${putTime}; ${
      label(reader)
    } got "${decode(got?.value)}", version ${got?.version}, in ${since(t0)}`,
  );

  // A race: each racer adds one to the counter, retrying (read, compare-and-swap) when it loses.
  const racers = [nodes[1], nodes[6], nodes[11], nodes[16], nodes[22]];
  await racers[0].dht.cas("counter", encode("0"), 0);
  let won = 0, lost = 0, uncertain = 0;
  t0 = performance.now();
  await Promise.all(racers.map(async (racer) => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const current = await racer.dht.get("counter");
      const next = encode(String(Number(decode(current?.value)) + 1));
      try {
        await racer.dht.cas("counter", next, current?.version ?? 0);
        won++;
        return;
      } catch (err) {
        if (err instanceof VersionConflictError) lost++;
        else if (err instanceof QuorumError) uncertain++;
        else throw err;
      }
      await new Promise((r) => setTimeout(r, Math.random() * 10 * (attempt + 1))); // back off
    }
  }));
  const counter = await nodes[9].dht.get("counter");
  const count = Number(decode(counter?.value));
  io.out(
    `${racers.length} nodes each added 1 to "counter" by compare-and-swap, retrying when they lost, in ${
      since(t0)
    }: ${won} acknowledged, ${lost} lost with VersionConflictError${
      uncertain > 0 ? `, ${uncertain} uncertain (QuorumError)` : ""
    }; ${label(nodes[9])} reads ${count} at version ${counter?.version}: ${
      count === won
        ? "every acknowledged increment, no other"
        : count > won && count <= won + uncertain
        ? `every acknowledged increment, and ${count - won} of the uncertain ones`
        : `MISMATCH with ${won} acknowledged`
    }`,
  );

  // A lock: one holder at a time; fencing tokens only grow.
  const [holder, rival] = [nodes[4], nodes[23]];
  const lease = await holder.dht.lock("job", { ttl: 5_000 });
  let refusal = "granted to both: MISMATCH";
  try {
    await rival.dht.unlock(await rival.dht.lock("job"));
  } catch (err) {
    if (!(err instanceof LockHeldError)) throw err;
    refusal = `held by ${err.holder.slice(0, 8)}… (${
      err.holder === holder.address ? label(holder) : "another node"
    }), token ${err.fencingToken}, ${err.expiresIn} ms left`;
  }
  await holder.dht.unlock(lease);
  const next = await rival.dht.lock("job", { ttl: 5_000 });
  await rival.dht.unlock(next);
  io.out(
    `${label(holder)} locked "job": fencing token ${lease.fencingToken}, lease ${lease.ttl} ms; ${
      label(rival)
    } tried: ${refusal}; after the unlock it got the lock with token ${next.fencingToken}`,
  );

  // A JSON document changed by a patch, and the change read back.
  const [author, editor, follower] = [nodes[5], nodes[12], nodes[20]];
  const doc = JSON.stringify({ title: "shopping", items: ["bread"] });
  const first = await author.dht.put("list", encode(doc));
  const ops = parseJsonPatch(
    '[{"op":"add","path":"/items/-","value":"milk"},{"op":"replace","path":"/title","value":"groceries"}]',
  );
  const patched = await editor.dht.patch("list", { json: ops }, first.version);
  const { changes } = await follower.dht.changes("list", first.version);
  const now = await follower.dht.get("list");
  io.out(
    `${label(author)} put "list" = ${doc} (version ${first.version}); ${
      label(editor)
    } patched it to version ${patched.version}: ${ops.map((o) => `${o.op} ${o.path}`).join(", ")}`,
  );
  io.out(
    `${label(follower)} read the changes since version ${first.version}: ${changes.length} ${
      changes.length === 1 ? "change" : "changes"
    }${
      changes.map((c) =>
        `, ${c.baseVersion} -> ${c.version} (${
          "json" in c.patch
            ? c.patch.json.map((o) => `${o.op} ${o.path}`).join(", ")
            : "splices"
        })`
      ).join("")
    }; the value now: ${decode(now?.value)}`,
  );
}
