// The Connect panel: outbound proxy profiles of any protocol. The session's
// state and controls (connect, disconnect, the demo), the stream table, the
// totals, the log, the profiles and the settings. All state comes from the
// app through typed commands and events (api.ts); dynamic text is only ever
// set with textContent (no HTML from data).
import { call, runCommand, type ShownError } from "../api";
import type {
  AppEvent,
  EngineEvent,
  LogEntry,
  Overview,
  Preferences,
  ProtocolInfo,
  SessionState,
  StreamsUpdate,
  Totals,
  Warning,
} from "../bindings";
import { setData, setDisabled, setHidden, setText, setTitle } from "../dom";
import { bytes, clock, rate, untilNextMinute, upFor } from "../format";
import { titleOf } from "../protocols";
import { Tabs } from "../tabs";
import { ErrorBox } from "./errors";
import { SECRETS, TRANSPORTS } from "./fields";
import { ThroughputGraph } from "./graph";
import { ProfilesView } from "./profiles";
import { RulesView } from "./rules";
import { StreamTable } from "./streams";

/** Log lines shown. */
export const LOG_SHOWN = 300;

const TEMPLATE = `
<div class="toolbar">
  <div id="state" class="state" role="status" aria-live="polite" data-testid="state"></div>
  <div class="actions">
    <label class="visually-hidden" for="profile-select">Profile</label>
    <select id="profile-select" data-testid="profile-select"></select>
    <button id="connect" class="primary" data-testid="connect">Connect</button>
    <button id="demo" data-testid="demo">Try the demo</button>
  </div>
</div>
<div id="error" class="error" role="alert" data-testid="error" hidden>
  <strong id="error-code" data-part="code" data-testid="error-code"></strong>
  <span id="error-message" data-part="message" data-testid="error-message"></span>
  <span id="error-hint" data-part="hint" class="error-hint" data-testid="error-hint" hidden></span>
  <button id="error-action" data-part="action" class="link" data-testid="error-action" hidden></button>
  <button id="error-dismiss" data-part="dismiss" class="link" aria-label="Dismiss the error">Dismiss</button>
</div>
<section class="cards" aria-label="Session">
  <div class="card">
    <h2>Session</h2>
    <dl>
      <dt>Gateway</dt><dd id="gateway" data-testid="gateway">—</dd>
      <dt>Transport</dt><dd id="transport" data-testid="transport">—</dd>
      <dt>Session id</dt><dd id="session-id" data-testid="session-id">—</dd>
      <dt>Uptime</dt><dd id="uptime" data-testid="uptime">—</dd>
    </dl>
  </div>
  <div class="card">
    <h2>Local proxy</h2>
    <p class="proxy"><code id="proxy-addr" data-testid="proxy-addr">not running</code>
      <button id="copy-proxy" data-testid="copy-proxy" disabled>Copy</button></p>
    <p class="hint" id="proxy-hint">SOCKS5 and HTTP on the same port.</p>
    <div id="exposure" class="warning" role="alert" data-testid="exposure" hidden></div>
    <p class="hint" id="demo-page" data-testid="demo-page" hidden></p>
  </div>
  <div class="card">
    <h2>Traffic</h2>
    <dl>
      <dt>Open streams</dt><dd id="streams-open" data-testid="streams-open">0</dd>
      <dt>Down / up</dt><dd id="bytes-total" data-testid="bytes-total">0 B / 0 B</dd>
      <dt>Rate</dt><dd id="rate-total">↓ 0 B/s ↑ 0 B/s</dd>
      <dt>Connections</dt><dd id="slots" data-testid="slots" title="Connections to the server · opens that waited for a free stream slot · idle streams closed to free one">1</dd>
    </dl>
    <canvas id="graph" class="graph" width="320" height="64" role="img" aria-label="Throughput over the last minute"></canvas>
  </div>
</section>
<nav id="connect-tabs" class="tabs" role="tablist" aria-label="Views">
  <button role="tab" id="tab-streams" aria-controls="panel-streams" aria-selected="true" data-testid="tab-streams">Streams</button>
  <button role="tab" id="tab-log" aria-controls="panel-log" aria-selected="false" data-testid="tab-log">Log</button>
  <button role="tab" id="tab-profiles" aria-controls="panel-profiles" aria-selected="false" data-testid="tab-profiles">Profiles</button>
  <button role="tab" id="tab-rules" aria-controls="panel-rules" aria-selected="false" data-testid="tab-rules">Rules</button>
  <button role="tab" id="tab-settings" aria-controls="panel-settings" aria-selected="false" data-testid="tab-settings">Settings</button>
</nav>
<section id="panel-streams" role="tabpanel" aria-labelledby="tab-streams" class="panel">
  <div class="table-tools">
    <label class="visually-hidden" for="streams-search">Filter the connections</label>
    <input id="streams-search" type="search" placeholder="Filter: target, protocol, route, rule, state" autocomplete="off" spellcheck="false" data-testid="streams-search" />
    <label class="check"><input type="checkbox" id="streams-hide-closed" data-testid="streams-hide-closed" /> Hide closed</label>
    <span id="streams-count" class="hint" role="status" data-testid="streams-count">0 of 0</span>
    <button id="streams-export" data-testid="streams-export" title="Save the connections (CSV) and the log (text) in the Downloads folder">Export log</button>
  </div>
  <p id="streams-exported" class="hint" data-testid="streams-exported" hidden>Saved <code id="streams-exported-csv" data-testid="streams-exported-csv"></code> and <code id="streams-exported-log" data-testid="streams-exported-log"></code>
    <button id="streams-exported-copy" data-testid="streams-exported-copy">Copy paths</button></p>
  <div class="table-wrap">
    <table class="streams" data-testid="streams">
      <thead><tr>
        <th scope="col" title="How the application reached the proxy: SOCKS5, HTTP, UDP (SOCKS5 UDP) or DNS">Protocol</th>
        <th scope="col">Target</th>
        <th scope="col" title="Where the routing rules sent the connection: tunnel, direct or block">Route</th>
        <th scope="col" title="The rule that decided (hover a cell for the whole rule)">Rule</th>
        <th scope="col">ID</th><th scope="col">Up</th><th scope="col">Down</th>
        <th scope="col">↑ rate</th><th scope="col">↓ rate</th><th scope="col" title="How long the connection has been open (for a closed one: how long it was)">Age</th><th scope="col">State</th><th scope="col">Close reason</th>
        <th scope="col" aria-label="Close"></th>
      </tr></thead>
      <tbody id="streams-body"></tbody>
    </table>
    <p id="streams-empty" class="hint">No streams yet. Point an application at the local proxy.</p>
  </div>
</section>
<section id="panel-log" role="tabpanel" aria-labelledby="tab-log" class="panel" hidden>
  <ol id="log" class="log" data-testid="log"></ol>
</section>
<section id="panel-profiles" role="tabpanel" aria-labelledby="tab-profiles" class="panel" hidden>
  <ul id="profiles" class="profiles" data-testid="profiles"></ul>
  <form id="profile-form" class="form" data-testid="profile-form" autocomplete="off">
    <h2>Add a profile</h2>
    <label>Name <input name="name" required maxlength="64" data-testid="profile-name" /></label>
    <fieldset id="profile-protocols" class="protocol-choice" data-testid="profile-protocols" hidden></fieldset>
    <div id="profile-fields" class="fields-slot"></div>
    <p id="profile-unusable" class="hint soon" data-testid="profile-unusable" hidden></p>
    <label><span id="profile-secret-label" data-testid="profile-secret-label">Token</span>
      <input name="token" type="password" required spellcheck="false" data-testid="profile-token" />
      <span class="hint">Stored in the system keychain only; it is never shown again.</span></label>
    <button type="submit" id="profile-save" class="primary" data-testid="profile-save">Save and sign in</button>
    <p id="profile-status" class="hint" role="status" data-testid="profile-status"></p>
  </form>
</section>
<section id="panel-rules" role="tabpanel" aria-labelledby="tab-rules" class="panel rules-panel" data-testid="rules" hidden></section>
<section id="panel-settings" role="tabpanel" aria-labelledby="tab-settings" class="panel" hidden>
  <form id="settings-form" class="form" data-testid="settings-form">
    <label>Local proxy port <input name="proxy_port" type="number" min="1" max="65535" required data-testid="settings-port" /></label>
    <label class="check"><input type="checkbox" name="start_minimized" /> Start minimized in the tray</label>
    <label class="check"><input type="checkbox" name="autostart" data-testid="settings-autostart" /> Start on login</label>
    <label class="check"><input type="checkbox" name="system_proxy" data-testid="settings-system-proxy" /> Set as the system proxy while connected</label>
    <label class="check"><input type="checkbox" name="fast_connect" aria-describedby="fast-connect-hint" data-testid="settings-fast-connect" /> Fast connect</label>
    <p id="fast-connect-hint" class="hint check-hint">Answer apps before the gateway confirms each connection: faster page loads; an unreachable site shows as a closed connection instead of a proxy error.</p>
    <button type="submit" class="primary" data-testid="settings-save">Save settings</button>
    <p id="settings-status" class="hint" role="status" data-testid="settings-status"></p>
  </form>
</section>`;

