export { validateGraph } from './graph.js';
export type { AppGraph, Channel, GraphError, GraphErrorKind, GraphInput, GraphValidation } from './graph.js';
export {
  backEdges,
  initiators,
  inputsOf,
  outputsOf,
  stronglyConnectedComponents,
  topologicalOrder,
} from './analysis.js';
export type { TopologicalOrder } from './analysis.js';
