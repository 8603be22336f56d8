// The Remote access panel: colleagues reach ports on this computer through
// a relay (seed 004). Pick (or create) a Relay profile, start and stop
// sharing, see the share's state (the seed's five names), its tunnel, each
// public forward with a copy button, the WireGuard traffic and last
// handshake, the error sentence when there is one, and the live
// connections through the forwards. The share's status comes from the app
// (`Overview.share`, then `AppEvent::Share` on every change); the
// connections from the same live-table events and stream channel as the
// other panels (its "inbound" rows). Dynamic text is only ever set with
// textContent.
import { call } from "../api";
import type { AppEvent, EngineEvent, Overview, ShareStatus, StreamsUpdate } from "../bindings";
import { setData, setHidden, setText, setTitle } from "../dom";
import { bytes, untilNextMinute } from "../format";
import { type InboundForm, InboundPanel, type InboundWords } from "../inbound-panel";
import { ConnectionTable, SHARE_STATE_LABELS, handshakeAge, headerRow, problemText } from "./connections";
import {
  FORM,
  type RelayValues,
  fillForm,
  fromProfileView,
  readForm,
  relayDetail,
  showErrors,
  toProfileInput,
  validateRelay,
} from "./form";

const WORDS: InboundWords = {
  prefix: "share",
  mode: "remote_access",
  secret: "relay token",
  secretShort: "token",
  saved: (name) => `“${name}”`,
  editField: "ports",
  signInField: "token",
};

const RELAY_FORM: InboundForm<RelayValues> = {
  read: readForm,
  fill: fillForm,
  showErrors,
  validate: validateRelay,
  toInput: toProfileInput,
  fromView: fromProfileView,
  secret: (v) => v.token,
  detail: relayDetail,
};

const TEMPLATE = `
<div class="toolbar">
  <div id="share-state" class="state" role="status" aria-live="polite" data-testid="share-state"></div>
  <div class="actions">
    <label class="visually-hidden" for="share-profile">Shared machine</label>
    <select id="share-profile" data-testid="share-profile"></select>
    <button id="share-toggle" class="primary" data-testid="share-toggle">Start sharing</button>
    <button id="share-demo" data-testid="share-demo">Try the demo</button>
  </div>
</div>
<div id="share-error" class="error" role="alert" data-testid="share-error" hidden>
  <strong data-part="code" data-testid="share-error-code"></strong>
  <span data-part="message" data-testid="share-error-message"></span>
  <span data-part="hint" class="error-hint" hidden></span>
  <button data-part="action" class="link" hidden></button>
  <button data-part="dismiss" class="link" aria-label="Dismiss the error">Dismiss</button>
</div>
<div id="share-unavailable" class="protocols" hidden></div>
<section class="cards" aria-label="Share">
  <div class="card">
    <h2>Tunnel</h2>
    <dl>
      <dt>Relay</dt><dd data-testid="share-relay">—</dd>
      <dt>Tunnel</dt><dd data-testid="share-tunnel">—</dd>
      <dt>Tunnel id</dt><dd data-testid="share-tunnel-id">—</dd>
      <dt>Address</dt><dd data-testid="share-address" title="This computer's address inside the tunnel">—</dd>
      <dt>Last handshake</dt><dd data-testid="share-handshake" title="The last completed WireGuard handshake with the relay">—</dd>
    </dl>
    <p class="warning" data-testid="share-problem" hidden></p>
  </div>
  <div class="card">
    <h2>Public addresses</h2>
    <ul class="forwards" data-testid="share-forwards"></ul>
    <p class="hint" data-testid="share-forwards-empty">Not shared.</p>
    <p class="hint">Anyone who can reach the relay can connect to these addresses while this computer is shared.</p>
  </div>
  <div class="card">
    <h2>Traffic</h2>
    <dl>
      <dt>Open connections</dt><dd data-testid="share-open">0</dd>
      <dt>WireGuard in / out</dt><dd data-testid="share-bytes" title="Bytes received from / sent to the relay, encryption included">0 B / 0 B</dd>
    </dl>
  </div>
</section>
<nav id="share-tabs" class="tabs" role="tablist" aria-label="Remote access views">
  <button role="tab" id="share-tab-connections" aria-controls="share-panel-connections" aria-selected="true" data-testid="share-tab-connections">Connections</button>
  <button role="tab" id="share-tab-profiles" aria-controls="share-panel-profiles" aria-selected="false" tabindex="-1" data-testid="share-tab-profiles">Profiles</button>
</nav>
<section id="share-panel-connections" role="tabpanel" aria-labelledby="share-tab-connections" class="panel">
  <div class="table-wrap">
    <table class="streams connections" data-testid="share-connections">
      <caption class="visually-hidden">Connections through the public addresses, newest first</caption>
      <thead><tr>${headerRow()}</tr></thead>
      <tbody data-testid="share-connections-body"></tbody>
    </table>
    <p class="hint table-empty" data-testid="share-connections-empty">No connections yet. Connect to a public address once this computer is shared.</p>
  </div>
</section>
<section id="share-panel-profiles" role="tabpanel" aria-labelledby="share-tab-profiles" class="panel" hidden>
  <ul class="profiles" data-testid="share-profiles"></ul>
  ${FORM}
</section>`;