function stateLabel(state: SessionState): string {
  switch (state.state) {
    case "disconnected":
      return state.reason ? "Disconnected (error)" : "Disconnected";
    case "authenticating":
      return "Connecting…";
    case "active":
      return "Connected";
    case "reconnecting":
      return `Reconnecting (attempt ${state.attempt} of ${state.max_attempts})`;
  }
}

/** What the window says about an exposed listener: the engine's sentence
 * and how to keep it on this computer. */
export function exposureText(warning: Warning): string {
  const message = warning.message.charAt(0).toUpperCase() + warning.message.slice(1);
  const remedy =
    warning.code === "open_proxy"
      ? "Give the profile a 127.0.0.1 listen address (or none) to keep it on this computer."
      : "Set the profile's DNS address to 127.0.0.1 to keep it on this computer.";
  return `${message}. ${remedy}`;
}

function $(root: ParentNode, selector: string): HTMLElement {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`missing ${selector}`);
  return el as HTMLElement;
}

/** What the panel needs from the window: a fresh overview for everyone. */
export interface ConnectHost {
  apply(overview: Overview): void;
}

export class ConnectPanel {
  readonly element: HTMLElement;
  private overview: Overview | null = null;
  private state: SessionState = { state: "disconnected", reason: null };
  private totals: Totals | null = null;
  private table: StreamTable;
  private graph: ThroughputGraph;
  private log: LogEntry[] = [];
  private busy = false;
  /** The exposure warnings on the page, to rebuild them only on change. */
  private shownWarnings = "";
  private tabs: Tabs;
  private profiles: ProfilesView;
  private rules: RulesView;
  private errors: ErrorBox;

