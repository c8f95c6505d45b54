/**
 * A scriptable fake UPnP Internet Gateway Device on 127.0.0.1: a unicast SSDP
 * responder (node:dgram) and an HTTP server (Deno.serve) for the device
 * description and the SOAP control endpoint. It records what it received
 * (the M-SEARCHes, every SOAP call's decoded arguments) and keeps a mapping
 * table, so tests assert what the client really sent.
 *
 * Its XML reading is its own (a regex over the action's arguments), not the
 * client's, so the client's escaping is checked by something else.
 *
 * @module
 */

import dgram from "node:dgram";

/** How the fake behaves. */
export interface FakeIgdOptions {
  /** IGD and WANIPConnection version (2 has AddAnyPortMapping). Default 2. */
  version?: 1 | 2;
  /** Offer only WANPPPConnection:1 (an IGD v1). */
  ppp?: boolean;
  /**
   * A DSL router (IGD v1): a WANIPConnection:1 that fails every action (501) beside the
   * WANPPPConnection:1 that works, at /ctl/PPPConn.
   */
  dslRouter?: boolean;
  /** What GetExternalIPAddress answers. Default "80.100.100.1". */
  externalAddress?: string;
  /** Fault 725 OnlyPermanentLeasesSupported on a non-zero lease. */
  permanentOnly?: boolean;
  /** External ports held by another host: AddPortMapping on them faults 718. */
  conflictPorts?: number[];
  /** Every AddPortMapping faults 718. */
  conflictAll?: boolean;
  /** A v2 device whose AddAnyPortMapping faults 401 InvalidAction. */
  noAddAny?: boolean;
  /** The host put in the SSDP answers' LOCATION. Default "127.0.0.1". */
  locationHost?: string;
  /** Pad the device description to this many bytes. */
  descriptionSize?: number;
  /** Emit a URLBase (`http://127.0.0.1:PORT/base/`) and a relative controlURL. */
  urlBase?: boolean;
  /** Put the controlURL on this host instead. */
  controlUrlHost?: string;
  /** Answer with Transfer-Encoding: chunked. */
  chunked?: boolean;
  /** Never answer SOAP calls (until closed). */
  hang?: boolean;
  /** Datagrams sent to each searcher before the real answers. */
  ssdpExtra?: Uint8Array[];
}

/** One SOAP call as the fake decoded it. */
export interface SoapCall {
  /** The request path. */
  path: string;
  /** The SOAPAction header, quotes removed. */
  soapAction: string;
  /** The action's element name. */
  action: string;
  /** The arguments, entities decoded. */
  args: Record<string, string>;
  /** The raw body. */
  body: string;
}

/** A mapping the fake holds. */
export interface FakeMapping {
  protocol: string;
  externalPort: number;
  internalPort: number;
  internalClient: string;
  lease: number;
  description: string;
}

const IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice";

