import assert from "node:assert/strict";
import { defaultGateway, localAddressTowards, parseRouteTable } from "../../lib/nat/gateway.ts";

const HEADER =
  "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT";
const row = (
  iface: string,
  dest: string,
  gw: string,
  flags: string,
  metric: number,
  mask: string,
) => `${iface}\t${dest}\t${gw}\t${flags}\t0\t0\t${metric}\t${mask}\t0\t0\t0`;

Deno.test("parseRouteTable reads the default route's little-endian gateway, lowest metric first", () => {
  const table = [
    HEADER,
    row("wlan0", "00000000", "FE01A8C0", "0003", 600, "00000000"), // 192.168.1.254
    row("eth0", "00000000", "01004D0A", "0003", 100, "00000000"), // 10.77.0.1
    row("eth0", "00004D0A", "00000000", "0001", 100, "00FFFFFF"), // on-link
    row("tun0", "00000000", "01010101", "0001", 0, "00000000"), // no RTF_GATEWAY
    row("old0", "00000000", "02020202", "0002", 0, "00000000"), // not RTF_UP
  ].join("\n");
  assert.equal(parseRouteTable(table), "10.77.0.1");
  assert.equal(
    parseRouteTable(
      [HEADER, row("eth0", "00004D0A", "00000000", "0001", 0, "00FFFFFF")].join("\n"),
    ),
    undefined,
  );
  assert.equal(parseRouteTable(""), undefined);
});

Deno.test("defaultGateway reads a route table file, and is undefined where there is none", async () => {
  const file = await Deno.makeTempFile();
  try {
    await Deno.writeTextFile(
      file,
      [HEADER, row("h0", "00000000", "0101A8C0", "0003", 0, "00000000")].join("\n") + "\n",
    );
    assert.equal(await defaultGateway({ routeTable: file }), "192.168.1.1");
    assert.equal(await defaultGateway({ routeTable: `${file}.missing` }), undefined);
    await assert.rejects(defaultGateway({ routeTable: file, signal: AbortSignal.abort() }));
  } finally {
    await Deno.remove(file);
  }
  if (Deno.build.os === "linux") {
    const live = await defaultGateway();
    assert.ok(live === undefined || /^\d+\.\d+\.\d+\.\d+$/.test(live), `got ${live}`);
  }
});

Deno.test("localAddressTowards finds the interface on the gateway's subnet", async () => {
  assert.equal(await localAddressTowards("127.0.0.1"), "127.0.0.1");
  const lan = Deno.networkInterfaces().find((i) =>
    i.family === "IPv4" && !i.address.startsWith("127.") && i.netmask === "255.255.255.0"
  );
  if (lan) {
    const [a, b, c, d] = lan.address.split(".").map(Number);
    const gateway = `${a}.${b}.${c}.${d === 1 ? 2 : 1}`;
    assert.equal(await localAddressTowards(gateway), lan.address);
  }
  assert.equal(await localAddressTowards("not an address"), undefined);
});
