/**
 * The bzip2 encoder: RLE1, a Burrows–Wheeler transform by prefix doubling,
 * move-to-front with RUNA/RUNB zero-run coding, and 2–6 Huffman tables chosen
 * per 50 symbols as in bzip2's `compress.c` (see `_bzip2.ts`).
 *
 * Private to `lib/wire/`.
 *
 * @module
 */

import { CRC_TABLE, GROUP_SIZE, RUNA, RUNB } from "./_bzip2.ts";

class BitWriter {
  #buf: Uint8Array;
  #len = 0;
  #acc = 0;
  #bits = 0;

  constructor(capacity: number) {
    this.#buf = new Uint8Array(Math.max(64, capacity));
  }

  /** Writes the low `n` bits of `value`, most significant first; `n` ≤ 24. */
  write(n: number, value: number): void {
    this.#acc = (this.#acc << n) | (value & ((1 << n) - 1));
    this.#bits += n;
    while (this.#bits >= 8) {
      this.#bits -= 8;
      if (this.#len === this.#buf.length) {
        const grown = new Uint8Array(this.#buf.length * 2);
        grown.set(this.#buf);
        this.#buf = grown;
      }
      this.#buf[this.#len++] = (this.#acc >>> this.#bits) & 0xff;
    }
    this.#acc &= (1 << this.#bits) - 1;
  }

  write32(value: number): void {
    this.write(16, value >>> 16);
    this.write(16, value & 0xffff);
  }

  finish(): Uint8Array {
    if (this.#bits > 0) this.write(8 - this.#bits, 0);
    return this.#buf.slice(0, this.#len);
  }
}

/**
 * Sorts the cyclic rotations of `s` and returns the starting index of each in
 * sorted order (prefix doubling with counting sorts, O(n log n)). Identical
 * rotations of a periodic block end up in some order, which the BWT allows.
 */
function sortRotations(s: Uint8Array, n: number): Int32Array {
  const p = new Int32Array(n);
  const pn = new Int32Array(n);
  let c = new Int32Array(n);
  let cn = new Int32Array(n);
  const cnt = new Int32Array(Math.max(256, n));
  for (let i = 0; i < n; i++) cnt[s[i]]++;
  for (let i = 1; i < 256; i++) cnt[i] += cnt[i - 1];
  for (let i = n - 1; i >= 0; i--) p[--cnt[s[i]]] = i;
  let classes = 1;
  c[p[0]] = 0;
  for (let i = 1; i < n; i++) {
    if (s[p[i]] !== s[p[i - 1]]) classes++;
    c[p[i]] = classes - 1;
  }
  for (let h = 1; h < n && classes < n; h *= 2) {
    for (let i = 0; i < n; i++) {
      const v = p[i] - h;
      pn[i] = v < 0 ? v + n : v;
    }
    cnt.fill(0, 0, classes);
    for (let i = 0; i < n; i++) cnt[c[pn[i]]]++;
    for (let i = 1; i < classes; i++) cnt[i] += cnt[i - 1];
    for (let i = n - 1; i >= 0; i--) p[--cnt[c[pn[i]]]] = pn[i];
    cn[p[0]] = 0;
    classes = 1;
    for (let i = 1; i < n; i++) {
      const a = p[i], b = p[i - 1];
      const a2 = a + h < n ? a + h : a + h - n;
      const b2 = b + h < n ? b + h : b + h - n;
      if (c[a] !== c[b] || c[a2] !== c[b2]) classes++;
      cn[a] = classes - 1;
    }
    [c, cn] = [cn, c];
  }
  return p;
}

/**
 * Huffman code lengths for `freq`, no longer than `maxLen`: when the tree is
 * too deep the weights are halved and it is rebuilt, as bzip2 does. Symbols
 * that never occur still get a code (bzip2 decoders require one for all).
 */
function codeLengths(
  freq: Int32Array,
  alphaSize: number,
  maxLen: number,
): Uint8Array {
  const lengths = new Uint8Array(alphaSize);
  const weight = new Float64Array(alphaSize);
  for (let i = 0; i < alphaSize; i++) weight[i] = freq[i] === 0 ? 1 : freq[i];
  const nodes = 2 * alphaSize;
  const parent = new Int32Array(nodes);
  const nodeWeight = new Float64Array(nodes);
  const order = new Int32Array(alphaSize);
  for (;;) {
    for (let i = 0; i < alphaSize; i++) {
      order[i] = i;
      nodeWeight[i] = weight[i];
    }
    order.sort((a, b) => weight[a] - weight[b] || a - b);
    // Two-queue Huffman construction: leaves in `order`, internal nodes
    // appended from index alphaSize on, both already in weight order.
    let leaf = 0;
    let inner = alphaSize;
    let next = alphaSize;
    const pick = (): number => {
      if (
        leaf < alphaSize &&
        (inner >= next || nodeWeight[order[leaf]] <= nodeWeight[inner])
      ) {
        return order[leaf++];
      }
      return inner++;
    };
    for (let k = 0; k < alphaSize - 1; k++) {
      const a = pick();
      const b = pick();
      nodeWeight[next] = nodeWeight[a] + nodeWeight[b];
      parent[a] = next;
      parent[b] = next;
      next++;
    }
    const root = next - 1;
    const depth = new Uint8Array(nodes);
    let tooLong = false;
    for (let node = root - 1; node >= 0; node--) {
      depth[node] = depth[parent[node]] + 1;
    }
    for (let i = 0; i < alphaSize; i++) {
      lengths[i] = depth[i];
      if (depth[i] > maxLen) tooLong = true;
    }
    if (!tooLong) return lengths;
    for (let i = 0; i < alphaSize; i++) {
      weight[i] = 1 + Math.floor(weight[i] / 2);
    }
  }
}

const MAX_CODE_LEN = 17;
const ITERATIONS = 4;

function writeBlock(
  w: BitWriter,
  block: Uint8Array,
  n: number,
  blockCrc: number,
): void {
  // Symbols in use, mapped to a dense alphabet.
  const inUse = new Uint8Array(256);
  for (let i = 0; i < n; i++) inUse[block[i]] = 1;
  const unseqToSeq = new Uint8Array(256);
  let nInUse = 0;
  for (let i = 0; i < 256; i++) if (inUse[i]) unseqToSeq[i] = nInUse++;

  // Burrows–Wheeler transform.
  const sorted = sortRotations(block, n);
  let origPtr = 0;

  // Move-to-front with RUNA/RUNB zero runs; EOB is nInUse + 1.
  const alphaSize = nInUse + 2;
  const eob = nInUse + 1;
  const mtfv = new Uint16Array(n + 1);
  const mtfFreq = new Int32Array(alphaSize);
  const yy = new Uint8Array(nInUse);
  for (let i = 0; i < nInUse; i++) yy[i] = i;
  let nMtf = 0;
  let zPend = 0;
  const flushZeros = (): void => {
    zPend--;
    for (;;) {
      const sym = zPend & 1 ? RUNB : RUNA;
      mtfv[nMtf++] = sym;
      mtfFreq[sym]++;
      if (zPend < 2) break;
      zPend = (zPend - 2) >>> 1;
    }
    zPend = 0;
  };
  for (let i = 0; i < n; i++) {
    const start = sorted[i];
    if (start === 0) origPtr = i;
    const ll = unseqToSeq[block[start === 0 ? n - 1 : start - 1]];
    if (yy[0] === ll) {
      zPend++;
      continue;
    }
    if (zPend > 0) flushZeros();
    let j = 1;
    let prev = yy[0];
    while (yy[j] !== ll) {
      const tmp = yy[j];
      yy[j] = prev;
      prev = tmp;
      j++;
    }
    yy[j] = prev;
    yy[0] = ll;
    mtfv[nMtf++] = j + 1;
    mtfFreq[j + 1]++;
  }
  if (zPend > 0) flushZeros();
  mtfv[nMtf++] = eob;
  mtfFreq[eob]++;

  // Huffman tables: initial partition by frequency, then refine.
  const nGroups = nMtf < 200 ? 2 : nMtf < 600 ? 3 : nMtf < 1200 ? 4 : nMtf < 2400 ? 5 : 6;
  const len: Uint8Array[] = [];
  for (let t = 0; t < nGroups; t++) len.push(new Uint8Array(alphaSize));
  {
    let nPart = nGroups;
    let remF = nMtf;
    let gs = 0;
    while (nPart > 0) {
      const tFreq = remF / nPart;
      let ge = gs - 1;
      let aFreq = 0;
      while (aFreq < tFreq && ge < alphaSize - 1) aFreq += mtfFreq[++ge];
      if (
        ge > gs && nPart !== nGroups && nPart !== 1 &&
        (nGroups - nPart) % 2 === 1
      ) {
        aFreq -= mtfFreq[ge--];
      }
      const table = len[nPart - 1];
      for (let v = 0; v < alphaSize; v++) {
        table[v] = v >= gs && v <= ge ? 0 : 15;
      }
      nPart--;
      gs = ge + 1;
      remF -= aFreq;
    }
  }
  const nSelectors = Math.ceil(nMtf / GROUP_SIZE);
  const selectors = new Uint8Array(nSelectors);
  const rfreq: Int32Array[] = [];
  for (let t = 0; t < nGroups; t++) rfreq.push(new Int32Array(alphaSize));
  const cost = new Int32Array(nGroups);
  for (let iter = 0; iter < ITERATIONS; iter++) {
    for (const f of rfreq) f.fill(0);
    for (let s = 0, gs = 0; gs < nMtf; s++, gs += GROUP_SIZE) {
      const ge = Math.min(gs + GROUP_SIZE, nMtf);
      cost.fill(0);
      for (let i = gs; i < ge; i++) {
        const sym = mtfv[i];
        for (let t = 0; t < nGroups; t++) cost[t] += len[t][sym];
      }
      let best = 0;
      for (let t = 1; t < nGroups; t++) if (cost[t] < cost[best]) best = t;
      selectors[s] = best;
      const f = rfreq[best];
      for (let i = gs; i < ge; i++) f[mtfv[i]]++;
    }
    for (let t = 0; t < nGroups; t++) {
      len[t] = codeLengths(rfreq[t], alphaSize, MAX_CODE_LEN);
    }
  }

  // Canonical codes, as BZ2_hbAssignCodes.
  const code: Int32Array[] = [];
  for (let t = 0; t < nGroups; t++) {
    const table = len[t];
    const codes = new Int32Array(alphaSize);
    let vec = 0;
    for (let l = 1; l <= MAX_CODE_LEN; l++) {
      for (let i = 0; i < alphaSize; i++) if (table[i] === l) codes[i] = vec++;
      vec <<= 1;
    }
    code.push(codes);
  }

  // Block header.
  w.write(24, 0x314159);
  w.write(24, 0x265359);
  w.write32(blockCrc);
  w.write(1, 0);
  w.write(24, origPtr);
  let used16 = 0;
  for (let i = 0; i < 16; i++) {
    for (let j = 0; j < 16; j++) if (inUse[i * 16 + j]) used16 |= 0x8000 >>> i;
  }
  w.write(16, used16);
  for (let i = 0; i < 16; i++) {
    if (!(used16 & (0x8000 >>> i))) continue;
    let bits = 0;
    for (let j = 0; j < 16; j++) if (inUse[i * 16 + j]) bits |= 0x8000 >>> j;
    w.write(16, bits);
  }
  w.write(3, nGroups);
  w.write(15, nSelectors);
  const pos = new Uint8Array(nGroups);
  for (let t = 0; t < nGroups; t++) pos[t] = t;
  for (let s = 0; s < nSelectors; s++) {
    const sel = selectors[s];
    let j = 0;
    let tmp = pos[0];
    while (tmp !== sel) {
      j++;
      const prev = tmp;
      tmp = pos[j];
      pos[j] = prev;
    }
    pos[0] = sel;
    for (let k = 0; k < j; k++) w.write(1, 1);
    w.write(1, 0);
  }
  for (let t = 0; t < nGroups; t++) {
    const table = len[t];
    let curr = table[0];
    w.write(5, curr);
    for (let i = 0; i < alphaSize; i++) {
      while (curr < table[i]) {
        w.write(2, 2);
        curr++;
      }
      while (curr > table[i]) {
        w.write(2, 3);
        curr--;
      }
      w.write(1, 0);
    }
  }

  // Block data.
  for (let s = 0, gs = 0; gs < nMtf; s++, gs += GROUP_SIZE) {
    const table = len[selectors[s]];
    const codes = code[selectors[s]];
    const ge = Math.min(gs + GROUP_SIZE, nMtf);
    for (let i = gs; i < ge; i++) w.write(table[mtfv[i]], codes[mtfv[i]]);
  }
}

/**
 * Compresses `data` into one bzip2 stream. The block size digit is the
 * smallest (1–9, in units of 100 000 bytes) that holds the whole input in one
 * block, so a decoder allocates no more than it needs; larger inputs use
 * several 900 k blocks.
 */
export function bzip2Compress(data: Uint8Array): Uint8Array {
  const level = Math.min(
    9,
    Math.max(1, Math.ceil((Math.ceil(data.length * 1.25) + 24) / 100_000)),
  );
  const blockMax = level * 100_000 - 19;
  const block = new Uint8Array(blockMax + 5);
  const w = new BitWriter(data.length / 2 + 64);
  w.write(24, 0x425a68); // "BZh"
  w.write(8, 0x30 + level);

  let nblock = 0;
  let blockCrc = 0xffffffff;
  let combinedCrc = 0;
  const endBlock = (): void => {
    const crc = ~blockCrc >>> 0;
    combinedCrc = (((combinedCrc << 1) | (combinedCrc >>> 31)) ^ crc) >>> 0;
    writeBlock(w, block, nblock, crc);
    nblock = 0;
    blockCrc = 0xffffffff;
  };

  for (let i = 0; i < data.length;) {
    const ch = data[i];
    let j = i + 1;
    while (j < data.length && data[j] === ch && j - i < 255) j++;
    const run = j - i;
    if (nblock >= blockMax) endBlock();
    for (let k = 0; k < run; k++) {
      blockCrc = (blockCrc << 8) ^ CRC_TABLE[((blockCrc >>> 24) ^ ch) & 0xff];
    }
    const literal = run < 4 ? run : 4;
    for (let k = 0; k < literal; k++) block[nblock++] = ch;
    if (run >= 4) block[nblock++] = run - 4;
    i = j;
  }
  if (nblock > 0) endBlock();

  w.write(24, 0x177245);
  w.write(24, 0x385090);
  w.write32(combinedCrc);
  return w.finish();
}
