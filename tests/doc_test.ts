// Every export of the package's three entry points (mod.ts, protocol.ts,
// testing.ts) has an @example that `deno test --doc` type-checks and runs
// (house rule 7). The enums re-exported from gen/ are the exception: gen/ is
// generated and never edited, so their docs come from proto/.
import assert from "node:assert/strict";

/** The parts of `deno doc --json` output this test reads. */
interface DocSymbol {
  name: string;
  declarations: {
    location: { filename: string };
    jsDoc?: { tags?: { kind: string }[] };
  }[];
}

const root = new URL("../", import.meta.url);
const generated = new URL("gen/", root).href;

/** The symbols `deno doc --json ENTRY` reports, as the published package exports them. */
async function exportsOf(entry: string): Promise<DocSymbol[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, `deno doc --json ${entry} failed:\n${decoder.decode(stderr)}`);
  const { nodes } = JSON.parse(decoder.decode(stdout));
  const mod = nodes[new URL(entry, root).href];
  assert.ok(mod !== undefined, `deno doc --json has no node for ${entry}: ${Object.keys(nodes)}`);
  return Array.isArray(mod) ? mod : mod.symbols;
}

/** The entry points deno.json exports. */
const ENTRIES: string[] = Object.values(
  JSON.parse(await Deno.readTextFile(new URL("deno.json", root))).exports as Record<string, string>,
).map((path) => path.replace(/^\.\//, ""));

for (const entry of ENTRIES) {
  Deno.test(`every export of ${entry} outside gen/ has an @example`, async () => {
    await checkExamples(entry);
  });
}

async function checkExamples(entry: string): Promise<void> {
  const symbols = await exportsOf(entry);
  assert.ok(symbols.length > 0, `deno doc --json ${entry} reports no exports`);
  const missing = symbols
    .filter((symbol) => !symbol.declarations.some((d) => d.location.filename.startsWith(generated)))
    .filter((symbol) =>
      !symbol.declarations.some((d) => d.jsDoc?.tags?.some((tag) => tag.kind === "example"))
    )
    .map((symbol) => symbol.name);
  assert.deepEqual(
    missing,
    [],
    `${missing.length} exports of ${entry} have no @example: ${missing.join(", ")}`,
  );
}
