// `onFrame` returning (or resolving) false: the connection answers the frame
// as it answers every frame when there is no handler.
import assert from "node:assert/strict";
import { NackError } from "../../lib/errors.ts";
import { NackReason } from "../../lib/protocol.ts";
import type { PeerConnectionOptions } from "../../lib/peer/connection.ts";
import { peers } from "./_pair.ts";

const APP = 4242;
const ONE_WAY = 4243;

/** The NackError of a request of `APP` to a peer whose options are `b`. */
async function nackOf(b: Partial<PeerConnectionOptions>): Promise<NackError> {
  const p = await peers("memory", { b });
  try {
    const error = await p.pa.request(APP, new Uint8Array([1])).then(
      () => assert.fail("the request got an ACK"),
      (error: unknown) => error,
    );
    assert.ok(error instanceof NackError, `expected a NackError, got ${error}`);
    // The connection keeps serving.
    await p.pa.ping();
    return error;
  } finally {
    await p.close();
  }
}

Deno.test("a request whose onFrame returns false gets NACK UNKNOWN_OPCODE, as with no onFrame", async () => {
  const seen: number[] = [];
  const unhandled = await nackOf({ onFrame: (frame) => (seen.push(frame.opcode), false) });
  const noHandler = await nackOf({});
  assert.deepEqual(seen, [APP]);
  assert.equal(unhandled.reason, NackReason.UNKNOWN_OPCODE);
  assert.equal(unhandled.opcode, APP);
  assert.equal(unhandled.message, noHandler.message);
  assert.match(unhandled.message, /got NACK UNKNOWN_OPCODE: Unknown opcode 4242$/);
});

Deno.test("a request whose onFrame resolves false gets NACK UNKNOWN_OPCODE", async () => {
  const error = await nackOf({
    onFrame: async () => {
      await Promise.resolve();
      return false;
    },
  });
  assert.equal(error.reason, NackReason.UNKNOWN_OPCODE);
  assert.match(error.message, /Unknown opcode 4242$/);
});

Deno.test("a request whose onFrame returns true or nothing is left to the handler", async () => {
  for (const result of [true, undefined]) {
    const p = await peers("memory", {
      b: {
        onFrame: (frame, conn) => {
          void conn.ack(frame, new Uint8Array([9]));
          return result;
        },
      },
    });
    try {
      assert.deepEqual(await p.pa.request(APP, new Uint8Array([1])), new Uint8Array([9]));
      assert.equal(p.pb.counters.drops, 0);
    } finally {
      await p.close();
    }
  }
});

for (
  const [name, onFrame] of [
    ["returns", () => false],
    ["resolves", () => Promise.resolve(false)],
  ] as const
) {
  Deno.test(`a one-way frame whose onFrame ${name} false is dropped and counted`, async () => {
    let calls = 0;
    const p = await peers("memory", {
      b: {
        isOneWay: (opcode) => opcode === ONE_WAY,
        onFrame: () => (calls++, onFrame()),
      },
    });
    try {
      await p.pa.send(ONE_WAY, new Uint8Array([1]));
      await p.pa.send(ONE_WAY, new Uint8Array([2]));
      // The PING's ACK comes after B dispatched both frames before it.
      await p.pa.ping();
      assert.equal(calls, 2);
      assert.equal(p.pb.counters.drops, 2);
      // Nothing was answered: A got only the PING's ACK, and dropped nothing.
      assert.equal(p.pa.counters.framesReceived, 1);
      assert.equal(p.pa.counters.drops, 0);
      assert.ok(!p.pa.isClosed && !p.pb.isClosed);
    } finally {
      await p.close();
    }
  });
}
