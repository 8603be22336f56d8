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
  private timer: ReturnType<typeof setInterval> | undefined;

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
    };
    await call("watch_streams", { feed });
    this.apply(await call("overview", {}));
    // The once-a-second refresh (ages, uptimes) runs only while the window
    // is shown: a window hidden to the tray costs no timer and no redraw.
    // It writes only what changed (dom.ts), so idle it redraws nothing.
    document.addEventListener("visibilitychange", this.onVisibility);
    this.onVisibility();
  }

  private tick(): void {
    this.connect.tick();
    this.publish.tick();
    this.remote.tick();
  }

  private readonly onVisibility = (): void => {
    clearInterval(this.timer);
    this.timer = undefined;
    if (document.hidden) return;
    this.tick();
    this.timer = setInterval(() => this.tick(), 1000);
  };

  /** Whether the once-a-second refresh runs. */
  get ticking(): boolean {
    return this.timer !== undefined;
  }

  stop(): void {
    clearInterval(this.timer);
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
  }

  onEngine(event: EngineEvent): void {
    this.connect.onEngine(event);
    this.publish.onEngine(event);
    this.remote.onEngine(event);
  }

  onApp(event: AppEvent): void {
    this.connect.onApp(event);
    this.remote.onApp(event);
  }

  showError(error: ShownError | null): void {
    this.connect.showError(error);
  }
}
