import { CASE_GROUPS } from './cases/index.js';
import { runCases } from './support/cases.js';

// One test per table-driven case: DSL parse/print, iptables emit, import, emit again.
for (const [group, list] of Object.entries(CASE_GROUPS)) runCases(group, list);
