/**
 * Splitting long texts into chunks before they are embedded (vector-ingest's
 * "chunking" option). Pure: no I/O, no Node-RED.
 *
 * The text splitter works like LangChain's RecursiveCharacterTextSplitter: a
 * text too long for one chunk is cut on paragraphs, a paragraph too long on
 * lines, then sentences, then words, and a word longer than a chunk is cut hard;
 * the pieces are then merged back, in order, into chunks of at most `size`, each
 * chunk but the first starting with up to `overlap` of the end of the previous
 * one (from a word boundary). Every chunk is a slice of the text, trimmed of
 * surrounding white space; none is empty; a text that fits is one chunk.
 *
 * Markdown mode first cuts the text into sections at ATX headings (`#` to
 * `######`, not inside fenced code blocks); each section is split as above and
 * its chunks carry the section's heading path (["Install", "On Debian"]); the
 * heading line stays at the top of its section's first chunk.
 *
 * Lengths are JavaScript string lengths (UTF-16 code units, so a character
 * outside the Basic Multilingual Plane counts 2); a cut never splits such a
 * character in two. With `unit: "tokens"`, sizes are approximate tokens:
 * 1 token = 4 characters, the usual rule of thumb for English text with
 * OpenAI-style tokenizers (no tokenizer is loaded).
 *
 * Work is linear in the text (plus the overlap each chunk repeats): the
 * splitter is a generator, so `chunkItems` can pause between chunks and a text
 * of many megabytes does not hold the event loop.
 */
import { VectorStoreError } from './errors';
import type { IngestItem } from './schemas';
import { checkPortableId, type WorkSlicer } from './backends/documents';

export interface ChunkOptions {
  mode: 'text' | 'markdown';
  /** Most characters (or approximate tokens) in one chunk. */
  size: number;
  /** Characters (or approximate tokens) of the previous chunk's end repeated at the start of the next. */
  overlap: number;
  unit: 'characters' | 'tokens';
}

export interface TextChunk {
  text: string;
  /** Markdown mode: the headings above this chunk, outermost first ([] before the first heading). */
  headings?: string[];
}

/** An ingest document whose id is known (given, or the hash of its text). */
export type IdentifiedItem = IngestItem & { id: string };

/** A chunk (or a document without text) and the index, in the input, of the document it comes from. */
export type ChunkedItem = IdentifiedItem & { input: number };

/** Characters per approximate token (`unit: "tokens"`). */
export const CHARS_PER_TOKEN = 4;
/** Largest chunk size accepted, in either unit: far above what embedding models take (about 8k tokens). */
export const MAX_CHUNK_SIZE = 100_000;

const invalid = (message: string) => new VectorStoreError('INVALID_INPUT', message);

/** Options every store and model can use, or an error naming the field and the fix. */
export function checkChunkOptions(options: ChunkOptions): void {
  const { mode, size, overlap, unit } = options;
  if (mode !== 'text' && mode !== 'markdown') {
    throw invalid(`chunking.mode must be "text" or "markdown" (got ${JSON.stringify(mode)}).`);
  }
  if (unit !== 'characters' && unit !== 'tokens') {
    throw invalid(`chunking.unit must be "characters" or "tokens" (got ${JSON.stringify(unit)}).`);
  }
  if (!Number.isInteger(size) || size < 1 || size > MAX_CHUNK_SIZE) {
    throw invalid(`chunking.size must be a whole number from 1 to ${MAX_CHUNK_SIZE} ${unit} (got ${String(size)}): set the length of one chunk.`);
  }
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= size) {
    throw invalid(
      `chunking.overlap must be a whole number from 0 to less than chunking.size (${size}) (got ${String(overlap)}): ` +
        'lower the overlap, or raise the chunk size.',
    );
  }
}

/** Split one text; markdown mode also gives each piece its heading path. */
export function splitText(text: string, options: ChunkOptions): TextChunk[] {
  checkChunkOptions(options);
  return [...chunksOf(text, options)];
}

/**
 * One document (id already assigned) to its chunks: ids `${id}#${n}`, n from 0,
 * metadata {...item.metadata, source: id, chunk: n, of: total, headings? (markdown)};
 * an item without text (vector only) is returned unchanged. A vector given with a
 * text that needs more than one chunk is an error naming the field.
 */
