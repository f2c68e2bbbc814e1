export { checkCut, messageSeqsListedMax } from './cut.js';
export type { CutInput, CutReport, SeqRange, TokenAccounting, Violation, ViolationKind } from './cut.js';
export { checkCutByHistory, countsFromHistory } from './brute-force.js';
export type { LocalEvent, RunHistory } from './brute-force.js';
