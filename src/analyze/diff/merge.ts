import { type IntervalSet, normalize } from '../../util/intervals.js';
import type { Box, Slot, Space } from './space.js';

/**
 * Merging cubes for a short report: two boxes that agree on every slot but one are one box
 * with the union of that slot (exact: every point of the result was in one of them). Repeated
 * per slot until nothing merges. The walk cuts header space along every rule's edges; merging
 * undoes the cuts that made no difference.
 */
const KEYS = new WeakMap<IntervalSet, string>();

function slotKey(space: Space, s: Slot, slot: number): string {
  if (s === undefined) return '*';
  let k = KEYS.get(s);
  if (k === undefined) {
    k = s.length === 1 && s[0][0] === 0n && s[0][1] === space.top(slot) ? '*' : s.map(([lo, hi]) => (lo === hi ? lo.toString(36) : `${lo.toString(36)}-${hi.toString(36)}`)).join(',');
    KEYS.set(s, k);
  }
  return k;
}

export function mergeBoxes(space: Space, boxes: readonly Box[]): Box[] {
  let cur: Box[] = boxes.map((b) => canonical(space, b));
  if (cur.length < 2) return cur;
  const n = space.size;
  for (let round = 0; round < 8; round++) {
    let merged = false;
    for (let slot = 0; slot < n; slot++) {
      // Key of every slot but this one, from per-slot keys computed once per box and pass.
      const groups = new Map<string, Box[]>();
      for (const b of cur) {
        let key = '';
        for (let i = 0; i < n; i++) if (i !== slot) key += `${slotKey(space, b[i], i)}|`;
        const g = groups.get(key);
        if (g) g.push(b);
        else groups.set(key, [b]);
      }
      if (groups.size === cur.length) continue;
      const next: Box[] = [];
      for (const g of groups.values()) {
        if (g.length === 1) {
          next.push(g[0]);
          continue;
        }
        merged = true;
        const sets: (readonly [bigint, bigint])[] = [];
        let any = false;
        for (const b of g) {
          const s = b[slot];
          if (s === undefined) any = true;
          else for (const iv of s) sets.push(iv);
        }
        const out = g[0].slice();
        while (out.length <= slot) out.push(undefined);
        out[slot] = any ? undefined : normalize(sets);
        next.push(canonical(space, out));
      }
      cur = next;
      if (cur.length < 2) return cur;
    }
    if (!merged) break;
  }
  return cur;
}

/** Slots that span their whole domain become `undefined`, so equal boxes compare equal. */
function canonical(space: Space, b: Box): Box {
  let out: Slot[] | undefined;
  for (let i = 0; i < b.length; i++) {
    const s = b[i];
    if (s && s.length === 1 && s[0][0] === 0n && s[0][1] === space.top(i)) {
      out ??= b.slice();
      out[i] = undefined;
    }
  }
  return out ?? b;
}
