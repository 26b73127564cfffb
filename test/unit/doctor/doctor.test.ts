import { describe, expect, it } from 'vitest';
import { GatewayEventBus, type SessionStep } from '../../../src/shared/events.js';
import { MAX_PENDING_STEPS, MAX_TRACKED_SESSIONS, PrinterDoctor, type DeviceFacts, type DoctorEvent } from '../../../src/doctor/index.js';

const DEVICES: Record<string, DeviceFacts> = {
  'warren-2f': {
    name: 'warren-2f',
    username: 'warren-2f',
    auth: 'password',
    allowFrom: ['10.0.0.0/24'],
    allowRecipients: ['*@example.org'],
    maxMessageSize: 25 << 20,
    enabled: true,
  },
  'lobby-copier': {
    name: 'lobby-copier',
    username: 'lobby',
    auth: 'password',
    allowFrom: [],
    allowRecipients: ['*@example.org'],
    maxMessageSize: 10 << 20,
    enabled: true,
  },
};

function setup(lastSeen: Record<string, string> = {}) {
  const events = new GatewayEventBus();
  const doctor = new PrinterDoctor({ events, device: (name) => DEVICES[name], lastSeenAddress: (name) => lastSeen[name] });
  return { events, doctor };
}

let at = Date.parse('2026-12-01T10:00:00Z');
function step(sessionId: string, name: SessionStep['step'], extra: Partial<SessionStep> = {}): SessionStep {
  return { sessionId, protocol: 'smtp', remoteAddress: '10.0.0.7', step: name, ok: true, detail: name, at: at++, ...extra };
}

function collect(doctor: PrinterDoctor, device: string) {
  const seen: DoctorEvent[] = [];
  const stop = doctor.watch(device, (event) => seen.push(event));
  return { seen, stop, steps: () => seen.filter((e) => e.type === 'step').map((e) => (e.data as { step: string }).step) };
}

describe('printer doctor', () => {
  it('listens to the bus only while someone watches', () => {
    const { events, doctor } = setup();
    expect(events.listenerCount('session.step')).toBe(0);
    const a = collect(doctor, 'warren-2f');
    const b = collect(doctor, 'lobby-copier');
    expect(events.listenerCount('session.step')).toBe(1);
    expect(events.listenerCount('message.delivered')).toBe(1);
    a.stop();
    expect(events.listenerCount('session.step')).toBe(1);
    b.stop();
    b.stop();
    expect(events.listenerCount('session.step')).toBe(0);
    expect(events.listenerCount('message.queued')).toBe(0);
    expect(doctor.trackedSessions).toBe(0);
  });

  it('attributes a session by its allowFrom range before AUTH and sends every step in order', () => {
    const { events, doctor } = setup();
    const w = collect(doctor, 'warren-2f');
    const other = collect(doctor, 'lobby-copier');
    for (const name of ['connect', 'helo', 'auth', 'mail', 'rcpt', 'data', 'queued', 'quit', 'closed'] as const) {
      events.emit('session.step', step('s1', name, name === 'auth' ? { device: 'warren-2f', detail: 'AUTH PLAIN as warren-2f' } : {}));
    }
    expect(w.steps()).toEqual(['connect', 'helo', 'auth', 'mail', 'rcpt', 'data', 'queued', 'quit', 'closed']);
    expect(other.seen).toEqual([]);
    expect(doctor.trackedSessions).toBe(0);
  });

  it('buffers the start of an unattributed session and hands it over when the login names the device', () => {
    const { events, doctor } = setup();
    const lobby = collect(doctor, 'lobby-copier');
    events.emit('session.step', step('s2', 'connect', { remoteAddress: '192.0.2.9' }));
    events.emit('session.step', step('s2', 'helo', { remoteAddress: '192.0.2.9', detail: 'EHLO copier' }));
    expect(lobby.seen).toEqual([]);
    events.emit('session.step', step('s2', 'auth', { remoteAddress: '192.0.2.9', device: 'lobby-copier' }));
    expect(lobby.steps()).toEqual(['connect', 'helo', 'auth']);
    expect(lobby.seen.every((e) => e.type === 'step' && e.data.device === 'lobby-copier')).toBe(true);
  });

  it('guesses by the last-seen address and explains a failed login with the login name it must be', () => {
    const { events, doctor } = setup({ 'lobby-copier': '192.0.2.50' });
    const lobby = collect(doctor, 'lobby-copier');
    events.emit('session.step', step('s3', 'connect', { remoteAddress: '192.0.2.50' }));
    events.emit('session.step', step('s3', 'auth', { remoteAddress: '192.0.2.50', ok: false, reason: 'unknown-user', detail: 'AUTH LOGIN as lobbi' }));
    const auth = lobby.seen.find((e) => e.type === 'step' && e.data.step === 'auth');
    expect(auth?.type === 'step' && auth.data.explanation).toEqual({
      problem: 'the login name is unknown',
      fix: expect.stringContaining('exactly "lobby"'),
    });
    expect(auth?.type === 'step' && auth.data.at).toBe(new Date(at - 1).toISOString());
  });

  it('masks secrets in step details', () => {
    const { events, doctor } = setup();
    const w = collect(doctor, 'warren-2f');
    events.emit('session.step', step('s4', 'auth', { device: 'warren-2f', detail: 'AUTH PLAIN AHdhcnJlbi0yZgBzZWNyZXQ=' }));
    const data = w.seen[0]?.data as { detail: string };
    expect(data.detail).toBe('AUTH PLAIN ••••');
  });

  it('forwards delivery events of the watched device with the session that brought the message', () => {
    const { events, doctor } = setup();
    const w = collect(doctor, 'warren-2f');
    events.emit('message.queued', { id: 'm1', device: 'warren-2f', size: 10, sessionId: 's5' } as never);
    events.emit('message.deferred', { id: 'm1', device: 'warren-2f', upstream: 'gmail', reason: '421 4.7.0 try later', nextAttemptAt: 0 });
    events.emit('message.delivered', { id: 'm1', device: 'warren-2f', upstream: 'gmail', latencyMs: 5, size: 10, reply: '250 2.0.0 OK' } as never);
    events.emit('message.delivered', { id: 'm2', device: 'lobby-copier', upstream: 'gmail', latencyMs: 5, size: 10 });
    expect(w.seen.map((e) => e.type === 'delivery' && [e.data.outcome, e.data.sessionId, e.data.reply])).toEqual([
      ['queued', 's5', undefined],
      ['deferred', 's5', '421 4.7.0 try later'],
      ['delivered', 's5', '250 2.0.0 OK'],
    ]);
  });

  it('keeps its memory bounded however many sessions nobody can attribute', () => {
    const { events, doctor } = setup();
    collect(doctor, 'lobby-copier');
    for (let i = 0; i < MAX_TRACKED_SESSIONS * 3; i++) {
      for (let j = 0; j < MAX_PENDING_STEPS + 5; j++) events.emit('session.step', step(`x${i}`, 'rcpt', { remoteAddress: '198.51.100.1' }));
    }
    expect(doctor.trackedSessions).toBe(MAX_TRACKED_SESSIONS);
  });
});
