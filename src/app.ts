/**
 * Composition root: builds every part from the config and wires them. The only file that knows all parts.
 *
 * The trip of one scan:
 *   inbound/index.ts onData -> queue.accept (body fsynced, row group-committed, then "250 queued as <id>")
 *   -> event message.queued / message.due -> delivery worker: queue.claimDue hands out a claim
 *   -> upstream send over TLS with the device's account, the body read through the claim
 *   -> classify the answer -> one outcome call on the claim (delivered / deferred / held / failed)
 *   -> events -> devices/status.ts (printer-style state) and observability/metrics.ts (Prometheus).
 *
 * Facts travel once, as events: the parts emit them, and device status, delivery and the metrics
 * (observability/wire-metrics.ts) subscribe; no part calls a metric.
 */
import { mkdir, readFile, access, constants } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { loadConfig, type GatewayConfig } from './config/index.js';
import { DeviceRegistry, DeviceStatusTracker, type DeviceStatus } from './devices/index.js';
import { HOLD_RULES, Queue, startOfDay } from './queue/index.js';
import { JournalImport } from './queue/import.js';
import { isCorruptionError } from './store/database.js';
import { openStore, type StoreCorruptError } from './store/health.js';
import type { IntegrityOutcome } from './store/integrity.js';
import { DeviceStatusTable, SqliteAuthStateStore, UpstreamStateTable } from './store/tables.js';
import { LockoutState, LoginRecorder, createInboundServer, type AuthStateStore, type InboundServer, type ServerTls } from './inbound/index.js';
import { createDeliveryWorker, type DeliveryWorker } from './delivery/index.js';
import { PopGrants, createPop3Server } from './pop3/index.js';
import { deviceTlsWanted, loadServerTls } from './inbound/tls.js';
import { GatewayEventBus } from './shared/events.js';
import { GatewayError } from './shared/errors.js';
import { writeFileDurable } from './shared/durable-fs.js';
import { errorMessage } from './shared/errors.js';
import { GatewayMetrics } from './observability/metrics.js';
import { wireMetrics } from './observability/wire-metrics.js';
import { createLogger, type Logger } from './observability/logger.js';

export interface GatewayOptions {
  logger?: Logger;
  /** Fresh default process metrics are skipped in tests that build many gateways. */
  defaultMetrics?: boolean;
  /** TLS material for device listeners (otherwise loaded/generated from config). */
  serverTls?: ServerTls;
  /** Old file journal import: records per batch and pause between batches (tests slow it down). */
  importBatchSize?: number;
  importPauseMs?: number;
  /** Where lock-outs and seen-authenticating addresses persist; default the message store's database. */
  authState?: AuthStateStore;
  /**
   * The background check after an unclean stop found the store database corrupt; the gateway has
   * stopped itself (main.ts exits). Without it the gateway just stays stopped.
   */
  onStoreCorrupt?: (err: StoreCorruptError) => void;
}

export interface GatewayAddresses {
  smtp: AddressInfo;
  smtps?: AddressInfo;
  pop3?: AddressInfo;
  admin?: AddressInfo;
}

export interface Gateway {
  config(): GatewayConfig;
  readonly logger: Logger;
  readonly events: GatewayEventBus;
  readonly metrics: GatewayMetrics;
  readonly devices: DeviceRegistry;
  readonly deviceStatus: DeviceStatusTracker;
  readonly queue: Queue;
  readonly delivery: DeliveryWorker;
  readonly lockout: LockoutState;
  readonly logins: LoginRecorder;
  readonly popGrants: PopGrants;
  /** Lock-outs and seen addresses of the login guard: the store database unless options.authState is given. */
  readonly authState: AuthStateStore;
  /** The admin API, built by start() once SMTP listens (undefined before, or when disabled). */
  readonly admin?: FastifyInstance;
  start(): Promise<GatewayAddresses>;
  stop(): Promise<void>;
  /**
   * The integrity check start() runs in the background after an unclean stop; undefined when none was
   * needed (a clean stop) or before start().
   */
  storeChecked(): Promise<IntegrityOutcome> | undefined;
  /** Applies a new config (devices, upstreams, limits) without dropping connections. */
  reload(next: GatewayConfig): Promise<void>;
  adminTokens(): readonly string[];
}

