// Reading the "Vector store pipeline" example (which nodes to observe) and checking what
// its sample queries answer. Shared by the pipeline and the package e2e specs.
import should from 'should';
import type { FlowNode } from './harness';

export interface PipelineParts {
  /** Collector taps: sensor outputs, index-health, sample-query outputs and their inputs, catch nodes. */
  taps: Array<{ label: string; from: string; output?: number }>;
  /** The inject node that starts the pipeline (it also fires once on start). */
  startInjectId: string;
  queryIds: string[];
}

const ofType = (flows: FlowNode[], type: string) => flows.filter((n) => n.type === type);

/**
 * Find the nodes to observe in a pipeline flow. Labels: "ready" / "progress" (sensor
 * outputs 1 and 2), "health", "answers:<sample-query id>", "questions:<sample-query id>"
 * (whatever reaches that sample-query node), "caught".
 */
export function analysePipeline(flows: FlowNode[]): PipelineParts {
  const sensors = ofType(flows, 'deferrable-sensor');
  const queries = ofType(flows, 'sample-query');
  should(sensors.length).be.above(0, 'the example has no deferrable-sensor node');
  should(queries.length).be.above(0, 'the example has no sample-query node');
  should(ofType(flows, 'vector-ingest').length).be.above(0, 'the example has no vector-ingest node');

  const taps: PipelineParts['taps'] = [];
  for (const sensor of sensors) {
    taps.push({ label: 'ready', from: sensor.id, output: 0 }, { label: 'progress', from: sensor.id, output: 1 });
  }
  for (const health of ofType(flows, 'index-health')) taps.push({ label: 'health', from: health.id });
  for (const query of queries) {
    taps.push({ label: `answers:${query.id}`, from: query.id });
    for (const source of flows) {
      (source.wires ?? []).forEach((targets, output) => {
        if (targets.includes(query.id)) taps.push({ label: `questions:${query.id}`, from: source.id, output });
      });
    }
  }
  for (const c of ofType(flows, 'catch')) taps.push({ label: 'caught', from: c.id });

  // The starting inject: one that fires once on start and leads to a vector-ingest node.
  const leadsToIngest = (id: string, seen = new Set<string>()): boolean => {
    if (seen.has(id)) return false;
    seen.add(id);
    const node = flows.find((n) => n.id === id);
    if (!node) return false;
    if (node.type === 'vector-ingest') return true;
    return (node.wires ?? []).flat().some((next) => leadsToIngest(next, seen));
  };
  const starters = ofType(flows, 'inject').filter((n) => leadsToIngest(n.id));
  const start = starters.find((n) => n.once === true || n.once === 'true') ?? starters[0];
  should.exist(start, 'the example has no inject node leading to vector-ingest');
  return { taps, startInjectId: start!.id, queryIds: queries.map((q) => q.id) };
}

/** The questions a sample-query node answered: from its input payload, else its `query` property. */
export function questionsOf(queryNode: FlowNode, input: Record<string, any> | undefined): string[] {
  const payload = input?.payload;
  if (typeof payload === 'string' && payload.trim() !== '') return [payload];
  if (Array.isArray(payload) && payload.length > 0 && payload.every((q) => typeof q === 'string')) return payload;
  if (payload && typeof payload === 'object' && typeof payload.text === 'string') return [payload.text];
  should(queryNode.query).be.a.String().and.not.be.empty();
  return [queryNode.query as string];
}

const STOP_WORDS = new Set(
  'the and for are was were what how does did which with from that this who why when where can not you your about into its has have had our their there them they will would should could all any but use used using'.split(
    ' ',
  ),
);

export function contentWords(text: string): Set<string> {
  return new Set(
    text
      .toLowerCase()
      .split(/[^a-z0-9]+/)
      .filter((w) => w.length >= 3 && !STOP_WORDS.has(w)),
  );
}

/** One question's answers: [{id, score, text, metadata}] best first; the best shares a word with the question. */
function checkOneAnswer(question: string, answers: unknown): void {
  should(answers).be.an.Array();
  const list = answers as Array<Record<string, unknown>>;
  should(list.length).be.above(0, `no answer for "${question}"`);
  for (const a of list) {
    should(a).have.properties(['id', 'score', 'text', 'metadata']);
    should(a.id).be.a.String();
    should(a.score).be.a.Number();
    should(a.text).be.a.String();
    should(a.metadata).be.an.Object();
  }
  for (let i = 1; i < list.length; i++) {
    should(list[i].score as number).be.belowOrEqual(list[i - 1].score as number, `answers for "${question}" are not best first`);
  }
  const asked = contentWords(question);
  const shared = [...contentWords(list[0].text as string)].filter((w) => asked.has(w));
  should(shared.length).be.above(0, `the top answer "${list[0].text}" shares no word with the question "${question}"`);
}

/** Check a sample-query output payload against the questions it answered. */
export function checkAnswers(questions: string[], payload: unknown): void {
  should(payload).be.an.Array();
  const list = payload as unknown[];
  if (list.length > 0 && Array.isArray(list[0])) {
    should(list).have.length(questions.length);
    questions.forEach((q, i) => checkOneAnswer(q, list[i]));
  } else {
    should(questions).have.length(1);
    checkOneAnswer(questions[0], list);
  }
}