export function chunkItem(item: IdentifiedItem, options: ChunkOptions, field: string): IngestItem[] {
  checkChunkOptions(options);
  if (item.text === undefined) return [item];
  return toChunkItems(item, [...chunksOf(item.text, options)], field);
}

/**
 * `chunkItem` for a whole input, pausing (see WorkSlicer) between chunks so a text of
 * many megabytes does not hold the event loop. An id given twice: the last document
 * wins, as if written in order, so the chunks of an earlier version never linger.
 */
export async function chunkItems(
  items: ReadonlyArray<IdentifiedItem>,
  options: ChunkOptions,
  fieldOf: (index: number) => string,
  slicer: WorkSlicer,
): Promise<ChunkedItem[]> {
  checkChunkOptions(options);
  const lastIndexOf = new Map<string, number>();
  items.forEach((item, i) => lastIndexOf.set(item.id, i));
  const out: ChunkedItem[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (lastIndexOf.get(item.id) !== i) continue;
    if (item.text === undefined) {
      out.push({ ...item, input: i });
      continue;
    }
    const pieces: TextChunk[] = [];
    for (const piece of chunksOf(item.text, options)) {
      pieces.push(piece);
      // About 256k characters between pauses: a few milliseconds of splitting.
      if (slicer.spend(piece.text.length)) await slicer.pause();
    }
    for (const chunk of toChunkItems(item, pieces, fieldOf(i))) out.push({ ...chunk, input: i });
    if (slicer.spend(pieces.length)) await slicer.pause();
  }
  return out;
}

/** Sources whose first chunk (chunk 0) is in this batch: their old chunks are removed before the batch is written. */
export function sourcesStartingIn(batch: ReadonlyArray<{ id: string; metadata?: Record<string, unknown> }>): string[] {
  const sources = new Set<string>();
  for (const { id, metadata } of batch) {
    const source = metadata?.source;
    if (metadata?.chunk === 0 && typeof source === 'string' && id === `${source}#0`) sources.add(source);
  }
  return [...sources];
}

function toChunkItems(item: IdentifiedItem, pieces: TextChunk[], field: string): IdentifiedItem[] {
  if (pieces.length === 0) {
    // Cannot happen for a validated text (never blank); kept so a bug cannot write nothing silently.
    throw invalid(`${field}.text holds no text to chunk: send a non-empty text.`);
  }
  if (item.vector !== undefined && pieces.length > 1) {
    throw invalid(
      `${field} has a vector and a text that makes ${pieces.length} chunks: a given vector can stand for one chunk only. ` +
        'Remove the vector (each chunk is then embedded), or send the text already cut in chunks, each with its vector.',
    );
  }
  const total = pieces.length;
  checkPortableId(`${item.id}#${total - 1}`, `${field}.id with its chunk number (#${total - 1})`); // the longest chunk id
  return pieces.map((piece, n) => {
    const chunk: IdentifiedItem = {
      id: `${item.id}#${n}`,
      text: piece.text,
      metadata: {
        ...item.metadata,
        source: item.id,
        chunk: n,
        of: total,
        ...(piece.headings ? { headings: [...piece.headings] } : {}),
      },
    };
    if (item.vector !== undefined) chunk.vector = item.vector;
    return chunk;
  });
}

// ---------------------------------------------------------------- the splitter

/** The chunks of a text, in order. */
function* chunksOf(text: string, options: ChunkOptions): Generator<TextChunk> {
  const scale = options.unit === 'tokens' ? CHARS_PER_TOKEN : 1;
  const size = options.size * scale;
  const overlap = options.overlap * scale;
  if (options.mode === 'text') {
    for (const chunk of mergedRanges(text, 0, text.length, size, overlap)) yield { text: chunk };
    return;
  }
  for (const section of markdownSections(text)) {
    for (const chunk of mergedRanges(text, section.start, section.end, size, overlap)) {
      yield { text: chunk, headings: section.headings };
    }
  }
}

