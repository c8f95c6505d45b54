import assert from "node:assert/strict";
import fc from "fast-check";
import { base58 } from "@scure/base";
import { AddressError, CarrierError } from "../../lib/errors.ts";
import {
  addressEquals,
  assertAddressBytes,
  BASE58_ALPHABET,
  formatAddress,
  MAX_ADDRESS_TEXT_LENGTH,
  parseAddress,
} from "../../lib/identity/address.ts";

const bytes32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** A valid address text: the one of 32 bytes 0x01..0x20. */
const VALID = formatAddress(Uint8Array.from({ length: 32 }, (_, i) => i + 1));

function assertAddressError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof AddressError, `not an AddressError: ${error}`);
    assert.ok(error instanceof CarrierError);
    assert.equal(error.name, "AddressError");
    assert.match(error.message, message);
    return true;
  });
}

Deno.test("formatAddress and parseAddress round-trip every 32-byte key", () => {
  fc.assert(
    fc.property(bytes32, (bytes) => {
      const text = formatAddress(bytes);
      assert.ok(text.length >= 32 && text.length <= MAX_ADDRESS_TEXT_LENGTH);
      assert.deepEqual(parseAddress(text), bytes);
      assert.equal(formatAddress(parseAddress(text)), text);
    }),
  );
});

Deno.test("formatAddress gives the known base58 of edge values", () => {
  assert.equal(formatAddress(new Uint8Array(32)), "1".repeat(32));
  const ones = new Uint8Array(32).fill(0xff);
  assert.equal(
    formatAddress(ones),
    "JEKNVnkbo3jma5nREBBJCDoXFVeKkD56V3xKrvRmWxFG",
  );
  assert.equal(formatAddress(ones).length, MAX_ADDRESS_TEXT_LENGTH);
  const one = new Uint8Array(32);
  one[31] = 1;
  assert.equal(formatAddress(one), "1".repeat(31) + "2");
});

Deno.test("parseAddress rejects the empty string", () => {
  assertAddressError(
    () => parseAddress(""),
    /^Cannot parse address: empty string$/,
  );
});

Deno.test("parseAddress rejects leading and trailing whitespace with its position", () => {
  assertAddressError(
    () => parseAddress(` ${VALID}`),
    /: leading whitespace at position 0$/,
  );
  assertAddressError(
    () => parseAddress(`\t${VALID}`),
    /: leading whitespace at position 0$/,
  );
  assertAddressError(
    () => parseAddress(`${VALID}\n`),
    new RegExp(`: trailing whitespace at position ${VALID.length}$`),
  );
  assertAddressError(
    () => parseAddress(`${VALID}  `),
    new RegExp(`: trailing whitespace at position ${VALID.length}$`),
  );
  assertAddressError(
    () => parseAddress("   "),
    /leading whitespace at position 0/,
  );
});

Deno.test("parseAddress names a character outside the alphabet and its position", () => {
  const zero = VALID.slice(0, 5) + "0" + VALID.slice(6);
  assertAddressError(
    () => parseAddress(zero),
    /: character "0" \(U\+0030\) at position 5 is not in the base58 alphabet \(base58 has no 0, O, I or l\)$/,
  );
  for (const char of ["O", "I", "l"]) {
    assertAddressError(
      () => parseAddress(char + VALID.slice(1)),
      new RegExp(
        `character "${char}" .* at position 0 .*base58 has no 0, O, I or l`,
      ),
    );
  }
  assertAddressError(
    () => parseAddress(VALID.slice(0, 10) + "+" + VALID.slice(11)),
    /character "\+" \(U\+002B\) at position 10 is not in the base58 alphabet$/,
  );
  assertAddressError(
    () => parseAddress(VALID.slice(0, 3) + " " + VALID.slice(3)),
    /character " " \(U\+0020\) at position 3 /,
  );
  assertAddressError(
    () => parseAddress(VALID.slice(0, 7) + "\u200b" + VALID.slice(7)),
    /character "\u200b" \(U\+200B\) at position 7 /,
  );
  assertAddressError(
    () => parseAddress(VALID.slice(0, 2) + "😀" + VALID.slice(2)),
    /character "😀" \(U\+1F600\) at position 2 /,
  );
});

Deno.test("parseAddress names the decoded length when it is not 32 bytes", () => {
  const short = formatAddress(new Uint8Array(32).fill(7)).slice(1);
  assertAddressError(
    () => parseAddress(formatAddressOf(31)),
    /^Cannot parse address "[1-9A-Za-z]+": expected 32 bytes, got 31$/,
  );
  assertAddressError(
    () => parseAddress(formatAddressOf(33)),
    /: expected 32 bytes, got 33$/,
  );
  assertAddressError(() => parseAddress("1"), /: expected 32 bytes, got 1$/);
  assertAddressError(() => parseAddress(short), /: expected 32 bytes, got 31$/);
});

Deno.test("parseAddress refuses a huge string without decoding it", () => {
  const huge = "2".repeat(100_000);
  assertAddressError(
    () => parseAddress(huge),
    /^Cannot parse address "2{57}…": too long: 100000 characters, a 32-byte address has at most 44$/,
  );
});

Deno.test("parseAddress rejects a non-string", () => {
  assertAddressError(
    () => parseAddress(new Uint8Array(32) as unknown as string),
    /^Cannot parse address: expected a string, got Uint8Array$/,
  );
});

Deno.test("parseAddress accepts only base58 characters", () => {
  fc.assert(
    fc.property(
      fc.string({ minLength: 1, maxLength: 50 }),
      (text) => {
        try {
          const bytes = parseAddress(text);
          assert.equal(bytes.length, 32);
          assert.ok([...text].every((c) => BASE58_ALPHABET.includes(c)));
        } catch (error) {
          assert.ok(error instanceof AddressError);
        }
      },
    ),
  );
});

Deno.test("assertAddressBytes rejects anything but 32 bytes", () => {
  assertAddressBytes(new Uint8Array(32));
  assertAddressError(
    () => assertAddressBytes(new Uint8Array(31)),
    /^Invalid address: expected Uint8Array of length 32, got length=31$/,
  );
  assertAddressError(
    () => assertAddressBytes(new Uint8Array(33)),
    /got length=33$/,
  );
  assertAddressError(() => assertAddressBytes(VALID), /got string$/);
  assertAddressError(() => assertAddressBytes(null), /got null$/);
  assertAddressError(
    () => assertAddressBytes(new Array(32).fill(0)),
    /got Array$/,
  );
  assertAddressError(() => formatAddress(new Uint8Array(16)), /got length=16$/);
});

Deno.test("addressEquals compares bytes and checks lengths", () => {
  fc.assert(
    fc.property(bytes32, bytes32, (a, b) => {
      assert.equal(addressEquals(a, a.slice()), true);
      assert.equal(addressEquals(a, b), formatAddress(a) === formatAddress(b));
    }),
  );
  assertAddressError(
    () => addressEquals(new Uint8Array(32), new Uint8Array(20)),
    /got length=20$/,
  );
});

/** base58 of `length` bytes of 0x42, bypassing formatAddress's length check. */
function formatAddressOf(length: number): string {
  return base58.encode(new Uint8Array(length).fill(0x42));
}
