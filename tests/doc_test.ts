// Every export of mod.ts has an @example that `deno test --doc` type-checks and
// runs (house rule 7). The enums mod.ts re-exports from gen/ are the exception:
// gen/ is generated and never edited, so their docs come from proto/.
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

/** The symbols `deno doc --json mod.ts` reports, as the published package exports them. */
async function exportsOfMod(): Promise<DocSymbol[]> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--json", "mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.equal(code, 0, `deno doc --json mod.ts failed:\n${decoder.decode(stderr)}`);
  const { nodes } = JSON.parse(decoder.decode(stdout));
  const mod = nodes[new URL("mod.ts", root).href];
  assert.ok(mod !== undefined, `deno doc --json has no node for mod.ts: ${Object.keys(nodes)}`);
  return Array.isArray(mod) ? mod : mod.symbols;
}

Deno.test("every export of mod.ts outside gen/ has an @example", async () => {
  const symbols = await exportsOfMod();
  assert.ok(symbols.length > 0, "deno doc --json mod.ts reports no exports");
  const missing = symbols
    .filter((symbol) => !symbol.declarations.some((d) => d.location.filename.startsWith(generated)))
    .filter((symbol) =>
      !symbol.declarations.some((d) => d.jsDoc?.tags?.some((tag) => tag.kind === "example"))
    )
    .map((symbol) => symbol.name);
  assert.deepEqual(
    missing,
    [],
    `${missing.length} exports of mod.ts have no @example: ${missing.join(", ")}`,
  );
});