/**
 * Where a text may be cut, coarsest first; each match stays at the end of the piece
 * before it (a sentence keeps its punctuation). Each is linear: no pattern can backtrack
 * over more than the run of characters it matches.
 */
const SEPARATORS: readonly RegExp[] = [
  /\n[ \t\r]*\n/g, // paragraphs: a blank line
  /\n/g, // lines
  /[.!?…][)\]"'”’]?[ \t]+|[。！？]/g, // sentences, closing bracket or quote kept with them
  /[ \t]+/g, // words
];

/**
 * The text of [start, end) as consecutive ranges of at most `size`, cut at the
 * coarsest separators that make them fit (the last level cuts hard). The ranges
 * tile [start, end) exactly.
 */
function* pieces(text: string, start: number, end: number, size: number, level = 0): Generator<[number, number]> {
  if (end - start <= size) {
    yield [start, end];
    return;
  }
  if (level === SEPARATORS.length) {
    yield* hardCuts(text, start, end, size);
    return;
  }
  // A slice, so that a search never runs past `end` (which would make the whole split quadratic).
  const part = start === 0 && end === text.length ? text : text.slice(start, end);
  const separator = new RegExp(SEPARATORS[level]);
  let from = 0;
  for (let match = separator.exec(part); match !== null; match = separator.exec(part)) {
    const cut = match.index + match[0].length;
    if (cut >= part.length) break;
    yield* pieces(text, start + from, start + cut, size, level + 1);
    from = cut;
  }
  yield* pieces(text, start + from, end, size, level + 1);
}

/** [start, end) in ranges of `size`, never between the two halves of a surrogate pair. */
function* hardCuts(text: string, start: number, end: number, size: number): Generator<[number, number]> {
  for (let from = start; from < end; ) {
    let to = Math.min(end, from + size);
    if (to < end && isLowSurrogate(text.charCodeAt(to))) to += to - 1 > from ? -1 : 1; // size 1: the pair goes whole
    yield [from, to];
    from = to;
  }
}

/**
 * The chunks of [start, end): pieces merged in order while they fit in `size`; the next
 * chunk starts with up to `overlap` of the end of the one before (less when the piece
 * that follows would not fit with all of it). A piece of white space alone never starts
 * a chunk (it would repeat the one before and add nothing).
 */
function* mergedRanges(text: string, start: number, end: number, size: number, overlap: number): Generator<string> {
  let chunkStart = -1; // -1: no chunk begun
  let chunkEnd = -1;
  for (const [from, to] of pieces(text, start, end, size)) {
    if (isBlank(text, from, to)) continue; // kept only inside a chunk, between its pieces
    if (chunkStart === -1) {
      chunkStart = skipSpace(text, from);
    } else if (to - chunkStart > size) {
      const done = trimmedSlice(text, chunkStart, chunkEnd);
      if (done !== '') yield done;
      const allowed = Math.min(overlap, size - (to - chunkEnd)); // room before `from`, white space between counted
      const carried = allowed > 0 ? overlapStart(text, chunkStart, chunkEnd, allowed) : chunkEnd;
      // From its first non-space: leading white space would count against the size for nothing.
      chunkStart = skipSpace(text, carried < chunkEnd ? carried : from);
    }
    chunkEnd = to;
  }
  if (chunkStart !== -1) {
    const last = trimmedSlice(text, chunkStart, chunkEnd);
    if (last !== '') yield last;
  }
}

/**
 * Where the overlap taken from the end of the chunk [chunkStart, chunkEnd) begins: the
 * first word start in its last `allowed` characters. When that tail holds none, a hard
 * cut there for a text without spaces (Chinese, Japanese), else no overlap (returns
 * `chunkEnd`) rather than half a word.
 */
function overlapStart(text: string, chunkStart: number, chunkEnd: number, allowed: number): number {
  const window = Math.max(chunkStart, chunkEnd - allowed);
  if (window === chunkStart) return chunkStart;
  for (let p = window; p < chunkEnd; p++) {
    if (isSpace(text.charCodeAt(p - 1)) && !isSpace(text.charCodeAt(p))) return p;
  }
  for (let p = chunkStart; p < chunkEnd; p++) if (isSpace(text.charCodeAt(p))) return chunkEnd;
  return isLowSurrogate(text.charCodeAt(window)) ? window + 1 : window;
}

