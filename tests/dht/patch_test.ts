import assert from "node:assert/strict";
import fc from "fast-check";
import {
  applyJsonPatch,
  applyJsonPatchToBytes,
  applySplices,
  DEFAULT_MAX_PATCH_RESULT_SIZE,
  diffBytes,
  diffJson,
  type JsonPatchOperation,
  MAX_JSON_DEPTH,
  MAX_PATCH_OPERATIONS,
  parseJsonPatch,
  type Splice,
} from "../../lib/dht/patch.ts";
import { PatchError } from "../../lib/dht/errors.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Applies a patch given as JSON text, as a replica does: parse, then apply. */
function patchText(document: unknown, patch: string): unknown {
  return applyJsonPatch(document, parseJsonPatch(patch));
}

/** Asserts that `fn` throws a PatchError whose message matches `message`. */
function assertPatchError(fn: () => unknown, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof PatchError, `expected a PatchError, got ${err}`);
    assert.equal(err.name, "PatchError");
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** Asserts that no patch reached a prototype. */
function assertPrototypesClean(): void {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), OBJECT_PROTOTYPE_NAMES);
  assert.deepEqual(Object.getOwnPropertyNames(Array.prototype).sort(), ARRAY_PROTOTYPE_NAMES);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
}
const OBJECT_PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort();
const ARRAY_PROTOTYPE_NAMES = Object.getOwnPropertyNames(Array.prototype).sort();

// --- RFC 6902 Appendix A -------------------------------------------------------

/**
 * The examples of RFC 6902, Appendix A (https://www.rfc-editor.org/rfc/rfc6902#appendix-A),
 * copied verbatim: the target document, the patch as JSON text, and the result, or `error`.
 */
const RFC6902_APPENDIX_A: {
  name: string;
  doc: string;
  patch: string;
  result?: string;
  error?: RegExp;
}[] = [
  {
    name: "A.1 Adding an Object Member",
    doc: `{ "foo": "bar"}`,
    patch: `[ { "op": "add", "path": "/baz", "value": "qux" } ]`,
    result: `{ "baz": "qux", "foo": "bar" }`,
  },
  {
    name: "A.2 Adding an Array Element",
    doc: `{ "foo": [ "bar", "baz" ] }`,
    patch: `[ { "op": "add", "path": "/foo/1", "value": "qux" } ]`,
    result: `{ "foo": [ "bar", "qux", "baz" ] }`,
  },
  {
    name: "A.3 Removing an Object Member",
    doc: `{ "baz": "qux", "foo": "bar" }`,
    patch: `[ { "op": "remove", "path": "/baz" } ]`,
    result: `{ "foo": "bar" }`,
  },
  {
    name: "A.4 Removing an Array Element",
    doc: `{ "foo": [ "bar", "qux", "baz" ] }`,
    patch: `[ { "op": "remove", "path": "/foo/1" } ]`,
    result: `{ "foo": [ "bar", "baz" ] }`,
  },
  {
    name: "A.5 Replacing a Value",
    doc: `{ "baz": "qux", "foo": "bar" }`,
    patch: `[ { "op": "replace", "path": "/baz", "value": "boo" } ]`,
    result: `{ "baz": "boo", "foo": "bar" }`,
  },
  {
    name: "A.6 Moving a Value",
    doc: `{ "foo": { "bar": "baz", "waldo": "fred" }, "qux": { "corge": "grault" } }`,
    patch: `[ { "op": "move", "from": "/foo/waldo", "path": "/qux/thud" } ]`,
    result: `{ "foo": { "bar": "baz" }, "qux": { "corge": "grault", "thud": "fred" } }`,
  },
  {
    name: "A.7 Moving an Array Element",
    doc: `{ "foo": [ "all", "grass", "cows", "eat" ] }`,
    patch: `[ { "op": "move", "from": "/foo/1", "path": "/foo/3" } ]`,
    result: `{ "foo": [ "all", "cows", "eat", "grass" ] }`,
  },
  {
    name: "A.8 Testing a Value: Success",
    doc: `{ "baz": "qux", "foo": [ "a", 2, "c" ] }`,
    patch: `[
      { "op": "test", "path": "/baz", "value": "qux" },
      { "op": "test", "path": "/foo/1", "value": 2 }
    ]`,
    result: `{ "baz": "qux", "foo": [ "a", 2, "c" ] }`,
  },
  {
    name: "A.9 Testing a Value: Error",
    doc: `{ "baz": "qux" }`,
    patch: `[ { "op": "test", "path": "/baz", "value": "bar" } ]`,
    error: /operation 0 \(test "\/baz"\): the value at "\/baz" differs/,
  },
  {
    name: "A.10 Adding a Nested Member Object",
    doc: `{ "foo": "bar" }`,
    patch: `[ { "op": "add", "path": "/child", "value": { "grandchild": { } } } ]`,
    result: `{ "foo": "bar", "child": { "grandchild": { } } }`,
  },
  {
    name: "A.11 Ignoring Unrecognized Elements",
    doc: `{ "foo": "bar" }`,
    patch: `[ { "op": "add", "path": "/baz", "value": "qux", "xyz": 123 } ]`,
    result: `{ "foo": "bar", "baz": "qux" }`,
  },
  {
    name: "A.12 Adding to a Nonexistent Target",
    doc: `{ "foo": "bar" }`,
    patch: `[ { "op": "add", "path": "/baz/bat", "value": "qux" } ]`,
    error: /operation 0 \(add "\/baz\/bat"\): "\/baz" does not exist/,
  },
  {
    // The RFC gives no target document; this is A.12's. JSON.parse keeps the last "op", so the
    // operation is never read as an add: it is a remove of a member that does not exist.
    name: "A.13 Invalid JSON Patch Document",
    doc: `{ "foo": "bar" }`,
    patch: `[ { "op": "add", "path": "/baz", "value": "qux", "op": "remove" } ]`,
    error: /operation 0 \(remove "\/baz"\): "\/baz" does not exist/,
  },
  {
    name: "A.14 ~ Escape Ordering",
    doc: `{ "/": 9, "~1": 10 }`,
    patch: `[ {"op": "test", "path": "/~01", "value": 10} ]`,
    result: `{ "/": 9, "~1": 10 }`,
  },
  {
    name: "A.15 Comparing Strings and Numbers",
    doc: `{ "/": 9, "~1": 10 }`,
    patch: `[ {"op": "test", "path": "/~01", "value": "10"} ]`,
    error: /operation 0 \(test "\/~01"\): the value at "\/~01" differs/,
  },
  {
    name: "A.16 Adding an Array Value",
    doc: `{ "foo": ["bar"] }`,
    patch: `[ { "op": "add", "path": "/foo/-", "value": ["abc", "def"] } ]`,
    result: `{ "foo": ["bar", ["abc", "def"]] }`,
  },
];

