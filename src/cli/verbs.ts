import type { Verb } from './verb.js';
import { compileVerb } from './verbs/compile.js';
import { importVerb } from './verbs/import.js';

/** Every verb, in the order `--help` lists them. Each lives in its own module under verbs/. */
export const VERBS: readonly Verb[] = [compileVerb, importVerb];
