/**
 * A local, deterministic embedder: signed feature hashing ("the hashing trick").
 *
 * Each text becomes a bag of features: lower-cased words (weight 1), pairs of
 * adjacent words (weight 0.5) and the character 3-grams of each word with
 * boundary markers ("<se", "sen", ..., "or>"), whose weights are scaled so that
 * one word's 3-grams together weigh 0.5. Every feature is hashed (FNV-1a, then
 * the murmur3 finaliser) to one of `dimensions` slots, and a bit of the same
 * hash picks the sign, so collisions cancel out on average instead of piling up.
 * Common English function words ("the", "for", ...) weigh a quarter, so shared
 * content words dominate similarity. The vector is L2-normalised: the dot
 * product of two vectors is their cosine similarity.
 *
 * Shared words score high, shared word pairs higher, and related word forms
 * ("wait", "waiting") a little through their 3-grams. It knows nothing of
 * meaning: it is for tests, demos and offline pipelines, not semantic search.
 *
 * An empty or whitespace-only text (or one without letters or digits) gives
 * the zero vector: it is similar to nothing.
 */
import { VectorStoreError } from '../errors';
import type { EmbedOptions, Embedder } from '../types';

const MAX_DIMENSIONS = 8192;
const UNIGRAM_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
/** Total weight of one word's 3-grams, shared between them. */
const TRIGRAMS_WEIGHT = 0.5;
const STOP_WORD_FACTOR = 0.25;
/** Yield to the event loop after about this many characters of a large batch. */
const CHARS_PER_SLICE = 200_000;
/** A text longer than this is embedded in slices of about SLICE_CHARS characters, yielding between them. */
const LONG_TEXT_CHARS = 100_000;
const SLICE_CHARS = 50_000;

// Distinct FNV offset bases keep feature kinds apart: the word "the" and the
// 3-gram "the" land in unrelated slots.
const SEED_WORD = 0x811c9dc5;
const SEED_PAIR = 0x050c5d1f;
const SEED_TRIGRAM = 0x6b8b4567;
const FNV_PRIME = 0x01000193;
const BOUNDARY_START = 0x3c; // '<'
const BOUNDARY_END = 0x3e; // '>'
const PAIR_SEPARATOR = 0x20; // ' '

const STOP_WORDS: ReadonlySet<string> = new Set(
  ('a an and are as at be but by do does did for from has have had how i if in into is it its ' +
    'of on or so than that the their them then there these they this to was we were what when ' +
    'where which who why will with you your').split(' '),
);

/** Letters and digits of any script make words; everything else separates them. */
const NON_WORD = /[^\p{L}\p{N}]+/u;

/** A run of letters and digits, at most 4096 code points at a time (see embedLong). */
const WORD_FRAGMENT = '[\\p{L}\\p{N}]{1,4096}';

/** ASCII whitespace: where a long text may be cut without changing how it lower-cases or splits. */
const SAFE_CUT = /[ \t\n\r\f\v]/g;

/** The end of the piece starting before `target`: just after the first ASCII whitespace at or after target - 1, else the text's end. */
function pieceEnd(text: string, target: number): number {
  if (target >= text.length) return text.length;
  SAFE_CUT.lastIndex = target - 1;
  const found = SAFE_CUT.exec(text);
  return found === null ? text.length : found.index + 1;
}

/** FNV-1a over the UTF-16 code units of `s` from `start` to `end`. */
function fnv(hash: number, s: string, start: number, end: number): number {
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ s.charCodeAt(i), FNV_PRIME);
  return hash;
}

function fnvUnit(hash: number, unit: number): number {
  return Math.imul(hash ^ unit, FNV_PRIME);
}

