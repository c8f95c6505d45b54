/**
 * The node under fuzz, run as a child process by the campaign
 * (`tests/fuzz/_harness.ts`): a carrier node from `mod.ts` listening on TCP
 * 127.0.0.1:0 with its defaults (puzzle difficulty 8, limits, timeouts), plus
 * `serveMetrics` (so METRICS is answered, not refused) and two application
 * opcodes (1000 ECHO request/reply, 1001 NOTE one-way) so the application
 * handler path is reachable too.
 *
 * It reports on standard output, one JSON object per line:
 *
 * - `{"type":"ready","address","publicKey","listen","pid"}` once listening;
 * - `{"type":"crash","kind","message","stack"}` for every unhandled
 *   rejection or uncaught exception (both are then prevented from killing
 *   the process, so that every one is counted);
 * - `{"type":"error","key","name","message","stack"}` the first time a node
 *   `error` event of a kind is seen (`key` is the source with addresses
 *   removed, and the error's name); `unexpected` is true when the error is
 *   not a `CarrierError` (an exception escaped a handler);
 * - `{"type":"rss","rss"}` every 250 ms (its own `Deno.memoryUsage().rss`);
 * - replies to the commands it reads on standard input (JSON lines):
 *   `{"cmd":"dial","id","addr"}` connects to `ADDRESS@HOST:PORT` and closes
 *   the connection again (`{"type":"dial","id","ok","error"}`),
 *   `{"cmd":"stats","id"}` (`{"type":"stats","id","errors","unexpected",
 *   "crashes","peers","metrics"}`), `{"cmd":"quit"}` (closes the node, exits 0).
 *
 * Usage: `deno run --allow-net --allow-env --allow-read tests/fuzz/_node.ts [--seed N]`
 *
 * @module
 */
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { CarrierError, createNode, defineOpcode } from "../../mod.ts";
import { nodeIdentity } from "./_material.ts";

const args = Deno.args;
const seedIndex = args.indexOf("--seed");
const seed = seedIndex >= 0 ? Number(args[seedIndex + 1]) : 1;

const encoder = new TextEncoder();
const out = (value: unknown): void => {
  const line = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
};

let crashes = 0;
globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  crashes++;
  const reason = event.reason as Error;
  out({
    type: "crash",
    kind: "unhandledrejection",
    message: String(reason?.message ?? reason),
    stack: String(reason?.stack ?? reason),
  });
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  crashes++;
  const error = event.error as Error;
  out({
    type: "crash",
    kind: "uncaught",
    message: String(error?.message ?? event.message),
    stack: String(error?.stack ?? event.message),
  });
});

const ECHO = defineOpcode(1000, {
  name: "ECHO",
  request: StringValueSchema,
  reply: StringValueSchema,
});
const NOTE = defineOpcode(1001, { name: "NOTE", request: StringValueSchema, oneWay: true });

const node = await createNode({
  identity: nodeIdentity(seed),
  listen: ["127.0.0.1:0"],
  serveMetrics: true,
});
node.handle(ECHO, (message) => create(StringValueSchema, { value: message.value.toUpperCase() }));
node.handle(NOTE, () => undefined);

const ADDRESS = /[1-9A-HJ-NP-Za-km-z]{43,44}/g;
const errors = new Map<string, number>();
let unexpected = 0;
node.addEventListener("error", (event) => {
  const { error, source } = event.detail;
  const expected = error instanceof CarrierError;
  if (!expected) unexpected++;
  const key = `${source.replace(ADDRESS, "<address>").replace(/\d+/g, "N")} ${error.name}${
    expected ? "" : " (unexpected)"
  }`;
  const seen = errors.get(key) ?? 0;
  errors.set(key, seen + 1);
  // Every unexpected error is reported (each is a crash); expected ones once per kind.
  if (seen === 0 || !expected) {
    out({
      type: "error",
      key,
      unexpected: !expected,
      name: error.name,
      message: error.message,
      stack: seen === 0 ? error.stack : "",
    });
  }
});

// Its RSS, for a campaign that may not read /proc (Deno wants --allow-all for
// /proc/<pid>/status when --allow-run is granted, as under `deno task test`).
setInterval(() => out({ type: "rss", rss: Deno.memoryUsage().rss }), 250);

out({
  type: "ready",
  address: node.address,
  publicKey: Array.from(node.identity.publicKey),
  listen: node.listenAddrs,
  pid: Deno.pid,
  rss: Deno.memoryUsage().rss,
});

const decoder = new TextDecoder();
let buffered = "";
for await (const chunk of Deno.stdin.readable) {
  buffered += decoder.decode(chunk, { stream: true });
  let newline;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, newline);
    buffered = buffered.slice(newline + 1);
    if (line.trim() === "") continue;
    const command = JSON.parse(line);
    if (command.cmd === "dial") {
      node.connect(command.addr).then(
        async (peer) => {
          await peer.close();
          out({ type: "dial", id: command.id, ok: true });
        },
        (err: Error) =>
          out({
            type: "dial",
            id: command.id,
            ok: false,
            error: `${err?.name}: ${err?.message}`,
          }),
      );
    } else if (command.cmd === "stats") {
      out({
        type: "stats",
        id: command.id,
        errors: Object.fromEntries(errors),
        unexpected,
        crashes,
        peers: node.peers().length,
        dhtRecords: node.dht.size,
        metrics: node.metrics(),
      });
    } else if (command.cmd === "quit") {
      await node.close();
      out({ type: "closed" });
      Deno.exit(0);
    }
  }
}
// Standard input closed: the campaign is gone.
await node.close();
Deno.exit(0);
