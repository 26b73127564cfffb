/**
 * A V8 setting that NODE_OPTIONS refuses and that Node 20's V8 does not have (on the command line Node 20
 * would refuse to start), so it is set here, at start, where the running V8's version is known. The flags
 * NODE_OPTIONS takes (--max-semi-space-size, --max-old-space-size) are in the image, the systemd unit and
 * npm start instead.
 */
import v8 from 'node:v8';

/**
 * The young generation's size that V8 uses to decide when dead ArrayBuffers are worth a scavenge.
 *
 * V8 runs a scavenge to free young ArrayBuffers once they add up to twice its *default* semi-space,
 * whatever --max-semi-space-size says. V8 13 (Node 24) derives that default from this flag (32, doubled
 * again without pointer compression), so up to 128 MiB of socket and file reads, 64 KiB each and dead
 * as soon as they were written on, waited for a collection; V8 11 (Node 20, no flag) and V8 12 (Node 22,
 * 8) allow 32 MiB. With 1 it is 4 MiB. Together with the spool's reused batch buffers, the peak USS of
 * a warmed gateway receiving 20 x 25 MB at once on Node 24 fell from 207 to 130-134 MiB in the
 * side-by-side bench (README, Performance).
 *
 * Lower is also cheaper, not only smaller: the reads are freed while their memory is still in the CPU's
 * caches and malloc's free lists (50 x 5 MB on Node 24: 34.8 ms of CPU per message at 1, 41.6 at 2, about
 * 52 at 4 or the default; README, Performance). 1 is the flag's smallest useful value: it is in MB.
 */
export const SCAVENGE_BUFFERS_NEW_SPACE_MB = 1;
export const SCAVENGER_FLAG = '--scavenger-max-new-space-capacity-mb';
/** V8 12 is the first line with the flag: Node 22 (V8 12.4, default 8) and Node 24 (V8 13.6, default 32). */
const FIRST_V8_MAJOR = 12;

/** Applies the setting unless this V8 lacks it or the command line chose a value; says what it did. */
export function tuneYoungGeneration(v8Version = process.versions.v8, execArgv = process.execArgv): string {
  if (execArgv.some((arg) => arg.startsWith(SCAVENGER_FLAG))) return 'set on the command line';
  if (Number(v8Version.split('.')[0]) < FIRST_V8_MAJOR) return `not available in V8 ${v8Version}`;
  v8.setFlagsFromString(`${SCAVENGER_FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`);
  return `${SCAVENGER_FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`;
}
