/**
 * The testkit: the real parts that tests, the benchmark and scripts share, so there is one of each.
 *   certs.ts            a test CA and a localhost certificate made at run time
 *   upstream.ts         TestUpstream: smtp-server demanding TLS (465-style or STARTTLS) and AUTH, failure triggers;
 *                       `keep: 'count'` counts without buffering (benchmark)
 *   raw-smtp.ts         RawSmtpClient over a LineSocket: every byte under the test's control
 *   smtp-load.ts        sendGenerated: pipelined sender streaming a generated body of any size; runConcurrent
 *   raw-pop3.ts         RawPop3Client over a LineSocket
 *   gateway.ts          startTestGateway: the gateway in-process on 127.0.0.1:0 with a temp dataDir
 *   gateway-process.ts  the gateway as a child process (signals, kill -9); compiled dist/, another node, a wrapper
 *   inbound-scope.ts    one gateway + sessions per describe block, cleaned up after
 *   delivery-scenario.ts gateway + upstream wired for delivery tests
 *   sse.ts              openEventStream: a server-sent events client (GET /api/watch) over real HTTP
 *   session-steps.ts    sessionSteps: session.step events as the login recorder emits them (printer doctor tests)
 *   browser.ts          launchBrowser: Debian's chromium through playwright-core, or why it cannot run
 *   tools.ts            outside tools (podman, promtool, chromium...): skip with the reason, or fail under
 *                       SCANRELAY_REQUIRE_ALL=1 (imports vitest: import it directly, not through this index)
 * Used by test/, bench/ and scripts/; nothing here may be imported by src/.
 */
export * from './certs.js';
export * from './upstream.js';
export * from './line-socket.js';
export * from './raw-smtp.js';
export * from './smtp-load.js';
export * from './raw-pop3.js';
export * from './gateway.js';
export * from './gateway-process.js';
export * from './sse.js';
export * from './session-steps.js';
export * from './browser.js';
