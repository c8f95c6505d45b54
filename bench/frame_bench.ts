// Frame encode and decode at 64 B, 1 KiB and 64 KiB payloads, against JSON
// of the same content (payload as base64, the usual way to put bytes in JSON).
import { createFrame, encodeFrame, FrameDecoder } from "../protocol.ts";

const SIZES: [string, number][] = [["64 B", 64], ["1 KiB", 1024], ["64 KiB", 64 * 1024]];

function payloadOf(size: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function fromBase64(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

for (const [label, size] of SIZES) {
  const payload = payloadOf(size);
  const frame = createFrame({ opcode: 1000, id: 12345, payload });
  const bytes = encodeFrame(frame);
  const json = encoder.encode(
    JSON.stringify({ id: 12345, opcode: 1000, flags: 0, payload: toBase64(payload) }),
  );
  const group = `frame encode ${label}`;
  Deno.bench(`JSON ${label}`, { group, baseline: true }, () => {
    encoder.encode(
      JSON.stringify({ id: frame.id, opcode: frame.opcode, flags: 0, payload: toBase64(payload) }),
    );
  });
  Deno.bench(`carrier ${label}`, { group }, () => {
    encodeFrame(frame);
  });
  const dgroup = `frame decode ${label}`;
  Deno.bench(`JSON ${label}`, { group: dgroup, baseline: true }, () => {
    const obj = JSON.parse(decoder.decode(json));
    fromBase64(obj.payload);
  });
  Deno.bench(`carrier ${label}`, { group: dgroup }, () => {
    new FrameDecoder().push(bytes);
  });
}
