/** API-created devices, persisted as one JSON file in dataDir (written with tmp + fsync + rename). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurable } from '../shared/durable-fs.js';

export interface StoredDevice {
  name: string;
  auth: 'password' | 'none';
  username?: string;
  /** SecretBox-sealed password. */
  sealedPassword?: string;
  allowFrom: string[];
  allowRecipients: string[];
  /** undefined = any sender. */
  allowSenders?: string[];
  upstream?: string;
  maxMessageSize?: number;
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

export class DeviceStore {
  private readonly path: string;
  constructor(dataDir: string) {
    this.path = join(dataDir, 'devices.json');
  }

  async load(): Promise<StoredDevice[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const parsed = JSON.parse(text) as { devices?: StoredDevice[] };
    return parsed.devices ?? [];
  }

  async save(devices: StoredDevice[]): Promise<void> {
    await writeFileDurable(this.path, JSON.stringify({ version: 1, devices }, null, 2), { mode: 0o600 });
  }
}
