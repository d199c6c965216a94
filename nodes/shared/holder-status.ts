/**
 * Where the waits of a sensor are, in its status, when several instances share
 * them (a PostgreSQL job store): "3 waiting · 40% · here" when this instance
 * holds them all; "0 here · 5 on host-b" when another holds some;
 * "2 here · 7 on 2 others" for several; "· 1 unheld" for waits nobody holds
 * (a holder died; the next claim takes them). Always within MAX_STATUS.
 */
import { shortHolder, type HolderCount } from '../../lib/job-stores/holder-counts';
import { MAX_STATUS, fits } from './status';
import type { Texts } from './texts';

/** The waits of one sensor that this instance does not hold. */
export interface WaitsElsewhere {
  /** Other instances, by short name, most waits first. */
  holders: Array<{ name: string; count: number }>;
  unheld: number;
}

/** The counts of one sensor's waits (every collection), seen from instance `instanceId`. */
export function waitsElsewhere(counts: readonly HolderCount[], instanceId: string): WaitsElsewhere {
  const byHolder = new Map<string, number>();
  let unheld = 0;
  for (const row of counts) {
    if (row.holder === null) unheld += row.count;
    else if (row.holder !== instanceId) byHolder.set(row.holder, (byHolder.get(row.holder) ?? 0) + row.count);
  }
  const names = [instanceId, ...byHolder.keys()];
  const holders = [...byHolder]
    .map(([holder, count]) => ({ name: shortHolder(holder, names), count }))
    .sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
  return { holders, unheld };
}

/**
 * The status of a sensor holding `here` waits: `hereTexts` is what it says of
 * them (most detailed first, shorter ones for when room runs out). Null when
 * there are no waits anywhere.
 */
export function sharedStatus(text: Texts, here: number, hereTexts: readonly string[], elsewhere: WaitsElsewhere): string | null {
  const others = elsewhere.holders.reduce((sum, h) => sum + h.count, 0);
  const { unheld } = elsewhere;
  if (others === 0 && unheld === 0) {
    if (here === 0) return null;
    const all = hereTexts.map((status) => text('deferrable-sensor.status.here', { status }));
    return all.find(fits) ?? all[all.length - 1];
  }
  let head: string;
  if (others === 0) {
    head = text('deferrable-sensor.status.unheldOnly', { here, count: unheld });
  } else if (elsewhere.holders.length === 1) {
    const [only] = elsewhere.holders;
    head = withName((holder) => text('deferrable-sensor.status.elsewhere', { here, count: only.count, holder }), only.name);
  } else {
    head = text('deferrable-sensor.status.elsewhereMany', { here, count: others, instances: elsewhere.holders.length });
  }
  if (others > 0 && unheld > 0) {
    const withUnheld = text('deferrable-sensor.status.unheld', { status: head, count: unheld });
    if (fits(withUnheld)) return withUnheld;
  }
  return head;
}

/** `make(name)`, the name cut (with "…") when the whole would be too long: a long host name must not hide the counts. */
function withName(make: (name: string) => string, name: string): string {
  const whole = make(name);
  if (fits(whole)) return whole;
  const room = name.length - (whole.length - MAX_STATUS) - 1;
  return room >= 3 ? make(`${name.slice(0, room)}…`) : whole;
}
