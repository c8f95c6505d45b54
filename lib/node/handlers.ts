/**
 * Application opcodes (≥ 1000): the handlers `Node.handle` registers, each
 * request decoded with its opcode's schema and answered with the handler's
 * result (ACK), its `NackError` (NACK with its reason and data), or NACK
 * `APPLICATION` for anything else it throws. A one-way frame is never
 * answered.
 *
 * @module
 */
import { toBinary } from "@bufbuild/protobuf";
import { NackReason } from "../../gen/carrier/v1/frame_pb.ts";
import type { MessageOf, Schema } from "../_protobuf.ts";
import { ConnectionClosedError, NackError } from "../errors.ts";
import type { PeerConnection } from "../peer/connection.ts";
import { refuse } from "../services/refuse.ts";
import type { ReceiveContext, ServiceHost } from "../service.ts";
import type { Frame } from "../wire/frame.ts";
import { decodePayload, type OpcodeSpec } from "../wire/opcodes.ts";

/**
 * What an application handler receives besides the message.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { createNode, defineOpcode, type HandlerContext } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const WHO = defineOpcode(1000, { request: StringValueSchema, reply: StringValueSchema });
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * a.handle(WHO, (_message, context: HandlerContext) => {
 *   return create(StringValueSchema, { value: context.peer.address });
 * });
 * await b.connect(a.peerAddresses[0]);
 * const reply = await b.request(a.address, WHO, create(StringValueSchema));
 * assert.equal(reply?.value, b.address); // "you are …"
 * ```
 */
export interface HandlerContext {
  /** The connection the request came on. */
  readonly peer: PeerConnection;
  /** The request frame. */
  readonly frame: Frame;
}

/**
 * Handles one application opcode: returns the ACK's data (or nothing), or throws to NACK.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { create } from "@bufbuild/protobuf";
 * import { StringValueSchema } from "@bufbuild/protobuf/wkt";
 * import { createNode, defineOpcode, type Handler } from "@carrier/p2p";
 * import { MemoryNetwork } from "@carrier/p2p/testing";
 * const ECHO = defineOpcode(1000, { request: StringValueSchema, reply: StringValueSchema });
 * const upper: Handler<typeof StringValueSchema, typeof StringValueSchema> = (message) =>
 *   create(StringValueSchema, { value: message.value.toUpperCase() });
 * await using net = new MemoryNetwork();
 * await using a = await createNode({ transport: net.transport(), listen: ["mem:0"] });
 * await using b = await createNode({ transport: net.transport() });
 * a.handle(ECHO, upper);
 * await b.connect(a.peerAddresses[0]);
 * const reply = await b.request(a.address, ECHO, create(StringValueSchema, { value: "hi" }));
 * assert.equal(reply?.value, "HI");
 * ```
 */
export type Handler<Request extends Schema, Reply extends Schema> = (
  message: MessageOf<Request>,
  context: HandlerContext,
) => MessageOf<Reply> | void | Promise<MessageOf<Reply> | void>;

type AnyHandler = (message: unknown, context: HandlerContext) => unknown;

/** The application's handlers, by opcode. */
export class ApplicationHandlers {
  readonly name = "application";
  readonly #host: Pick<ServiceHost, "error">;
  readonly #handlers = new Map<number, { spec: OpcodeSpec; handler: AnyHandler }>();

  /** Creates an empty set of handlers. */
  constructor(host: Pick<ServiceHost, "error">) {
    this.#host = host;
  }

  /** Adds the handler of `spec` (the node has registered its opcode). */
  add<Request extends Schema, Reply extends Schema>(
    spec: OpcodeSpec<Request, Reply>,
    handler: Handler<Request, Reply>,
  ): void {
    this.#handlers.set(spec.opcode, { spec, handler: handler as AnyHandler });
  }

  /** Whether `opcode` has a handler. */
  has(opcode: number): boolean {
    return this.#handlers.has(opcode);
  }

  /** Runs the handler of the frame's opcode and answers the request. */
  async receive({ frame, peer }: ReceiveContext): Promise<void> {
    const entry = this.#handlers.get(frame.opcode);
    if (!entry) return;
    const { spec, handler } = entry;
    let message: unknown;
    try {
      message = decodePayload(spec.request, frame.payload, spec.name);
    } catch (err) {
      if (spec.oneWay) this.#host.error(err, `${spec.name} from ${peer.address}`);
      else refuse(frame, peer, NackReason.MALFORMED, (err as Error).message);
      return;
    }
    // A one-way frame is never answered, whatever its id.
    const answer = frame.id !== 0 && !spec.oneWay;
    try {
      const result = await handler(message, { peer, frame });
      if (!answer) return;
      const data = spec.reply && result !== undefined
        ? toBinary(spec.reply, result as MessageOf<Schema>)
        : undefined;
      await peer.ack(frame, data);
    } catch (err) {
      if (!answer) {
        this.#host.error(err, `handler ${spec.name}`);
        return;
      }
      if (err instanceof NackError) {
        await peer.nack(frame, err.reason, err.message, err.data).catch(() => {});
      } else if (!(err instanceof ConnectionClosedError)) { // else: nobody to answer
        refuse(frame, peer, NackReason.APPLICATION, (err as Error)?.message ?? String(err));
      }
    }
  }
}
