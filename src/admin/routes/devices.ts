/**
 * /api/devices: list and read (with live status), create (login + password generated, shown once with
 * the printer's Email Server values), patch, enable/disable, rotate password, delete. Devices from the
 * config file are listed too and refused with 409 on any change (the registry enforces it).
 */
import { hostname } from 'node:os';
import { parseSize } from '../../config/index.js';
import { type Device, MIN_DEVICE_MESSAGE_SIZE } from '../../devices/index.js';
import type { MessageState } from '../../queue/index.js';
import { ValidationError } from '../../shared/errors.js';
import type { AdminDeps } from '../deps.js';
import type { AdminApp } from '../types.js';
import { BEARER_SECURITY, NoContent, errorResponses } from '../schemas/common.js';
import {
  CreateDeviceBody,
  DeviceCreated,
  DeviceList,
  DeviceParams,
  DeviceView,
  PasswordRotated,
  PatchDeviceBody,
  RotatePasswordBody,
  type DeviceViewT,
} from '../schemas/devices.js';

const OPEN_STATES: MessageState[] = ['queued', 'deferred', 'held', 'delivering'];
const TAGS = ['devices'];

export function registerDeviceRoutes(app: AdminApp, deps: AdminDeps): void {
  const view = (device: Device, queued?: number) => deviceView(deps, device, queued);

  app.get(
    '/api/devices',
    {
      schema: {
        summary: 'List devices with their status',
        tags: TAGS,
        security: BEARER_SECURITY,
        response: { 200: DeviceList, ...errorResponses(401) },
      },
    },
    async () => {
      const queued = queuedByDevice(deps);
      const items = deps.devices.list().map((device) => view(device, queued.get(device.name) ?? 0));
      return { items, total: items.length };
    },
  );

  app.get(
    '/api/devices/:name',
    {
      schema: {
        summary: 'One device with its status',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: DeviceParams,
        response: { 200: DeviceView, ...errorResponses(400, 401, 404) },
      },
    },
    async (request) => view(deps.devices.require(request.params.name)),
  );

  app.post(
    '/api/devices',
    {
      schema: {
        summary: 'Create a device (login and password generated unless given; shown once)',
        tags: TAGS,
        security: BEARER_SECURITY,
        body: CreateDeviceBody,
        response: { 201: DeviceCreated, ...errorResponses(400, 401, 409) },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const { device, password } = await deps.devices.create({
        ...body,
        maxMessageSize: body.maxMessageSize === undefined ? undefined : sizeOf(body.maxMessageSize, 'maxMessageSize'),
      });
      request.log.info({ device: device.name, auth: device.auth }, 'admin.device.created');
      return reply.code(201).send({ device: view(device), password, printerSetup: printerSetup(deps, device, password) });
    },
  );

  app.patch(
    '/api/devices/:name',
    {
      schema: {
        summary: 'Change recipients, senders, source pinning, upstream, size limit or enabled (setting an upstream releases scans held for lack of one)',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: DeviceParams,
        body: PatchDeviceBody,
        response: { 200: DeviceView, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const body = request.body;
      const device = await deps.devices.update(request.params.name, {
        ...body,
        maxMessageSize: body.maxMessageSize === undefined ? undefined : sizeOf(body.maxMessageSize, 'maxMessageSize'),
      });
      // Scans held for lack of an upstream go by themselves (delivery listens to device.updated), and a
      // disabled device's POP3 grants end (app.ts); its enabled metric follows the same event.
      request.log.info({ device: device.name, changed: Object.keys(body) }, 'admin.device.updated');
      return view(device);
    },
  );

  for (const action of ['enable', 'disable'] as const) {
    app.post(
      `/api/devices/:name/${action}`,
      {
        schema: {
          summary: action === 'enable' ? 'Let the device send again' : 'Refuse the device (its printer shows "Stop"); queued mail still goes out',
          tags: TAGS,
          security: BEARER_SECURITY,
          params: DeviceParams,
          response: { 200: DeviceView, ...errorResponses(400, 401, 404, 409) },
        },
      },
      async (request) => {
        const device = await deps.devices.update(request.params.name, { enabled: action === 'enable' });
        request.log.info({ device: device.name }, `admin.device.${action}d`);
        return view(device);
      },
    );
  }

  app.post(
    '/api/devices/:name/rotate-password',
    {
      schema: {
        summary: 'Set a new password (generated unless given; shown once); the old one stops working at once',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: DeviceParams,
        body: RotatePasswordBody,
        response: { 200: PasswordRotated, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request) => {
      const { device, password } = await deps.devices.rotatePassword(request.params.name, request.body?.password);
      request.log.info({ device: device.name }, 'admin.device.password-rotated');
      return { device: view(device), password, printerSetup: printerSetup(deps, device, password) };
    },
  );

  app.delete(
    '/api/devices/:name',
    {
      schema: {
        summary: 'Delete an API-managed device (its queued messages stay in the queue)',
        tags: TAGS,
        security: BEARER_SECURITY,
        params: DeviceParams,
        response: { 204: NoContent, ...errorResponses(400, 401, 404, 409) },
      },
    },
    async (request, reply) => {
      const name = request.params.name;
      // Its status, POP3 grants and metric series go with it: they listen to device.removed.
      await deps.devices.remove(name);
      request.log.info({ device: name }, 'admin.device.deleted');
      return reply.code(204).send(null);
    },
  );
}

export function deviceView(deps: AdminDeps, device: Device, queued?: number): DeviceViewT {
  const status = deps.deviceStatus.get(device.name, device.enabled);
  return {
    name: device.name,
    managedBy: device.managedBy,
    enabled: device.enabled,
    auth: device.auth,
    username: device.username,
    allowFrom: [...device.allowFrom],
    allowRecipients: [...device.allowRecipients],
    allowSenders: device.allowSenders && [...device.allowSenders],
    upstream: device.upstream,
    maxMessageSize: device.maxMessageSize,
    supportsChallengeAuth: device.supportsChallengeAuth,
    createdAt: device.createdAt,
    updatedAt: device.updatedAt,
    status: {
      state: status.state,
      lastSeenAt: status.lastSeenAt,
      lastSeenAddress: status.lastSeenAddress,
      lastMessageAt: status.lastMessageAt,
      lastDeliveredAt: status.lastDeliveredAt,
      lastError: status.lastError,
      recentAuthFailures: status.recentAuthFailures,
      lastAuthFailureAt: status.lastAuthFailureAt,
      lastAuthMethod: status.lastAuthMethod,
      popGrant: popGrantOf(deps, device.name),
      counts: { ...status.counts, queued: queued ?? deps.queue.list({ device: device.name, state: OPEN_STATES, limit: 0 }).total },
    },
  };
}

function popGrantOf(deps: AdminDeps, device: string): { address: string; expiresAt: string } | undefined {
  const grant = deps.popGrants.list().find((g) => g.device === device);
  return grant && { address: grant.address, expiresAt: new Date(grant.expiresAt).toISOString() };
}

/** The values for the printer's Email Server page; the password only when it was just set. */
function printerSetup(deps: AdminDeps, device: Device, password: string | undefined) {
  const endpoint = deps.smtpEndpoint();
  const wildcard = endpoint.host === '0.0.0.0' || endpoint.host === '::' || endpoint.host === '';
  const usesPassword = device.auth === 'password';
  return {
    page: 'CentreWare Internet Services > Properties > Protocols > Email Server',
    // A wildcard listen address is not something a printer can dial: offer this host's name instead.
    smtpServerAddress: wildcard ? hostname() : endpoint.host,
    smtpServerPortNumber: endpoint.port,
    emailSendAuthentication: usesPassword ? 'SMTP AUTH (Auto)' : 'No Authentication',
    loginName: usesPassword ? device.username : undefined,
    password: usesPassword ? password : undefined,
    senderAddresses: device.allowSenders && [...device.allowSenders],
    note: wildcard ? 'the SMTP listener binds every address; set admin.publicSmtpHost to the address printers should use' : undefined,
  };
}

function queuedByDevice(deps: AdminDeps): Map<string, number> {
  const counts = new Map<string, number>();
  for (const message of deps.queue.openMessages()) {
    counts.set(message.device, (counts.get(message.device) ?? 0) + 1);
  }
  return counts;
}

function sizeOf(value: number | string, field: string): number {
  const bytes = typeof value === 'number' ? value : parseSize(value);
  if (bytes === undefined || bytes < MIN_DEVICE_MESSAGE_SIZE) throw new ValidationError(`${field}: must be at least 1KB (got "${value}")`);
  return bytes;
}