export async function createGateway(initial: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  let config = initial;
  const logger = options.logger ?? createLogger(config.log.level, undefined, config.log.format);
  await mkdir(config.dataDir, { recursive: true });
  const secretKey = config.secretKey ?? (await readOrCreateSecret(join(config.dataDir, 'secret.key'), logger, 'device secret key'));
  const generatedToken =
    config.admin.enabled && config.admin.tokens.length === 0
      ? await readOrCreateSecret(join(config.dataDir, 'admin-token'), logger, 'admin API token')
      : undefined;

  const events = new GatewayEventBus();
  // Refuses a database SQLite cannot read; after an unclean stop, health checks it once SMTP listens (health.ts).
  const { database, health } = openStore(config.dataDir, logger, events);
  const metrics = new GatewayMetrics({ defaultMetrics: options.defaultMetrics });
  // Before any part is built: their first events (upstream.added, device.created) are metrics too.
  wireMetrics(events, metrics);
  const popGrants = new PopGrants(config.pop3.authWindowMs);
  // A device that may no longer send keeps no POP-before-SMTP grant (deleted, or disabled by the API or a reload).
  events.on('device.removed', ({ name }) => popGrants.revokeDevice(name));
  events.on('device.updated', ({ name, enabled }) => {
    if (!enabled) popGrants.revokeDevice(name);
  });
  const deviceStatus = new DeviceStatusTracker(events, Date.now, new DeviceStatusTable<DeviceStatus>(database));
  const devices = new DeviceRegistry({
    dataDir: config.dataDir,
    database,
    events,
    secretKey,
    configDevices: config.devices,
    limits: deviceLimits(config),
  });
  await devices.open();
  // Lock-outs and the addresses devices logged in from live in the store database, so a restart neither
  // forgives a password guesser nor forgets where a printer lives (reserved slots depend on it).
  const authState = options.authState ?? new SqliteAuthStateStore(database);
  const lockout = new LockoutState(config.smtp.authLockout, authState, (username) => Boolean(devices.findByUsername(username)));
  const logins = new LoginRecorder({ devices, lockout, events, failureDelayMs: () => config.smtp.authFailureDelayMs });
  const authLogger = logger.child({ part: 'auth' });
  // One fact per login attempt; metrics (wire-metrics.ts), device status and the log subscribe.
  events.on('login.attempted', (attempt) => {
    if (attempt.lockedOut) {
      authLogger.warn(
        { protocol: attempt.protocol, remoteAddress: attempt.remoteAddress, username: attempt.username, reason: attempt.reason },
        'auth.lockout.started',
      );
    }
  });
  const queueLogger = logger.child({ part: 'queue' });
  const queue = await Queue.open({
    dataDir: config.dataDir,
    database,
    // The previous run's open rows are read once SMTP listens (start()): printers are greeted first.
    openRowsLater: true,
    events,
    fsyncDirectory: config.store.fsyncDirectory,
    onQuarantined: (queueId, reason) => {
      queueLogger.error({ queueId, reason }, 'queue.quarantined: kept with its body; see GET /api/messages?state=quarantined');
      events.emit('message.quarantined', { id: queueId, reason });
    },
    onPersistError: (queueId, err) =>
      queueLogger.error(
        { queueId, err: (err as Error).message },
        'queue.record-write-failed: the upstream accepted the message; kept in memory, retrying the write',
      ),
    onPersisted: (queueId) => queueLogger.info({ queueId }, 'queue.record-written after earlier failures'),
  });
  metrics.setQueueStatsSource(() => queue.stats());
  const journalImport = new JournalImport(queue, {
    batchSize: options.importBatchSize,
    pauseMs: options.importPauseMs,
    onProgress: ({ done, total }) => queueLogger.info({ done, total }, `queue.import.progress: imported ${done} of ${total} records of the old file journal`),
    onQuarantined: (queueId, reason) => {
      queueLogger.error({ queueId, reason }, 'queue.quarantined: kept with its body; see GET /api/messages?state=quarantined');
      events.emit('message.quarantined', { id: queueId, reason });
    },
  });
  // Every hold is logged once, with what the admin can do about it.
  events.on('message.held', ({ id, device, code, reason, fix }) =>
    queueLogger.warn(
      { queueId: id, device, reason: code, detail: reason, fix: fix ?? (code ? HOLD_RULES[code as keyof typeof HOLD_RULES]?.fix : undefined) },
      'queue.held',
    ),
  );

  const delivery = createDeliveryWorker({
    queue,
    devices,
    events,
    logger: logger.child({ part: 'delivery' }),
    config: () => config.delivery,
    upstreams: config.upstreams,
    hostname: config.smtp.hostname,
    upstreamState: new UpstreamStateTable(database),
    sentSince: (since) => queue.sentSince(since),
    startOfToday: () => startOfDay(Date.now(), config.timeZone, 0),
  });

  const serverTls =
    options.serverTls ?? (deviceTlsWanted(config.smtp) ? await loadServerTls(config.smtp, config.dataDir, logger.child({ part: 'smtp' })) : undefined);
  const inbound: InboundServer = createInboundServer({
    config: () => config.smtp,
    devices,
    queue,
    events,
    logins,
    logger: logger.child({ part: 'smtp' }),
    popGrant: (address) => (config.pop3.enabled ? popGrants.lookup(address) : undefined),
    expiredPopGrant: (address) => (config.pop3.enabled ? popGrants.expiredFor(address) : undefined),
    fromModeOf: (name) => config.upstreams.find((u) => u.name === name)?.fromMode,
    tls: serverTls,
  });
  const pop3 = config.pop3.enabled
    ? createPop3Server({
        config: () => config.pop3,
        hostname: () => config.smtp.hostname,
        grants: popGrants,
        logins,
        events,
        logger: logger.child({ part: 'pop3' }),
      })
    : undefined;

  let smtpAddress: AddressInfo | undefined;
  let importing: Promise<void> | undefined;
  const tokens = () => (config.admin.tokens.length > 0 ? config.admin.tokens : generatedToken ? [generatedToken] : []);
  // The admin API (fastify, its schemas, the console, the doctor) is loaded and built only after SMTP
  // listens: it is most of the start-up's module loading, and printers must not wait for it.
  let admin: FastifyInstance | undefined;
  const buildAdmin = async (): Promise<FastifyInstance> => {
    const [{ buildAdminApp }, { PrinterDoctor }] = await Promise.all([import('./admin/index.js'), import('./doctor/index.js')]);
    return buildAdminApp({
      config: () => config,
      devices,
      deviceStatus,
      queue,
      delivery,
      metrics,
      lockout,
      popGrants,
      doctor: new PrinterDoctor({
        events,
        device: (name) => devices.get(name),
        lastSeenAddress: (name) => deviceStatus.get(name, true).lastSeenAddress,
      }),
      logger: logger.child({ part: 'admin' }),
      onStoreDamaged: (err) => health.damaged(err),
      tokens,
      reload: async () => {
        await gateway.reload(loadConfig(config.file));
      },
      readiness: async () => ({
        smtp: inbound.isListening(),
        dataDir: await isWritable(config.dataDir),
        store: await queue.isWritable(),
        importing: journalImport.progress.running ? `importing, ${journalImport.progress.done} of ${journalImport.progress.total}` : undefined,
      }),
      smtpEndpoint: () => ({
        host: config.admin.publicSmtpHost ?? config.smtp.host,
        port: config.admin.publicSmtpPort ?? smtpAddress?.port ?? config.smtp.port,
      }),
    });
  };

  // Devices loaded from the store at open raised no device.created: their series start here.
  for (const device of devices.list()) metrics.setDeviceEnabled(device.name, device.enabled);

  let stopping: Promise<void> | undefined;
  const stopGateway = async () => {
    logger.info('gateway.stopping');
    journalImport.stop();
    await importing;
    await pop3?.close();
    await inbound.close();
    await delivery.stop(config.delivery.shutdownTimeoutMs);
    await queue.flush();
    deviceStatus.saveNow();
    // Before the close: the check's read-only connection must not outlive the gateway's.
    await health.cancelCheck();
    database.close();
    if (admin) await admin.close();
    logger.info('gateway.stopped');
  };

  const gateway: Gateway = {
    config: () => config,
    logger,
    events,
    metrics,
    devices,
    deviceStatus,
    queue,
    delivery,
    lockout,
    logins,
    popGrants,
    authState,
    get admin() {
      return admin;
    },
    adminTokens: tokens,
    async start() {
      const addresses: GatewayAddresses = {
        ...(await inbound.listen().catch((err) => {
          const smtps = config.smtp.tlsPort !== undefined && (err as { port?: number }).port === config.smtp.tlsPort;
          throw listenFailure(err, smtps ? 'smtp.tlsPort' : 'smtp.port', config.smtp.host, smtps ? (config.smtp.tlsPort as number) : config.smtp.port);
        })),
      };
      smtpAddress = addresses.smtp;
      if (pop3) {
        addresses.pop3 = await pop3.listen().catch((err) => {
          throw listenFailure(err, 'pop3.port', config.pop3.host, config.pop3.port);
        });
      }
      try {
        await queue.loadOpenRows();
      } catch (err) {
        // A page the open rows live on is damaged: the same answer as a failed check at open.
        if (isCorruptionError(err)) throw await health.unreadableAtStart(err);
        throw err;
      }
      for (const message of queue.openMessages()) if (message.state !== 'held') deviceStatus.restoreInFlight(message.device, message.id);
      delivery.start();
      if (config.admin.enabled) {
        admin = await buildAdmin();
        await admin.listen({ host: config.admin.host, port: config.admin.port }).catch((err) => {
          throw listenFailure(err, 'admin.port', config.admin.host, config.admin.port);
        });
        addresses.admin = admin.server.address() as AddressInfo;
        logger.info({ address: addresses.admin }, 'admin.listening');
      }
      // The old file journal (if any) goes into the database in the background: mail is accepted meanwhile.
      importing = journalImport.run().then(
        (p) => {
          if (p.total > 0) logger.info({ imported: p.total }, 'queue.import.done');
        },
        (err) => logger.error({ err: errorMessage(err) }, 'queue.import.failed: restart to resume it; nothing was removed'),
      );
      logger.info({ devices: devices.list().length, upstreams: config.upstreams.length, queued: queue.stats().counts }, 'gateway.started');
      // After an unclean stop the whole file is checked, off the event loop, while printers are served.
      health.startBackgroundCheck(async (err) => {
        await gateway.stop();
        options.onStoreCorrupt?.(err);
      });
      return addresses;
    },
    storeChecked: () => health.checkOutcome(),
    async stop() {
      if (stopping) return stopping;
      stopping = stopGateway();
      return stopping;
    },
    async reload(next) {
      if (next.dataDir !== config.dataDir) logger.warn('config.reload: dataDir changes need a restart; keeping the old one');
      if (next.smtp.port !== config.smtp.port || next.smtp.host !== config.smtp.host)
        logger.warn('config.reload: SMTP listener address changes need a restart');
      if (next.pop3.enabled !== config.pop3.enabled || next.pop3.port !== config.pop3.port || next.pop3.host !== config.pop3.host)
        logger.warn('config.reload: POP3 listener changes need a restart');
      config = { ...next, dataDir: config.dataDir };
      devices.setConfigDevices(config.devices, deviceLimits(config));
      lockout.setPolicy(config.smtp.authLockout);
      popGrants.setWindow(config.pop3.authWindowMs);
      // Also releases what the new config fixed (holds.ts: config-reloaded).
      delivery.setUpstreams(config.upstreams);
      logger.info({ devices: devices.list().length, upstreams: config.upstreams.length }, 'config.reloaded');
    },
  };
  return gateway;
}

