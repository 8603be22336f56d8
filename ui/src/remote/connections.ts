// What the Remote access panel shows of a share: the seed's states in
// words, the last WireGuard handshake as an age, and the live connections
// through the forwards. The engine records each connection a colleague
// opens through a public forward as a row of its live table
// (`StreamInfo` with protocol "inbound"): the target is the local service
// `127.0.0.1:PORT`, the client the relay's side of the tunnel, the stream
// id `TUNNEL#N`, bytes down what the colleague sent and bytes up what the
// service answered. Rows are updated in place (see LiveRows).
import type { ShareStatus, StreamInfo } from "../bindings";
import { setData } from "../dom";
import { bytes, duration, upFor } from "../format";
import { LiveRows } from "../live-rows";

/** A share's state: seed 004's five names. */
export type ShareState = ShareStatus["state"];

/** Each state as the panel shows it. */
export const SHARE_STATE_LABELS: Record<ShareState, string> = {
  disconnected: "Disconnected",
  authenticating: "Authenticating",
  registered: "Registered",
  active: "Active",
  reconnecting: "Reconnecting",
};

/** The protocol of share connection rows (relay-client's forwards). */
export const CONNECTION_PROTOCOL = "inbound";

/** How many closed connections stay in the table. */
export const CONNECTIONS_SHOWN = 100;

/** The local port of a row's service `127.0.0.1:PORT`, or null. */
export function servicePort(target: string): number | null {
  const m = /^127\.0\.0\.1:(\d{1,5})$/.exec(target);
  return m ? Number(m[1]) : null;
}

/** Whether a live-table row is a connection through a forward of `ports`. */
export function isShareConnection(s: StreamInfo, ports: ReadonlySet<number>): boolean {
  const port = servicePort(s.target);
  return s.protocol === CONNECTION_PROTOCOL && port !== null && ports.has(port);
}

/** The last WireGuard handshake as an age ("12 s ago"), or "never". */
export function handshakeAge(lastUnix: number | null, nowMs: number): string {
  return lastUnix === null ? "never" : `${upFor(nowMs / 1000 - lastUnix)} ago`;
}

/** What is said under the state: the share's error sentence, and while
 * reconnecting when the next attempt comes. Empty when all is well. */
export function problemText(s: ShareStatus): string {
  const retry =
    s.state === "reconnecting" && s.attempt !== null
      ? `Trying again in ${(s.retry_in_secs ?? 0).toFixed(1)} s (attempt ${s.attempt}).`
      : "";
  const error = s.error ? (/[.!?]$/.test(s.error) ? s.error : `${s.error}.`) : "";
  return [error, retry].filter(Boolean).join(" ");
}

const COLUMNS = ["port", "public", "client", "id", "received", "sent", "age", "state", "reason"] as const;
type Column = (typeof COLUMNS)[number];

/** The header of each column, in order, with a tooltip. */
export const HEADERS: Record<Column, [string, string]> = {
  port: ["Port", "The local port the connection reached (127.0.0.1)"],
  public: ["Public address", "The relay's forward it came through"],
  client: ["From", "The connection's source inside the tunnel (the relay's side)"],
  id: ["ID", "The tunnel and the connection's number in it"],
  received: ["Received", "Bytes the colleague sent to this computer"],
  sent: ["Sent", "Bytes the local service answered"],
  age: ["Age", "How long the connection has been open (for a closed one: how long it was)"],
  state: ["State", ""],
  reason: ["Close reason", ""],
};

/** A row's cells; `publicOf` gives a port's forward. */
export function connectionCells(
  s: StreamInfo,
  nowMs: number,
  publicOf: (port: number) => string | undefined,
): Record<Column, string> {
  const port = servicePort(s.target);
  return {
    port: port === null ? s.target : String(port),
    public: (port !== null && publicOf(port)) || "—",
    client: s.client,
    id: s.stream_id ?? "—",
    received: bytes(s.bytes_down),
    sent: bytes(s.bytes_up),
    age: duration((s.ended_unix ?? nowMs / 1000) - s.started_unix),
    state: s.state,
    reason: s.close_reason ?? "",
  };
}

export class ConnectionTable extends LiveRows<Column> {
  /**
   * @param ports the shared ports now (read at each row: they change with the share)
   * @param publicOf a port's public forward
   */
  constructor(
    body: HTMLTableSectionElement,
    empty: HTMLElement,
    ports: () => ReadonlySet<number>,
    publicOf: (port: number) => string | undefined,
  ) {
    super(body, empty, COLUMNS, (s) => isShareConnection(s, ports()), CONNECTIONS_SHOWN, (s, row, nowMs) => {
      setData(row, "port", String(servicePort(s.target) ?? ""));
      return connectionCells(s, nowMs, publicOf);
    });
  }

  /** Open connections per local port. */
  openByPort(): Map<number, number> {
    const counts = new Map<number, number>();
    for (const s of this.open.values()) {
      const port = servicePort(s.target);
      if (port !== null) counts.set(port, (counts.get(port) ?? 0) + 1);
    }
    return counts;
  }
}

/** The table's header cells, built from HEADERS. */
export function headerRow(): string {
  return COLUMNS.map((c) => {
    const [label, title] = HEADERS[c];
    return `<th scope="col"${title ? ` title="${title}"` : ""}>${label}</th>`;
  }).join("");
}
