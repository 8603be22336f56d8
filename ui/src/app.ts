// The main window: the shell (navigation between the modes) and one panel
// per mode. This file only wires them to the app: it loads the overview,
// subscribes to the events and hands each panel what it shows.
import { Channel } from "@tauri-apps/api/core";
import { call, on, type ShownError } from "./api";
import type { AppEvent, EngineEvent, Overview, StreamsUpdate } from "./bindings";
import { ConnectPanel } from "./connect/panel";
import { PublishPanel } from "./publish/panel";
import { RemotePanel } from "./remote/panel";
import { Shell } from "./shell";

export { LOG_SHOWN } from "./connect/panel";

export class App {
  overview: Overview | null = null;
  readonly shell: Shell;
  readonly connect: ConnectPanel;
  readonly publish: PublishPanel;
  readonly remote: RemotePanel;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** When the scheduled refresh runs (ms since the epoch). */
  private due = 0;

  constructor(root: HTMLElement) {
    this.connect = new ConnectPanel(this);
    this.publish = new PublishPanel(this);
    this.remote = new RemotePanel(this);
    this.shell = new Shell(root, {
      connect: this.connect,
      publish: this.publish,
      remote_access: this.remote,
    });
  }

  /** Loads the overview and subscribes to events. */
  async start(): Promise<void> {
    await on("httvps://engine", (e) => this.onEngine(e));
    await on("httvps://app", (e) => this.onApp(e));
    // The live stream table: a channel, not an event (ordered, high rate).
    const feed = new Channel<StreamsUpdate>();
    feed.onmessage = (update) => {
      this.connect.onStreams(update);
      this.publish.onStreams(update);
      this.remote.onStreams(update);
      this.schedule();
    };
    await call("watch_streams", { feed });
    this.apply(await call("overview", {}));
    // The refresh of what changes with time alone (ages, uptimes) runs only
    // while the window is shown, and only when something shown changes.
    document.addEventListener("visibilitychange", this.onVisibility);
    this.onVisibility();
  }

  private tick(): void {
    this.connect.tick();
    this.publish.tick();
    this.remote.tick();
  }

  /** Schedules the refresh for when something shown next changes with
   * time alone: in a second while an open row's age counts seconds, at
   * the next whole minute of an uptime otherwise, never while nothing
   * shown depends on the time or the window is hidden. An idle window then
   * wakes once a minute at most (measured: bench/README.md, "The quiet
   * app"). Events render what they change themselves. */
  private schedule(): void {
    if (document.hidden) {
      clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    const now = Date.now();
    const wait = Math.min(this.connect.nextChangeMs(now), this.publish.nextChangeMs(now), this.remote.nextChangeMs(now));
    if (!Number.isFinite(wait)) return; // a refresh already due still runs, then finds nothing
    // A little after the change, so that the shown value has moved on.
    const due = now + wait + 20;
    if (this.timer !== undefined && this.due <= due) return;
    clearTimeout(this.timer);
    this.due = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick();
      this.schedule();
    }, due - now);
  }

  private readonly onVisibility = (): void => {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (document.hidden) return;
    this.tick();
    this.schedule();
  };

  /** Whether a refresh is scheduled. */
  get ticking(): boolean {
    return this.timer !== undefined;
  }

  /** Milliseconds until the scheduled refresh (null when none is). */
  get nextRefreshIn(): number | null {
    return this.timer === undefined ? null : this.due - Date.now();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    document.removeEventListener("visibilitychange", this.onVisibility);
  }

  /** Applies a full overview from a command or the `changed` event. */
  apply(overview: Overview): void {
    this.overview = overview;
    this.shell.render(overview.protocols);
    this.connect.apply(overview);
    this.publish.apply(overview);
    this.remote.apply(overview);
    this.schedule();
  }

  onEngine(event: EngineEvent): void {
    this.connect.onEngine(event);
    this.publish.onEngine(event);
    this.remote.onEngine(event);
    this.schedule();
  }

  onApp(event: AppEvent): void {
    this.connect.onApp(event);
    this.remote.onApp(event);
    this.schedule();
  }

  showError(error: ShownError | null): void {
    this.connect.showError(error);
  }
}
