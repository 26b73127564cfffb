/**
 * How production starts the gateway (the Dockerfile, deploy/systemd/scanrelay.service and npm start set
 * the same; test/deploy/container.test.ts keeps them equal): the benches run it the same way.
 */
export const PRODUCTION_NODE_ARGS = ['--max-semi-space-size=1', '--max-old-space-size=512'];
export const PRODUCTION_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2' };

/** The environment a benched gateway gets: production's values, where the caller's own do not override them (to compare). */
export function gatewayEnv(): NodeJS.ProcessEnv {
  return { ...PRODUCTION_ENV, ...process.env };
}
