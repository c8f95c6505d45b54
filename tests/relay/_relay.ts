// What the relay and hole-punching tests share: an application opcode to
// make requests with, and a wait on a condition.
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { type StringValue, StringValueSchema } from "@bufbuild/protobuf/wkt";
import { defineOpcode } from "../../mod.ts";

/** An application request answered with a string. */
export const ECHO = defineOpcode(1000, {
  name: "ECHO",
  request: StringValueSchema,
  reply: StringValueSchema,
});

/** A `StringValue` of `value`. */
export const str = (value: string): StringValue => create(StringValueSchema, { value });

/** Waits until `check()` holds, failing after `ms` with `what`. */
export async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
