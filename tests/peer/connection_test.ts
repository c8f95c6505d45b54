import assert from "node:assert/strict";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { StringValueSchema } from "@bufbuild/protobuf/wkt";
import { ManualClock } from "../../lib/clock.ts";
import {
  ConnectionClosedError,
  FrameTooLargeError,
  NackError,
  SendBufferFullError,
  TimeoutError,
} from "../../lib/errors.ts";
import {
  Compression,
  ConnectionOption,
  DisconnectReason,
  DisconnectSchema,
  NackReason,
  Opcode,
  SetConnectionOptSchema,
} from "../../lib/protocol.ts";
import { FrameDecoder } from "../../lib/wire/frame.ts";
import { chooseCompression, PeerConnection } from "../../lib/peer/connection.ts";
import { channels, peers, TRANSPORTS } from "./_pair.ts";

const text = (s: string) => toBinary(StringValueSchema, create(StringValueSchema, { value: s }));
const untext = (b: Uint8Array) => fromBinary(StringValueSchema, b).value;

for (const kind of TRANSPORTS) {
  Deno.test(`PeerConnection answers PING with ACK both ways over ${kind}`, async () => {
    const p = await peers(kind);
    try {
      const rttA = await p.pa.ping();
      const rttB = await p.pb.ping();
      assert.ok(rttA >= 0 && rttB >= 0);
      assert.ok(p.pa.counters.rtt > 0 || rttA === 0);
      assert.equal(p.pa.address, p.b.remote.address === p.pa.address ? p.pa.address : p.pa.address);
      assert.equal(p.pa.address, p.a.remote.address);
      assert.equal(p.pb.address, p.b.remote.address);
    } finally {
      await p.close();
    }
  });

  Deno.test(`PeerConnection round-trips an application request over ${kind}`, async () => {
    const p = await peers(kind, {
      b: {
        onFrame: (frame, conn) => conn.ack(frame, text(untext(frame.payload).toUpperCase())),
      },
    });
    try {
      const reply = await p.pa.request(1000, text("hello"));
      assert.equal(untext(reply), "HELLO");
    } finally {
      await p.close();
    }
  });

  for (const setting of [0, 1, 2, 3, 4] as Compression[]) {
    Deno.test(
      `PeerConnection sends compressed frames with ${Compression[setting]} over ${kind}`,
      async () => {
        let received = "";
        const p = await peers(kind, {
          channelA: { preferredCompression: setting },
          b: {
            onFrame: (frame, conn) => {
              received = untext(frame.payload);
              return conn.ack(frame, frame.payload);
            },
          },
        });
        try {
          // bz2 and lzma are costly: only the side that prefers them sends them.
          const costly = setting === Compression.BZ2 || setting === Compression.LZMA;
          assert.equal(p.pa.compression, setting);
          assert.equal(p.pb.compression, costly ? undefined : setting);
          const big = "carrier frames compress well. ".repeat(200);
          const reply = await p.pa.request(1000, text(big));
          assert.equal(received, big);
          assert.equal(untext(reply), big);
          // The preferring side's frames went compressed: far fewer bytes than the text.
          assert.ok(p.pa.counters.bytesSent < big.length / 2, `${p.pa.counters.bytesSent} bytes`);
          const replyBytes = p.pb.counters.bytesSent;
          assert.ok(
            costly ? replyBytes > big.length : replyBytes < big.length / 2,
            `${replyBytes}`,
          );
        } finally {
          await p.close();
        }
      },
    );
  }

  Deno.test(`SET_CONNECTION_OPT gets NACK for an unsupported setting over ${kind}`, async () => {
    const p = await peers(kind, { channelB: { compressions: [Compression.ZLIB] } });
    try {
      await assert.rejects(
        () => p.pa.setOption(ConnectionOption.COMPRESSION, Compression.LZMA),
        (err: unknown) => {
          assert.ok(err instanceof NackError);
          assert.equal(err.reason, NackReason.UNSUPPORTED);
          const echoed = fromBinary(SetConnectionOptSchema, err.data);
          assert.equal(echoed.option, ConnectionOption.COMPRESSION);
          assert.equal(echoed.setting, Compression.LZMA);
          return true;
        },
      );
      // A supported preference is ACKed and both sides switch to it.
      await p.pa.setOption(ConnectionOption.PREFERRED_COMPRESSION, Compression.ZLIB);
      assert.equal(p.pa.compression, Compression.ZLIB);
      await p.pa.ping(); // B has handled the option by the time it answers this
      assert.equal(p.pb.compression, Compression.ZLIB);
    } finally {
      await p.close();
    }
  });

  Deno.test(`PeerConnection NACKs an unknown opcode over ${kind}`, async () => {
    const p = await peers(kind);
    try {
      await assert.rejects(
        () => p.pa.request(4242, new Uint8Array([1])),
        (err: unknown) => err instanceof NackError && err.reason === NackReason.UNKNOWN_OPCODE,
      );
      // The connection keeps serving.
      await p.pa.ping();
    } finally {
      await p.close();
    }
  });

  Deno.test(`DISCONNECT carries its reason to the peer over ${kind}`, async () => {
    const p = await peers(kind);
    try {
      await p.pa.close(DisconnectReason.APPLICATION, "bye");
      const info = await p.pb.closed;
      assert.equal(info.reason, DisconnectReason.APPLICATION);
      assert.equal(info.remote, true);
      assert.match(info.error!.message, /disconnected: APPLICATION \(bye\)/);
      await assert.rejects(() => p.pa.ping(), ConnectionClosedError);
    } finally {
      await p.close();
    }
  });

  Deno.test(`a frame over the receiver's maximum closes the connection over ${kind}`, async () => {
    const ch = await channels(kind, { b: { maxFrameSize: 1024 } });
    const pb = new PeerConnection(ch.b);
    try {
      // A misbehaving sender ignores B's announced maximum: length 5000.
      await ch.a.write(new Uint8Array([0x88, 0x27, 1, 2, 3]));
      const info = await pb.closed;
      assert.ok(info.error instanceof FrameTooLargeError, String(info.error));
      assert.equal(info.reason, DisconnectReason.PROTOCOL_ERROR);
    } finally {
      await pb.close();
      await ch.close();
    }
  });

  Deno.test(`a frame over the maximum gets a DISCONNECT PROTOCOL_ERROR before the close over ${kind}`, async () => {
    const ch = await channels(kind, { b: { maxFrameSize: 1024 } });
    const pb = new PeerConnection(ch.b);
    try {
      await ch.a.write(new Uint8Array([0x88, 0x27, 1, 2, 3]));
      // What A reads until the end: the DISCONNECT, then the end of the stream.
      const decoder = new FrameDecoder();
      const frames = [];
      for (let m; (m = await ch.a.read()) !== null;) frames.push(...decoder.push(m));
      assert.deepEqual(frames.map((f) => f.opcode), [Opcode.DISCONNECT]);
      const disconnect = fromBinary(DisconnectSchema, frames[0].payload);
      assert.equal(disconnect.reason, DisconnectReason.PROTOCOL_ERROR);
      assert.match(disconnect.message, /exceeds maxFrameSize 1024/);
      assert.equal((await pb.closed).reason, DisconnectReason.PROTOCOL_ERROR);
    } finally {
      await pb.close();
      await ch.close();
    }
  });

  Deno.test(`PeerConnection refuses to send a frame over the peer's maximum over ${kind}`, async () => {
    const p = await peers(kind, { channelB: { maxFrameSize: 1024 } });
    try {
      await assert.rejects(() => p.pa.send(1000, new Uint8Array(2000)), FrameTooLargeError);
      await p.pa.ping();
    } finally {
      await p.close();
    }
  });
}

