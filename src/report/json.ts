import type { CheckReport, QueryReport } from '../analyze/types.js';

/**
 * JSON output of `check` and `query`: the report objects as they are, with bigints (addresses,
 * header values) as decimal strings and sets/maps as arrays, so any JSON reader can take them.
 * The shape is the TypeScript types in src/analyze/types.ts.
 */
export function toJson(value: CheckReport | QueryReport): string {
  return JSON.stringify(
    { tool: 'nfproof', version: '0.1.0', ...value },
    (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v instanceof Set) return [...v];
      if (v instanceof Map) return Object.fromEntries(v);
      return v;
    },
    2,
  );
}
