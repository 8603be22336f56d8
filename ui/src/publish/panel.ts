// The Publish panel: a web app on this computer reachable from outside
// through an HLHV queen. Pick (or create) a publication profile, start and
// stop it, see its state (with reconnect attempts after the queen
// restarts), the public URL with a copy button, and a live log of the
// requests served. Everything comes from the app through typed commands and
// events, as in the Connect panel; the request log is fed by the same
// events and stream channel as the Connect panel's table (its
// "inbound_http" rows). Dynamic text is only ever set with textContent.
import { call } from "../api";
import type { EngineEvent, Overview, SessionState, StreamsUpdate } from "../bindings";
import { setData, setDisabled, setHidden, setText, setTitle } from "../dom";
import { bytes, untilNextMinute, upFor } from "../format";
import { type InboundForm, InboundPanel, type InboundWords } from "../inbound-panel";
import {
  FORM,
  type PublishValues,
  fillForm,
  fromProfileView,
  publishDetail,
  readForm,
  showErrors,
  toProfileInput,
  validatePublish,
} from "./form";
import { RequestLog, headerRow } from "./requests";

const WORDS: InboundWords = {
  prefix: "publish",
  mode: "publish",
  secret: "cell key",
  secretShort: "key",
  saved: (name) => `Publication “${name}”`,
  editField: "to",
  signInField: "key",
};

const PUBLISH_FORM: InboundForm<PublishValues> = {
  read: readForm,
  fill: fillForm,
  showErrors,
  validate: validatePublish,
  toInput: toProfileInput,
  fromView: fromProfileView,
  secret: (v) => v.key,
  detail: publishDetail,
};

const TEMPLATE = `
<div class="toolbar">
  <div id="publish-state" class="state" role="status" aria-live="polite" data-testid="publish-state"></div>
  <div class="actions">
    <label class="visually-hidden" for="publish-profile">Publication</label>
    <select id="publish-profile" data-testid="publish-profile"></select>
    <button id="publish-toggle" class="primary" data-testid="publish-toggle">Publish</button>
    <button id="publish-demo" data-testid="publish-demo">Try the demo</button>
  </div>
</div>
<div id="publish-error" class="error" role="alert" data-testid="publish-error" hidden>
  <strong data-part="code" data-testid="publish-error-code"></strong>
  <span data-part="message" data-testid="publish-error-message"></span>
  <span data-part="hint" class="error-hint" hidden></span>
  <button data-part="action" class="link" hidden></button>
  <button data-part="dismiss" class="link" aria-label="Dismiss the error">Dismiss</button>
</div>
<div id="publish-unavailable" class="protocols" hidden></div>
<section class="cards" aria-label="Publication">
  <div class="card">
    <h2>Publication</h2>
    <dl>
      <dt>Local app</dt><dd data-testid="publish-to">—</dd>
      <dt>Queen</dt><dd data-testid="publish-queen">—</dd>
      <dt>Mount</dt><dd data-testid="publish-mount">—</dd>
      <dt>Cell id</dt><dd data-testid="publish-cell">—</dd>
      <dt>Uptime</dt><dd data-testid="publish-uptime">—</dd>
    </dl>
    <p class="warning" data-testid="publish-retry" hidden></p>
  </div>
  <div class="card">
    <h2>Public address</h2>
    <p class="proxy"><code data-testid="public-url">not published</code>
      <button data-testid="copy-public-url" aria-label="Copy the public address" disabled>Copy</button></p>
    <p class="hint" data-testid="publish-note">Anyone who can reach the queen can open this address while the app is published.</p>
  </div>
  <div class="card">
    <h2>Requests</h2>
    <dl>
      <dt>In progress</dt><dd data-testid="requests-open">0</dd>
      <dt>Answered</dt><dd data-testid="requests-answered">0</dd>
      <dt>Received / sent</dt><dd data-testid="requests-bytes" title="Request bodies from the public clients / response bodies to them">0 B / 0 B</dd>
    </dl>
  </div>
</section>
<nav id="publish-tabs" class="tabs" role="tablist" aria-label="Publish views">
  <button role="tab" id="publish-tab-requests" aria-controls="publish-panel-requests" aria-selected="true" data-testid="publish-tab-requests">Requests</button>
  <button role="tab" id="publish-tab-profiles" aria-controls="publish-panel-profiles" aria-selected="false" tabindex="-1" data-testid="publish-tab-profiles">Profiles</button>
</nav>
<section id="publish-panel-requests" role="tabpanel" aria-labelledby="publish-tab-requests" class="panel">
  <div class="table-wrap">
    <table class="streams requests" data-testid="requests">
      <caption class="visually-hidden">Requests served, newest first</caption>
      <thead><tr>${headerRow()}</tr></thead>
      <tbody data-testid="requests-body"></tbody>
    </table>
    <p class="hint table-empty" data-testid="requests-empty">No requests yet. Open the public address once the app is published.</p>
  </div>
</section>
<section id="publish-panel-profiles" role="tabpanel" aria-labelledby="publish-tab-profiles" class="panel" hidden>
  <ul class="profiles" data-testid="publish-profiles"></ul>
  ${FORM}
</section>`;

/** The state pill's words for a publication. */
export function publishStateLabel(state: SessionState): string {
  switch (state.state) {
    case "disconnected":
      return state.reason ? "Stopped (error)" : "Not published";
    case "authenticating":
      return "Connecting to the queen…";
    case "active":
      return "Published";
    case "reconnecting":
      return `Reconnecting (attempt ${state.attempt} of ${state.max_attempts})`;
  }
}

/** What the panel needs from the window: a fresh overview for everyone. */
export interface PublishHost {
  apply(overview: Overview): void;
}

export class PublishPanel extends InboundPanel<PublishValues> {
  private state: SessionState = { state: "disconnected", reason: null };
  private log: RequestLog;