Deno.test("small frames sent together are coalesced into one write", async () => {
  const p = await peers("memory");
  try {
    await p.pa.ping(); // settle the handshake-time traffic
    const before = p.aStream.writes;
    const sends = [];
    for (let i = 0; i < 100; i++) sends.push(p.pa.send(1000, new Uint8Array(100)));
    await Promise.all(sends);
    await p.pa.ping();
    // 100 frames plus one PING: a write or two, not a hundred.
    assert.ok(p.aStream.writes - before <= 3, `${p.aStream.writes - before} writes`);
  } finally {
    await p.close();
  }
});

Deno.test("a request times out on the injected clock and can be aborted", async () => {
  const clock = new ManualClock();
  const p = await peers("memory", {
    a: { clock },
    b: { onFrame: () => {} }, // never answers
  });
  try {
    const pending = p.pa.request(1000, new Uint8Array(), { timeout: 1000 });
    await new Promise((r) => setTimeout(r, 0));
    clock.advance(999);
    clock.advance(1);
    await assert.rejects(pending, (err: unknown) =>
      err instanceof TimeoutError &&
      /Request opcode 1000 to .* timed out after 1000 ms/.test(err.message));
    const controller = new AbortController();
    const aborted = p.pa.request(1000, new Uint8Array(), { signal: controller.signal });
    controller.abort(new Error("changed my mind"));
    await assert.rejects(aborted, /changed my mind/);
  } finally {
    await p.close();
  }
});