/** What a share that is not running shows. */
const IDLE: ShareStatus = {
  relay: "",
  state: "disconnected",
  tunnel_id: null,
  address: null,
  forwards: [],
  bytes_in: 0,
  bytes_out: 0,
  last_handshake_unix: null,
  open_connections: 0,
  attempt: null,
  retry_in_secs: null,
  error: null,
};

/** What the panel needs from the window: a fresh overview for everyone. */
export interface RemoteHost {
  apply(overview: Overview): void;
}

export class RemotePanel extends InboundPanel<RelayValues> {
  /** The share's latest status (null: none since the app started). */
  private status: ShareStatus | null = null;
  private table: ConnectionTable;
  /** What the forwards list shows, so it is rebuilt only when it changes. */
  private shownForwards = "";

  constructor(host: RemoteHost) {
    super(host, WORDS, RELAY_FORM, "remote", TEMPLATE);
    this.table = new ConnectionTable(
      this.q("share-connections-body") as HTMLTableSectionElement,
      this.q("share-connections-empty"),
      () => this.sharedPorts(),
      (port) => this.current().forwards.find((f) => f.port === port)?.public,
    );
    this.q("share-toggle").addEventListener("click", () => void this.toggle());
    this.q("share-demo").addEventListener("click", () => {
      this.showError(null);
      void this.run(() => call("share_demo", { ports: null }));
    });
  }

  /** The engine's run, as far as this panel is concerned. */
  private runKind(): "sharing" | "other" | null {
    const kind = this.overview?.connection?.kind;
    return kind === "share" ? "sharing" : kind ? "other" : null;
  }

  /** The status shown: the share's, or an idle one. */
  private current(): ShareStatus {
    return this.status ?? IDLE;
  }

  /** The ports the share holds, for its connection rows. */
  private sharedPorts(): Set<number> {
    const connection = this.overview?.connection;
    const ports = connection?.kind === "share" ? connection.ports : [];
    return new Set([...ports, ...this.current().forwards.map((f) => f.port)]);
  }

  private async toggle(): Promise<void> {
    if (this.runKind() === "sharing") {
      await this.run(() => call("stop_share", {}));
      return;
    }
    const name = this.chosen;
    if (!name) return;
    this.showError(null);
    await this.run(() => call("share", { name }));
  }

  /** Applies a full overview. */
  apply(overview: Overview): void {
    this.take(overview, "share");
    this.status = overview.share;
    this.table.reset(overview.snapshot.open, overview.snapshot.closed);
    this.renderSession();
    this.renderControls();
    this.renderProfiles();
  }

  /** The share's status changed (`AppEvent::Share`). */
  onApp(event: AppEvent): void {
    if (event.type !== "share") return;
    this.status = event.data;
    this.renderSession();
    this.renderControls();
  }

  onEngine(event: EngineEvent): void {
    switch (event.type) {
      case "state":
        if (this.overview) this.overview.snapshot.state = event.data;
        this.renderControls();
        break;
      case "stream_opened":
        this.table.opened(event.data);
        this.renderForwardCounts();
        break;
      case "stream_closed":
        this.table.closedRow(event.data);
        this.renderForwardCounts();
        break;
      case "error":
      case "streams":
        // A share's errors come with its status (its sentence is the
        // relay's, with the seed's code); rows come on the stream channel.
        break;
    }
  }

  /** The live table from the `watch_streams` channel. */
  onStreams(update: StreamsUpdate): void {
    this.table.update(update.open);
    this.renderForwardCounts();
  }

  tick(): void {
    this.renderSession();
    this.table.render();
  }