for (const example of RFC6902_APPENDIX_A) {
  Deno.test(`applyJsonPatch follows RFC 6902 ${example.name}`, () => {
    const doc = JSON.parse(example.doc);
    const before = structuredClone(doc);
    if (example.error) {
      assertPatchError(() => patchText(doc, example.patch), example.error);
    } else {
      assert.deepStrictEqual(patchText(doc, example.patch), JSON.parse(example.result!));
    }
    assert.deepStrictEqual(doc, before);
  });
}

Deno.test("applyJsonPatchToBytes follows RFC 6902 Appendix A on UTF-8 values", () => {
  for (const example of RFC6902_APPENDIX_A) {
    const value = encoder.encode(example.doc);
    const run = () => applyJsonPatchToBytes(value, parseJsonPatch(example.patch));
    if (example.error) assertPatchError(run, example.error);
    else assert.deepStrictEqual(JSON.parse(decoder.decode(run())), JSON.parse(example.result!));
  }
});

// --- JSON Pointer -------------------------------------------------------------

Deno.test("applyJsonPatch resolves the JSON Pointers of RFC 6901 section 5", () => {
  // https://www.rfc-editor.org/rfc/rfc6901#section-5
  const doc = JSON.parse(`{
    "foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\\\j": 5,
    "k\\"l": 6, " ": 7, "m~n": 8
  }`);
  const expected: [string, unknown][] = [
    ["", doc],
    ["/foo", ["bar", "baz"]],
    ["/foo/0", "bar"],
    ["/", 0],
    ["/a~1b", 1],
    ["/c%d", 2],
    ["/e^f", 3],
    ["/g|h", 4],
    ["/i\\j", 5],
    ['/k"l', 6],
    ["/ ", 7],
    ["/m~0n", 8],
  ];
  for (const [path, value] of expected) {
    assert.deepStrictEqual(applyJsonPatch(doc, [{ op: "test", path, value }]), doc, path);
  }
});

Deno.test("applyJsonPatch decodes ~1 before ~0 and writes escaped member names", () => {
  const doc = applyJsonPatch({}, [
    { op: "add", path: "/a~1b", value: 1 },
    { op: "add", path: "/m~0n", value: 2 },
    { op: "add", path: "/~01", value: 3 },
    { op: "add", path: "/~10", value: 4 },
    { op: "add", path: "/", value: 5 },
  ]);
  assert.deepStrictEqual(doc, { "a/b": 1, "m~n": 2, "~1": 3, "/0": 4, "": 5 });
});

Deno.test("parseJsonPatch rejects paths that are not JSON Pointers", () => {
  for (const path of ["a", "a/b", "#/a", "/~", "/a~2", "/~a", "/a/~"]) {
    assertPatchError(
      () => parseJsonPatch(JSON.stringify([{ op: "remove", path }])),
      /operation 0: "path" .* is not a JSON Pointer/,
    );
    assertPatchError(
      () => applyJsonPatch({ a: 1 }, [{ op: "remove", path }]),
      /Cannot apply JSON Patch: operation 0: "path"/,
    );
  }
  assertPatchError(
    () => parseJsonPatch(`[{ "op": "copy", "from": "x", "path": "/a" }]`),
    /operation 0: "from" "x" is not a JSON Pointer/,
  );
});

Deno.test("applyJsonPatch refuses array indices with leading zeros, signs or out of range", () => {
  const doc = { a: [10, 20, 30] };
  for (
    const index of ["01", "00", "-1", "+1", "1.0", "1e0", " 1", "0x1", "3", "99999999999999999999"]
  ) {
    assertPatchError(
      () => applyJsonPatch(doc, [{ op: "replace", path: `/a/${index}`, value: 0 }]),
      /operation 0 \(replace "\/a\/.*"\)/,
    );
  }
  assertPatchError(
    () => applyJsonPatch(doc, [{ op: "add", path: "/a/4", value: 0 }]),
    /index 4 is out of range \(array length 3\)/,
  );
  assertPatchError(
    () => applyJsonPatch(doc, [{ op: "remove", path: "/a/-" }]),
    /"-" names no element/,
  );
  assert.deepStrictEqual(applyJsonPatch(doc, [{ op: "add", path: "/a/3", value: 40 }]), {
    a: [10, 20, 30, 40],
  });
  assert.deepStrictEqual(applyJsonPatch(doc, [{ op: "add", path: "/a/0", value: 0 }]), {
    a: [0, 10, 20, 30],
  });
});

Deno.test("applyJsonPatch treats - as a member name in objects", () => {
  assert.deepStrictEqual(applyJsonPatch({}, [{ op: "add", path: "/-", value: 1 }]), { "-": 1 });
  assert.deepStrictEqual(applyJsonPatch({ "-": 1 }, [{ op: "remove", path: "/-" }]), {});
});

// --- Operations -----------------------------------------------------------------

Deno.test("applyJsonPatch adds, replaces and removes the whole document", () => {
  assert.deepStrictEqual(applyJsonPatch({ a: 1 }, [{ op: "add", path: "", value: [1] }]), [1]);
  assert.equal(applyJsonPatch({ a: 1 }, [{ op: "replace", path: "", value: "x" }]), "x");
  assert.equal(applyJsonPatch(5, [{ op: "test", path: "", value: 5 }]), 5);
  assertPatchError(
    () => applyJsonPatch({ a: 1 }, [{ op: "remove", path: "" }]),
    /operation 0 \(remove ""\): cannot remove the whole document/,
  );
});

Deno.test("applyJsonPatch replaces an existing member on add and keeps others", () => {
  assert.deepStrictEqual(
    applyJsonPatch({ a: 1, b: 2 }, [{ op: "add", path: "/a", value: { c: 3 } }]),
    { a: { c: 3 }, b: 2 },
  );
});

