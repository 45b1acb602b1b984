import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // Forks, not threads: native drivers (WebGPU through Dawn) read the real process environment.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