Deno.test("keepalive pings an idle peer and a silent peer is dropped", async () => {
  const clock = new ManualClock();
  const ch = await channels("memory");
  // B answers keepalives only while it runs a PeerConnection.
  const pa = new PeerConnection(ch.a, {
    clock,
    keepaliveInterval: 1000,
    deadPeerTimeout: 3000,
  });
  const pb = new PeerConnection(ch.b);
  try {
    clock.advance(1000); // idle: A sends KEEPALIVE, B answers
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(pa.counters.framesSent >= 1);
    assert.ok(pa.counters.framesReceived >= 1, "the keepalive was answered");
    assert.equal(pa.isClosed, false);
    // Now B stops answering without closing: silence.
    await pb.close(DisconnectReason.APPLICATION).catch(() => {});
  } finally {
    await pa.close();
    await ch.close();
  }
  // A separate pair for silence: B's channel is never read.
  const ch2 = await channels("memory");
  const clock2 = new ManualClock();
  const lone = new PeerConnection(ch2.a, {
    clock: clock2,
    keepaliveInterval: 1000,
    deadPeerTimeout: 3000,
  });
  try {
    clock2.advance(1000);
    clock2.advance(1000);
    clock2.advance(1000);
    const info = await lone.closed;
    assert.ok(info.error instanceof TimeoutError);
    assert.match(info.error.message, /silent for 3000 ms/);
    assert.equal(info.reason, DisconnectReason.TIMEOUT);
  } finally {
    await lone.close();
    await ch2.close();
  }
});

Deno.test("the send buffer is bounded against a peer that never reads", async () => {
  for (const kind of TRANSPORTS) {
    const clock = new ManualClock();
    const ch = await channels(kind);
    // B never reads its channel.
    const pa = new PeerConnection(ch.a, {
      clock,
      maxSendBuffer: 256 * 1024,
      sendBufferPolicy: "error",
      writeTimeout: 5000,
      keepaliveInterval: 1e9,
      deadPeerTimeout: 1e9,
    });
    try {
      const chunk = new Uint8Array(60 * 1024);
      let sent = 0;
      let full: unknown;
      for (let i = 0; i < 10_000 && !full; i++) {
        try {
          await pa.send(1000, chunk);
          sent++;
          if (i % 8 === 0) await new Promise((r) => setTimeout(r, 1));
        } catch (err) {
          full = err;
        }
        assert.ok(pa.bufferedBytes <= 256 * 1024 + 61 * 1024, `${pa.bufferedBytes} buffered`);
      }
      assert.ok(full instanceof SendBufferFullError, `${kind}: ${full}`);
      assert.ok(sent > 0);
      // "wait" instead of "error": the sender waits, and the wait can be aborted.
      // (The kernel may have taken some bytes since: send until one waits.)
      const controller = new AbortController();
      let waiting: Promise<void> | undefined;
      for (let i = 0; i < 1_000; i++) {
        waiting = pa.send(1000, chunk, { sendBufferPolicy: "wait", signal: controller.signal });
        const sentAtOnce = await Promise.race([
          waiting.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 20)),
        ]);
        if (!sentAtOnce) break;
      }
      controller.abort(new Error("gave up"));
      await assert.rejects(waiting!, /gave up/);
      // The stuck write ends the connection after writeTimeout. (Advance until
      // it does: between two writes no write timer is armed.)
      for (let i = 0; i < 100 && !pa.isClosed; i++) {
        clock.advance(5000);
        await new Promise((r) => setTimeout(r, 5));
      }
      const info = await pa.closed;
      assert.ok(info.error instanceof TimeoutError, String(info.error));
      assert.match(info.error.message, /the peer does not read/);
    } finally {
      await pa.close();
      await ch.close();
    }
  }
});

Deno.test("chooseCompression prefers the initiator, then the responder, then none", () => {
  const all = [0, 1, 2, 3, 4] as Compression[];
  assert.equal(
    chooseCompression({ preferred: 3, decodes: all }, { preferred: 4, decodes: all }),
    3,
  );
  assert.equal(
    chooseCompression({ preferred: 3, decodes: all }, { preferred: 4, decodes: [4] }),
    4,
  );
  assert.equal(
    chooseCompression({ preferred: 3, decodes: [3] }, { preferred: 4, decodes: [4] }),
    undefined,
  );
  assert.equal(chooseCompression({ decodes: all }, { decodes: all }), undefined);
});
