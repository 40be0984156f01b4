/**
 * Rates as `-m limit` and `-m hashlimit` store and print them. iptables turns `N/unit` into a
 * period (scale × seconds-per-unit / N, integer division) and prints it back with the unit that
 * gives an exact-looking number, so `120/minute` is saved as `2/sec`. These functions reproduce
 * that arithmetic (libxt_limit.c / libxt_hashlimit.c print_rate) so emitted text is what
 * iptables-save prints.
 */
export type RateUnit = 'second' | 'minute' | 'hour' | 'day';

export const UNIT_SECONDS: Readonly<Record<RateUnit, number>> = { second: 1, minute: 60, hour: 3600, day: 86400 };

const UNITS_BY_PREFIX: readonly RateUnit[] = ['second', 'minute', 'hour', 'day'];

export interface Rate {
  readonly count: number;
  readonly unit: RateUnit;
}

/** `10/second`, `10/s`, `10/sec`, `5/min`, `3/h`, `5` (per second): any prefix of the unit word, as iptables. */
export function parseRate(text: string): Rate | undefined {
  const m = /^(\d+)(?:\/([a-zA-Z]+))?$/.exec(text);
  if (!m) return undefined;
  const count = Number(m[1]);
  if (count <= 0 || count > 0xffffffff) return undefined;
  if (m[2] === undefined) return { count, unit: 'second' };
  const u = m[2].toLowerCase();
  const unit = UNITS_BY_PREFIX.find((x) => x.startsWith(u));
  return unit ? { count, unit } : undefined;
}

export function formatRate(r: Rate): string {
  return `${r.count}/${r.unit}`;
}

/** The kernel-side period of a rate at a scale (limit: 10000, hashlimit rev 2+: 1000000). */
export function ratePeriod(r: Rate, scale: bigint): bigint {
  return (scale * BigInt(UNIT_SECONDS[r.unit])) / BigInt(r.count);
}

const PRINT_UNITS = [
  ['day', 86400n],
  ['hour', 3600n],
  ['min', 60n],
  ['sec', 1n],
] as const;

/**
 * iptables' print_rate: the text it prints for a period, and the printed unit in milliseconds
 * (hashlimit compares that with htable-expire to decide whether to print the latter).
 */
export function printPeriod(period: bigint, scale: bigint): { text: string; unitMs: bigint } {
  let i = 1;
  for (; i < PRINT_UNITS.length; i++) {
    const mult = PRINT_UNITS[i][1] * scale;
    if (period > mult || mult / period < mult % period) break;
  }
  const [name, secs] = PRINT_UNITS[i - 1];
  return { text: `${(secs * scale) / period}/${name}`, unitMs: secs * 1000n };
}