/** The first position from `p` that is not white space (the piece after it is not blank, so it stops there). */
function skipSpace(text: string, p: number): number {
  while (isSpace(text.charCodeAt(p))) p++;
  return p;
}

function isBlank(text: string, start: number, end: number): boolean {
  for (let p = start; p < end; p++) if (!isSpace(text.charCodeAt(p))) return false;
  return true;
}

function trimmedSlice(text: string, start: number, end: number): string {
  return start >= end ? '' : text.slice(start, end).trim();
}

const isSpace = (code: number) => code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

// ---------------------------------------------------------------- Markdown

interface Section {
  start: number;
  end: number;
  headings: string[];
}

/** The opening or closing line of a fenced code block: up to 3 spaces, then 3 or more ` or ~. */
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

/**
 * An ATX heading line's level and title (closing `#`s dropped), or null: up to 3
 * spaces, 1 to 6 `#`, then a space or the end of the line. No regular expression
 * over the title, so a long line cannot make it backtrack.
 */
function atxHeading(line: string): { level: number; title: string } | null {
  let p = 0;
  while (p < 3 && line.charCodeAt(p) === 0x20) p++;
  let level = 0;
  while (level < 7 && line.charCodeAt(p + level) === 0x23) level++; // '#'
  if (level === 0 || level > 6) return null;
  const after = p + level;
  if (after < line.length && line[after] !== ' ' && line[after] !== '\t') return null;
  let title = line.slice(after).trim();
  let end = title.length;
  while (end > 0 && title.charCodeAt(end - 1) === 0x23) end--;
  if (end === 0) title = '';
  else if (end < title.length && (title[end - 1] === ' ' || title[end - 1] === '\t')) title = title.slice(0, end).trim();
  return { level, title };
}

/**
 * The sections of a Markdown text, in order: the text before the first heading (when
 * not blank), then each heading with what follows it up to the next heading. A heading
 * with nothing under it before a deeper one goes with that one (no chunk of a lone
 * heading line); `#` lines inside fenced code blocks are not headings. Only lines that
 * can be a heading or a fence are looked at whole.
 */
function* markdownSections(text: string): Generator<Section> {
  const path: Array<{ level: number; title: string }> = [];
  let section: Section = { start: 0, end: 0, headings: [] };
  let sectionLevel = 0; // 0: before the first heading
  let sectionHasBody = false;
  let fence: string | null = null;
  for (let lineStart = 0; lineStart < text.length; ) {
    const newline = text.indexOf('\n', lineStart);
    const lineEnd = newline === -1 ? text.length : newline;
    let p = lineStart;
    while (p < lineEnd && isSpace(text.charCodeAt(p))) p++;
    const blank = p === lineEnd;
    const first = blank || p - lineStart > 3 ? '' : text[p];
    const line = first === '#' || first === '`' || first === '~' ? text.slice(lineStart, lineEnd).replace(/\r$/, '') : '';
    const heading = fence === null && first === '#' ? atxHeading(line) : null;
    if (heading) {
      const joinsParent = sectionLevel > 0 && !sectionHasBody && heading.level > sectionLevel;
      if (!joinsParent && (sectionHasBody || sectionLevel > 0)) {
        yield { ...section, end: lineStart };
        section = { start: lineStart, end: lineStart, headings: [] };
      }
      while (path.length > 0 && path[path.length - 1].level >= heading.level) path.pop();
      path.push(heading);
      section.headings = path.map((h) => h.title);
      sectionLevel = heading.level;
      sectionHasBody = false;
    } else {
      const fenceMark = first === '`' || first === '~' ? FENCE.exec(line) : null;
      if (fenceMark) {
        const mark = fenceMark[1];
        if (fence === null) fence = mark;
        else if (mark[0] === fence[0] && mark.length >= fence.length && line.trim() === mark) fence = null;
      }
      if (!blank) sectionHasBody = true;
    }
    lineStart = lineEnd + 1;
  }
  if (sectionHasBody || sectionLevel > 0) yield { ...section, end: text.length };
}
