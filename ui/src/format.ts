// How numbers read in the UI: decimal units, like browsers and curl.

export function bytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function rate(bytesPerSec: number): string {
  return `${bytes(Math.max(0, Math.round(bytesPerSec)))}/s`;
}

/** A duration in seconds as `5 s`, `3 min`, `2 h 05 min`. Seconds only
 * in the first minute: an age then changes once a minute, so an idle
 * window redraws nothing the rest of the time (see `dom.ts`). */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** How long something has been so, for what stays on screen while nothing
 * happens (a session's uptime, the last handshake): `less than a minute`,
 * then as `duration`, so an idle window changes once a minute at most. */
export function upFor(seconds: number): string {
  return seconds < 60 ? "less than a minute" : duration(seconds);
}

/** Milliseconds until `upFor` of the time since `sinceUnix` next changes:
 * it counts whole minutes, so at the next whole minute of that time. */
export function untilNextMinute(nowMs: number, sinceUnix: number): number {
  const elapsed = Math.max(0, nowMs - sinceUnix * 1000);
  return 60000 - (elapsed % 60000);
}

export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString(undefined, { hour12: false });
}
