// Starts the SMTP client thread from the TypeScript sources (npm start, the tests): tsx is registered in
// this thread first, because on Node 20 a loader given to the main thread does not reach worker threads.
// The compiled gateway (dist/) starts smtp-thread-entry.js directly and never loads this file.
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