Deno.test("applyJsonPatch moves and copies values", () => {
  const doc = { a: { b: [1, 2] }, c: null };
  assert.deepStrictEqual(
    applyJsonPatch(doc, [
      { op: "copy", from: "/a/b", path: "/c" },
      { op: "move", from: "/a/b/0", path: "/a/b/-" },
      { op: "move", from: "/a", path: "/a" },
      { op: "copy", from: "", path: "/self" },
    ]),
    {
      a: { b: [2, 1] },
      c: [1, 2],
      self: { a: { b: [2, 1] }, c: [1, 2] },
    },
  );
  assert.deepStrictEqual(applyJsonPatch(doc, [{ op: "move", from: "", path: "" }]), doc);
  // A move onto the root keeps only the moved value.
  assert.deepStrictEqual(applyJsonPatch(doc, [{ op: "move", from: "/a/b", path: "" }]), [1, 2]);
});

Deno.test("applyJsonPatch refuses to move a value into its own child", () => {
  for (const [from, path] of [["/a", "/a/b"], ["", "/a"], ["/a/b", "/a/b/0"]]) {
    assertPatchError(
      () => applyJsonPatch({ a: { b: [] } }, [{ op: "move", from, path }]),
      /cannot move a value into one of its own children/,
    );
  }
  // A sibling whose name starts like `from` is not a child.
  assert.deepStrictEqual(
    applyJsonPatch({ a: 1 }, [{ op: "move", from: "/a", path: "/ab" }]),
    { ab: 1 },
  );
});

Deno.test("applyJsonPatch copies values so that the copies are independent", () => {
  const value = { deep: [1] };
  const result = applyJsonPatch({}, [
    { op: "add", path: "/x", value },
    { op: "add", path: "/y", value },
    { op: "copy", from: "/x", path: "/z" },
  ]) as Record<string, { deep: number[] }>;
  result.x.deep.push(2);
  assert.deepStrictEqual(result.y.deep, [1]);
  assert.deepStrictEqual(result.z.deep, [1]);
  assert.deepStrictEqual(value.deep, [1]);
});

Deno.test("applyJsonPatch tests by JSON equality", () => {
  const doc = { a: { x: 1, y: [1, { z: null }] }, n: 1 };
  const ok = (path: string, value: unknown) =>
    assert.deepStrictEqual(applyJsonPatch(doc, [{ op: "test", path, value }]), doc);
  const fails = (path: string, value: unknown) =>
    assertPatchError(() => applyJsonPatch(doc, [{ op: "test", path, value }]), /differs/);
  ok("/a", { y: [1, { z: null }], x: 1 }); // member order does not count
  ok("/n", 1.0);
  fails("/a", { x: 1 });
  fails("/a", { x: 1, y: [1, { z: null }], w: 2 });
  fails("/a/y", [{ z: null }, 1]); // element order does
  fails("/a/y/1/z", false);
  fails("/n", "1");
  fails("/n", [1]);
  fails("/a", [1]);
  // A missing target is an error, not a comparison with undefined.
  assertPatchError(
    () => applyJsonPatch(doc, [{ op: "test", path: "/missing", value: 1 }]),
    /"\/missing" does not exist/,
  );
});

// --- Errors ---------------------------------------------------------------------

Deno.test("applyJsonPatch names the operation, its path and the problem", () => {
  const doc = { a: 1, s: "text", list: [1] };
  const cases: [JsonPatchOperation[], RegExp][] = [
    [[{ op: "add", path: "/a/b", value: 1 }], /operation 0 \(add "\/a\/b"\): "\/a" is a number/],
    [[{ op: "add", path: "/s/0", value: 1 }], /"\/s" is a string, not an object or array/],
    [[{ op: "remove", path: "/b" }], /operation 0 \(remove "\/b"\): "\/b" does not exist/],
    [[{ op: "replace", path: "/b", value: 1 }], /operation 0 \(replace "\/b"\)/],
    [[{ op: "move", from: "/b", path: "/c" }], /operation 0 \(move "\/b" to "\/c"\): "\/b"/],
    [[{ op: "copy", from: "/list/1", path: "/c" }], /index 1 is out of range/],
    [
      [{ op: "test", path: "/a", value: 1 }, { op: "remove", path: "/x/y/z" }],
      /operation 1 \(remove "\/x\/y\/z"\): "\/x" does not exist/,
    ],
  ];
  for (const [ops, message] of cases) {
    assertPatchError(() => applyJsonPatch(doc, ops), message);
  }
});

Deno.test("applyJsonPatch throws only PatchError for malformed operations", () => {
  const bad: unknown[] = [
    null,
    42,
    "add",
    [],
    {},
    { op: "ADD", path: "/a", value: 1 },
    { op: "add", value: 1 },
    { op: "add", path: 5, value: 1 },
    { op: "add", path: "/a" },
    { op: "move", path: "/a" },
    { op: "copy", path: "/a", from: null },
    { op: "add", path: "/a", value: undefined },
    { op: "add", path: "/a", value: () => 1 },
    { op: "add", path: "/a", value: NaN },
    { op: "add", path: "/a", value: Infinity },
    { op: "add", path: "/a", value: 1n },
    { op: "add", path: "/a", value: Symbol("x") },
    { op: "add", path: "/a", value: new Date(0) },
    { op: "add", path: "/a", value: new Map() },
    { op: "add", path: "/a", value: new Array(2) },
    { op: "add", path: "/a", value: { x: [undefined] } },
    { op: "test", path: "/a", value: undefined },
  ];
  for (const op of bad) {
    assertPatchError(() => applyJsonPatch({ a: 1 }, [op as JsonPatchOperation]), /operation 0/);
  }
  assertPatchError(
    () => applyJsonPatch({}, { length: 1 } as unknown as JsonPatchOperation[]),
    /expected an array of operations/,
  );
  assertPatchError(
    () => applyJsonPatch({}, [{ op: "add", path: "/a", value: { x: { y: undefined } } }]),
    /the value at "\/x\/y" is undefined, not a JSON value/,
  );
});

