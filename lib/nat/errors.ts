/**
 * Port mapping's errors: a gateway that refuses or does not answer, and a
 * mapping that cannot help (double NAT).
 *
 * @module
 */
import { CarrierError, type CarrierErrorOptions } from "../errors.ts";
import type { MappingProtocol } from "./types.ts";

/**
 * Options of {@linkcode PortMappingError}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PortMappingError, type PortMappingErrorOptions } from "@carrier/p2p";
 * const options: PortMappingErrorOptions = { protocol: "natpmp", code: 2 };
 * assert.equal(new PortMappingError("not authorized", options).code, 2);
 * ```
 */
export interface PortMappingErrorOptions extends CarrierErrorOptions {
  /** The protocol that failed. */
  protocol: MappingProtocol;
  /**
   * The gateway's result code, when it answered with one: NAT-PMP's and
   * PCP's result codes, UPnP's SOAP `errorCode` (718, 725, …).
   */
  code?: number;
}

/**
 * A gateway refused a port-mapping request, answered nonsense, or never
 * answered (no gateway, no such service); `code` is the gateway's own result
 * code when it gave one.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { CarrierError, PortMappingError } from "@carrier/p2p";
 * const error = new PortMappingError("UPnP AddPortMapping: ConflictInMappingEntry", {
 *   protocol: "upnp",
 *   code: 718,
 * });
 * assert.ok(error instanceof CarrierError);
 * assert.deepEqual([error.protocol, error.code], ["upnp", 718]);
 * ```
 */
export class PortMappingError extends CarrierError {
  /** The protocol that failed. */
  readonly protocol: MappingProtocol;
  /** The gateway's result code, when it gave one. */
  readonly code: number | undefined;
  /** Creates the error. */
  constructor(message: string, options: PortMappingErrorOptions) {
    super(message, options);
    this.protocol = options.protocol;
    this.code = options.code;
  }
}

/**
 * The gateway's external address is itself private (RFC 1918, 100.64/10 CGNAT,
 * …): there is another NAT beyond it, so a mapping on this gateway does not
 * make the node reachable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DoubleNatError, PortMappingError } from "@carrier/p2p";
 * const error = new DoubleNatError("external address 100.64.0.7 is CGNAT space", {
 *   protocol: "upnp",
 * });
 * assert.ok(error instanceof PortMappingError);
 * ```
 */
export class DoubleNatError extends PortMappingError {}