function unescape(text: string): string {
  return text.replace(
    /&(lt|gt|quot|apos|amp);/g,
    (_, name: string) => ({ lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" })[name]!,
  );
}

/** The fake gateway. */
export class FakeIgd implements AsyncDisposable {
  readonly options: FakeIgdOptions;
  /** M-SEARCH datagrams received, as text. */
  readonly searches: string[] = [];
  /** HTTP requests received (any path). */
  readonly requests: string[] = [];
  /** SOAP calls received. */
  readonly calls: SoapCall[] = [];
  /** Mappings held, by `PROTOCOL:port`. */
  readonly mappings = new Map<string, FakeMapping>();
  #socket: dgram.Socket;
  #server: Deno.HttpServer<Deno.NetAddr>;
  #closing = Promise.withResolvers<void>();
  #requested = Promise.withResolvers<void>();

  private constructor(
    options: FakeIgdOptions,
    socket: dgram.Socket,
    server: Deno.HttpServer<Deno.NetAddr>,
  ) {
    this.options = options;
    this.#socket = socket;
    this.#server = server;
  }

  /** Starts the responder and the HTTP server on 127.0.0.1, ports chosen by the system. */
  static async start(options: FakeIgdOptions = {}): Promise<FakeIgd> {
    const socket = dgram.createSocket("udp4");
    await new Promise<void>((resolve) => socket.bind({ address: "127.0.0.1", port: 0 }, resolve));
    const ready = Promise.withResolvers<FakeIgd>();
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request) => (await ready.promise).#handle(request),
    );
    const fake = new FakeIgd(options, socket, server);
    ready.resolve(fake);
    socket.on("message", (message, remote) => fake.#search(message, remote));
    return fake;
  }

  /** The SSDP responder's port. */
  get ssdpPort(): number {
    return (this.#socket.address() as { port: number }).port;
  }

  /** The HTTP server's port. */
  get httpPort(): number {
    return this.#server.addr.port;
  }

  /** The device description's URL. */
  get location(): string {
    return `http://127.0.0.1:${this.httpPort}/rootDesc.xml`;
  }

  /** Resolves when the first HTTP request arrives. */
  get requested(): Promise<void> {
    return this.#requested.promise;
  }

  get #version(): 1 | 2 {
    return this.options.ppp || this.options.dslRouter ? 1 : this.options.version ?? 2;
  }

  get #serviceType(): string {
    return this.options.ppp || this.options.dslRouter
      ? "urn:schemas-upnp-org:service:WANPPPConnection:1"
      : `urn:schemas-upnp-org:service:WANIPConnection:${this.#version}`;
  }

  #search(message: Uint8Array, remote: { address: string; port: number }): void {
    const text = new TextDecoder().decode(message);
    if (!text.startsWith("M-SEARCH * HTTP/1.1\r\n")) return;
    this.searches.push(text);
    const st = /\r\nST: *([^\r\n]*)/i.exec(text)?.[1] ?? "";
    for (const extra of this.options.ssdpExtra ?? []) {
      this.#socket.send(extra, remote.port, remote.address);
    }
    const served = this.#version === 2 ? [`${IGD}:2`, `${IGD}:1`] : [`${IGD}:1`];
    if (!served.includes(st)) return;
    const host = this.options.locationHost ?? "127.0.0.1";
    const answer = [
      "HTTP/1.1 200 OK",
      "CACHE-CONTROL: max-age=120",
      `ST: ${st}`,
      `USN: uuid:00000000-fake-igd::${st}`,
      "EXT:",
      "SERVER: Deno/2 UPnP/1.1 FakeIGD/1",
      `LOCATION: http://${host}:${this.httpPort}/rootDesc.xml`,
      "",
      "",
    ].join("\r\n");
    this.#socket.send(new TextEncoder().encode(answer), remote.port, remote.address);
  }

  #description(): string {
    const v = this.#version;
    const urlBase = this.options.urlBase
      ? `<URLBase>http://127.0.0.1:${this.httpPort}/base/</URLBase>`
      : "";
    const control = this.options.controlUrlHost
      ? `http://${this.options.controlUrlHost}:${this.httpPort}/ctl/IPConn`
      : this.options.urlBase
      ? "ctl/IPConn"
      : this.options.dslRouter
      ? "/ctl/PPPConn"
      : "/ctl/IPConn";
    const down = this.options.dslRouter
      ? `<service>
    <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
    <controlURL>/ctl/IPConn</controlURL>
   </service>`
      : "";
    const xml = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>1</minor></specVersion>${urlBase}
