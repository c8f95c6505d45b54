// ContactRequester.reach over a scripted dialer: a contact's addresses are
// tried best first, the next when one does not connect.
import assert from "node:assert/strict";
import { ConnectionLimitError, DialError } from "../../lib/errors.ts";
import { generateIdentitySync } from "../../lib/identity/keys.ts";
import { type ContactDialer, ContactRequester } from "../../lib/overlay/contacts.ts";
import { contactOf, RoutingTable } from "../../lib/overlay/routing_table.ts";
import type { PeerConnection } from "../../lib/peer/connection.ts";

function setup(fail: (address: string) => Error | undefined) {
  const tried: string[] = [];
  const connection = {} as PeerConnection;
  const dialer: ContactDialer = {
    get: () => undefined,
    isEphemeral: () => false,
    canDial: (a) => !a.startsWith("ws://"),
    connect: (peer) => {
      tried.push(peer.transportAddress);
      const error = fail(peer.transportAddress);
      return error ? Promise.reject(error) : Promise.resolve(connection);
    },
  };
  const self = generateIdentitySync({ difficulty: 0 });
  const requester = new ContactRequester(dialer, new RoutingTable(self.nodeId));
  const other = generateIdentitySync({ difficulty: 0 });
  const contact = (addrs: string[]) => contactOf(other.publicKey, other.address, addrs);
  return { tried, connection, requester, contact };
}

Deno.test("reach tries a contact's addresses in order, the next when one does not connect", async () => {
  const t = setup((a) => a === "80.100.100.1:4000" ? new DialError("no hairpin") : undefined);
  const reached = await t.requester.reach(
    t.contact(["ws://x:1/", "80.100.100.1:4000", "10.77.1.10:4000", "192.168.1.2:4000"]),
  );
  assert.equal(reached, t.connection);
  assert.deepEqual(t.tried, ["80.100.100.1:4000", "10.77.1.10:4000"], "skips what it cannot dial");
});

Deno.test("reach gives up after three addresses, and at once on a limit", async () => {
  const t = setup((a) => new DialError(`refused ${a}`));
  const addrs = ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"];
  await assert.rejects(t.requester.reach(t.contact(addrs)), /refused 10\.0\.0\.3:1/);
  assert.deepEqual(t.tried, addrs.slice(0, 3));
  const limited = setup(() => new ConnectionLimitError("ℓ reached"));
  await assert.rejects(limited.requester.reach(limited.contact(addrs)), ConnectionLimitError);
  assert.deepEqual(limited.tried, addrs.slice(0, 1));
});
