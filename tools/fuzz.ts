/**
 * `deno task fuzz`: the fuzz campaign against a live carrier node (issue 11,
 * "a node that keeps serving under hostile peers").
 *
 * Feeds generated and mutated inputs to every parser and handler reachable
 * from the network: Noise handshake messages 1 and 3 (the node as
 * responder) and 2 (the node as initiator), transport messages, the frame
 * decoder, every opcode's handler (and unknown opcodes, and compressed
 * payloads), the five compression decoders, JSON patches and byte splices.
 * The node runs in a child process over TCP on 127.0.0.1; a legit peer makes
 * a fresh connection and a PING every second throughout. Prints a table per
 * target; exits 1 if anything crashed or hung, or a legit PING failed.
 *
 * ```sh
 * deno task fuzz                                  # every target, 1,000,000 inputs each
 * deno task fuzz --inputs 20000 --seed 7          # fewer inputs, another seed
 * deno task fuzz --duration 600                   # ten minutes in all, shared by the targets
 * deno task fuzz --target op.STORE --target noise.  # some targets (a trailing dot: a prefix)
 * deno task fuzz --target patch.json --seed 7 --replay 1234   # one input again
 * deno task fuzz --list                           # the targets
 * ```
 *
 * @module
 */
import { formatReport, isClean, runCampaign, targetNames } from "../tests/fuzz/_campaign.ts";
import { LOCAL_INPUTS } from "../tests/fuzz/_local.ts";
import { Rng } from "../tests/fuzz/_rng.ts";

const USAGE = `Usage: deno task fuzz [options]

  --inputs N          inputs per target [default: 1000000; unbounded with --duration alone]
  --duration SECONDS  time for the whole run, shared by the targets
  --seed N            the seed every input derives from [default: 1]
  --target NAME       run only this target (repeatable; "noise." runs a prefix)
  --replay INDEX      run input INDEX of the target alone (with --target and --seed)
  --part live|local   for --replay of a target with both parts [default: local]
  --hang-ms MS        a live batch or connection unanswered this long is a hang [default: 10000]
  --local-hang-ms MS  an in-process input running this long is a hang [default: 2000]
  --concurrency N     connections in flight in the connection targets [default: 6]
  --live-share X      share of inputs sent live where a target also runs in process
  --memory            feed the Noise targets' in-process share to a node over a memory
                      transport in each worker (slower, deeper) instead of the state machine
  --workers N         workers for the in-process shares [default: 2]
  --json FILE         also write the report as JSON
  --list              list the targets
  --help              this text`;

function parse(args: string[]) {
  const out: Record<string, string[]> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) throw new Error(`unexpected argument ${arg}`);
    const [name, inline] = arg.slice(2).split("=", 2);
    if (name === "list" || name === "help" || name === "memory") {
      (out[name] ??= []).push("true");
      continue;
    }
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`--${name} needs a value`);
    (out[name] ??= []).push(value);
  }
  return out;
}

function number(flags: Record<string, string[]>, name: string): number | undefined {
  const value = flags[name]?.at(-1);
  if (value === undefined) return undefined;
  const n = Number(value.replace(/_/g, ""));
  if (!Number.isFinite(n) || n < 0) {
    throw new Error(`--${name} must be a non-negative number, got ${value}`);
  }
  return n;
}

async function main(): Promise<number> {
  let flags: Record<string, string[]>;
  try {
    flags = parse(Deno.args);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (flags.help) {
    console.log(USAGE);
    return 0;
  }
  if (flags.list) {
    for (const name of targetNames()) console.log(name);
    return 0;
  }
  const seed = number(flags, "seed") ?? 1;
  const targets = (flags.target ?? []).flatMap((t) => t.split(",")).filter((t) => t !== "");
  const replay = number(flags, "replay");
  if (replay !== undefined) {
    if (targets.length !== 1) {
      console.error("--replay needs exactly one --target");
      return 2;
    }
    const name = targets[0];
    const part = flags.part?.at(-1) ?? "local";
    if (name in LOCAL_INPUTS && part === "local") {
      console.log(`replaying ${name} input ${replay} (seed ${seed}) in process`);
      try {
        const outcome = await LOCAL_INPUTS[name](Rng.forInput(seed, name, replay), replay, seed);
        console.log(`outcome: ${outcome}`);
        return 0;
      } catch (err) {
        console.log(`finding: ${(err as Error)?.stack ?? err}`);
        const input = (err as { input?: string }).input;
        if (input) console.log(`input (hex): ${input}`);
        return 1;
      }
    }
  }
  let report;
  try {
    report = await runCampaign({
      seed,
      inputs: replay !== undefined ? replay + 1 : number(flags, "inputs"),
      from: replay,
      duration: number(flags, "duration"),
      targets,
      hangMs: number(flags, "hang-ms"),
      localHangMs: number(flags, "local-hang-ms"),
      concurrency: number(flags, "concurrency"),
      liveShare: replay !== undefined ? 1 : number(flags, "live-share"),
      memory: flags.memory !== undefined,
      workers: number(flags, "workers"),
    });
  } catch (err) {
    console.error((err as Error)?.stack ?? err);
    return 2;
  }
  console.log(formatReport(report));
  const json = flags.json?.at(-1);
  if (json) await Deno.writeTextFile(json, JSON.stringify(report, null, 2) + "\n");
  return isClean(report) ? 0 : 1;
}

Deno.exit(await main());