Deno.test("applyJsonPatch refuses a document that is not JSON", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const throwing = {
    get bad() {
      throw new TypeError("boom");
    },
  };
  for (
    const doc of [
      undefined,
      NaN,
      () => 1,
      1n,
      new Date(0),
      { a: undefined },
      cyclic,
      throwing,
    ]
  ) {
    assertPatchError(() => applyJsonPatch(doc, []), /^Cannot apply JSON Patch: the document /);
  }
  assertPatchError(
    () => applyJsonPatch({ list: [throwing] }, []),
    /the document at "\/list\/0\/bad" cannot be read \(boom\)/,
  );
});

Deno.test("applyJsonPatch accepts null-prototype objects and returns plain ones", () => {
  const doc = Object.assign(Object.create(null), { a: 1 });
  const result = applyJsonPatch(doc, [{ op: "add", path: "/b", value: 2 }]);
  assert.equal(Object.getPrototypeOf(result), Object.prototype);
  assert.deepStrictEqual(result, { a: 1, b: 2 });
});

Deno.test("applyJsonPatch refuses more than MAX_PATCH_OPERATIONS operations", () => {
  const ops: JsonPatchOperation[] = Array.from(
    { length: MAX_PATCH_OPERATIONS },
    () => ({ op: "test", path: "", value: 0 }),
  );
  assert.equal(applyJsonPatch(0, ops), 0);
  ops.push({ op: "test", path: "", value: 0 });
  assertPatchError(
    () => applyJsonPatch(0, ops),
    /1025 operations exceed MAX_PATCH_OPERATIONS 1024/,
  );
});

// --- Atomicity ------------------------------------------------------------------

Deno.test("applyJsonPatch leaves the document unchanged when a later operation fails", () => {
  const doc = { a: [1, 2, 3], b: { c: "d" }, e: null };
  const before = structuredClone(doc);
  const ops: JsonPatchOperation[] = [
    { op: "remove", path: "/a/0" },
    { op: "replace", path: "/b/c", value: "changed" },
    { op: "move", from: "/e", path: "/a/-" },
    { op: "add", path: "/new", value: { x: 1 } },
    { op: "test", path: "/new/x", value: 2 }, // fails
  ];
  assertPatchError(() => applyJsonPatch(doc, ops), /operation 4 \(test "\/new\/x"\)/);
  assert.deepStrictEqual(doc, before);
});

Deno.test("applyJsonPatch never mutates the document nor shares with the result", () => {
  const doc = { a: { b: [1] } };
  const result = applyJsonPatch(doc, []) as typeof doc;
  assert.notEqual(result, doc);
  result.a.b.push(2);
  assert.deepStrictEqual(doc, { a: { b: [1] } });
});

// --- Prototype pollution -------------------------------------------------------

Deno.test("applyJsonPatch sets __proto__ as an own member, never a prototype", () => {
  const result = applyJsonPatch({}, [
    { op: "add", path: "/__proto__", value: { polluted: "yes" } },
    { op: "add", path: "/__proto__/more", value: 1 },
  ]) as Record<string, unknown>;
  assert.ok(Object.hasOwn(result, "__proto__"));
  assert.equal(Object.getPrototypeOf(result), Object.prototype);
  assert.deepStrictEqual(Object.getOwnPropertyDescriptor(result, "__proto__")?.value, {
    polluted: "yes",
    more: 1,
  });
  assert.equal(result.polluted, undefined);
  assert.equal(JSON.stringify(result), '{"__proto__":{"polluted":"yes","more":1}}');
  assertPrototypesClean();
});

Deno.test("applyJsonPatch does not reach prototypes through __proto__ or constructor", () => {
  const attempts: JsonPatchOperation[][] = [
    [{ op: "add", path: "/__proto__/polluted", value: true }],
    [{ op: "add", path: "/constructor/prototype/polluted", value: true }],
    [{ op: "replace", path: "/constructor", value: 1 }],
    [{ op: "remove", path: "/toString" }],
    [{ op: "test", path: "/constructor", value: {} }],
    [{ op: "copy", from: "/constructor", path: "/x" }],
    [{ op: "move", from: "/__proto__", path: "/x" }],
    [{ op: "add", path: "/list/__proto__", value: { polluted: true } }],
    [{ op: "add", path: "/list/length", value: 0 }],
    [{ op: "add", path: "/list/constructor/prototype/polluted", value: true }],
  ];
  for (const ops of attempts) {
    const doc = { list: [1] };
    assertPatchError(() => applyJsonPatch(doc, ops), /operation 0/);
    assert.deepStrictEqual(doc, { list: [1] });
  }
  assertPrototypesClean();
});

Deno.test("applyJsonPatch keeps own __proto__ members of parsed JSON own", () => {
  const doc = JSON.parse('{"__proto__": {"polluted": 1}, "constructor": {"prototype": {}}}');
  const result = patchText(
    doc,
    `[
      { "op": "add", "path": "/__proto__/polluted", "value": 2 },
      { "op": "add", "path": "/constructor/prototype/polluted", "value": 3 },
      { "op": "add", "path": "/x", "value": {"__proto__": {"polluted": 4}} },
      { "op": "copy", "from": "/__proto__", "path": "/y" },
      { "op": "move", "from": "/x", "path": "/constructor/__proto__" }
    ]`,
  ) as Record<string, unknown>;
  assert.equal(
    JSON.stringify(result),
    '{"__proto__":{"polluted":2},"constructor":{"prototype":{"polluted":3},' +
      '"__proto__":{"__proto__":{"polluted":4}}},"y":{"polluted":2}}',
  );
  for (const object of [result, result.constructor, result.y]) {
    assert.equal(Object.getPrototypeOf(object), Object.prototype);
  }
  assert.ok(Object.hasOwn(result.constructor as object, "__proto__"));
  assertPrototypesClean();
});

Deno.test("applyJsonPatchToBytes keeps __proto__ own through parse and serialization", () => {
  const value = encoder.encode('{"__proto__":{"x":1}}');
  const out = applyJsonPatchToBytes(
    value,
    parseJsonPatch('[{"op":"add","path":"/__proto__/polluted","value":true}]'),
  );
  assert.equal(decoder.decode(out), '{"__proto__":{"x":1,"polluted":true}}');
  assertPrototypesClean();
});

