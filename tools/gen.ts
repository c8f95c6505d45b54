/**
 * Lints `proto/` with buf and generates `gen/` with the local protoc-gen-es
 * plugin (both from npm, so this works offline once they are cached). Both
 * are pinned in `tools/deno.json` and locked in `tools/deno.lock`, not in the
 * library's root config: buf runs here, and protoc-gen-es in `buf.gen.yaml`,
 * as `deno run --config tools/deno.json <package>`.
 *
 *   deno task gen            regenerate gen/
 *   deno run ... --check     regenerate into a temporary folder and fail if
 *                            it differs from the committed gen/
 *
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join, relative } from "node:path";

/** The tools' config: its import map pins buf and protoc-gen-es. */
const CONFIG = "tools/deno.json";

const { values } = parseArgs({
  args: Deno.args,
  options: { check: { type: "boolean", default: false } },
});

const root = join(import.meta.dirname!, "..");
const deno = Deno.execPath();
// buf.gen.yaml runs the plugin as `deno run ...`: make sure it finds this Deno.
const env = {
  PATH: `${dirname(deno)}:${Deno.env.get("PATH") ?? ""}`,
  NO_COLOR: "1",
};

async function buf(args: string[]): Promise<void> {
  const { code, stdout, stderr } = await new Deno.Command(deno, {
    args: ["run", "--allow-all", "--quiet", "--config", CONFIG, "@bufbuild/buf", ...args],
    cwd: root,
    env,
  }).output();
  const out = new TextDecoder().decode(stdout) +
    new TextDecoder().decode(stderr);
  if (code !== 0) {
    throw new Error(`buf ${args.join(" ")} failed (exit ${code}):\n${out}`);
  }
}

async function listFiles(
  dir: string,
  base = dir,
): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      for (const [k, v] of await listFiles(path, base)) files.set(k, v);
    } else {
      files.set(relative(base, path), await Deno.readTextFile(path));
    }
  }
  return files;
}

await buf(["lint"]);
if (!values.check) {
  await buf(["generate"]);
  console.log("gen/ regenerated from proto/");
} else {
  const tmp = await Deno.makeTempDir({ prefix: "carrier-gen-" });
  try {
    await buf(["generate", "--output", tmp]);
    const fresh = await listFiles(join(tmp, "gen"));
    const committed = await listFiles(join(root, "gen"));
    const drift: string[] = [];
    for (const [path, text] of fresh) {
      if (committed.get(path) !== text) {
        drift.push(`changed or missing: gen/${path}`);
      }
    }
    for (const path of committed.keys()) {
      if (!fresh.has(path)) drift.push(`stale: gen/${path}`);
    }
    if (drift.length > 0) {
      console.error(
        `gen/ is out of date with proto/; run \`deno task gen\`:\n  ${drift.join("\n  ")}`,
      );
      Deno.exit(1);
    }
    console.log(`gen/ matches proto/ (${fresh.size} files)`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}
