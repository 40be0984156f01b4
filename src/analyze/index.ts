/**
 * The analyzer's public API (issue 6). Everything else under src/analyze is internal.
 *
 *   checkPolicy(policy, opts)   findings per rule + the policy's `expect` statements, each
 *                               finding/counterexample with a witness replayed in the simulator
 *   queryFlow(policy, flow)     every verdict a flow can get, a witness and the deciding rules
 *
 * For comparing two policies (issue 8): buildFamilyModel() compiles one family of a policy;
 * two Encoders given the same variable `prefix` share the packet's Z3 variables, so
 * "outcome A differs from outcome B" is one satisfiability question, and runPacket() /
 * replayWitnesses() confirm a difference on a concrete packet.
 */
export { type CheckOptions, assumptionsOf, checkPolicy } from './check.js';
export { type QueryOptions, queryFlow } from './query.js';
export { type ConcreteOutcome, type Verdict, runPacket } from './concrete/interp.js';
export type { NatBinding, PacketInput } from './concrete/input.js';
export { type FamilyModel, type ModelRule, buildFamilyModel, buildModels } from './model/build.js';
export { Encoder, type EncodeOptions, type SymOutcome } from './z3/encode.js';
export { z3 } from './z3/context.js';
export { replayWitnesses } from './replay.js';
export { makeWitness } from './witness.js';
export type * from './types.js';