  /** Milliseconds until something shown here changes with time alone: an
   * open connection's age counts seconds, the handshake's whole minutes. */
  nextChangeMs(nowMs: number): number {
    if (this.table.hasOpen) return 1000;
    const s = this.current();
    return s.state !== "disconnected" && s.last_handshake_unix !== null
      ? untilNextMinute(nowMs, s.last_handshake_unix)
      : Infinity;
  }


  private renderSession(nowMs = Date.now()): void {
    const connection = this.overview?.connection;
    const share = connection?.kind === "share" ? connection : null;
    const s = this.current();
    const pill = this.q("share-state");
    const label = SHARE_STATE_LABELS[s.state] ?? s.state;
    setText(pill, connection && !share ? `${label} (${otherRun(connection.kind)})` : label);
    setData(pill, "state", s.state === "disconnected" && s.error ? "error" : s.state);
    setTitle(pill, s.error ?? "");
    setText(this.q("share-relay"), share?.relay ?? (s.relay || "—"));
    setText(this.q("share-tunnel"), share ? `${share.tunnel}${share.name ? "" : " (demo)"}` : "—");
    setText(this.q("share-tunnel-id"), s.tunnel_id ?? "—");
    setText(this.q("share-address"), s.address ?? "—");
    const live = s.state !== "disconnected";
    setText(this.q("share-handshake"), live ? handshakeAge(s.last_handshake_unix, nowMs) : "—");
    const problem = this.q("share-problem");
    setText(problem, problemText(s));
    setHidden(problem, problem.textContent === "");
    setText(this.q("share-open"), String(s.open_connections));
    setText(this.q("share-bytes"), `${bytes(s.bytes_in)} / ${bytes(s.bytes_out)}`);
    this.renderForwards(s);
  }

  /** Each public forward with its local port, its open connections and a
   * copy button; shown while the relay holds them (active, reconnecting). */
  private renderForwards(s: ShareStatus): void {
    const shown = s.state === "active" || s.state === "reconnecting" ? s.forwards : [];
    const key = JSON.stringify(shown);
    if (key !== this.shownForwards) {
      this.shownForwards = key;
      this.q("share-forwards").replaceChildren(
        ...shown.map((f) => {
          const item = document.createElement("li");
          item.dataset.port = String(f.port);
          const code = document.createElement("code");
          code.dataset.testid = "forward-public";
          code.textContent = f.public;
          const local = document.createElement("span");
          local.textContent = ` → 127.0.0.1:${f.port}`;
          const open = document.createElement("span");
          open.className = "hint";
          open.dataset.testid = "forward-open";
          const copy = document.createElement("button");
          copy.textContent = "Copy";
          copy.dataset.testid = "copy-forward";
          copy.setAttribute("aria-label", `Copy the public address of port ${f.port}`);
          copy.addEventListener("click", () => void this.copy(f.public, copy));
          item.append(code, local, " ", open, " ", copy);
          return item;
        }),
      );
    }
    setHidden(this.q("share-forwards-empty"), shown.length > 0);
    this.renderForwardCounts();
  }

  /** "2 open" beside each forward, from the connection rows. */
  private renderForwardCounts(): void {
    const counts = this.table.openByPort();
    for (const item of this.q("share-forwards").querySelectorAll<HTMLElement>("li[data-port]")) {
      const n = counts.get(Number(item.dataset.port)) ?? 0;
      const text = n === 0 ? "" : `${n} open`;
      const cell = item.querySelector('[data-testid="forward-open"]') as HTMLElement;
      if (cell.textContent !== text) cell.textContent = text;
    }
  }

  protected renderControls(): void {
    const run = this.runKind();
    const toggle = this.q("share-toggle") as HTMLButtonElement;
    toggle.textContent = run === "sharing" ? "Stop sharing" : "Start sharing";
    const usable = this.usable();
    toggle.disabled = this.busy || run === "other" || (run === null && (!this.chosen || !usable));
    toggle.title = run === "other" ? "Stop the tunnel or the publication first: the app runs one at a time" : "";
    const demo = this.q("share-demo") as HTMLButtonElement;
    demo.hidden = run === "sharing";
    demo.disabled = this.busy || run === "other" || !usable;
    const select = this.q("share-profile") as HTMLSelectElement;
    select.disabled = run !== null;
    for (const option of select.options) option.selected = option.value === this.chosen;
  }
}

/** What holds the engine's slot instead of a share, in words. */
function otherRun(kind: string): string {
  return kind === "publish" ? "a web app is being published" : "a tunnel is connected";
}