Deno.test("diffJson round-trips __proto__ and constructor members", () => {
  const from = JSON.parse('{"__proto__":{"a":1},"constructor":1,"k":{"__proto__":[]}}');
  const to = JSON.parse('{"__proto__":{"a":2},"prototype":1,"k":{"__proto__":[0]}}');
  const result = applyJsonPatch(from, diffJson(from, to));
  assert.deepStrictEqual(result, to); // own members named __proto__ included
  assert.ok(Object.hasOwn(result as object, "__proto__"));
  assertPrototypesClean();
});

// --- Limits ---------------------------------------------------------------------

function nested(depth: number): unknown {
  let value: unknown = 0;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

Deno.test("applyJsonPatch bounds nesting at MAX_JSON_DEPTH", () => {
  assert.deepStrictEqual(applyJsonPatch(nested(MAX_JSON_DEPTH), []), nested(MAX_JSON_DEPTH));
  assertPatchError(() => applyJsonPatch(nested(MAX_JSON_DEPTH + 1), []), /MAX_JSON_DEPTH 256/);
  assertPatchError(
    () => applyJsonPatch(nested(100000), []),
    /Cannot apply JSON Patch: the document at "\/0\/0.*nests deeper than MAX_JSON_DEPTH/,
  );
  // A value fits on its own but not where it is added.
  assertPatchError(
    () => applyJsonPatch({ a: {} }, [{ op: "add", path: "/a/b", value: nested(MAX_JSON_DEPTH) }]),
    /operation 0 \(add "\/a\/b"\): the value at .* nests deeper than MAX_JSON_DEPTH/,
  );
  // Copies and moves of a deep value into a deep place.
  const doc = { deep: nested(MAX_JSON_DEPTH - 2), box: { inner: {} } };
  assert.ok(applyJsonPatch(doc, [{ op: "copy", from: "/deep", path: "/box/inner" }]));
  assertPatchError(
    () => applyJsonPatch(doc, [{ op: "copy", from: "/deep", path: "/box/inner/x" }]),
    /MAX_JSON_DEPTH/,
  );
  assertPatchError(
    () => applyJsonPatch(doc, [{ op: "move", from: "/deep", path: "/box/inner/x" }]),
    /the moved value would nest deeper than MAX_JSON_DEPTH/,
  );
  // In a document that deep, a shallow value still moves deeper.
  assert.deepStrictEqual(
    applyJsonPatch({ ...doc, flat: [1] }, [{ op: "move", from: "/flat", path: "/box/inner/x" }]),
    { deep: doc.deep, box: { inner: { x: [1] } } },
  );
  const deepText = "[".repeat(100000) + "]".repeat(100000);
  assertPatchError(() => applyJsonPatchToBytes(encoder.encode(deepText), []), /MAX_JSON_DEPTH/);
  assertPatchError(
    () => parseJsonPatch(`[{"op":"add","path":"/a","value":${deepText}}]`),
    /operation 0: "value" at .* nests deeper than MAX_JSON_DEPTH/,
  );
});

Deno.test("applyJsonPatch stops a copy bomb at the size bound", () => {
  // Each copy doubles the document: 64 copies would make 2^64 MiB.
  const doc = { a: ["x".repeat(1024 * 1024)] };
  const ops: JsonPatchOperation[] = Array.from(
    { length: 64 },
    () => ({ op: "copy", from: "/a", path: "/a/-" }),
  );
  assertPatchError(
    () => applyJsonPatch(doc, ops),
    new RegExp(
      `operation 5 \\(copy "/a" to "/a/-"\\): the document would exceed maxSize ${DEFAULT_MAX_PATCH_RESULT_SIZE}`,
    ),
  );
  assertPatchError(
    () => applyJsonPatchToBytes(encoder.encode('{"a":[[0]]}'), ops, 4096),
    /would exceed maxSize 4096/,
  );
});

Deno.test("applyJsonPatchToBytes bounds the values copied in all at maxSize", () => {
  // Copying and discarding, over and over: each copy fits, their sum does not.
  const value = encoder.encode(JSON.stringify({ a: "x".repeat(1000) }));
  const churn: JsonPatchOperation[] = [];
  for (let i = 0; i < 10; i++) {
    churn.push({ op: "copy", from: "/a", path: "/b" }, { op: "remove", path: "/b" });
  }
  assertPatchError(
    () => applyJsonPatchToBytes(value, churn, 4096),
    /operation 8 \(copy "\/a" to "\/b"\): the values copied by the patch add up to more than maxSize 4096/,
  );
  assert.equal(applyJsonPatchToBytes(value, churn.slice(0, 6), 4096).length, value.length);
  // Copies that are kept are bounded by the result anyway.
  assert.equal(
    applyJsonPatchToBytes(value, [
      { op: "copy", from: "/a", path: "/b" },
      { op: "copy", from: "/a", path: "/c" },
      { op: "copy", from: "/a", path: "/d" },
    ], 4096).length,
    4029,
  );
});

Deno.test("applyJsonPatchToBytes bounds the result at maxSize exactly", () => {
  const value = encoder.encode('{"a":"é"}'); // 10 bytes as UTF-8
  const grow: JsonPatchOperation[] = [{ op: "add", path: "/b", value: "ü" }]; // + ',"b":"ü"'
  assert.equal(decoder.decode(applyJsonPatchToBytes(value, grow, 19)), '{"a":"é","b":"ü"}');
  assertPatchError(
    () => applyJsonPatchToBytes(value, grow, 18),
    /the 19-byte result exceeds maxSize 18/,
  );
  // Removing below the bound after a transient growth is fine when the growth fits.
  assert.equal(
    decoder.decode(
      applyJsonPatchToBytes(value, [...grow, { op: "remove", path: "/a" }], 19),
    ),
    '{"b":"ü"}',
  );
  assertPatchError(() => applyJsonPatchToBytes(value, [], -1), /maxSize -1/);
  assertPatchError(() => applyJsonPatchToBytes(value, [], NaN), /maxSize NaN/);
});

// --- applyJsonPatchToBytes -----------------------------------------------------------

Deno.test("applyJsonPatchToBytes patches UTF-8 JSON and serializes it compactly", () => {
  const value = encoder.encode('{ "name": "zoë", "tags": [ "a" ] }\n');
  const out = applyJsonPatchToBytes(value, [
    { op: "add", path: "/tags/-", value: "ß" },
    { op: "replace", path: "/name", value: "😀" },
  ]);
  assert.equal(decoder.decode(out), '{"name":"😀","tags":["a","ß"]}');
  assert.equal(decoder.decode(applyJsonPatchToBytes(encoder.encode("3"), [])), "3");
  // JSON.stringify's order: integer-like member names first.
  assert.equal(
    decoder.decode(applyJsonPatchToBytes(encoder.encode('{"b":1,"1":2}'), [])),
    '{"1":2,"b":1}',
  );
});

Deno.test("applyJsonPatchToBytes refuses values that are not UTF-8 JSON", () => {
  const values = [
    new Uint8Array(0),
    new Uint8Array([0xff]),
    new Uint8Array([0x22, 0xc3, 0x22]), // a truncated two-byte sequence in a string
    new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]), // an encoded surrogate
    encoder.encode("{'a': 1}"),
    encoder.encode("[1,]"),
    encoder.encode("NaN"),
  ];
  for (const value of values) {
    assertPatchError(() => applyJsonPatchToBytes(value, []), /the value is not UTF-8 JSON/);
  }
  assertPatchError(
    () => applyJsonPatchToBytes("{}" as unknown as Uint8Array, []),
    /expected a Uint8Array value/,
  );
});

