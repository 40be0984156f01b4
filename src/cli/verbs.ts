import type { Verb } from './verb.js';

/** Every verb, in the order `--help` lists them. Each lives in its own module under verbs/. */
export const VERBS: readonly Verb[] = [];
