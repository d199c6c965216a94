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
 * (whatever reaches that sample-query node), "paired:<sample-query id>" (what the node
 * after it makes of the answers), "caught".
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
    // The node that pairs the answers with their questions (see checkPaired).
    for (const next of (query.wires ?? []).flat()) taps.push({ label: `paired:${query.id}`, from: next });
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

/**
 * The answers of one sample-query node as its example shows them: the node after it pairs
 * each question with its hits, `[{question, best, hits}]` in the order asked.
 */
export function checkPaired(questions: string[], answers: unknown, paired: unknown): void {
  should(paired).be.an.Array();
  const pairs = paired as Array<Record<string, unknown>>;
  const lists = questions.length === 1 && !Array.isArray((answers as unknown[])[0]) ? [answers] : (answers as unknown[]);
  should(pairs.map((p) => p.question)).eql(questions, 'the answers do not say which question they answer');
  pairs.forEach((pair, i) => {
    should(pair.hits).eql(lists[i]);
    should(pair.best).equal((lists[i] as Array<{ text: string }>)[0]?.text ?? null);
  });
}

const PACKAGE_NODES = new Set(['vector-ingest', 'deferrable-sensor', 'index-health', 'sample-query']);

/**
 * The error path of a Catch node: the nodes a message from `id` reaches before it comes
 * back to one of the package's nodes (a retry loop goes back to the ingest).
 */
function errorPathOf(flows: FlowNode[], id: string): FlowNode[] {
  const seen = new Set<string>();
  const queue = [id];
  while (queue.length > 0) {
    const current = queue.shift();
    const node = flows.find((n) => n.id === current);
    if (node && PACKAGE_NODES.has(node.type)) continue;
    // A link out continues at its link in nodes.
    const links = node?.type === 'link out' ? ((node.links as string[] | undefined) ?? []) : [];
    for (const next of [...(node?.wires ?? []).flat(), ...links]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return flows.filter((n) => seen.has(n.id));
}

/**
 * The editor at 1,280 px wide, with its palette and sidebar open, shows flow x 0 to about
 * 775. The nodes of the examples are up to about 190 px wide (link nodes 30 px, comments as their text): a
 * centre at x leaves x + half that width. The browser suite measures the real boxes.
 */
export const VISIBLE_FLOW_WIDTH = 775;
function halfWidthOf(node: FlowNode): number {
  if (node.type === 'link in' || node.type === 'link out') return 15;
  // A comment is as wide as its text (about 6.6 px a character) and its icon.
  if (node.type === 'comment') return Math.round((String(node.name ?? '').length * 6.6 + 50) / 2);
  return 95;
}

/**
 * What an example must teach (issue 9), read from the flow file: each tab has a comment
 * saying what to watch; every debug node after a Catch prints `msg.error.message` (one
 * line) to the sidebar and the console; the flow fits beside the sidebar; each
 * sample-query's answers go through a node that pairs them with their questions.
 */
export function checkTeaching(flows: FlowNode[]): void {
  for (const tab of flows.filter((n) => n.type === 'tab')) {
    const comments = flows.filter((n) => n.type === 'comment' && n.z === tab.id);
    should(comments.length).be.above(0, `tab "${tab.label}" has no comment node saying what to watch`);
  }
  for (const c of ofType(flows, 'catch')) {
    const debugs = errorPathOf(flows, c.id).filter((n) => n.type === 'debug');
    should(debugs.length).be.above(0, `catch "${c.name}" leads to no debug node`);
    for (const d of debugs) {
      should(d).match(
        { targetType: 'msg', complete: 'error.message', tosidebar: true, console: true },
        `debug "${d.name}" after catch "${c.name}" should print msg.error.message to the sidebar and the console`,
      );
    }
  }
  for (const node of flows.filter((n) => typeof n.x === 'number')) {
    should((node.x as number) + halfWidthOf(node)).be.belowOrEqual(
      VISIBLE_FLOW_WIDTH,
      `${node.type} "${node.name || node.id}" at x ${node.x} is beyond a 1,280 px editor`,
    );
  }
  for (const query of ofType(flows, 'sample-query')) {
    const next = (query.wires ?? []).flat().map((id) => flows.find((n) => n.id === id));
    should(next.some((n) => n?.type === 'function' || n?.type === 'change')).be.true(
      `the answers of sample-query ${query.id} go to no node that pairs them with their questions`,
    );
  }
}

/** Minimal shape of a collected message (harness.CollectedMessage). */
type Collected = { label: string; msg: Record<string, any> };

/**
 * Check every sample-query answer of one run (the collected messages of that run): the
 * answers fit the questions asked, and the node after the query pairs them up.
 */
export function checkRunAnswers(example: FlowNode[], run: Collected[]): void {
  const answers = run.filter((m) => m.label.startsWith('answers:'));
  should(answers.length).be.above(0, 'no sample-query answers in this run');
  for (const answer of answers) {
    const queryNode = example.find((n) => n.id === answer.label.slice('answers:'.length))!;
    const asked = run.filter((m) => m.label === `questions:${queryNode.id}`);
    const questions = questionsOf(queryNode, asked[asked.length - 1]?.msg);
    checkAnswers(questions, answer.msg.payload);
    const paired = run.filter((m) => m.label === `paired:${queryNode.id}`);
    should(paired.length).be.above(0, `the answers of ${queryNode.id} were not paired with their questions`);
    checkPaired(questions, answer.msg.payload, paired[paired.length - 1].msg.payload);
  }
}

/** True once every sample-query node of the run has answered and its answers were paired. */
export function runAnswered(run: Collected[], queryNodes: number): boolean {
  return run.filter((m) => m.label.startsWith('paired:')).length >= queryNodes;
}
