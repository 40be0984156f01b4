import type { Verb } from './verb.js';
import { checkVerb } from './verbs/check.js';
import { compileVerb } from './verbs/compile.js';
import { diffVerb } from './verbs/diff.js';
import { fmtVerb } from './verbs/fmt.js';
import { importVerb } from './verbs/import.js';
import { irVerb } from './verbs/ir.js';
import { queryVerb } from './verbs/query.js';
import { simulateVerb } from './verbs/simulate.js';

/** Every verb, in the order `--help` lists them. Each lives in its own module under verbs/. */
export const VERBS: readonly Verb[] = [compileVerb, importVerb, checkVerb, queryVerb, diffVerb, simulateVerb, irVerb, fmtVerb];
