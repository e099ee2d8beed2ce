// V8 heap tuning the registry applies to itself at start (docs/performance.md,
// "What makes it fast"). Every socket read of an upload is a fresh 64 KiB
// ArrayBuffer outside the JS heap. From V8 13 (Node 24) on, that external
// memory, dying young but counted apart from the heap, starts a full
// mark-compact every few MiB of upload: about 20 per 512 MiB push, and a
// chunked push at half the speed Node 22 gives. Counting external memory
// inside the global heap limit (V8's own option, off by default) ends them:
// one mark-compact per push again, as on Node 22. V8 12 (Node 22) has
// neither the problem nor the option; an unknown option would print an error,
// so it is only set where V8 has it. It can be set at run time: V8 reads it
// each time it computes the limits.
import { setFlagsFromString } from 'node:v8';

const V8_MAJOR = Number(process.versions.v8.split('.')[0]);

/** The V8 options set (for the start log), or none. */
export function tuneHeap(): string[] {
  if (V8_MAJOR < 13) return [];
  if (process.execArgv.some((a) => a.includes('external-memory-accounted-in-global-limit'))) return [];
  setFlagsFromString('--external-memory-accounted-in-global-limit');
  return ['--external-memory-accounted-in-global-limit'];
}

/**
 * For the maintenance commands (garbage-collect): a batch job, where memory
 * matters more than a few per cent of time. V8 lets the heap grow to several
 * times what is live before its next full collection; a dry run on a store
 * of 315,000 files had 42 MB live at most but 135 MB of heap (235 MiB peak
 * RSS). Growing by 30% at a time keeps the heap nearer the live size: 170 MiB
 * peak RSS in the same time, within the spread (docs/performance.md). It is
 * no limit: a larger registry still gets the heap it needs. Left alone when
 * given on the command line.
 */
export function tuneHeapForBatch(): string[] {
  if (process.execArgv.some((a) => a.includes('heap-growing-percent'))) return [];
  setFlagsFromString('--heap-growing-percent=30');
  return ['--heap-growing-percent=30'];
}
