import { describe, expect, it } from 'vitest';
import { DeviceStatusTracker } from '../../../src/devices/index.js';
import { GatewayEventBus } from '../../../src/shared/events.js';

describe('DeviceStatusTracker', () => {
  it('shows a refused recipient as "Unable to connect" and does not stay "in progress" after the session ends', () => {
    const events = new GatewayEventBus();
    const tracker = new DeviceStatusTracker(events);
    events.emit('message.receiving', { device: 'copier', sessionId: 's1' });
    expect(tracker.get('copier').state).toBe('Connection in progress');
    events.emit('message.rejected', {
      device: 'copier',
      sessionId: 's1',
      code: 550,
      reason: '5.7.1 Relaying to <x@gmail.com> is not allowed for device copier',
    });
    events.emit('session.closed', { sessionId: 's1', remoteAddress: '10.0.0.5', device: 'copier' });
    const status = tracker.get('copier');
    expect(status.state).toBe('Unable to connect');
    expect(status.lastError?.message).toMatch(/Relaying to/);

    // A session that gives up after MAIL FROM (QUIT) leaves no "in progress" behind either.
    events.emit('message.receiving', { device: 'copier', sessionId: 's2' });
    events.emit('session.closed', { sessionId: 's2', remoteAddress: '10.0.0.5', device: 'copier' });
    expect(tracker.get('copier').state).toBe('Unable to connect');
  });
});
