/** Exponential back-off with jitter: base * 2^(attempt-1), capped, +-20% so retries do not align. */
export function nextRetryDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  const jitter = exponential * 0.2 * (random() * 2 - 1);
  return Math.max(1000, Math.round(exponential + jitter));
}