// --- parseJsonPatch ------------------------------------------------------------

Deno.test("parseJsonPatch returns fresh operations with only the RFC's members", () => {
  const ops = parseJsonPatch(`[
    { "path": "/a", "op": "add", "value": null, "from": "/x" },
    { "op": "remove", "path": "/b", "value": 1 },
    { "op": "move", "from": "/c", "path": "/d", "extra": true },
    { "op": "test", "path": "", "value": { "k": [1] } }
  ]`);
  assert.deepStrictEqual(ops, [
    { op: "add", path: "/a", value: null },
    { op: "remove", path: "/b" },
    { op: "move", from: "/c", path: "/d" },
    { op: "test", path: "", value: { k: [1] } },
  ]);
  assert.deepStrictEqual(parseJsonPatch("[]"), []);
});

Deno.test("parseJsonPatch names the malformed operation", () => {
  const cases: [string, RegExp][] = [
    ["", /not JSON/],
    ["[", /not JSON/],
    ["{}", /expected an array of operations, got an object/],
    ['"add"', /expected an array of operations, got a string/],
    ["[1]", /operation 0: expected an object, got a number/],
    ['[{"op":"test","path":"","value":1}, null]', /operation 1: expected an object, got null/],
    ['[{"op":"nop","path":""}]', /operation 0: "op" is "nop", not one of add, remove/],
    ['[{"path":""}]', /operation 0: "op" is undefined/],
    ['[{"op":"remove"}]', /operation 0: "path" is undefined, not a string/],
    ['[{"op":"remove","path":1}]', /operation 0: "path" is 1, not a string/],
    ['[{"op":"replace","path":""}]', /operation 0: "value" is missing/],
    ['[{"op":"test","path":""}]', /operation 0: "value" is missing/],
    ['[{"op":"copy","path":"/a"}]', /operation 0: "from" is undefined, not a string/],
    ['[{"op":"move","path":"/a","from":["/b"]}]', /operation 0: "from" is an array/],
    ['[{"op":"add","path":"/a","__proto__":{"value":1}}]', /operation 0: "value" is missing/],
  ];
  for (const [text, message] of cases) {
    assertPatchError(() => parseJsonPatch(text), message);
  }
  assertPatchError(() => parseJsonPatch(42 as unknown as string), /expected text, got a number/);
});

Deno.test("parseJsonPatch refuses more than MAX_PATCH_OPERATIONS operations", () => {
  const op = '{"op":"remove","path":"/a"}';
  assert.equal(parseJsonPatch(`[${Array(MAX_PATCH_OPERATIONS).fill(op)}]`).length, 1024);
  assertPatchError(
    () => parseJsonPatch(`[${Array(MAX_PATCH_OPERATIONS + 1).fill(op)}]`),
    /1025 operations exceed MAX_PATCH_OPERATIONS 1024/,
  );
});

Deno.test("parseJsonPatch shortens long paths in messages", () => {
  const path = "x".repeat(10000);
  assert.throws(
    () => parseJsonPatch(JSON.stringify([{ op: "remove", path }])),
    (err: unknown) => err instanceof PatchError && err.message.length < 300,
  );
});

// --- diffJson -------------------------------------------------------------------

Deno.test("diffJson makes key-by-key and index-by-index patches", () => {
  assert.deepStrictEqual(diffJson({ a: 1 }, { a: 1 }), []);
  assert.deepStrictEqual(diffJson(1, 2), [{ op: "replace", path: "", value: 2 }]);
  assert.deepStrictEqual(diffJson([1], { 0: 1 }), [{ op: "replace", path: "", value: { 0: 1 } }]);
  assert.deepStrictEqual(diffJson([1, 2, 3, 4], [1, 5]), [
    { op: "replace", path: "/1", value: 5 },
    { op: "remove", path: "/3" },
    { op: "remove", path: "/2" },
  ]);
  assert.deepStrictEqual(diffJson([1], [1, [2], 3]), [
    { op: "add", path: "/1", value: [2] },
    { op: "add", path: "/2", value: 3 },
  ]);
  assert.deepStrictEqual(diffJson({ "a/b": { "~": 1 } }, { "a/b": { "~": 2 } }), [
    { op: "replace", path: "/a~1b/~0", value: 2 },
  ]);
  assert.deepStrictEqual(diffJson(0, -0), [{ op: "replace", path: "", value: -0 }]);
});

Deno.test("diffJson copies the values it puts in the patch", () => {
  const to = { a: { b: [1] } };
  const patch = diffJson({}, to);
  to.a.b.push(2);
  assert.deepStrictEqual(patch, [{ op: "add", path: "/a", value: { b: [1] } }]);
});

Deno.test("diffJson replaces the whole document rather than exceed MAX_PATCH_OPERATIONS", () => {
  const from = Array.from({ length: 2000 }, (_, i) => i);
  const to = from.map((i) => -i - 1);
  const patch = diffJson(from, to);
  assert.deepStrictEqual(patch, [{ op: "replace", path: "", value: to }]);
  assert.deepStrictEqual(applyJsonPatch(from, patch), to);
  const exactly = diffJson(from.slice(0, MAX_PATCH_OPERATIONS), to.slice(0, MAX_PATCH_OPERATIONS));
  assert.equal(exactly.length, MAX_PATCH_OPERATIONS);
});