<device>
 <deviceType>${IGD}:${v}</deviceType>
 <friendlyName>Fake IGD</friendlyName>
 <serviceList><service>
  <serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
  <serviceId>urn:upnp-org:serviceId:L3Forwarding1</serviceId>
  <controlURL>/ctl/L3F</controlURL>
 </service></serviceList>
 <deviceList><device>
  <deviceType>urn:schemas-upnp-org:device:WANDevice:${v}</deviceType>
  <!-- <service><serviceType>${this.#serviceType}</serviceType><controlURL>/decoy</controlURL></service> -->
  <serviceList><service>
   <serviceType>urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1</serviceType>
   <controlURL>/ctl/CmnIfCfg</controlURL>
  </service></serviceList>
  <deviceList><device>
   <deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:${v}</deviceType>
   <serviceList>${down}<service>
    <serviceType>${this.#serviceType}</serviceType>
    <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
    <controlURL>${control}</controlURL>
    <eventSubURL>/evt/IPConn</eventSubURL>
    <SCPDURL>/WANIPCn.xml</SCPDURL>
   </service></serviceList>
  </device></deviceList>
 </device></deviceList>
</device>
</root>
`;
    const size = this.options.descriptionSize ?? 0;
    return size > xml.length ? xml + " ".repeat(size - xml.length) : xml;
  }

  #reply(status: number, body: string): Response {
    const headers = { "content-type": 'text/xml; charset="utf-8"' };
    if (!this.options.chunked) return new Response(body, { status, headers });
    const bytes = new TextEncoder().encode(body);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 100) controller.enqueue(bytes.slice(i, i + 100));
        controller.close();
      },
    });
    return new Response(stream, { status, headers });
  }

  #fault(code: number, description: string): Response {
    return this.#reply(
      500,
      `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>${code}</errorCode><errorDescription>${description}</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`,
    );
  }

  #ok(action: string, inner = ""): Response {
    return this.#reply(
      200,
      `<?xml version="1.0"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:${action}Response xmlns:u="${this.#serviceType}">${inner}</u:${action}Response></s:Body></s:Envelope>`,
    );
  }

  async #handle(request: Request): Promise<Response> {
    const path = new URL(request.url).pathname;
    this.requests.push(`${request.method} ${path}`);
    this.#requested.resolve();
    if (request.method === "GET" && path === "/rootDesc.xml") {
      return this.#reply(200, this.#description());
    }
    const control = this.options.dslRouter ? ["/ctl/IPConn", "/ctl/PPPConn"] : ["/ctl/IPConn"];
    if (request.method !== "POST" || !control.some((end) => path.endsWith(end))) {
      return new Response("not found", { status: 404 });
    }
    const body = await request.text();
    const soapAction = (request.headers.get("soapaction") ?? "").replace(/^"|"$/g, "");
    const match = /<u:(\w+) xmlns:u="([^"]*)">([\s\S]*)<\/u:\1>/.exec(body);
    const action = match?.[1] ?? "";
    const args: Record<string, string> = {};
    for (const [, name, value] of (match?.[3] ?? "").matchAll(/<(\w+)>([^<]*)<\/\1>/g)) {
      args[name] = unescape(value);
    }
    this.calls.push({ path, soapAction, action, args, body });
    if (this.options.dslRouter && path === "/ctl/IPConn") return this.#fault(501, "ActionFailed");
    if (this.options.hang) {
      await this.#closing.promise;
      return new Response("closing", { status: 503 });
    }
    if (soapAction !== `${this.#serviceType}#${action}` || match?.[2] !== this.#serviceType) {
      return this.#fault(401, "Invalid Action");
    }
    const key = `${args.NewProtocol}:${args.NewExternalPort}`;
    const taken = (port: number) => {
      const held = this.mappings.get(`${args.NewProtocol}:${port}`);
      return (this.options.conflictPorts ?? []).includes(port) ||
        (held !== undefined && held.internalClient !== args.NewInternalClient);
    };
    const add = (port: number) =>
      this.mappings.set(`${args.NewProtocol}:${port}`, {
        protocol: args.NewProtocol,
        externalPort: port,
        internalPort: Number(args.NewInternalPort),
        internalClient: args.NewInternalClient,
        lease: Number(args.NewLeaseDuration),
        description: args.NewPortMappingDescription,
      });
    switch (action) {
      case "GetExternalIPAddress":
        return this.#ok(
          action,
          `<NewExternalIPAddress>${
            this.options.externalAddress ?? "80.100.100.1"
          }</NewExternalIPAddress>`,
        );
      case "AddPortMapping": {
        if (this.options.permanentOnly && args.NewLeaseDuration !== "0") {
          return this.#fault(725, "OnlyPermanentLeasesSupported");
        }
        const port = Number(args.NewExternalPort);
        if (this.options.conflictAll || taken(port)) {
          return this.#fault(718, "ConflictInMappingEntry");
        }
        add(port);
        return this.#ok(action);
      }
      case "AddAnyPortMapping": {
        if (this.#version !== 2 || this.options.noAddAny) return this.#fault(401, "Invalid Action");
        let port = Number(args.NewExternalPort);
        if (taken(port)) {
          port = 50_000;
          while (taken(port)) port++;
        }
        add(port);
        return this.#ok(action, `<NewReservedPort>${port}</NewReservedPort>`);
      }
      case "DeletePortMapping":
        if (!this.mappings.delete(key)) return this.#fault(714, "NoSuchEntryInArray");
        return this.#ok(action);
      default:
        return this.#fault(401, "Invalid Action");
    }
  }

  /** Stops both servers (SOAP calls left hanging are answered 503). */
  async close(): Promise<void> {
    this.#closing.resolve();
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
    await this.#server.shutdown();
  }

  /** {@linkcode FakeIgd.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
