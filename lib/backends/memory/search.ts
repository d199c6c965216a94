/** Exact (flat) search for the memory backend: unit vectors for cosine and a top-k heap. */

/** Scale to unit length so cosine similarity is a dot product. A zero vector stays zero (scores 0). */
export function normalise(vector: Float32Array): void {
  let sum = 0;
  for (let i = 0; i < vector.length; i++) sum += vector[i] * vector[i];
  if (sum === 0) return;
  const norm = Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i] /= norm;
}

/** Lower score is worse; on equal scores the later row is worse (stable, deterministic order). */
function isWorse(scoreA: number, rowA: number, scoreB: number, rowB: number): boolean {
  return scoreA < scoreB || (scoreA === scoreB && rowA > rowB);
}

/** Keeps the k best (score, row) pairs seen: a min-heap with the worst kept pair at the root. */
export class TopK {
  private readonly scores: number[] = [];
  private readonly rows: number[] = [];

  constructor(private readonly k: number) {}

  offer(score: number, row: number): void {
    if (this.rows.length < this.k) {
      this.scores.push(score);
      this.rows.push(row);
      this.siftUp(this.rows.length - 1);
    } else if (isWorse(this.scores[0], this.rows[0], score, row)) {
      this.scores[0] = score;
      this.rows[0] = row;
      this.siftDown(0);
    }
  }

  /** Whether k pairs are kept: a pair must then beat the worst of them to get in. */
  get full(): boolean {
    return this.rows.length >= this.k;
  }

  /** The worst kept score (meaningful once full). */
  get worstScore(): number {
    return this.scores[0];
  }

  /** Best first. */
  sorted(): Array<{ score: number; row: number }> {
    const pairs = this.rows.map((row, i) => ({ score: this.scores[i], row }));
    return pairs.sort((a, b) => (isWorse(a.score, a.row, b.score, b.row) ? 1 : -1));
  }

  private worse(i: number, j: number): boolean {
    return isWorse(this.scores[i], this.rows[i], this.scores[j], this.rows[j]);
  }

  private swap(i: number, j: number): void {
    [this.scores[i], this.scores[j]] = [this.scores[j], this.scores[i]];
    [this.rows[i], this.rows[j]] = [this.rows[j], this.rows[i]];
  }

  private siftUp(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.worse(i, parent)) return;
      this.swap(i, parent);
      i = parent;
    }
  }

  private siftDown(i: number): void {
    const n = this.rows.length;
    for (;;) {
      let worst = i;
      const left = 2 * i + 1;
      const right = left + 1;
      if (left < n && this.worse(left, worst)) worst = left;
      if (right < n && this.worse(right, worst)) worst = right;
      if (worst === i) return;
      this.swap(i, worst);
      i = worst;
    }
  }
}
