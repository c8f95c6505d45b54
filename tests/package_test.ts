// The library's package, lockfile and binary carry only the library (issue 14).
// bench/ (js-libp2p) and tools/ (buf, protoc-gen-es) have their own deno.json
// and deno.lock; these tests fail when their packages leak back into the root
// deno.lock (which `deno task demo` downloads whole on a fresh machine) or
// into the `deno task compile` binary, or when the members' copies of the
// library's mappings drift from the root's.
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url);
const decoder = new TextDecoder();

/** The parts of a deno.json these tests read. */
interface Config {
  imports?: Record<string, string>;
  tasks?: Record<string, string | { command?: string }>;
  fmt?: { lineWidth?: number };
  lint?: { rules?: unknown };
}

/** The parts of `deno info --json` output these tests read. */
interface Info {
  modules: { kind: string; npmPackage?: string }[];
  npmPackages: Record<string, { name: string; version: string; dependencies: string[] }>;
}

async function readConfig(path: string): Promise<Config> {
  return JSON.parse(await Deno.readTextFile(new URL(path, root)));
}

/** Runs this Deno with `args` in the repository's root; fails on a non-zero exit. */
async function deno(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: root,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = { stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
  assert.equal(
    code,
    0,
    `deno ${args.join(" ")} failed (exit ${code}):\n${out.stdout}${out.stderr}`,
  );
  return out;
}

let infoOnce: Promise<Info> | undefined;

/** `deno info --json cli.ts` (once): the CLI's module graph and the root lockfile's npm snapshot. */
function cliInfo(): Promise<Info> {
  infoOnce ??= deno(["info", "--json", "cli.ts"]).then(({ stdout }) => JSON.parse(stdout));
  return infoOnce;
}

/** The `name@version` of every npm package in `ids` and in their dependencies. */
function closure(info: Info, ids: Iterable<string>): Set<string> {
  const seen = new Set<string>();
  const found = new Set<string>();
  const todo = [...ids];
  for (let id = todo.pop(); id !== undefined; id = todo.pop()) {
    if (seen.has(id)) continue;
    seen.add(id);
    const pkg = info.npmPackages[id];
    assert.ok(pkg !== undefined, `deno info lists no npm package ${id}`);
    found.add(`${pkg.name}@${pkg.version}`);
    todo.push(...pkg.dependencies);
  }
  return found;
}

/** The npm packages (`name@version`) the CLI's module graph reaches. */
function cliPackages(info: Info): Set<string> {
  const direct = info.modules.flatMap((m) =>
    m.kind === "npm" && m.npmPackage ? [m.npmPackage] : []
  );
  return closure(info, direct);
}

/** The package name of an import map target (`npm:name@range` or `npm:/name@range/`). */
function npmName(target: string): string | undefined {
  return target.match(/^npm:\/?((?:@[^/@]+\/)?[^/@]+)/)?.[1];
}

const nameOf = (nameAtVersion: string) => nameAtVersion.slice(0, nameAtVersion.lastIndexOf("@"));

/**
 * The paths in the "Embedded Files" tree that `deno compile` prints, one for
 * each entry, relative to the tree's root. An entry may stand for a folder
 * collapsed to `name/*`.
 */
function embeddedPaths(output: string): string[] {
  const lines = output.split("\n");
  const start = lines.findIndex((line) => line.trim() === "Embedded Files");
  assert.ok(start >= 0, `deno compile printed no "Embedded Files" tree:\n${output}`);
  const paths: string[] = [];
  const parents: string[] = [];
  for (const line of lines.slice(start + 1)) {
    // "│   │ ├── buf-linux-x64/* (95MB)": two columns of "│ " or "  " per level.
    const entry = line.match(/^([│ ]*)[├└]─[─┬] (.+?)(?: \([^()]*\))?$/);
    if (entry === null) {
      if (paths.length > 0 && line.trim() === "") break;
      continue;
    }
    parents.length = entry[1].length / 2;
    parents.push(entry[2]);
    paths.push(parents.join("/"));
  }
  assert.ok(paths.length > 0, `no entries in deno compile's embedded files tree:\n${output}`);
  return paths;
}

/**
 * The npm packages among embedded `paths`: each as its name, and its version
 * where the tree shows one (a package with a single version is often
 * collapsed to `name/*`).
 */
function embeddedPackages(paths: string[]): Map<string, Set<string>> {
  const packages = new Map<string, Set<string>>();
  for (const path of paths) {
    // .deno_compile_node_modules/<registry>/[@scope/]name/version/…
    const [top, _registry, ...rest] = path.split("/").filter((s) => s !== "*");
    if (top !== ".deno_compile_node_modules" || rest.length === 0) continue;
    const scoped = rest[0].startsWith("@");
    if (scoped && rest.length < 2) continue; // a scope's folder
    const name = scoped ? `${rest[0]}/${rest[1]}` : rest[0];
    const version = rest[scoped ? 2 : 1];
    const versions = packages.get(name) ?? new Set<string>();
    if (version !== undefined && /^\d/.test(version)) versions.add(version);
    packages.set(name, versions);
  }
  return packages;
}

/** The args of `deno task compile` (after `deno`), with its `--output` replaced by `output`. */
async function compileArgs(output: string): Promise<string[]> {
  const task = (await readConfig("deno.json")).tasks?.compile;
  const command = typeof task === "string" ? task : task?.command;
  assert.ok(command !== undefined, "deno.json has no compile task");
  const [deno, ...args] = command.split(/\s+/);
  assert.equal(deno, "deno", `the compile task is not a deno command: ${command}`);
  const at = args.indexOf("--output");
  assert.ok(at >= 0 && at + 1 < args.length, `the compile task names no --output: ${command}`);
  args[at + 1] = output;
  return args;
}

Deno.test("deno task compile embeds only the CLI's npm packages and nothing from bench/ or tools/", async () => {
  const cli = cliPackages(await cliInfo());
  const dir = await Deno.makeTempDir({ prefix: "carrier-package-" });
  try {
    // DENORT_BIN: the runtime is this Deno, so compiling needs no download.
    const { stderr } = await deno(await compileArgs(`${dir}/carrier`), {
      DENORT_BIN: Deno.execPath(),
    });
    const paths = embeddedPaths(stderr);

    const local = paths.filter((p) => !p.startsWith(".deno_compile_node_modules"));
    assert.ok(local.includes("cli.ts"), `the tree's root is not the repository's:\n${stderr}`);
    const members = local.filter((p) => /^(bench|tools)(\/|$)/.test(p));
    assert.deepEqual(members, [], `bench/ or tools/ files are embedded:\n${stderr}`);

    const embedded = embeddedPackages(paths);
    const cliNames = new Set([...cli].map(nameOf));
    const outside = [...embedded.keys()].filter((name) => !cliNames.has(name));
    assert.deepEqual(
      outside,
      [],
      `npm packages outside the CLI's module graph are embedded:\n${stderr}`,
    );
    const otherVersions = [...embedded].flatMap(([name, versions]) =>
      [...versions].map((v) => `${name}@${v}`).filter((id) => !cli.has(id))
    );
    assert.deepEqual(otherVersions, [], `versions the CLI does not use are embedded:\n${stderr}`);
    // And the binary has what the CLI needs (the tree was read right).
    const missing = [...cliNames].filter((name) => !embedded.has(name));
    assert.deepEqual(missing, [], `the CLI's npm packages are not all embedded:\n${stderr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno.lock locks only the packages that deno.json's imports need", async () => {
  const info = await cliInfo();
  const imports = (await readConfig("deno.json")).imports ?? {};
  const names = new Set(Object.values(imports).map(npmName).filter((n) => n !== undefined));
  // deno info's npmPackages is the lockfile's whole npm snapshot.
  const direct = Object.entries(info.npmPackages)
    .filter(([, pkg]) => names.has(pkg.name))
    .map(([id]) => id);
  const needed = closure(info, direct);
  const locked = Object.values(info.npmPackages).map((pkg) => `${pkg.name}@${pkg.version}`);
  const extra = locked.filter((id) => !needed.has(id));
  assert.deepEqual(
    extra,
    [],
    `deno.lock holds packages that nothing in deno.json's imports needs: ${extra.join(", ")} ` +
      "(bench/ and tools/ run with --config bench/deno.json or tools/deno.json, whose " +
      "lockfiles sit beside them)",
  );
});

for (const member of ["bench", "tools"]) {
  Deno.test(`${member}/deno.json maps the library's packages and formats as deno.json does`, async () => {
    const [rootConfig, config] = await Promise.all([
      readConfig("deno.json"),
      readConfig(`${member}/deno.json`),
    ]);
    const library = new Set([...cliPackages(await cliInfo())].map(nameOf));
    const rootImports = rootConfig.imports ?? {};
    const imports = config.imports ?? {};
    for (const [key, target] of Object.entries(rootImports)) {
      const needed = library.has(npmName(target) ?? "");
      if (needed || key in imports) {
        assert.equal(imports[key], target, `${member}/deno.json maps ${key} otherwise`);
      }
    }
    assert.equal(config.fmt?.lineWidth, rootConfig.fmt?.lineWidth, `${member}/deno.json fmt`);
    assert.deepEqual(config.lint?.rules, rootConfig.lint?.rules, `${member}/deno.json lint rules`);
  });
}