/** murmur3's finaliser: spreads FNV's weak low bits over the whole word. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class HashEmbedder implements Embedder {
  readonly name = 'hash';
  readonly dimensions: number;
  /** Accumulator reused by every text; embedOne is synchronous, so it is never shared mid-use. */
  private readonly scratch: Float64Array;

  constructor(dimensions: number) {
    if (!Number.isInteger(dimensions) || dimensions < 1 || dimensions > MAX_DIMENSIONS) {
      throw new VectorStoreError(
        'INVALID_INPUT',
        `dimensions of the hash embedder must be an integer between 1 and ${MAX_DIMENSIONS} (got ${dimensions})`,
      );
    }
    this.dimensions = dimensions;
    this.scratch = new Float64Array(dimensions);
  }

  /** Local work: nothing is ever retried, so `options` has nothing to report. */
  async embed(texts: string[], signal?: AbortSignal, _options?: EmbedOptions): Promise<Float32Array[]> {
    const out: Float32Array[] = [];
    let charsSinceYield = 0;
    for (const text of texts) {
      if (signal?.aborted) throw cancelled(signal);
      if (typeof text !== 'string') {
        throw new VectorStoreError('INVALID_INPUT', `the hash embedder can only embed strings (got ${typeof text})`);
      }
      if (text.length > LONG_TEXT_CHARS) {
        out.push(await this.embedLong(text, signal));
        continue;
      }
      out.push(this.embedOne(text));
      // Large batches must not hold the event loop for long.
      charsSinceYield += text.length;
      if (charsSinceYield >= CHARS_PER_SLICE) {
        charsSinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    return out;
  }

  /** Embeds one text, synchronously. */
  embedOne(text: string): Float32Array {
    const scratch = this.scratch;
    const words = text.toLowerCase().split(NON_WORD);
    let previous = '';
    for (const word of words) {
      if (word === '') continue; // split leaves '' at the ends
      this.addWord(scratch, word, previous);
      previous = word;
    }
    return normalise(scratch);
  }

  /** A word's features: the word, the pair it makes with the previous word ('' for none), its 3-grams. */
  private addWord(scratch: Float64Array, word: string, previous: string): void {
    const factor = STOP_WORDS.has(word) ? STOP_WORD_FACTOR : 1;
    this.add(scratch, fnv(SEED_WORD, word, 0, word.length), UNIGRAM_WEIGHT * factor);
    if (previous !== '') {
      let pair = fnv(SEED_PAIR, previous, 0, previous.length);
      pair = fnv(fnvUnit(pair, PAIR_SEPARATOR), word, 0, word.length);
      this.add(scratch, pair, BIGRAM_WEIGHT * factor);
    }
    this.addTrigrams(scratch, word, factor);
  }

  /** The 3-grams of "<word>", hashed in place without building substrings. */
  private addTrigrams(scratch: Float64Array, word: string, factor: number): void {
    const n = word.length; // "<" + word + ">" has n + 2 characters, so n 3-grams
    const weight = (TRIGRAMS_WEIGHT * factor) / Math.sqrt(n);
    let first = BOUNDARY_START;
    let second = word.charCodeAt(0);
    for (let i = 0; i < n; i++) {
      const third = i + 1 < n ? word.charCodeAt(i + 1) : BOUNDARY_END;
      this.add(scratch, fnvUnit(fnvUnit(fnvUnit(SEED_TRIGRAM, first), second), third), weight);
      first = second;
      second = third;
    }
  }

  /**
   * What embedOne gives, bit for bit, for a long text, in slices of about
   * SLICE_CHARS characters with a turn of the event loop between them. The
   * same features are added in the same order:
   * - the text is lower-cased piece by piece, cut just after an ASCII space,
   *   tab or line break: such a character is neither cased nor "case-ignorable",
   *   so no context-dependent mapping (the final sigma) looks across it, and no
   *   word or surrogate pair spans it;
   * - words are found as runs of letters and digits, read in bounded fragments
   *   joined when adjacent (what `split(NON_WORD)` keeps);
   * - a giant word's hashes are computed in slices too (FNV is sequential).
   */
  private async embedLong(text: string, signal?: AbortSignal): Promise<Float32Array> {
    const acc = new Float64Array(this.dimensions); // its own: other embed calls run between slices
    let work = 0;
    const spend = async (units: number): Promise<void> => {
      work += units;
      if (work < SLICE_CHARS) return;
      work = 0;
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw cancelled(signal);
    };
    let previous = '';
    for (let start = 0; start < text.length; ) {
      const end = pieceEnd(text, start + SLICE_CHARS);
      const lower = text.slice(start, end).toLowerCase();
      start = end;
      await spend(lower.length / 4); // lower-casing and slicing: cheap per character
      const fragments = new RegExp(WORD_FRAGMENT, 'gu');
      let wordStart = -1;
      let wordEnd = -1;
      for (let m = fragments.exec(lower); ; m = fragments.exec(lower)) {
        if (m !== null && m.index === wordEnd) {
          wordEnd += m[0].length; // the same word goes on
          continue;
        }
        if (wordStart !== -1) {
          const word = lower.slice(wordStart, wordEnd);
          if (word.length + previous.length < SLICE_CHARS) {
            // The common case, synchronous: an await per word would cost more than the word.
            this.addWord(acc, word, previous);
            work += word.length + 1;
            if (work >= SLICE_CHARS) await spend(0);
          } else {
            await this.addWordSliced(acc, word, previous, spend);
          }
          previous = word;
        }
        if (m === null) break;
        wordStart = m.index;
        wordEnd = m.index + m[0].length;
      }
    }
    return normalise(acc);
  }

  /** addWord for a giant word (or one after a giant word), its hashes computed in slices. */
  private async addWordSliced(
    acc: Float64Array,
    word: string,
    previous: string,
    spend: (units: number) => Promise<void>,
  ): Promise<void> {
    const fnvSliced = async (hash: number, s: string): Promise<number> => {
      for (let from = 0; from < s.length; from += SLICE_CHARS) {
        hash = fnv(hash, s, from, Math.min(s.length, from + SLICE_CHARS));
        await spend(Math.min(SLICE_CHARS, s.length - from));
      }
      return hash;
    };
    const factor = STOP_WORDS.has(word) ? STOP_WORD_FACTOR : 1;
    this.add(acc, await fnvSliced(SEED_WORD, word), UNIGRAM_WEIGHT * factor);
    if (previous !== '') {
      const pair = await fnvSliced(fnvUnit(await fnvSliced(SEED_PAIR, previous), PAIR_SEPARATOR), word);
      this.add(acc, pair, BIGRAM_WEIGHT * factor);
    }
    // addTrigrams, with the loop cut in slices.
    const n = word.length;
    const weight = (TRIGRAMS_WEIGHT * factor) / Math.sqrt(n);
    let first = BOUNDARY_START;
    let second = word.charCodeAt(0);
    for (let from = 0; from < n; from += SLICE_CHARS) {
      const to = Math.min(n, from + SLICE_CHARS);
      for (let i = from; i < to; i++) {
        const third = i + 1 < n ? word.charCodeAt(i + 1) : BOUNDARY_END;
        this.add(acc, fnvUnit(fnvUnit(fnvUnit(SEED_TRIGRAM, first), second), third), weight);
        first = second;
        second = third;
      }
      await spend(2 * (to - from));
    }
  }

  private add(scratch: Float64Array, rawHash: number, weight: number): void {
    const h = mix(rawHash);
    // Low bits pick the slot, the top bit the sign: independent after mixing.
    scratch[h % this.dimensions] += h & 0x80000000 ? -weight : weight;
  }
}

/** Copies the accumulator into a unit-length Float32Array and zeroes it for the next text. */
function normalise(scratch: Float64Array): Float32Array {
  let sumOfSquares = 0;
  for (let i = 0; i < scratch.length; i++) sumOfSquares += scratch[i] * scratch[i];
  const out = new Float32Array(scratch.length);
  if (sumOfSquares > 0) {
    const scale = 1 / Math.sqrt(sumOfSquares);
    for (let i = 0; i < scratch.length; i++) out[i] = scratch[i] * scale;
  }
  scratch.fill(0);
  return out;
}

function cancelled(signal: AbortSignal): VectorStoreError {
  return new VectorStoreError('UNAVAILABLE', 'embedding was cancelled', { cause: signal.reason });
}
