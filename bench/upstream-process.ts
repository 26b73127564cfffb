/**
 * The bench's upstream in its own process (so its TLS and parsing do not share a thread with the load
 * generator): the testkit's TLS+AUTH upstream in counting mode, reporting each message's X-Bench-Tag to
 * the parent over IPC. Argument: a directory for the CA file.
 */
import { join } from 'node:path';
import { writeCaFile } from '../test/kit/certs.js';
import { TestUpstream } from '../test/kit/upstream.js';

export type UpstreamReport = { type: 'ready'; port: number; caFile: string; user: string; password: string } | { type: 'message'; tag?: string; size: number };

const dir = process.argv[2];
if (!dir || !process.send) throw new Error('run through fork() with a directory argument');
const send = (report: UpstreamReport) => process.send?.(report);
const caFile = await writeCaFile(dir);
const upstream = await TestUpstream.start({
  mode: 'tls',
  keep: 'count',
  size: 40_000_000,
  onMessage: ({ head, size }) => send({ type: 'message', tag: /^X-Bench-Tag: (\S+)/im.exec(head)?.[1], size }),
});
send({ type: 'ready', port: upstream.port, caFile: join(caFile), user: upstream.user, password: upstream.password });
process.on('disconnect', () => void upstream.close().then(() => process.exit(0)));