  constructor(host: PublishHost) {
    super(host, WORDS, PUBLISH_FORM, "publish", TEMPLATE);
    this.log = new RequestLog(this.q("requests-body") as HTMLTableSectionElement, this.q("requests-empty"));
    this.q("publish-toggle").addEventListener("click", () => void this.toggle());
    this.q("publish-demo").addEventListener("click", () => {
      this.showError(null);
      void this.run(() => call("start_publish_demo", {}));
    });
    this.q("copy-public-url").addEventListener("click", () => {
      const url = this.overview?.snapshot.endpoints[0];
      if (url) void this.copy(url, this.q("copy-public-url"));
    });
  }

  /** The engine's run, as far as this panel is concerned. */
  private run_(): "publishing" | "tunnel" | null {
    const kind = this.overview?.connection?.kind;
    return kind === "publish" ? "publishing" : kind ? "tunnel" : null;
  }

  private async toggle(): Promise<void> {
    if (this.run_() === "publishing") {
      await this.run(() => call("stop_publishing", {}));
      return;
    }
    const name = this.chosen;
    if (!name) return;
    this.showError(null);
    await this.run(() => call("publish", { name }));
  }

  /** Applies a full overview. */
  apply(overview: Overview): void {
    this.take(overview, "publish");
    this.state = overview.snapshot.state;
    this.log.reset(overview.snapshot.open, overview.snapshot.closed);
    this.renderAll();
  }

  onEngine(event: EngineEvent): void {
    switch (event.type) {
      case "state":
        this.state = event.data;
        if (this.overview) this.overview.snapshot.state = event.data;
        this.renderSession();
        this.renderControls();
        break;
      case "stream_opened":
        this.log.opened(event.data);
        this.renderTotals();
        break;
      case "stream_closed":
        this.log.closedRow(event.data);
        this.renderTotals();
        break;
      case "error":
        // The engine's errors belong to this panel while it publishes.
        if (this.run_() === "publishing") this.showError(event.data);
        break;
      case "streams":
        break; // the stream channel (`onStreams`)
    }
  }

  /** The live table from the `watch_streams` channel. */
  onStreams(update: StreamsUpdate): void {
    this.log.update(update.open);
    this.renderTotals();
  }

  tick(): void {
    this.renderSession();
    this.log.render();
  }

  /** Milliseconds until something shown here changes with time alone: a
   * request in flight counts its duration, the uptime whole minutes. */
  nextChangeMs(nowMs: number): number {
    if (this.log.hasOpen) return 1000;
    const published = this.overview?.connection?.kind === "publish";
    return published && this.state.state === "active" ? untilNextMinute(nowMs, this.state.since_unix) : Infinity;
  }


  private renderAll(): void {
    this.renderSession();
    this.renderControls();
    this.renderTotals();
    this.renderProfiles();
  }

  private renderSession(): void {
    const connection = this.overview?.connection;
    const publication = connection?.kind === "publish" ? connection : null;
    // A tunnel's state is the Connect panel's business.
    const s: SessionState = publication ? this.state : { state: "disconnected", reason: null };
    const pill = this.q("publish-state");
    const other = connection?.kind === "share" ? "this computer's ports are being shared" : "a tunnel is connected";
    setText(pill, connection && !publication ? `Not published (${other})` : publishStateLabel(s));
    setData(pill, "state", s.state === "disconnected" && s.reason ? "error" : s.state);
    setTitle(pill, s.state === "disconnected" && s.reason ? s.reason : "");
    setText(this.q("publish-to"), publication?.to ?? "—");
    setText(this.q("publish-queen"), publication?.queen ?? "—");
    setText(this.q("publish-mount"), publication ? `${publication.mount}${publication.name ? "" : " (demo)"}` : "—");
    const active = s.state === "active" ? s : null;
    setText(this.q("publish-cell"), active?.session_id ?? "—");
    setText(this.q("publish-uptime"), active ? upFor(Date.now() / 1000 - active.since_unix) : "—");
    const retry = this.q("publish-retry");
    setHidden(retry, s.state !== "reconnecting");
    setText(
      retry,
      s.state === "reconnecting"
        ? `${s.last_error}. Trying again in ${s.retry_in_secs.toFixed(1)} s (attempt ${s.attempt} of ${s.max_attempts}).`
        : "",
    );
    const url = (publication && active && this.overview?.snapshot.endpoints[0]) || null;
    setText(this.q("public-url"), url ?? "not published");
    setDisabled(this.q("copy-public-url") as HTMLButtonElement, !url);
  }

  protected renderControls(): void {
    const run = this.run_();
    const toggle = this.q("publish-toggle") as HTMLButtonElement;
    toggle.textContent = run === "publishing" ? "Stop publishing" : "Publish";
    const usable = this.usable();
    toggle.disabled = this.busy || run === "tunnel" || (run === null && (!this.chosen || !usable));
    toggle.title = run === "tunnel" ? "Disconnect the tunnel or stop sharing first: one tunnel, publication or share at a time" : "";
    const demo = this.q("publish-demo") as HTMLButtonElement;
    demo.hidden = run === "publishing";
    demo.disabled = this.busy || run === "tunnel" || !usable;
    const select = this.q("publish-profile") as HTMLSelectElement;
    select.disabled = run !== null;
    for (const option of select.options) option.selected = option.value === this.chosen;
  }

  private renderTotals(): void {
    const t = this.log.totals();
    this.q("requests-open").textContent = String(t.open);
    this.q("requests-answered").textContent = t.failed ? `${t.answered} (${t.failed} not answered)` : String(t.answered);
    this.q("requests-bytes").textContent = `${bytes(t.received)} / ${bytes(t.sent)}`;
  }
}
