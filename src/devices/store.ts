/**
 * API-created devices. With the store database they are rows of its `devices` table (a devices.json
 * left by an older version is imported once, then renamed devices.json.imported); without one (tools,
 * tests) they are one JSON file in dataDir written with tmp + fsync + rename.
 */
import { readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurable } from '../shared/durable-fs.js';
import type { StoreDatabase } from '../store/database.js';

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
  constructor(
    dataDir: string,
    private readonly database?: StoreDatabase,
  ) {
    this.path = join(dataDir, 'devices.json');
  }

  async load(): Promise<StoredDevice[]> {
    const fromFile = await this.loadFile();
    if (!this.database) return fromFile ?? [];
    if (fromFile) {
      await this.save(fromFile);
      await rename(this.path, `${this.path}.imported`);
    }
    return this.database.all<{ doc: string }>('SELECT doc FROM devices ORDER BY name').map((r) => JSON.parse(r.doc) as StoredDevice);
  }

  async save(devices: StoredDevice[]): Promise<void> {
    const db = this.database;
    if (!db) {
      await writeFileDurable(this.path, JSON.stringify({ version: 1, devices }, null, 2), { mode: 0o600 });
      return;
    }
    await db.commit(
      () => {
        db.prepare('DELETE FROM devices').run();
        const insert = db.prepare('INSERT INTO devices (name, doc) VALUES (?, ?)');
        for (const device of devices) insert.run(device.name, JSON.stringify(device));
      },
      { durable: true },
    );
  }

  private async loadFile(): Promise<StoredDevice[] | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed = JSON.parse(text) as { devices?: StoredDevice[] };
    return parsed.devices ?? [];
  }
}