  constructor(private host: ConnectHost) {
    this.element = document.createElement("div");
    this.element.className = "connect";
    this.element.innerHTML = TEMPLATE;
    this.table = new StreamTable(this.el("#panel-streams"), (error) => this.showError(error));
    this.graph = new ThroughputGraph(this.el("#graph") as HTMLCanvasElement);
    // The Rules tab rereads the saved rules each time it is shown.
    this.tabs = new Tabs(this.el("#connect-tabs"), this.element, (id) => id === "tab-rules" && this.rules.opened());
    this.rules = new RulesView(this.el("#panel-rules"), { apply: (o) => this.host.apply(o) });
    this.errors = new ErrorBox(this.el("#error"), () => this.selectTab("tab-profiles"));
    this.profiles = new ProfilesView(
      this.el("#profile-form") as HTMLFormElement,
      this.el("#profiles"),
      (command) => this.run(command),
    );
    this.wire();
  }

  private el(selector: string): HTMLElement {
    return $(this.element, selector);
  }

  private wire(): void {
    this.el("#connect").addEventListener("click", () => void this.toggle());
    this.el("#demo").addEventListener("click", () => void this.run(() => call("start_demo", {})));
    this.el("#copy-proxy").addEventListener("click", () => void this.copyProxy());
    (this.el("#profile-select") as HTMLSelectElement).addEventListener("change", (e) => {
      const name = (e.target as HTMLSelectElement).value;
      void this.run(() => call("select_profile", { name }));
    });
    const settings = this.el("#settings-form") as HTMLFormElement;
    settings.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.saveSettings(settings);
    });
  }

  /** Shows one of the panel's views (`tab-streams`, `tab-profiles`, …). */
  selectTab(id: string): void {
    this.tabs.select(id);
  }

  /** The connect-mode protocols (from the shell). */
  render(protocols: readonly ProtocolInfo[]): void {
    this.profiles.setProtocols(protocols);
  }

  /** Runs a command that returns the overview; shows its error. */
  private run(command: () => Promise<Overview>): Promise<boolean> {
    return runCommand(
      {
        setBusy: (busy) => {
          this.busy = busy;
          this.renderControls();
        },
        apply: (overview) => this.host.apply(overview),
        showError: (error) => this.showError(error),
      },
      command,
    );
  }

  private refresh(): void {
    void call("overview", {}).then((o) => this.host.apply(o), () => undefined);
  }

  private async toggle(): Promise<void> {
    if (this.inbound() || this.state.state === "disconnected") {
      this.showError(null);
      await this.run(() => call("connect", {}));
    } else {
      await this.run(() => call("disconnect", {}));
    }
  }

  private async copyProxy(): Promise<void> {
    const addr = this.overview?.snapshot.proxy_addr;
    if (!addr) return;
    try {
      await navigator.clipboard.writeText(addr);
      this.el("#copy-proxy").textContent = "Copied";
      setTimeout(() => (this.el("#copy-proxy").textContent = "Copy"), 1500);
    } catch (e) {
      this.showError({ code: "clipboard", message: `Cannot copy: ${String(e)}` });
    }
  }

  private async saveSettings(form: HTMLFormElement): Promise<void> {
    const field = (k: string) => form.elements.namedItem(k) as HTMLInputElement;
    const prefs: Preferences = {
      proxy_port: Number(field("proxy_port").value),
      start_minimized: field("start_minimized").checked,
      autostart: field("autostart").checked,
      system_proxy: field("system_proxy").checked,
      fast_connect: field("fast_connect").checked,
    };
    const ok = await this.run(() => call("set_preferences", { prefs }));
    this.el("#settings-status").textContent = ok ? "Saved." : "Not saved.";
  }

  /** Applies a full overview. */
  apply(overview: Overview): void {
    this.overview = overview;
    this.state = overview.snapshot.state;
    this.totals = overview.snapshot.totals;
    this.table.reset(overview.snapshot.open, overview.snapshot.closed);
    this.log = overview.log.slice(-LOG_SHOWN);
    this.renderAll();
  }

  onEngine(event: EngineEvent): void {
    switch (event.type) {
      case "state":
        this.state = event.data;
        if (this.overview) this.overview.snapshot.state = event.data;
        if (event.data.state === "authenticating") this.graph.clear();
        this.renderSession();
        this.renderControls();
        // The proxy address and connection come with the overview.
        this.refresh();
        break;
      case "stream_opened":
        this.table.opened(event.data);
        break;
      case "stream_closed":
        this.table.closedRow(event.data);
        break;
      case "streams":
        // Carried by the stream feed (`onStreams`), not as an event.
        break;
      case "error":
        // A publication's or a share's errors are their panel's.
        if (!this.inbound()) this.showError(event.data);
        break;
    }
  }

  /** What holds the engine's one run slot instead of a tunnel, in words
   * (a publication, a share), or null. */
  private inbound(): string | null {
    switch (this.overview?.connection?.kind) {
      case "publish":
        return "a web app is being published";
      case "share":
        return "this computer's ports are being shared";
      default:
        return null;
    }
  }

  /** A stream-table update from the `watch_streams` channel. */
  onStreams(update: StreamsUpdate): void {
    this.table.update(update.open);
    this.totals = update.totals;
    this.graph.push(update.totals.rate_down, update.totals.rate_up);
    this.renderTraffic();
  }

  onApp(event: AppEvent): void {
    switch (event.type) {
      case "log":
        this.log = [...this.log, event.data].slice(-LOG_SHOWN);
        this.renderLog();
        break;
      case "changed":
        this.refresh();
        break;
      case "notice":
        break; // shown by the desktop
    }
  }

  showError(error: ShownError | null): void {
    this.errors.show(error);
  }

  tick(): void {
    this.renderSession();
    this.table.tick();
  }

  /** Milliseconds until something shown here changes with time alone: an
   * open row's age counts seconds, the uptime whole minutes. */
  nextChangeMs(nowMs: number): number {
    if (this.table.hasOpen) return 1000;
    const s = this.inbound() ? null : this.state;
    return s?.state === "active" ? untilNextMinute(nowMs, s.since_unix) : Infinity;
  }


  private renderAll(): void {
    this.renderSession();
    this.renderControls();
    this.renderTraffic();
    this.renderProfiles();
    this.renderSettings();
    this.renderLog();
  }

  private renderSession(): void {
    // A publication's or a share's state is its panel's business.
    const inbound = this.inbound();
    const s: SessionState = inbound ? { state: "disconnected", reason: null } : this.state;
    const pill = this.el("#state");
    setText(pill, inbound ? `Disconnected (${inbound})` : stateLabel(s));
    setData(pill, "state", s.state === "disconnected" && s.reason ? "error" : s.state);
    setTitle(pill, s.state === "disconnected" && s.reason ? s.reason : "");
    const active = s.state === "active" ? s : null;
    setText(this.el("#gateway"), active?.gateway ?? (s.state === "authenticating" ? s.server : "—"));
    setText(this.el("#session-id"), active?.session_id ?? "—");
    // What this run was started with (Automatic: HTTP/3 or HTTP/1.1).
    const connection = this.overview?.connection;
    const transport =
      s.state !== "disconnected" && connection?.kind === "profile" ? connection.transport : null;
    const transportCell = this.el("#transport");
    setText(transportCell, transport ? TRANSPORTS[transport] : "—");
    setTitle(transportCell, transport === "auto" ? "HTTP/3, falling back to HTTP/1.1 when UDP is blocked" : "");
    setText(this.el("#uptime"), active ? upFor(Date.now() / 1000 - active.since_unix) : "—");
    const addr = this.overview?.snapshot.proxy_addr ?? null;
    setText(this.el("#proxy-addr"), addr ?? "not running");
    // A proxy (or DNS server) open to the network: said while it runs.
    const warnings = this.overview?.snapshot.warnings ?? [];
    const exposure = this.el("#exposure");
    setHidden(exposure, warnings.length === 0);
    const shownWarnings = JSON.stringify(warnings);
    if (shownWarnings !== this.shownWarnings) {
      this.shownWarnings = shownWarnings;
      exposure.replaceChildren(
        ...warnings.map((w) => {
          const line = document.createElement("p");
          line.dataset.code = w.code;
          line.textContent = exposureText(w);
          return line;
        }),
      );
    }
    setDisabled(this.el("#copy-proxy") as HTMLButtonElement, !addr);
    const page = this.el("#demo-page");
    setHidden(page, connection?.kind !== "demo");
    setText(
      page,
      connection?.kind === "demo" && addr ? `Demo: try curl --socks5-hostname ${addr} ${connection.page}` : "",
    );
  }

  private renderControls(): void {
    const inbound = this.inbound() !== null;
    const disconnected = inbound || this.state.state === "disconnected";
    const connect = this.el("#connect") as HTMLButtonElement;
    connect.textContent = disconnected ? "Connect" : "Disconnect";
    const hasProfile = !!this.overview?.selected;
    connect.disabled = this.busy || inbound || (disconnected && !hasProfile);
    connect.title = inbound ? "Stop publishing or sharing first: one tunnel, publication or share at a time" : "";
    const demo = this.el("#demo") as HTMLButtonElement;
    demo.disabled = this.busy || inbound;
    demo.hidden = !disconnected;
  }

  private renderTraffic(): void {
    const t = this.totals;
    this.el("#streams-open").textContent = String(t?.streams_open ?? 0);
    this.el("#bytes-total").textContent = `${bytes(t?.bytes_down ?? 0)} / ${bytes(t?.bytes_up ?? 0)}`;
    this.el("#rate-total").textContent = `↓ ${rate(t?.rate_down ?? 0)} ↑ ${rate(t?.rate_up ?? 0)}`;
    this.el("#slots").textContent = slotsText(t);
  }

  private renderProfiles(): void {
    const all = this.overview;
    if (!all) return;
    // Publication and share profiles live in their panels.
    const connect = new Set(all.protocols.filter((p) => p.mode === "connect").map((p) => p.id));
    const o: Overview = { ...all, profiles: all.profiles.filter((p) => connect.has(p.protocol)) };
    const select = this.el("#profile-select") as HTMLSelectElement;
    select.replaceChildren(
      ...o.profiles.map((p) => {
        const option = document.createElement("option");
        option.value = p.name;
        const label = `${p.name} · ${titleOf(o.protocols, p.protocol)}`;
        option.textContent = p.signed_in ? label : `${label} (${SECRETS[p.kind].missing})`;
        option.selected = p.name === o.selected;
        return option;
      }),
    );
    select.hidden = o.profiles.length === 0;
    select.disabled = this.state.state !== "disconnected" && !this.inbound();
    this.profiles.render(o);
    this.rules.render(all);
  }

  private renderSettings(): void {
    const o = this.overview;
    if (!o) return;
    const form = this.el("#settings-form") as HTMLFormElement;
    const field = (k: string) => form.elements.namedItem(k) as HTMLInputElement;
    if (document.activeElement !== field("proxy_port")) {
      field("proxy_port").value = String(o.preferences.proxy_port);
    }
    field("start_minimized").checked = o.preferences.start_minimized;
    field("autostart").checked = o.preferences.autostart;
    field("system_proxy").checked = o.preferences.system_proxy;
    field("system_proxy").disabled = !o.system_proxy_available;
    field("fast_connect").checked = o.preferences.fast_connect;
  }

  private renderLog(): void {
    const list = this.el("#log");
    const shown = list.children.length;
    // Entries are appended in order: add only the new ones.
    if (shown > this.log.length || (shown > 0 && list.firstElementChild?.getAttribute("data-at") !== String(this.log[0]?.at_ms))) {
      list.replaceChildren();
    }
    for (const entry of this.log.slice(list.children.length)) {
      const item = document.createElement("li");
      item.dataset.level = entry.level;
      item.dataset.at = String(entry.at_ms);
      const time = document.createElement("time");
      time.textContent = clock(entry.at_ms);
      item.append(time, " ");
      if (entry.code) {
        const code = document.createElement("code");
        code.textContent = entry.code;
        item.append(code, " ");
      }
      item.append(entry.message);
      list.appendChild(item);
    }
  }
}

/** "2 · 5 waited for a slot · 3 idle closed": how the session's stream slots fared. */
export function slotsText(t: Totals | null): string {
  const parts = [String(t?.connections || 1)];
  if (t?.slot_waits) parts.push(`${t.slot_waits} waited for a slot`);
  if (t?.evictions) parts.push(`${t.evictions} idle closed`);
  return parts.join(" · ");
}