Deno.test("diffJson refuses values that are not JSON", () => {
  assertPatchError(() => diffJson({ a: undefined }, {}), /Cannot diff JSON: from at "\/a"/);
  assertPatchError(() => diffJson({}, [NaN]), /Cannot diff JSON: to at "\/0" is NaN/);
  assertPatchError(() => diffJson(nested(MAX_JSON_DEPTH + 1), 0), /MAX_JSON_DEPTH/);
});

// --- Splices --------------------------------------------------------------------

const bytes = (...values: number[]) => new Uint8Array(values);
const splice = (offset: number, deleteCount: number, ...insert: number[]): Splice => ({
  offset,
  deleteCount,
  insert: new Uint8Array(insert),
});

Deno.test("applySplices applies splices in order, each on the previous result", () => {
  const value = bytes(1, 2, 3, 4, 5);
  assert.deepStrictEqual(
    applySplices(value, [splice(0, 1, 9, 9), splice(6, 0, 6), splice(3, 3)]),
    bytes(9, 9, 2, 6),
  );
  assert.deepStrictEqual(applySplices(value, [splice(5, 0, 6, 7)]), bytes(1, 2, 3, 4, 5, 6, 7));
  assert.deepStrictEqual(applySplices(value, [splice(0, 5)]), bytes());
  assert.deepStrictEqual(applySplices(bytes(), [splice(0, 0, 1)]), bytes(1));
  assert.deepStrictEqual(value, bytes(1, 2, 3, 4, 5));
});

Deno.test("applySplices returns a new array", () => {
  const value = bytes(1, 2);
  const out = applySplices(value, []);
  assert.deepStrictEqual(out, value);
  assert.notEqual(out.buffer, value.buffer);
  const insert = bytes(7);
  const spliced = applySplices(value, [{ offset: 0, deleteCount: 0, insert }]);
  insert[0] = 8;
  assert.deepStrictEqual(spliced, bytes(7, 1, 2));
});

Deno.test("applySplices refuses splices out of range", () => {
  const value = bytes(1, 2, 3);
  const cases: [Splice[], RegExp][] = [
    [[splice(4, 0)], /splice 0: offset 4 is past the end of the 3-byte value/],
    [[splice(2, 2)], /splice 0: deleting 2 bytes at offset 2 runs past the end/],
    [[splice(0, 3), splice(1, 0)], /splice 1: offset 1 is past the end of the 0-byte value/],
    [[splice(-1, 0)], /splice 0: offset -1 is not a non-negative integer/],
    [[splice(0.5, 0)], /offset 0.5 is not/],
    [[splice(NaN, 0)], /offset NaN is not/],
    [[splice(Infinity, 0)], /offset Infinity is not/],
    [[splice(2 ** 53, 0)], /offset 9007199254740992 is not/],
    [[splice(0, -1)], /deleteCount -1 is not/],
    [[{ offset: 0, deleteCount: 0, insert: [1] as unknown as Uint8Array }], /insert is an array/],
    [[{ offset: 0n, deleteCount: 0, insert: bytes() } as unknown as Splice], /offset a bigint/],
    [[null as unknown as Splice], /splice 0: expected an object, got null/],
  ];
  for (const [splices, message] of cases) {
    assertPatchError(() => applySplices(value, splices), message);
  }
  assertPatchError(() => applySplices([1] as unknown as Uint8Array, []), /expected a Uint8Array/);
  assertPatchError(() => applySplices(value, {} as unknown as Splice[]), /expected an array/);
});

Deno.test("applySplices bounds the result at maxSize", () => {
  const value = bytes(1, 2, 3);
  assert.deepStrictEqual(applySplices(value, [splice(3, 0, 4)], 4), bytes(1, 2, 3, 4));
  assertPatchError(
    () => applySplices(value, [splice(3, 0, 4, 5)], 4),
    /Cannot apply splices: the 5-byte result exceeds maxSize 4/,
  );
  // Only the result counts, not what a splice leaves on the way.
  assert.deepStrictEqual(applySplices(value, [splice(0, 0, 0, 0), splice(0, 3)], 3), bytes(2, 3));
  assertPatchError(() => applySplices(value, [], -1), /maxSize -1 is not a non-negative number/);
});

Deno.test("applySplices refuses more than MAX_PATCH_OPERATIONS splices", () => {
  const one = Array.from({ length: MAX_PATCH_OPERATIONS }, () => splice(0, 0, 1));
  assert.equal(applySplices(bytes(), one).length, MAX_PATCH_OPERATIONS);
  assertPatchError(
    () => applySplices(bytes(), [...one, splice(0, 0)]),
    /1025 splices exceed MAX_PATCH_OPERATIONS 1024/,
  );
});

Deno.test("diffBytes finds the smallest single splice", () => {
  assert.deepStrictEqual(diffBytes(bytes(1, 2, 3), bytes(1, 2, 3)), []);
  assert.deepStrictEqual(diffBytes(bytes(), bytes()), []);
  assert.deepStrictEqual(diffBytes(bytes(), bytes(1)), [splice(0, 0, 1)]);
  assert.deepStrictEqual(diffBytes(bytes(1, 2, 3), bytes(1, 3)), [splice(1, 1)]);
  assert.deepStrictEqual(diffBytes(bytes(1, 1, 1), bytes(1, 1)), [splice(2, 1)]);
  assert.deepStrictEqual(diffBytes(bytes(1, 2), bytes(1, 2, 1, 2)), [splice(2, 0, 1, 2)]);
  assert.deepStrictEqual(diffBytes(bytes(1, 2, 3, 4), bytes(1, 9, 4)), [splice(1, 2, 9)]);
  assert.deepStrictEqual(diffBytes(bytes(5), bytes(6)), [splice(0, 1, 6)]);
  assertPatchError(() => diffBytes("a" as unknown as Uint8Array, bytes()), /Cannot diff bytes/);
});

// --- Properties -------------------------------------------------------------------

/** `value` through JSON text: -0 becomes 0. */
function asJson(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value));
}

/** Whether `value` is made only of JSON values, arrays and plain objects. */
function isJson(value: unknown): boolean {
  if (value === null || typeof value === "string" || typeof value === "boolean") return true;
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) {
    return Object.keys(value).length === value.length && value.every(isJson);
  }
  return typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype &&
    Object.values(value).every(isJson);
}

