/**
 * How production starts the gateway (the Dockerfile, deploy/systemd/scanrelay.service and npm start set
 * the same; test/deploy/container.test.ts keeps them equal): the benches run it the same way.
 */
export const PRODUCTION_NODE_ARGS = ['--max-semi-space-size=2'];
/** An outer value of the same variable wins, to compare. */
export const PRODUCTION_ENV: Record<string, string> = { MALLOC_ARENA_MAX: '2' };
