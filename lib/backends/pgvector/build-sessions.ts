/**
 * Sessions other than this one building an index on a table: a row of
 * pg_stat_progress_create_index, or the lock a build holds on its table for its
 * whole length (ShareUpdateExclusiveLock for CREATE INDEX CONCURRENTLY, ShareLock for
 * CREATE INDEX) by a session that is not a VACUUM or ANALYZE (which take the first
 * lock too). pg_locks shows every session's locks to every user, where the progress
 * view hides other roles' tables without pg_read_all_stats. Parameter $1: the
 * quoted table name. One column: pid.
 */
export const OTHER_BUILDERS =
  `SELECT pid FROM pg_stat_progress_create_index WHERE relid = to_regclass($1) AND pid <> pg_backend_pid() ` +
  `UNION SELECT l.pid FROM pg_locks l WHERE l.locktype = 'relation' AND l.relation = to_regclass($1) AND l.granted ` +
  `AND l.mode IN ('ShareUpdateExclusiveLock', 'ShareLock') AND l.pid <> pg_backend_pid() ` +
  `AND l.pid NOT IN (SELECT pid FROM pg_stat_progress_vacuum UNION SELECT pid FROM pg_stat_progress_analyze)`;
