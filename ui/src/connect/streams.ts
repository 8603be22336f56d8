// The live stream table. Rows are keyed by the engine's row key and updated
// in place (only the cells whose text changed), so that a few updates per
// second never flicker, keep the selection and don't steal focus.
import type { StreamInfo } from "../bindings";
import { bytes, duration, rate } from "../format";

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

export class StreamTable {
  private rows = new Map<number, HTMLTableRowElement>();
  private open = new Map<number, StreamInfo>();
  private closed: StreamInfo[] = [];

  constructor(private body: HTMLTableSectionElement, private empty: HTMLElement) {}

  /** Replaces everything (from a snapshot). */
  reset(open: StreamInfo[], closed: StreamInfo[]): void {
    this.open = new Map(open.map((s) => [s.key, s]));
    this.closed = closed.slice(-CLOSED_SHOWN).reverse();
    this.render();
  }

  opened(s: StreamInfo): void {
    this.open.set(s.key, s);
    this.render();
  }

  closedStream(s: StreamInfo): void {
    this.open.delete(s.key);
    this.closed = [s, ...this.closed.filter((c) => c.key !== s.key)].slice(0, CLOSED_SHOWN);
    this.render();
  }

  /** The open streams' latest counters (the complete open set). */
  update(open: StreamInfo[]): void {
    this.open = new Map(open.map((s) => [s.key, s]));
    this.render();
  }

  /** Refreshes ages. */
  tick(): void {
    this.render();
  }

  render(nowSec = Date.now() / 1000): void {
    const ordered = [...[...this.open.values()].sort((a, b) => b.key - a.key), ...this.closed];
    const wanted = new Set(ordered.map((s) => s.key));
    for (const [key, row] of this.rows) {
      if (!wanted.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    let previous: HTMLTableRowElement | null = null;
    for (const s of ordered) {
      let row = this.rows.get(s.key);
      if (!row) {
        row = document.createElement("tr");
        row.dataset.key = String(s.key);
        for (const column of COLUMNS) {
          const cell = document.createElement("td");
          cell.dataset.col = column;
          row.appendChild(cell);
        }
        this.rows.set(s.key, row);
      }
      row.dataset.state = s.state;
      row.dataset.target = s.target;
      row.dataset.protocol = s.protocol;
      const values = cells(s, nowSec);
      COLUMNS.forEach((column, i) => {
        const cell = row!.children[i] as HTMLTableCellElement;
        if (cell.textContent !== values[column]) cell.textContent = values[column];
      });
      const expectedPosition: ChildNode | null = previous ? previous.nextSibling : this.body.firstChild;
      if (expectedPosition !== row) this.body.insertBefore(row, expectedPosition);
      previous = row;
    }
    this.empty.hidden = ordered.length > 0;
  }
}
