// The text splitter (lib/chunking.ts) on its own: sizes, overlap, the order of separators,
// tokens, Markdown sections and heading paths, chunk ids and metadata, huge texts (linear
// and yielding to the event loop), bad options named; and the node properties that set it.
import should from 'should';
import fc from 'fast-check';
import {
  CHARS_PER_TOKEN,
  chunkItem,
  chunkItems,
  sourcesStartingIn,
  splitText,
  type ChunkOptions,
} from '../../lib/chunking';
import { WorkSlicer } from '../../lib/backends/documents';
import { CONFIG_FIELD_LABELS, parseIngestConfig } from '../../lib/schemas';
import { throwsWith } from '../support/errors';

const text = (size: number, overlap = 0, unit: ChunkOptions['unit'] = 'characters'): ChunkOptions => ({ mode: 'text', size, overlap, unit });
const markdown = (size: number, overlap = 0): ChunkOptions => ({ mode: 'markdown', size, overlap, unit: 'characters' });
const texts = (input: string, options: ChunkOptions) => splitText(input, options).map((c) => c.text);

/** The numbers of the words "w<n>" in a chunk, in order. */
const wordNumbers = (chunk: string) => [...chunk.matchAll(/w(\d+)/g)].map((m) => Number(m[1]));

describe('chunking: splitText', () => {
  it('a text that fits is one chunk, trimmed; a text of exactly the size too', () => {
    should(splitText('  A short text.\n', text(1000))).eql([{ text: 'A short text.' }]);
    should(texts('x'.repeat(50), text(50))).eql(['x'.repeat(50)]);
  });

  it('cuts on paragraphs first, then lines, then sentences, then words, then hard', () => {
    const para = (s: string) => s;
    // Paragraphs that fit stay whole, and two that fit together share a chunk.
    should(texts([para('Alpha one.'), para('Beta two.'), para('Gamma three is longer.')].join('\n\n'), text(25))).eql([
      'Alpha one.\n\nBeta two.',
      'Gamma three is longer.',
    ]);
    // A paragraph too long is cut on its lines, not in a sentence.
    should(texts('First line here.\nSecond line here.\nThird.', text(20))).eql(['First line here.', 'Second line here.', 'Third.']);
    // A line too long is cut after its sentences, punctuation kept.
    should(texts('One sentence here. Another one! A third? Yes.', text(20))).eql(['One sentence here.', 'Another one!', 'A third? Yes.']);
    // A sentence too long is cut between words.
    should(texts('alpha beta gamma delta epsilon', text(12))).eql(['alpha beta', 'gamma delta', 'epsilon']);
    // A word too long is cut hard.
    should(texts('abcdefghijklmnopqrstuvwxyz', text(10))).eql(['abcdefghij', 'klmnopqrst', 'uvwxyz']);
  });

  it('never gives a chunk longer than the size, nor an empty one, and loses no word (property)', () => {
    const separators = [' ', ' ', ' ', '  ', '. ', '! ', '\n', '\n\n', '\n \n\n', '\n# ', '\n\n### ', '\n```\n'];
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...separators), { minLength: 1, maxLength: 400 }),
        fc.integer({ min: 8, max: 300 }),
        fc.double({ min: 0, max: 0.99, noNaN: true }),
        fc.boolean(),
        (seps, size, overlapShare, md) => {
          const input = seps.map((sep, i) => `w${i}${sep}`).join('');
          const overlap = Math.floor(size * overlapShare);
          const chunks = texts(input, md ? markdown(size, overlap) : text(size, overlap));
          let lastWord = -1;
          let previous = '';
          for (const chunk of chunks) {
            should(chunk.length).be.within(1, size);
            should(chunk).equal(chunk.trim());
            should(chunk).not.equal(previous); // never the same chunk twice
            previous = chunk;
            const words = wordNumbers(chunk);
            if (words.length === 0) {
              should(chunk).match(/^[#`\s]+$/); // a heading or fence with nothing else: still text of the input
              continue;
            }
            words.forEach((w, k) => k === 0 || should(w).equal(words[k - 1] + 1)); // a run of the text
            should(words[0]).be.belowOrEqual(lastWord + 1); // no word skipped
            // Each chunk ends further on than the one before (one ending in a "#" or "```" line may end on the same word).
            if (!/[#`]$/.test(chunk)) should(words[words.length - 1]).be.above(lastWord);
            lastWord = words[words.length - 1];
          }
          should(lastWord).equal(seps.length - 1);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('starts each chunk after the first with the end of the one before, from a word, at most the overlap', () => {
    const input = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const chunks = texts(input, text(60, 20));
    should(chunks.length).be.above(5);
    for (let k = 1; k < chunks.length; k++) {
      const previous = chunks[k - 1];
      const words = wordNumbers(chunks[k]);
      const carried = words.filter((w) => wordNumbers(previous).includes(w));
      should(carried.length).be.above(0, `chunk ${k} repeats nothing of chunk ${k - 1}`);
      const repeated = carried.map((w) => `w${w}`).join(' ');
      should(previous.endsWith(repeated)).be.true();
      should(repeated.length).be.belowOrEqual(20);
      should(chunks[k].startsWith(repeated)).be.true();
    }
    // No overlap: no word in two chunks.
    const plain = texts(input, text(60, 0)).flatMap(wordNumbers);
    should(plain).eql(Array.from({ length: 200 }, (_, i) => i));
  });

  it('a text without spaces (Chinese) is cut after its sentences, and its overlap is cut hard', () => {
    should(texts('这是第一句话。这是第二句话！这是第三句话？最后一句。', text(10, 3))).eql([
      '这是第一句话。',
      '句话。这是第二句话！',
      '句话！这是第三句话？',
      '句话？最后一句。',
    ]);
  });

  it('counts approximate tokens as 4 characters each', () => {
    should(CHARS_PER_TOKEN).equal(4);
    const input = Array.from({ length: 500 }, (_, i) => `word${i}`).join(' ');
    const chunks = texts(input, text(25, 5, 'tokens'));
    for (const chunk of chunks) should(chunk.length).be.within(1, 100);
    should(Math.max(...chunks.map((c) => c.length))).be.above(90); // sized in tokens, not characters
    should(texts(input, text(25, 5, 'tokens'))).eql(texts(input, text(100, 20)));
  });

  it('never cuts a character outside the BMP in two', () => {
    const input = '😀'.repeat(50) + ' ' + 'a😀'.repeat(40);
    for (const size of [1, 2, 3, 5, 7]) {
      for (const chunk of texts(input, text(size, Math.floor(size / 2)))) {
        should(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:^|[^\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(chunk)).be.false();
        should(chunk.length).be.belowOrEqual(Math.max(size, 2)); // size 1: a pair is one character of 2 units
      }
    }
  });
});

describe('chunking: Markdown mode', () => {
  const DOC = [
    'Intro before any heading.',
    '',
    '# Guide',
    '',
    '## Install',
    '',
    'Get the package.',
    '',
    '```sh',
    '# a comment in code, not a heading',
    'npm install it',
    '```',
    '',
    '### On Debian',
    '',
    'apt install it',
    '',
    '## Use ##',
    '',
    'Send it a message.',
    '',
    '# Appendix',
    '',
    'The end.',
  ].join('\n');

  it('gives each chunk its heading path; the heading line stays at the top of its section; code fences hide headings', () => {
    should(splitText(DOC, markdown(1000))).eql([
      { text: 'Intro before any heading.', headings: [] },
      {
        text: '# Guide\n\n## Install\n\nGet the package.\n\n```sh\n# a comment in code, not a heading\nnpm install it\n```',
        headings: ['Guide', 'Install'],
      },
      { text: '### On Debian\n\napt install it', headings: ['Guide', 'Install', 'On Debian'] },
      { text: '## Use ##\n\nSend it a message.', headings: ['Guide', 'Use'] },
      { text: '# Appendix\n\nThe end.', headings: ['Appendix'] },
    ]);
  });

  it('splits a long section as text inside it, every piece with the section headings', () => {
    const body = Array.from({ length: 60 }, (_, i) => `Sentence number ${i} of the install steps.`).join(' ');
    const chunks = splitText(`# Guide\n\n## Install\n\n${body}\n\n## Use\n\nShort.`, markdown(200, 40));
    const install = chunks.filter((c) => c.headings?.join('/') === 'Guide/Install');
    should(install.length).be.above(5);
    should(install[0].text.startsWith('# Guide\n\n## Install')).be.true();
    for (const chunk of chunks) should(chunk.text.length).be.belowOrEqual(200);
    should(chunks[chunks.length - 1]).eql({ text: '## Use\n\nShort.', headings: ['Guide', 'Use'] });
  });

  it('knows ATX headings only: up to 3 spaces of indent, a space after the #s, at most 6 #s; ~~~ fences too', () => {
    const input = ['#Not a heading', '    # indented code', '####### seven', '   ### Three spaces', 'body', '~~~', '# in tilde fence', '~~~', '#', 'empty heading body'].join('\n');
    should(splitText(input, markdown(1000))).eql([
      { text: '#Not a heading\n    # indented code\n####### seven', headings: [] },
      { text: '### Three spaces\nbody\n~~~\n# in tilde fence\n~~~', headings: ['Three spaces'] },
      { text: '#\nempty heading body', headings: [''] },
    ]);
  });

  it('reads CRLF line ends', () => {
    should(splitText('# A\r\n\r\ntext a\r\n## B\r\ntext b', markdown(1000))).eql([
      { text: '# A\r\n\r\ntext a', headings: ['A'] },
      { text: '## B\r\ntext b', headings: ['A', 'B'] },
    ]);
  });
});

describe('chunking: chunkItem, chunkItems, sourcesStartingIn', () => {
  const long = Array.from({ length: 30 }, (_, i) => `Sentence ${i} is here.`).join(' ');

  it('chunk ids <id>#<n> from 0, metadata merged with source, chunk, of (and headings in Markdown)', () => {
    const chunks = chunkItem({ id: 'guide', text: long, metadata: { lang: 'en', chunk: 'mine' } }, text(100, 20), 'msg.payload[0]');
    should(chunks.length).be.above(3);
    chunks.forEach((c, n) => {
      should(c.id).equal(`guide#${n}`);
      should(c.metadata).eql({ lang: 'en', source: 'guide', chunk: n, of: chunks.length });
      should(c.vector).be.undefined();
    });
    const md = chunkItem({ id: 'm', text: '# T\n\nbody' }, markdown(100), 'msg.payload');
    should(md).eql([{ id: 'm#0', text: '# T\n\nbody', metadata: { source: 'm', chunk: 0, of: 1, headings: ['T'] } }]);
  });

  it('a short text is one chunk #0; a document without text is unchanged; a vector for one chunk is kept', () => {
    should(chunkItem({ id: 'a', text: 'short' }, text(100), 'msg.payload')).eql([
      { id: 'a#0', text: 'short', metadata: { source: 'a', chunk: 0, of: 1 } },
    ]);
    const vectorOnly = { id: 'v', vector: [1, 2], metadata: { x: 1 } };
    should(chunkItem(vectorOnly, text(100), 'msg.payload')).eql([vectorOnly]);
    should(chunkItem({ id: 'b', text: 'short', vector: [1, 2] }, text(100), 'msg.payload')[0]).match({ id: 'b#0', vector: [1, 2] });
  });

  it('a vector with a text of several chunks is an error naming the field', () => {
    const err = throwsWith(() => chunkItem({ id: 'a', text: long, vector: [1, 2] }, text(100), 'msg.payload[3]'), 'INVALID_INPUT');
    should(err.message).match(/^msg\.payload\[3\] has a vector and a text that makes \d+ chunks: .*Remove the vector/);
  });

  it('a chunk id too long for the stores is an error naming the field', () => {
    const err = throwsWith(() => chunkItem({ id: 'x'.repeat(2046), text: long }, text(50), 'msg.payload[1]'), 'INVALID_INPUT');
    should(err.message).match(/^msg\.payload\[1\]\.id with its chunk number \(#\d+\) is too long/);
  });

  it('chunkItems: the chunks of every document, each with the index of its document; an id given twice keeps the last', async () => {
    const out = await chunkItems(
      [
        { id: 'a', text: long },
        { id: 'v', vector: [1] },
        { id: 'a', text: 'edited, short' },
      ],
      text(100, 10),
      (i) => `msg.payload[${i}]`,
      new WorkSlicer(),
    );
    should(out).eql([
      { id: 'v', vector: [1], input: 1 },
      { id: 'a#0', text: 'edited, short', metadata: { source: 'a', chunk: 0, of: 1 }, input: 2 },
    ]);
  });

  it('sourcesStartingIn: the sources whose chunk 0 is in the batch, once each', () => {
    const chunk = (source: string, n: number) => ({ id: `${source}#${n}`, metadata: { source, chunk: n, of: 3 } });
    should(sourcesStartingIn([chunk('a', 1), chunk('a', 2), chunk('b', 0), chunk('b', 1), chunk('c', 0)])).eql(['b', 'c']);
    // Not a chunk: a document whose own metadata says chunk 0 but whose id is not <source>#0.
    should(sourcesStartingIn([{ id: 'x', metadata: { source: 'y', chunk: 0 } }, { id: 'plain' }])).eql([]);
  });
});

describe('chunking: huge and hostile texts', () => {
  it('chunks a text of many megabytes in turns, giving the event loop back, with the same chunks as splitText', async () => {
    const paragraph = Array.from({ length: 40 }, (_, i) => `Word${i} and some more text, sentence ${i}.`).join(' ');
    const huge = Array.from({ length: 4000 }, (_, i) => `## Part ${i}\n\n${paragraph}`).join('\n\n'); // over 6 million characters
    should(huge.length).be.above(6_000_000);
    let turns = 0;
    let ticking = true;
    const tick = () => {
      turns += 1;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const options = markdown(1000, 100);
    const out = await chunkItems([{ id: 'big', text: huge }], options, () => 'msg.payload', new WorkSlicer());
    ticking = false;
    should(turns).be.above(10); // the event loop ran many times while it chunked
    should(out.map((c) => c.text)).eql(texts(huge, options));
    should(out[out.length - 1].id).equal(`big#${out.length - 1}`);
  });

  it('stays linear on texts that make naive splitters backtrack or rescan (each finishes in the test timeout)', () => {
    const mb = 1 << 20;
    const hostile = [
      '.'.repeat(2 * mb), // punctuation without a space
      '!'.repeat(mb) + ' x',
      'x'.repeat(2 * mb), // no separator at all: hard cuts
      ' '.repeat(2 * mb) + 'x', // one word after a sea of spaces
      '\n'.repeat(mb) + 'x',
      ('\n' + ' '.repeat(100)).repeat(10_000),
      '# ' + ' '.repeat(mb) + 'x', // a heading line of spaces
      '#'.repeat(mb),
      '```\n' + '# x\n'.repeat(200_000), // an unclosed fence
    ];
    for (const input of hostile) {
      for (const options of [text(1000, 200), markdown(1000, 200)]) {
        for (const chunk of texts(input, options)) should(chunk.length).be.within(1, 1000);
      }
    }
    // An overlap of nearly the size repeats nearly every chunk: the work is the output's.
    const words = Array.from({ length: 20_000 }, (_, i) => `w${i}`).join(' ');
    const chunks = texts(words, text(100, 99));
    should(chunks.length).be.above(15_000);
  });
});

describe('chunking: options', () => {
  it('bad options are INVALID_INPUT naming the field and the fix', () => {
    const cases: Array<[Partial<ChunkOptions>, RegExp]> = [
      [{ size: 0 }, /^chunking\.size must be a whole number from 1 to 100000 characters \(got 0\)/],
      [{ size: 1.5 }, /^chunking\.size must be a whole number/],
      [{ size: 100_001 }, /^chunking\.size .*\(got 100001\)/],
      [{ size: 10, overlap: 10 }, /^chunking\.overlap must be a whole number from 0 to less than chunking\.size \(10\) \(got 10\): lower the overlap, or raise the chunk size/],
      [{ overlap: -1 }, /^chunking\.overlap .*\(got -1\)/],
      [{ mode: 'words' as 'text' }, /^chunking\.mode must be "text" or "markdown" \(got "words"\)/],
      [{ unit: 'bytes' as 'tokens' }, /^chunking\.unit must be "characters" or "tokens" \(got "bytes"\)/],
    ];
    for (const [change, expected] of cases) {
      const err = throwsWith(() => splitText('some text', { ...text(1000, 0), ...change }), 'INVALID_INPUT');
      should(err.message).match(expected);
    }
  });

  it('the node properties: off by default (saved flows unchanged), sizes checked, overlap less than size when on, by dialog label', () => {
    const labels = CONFIG_FIELD_LABELS['vector-ingest'];
    should(parseIngestConfig({}, labels)).match({ chunking: 'off', chunkSize: 1000, chunkOverlap: 200, chunkUnit: 'characters' });
    should(parseIngestConfig({ chunking: 'markdown', chunkSize: '300', chunkOverlap: '', chunkUnit: 'tokens' }, labels)).match({
      chunking: 'markdown',
      chunkSize: 300,
      chunkOverlap: 200,
      chunkUnit: 'tokens',
    });
    const message = (def: Record<string, unknown>) => throwsWith(() => parseIngestConfig(def, labels), 'INVALID_INPUT').message;
    should(message({ chunking: 'text', chunkSize: 100, chunkOverlap: 100 })).equal(
      '"Overlap" must be less than "Chunk size" (100) (got 100): lower it, or raise "Chunk size"',
    );
    should(message({ chunking: 'text', chunkSize: 0 })).equal('"Chunk size" must be an integer between 1 and 100000 (got 0)');
    should(message({ chunking: 'words' })).equal('"Chunking" must be one of "off", "text", "markdown" (got "words")');
    should(message({ chunkUnit: 'bytes' })).equal('"Unit" must be one of "characters", "tokens" (got "bytes")');
    // With chunking off, sizes left in the dialog are not held against the node.
    should(parseIngestConfig({ chunking: 'off', chunkSize: 10, chunkOverlap: 50 }, labels).chunking).equal('off');
  });
});
