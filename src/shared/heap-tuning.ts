/**
 * V8 settings that NODE_OPTIONS refuses and that depend on the running V8's version, so they are set here,
 * at start, where that version is known: one that Node 20's V8 does not have (on the command line Node 20
 * would refuse to start), Node 20's own remedies for the same cause, and Maglev off where it is on. The
 * flags NODE_OPTIONS takes (--max-semi-space-size, --max-old-space-size) are in the image, the systemd unit
 * and npm start instead.
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

/** The major version of a V8 version string (13 for "13.6.233.17-node.37"). */
export const v8Major = (v8Version: string) => Number(v8Version.split('.')[0]);
const hasScavengerFlag = (v8Version: string) => v8Major(v8Version) >= FIRST_V8_MAJOR;
const onCommandLine = (flag: string, execArgv: readonly string[]) => execArgv.some((arg) => arg.startsWith(flag));

/** Applies the setting unless this V8 lacks it or the command line chose a value; says what it did. */
export function tuneYoungGeneration(v8Version = process.versions.v8, execArgv = process.execArgv): string {
  if (onCommandLine(SCAVENGER_FLAG, execArgv)) return 'set on the command line';
  if (!hasScavengerFlag(v8Version)) return `not available in V8 ${v8Version}`;
  v8.setFlagsFromString(`${SCAVENGER_FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`);
  return `${SCAVENGER_FLAG}=${SCAVENGE_BUFFERS_NEW_SPACE_MB}`;
}

/**
 * Node 20's remedy, for the SMTP client thread: the old-generation size below which its heap is never
 * collected in full.
 *
 * V8 11.3 (Node 20) lacks the flag above and frees dead ArrayBuffers only once 32 MiB of them wait, and it
 * counts them against the old generation's limit, which it sets at about 9 MB above a heap's live size.
 * The SMTP thread's live heap is 8 MB while up to 10 sends read bodies 64 KiB at a time, so the dead reads
 * alone reached the limit and V8 ran a full collection after nearly every scavenge: 105 full collections
 * of a heap that stayed at 8.1 MB in a 50 x 5 MB run, gateway alone. With 24 MB: 10-14, and 37.3-38.0
 * instead of 40.5-41.9 ms of CPU per 5 MB scan in interleaved runs, at the same peak USS (README,
 * Performance). It is set for the isolates created after it, which is the thread (the main thread's heap
 * was sized at its start; its remedy is tuneHeapGrowth below). V8 12+ frees the reads early instead
 * (tuneYoungGeneration) and does not need it.
 */
export const THREAD_INITIAL_OLD_SPACE_MB = 24;
export const INITIAL_OLD_SPACE_FLAG = '--initial-old-space-size';

/** Applies Node 20's remedy for the thread unless this V8 frees the reads early or the command line chose a size; says what it did. */
export function tuneThreadHeap(v8Version = process.versions.v8, execArgv = process.execArgv): string {
  return applyOnV8Eleven(INITIAL_OLD_SPACE_FLAG, THREAD_INITIAL_OLD_SPACE_MB, v8Version, execArgv, ' for the SMTP thread');
}

/**
 * Node 20's remedy for the main thread: how far above its live size a heap may grow before V8 collects it
 * in full, as a fixed factor of 1.75.
 *
 * The main thread receives every scan, 64 KiB per socket read, and V8 11.3 counts the reads it has not
 * yet freed against the old generation's limit just as on the SMTP thread (above). With a 512 MB maximum
 * V8 sets that limit at live + 8 MB (1.4x of 15 MB is less), so the main thread ran 29-37 full collections
 * of a heap that stayed at 15 MB in a 50 x 5 MB run, gateway alone. With 1.75 (a limit of about 26 MB):
 * 12, and 24.0-24.8 instead of 25.8-29.0 ms of CPU per 5 MB scan in interleaved runs; the peak USS at
 * 300 x 100 KB went from 78 to 80-83 MiB (README, Performance). 2.0 saved no more and cost 87 MiB; a
 * floor (--initial-old-space-size) cannot be set here, the main heap is sized before this code runs, and
 * 32 MB on the command line cost 95 MiB. Unlike the floor, the factor is read at every full collection,
 * so setting it at start reaches the running main thread (and the SMTP thread, whose floor is higher).
 */
