import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

// WebGPU without a GPU runs on the SwiftShader Vulkan driver from Debian's chromium package. Set here,
// in the main process, so the forked test workers start with it in their real environment (the
// native driver never sees variables set later from JavaScript).
const swiftshader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (!process.env.VK_ICD_FILENAMES && existsSync(swiftshader)) process.env.VK_ICD_FILENAMES = swiftshader;
process.env.XDG_RUNTIME_DIR ??= '/tmp';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Forks, not threads: native drivers (WebGPU through Dawn) read the real process environment.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
