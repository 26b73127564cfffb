/**
 * Entry point: scanrelay [--config FILE]. Loads and validates the config (exit 78 on a bad file, with the
 * file, key and problem), starts the gateway, reloads on SIGHUP, drains on SIGTERM/SIGINT and exits 0. Exits 1
 * when the start fails, or when the store check after an unclean stop finds the database damaged.
 *
 * The V8 settings come first and the gateway's modules load only after them (dynamic imports below):
 * loading the modules is the start's first burst of work (Node's loader ran 188 Maglev compilations before
 * main() with them imported statically), and what the settings are for must already hold there.
 */
import { parseArgs } from 'node:util';
import { ConfigError, errorMessage } from './shared/errors.js';
import { tuneV8AtStart } from './shared/heap-tuning.js';
import { importHttpWithoutUndici } from './shared/lazy-undici.js';

const EXIT_CONFIG = 78; // EX_CONFIG (sysexits.h)

async function main(): Promise<void> {
  // First of all (see heap-tuning.ts): how soon dead reads are freed, Node 20's heap remedies, which compilers run.
  const tuning = tuneV8AtStart();
  // Before any module imports node:http as ESM (smtp-server, nodemailer): keeps undici unloaded (lazy-undici.ts).
  const httpImport = await importHttpWithoutUndici();
  const [{ defaultConfigPath, loadConfig }, { createGateway }, { createLogger }, { SCANRELAY_VERSION }] = await Promise.all([
    import('./config/index.js'),
    import('./app.js'),
    import('./observability/logger.js'),
    import('./shared/version.js'),
  ]);
  const { values } = parseArgs({ options: { config: { type: 'string', short: 'c' } }, strict: true });
  const file = values.config ?? defaultConfigPath();
  const config = loadConfig(file);
  const logger = createLogger(config.log.level, undefined, config.log.format);
  // Tuning of the one-time import of an old file journal (records per batch, pause between batches in ms).
  const gateway = await createGateway(config, {
    logger,
    importBatchSize: positive(process.env.SCANRELAY_IMPORT_BATCH),
    importPauseMs: positive(process.env.SCANRELAY_IMPORT_PAUSE_MS),
    // The background check after an unclean stop found the store damaged; the gateway has stopped itself.
    onStoreCorrupt: (err) => {
      process.stderr.write(`scanrelay: stopped: ${err.message}\n`);
      process.exit(1);
    },
  });
  const addresses = await gateway.start();
  logger.info(
    {
      version: SCANRELAY_VERSION,
      node: process.version,
      ...tuning,
      httpImport,
      smtp: addresses.smtp.port,
      admin: addresses.admin?.port,
      pop3: addresses.pop3?.port,
      smtps: addresses.smtps?.port,
      config: config.file,
    },
    'scanrelay.ready',
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      logger.warn({ signal }, 'scanrelay.forced-exit');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'scanrelay.shutdown');
    const guard = setTimeout(
      () => {
        logger.error('scanrelay.shutdown timed out');
        process.exit(1);
      },
      config.delivery.shutdownTimeoutMs + config.smtp.closeTimeoutMs + 5000,
    );
    guard.unref();
    await gateway.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => {
    try {
      void gateway.reload(loadConfig(file)).catch((err) => logger.error({ err: errorMessage(err) }, 'config.reload.failed'));
    } catch (err) {
      // A bad file on reload keeps the running config: say what is wrong and carry on.
      logger.error({ err: errorMessage(err) }, 'config.reload.rejected');
    }
  });
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`scanrelay: invalid configuration: ${err.message}\n`);
    process.exit(EXIT_CONFIG);
  }
  process.stderr.write(`scanrelay: failed to start: ${errorMessage(err)}\n`);
  process.exit(1);
});

function positive(value: string | undefined): number | undefined {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}