/** JSON values whose member names include the dangerous and the escaped ones. */
const jsonKey = fc.oneof(
  fc.constantFrom(
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "",
    "-",
    "0",
    "~",
    "/",
    "~1",
  ),
  fc.string({ maxLength: 4 }),
);
const { json: jsonArbitrary } = fc.letrec((tie) => ({
  json: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer({ min: -3, max: 3 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ maxLength: 4 }),
    fc.array(tie("json"), { maxLength: 5 }),
    fc.dictionary(jsonKey, tie("json"), { maxKeys: 5, noNullPrototype: true }),
  ),
}));

Deno.test("applyJsonPatch(a, diffJson(a, b)) equals b for arbitrary JSON", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
      const before = structuredClone(a);
      const patch = diffJson(a, b);
      assert.deepStrictEqual(applyJsonPatch(a, patch), b);
      assert.deepStrictEqual(a, before);
      // What a peer receives is the patch as JSON text (where -0 is 0).
      const received = applyJsonPatch(a, parseJsonPatch(JSON.stringify(patch)));
      assert.deepStrictEqual(asJson(received), asJson(b));
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(jsonArbitrary, jsonArbitrary, (a, b) => {
      assert.deepStrictEqual(applyJsonPatch(a, diffJson(a, b)), b);
      assert.deepStrictEqual(diffJson(b, b), []);
    }),
    { numRuns: 500 },
  );
  assertPrototypesClean();
});

Deno.test("applyJsonPatchToBytes agrees with applyJsonPatch on arbitrary JSON", () => {
  fc.assert(
    fc.property(fc.jsonValue(), fc.jsonValue(), (a, b) => {
      const value = encoder.encode(JSON.stringify(a));
      const out = applyJsonPatchToBytes(value, diffJson(a, b));
      assert.deepStrictEqual(JSON.parse(decoder.decode(out)), asJson(b));
    }),
    { numRuns: 200 },
  );
});

Deno.test("applySplices(a, diffBytes(a, b)) equals b", () => {
  const small = fc.uint8Array({ maxLength: 8, max: 3 }); // few values: long common parts
  fc.assert(
    fc.property(fc.oneof(small, fc.uint8Array()), fc.oneof(small, fc.uint8Array()), (a, b) => {
      const splices = diffBytes(a, b);
      assert.ok(splices.length <= 1);
      assert.deepStrictEqual(applySplices(a, splices), b);
      if (splices.length === 1) {
        // Smallest: a pure insertion or deletion, or neither end of the replaced bytes could
        // join the common prefix or suffix (kept bytes are common: the result equals b).
        const [{ offset, deleteCount, insert }] = splices;
        assert.ok(deleteCount + insert.length > 0);
        assert.ok(
          deleteCount === 0 || insert.length === 0 ||
            (a[offset] !== insert[0] && a[offset + deleteCount - 1] !== insert.at(-1)),
        );
      } else {
        assert.deepStrictEqual(a, b);
      }
    }),
    { numRuns: 1000 },
  );
});

Deno.test("applySplices matches a naive splice for arbitrary valid splices", () => {
  const arbitrary = fc.tuple(
    fc.uint8Array({ maxLength: 32 }),
    fc.array(fc.tuple(fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 6 })), { maxLength: 20 }),
  );
  fc.assert(
    fc.property(arbitrary, ([value, raw]) => {
      const expected = Array.from(value);
      const splices: Splice[] = [];
      for (const [o, d, insert] of raw) {
        const offset = o % (expected.length + 1);
        const deleteCount = d % (expected.length - offset + 1);
        expected.splice(offset, deleteCount, ...insert);
        splices.push({ offset, deleteCount, insert });
      }
      assert.deepStrictEqual(Array.from(applySplices(value, splices)), expected);
    }),
    { numRuns: 1000 },
  );
});

Deno.test("parseJsonPatch throws only PatchError on random text", () => {
  const op = fc.record({
    op: fc.oneof(
      fc.constantFrom("add", "remove", "replace", "move", "copy", "test"),
      fc.jsonValue(),
    ),
    path: fc.oneof(fc.string(), fc.jsonValue()),
    from: fc.oneof(fc.string(), fc.jsonValue()),
    value: fc.jsonValue(),
  }, { requiredKeys: [] });
  const text = fc.oneof(
    fc.string(),
    fc.string({ unit: "binary" }),
    fc.json(),
    fc.array(op).map((ops) => JSON.stringify(ops)),
    fc.array(op).map((ops) => JSON.stringify(ops).slice(1)),
  );
  fc.assert(
    fc.property(text, (input) => {
      try {
        const ops = parseJsonPatch(input);
        assert.ok(Array.isArray(ops));
      } catch (err) {
        assert.ok(err instanceof PatchError, `${input} threw ${err}`);
      }
    }),
    { numRuns: 2000 },
  );
});

Deno.test("applyJsonPatch throws only PatchError for random patches on random documents", () => {
  const token = fc.constantFrom(
    "a",
    "b",
    "0",
    "1",
    "-",
    "01",
    "__proto__",
    "constructor",
    "prototype",
    "~0",
    "~1",
    "",
  );
  const pointer = fc.array(token, { maxLength: 4 }).map((tokens) =>
    tokens.map((t) => "/" + t).join("")
  );
  const op = fc.oneof(
    fc.record({
      op: fc.constantFrom("add", "replace", "test"),
      path: pointer,
      value: jsonArbitrary,
    }),
    fc.record({ op: fc.constant("remove"), path: pointer }),
    fc.record({ op: fc.constantFrom("move", "copy"), from: pointer, path: pointer }),
  ) as fc.Arbitrary<JsonPatchOperation>;
  fc.assert(
    fc.property(jsonArbitrary, fc.array(op, { maxLength: 8 }), (doc, ops) => {
      const before = structuredClone(doc);
      try {
        const result = applyJsonPatch(doc, ops);
        assert.ok(isJson(result), JSON.stringify(result));
      } catch (err) {
        assert.ok(err instanceof PatchError, String(err));
      }
      assert.deepStrictEqual(doc, before);
      assertPrototypesClean();
    }),
    { numRuns: 2000 },
  );
});
