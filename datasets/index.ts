// Datasets (Node only: they read files). Import from 'metagrad/datasets'.
export { Omniglot, defaultCacheDir, OMNIGLOT_SHA256 } from './omniglot.js';
export type { OmniglotOptions, OmniglotScheme, OmniglotSplit } from './omniglot.js';
export { EpisodeSampler, BatchSampler, episodeTensors } from './sampler.js';
export type { ClassDataset, Episode, EpisodeOptions } from './sampler.js';
export { SineTasks, sineCurve } from './sine.js';
export { CopyTask, copyTensors } from './copy-task.js';
export type { CopyBatch, CopyTaskOptions } from './copy-task.js';
export { LabelDelayEpisodes, labelDelayInput } from './label-delay.js';
export type { LabelDelayBatch, LabelDelayOptions } from './label-delay.js';
export type { SineTask, SineOptions } from './sine.js';
export { ZipArchive } from './zip.js';
export { loadLakeRuns } from './lake-runs.js';
export type { LakeRun, LakeRunsOptions } from './lake-runs.js';
export { PairSampler } from './pairs.js';
export type { PairBatch, PairSamplerOptions } from './pairs.js';
export { drawAffine, applyAffine } from './augment.js';
export type { Affine, AffineDistortionOptions } from './augment.js';
export { decodePng, resizeArea } from './png.js';
