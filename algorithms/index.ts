export { MAML, withTaskAxis } from './maml.js';
export type { MAMLOptions, MetaParams } from './maml.js';
export { Reptile } from './reptile.js';
export { FineTuneBaseline } from './finetune.js';
export type { FineTuneOptions } from './finetune.js';
export type { ReptileOptions } from './reptile.js';
export { classificationLoss, regressionLoss, accuracy, summarize, formatSummary, evaluateTasks } from './task.js';
export type { Task, Target, Model, Loss, ForwardContext, Summary } from './task.js';
