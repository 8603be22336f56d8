// The live stream table: the outbound rows of the engine's live table,
// updated in place (see LiveRows).
import type { StreamInfo } from "../bindings";
import { bytes, duration, rate } from "../format";
import { LiveRows } from "../live-rows";

const COLUMNS = ["protocol", "target", "id", "up", "down", "rate_up", "rate_down", "age", "state", "reason"] as const;
type Column = (typeof COLUMNS)[number];

/** How many closed streams stay in the table. */
export const CLOSED_SHOWN = 50;

/** How a row arrived at the local proxy (`StreamInfo.protocol`), for the
 * protocol column: UDP flows and DNS queries show as such. */
const PROTOCOL_LABELS: Record<string, string> = {
  socks5: "SOCKS5",
  "socks5-udp": "UDP",
  "http-connect": "HTTP",
  "http-forward": "HTTP",
  dns: "DNS",
};

/** The protocol column's short label (the app's own name if it is new). */
export function protocolLabel(protocol: string): string {
  return PROTOCOL_LABELS[protocol.replace(/_/g, "-")] ?? protocol;
}

function cells(s: StreamInfo, nowSec: number): Record<Column, string> {
  const open = s.state !== "closed";
  return {
    protocol: protocolLabel(s.protocol),
    target: s.target,
    id: s.stream_id ?? "—",
    up: bytes(s.bytes_up),
    down: bytes(s.bytes_down),
    rate_up: open ? rate(s.rate_up) : "—",
    rate_down: open ? rate(s.rate_down) : "—",
    age: duration(nowSec - s.started_unix),
    state: s.state,
    reason: s.close_reason ?? "",
  };
}

/** Rows of the live table that came in rather than went out: requests
 * served by a publication (the Publish panel's log) and connections
 * through a share's forwards (the Remote access panel's table). */
const INBOUND_PROTOCOLS = new Set(["inbound_http", "inbound"]);

const isStream = (s: StreamInfo) => !INBOUND_PROTOCOLS.has(s.protocol);

export class StreamTable extends LiveRows<Column> {
  constructor(body: HTMLTableSectionElement, empty: HTMLElement) {
    super(body, empty, COLUMNS, isStream, CLOSED_SHOWN, (s, row, nowMs) => {
      row.dataset.target = s.target;
      row.dataset.protocol = s.protocol;
      return cells(s, nowMs / 1000);
    });
  }
}
