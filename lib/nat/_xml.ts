/**
 * The little XML that UPnP IGD needs: find elements by local name (any
 * namespace prefix), read their text, and escape text for SOAP bodies.
 *
 * Not a parser: no DTDs, no entity definitions, no attributes read. That is
 * the point: a gateway's document can declare nothing that expands, and every
 * scan is linear in the (size-capped) input. Imported only from `lib/nat/`.
 *
 * @module
 */

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
};

const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/**
 * Escapes text for an XML element's content or an attribute value.
 *
 * @param text Any text.
 * @returns The text with `& < > " '` replaced by their entities.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { escapeXml } from "./_xml.ts";
 * assert.equal(escapeXml(`a<b & "c"`), "a&lt;b &amp; &quot;c&quot;");
 * ```
 */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

/**
 * Reads an element's text: entities (the five named ones and numeric
 * references) decoded, CDATA sections kept as they are, surrounding
 * whitespace trimmed. Markup inside is left as is (call it on leaf elements).
 *
 * @param raw The element's raw content.
 * @returns Its text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { unescapeXml } from "./_xml.ts";
 * assert.equal(unescapeXml(" a&lt;b&#38;&#x41; "), "a<b&A");
 * assert.equal(unescapeXml("<![CDATA[x&y]]>"), "x&y");
 * ```
 */
export function unescapeXml(raw: string): string {
  const parts = raw.split(/<!\[CDATA\[([\s\S]*?)\]\]>/);
  for (let i = 0; i < parts.length; i += 2) {
    parts[i] = parts[i].replace(/&(#x[0-9a-fA-F]{1,6}|#[0-9]{1,7}|[a-z]{2,4});/g, (all, ref) => {
      if (ref[0] !== "#") return NAMED[ref] ?? all;
      const code = ref[1] === "x" ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code <= 0x10ffff ? String.fromCodePoint(code) : all;
    });
  }
  return parts.join("").trim();
}

/**
 * Removes comments and processing instructions, which could hide or fake tags.
 *
 * @param xml A document.
 * @returns The document without `<!-- -->` and `<? ?>`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { stripXmlNoise } from "./_xml.ts";
 * assert.equal(stripXmlNoise('<?xml version="1.0"?><a><!-- <b>x</b> --></a>'), "<a></a>");
 * ```
 */
export function stripXmlNoise(xml: string): string {
  return xml.replace(/<!--[\s\S]*?-->/g, "").replace(/<\?[\s\S]*?\?>/g, "");
}

/**
 * The raw contents of every `name` element in `xml`, in document order,
 * whatever its namespace prefix (`<u:name>`, `<name>`). Same-name elements
 * nested inside each other are not told apart (the first closing tag ends
 * the element), which is fine for the leaf and `service` elements UPnP reads.
 * Self-closing elements (`<name/>`) yield `""`.
 *
 * @param xml The document (comments already stripped).
 * @param name The local name, letters, digits, `_`, `-` or `.`.
 * @returns The contents, markup included.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { xmlElements } from "./_xml.ts";
 * const xml = "<s:Body><u:R><a>1</a><a >2</a><a/></u:R></s:Body>";
 * assert.deepEqual(xmlElements(xml, "a"), ["1", "2", ""]);
 * assert.deepEqual(xmlElements(xml, "R"), ["<a>1</a><a >2</a><a/>"]);
 * ```
 */
export function xmlElements(xml: string, name: string): string[] {
  if (!/^[\w.-]+$/.test(name)) {
    throw new TypeError(`Invalid XML element name ${JSON.stringify(name)}`);
  }
  const open = new RegExp(`<(?:[\\w.-]+:)?${name}(?:\\s[^<>]*?)?(/?)>`, "g");
  const close = new RegExp(`</(?:[\\w.-]+:)?${name}\\s*>`, "g");
  const out: string[] = [];
  for (;;) {
    const start = open.exec(xml);
    if (start === null) break;
    if (start[1] === "/") {
      out.push("");
      continue;
    }
    close.lastIndex = open.lastIndex;
    const end = close.exec(xml);
    // No closing tag after this opening one: none after any later one either.
    if (end === null) break;
    out.push(xml.slice(open.lastIndex, end.index));
    open.lastIndex = close.lastIndex;
  }
  return out;
}

/**
 * The text of the first `name` element in `xml`, or `undefined` when there is none.
 *
 * @param xml The document or a fragment of it.
 * @param name The element's local name.
 * @returns Its unescaped, trimmed text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { xmlText } from "./_xml.ts";
 * assert.equal(xmlText("<r><u:Ip> 80.1.2.3 </u:Ip></r>", "Ip"), "80.1.2.3");
 * assert.equal(xmlText("<r/>", "x"), undefined);
 * ```
 */
export function xmlText(xml: string, name: string): string | undefined {
  const [first] = xmlElements(xml, name);
  return first === undefined ? undefined : unescapeXml(first);
}
