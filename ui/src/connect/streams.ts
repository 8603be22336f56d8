// The live stream table: the outbound rows of the engine's live table,
// updated in place (see LiveRows), with the routing decision of each row,
// a × that closes one connection, a filter (search box and "hide closed")
// and the export of the table and the log to the Downloads folder.
import { call, type ShownError } from "../api";
import type { ExportedLog, StreamInfo } from "../bindings";
import { setData } from "../dom";
import { bytes, duration, rate } from "../format";
import { LiveRows } from "../live-rows";

const COLUMNS = [
  "protocol",
  "target",
  "route",
  "rule",
  "id",
  "up",
  "down",
  "rate_up",
  "rate_down",
  "age",
  "state",
  "reason",
] as const;
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

/** The rule column's short form: `rule 2` of `rule 2: domain-suffix
 * corp.example → direct`, `default` of `default → tunnel`; the whole
 * label is the cell's tooltip. */
export function ruleLabel(rule: string | null): string {
  if (!rule) return "—";
  const numbered = /^rule (\d+):/.exec(rule);
  if (numbered) return `rule ${numbered[1]}`;
  if (rule.startsWith("default")) return "default";
  return rule;
}

function cells(s: StreamInfo, nowSec: number): Record<Column, string> {
  const open = s.state !== "closed";
  return {
    protocol: protocolLabel(s.protocol),
    target: s.target,
    route: s.route ?? "—",
    rule: ruleLabel(s.rule),
    id: s.stream_id ?? "—",
    up: bytes(s.bytes_up),
    down: bytes(s.bytes_down),
    rate_up: open ? rate(s.rate_up) : "—",
    rate_down: open ? rate(s.rate_down) : "—",
    age: duration((s.ended_unix ?? nowSec) - s.started_unix),
    state: s.state,
    reason: s.close_reason ?? "",
  };
}

/** Whether row `s` passes the filter: closed rows hidden on request, and
 * every word of `query` found (case-insensitive) in its target, protocol
 * (as sent or as shown), route, rule or state. */
export function matches(s: StreamInfo, query: string, hideClosed: boolean): boolean {
  if (hideClosed && s.state === "closed") return false;
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const fields = [s.target, s.protocol, protocolLabel(s.protocol), s.route ?? "", s.rule ?? "", s.state].map((f) =>
    f.toLowerCase(),
  );
  return words.every((w) => fields.some((f) => f.includes(w)));
}

/** Rows of the live table that came in rather than went out: requests
 * served by a publication (the Publish panel's log) and connections
 * through a share's forwards (the Remote access panel's table). */
const INBOUND_PROTOCOLS = new Set(["inbound_http", "inbound"]);

const isStream = (s: StreamInfo) => !INBOUND_PROTOCOLS.has(s.protocol);

/** The × of an open row, in a last cell of its own (not a column: its
 * text never changes). Hidden once the row is closed. */
function closeButton(row: HTMLTableRowElement, s: StreamInfo): void {
  let button = row.querySelector<HTMLButtonElement>("button.row-close");
  if (!button) {
    const cell = document.createElement("td");
    cell.dataset.col = "close";
    button = document.createElement("button");
    button.className = "row-close";
    button.type = "button";
    button.textContent = "×";
    button.dataset.testid = "stream-close";
    cell.appendChild(button);
    row.appendChild(cell);
  }
  const label = `Close the connection to ${s.target}`;
  if (button.title !== label) {
    button.title = label;
    button.setAttribute("aria-label", label);
  }
  const closed = s.state === "closed";
  if (button.hidden !== closed) button.hidden = closed;
}

export class StreamTable extends LiveRows<Column> {
  private query = "";
  private hideClosed = false;

  /** `section` holds the table and its tools (the panel's template);
   * `showError` is the panel's error box. */
  constructor(
    private section: HTMLElement,
    private showError: (error: ShownError) => void,
  ) {
    super(
      section.querySelector("#streams-body") as HTMLTableSectionElement,
      section.querySelector("#streams-empty") as HTMLElement,
      COLUMNS,
      isStream,
      CLOSED_SHOWN,
      (s, row, nowMs) => {
        setData(row, "target", s.target);
        setData(row, "protocol", s.protocol);
        setData(row, "route", s.route ?? "");
        closeButton(row, s);
        const values = cells(s, nowMs / 1000);
        const rule = row.querySelector<HTMLElement>('[data-col="rule"]');
        if (rule && rule.title !== (s.rule ?? "")) rule.title = s.rule ?? "";
        return values;
      },
    );
    this.wire();
  }

  private el<T extends HTMLElement>(selector: string): T {
    return this.section.querySelector(selector) as T;
  }

  private wire(): void {
    this.el("#streams-body").addEventListener("click", (e) => {
      const button = (e.target as HTMLElement).closest<HTMLButtonElement>("button.row-close");
      const key = Number(button?.closest("tr")?.dataset.key);
      if (button && Number.isFinite(key)) void this.close(key, button);
    });
    const search = this.el<HTMLInputElement>("#streams-search");
    const hideClosed = this.el<HTMLInputElement>("#streams-hide-closed");
    const refilter = () => {
      this.query = search.value;
      this.hideClosed = hideClosed.checked;
      this.setFilter((s) => matches(s, this.query, this.hideClosed));
    };
    search.addEventListener("input", refilter);
    hideClosed.addEventListener("change", refilter);
    this.el("#streams-export").addEventListener("click", () => void this.exportLog());
    this.el("#streams-exported-copy").addEventListener("click", () => void this.copyPaths());
  }

  protected override rendered(shown: number, total: number): void {
    const count = this.el("#streams-count");
    const text = `${shown} of ${total}`;
    if (count.textContent !== text) count.textContent = text;
  }

  /** The ×: asks the app to close row `key`; the row then closes through
   * the usual event, with its reason. A row that ended meanwhile is no
   * error. */
  private async close(key: number, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      await call("close_stream", { key });
    } catch (e) {
      button.disabled = false;
      const error = e as ShownError;
      if (error.code !== "not_found") this.showError(error);
    }
  }

  private exported: ExportedLog | null = null;

  private async exportLog(): Promise<void> {
    const button = this.el<HTMLButtonElement>("#streams-export");
    button.disabled = true;
    try {
      this.exported = await call("export_log", {});
      this.el("#streams-exported-csv").textContent = this.exported.connections;
      this.el("#streams-exported-log").textContent = this.exported.log;
      this.el("#streams-exported").hidden = false;
    } catch (e) {
      this.showError(e as ShownError);
    } finally {
      button.disabled = false;
    }
  }

  private async copyPaths(): Promise<void> {
    if (!this.exported) return;
    const button = this.el("#streams-exported-copy");
    try {
      await navigator.clipboard.writeText(`${this.exported.connections}\n${this.exported.log}`);
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy paths"), 1500);
    } catch (e) {
      this.showError({ code: "clipboard", message: `Cannot copy: ${String(e)}` });
    }
  }
}
