// The Publish panel's request log: one row per request the published app
// served. The engine records each request as a row of its live table
// (`StreamInfo` with protocol "inbound_http"): the target is "METHOD /path",
// the client the public client's address, the stream id the band it came
// over, bytes down the request body, bytes up the response body, and the
// close reason "STATUS in N ms" once answered. Rows are updated in place,
// as in the Connect panel's stream table (see LiveRows).
import type { StreamInfo } from "../bindings";
import { setData } from "../dom";
import { bytes, clock } from "../format";
import { LiveRows } from "../live-rows";

/** The protocol of request rows (`engine::publish::REQUEST_PROTOCOL`). */
export const REQUEST_PROTOCOL = "inbound_http";

/** How many answered requests stay in the log. */
export const REQUESTS_SHOWN = 200;

/** Whether a live-table row is a request served by a publication. */
export function isRequest(s: StreamInfo): boolean {
  return s.protocol === REQUEST_PROTOCOL;
}

/** A request's outcome, from its close reason "STATUS in N ms". */
export interface Outcome {
  status: number;
  ms: number;
}

/** Parses "200 in 12 ms"; null for anything else (still open, "aborted",
 * a band that broke mid-response). */
export function parseOutcome(reason: string | null): Outcome | null {
  const m = /^(\d{3}) in (\d+) ms$/.exec(reason?.trim() ?? "");
  return m ? { status: Number(m[1]), ms: Number(m[2]) } : null;
}

/** "GET /app/x?y" → method and path (a target without a space is all path). */
export function splitTarget(target: string): { method: string; path: string } {
  const i = target.indexOf(" ");
  return i > 0 ? { method: target.slice(0, i), path: target.slice(i + 1) } : { method: "", path: target };
}

/** "2xx" … "5xx", for the status cell's colour; "" when unknown. */
export function statusClass(status: number | null): string {
  return status && status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : "";
}

/** A duration in milliseconds as people read it: `850 ms`, `1.3 s`. */
export function millis(ms: number): string {
  return ms < 1000 ? `${Math.max(0, Math.round(ms))} ms` : `${(ms / 1000).toFixed(1)} s`;
}

const COLUMNS = ["time", "method", "path", "status", "received", "sent", "duration", "band", "client"] as const;
type Column = (typeof COLUMNS)[number];

/** The header of each column, in order (with a tooltip where the name is short). */
export const HEADERS: Record<Column, [string, string]> = {
  time: ["Time", "When the request arrived"],
  method: ["Method", ""],
  path: ["Path", "The path as the local app sees it"],
  status: ["Status", "The local app's answer; 502 when it could not be reached"],
  received: ["Received", "Request body, from the public client"],
  sent: ["Sent", "Response body, to the public client"],
  duration: ["Duration", "From the request's arrival to the end of the response"],
  band: ["Band", "The connection to the queen the request came over"],
  client: ["Client", "The public client's address, as the queen saw it"],
};

/** A row's cells; `nowMs` times the requests still being answered. */
export function requestCells(s: StreamInfo, nowMs: number): Record<Column, string> {
  const { method, path } = splitTarget(s.target);
  const outcome = parseOutcome(s.close_reason);
  const open = s.state !== "closed";
  const startedMs = s.started_unix * 1000;
  return {
    time: clock(startedMs),
    method,
    path,
    status: outcome ? String(outcome.status) : open ? "…" : (s.close_reason ?? "closed"),
    received: bytes(s.bytes_down),
    sent: bytes(s.bytes_up),
    // Open: at least this long so far (the start is known to the second).
    duration: outcome ? millis(outcome.ms) : open ? `${millis(Math.max(0, nowMs - startedMs))} …` : "—",
    band: s.stream_id ?? "—",
    client: s.client,
  };
}

/** Totals the Requests card shows. */
export interface RequestTotals {
  open: number;
  answered: number;
  failed: number;
  received: number;
  sent: number;
}

export class RequestLog extends LiveRows<Column> {
  constructor(body: HTMLTableSectionElement, empty: HTMLElement) {
    super(body, empty, COLUMNS, isRequest, REQUESTS_SHOWN, (s, row, nowMs) => {
      setData(row, "status", statusClass(parseOutcome(s.close_reason)?.status ?? null));
      return requestCells(s, nowMs);
    });
  }

  /** Counts over what the log holds. */
  totals(): RequestTotals {
    const all = [...this.open.values(), ...this.closed];
    return {
      open: this.open.size,
      answered: this.closed.filter((s) => parseOutcome(s.close_reason)).length,
      failed: this.closed.filter((s) => !parseOutcome(s.close_reason)).length,
      received: all.reduce((n, s) => n + s.bytes_down, 0),
      sent: all.reduce((n, s) => n + s.bytes_up, 0),
    };
  }
}

/** The table's header cells, built from HEADERS. */
export function headerRow(): string {
  return COLUMNS.map((c) => {
    const [label, title] = HEADERS[c];
    return `<th scope="col"${title ? ` title="${title}"` : ""}>${label}</th>`;
  }).join("");
}