/** A listener that cannot bind says which one, in the config file's words, and what to do. */
function listenFailure(err: unknown, key: string, host: string, port: number): unknown {
  const code = (err as NodeJS.ErrnoException).code;
  const where = `${key}: port ${port} on ${host}`;
  if (code === 'EADDRINUSE') {
    return new GatewayError(
      'SCANRELAY_LISTEN_IN_USE',
      `${where} is already in use (EADDRINUSE): another program listens there (another scanrelay, a mail server?); stop it or set another ${key}`,
      500,
      { cause: err },
    );
  }
  if (code === 'EACCES') {
    return new GatewayError(
      'SCANRELAY_LISTEN_DENIED',
      `${where} needs privileges (EACCES): ports below 1024 need CAP_NET_BIND_SERVICE or a port mapping`,
      500,
      {
        cause: err,
      },
    );
  }
  if (code === 'EADDRNOTAVAIL') {
    return new GatewayError('SCANRELAY_LISTEN_NO_ADDRESS', `${where}: this machine has no address ${host} (EADDRNOTAVAIL); check the host key`, 500, {
      cause: err,
    });
  }
  return err;
}

export { StoreCorruptError } from './store/health.js';

function deviceLimits(config: GatewayConfig) {
  return { smtpMaxMessageSize: config.smtp.maxMessageSize, upstreams: new Map(config.upstreams.map((u) => [u.name, u.maxMessageSize])) };
}

/** Reads a generated secret, creating it (mode 0600) on first start. The value is never logged. */
async function readOrCreateSecret(path: string, logger: Logger, what: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const value = randomBytes(32).toString('base64url');
  await writeFileDurable(path, `${value}\n`, { mode: 0o600 });
  logger.info({ path }, `generated ${what}`);
  return value;
}

async function isWritable(dir: string): Promise<boolean> {
  try {
    await access(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
