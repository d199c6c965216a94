/**
 * The ids of a collection's table, kept in memory by the process that writes it, so that
 * a batch of ids the table does not hold yet is written with a plain `add` instead of
 * `mergeInsert`. A merge looks each id up in the table: through the btree index on `id`
 * for the rows a catch-up run folded in, but by scanning every fragment written since
 * (one per batch), so during a long ingest each batch cost more than the one before
 * (issue 12). `add` writes one fragment and looks nothing up.
 *
 * The set is trusted only while the table is at the version it describes: every write
 * (one at a time in this process: the table's `writes` queue) first reads the table's
 * latest version (a stat of the manifest). A commit that is not one of these writes moves
 * the version on. When a catch-up run of ours may have made it (a compaction or an index
 * build, which change no ids; writes of new ids do not wait for runs), the set is kept if
 * the table still holds exactly as many rows as it has ids. Otherwise (a delete, another
 * process) the set is dropped, that write merges, and once a write finds no commit but our
 * own since the last one, the set is read again from the table (one scan of the id column).
 * Another process that keeps writing the table therefore makes every write of ours merge,
 * as before. Two windows remain, both needing another process to write ids this one writes
 * as new at the same moment: its commit of them between our check and our add
 * (milliseconds), or, during one of our runs, commits of its own that delete as many rows
 * as they insert new ids. Then both rows stay (`mergeInsert` detects that conflict, `add`
 * cannot).
 */
import type * as LanceDb from '@lancedb/lancedb';
import { ID_COLUMN } from './maintenance';

/** Beyond this many rows no set is kept (about 80 bytes an id): writes merge. */
export const MAX_KNOWN_IDS = 1_000_000;

export class KnownIds {
  /** The ids of the table at `version`, or null when not known. */
  private ids: Set<string> | null = null;
  private version = -1;
  /** The latest version this process saw (its last write, or the last check). */
  private lastSeenVersion = -1;
  /** Catch-up runs of ours going, and whether one may have committed since the set was last checked exactly. */
  private activeRuns = 0;
  private runSince = false;

  constructor(private readonly table: LanceDb.Table) {}

  runStarted(): void {
    this.activeRuns += 1;
    this.runSince = true;
  }

  runEnded(): void {
    this.activeRuns -= 1;
  }

  /**
   * Call in the table's write queue, right before writing `ids`: true when the table
   * as it is now holds none of them (write them with `add`), false when it holds one
   * or it is not known (merge).
   */
  async noneExist(ids: readonly string[]): Promise<boolean> {
    const version = await this.table.version();
    if (this.ids && version !== this.version) {
      if (this.runSince && (await this.table.countRows()) === this.ids.size) this.version = version;
      else this.ids = null;
    } else if (this.ids && this.activeRuns === 0) {
      this.runSince = false; // exactly at our last write, no run going: later commits are not ours
    }
    if (!this.ids) {
      const quiet = version === this.lastSeenVersion;
      this.lastSeenVersion = version;
      // Something else committed since our last write: merge this time, read the ids once the table is quiet.
      if (!quiet || !(await this.load(version))) return false;
    }
    const known = this.ids as Set<string>;
    return ids.every((id) => !known.has(id));
  }

  /** Our write of `ids` (now all in the table) committed `version`; the table then held `rowCount` rows. */
  wrote(ids: readonly string[], version: number, rowCount: number): void {
    this.lastSeenVersion = version;
    if (!this.ids) return;
    for (const id of ids) this.ids.add(id);
    // Another commit came between (a run of ours, if the rows still match the ids), or not.
    if (version === this.version + 1 || (this.runSince && rowCount === this.ids.size)) this.version = version;
    else this.ids = null;
  }

  /** Read every id at (or after) `version`; false when the table is too large to keep them. */
  private async load(version: number): Promise<boolean> {
    if ((await this.table.countRows()) > MAX_KNOWN_IDS) return false;
    const ids = new Set<string>();
    for await (const batch of this.table.query().select([ID_COLUMN])) {
      const column = batch.getChild(ID_COLUMN);
      if (!column) continue;
      for (let i = 0; i < column.length; i++) ids.add(column.get(i) as string);
    }
    // A commit during the scan may have added ids to the set that `version` lacks (they are
    // then merged, which is right); the next check sees the newer version and drops the set.
    this.ids = ids;
    this.version = version;
    return true;
  }
}