export const MAIN_HEAP_GROWING_PERCENT = 75;
export const HEAP_GROWING_FLAG = '--heap-growing-percent';

/** Applies Node 20's main-thread remedy unless this V8 frees the reads early or the command line chose a factor; says what it did. */
export function tuneHeapGrowth(v8Version = process.versions.v8, execArgv = process.execArgv): string {
  return applyOnV8Eleven(HEAP_GROWING_FLAG, MAIN_HEAP_GROWING_PERCENT, v8Version, execArgv);
}

/**
 * Maglev, V8's middle optimizing compiler, off: memory that a small resident gateway does not get back.
 *
 * Maglev compiles on V8's worker threads into zones it frees when a job ends, but the freed malloc memory
 * mostly stays with the process. How much depends on how many jobs ran at once, so the same restart (100,000
 * log rows, 10,000 queued, Node 24) settled at 117-129 MiB: 10 of 55 `bench:restart` runs over the 130 MB
 * target, all by the private part. With Maglev off, 14 runs interleaved with 14 stock ones and 8 before them:
 * 115.6-119.8 MiB, none over (the interleaved stock ones: mean 120.2, up to 127.3; as set here, 17 of 18 runs
 * met, the one over right after a full bench); the peak USS of a warmed gateway at 300 x 100 KB
 * went from 92 / 92 to 88 / 88 MiB. The price is CPU: 3.88 / 4.09 against 3.61 / 3.66 ms per 100 KB message
 * after 3,000 of warm-up (gateway alone), the same at 5 MB; TurboFan still optimizes what is hot, and the
 * gateway's share of CPU stays under Postfix's (README, Performance). Set before the gateway's modules load (main.ts);
 * the command line can turn it back on (--maglev). V8 11 (Node 20) ships with Maglev off.
 */
export const MAGLEV_OFF_FLAG = '--no-maglev';
/** V8 12 (Node 22) is the first line of a Node release with Maglev on. */
const FIRST_MAGLEV_V8_MAJOR = 12;

/** Turns Maglev off where it is on, unless the command line says otherwise; says what it did. */
export function tuneCompilers(v8Version = process.versions.v8, execArgv = process.execArgv): string {
  if (execArgv.some((arg) => arg === '--maglev' || arg === MAGLEV_OFF_FLAG)) return 'set on the command line';
  if (v8Major(v8Version) < FIRST_MAGLEV_V8_MAJOR) return `Maglev is off in V8 ${v8Version}`;
  v8.setFlagsFromString(MAGLEV_OFF_FLAG);
  return MAGLEV_OFF_FLAG;
}

/** Node 20's remedies: needed exactly where the scavenger flag is missing, and never over the command line's choice. */
function applyOnV8Eleven(flag: string, value: number, v8Version: string, execArgv: readonly string[], scope = ''): string {
  if (onCommandLine(flag, execArgv)) return 'set on the command line';
  if (hasScavengerFlag(v8Version)) return `not needed on V8 ${v8Version}`;
  v8.setFlagsFromString(`${flag}=${value}`);
  return `${flag}=${value}${scope}`;
}

/**
 * Every setting above, in the order they must come: before the gateway's modules load (main.ts imports them
 * afterwards) and before the SMTP thread starts. Returns what each did, for the ready line.
 */
export function tuneV8AtStart(): Record<'heapTuning' | 'threadHeapTuning' | 'heapGrowthTuning' | 'compilerTuning', string> {
  return {
    heapTuning: tuneYoungGeneration(),
    threadHeapTuning: tuneThreadHeap(),
    heapGrowthTuning: tuneHeapGrowth(),
    compilerTuning: tuneCompilers(),
  };
}
