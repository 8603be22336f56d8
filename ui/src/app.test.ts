/// <reference types="node" />
// The window with Tauri's IPC mocked: commands answer from a fake app state,
// events are emitted through the mocked event system.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App } from "./app";
import { readFileSync } from "node:fs";
import type { Channel } from "@tauri-apps/api/core";
import type { EngineEvent, Overview, ProfileInput, ProfileView, ProtocolInfo, StreamInfo, StreamsUpdate } from "./bindings";
import { idleOverview } from "./test-fixtures";

const none = { streams: false, datagrams: false, dns: false };

/** The registry as the app sends it (HTTVPS and HT available). */
const PROTOCOLS: ProtocolInfo[] = [
  { id: "httvps", title: "HTTVPS", summary: "Multiplexed streams over a WebSocket to a gateway, on HTTP/1.1 (TCP) or HTTP/3 (QUIC)", mode: "connect", carries: { ...none, streams: true }, available: true },
  // Not a protocol of this build: it stands for one a registry could list
  // as not yet available, so the form's disabled choice stays tested.
  { id: "future" as ProtocolInfo["id"], title: "Future", summary: "A protocol not built yet", mode: "connect", carries: { ...none, streams: true }, available: false },
  { id: "ht", title: "HT", summary: "Chunked-HTTP tunnel: TCP, UDP and DNS", mode: "connect", carries: { streams: true, datagrams: true, dns: true }, available: true },
  { id: "hlhv", title: "HLHV", summary: "Publish a local web app through a queen", mode: "publish", carries: none, available: false },
  { id: "relay", title: "Relay", summary: "Let colleagues reach this machine's ports over WireGuard", mode: "remote_access", carries: none, available: false },
];

function overview(over: Partial<Overview> = {}): Overview {
  return idleOverview({
    protocols: PROTOCOLS,
    profiles: [],
    selected: null,
    system_proxy_available: true,
    ...over,
  });
}

function stream(key: number, over: Partial<StreamInfo> = {}): StreamInfo {
  return {
    key,
    stream_id: `s${key}`,
    target: `host${key}.example:443`,
    client: "127.0.0.1:50000",
    protocol: "socks5",
    started_unix: Math.floor(Date.now() / 1000) - 5,
    ended_unix: null,
    bytes_up: 100,
    bytes_down: 2000,
    rate_up: 0,
    rate_down: 0,
    state: "open",
    close_reason: null,
    wait_ms: 0,
    route: null,
    rule: null,
    ...over,
  };
}

/** A saved HTTVPS gateway profile as the app lists it. */
function profileView(name: string, server: string, over: Partial<ProfileView> = {}): ProfileView {
  const transport = (over.protocol ?? "httvps") === "httvps" ? "h1" : null;
  return { name, protocol: "httvps", kind: "gateway", server, device_id: null, region: null, ca_file: null, pin_sha256: null, sni: null, connections: null, dns_listen: null, transport, mount: null, to: null, max_body: null, public_url: null, tunnel: null, ports: null, signed_in: false, ...over };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/** Fills the sign-in form and submits it. */
async function submitProfile(name: string, server: string, token: string): Promise<HTMLFormElement> {
  const form = q("profile-form") as HTMLFormElement;
  (form.elements.namedItem("name") as HTMLInputElement).value = name;
  (form.elements.namedItem("server") as HTMLInputElement).value = server;
  (form.elements.namedItem("token") as HTMLInputElement).value = token;
  form.dispatchEvent(new Event("submit", { cancelable: true }));
  await tick();
  await tick();
  return form;
}

let calls: { cmd: string; args: Record<string, unknown> }[];
let current: Overview;
let app: App;
let root: HTMLElement;

async function engine(event: EngineEvent) {
  await emit("httvps://engine", event);
  await tick();
}

/** The window's stream feed (the `watch_streams` channel), once subscribed. */
let feed: Channel<StreamsUpdate> | null;

async function streams(update: StreamsUpdate) {
  expect(feed, "the window subscribed to the stream feed").not.toBeNull();
  feed!.onmessage(update);
  await tick();
}

const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;

beforeEach(async () => {
  calls = [];
  feed = null;
  current = overview();
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      switch (cmd) {
        case "overview":
          return current;
        case "watch_streams":
          feed = (args as { feed: Channel<StreamsUpdate> }).feed;
          return null;
        case "save_profile": {
          const input = (args as { input: ProfileInput }).input;
          const protocol = input.protocol ?? "httvps";
          if (protocol === "httvps" && !input.server.startsWith("wss://")) {
            throw { code: "invalid_input", message: "gateway must be a wss:// URL" };
          }
          if (protocol === "ht" && !/^https?:\/\//.test(input.server)) {
            throw { code: "invalid_input", message: "HT takes https:// or http://" };
          }
          current = overview({
            profiles: [{
              ...profileView(input.name, input.server),
              protocol,
              kind: input.kind,
              connections: protocol === "ht" ? (input.connections ?? 4) : null,
              dns_listen: input.dns_listen ?? null,
              transport: protocol === "httvps" ? (input.transport ?? "h1") : null,
            }],
            selected: input.name,
          });
          return current;
        }
        case "sign_in": {
          const { token } = args as { name: string; token: string };
          if (current.profiles[0].kind === "preshared_key" && !/^[0-9a-fA-F]{64}$/.test(token.trim())) {
            throw { code: "invalid_input", message: "an HT key is 64 hexadecimal characters (32 bytes)" };
          }
          current.profiles[0].signed_in = true;
          return current;
        }
        case "connect":
          throw { code: "not_signed_in", message: "sign in first" };
        case "set_preferences":
          current = overview({ preferences: (args as { prefs: Overview["preferences"] }).prefs });
          return current;
        default:
          return current;
      }
    },
    { shouldMockEvents: true },
  );
  root = document.createElement("div");
  document.body.replaceChildren(root);
  app = new App(root);
  await app.start();
});

afterEach(() => {
  app.stop();
  clearMocks();
});

describe("the main window", () => {
  it("refreshes only when something shown changes with time, and never while hidden", async () => {
    // Disconnected with no rows: nothing shown depends on the time.
    expect(app.ticking).toBe(false);
    const now = Math.floor(Date.now() / 1000);
    const active = { state: "active" as const, session_id: "abc123", gateway: "wss://gw.example/ws", max_streams: 8, since_unix: now - 125 };
    current = overview({ snapshot: { ...overview().snapshot, state: active, proxy_addr: "127.0.0.1:1080" } });
    await engine({ type: "state", data: active });
    await tick();
    // The uptime shows "2 min": the next change is at 3 min.
    expect(app.nextRefreshIn).toBeGreaterThan(50000);
    expect(app.nextRefreshIn).toBeLessThanOrEqual(55020);
    // An open row's age counts seconds.
    await engine({ type: "stream_opened", data: stream(1) });
    expect(app.nextRefreshIn).toBeLessThanOrEqual(1020);
    const hidden = (value: boolean) => {
      Object.defineProperty(document, "hidden", { configurable: true, get: () => value });
      document.dispatchEvent(new Event("visibilitychange"));
    };
    hidden(true);
    expect(app.ticking).toBe(false);
    await engine({ type: "stream_opened", data: stream(2) });
    expect(app.ticking).toBe(false);
    hidden(false);
    expect(app.nextRefreshIn).toBeLessThanOrEqual(1020);
    delete (document as { hidden?: boolean }).hidden;
  });

  it("an idle refresh writes nothing to the page", async () => {
    // Each write costs WebKit a layout and a repaint: with nothing new, the
    // once-a-second refresh must leave the page as it is (the quiet app).
    const now = Math.floor(Date.now() / 1000);
    const active = { state: "active" as const, session_id: "abc123", gateway: "wss://gw.example/ws", max_streams: 8, since_unix: now - 125 };
    current = overview({ snapshot: { ...overview().snapshot, state: active, proxy_addr: "127.0.0.1:1080" } });
    await engine({ type: "state", data: active });
    await engine({ type: "stream_opened", data: stream(1, { started_unix: now - 200 }) });
    await engine({ type: "stream_opened", data: stream(2, { started_unix: now - 300 }) });
    await engine({ type: "stream_closed", data: stream(2, { started_unix: now - 300, ended_unix: now - 250, state: "closed", close_reason: "eof" }) });
    await tick();
    expect(q("uptime").textContent).toBe("2 min");
    const changes: MutationRecord[] = [];
    const observer = new MutationObserver((records) => changes.push(...records));
    observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
    (app as unknown as { tick(): void }).tick();
    await tick();
    observer.disconnect();
    expect(changes.map((c) => `${c.type} ${(c.target as Element).id || c.target.nodeName}`)).toEqual([]);
    // A closed row's age is how long it lived, not how long ago it began.
    const closedAge = document.querySelector('#streams-body tr[data-key="2"] td[data-col="age"]');
    expect(closedAge?.textContent).toBe("50 s");
  });

  it("starts disconnected with the demo offered and Connect disabled without a profile", () => {
    expect(q("state").textContent).toBe("Disconnected");
    expect((q("connect") as HTMLButtonElement).disabled).toBe(true);
    expect((q("demo") as HTMLButtonElement).disabled).toBe(false);
    expect(calls.map((c) => c.cmd)).toEqual(["watch_streams", "overview"]);
  });

  it("shows the session when the state becomes active", async () => {
    const active = {
      state: "active" as const,
      session_id: "abc123",
      gateway: "wss://gw.example/ws",
      max_streams: 8,
      since_unix: Math.floor(Date.now() / 1000) - 65,
    };
    // The app's overview agrees with the event (the UI refetches it).
    current = overview({
      snapshot: { ...overview().snapshot, state: active, proxy_addr: "127.0.0.1:1080" },
    });
    await engine({ type: "state", data: active });
    await tick();
    expect(q("state").textContent).toBe("Connected");
    expect(q("session-id").textContent).toBe("abc123");
    expect(q("gateway").textContent).toBe("wss://gw.example/ws");
    expect(q("uptime").textContent).toBe("1 min");
    expect(q("proxy-addr").textContent).toBe("127.0.0.1:1080");
    expect((q("copy-proxy") as HTMLButtonElement).disabled).toBe(false);
    expect(q("connect").textContent).toBe("Disconnect");
  });

  it("shows the transport the connected profile was started with", async () => {
    const active = {
      state: "active" as const,
      session_id: "abc123",
      gateway: "wss://gw.example/ws",
      max_streams: 8,
      since_unix: Math.floor(Date.now() / 1000),
    };
    expect(q("transport").textContent).toBe("—");
    const connected = (transport: "h1" | "h3" | "auto" | null) =>
      overview({
        profiles: [profileView("work", "wss://gw.example/ws", { transport: transport ?? "h1", signed_in: true })],
        selected: "work",
        connection: { kind: "profile", name: "work", transport },
        snapshot: { ...overview().snapshot, state: active, proxy_addr: "127.0.0.1:1080" },
      });
    current = connected("h3");
    await engine({ type: "state", data: active });
    await tick();
    expect(q("transport").textContent).toBe("HTTP/3 (QUIC)");
    expect(q("transport").title).toBe("");

    app.apply(connected("auto"));
    expect(q("transport").textContent).toBe("Automatic");
    expect(q("transport").title).toContain("falling back to HTTP/1.1");
    app.apply(connected("h1"));
    expect(q("transport").textContent).toBe("HTTP/1.1 (TCP)");
    // A protocol without the choice, and the demo: nothing to say.
    app.apply(connected(null));
    expect(q("transport").textContent).toBe("—");
    app.apply(overview({
      connection: { kind: "demo", gateway: "wss://127.0.0.1:1/ws", page: "http://127.0.0.1:2/" },
      snapshot: { ...overview().snapshot, state: active, proxy_addr: "127.0.0.1:1080" },
    }));
    expect(q("transport").textContent).toBe("—");

    // Once disconnected, no longer.
    current = connected("h3");
    app.apply(current);
    expect(q("transport").textContent).toBe("HTTP/3 (QUIC)");
    current = { ...current, snapshot: { ...current.snapshot, state: { state: "disconnected", reason: null } } };
    await engine({ type: "state", data: { state: "disconnected", reason: null } });
    await tick();
    expect(q("transport").textContent).toBe("—");
  });

  it("warns while the proxy is open to the network, and not otherwise", async () => {
    const active = {
      state: "active" as const,
      session_id: "abc123",
      gateway: "wss://gw.example/ws",
      max_streams: 8,
      since_unix: Math.floor(Date.now() / 1000),
    };
    const exposure = q("exposure");
    expect(exposure.hidden).toBe(true);
    current = overview({
      snapshot: {
        ...overview().snapshot,
        state: active,
        proxy_addr: "0.0.0.0:1080",
        warnings: [
          {
            code: "open_proxy",
            addr: "0.0.0.0:1080",
            message: "the local proxy listens on 0.0.0.0:1080 without a user name and password: anyone who can reach this address can use your tunnel",
          },
        ],
      },
    });
    await engine({ type: "state", data: active });
    await tick();
    expect(exposure.hidden).toBe(false);
    expect(exposure.getAttribute("role")).toBe("alert");
    expect(exposure.textContent).toContain("The local proxy listens on 0.0.0.0:1080");
    expect(exposure.textContent).toContain("anyone who can reach this address can use your tunnel");
    expect(exposure.textContent).toContain("127.0.0.1");
    expect(exposure.querySelector('[data-code="open_proxy"]')).not.toBeNull();

    current = overview();
    await engine({ type: "state", data: { state: "disconnected", reason: null } });
    await tick();
    expect(exposure.hidden).toBe(true);
    expect(exposure.textContent).toBe("");
  });

  it("updates stream rows in place, then shows them closed with the reason", async () => {
    await engine({ type: "stream_opened", data: stream(1) });
    const rows = () => [...q("streams").querySelectorAll("tbody tr")] as HTMLElement[];
    expect(rows()).toHaveLength(1);
    const row = rows()[0];
    expect(row.querySelector('[data-col="target"]')!.textContent).toBe("host1.example:443");

    await streams({
      open: [stream(1, { bytes_down: 5_000_000, rate_down: 1_250_000 })],
      totals: { streams_total: 1, streams_open: 1, bytes_up: 100, bytes_down: 5_000_000, rate_up: 0, rate_down: 1_250_000, connections: 2, slot_waits: 3, evictions: 1 },
    });
    expect(rows()[0]).toBe(row); // the same element: no flicker
    expect(row.querySelector('[data-col="down"]')!.textContent).toBe("5.0 MB");
    expect(row.querySelector('[data-col="rate_down"]')!.textContent).toBe("1.3 MB/s");
    expect(q("streams-open").textContent).toBe("1");
    expect(q("slots").textContent).toBe("2 · 3 waited for a slot · 1 idle closed");

    await engine({ type: "stream_closed", data: stream(1, { state: "closed", close_reason: "eof", bytes_down: 6_000_000 }) });
    expect(rows()[0]).toBe(row);
    expect(row.dataset.state).toBe("closed");
    expect(row.querySelector('[data-col="reason"]')!.textContent).toBe("eof");
    expect(row.querySelector('[data-col="rate_down"]')!.textContent).toBe("—");
  });

  it("lists open streams newest first, above closed ones", async () => {
    await engine({ type: "stream_opened", data: stream(1) });
    await engine({ type: "stream_opened", data: stream(2) });
    await engine({ type: "stream_closed", data: stream(1, { state: "closed", close_reason: "eof" }) });
    await engine({ type: "stream_opened", data: stream(3) });
    const keys = [...q("streams").querySelectorAll("tbody tr")].map((r) => (r as HTMLElement).dataset.key);
    expect(keys).toEqual(["3", "2", "1"]);
  });

  it("shows engine errors with their code", async () => {
    await engine({ type: "error", data: { code: "auth_failed", message: "the token was refused" } });
    expect(q("error").hidden).toBe(false);
    expect(q("error-code").textContent).toBe("auth_failed");
    expect(q("error-message").textContent).toBe("the token was refused");
  });

  it("saves a profile, hands the token over once and clears it from the form", async () => {
    const form = await submitProfile("work", "wss://gw.example/ws", "s3cret");
    const names = calls.map((c) => c.cmd);
    expect(names).toContain("save_profile");
    const save = calls.find((c) => c.cmd === "save_profile")!;
    expect(JSON.stringify(save.args)).not.toContain("s3cret"); // the profile never carries the token
    const signIn = calls.find((c) => c.cmd === "sign_in")!;
    expect(signIn.args).toEqual({ name: "work", token: "s3cret" });
    expect((form.elements.namedItem("token") as HTMLInputElement).value).toBe("");
    expect(q("profile-status").textContent).toContain("keychain");
    expect(q("profiles").textContent).toContain("signed in");
    expect((q("profile-select") as HTMLSelectElement).value).toBe("work");
  });

  it("shows a refused profile's error and keeps the form", async () => {
    const form = await submitProfile("bad", "http://nope", "t");
    expect(q("error-code").textContent).toBe("invalid_input");
    expect(calls.some((c) => c.cmd === "sign_in")).toBe(false);
    expect((form.elements.namedItem("name") as HTMLInputElement).value).toBe("bad");
  });

  it("reports a failed connect", async () => {
    current = overview({
      profiles: [profileView("w", "wss://x/ws")],
      selected: "w",
    });
    app.apply(current);
    (q("connect") as HTMLButtonElement).click();
    await tick();
    await tick();
    expect(q("error-code").textContent).toBe("not_signed_in");
  });

  it("appends log lines from the app", async () => {
    await emit("httvps://app", { type: "log", data: { at_ms: Date.now(), level: "error", code: "auth_failed", message: "Refused." } });
    await tick();
    const items = q("log").querySelectorAll("li");
    expect(items).toHaveLength(1);
    expect(items[0].textContent).toContain("auth_failed");
    expect((items[0] as HTMLElement).dataset.level).toBe("error");
  });

  it("saves fast connect with the other preferences", async () => {
    (q("tab-settings") as HTMLButtonElement).click();
    const box = q("settings-fast-connect") as HTMLInputElement;
    expect(box.checked).toBe(false);
    expect(root.querySelector("#fast-connect-hint")!.textContent).toContain("closed connection");
    expect(box.getAttribute("aria-describedby")).toBe("fast-connect-hint");
    box.click();
    (q("settings-save") as HTMLButtonElement).click();
    await tick();
    await tick();
    const save = calls.filter((c) => c.cmd === "set_preferences");
    expect(save).toHaveLength(1);
    expect(save[0].args).toEqual({
      prefs: { proxy_port: 1080, start_minimized: false, autostart: false, system_proxy: false, fast_connect: true },
    });
    expect(q("settings-status").textContent).toBe("Saved.");
    expect(box.checked).toBe(true);

    // The window shows the saved value, and can turn it off again.
    app.apply(overview({ preferences: { ...overview().preferences, fast_connect: false } }));
    expect(box.checked).toBe(false);
    app.apply(current);
    expect(box.checked).toBe(true);
    box.click();
    (q("settings-save") as HTMLButtonElement).click();
    await tick();
    await tick();
    const last = calls.filter((c) => c.cmd === "set_preferences").at(-1)!;
    expect((last.args.prefs as { fast_connect: boolean }).fast_connect).toBe(false);
  });

  it("moves between tabs with the arrow keys", () => {
    const tab = q("tab-streams");
    tab.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    expect(q("tab-log").getAttribute("aria-selected")).toBe("true");
    expect((root.querySelector("#panel-log") as HTMLElement).hidden).toBe(false);
    expect((root.querySelector("#panel-streams") as HTMLElement).hidden).toBe(true);
  });
});

describe("the shell", () => {
  const tabs = () => [...root.querySelectorAll<HTMLButtonElement>('#modes [role="tab"]')];
  const panel = (mode: string) => q(`mode-${mode}`);

  it("builds one tab per mode from the registry, Connect first and selected", () => {
    const nav = q("modes");
    expect(nav.getAttribute("role")).toBe("tablist");
    expect(tabs().map((t) => t.dataset.testid)).toEqual(["mode-tab-connect", "mode-tab-publish", "mode-tab-remote_access"]);
    expect(tabs().map((t) => t.textContent)).toEqual(["Connect", "Publish soon", "Remote access soon"]);
    expect(q("mode-tab-connect").getAttribute("aria-selected")).toBe("true");
    expect(q("mode-tab-connect").tabIndex).toBe(0);
    expect(q("mode-tab-publish").tabIndex).toBe(-1);
    for (const mode of ["connect", "publish", "remote_access"]) {
      expect(panel(mode).getAttribute("role")).toBe("tabpanel");
      expect(panel(mode).getAttribute("aria-labelledby")).toBe(`mode-tab-${mode}`);
      expect(q(`mode-tab-${mode}`).getAttribute("aria-controls")).toBe(`mode-${mode}`);
    }
    expect(panel("connect").hidden).toBe(false);
    expect(panel("publish").hidden).toBe(true);
    expect(panel("remote_access").hidden).toBe(true);
    // The Connect panel holds today's window.
    expect(panel("connect").contains(q("state"))).toBe(true);
    expect(panel("connect").contains(q("profile-form"))).toBe(true);
  });

  it("shows each upcoming protocol's title and summary as not available yet", () => {
    const card = (mode: string, id: string) =>
      panel(mode).querySelector(`[data-protocol="${id}"]`) as HTMLElement;
    const hlhv = card("publish", "hlhv");
    expect(hlhv.querySelector("h3")!.textContent).toBe("HLHV");
    expect(hlhv.textContent).toContain("Publish a local web app through a queen");
    expect(hlhv.querySelector('[data-testid="not-available"]')!.textContent).toContain("not available yet");
    const relay = card("remote_access", "relay");
    expect(relay.querySelector("h3")!.textContent).toBe("Relay");
    expect(relay.textContent).toContain("not available yet");
    // Each panel shows its own mode's protocols only.
    expect(panel("publish").querySelectorAll("[data-protocol]")).toHaveLength(1);
    expect(panel("remote_access").querySelectorAll("[data-protocol]")).toHaveLength(1);

    // Once available, the note goes: the Publish panel itself is usable.
    expect((q("publish-demo") as HTMLButtonElement).disabled).toBe(true);
    app.apply(overview({ protocols: PROTOCOLS.map((p) => (p.id === "hlhv" ? { ...p, available: true } : p)) }));
    expect(card("publish", "hlhv")).toBeNull();
    expect((q("publish-demo") as HTMLButtonElement).disabled).toBe(false);
    expect(q("mode-tab-publish").textContent).toBe("Publish");
  });

  it("switches panels by click and with the arrow, Home and End keys", () => {
    q("mode-tab-publish").click();
    expect(q("mode-tab-publish").getAttribute("aria-selected")).toBe("true");
    expect(q("mode-tab-connect").getAttribute("aria-selected")).toBe("false");
    expect(panel("publish").hidden).toBe(false);
    expect(panel("connect").hidden).toBe(true);

    q("mode-tab-publish").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    expect(panel("remote_access").hidden).toBe(false);
    expect(document.activeElement).toBe(q("mode-tab-remote_access"));
    q("mode-tab-remote_access").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    expect(panel("connect").hidden).toBe(false);
    q("mode-tab-connect").dispatchEvent(new KeyboardEvent("keydown", { key: "End" }));
    expect(q("mode-tab-remote_access").getAttribute("aria-selected")).toBe("true");
    q("mode-tab-remote_access").dispatchEvent(new KeyboardEvent("keydown", { key: "Home" }));
    expect(q("mode-tab-connect").getAttribute("aria-selected")).toBe("true");
    expect(app.shell.mode).toBe("connect");

    // The Connect panel's own tabs don't move the navigation.
    q("tab-streams").dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight" }));
    expect(q("tab-log").getAttribute("aria-selected")).toBe("true");
    expect(q("mode-tab-connect").getAttribute("aria-selected")).toBe("true");
  });

  it("has no tab for a mode without protocols and keeps the selection when it can", () => {
    q("mode-tab-publish").click();
    app.apply(overview({ protocols: PROTOCOLS.filter((p) => p.mode !== "remote_access") }));
    expect(tabs().map((t) => t.textContent)).toEqual(["Connect", "Publish soon"]);
    expect(app.shell.mode).toBe("publish");
    app.apply(overview({ protocols: PROTOCOLS.filter((p) => p.mode === "connect") }));
    expect(tabs().map((t) => t.textContent)).toEqual(["Connect"]);
    expect(app.shell.mode).toBe("connect");
    expect(panel("connect").hidden).toBe(false);
    expect(panel("publish").hidden).toBe(true);
  });
});

describe("the profile form", () => {
  const radio = (id: string) => q(`profile-protocol-${id}`) as HTMLInputElement;

  it("offers the connect-mode protocols, the unavailable ones disabled", () => {
    const choice = q("profile-protocols");
    expect(choice.hidden).toBe(false);
    const offered = [...choice.querySelectorAll<HTMLInputElement>('input[name="protocol"]')].map((r) => r.value);
    expect(offered).toEqual(["httvps", "future", "ht"]);
    expect(radio("httvps").checked).toBe(true);
    expect(radio("httvps").disabled).toBe(false);
    expect(radio("future").disabled).toBe(true);
    expect(radio("future").closest("label")!.textContent).toContain("not available yet");
    for (const id of ["httvps", "ht"]) {
      expect(radio(id).disabled).toBe(false);
      expect(radio(id).closest("label")!.textContent).not.toContain("not available yet");
    }
    expect(radio("ht").closest("label")!.textContent).toContain("HT");
    expect(radio("ht").closest("label")!.textContent).toContain("TCP · UDP · remote DNS");
    // HTTVPS's fields.
    for (const id of ["profile-server", "profile-device", "profile-region", "profile-ca", "profile-pin", "profile-sni"]) {
      expect(q(id)).not.toBeNull();
    }
    expect((q("profile-save") as HTMLButtonElement).disabled).toBe(false);
  });

  it("sends the protocol with the profile and lists it with its title", async () => {
    (q("tab-profiles") as HTMLButtonElement).click();
    (q("profile-sni") as HTMLInputElement).value = "gw.example";
    await submitProfile("work", "wss://gw.example/ws", "s3cret");
    const save = calls.find((c) => c.cmd === "save_profile")!;
    expect(save.args).toEqual({
      input: {
        name: "work",
        protocol: "httvps",
        kind: "gateway",
        server: "wss://gw.example/ws",
        sni: "gw.example",
        transport: "h1",
      },
    });
    const item = q("profiles").querySelector('[data-profile="work"]') as HTMLElement;
    expect(item.querySelector(".tag")!.textContent).toBe("HTTVPS");
    expect((q("profile-select") as HTMLSelectElement).selectedOptions[0].textContent).toBe("work · HTTVPS");
    // The form is reset to the default protocol with its fields.
    expect(radio("httvps").checked).toBe(true);
    expect((q("profile-sni") as HTMLInputElement).value).toBe("");
  });

  it("shows a control plane's device fields only when chosen", async () => {
    const form = q("profile-form") as HTMLFormElement;
    const device = q("profile-device").closest("label") as HTMLElement;
    expect(device.hidden).toBe(true);
    const controlPlane = form.querySelector('input[name="kind"][value="control_plane"]') as HTMLInputElement;
    controlPlane.checked = true;
    form.dispatchEvent(new Event("change"));
    expect(device.hidden).toBe(false);
    (q("profile-device") as HTMLInputElement).value = "laptop";
    (q("profile-region") as HTMLInputElement).value = "eu";
    await submitProfile("cp", "wss://api.example", "t");
    const input = calls.find((c) => c.cmd === "save_profile")!.args.input as Record<string, unknown>;
    expect(input).toMatchObject({ protocol: "httvps", kind: "control_plane", device_id: "laptop", region: "eu" });
  });

  it("offers the transport, HTTP/1.1 by default, and saves the choice", async () => {
    (q("tab-profiles") as HTMLButtonElement).click();
    const select = q("profile-transport") as HTMLSelectElement;
    expect(select.tagName).toBe("SELECT");
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([
      ["h1", "HTTP/1.1 (TCP)"],
      ["h3", "HTTP/3 (QUIC)"],
      ["auto", "Automatic"],
    ]);
    expect(select.value).toBe("h1");
    expect(select.closest("label")!.textContent).toContain("Transport");
    const hint = root.querySelector(`#${select.getAttribute("aria-describedby")}`)!;
    expect(hint.textContent).toContain("UDP");
    expect(hint.textContent).toContain("falls back to HTTP/1.1");

    select.value = "h3";
    await submitProfile("quic", "wss://gw.example/ws", "t");
    const input = calls.find((c) => c.cmd === "save_profile")!.args.input as Record<string, unknown>;
    expect(input).toMatchObject({ protocol: "httvps", kind: "gateway", transport: "h3" });
    const item = q("profiles").querySelector('[data-profile="quic"]') as HTMLElement;
    expect(item.querySelector('[data-testid="profile-detail"]')!.textContent).toBe(
      "wss://gw.example/ws · HTTP/3 (QUIC) · signed in (token in keychain)",
    );
    // The form is reset to the default for the next profile.
    expect((q("profile-transport") as HTMLSelectElement).value).toBe("h1");

    // Automatic, with a control plane too.
    const form = q("profile-form") as HTMLFormElement;
    (form.querySelector('input[name="kind"][value="control_plane"]') as HTMLInputElement).checked = true;
    form.dispatchEvent(new Event("change"));
    (q("profile-device") as HTMLInputElement).value = "laptop";
    (q("profile-transport") as HTMLSelectElement).value = "auto";
    await submitProfile("either", "wss://api.example", "t");
    const last = calls.filter((c) => c.cmd === "save_profile").at(-1)!.args.input as Record<string, unknown>;
    expect(last).toMatchObject({ kind: "control_plane", device_id: "laptop", transport: "auto" });
    expect(q("profiles").textContent).toContain("Automatic");
  });

  it("has no transport choice for HT", () => {
    (q("profile-protocol-ht") as HTMLInputElement).click();
    expect(q("profile-transport")).toBeNull();
    (q("profile-protocol-httvps") as HTMLInputElement).click();
    expect((q("profile-transport") as HTMLSelectElement).value).toBe("h1");
  });

  it("cannot save when no connect protocol is available", () => {
    app.apply(overview({ protocols: PROTOCOLS.map((p) => ({ ...p, available: false })) }));
    expect((q("profile-save") as HTMLButtonElement).disabled).toBe(true);
    expect(q("profile-unusable").hidden).toBe(false);
    expect(q("profile-server")).toBeNull();
  });
});

describe("HT profiles", () => {
  const KEY = "0123456789abcdef".repeat(4);
  const chooseHt = () => (q("profile-protocol-ht") as HTMLInputElement).click();
  const field = (name: string) => (q("profile-form") as HTMLFormElement).elements.namedItem(name) as HTMLInputElement;
  const commands = () => calls.map((c) => c.cmd).filter((c) => c !== "overview" && c !== "watch_streams");

  it("shows HT's fields and asks for a key instead of a token", () => {
    expect(q("profile-secret-label").textContent).toBe("Token");
    chooseHt();
    expect(q("profile-secret-label").textContent).toBe("Key (64 hex characters)");
    expect((q("profile-server") as HTMLInputElement).placeholder).toBe("https://ht.example:8443");
    const connections = q("profile-connections") as HTMLInputElement;
    expect([connections.type, connections.min, connections.max, connections.placeholder]).toEqual(["number", "1", "64", "4"]);
    expect((q("profile-dns") as HTMLInputElement).placeholder).toBe("127.0.0.1:5353");
    expect(q("profile-dns").closest("label")!.textContent).toContain("Serve DNS through the tunnel");
    for (const id of ["profile-ca", "profile-pin", "profile-sni"]) expect(q(id)).not.toBeNull();
    expect(q("profile-device")).toBeNull(); // HTTVPS's control plane is not offered
    // Back to HTTVPS: a token again.
    (q("profile-protocol-httvps") as HTMLInputElement).click();
    expect(q("profile-secret-label").textContent).toBe("Token");
    expect(q("profile-connections")).toBeNull();
  });

  it("saves an HT profile and hands its key to the keychain through sign_in", async () => {
    chooseHt();
    field("pin_sha256").value = "ab".repeat(32);
    field("connections").value = "6";
    field("dns_listen").value = "127.0.0.1:5353";
    const form = await submitProfile("home", "https://ht.example:8443", KEY);
    expect(commands()).toEqual(["save_profile", "sign_in"]);
    const save = calls.find((c) => c.cmd === "save_profile")!;
    expect(save.args).toEqual({
      input: {
        name: "home",
        protocol: "ht",
        kind: "preshared_key",
        server: "https://ht.example:8443",
        pin_sha256: "ab".repeat(32),
        connections: 6,
        dns_listen: "127.0.0.1:5353",
      },
    });
    expect(JSON.stringify(save.args)).not.toContain(KEY); // the profile never carries the key
    expect(calls.find((c) => c.cmd === "sign_in")!.args).toEqual({ name: "home", token: KEY });
    expect((form.elements.namedItem("token") as HTMLInputElement).value).toBe("");
    expect(q("profile-status").textContent).toBe("Profile “home” saved; its key is in the system keychain.");
    const item = q("profiles").querySelector('[data-profile="home"]') as HTMLElement;
    expect(item.querySelector(".tag")!.textContent).toBe("HT");
    expect(item.querySelector('[data-testid="profile-detail"]')!.textContent).toBe(
      "https://ht.example:8443 · 6 connections · DNS on 127.0.0.1:5353 · key in keychain",
    );
    expect(item.querySelector('[data-testid="sign-out"]')!.textContent).toBe("Forget key");
    expect((q("profile-select") as HTMLSelectElement).selectedOptions[0].textContent).toBe("home · HT");
    // The form is back to the default protocol, asking for a token.
    expect((q("profile-protocol-httvps") as HTMLInputElement).checked).toBe(true);
    expect(q("profile-secret-label").textContent).toBe("Token");
  });

  it("leaves connections and DNS out when blank", async () => {
    chooseHt();
    await submitProfile("plain", "https://ht.example", KEY.toUpperCase());
    const input = calls.find((c) => c.cmd === "save_profile")!.args.input as Record<string, unknown>;
    expect(input.connections).toBeUndefined();
    expect(input.dns_listen).toBeUndefined();
    expect(input).toMatchObject({ protocol: "ht", kind: "preshared_key", server: "https://ht.example" });
    expect(q("profiles").textContent).toContain("https://ht.example · 4 connections · key in keychain");
  });

  it("refuses a key that is not 64 hex characters before any call", async () => {
    chooseHt();
    await submitProfile("home", "https://ht.example:8443", "abc123");
    expect(commands()).toEqual([]);
    expect(q("profile-status").textContent).toContain("64 hexadecimal characters");
    expect(q("profile-status").textContent).toContain("this one has 6");
    expect(field("token").getAttribute("aria-invalid")).toBe("true");
    expect(field("name").value).toBe("home"); // the form is kept

    await submitProfile("home", "https://ht.example:8443", "g".repeat(64));
    expect(commands()).toEqual([]);
    expect(q("profile-status").textContent).toContain("other characters");

    // Typing clears the mark; a good key then goes through.
    field("token").dispatchEvent(new Event("input"));
    expect(field("token").hasAttribute("aria-invalid")).toBe(false);
    await submitProfile("home", "https://ht.example:8443", KEY);
    expect(commands()).toEqual(["save_profile", "sign_in"]);
  });

  it("warns inline that a plain http:// URL has no TLS", async () => {
    chooseHt();
    const warning = q("profile-insecure");
    const server = q("profile-server") as HTMLInputElement;
    expect(warning.hidden).toBe(true);
    server.value = "http://ht.example:8080";
    server.dispatchEvent(new Event("input", { bubbles: true }));
    expect(warning.hidden).toBe(false);
    expect(warning.textContent).toContain("no TLS");
    expect(warning.textContent).toContain("no integrity");
    server.value = "https://ht.example:8443";
    server.dispatchEvent(new Event("input", { bubbles: true }));
    expect(warning.hidden).toBe(true);
    server.value = " HTTP://ht.example";
    server.dispatchEvent(new Event("input", { bubbles: true }));
    expect(warning.hidden).toBe(false);

    // Saved anyway (the app allows it), the list still says so.
    await submitProfile("lan", "http://ht.lan:8080", KEY);
    expect(calls.some((c) => c.cmd === "sign_in")).toBe(true);
    expect(q("profiles").textContent).toContain("http://ht.lan:8080 · no TLS · 4 connections · key in keychain");
    // After the reset, nothing warns about the next profile.
    chooseHt();
    expect(q("profile-insecure").hidden).toBe(true);
  });

  it("lists an HT profile without its key as such", () => {
    app.apply(overview({
      profiles: [profileView("home", "https://ht.example:8443", { protocol: "ht", kind: "preshared_key", connections: 4 })],
      selected: "home",
    }));
    expect(q("profiles").textContent).toContain("https://ht.example:8443 · 4 connections · no key stored");
    expect((q("profile-select") as HTMLSelectElement).selectedOptions[0].textContent).toBe("home · HT (no key stored)");
    expect((q("sign-out") as HTMLButtonElement).disabled).toBe(true);
  });
});

describe("the stream table's protocol column", () => {
  const cell = (key: number, col: string) =>
    q("streams").querySelector(`tr[data-key="${key}"] [data-col="${col}"]`)!.textContent;

  it("shows how each row reached the proxy: SOCKS5, HTTP, UDP or DNS", async () => {
    const headers = [...q("streams").querySelectorAll("thead th")].map((th) => th.textContent);
    expect(headers[0]).toBe("Protocol");
    await engine({ type: "stream_opened", data: stream(1, { protocol: "socks5" }) });
    await engine({ type: "stream_opened", data: stream(2, { protocol: "http-connect" }) });
    await engine({ type: "stream_opened", data: stream(3, { protocol: "socks5-udp", target: "udp (any target)" }) });
    await engine({ type: "stream_opened", data: stream(4, { protocol: "dns", target: "example.com A" }) });
    await engine({ type: "stream_opened", data: stream(5, { protocol: "http_forward" }) });
    await engine({ type: "stream_opened", data: stream(6, { protocol: "quic" }) });
    expect([1, 2, 3, 4, 5, 6].map((k) => cell(k, "protocol"))).toEqual(["SOCKS5", "HTTP", "UDP", "DNS", "HTTP", "quic"]);
    expect(cell(4, "target")).toBe("example.com A");
    // One header per cell.
    const row = q("streams").querySelector('tr[data-key="4"]')!;
    expect(row.children).toHaveLength(headers.length);
    expect((row as HTMLElement).dataset.protocol).toBe("dns");

    // A DNS query that ends stays labelled as one.
    await engine({ type: "stream_closed", data: stream(4, { protocol: "dns", state: "closed", close_reason: "answered" }) });
    expect(cell(4, "protocol")).toBe("DNS");
    expect(cell(4, "reason")).toBe("answered");
  });
});

describe("errors", () => {
  it("says what to do after an engine error, by its code", async () => {
    await engine({ type: "error", data: { code: "auth_failed", message: "the token was refused" } });
    expect(q("error-hint").textContent).toContain("Sign in again");
    const action = q("error-action") as HTMLButtonElement;
    expect(action.hidden).toBe(false);
    action.click();
    expect(q("tab-profiles").getAttribute("aria-selected")).toBe("true");

    await engine({ type: "error", data: { code: "session_lost", message: "gone" } });
    expect(q("error-hint").textContent).toContain("reconnect");
    expect((q("error-action") as HTMLButtonElement).hidden).toBe(true);
  });

  it("shows a command's own code without a hint", async () => {
    await submitProfile("bad", "http://nope", "t");
    expect(q("error-code").textContent).toBe("invalid_input");
    expect(q("error-hint").hidden).toBe(true);
  });
});

describe("the stream table's tools (filter, close, export) and routing columns", () => {
  const rows = () => [...q("streams").querySelectorAll<HTMLTableRowElement>("tbody tr")];
  const visibleKeys = () => rows().filter((r) => !r.hidden).map((r) => r.dataset.key);
  const cellOf = (key: number, col: string) =>
    q("streams").querySelector<HTMLElement>(`tr[data-key="${key}"] [data-col="${col}"]`)!;
  const search = async (text: string) => {
    const box = q("streams-search") as HTMLInputElement;
    box.value = text;
    box.dispatchEvent(new Event("input"));
    await tick();
  };

  async function fill() {
    await engine({ type: "stream_opened", data: stream(1, { target: "corp.example:443", route: "direct", rule: "rule 2: domain-suffix corp.example → direct" }) });
    await engine({ type: "stream_opened", data: stream(2, { target: "127.0.0.1:2967", protocol: "http-connect", route: "tunnel", rule: "default → tunnel" }) });
    await engine({ type: "stream_opened", data: stream(3, { target: "example.com A", protocol: "dns" }) });
    await engine({ type: "stream_closed", data: stream(4, { target: "ads.example:443", state: "closed", close_reason: "blocked by the routing rules (rule 1: domain ads.example → block)", route: "block", rule: "rule 1: domain ads.example → block" }) });
  }

  it("shows the route and the rule compactly, the whole rule on hover", async () => {
    await fill();
    const headers = [...q("streams").querySelectorAll("thead th")].map((th) => th.textContent);
    expect(headers.slice(0, 4)).toEqual(["Protocol", "Target", "Route", "Rule"]);
    expect(cellOf(1, "route").textContent).toBe("direct");
    expect(cellOf(1, "rule").textContent).toBe("rule 2");
    expect(cellOf(1, "rule").title).toBe("rule 2: domain-suffix corp.example → direct");
    expect(cellOf(2, "route").textContent).toBe("tunnel");
    expect(cellOf(2, "rule").textContent).toBe("default");
    // Rows the rules do not judge (DNS) have neither.
    expect(cellOf(3, "route").textContent).toBe("—");
    expect(cellOf(3, "rule").textContent).toBe("—");
    expect(cellOf(3, "rule").title).toBe("");
    expect(rows().find((r) => r.dataset.key === "4")!.dataset.route).toBe("block");
  });

  it("never breaks an address inside host:port", async () => {
    // The app's own style sheet, as the window loads it.
    const style = document.createElement("style");
    style.textContent = readFileSync(`${__dirname}/style.css`, "utf8");
    document.head.appendChild(style);
    try {
      await fill();
      const target = cellOf(2, "target");
      expect(target.textContent).toBe("127.0.0.1:2967");
      expect(getComputedStyle(target).whiteSpace).toBe("nowrap");
      // The wrapper scrolls sideways instead.
      expect(getComputedStyle(target.closest(".table-wrap")!).overflowX).toBe("auto");
    } finally {
      style.remove();
    }
  });

  it("filters by target, protocol, route, rule or state, and hides closed rows", async () => {
    await fill();
    expect(visibleKeys()).toEqual(["3", "2", "1", "4"]);
    expect(q("streams-count").textContent).toBe("4 of 4");
    const kept = rows()[1];

    await search("CORP");
    expect(visibleKeys()).toEqual(["1"]);
    expect(q("streams-count").textContent).toBe("1 of 4");
    await search("http");
    expect(visibleKeys()).toEqual(["2"]);
    await search("block");
    expect(visibleKeys()).toEqual(["4"]);
    await search("default");
    expect(visibleKeys()).toEqual(["2"]);
    await search("closed");
    expect(visibleKeys()).toEqual(["4"]);
    // Every word must match somewhere.
    await search("direct  rule 2");
    expect(visibleKeys()).toEqual(["1"]);
    await search("nothing.example");
    expect(visibleKeys()).toEqual([]);
    expect(q("streams-count").textContent).toBe("0 of 4");

    await search("");
    const hide = q("streams-hide-closed") as HTMLInputElement;
    hide.checked = true;
    hide.dispatchEvent(new Event("change"));
    await tick();
    expect(visibleKeys()).toEqual(["3", "2", "1"]);
    expect(q("streams-count").textContent).toBe("3 of 4");

    // Updates keep the filter and the same elements (no redraw).
    await streams({
      open: [stream(1, { target: "corp.example:443", route: "direct", bytes_down: 9_000_000 }), stream(2, { target: "127.0.0.1:2967", protocol: "http-connect", route: "tunnel" }), stream(3, { target: "example.com A", protocol: "dns" })],
      totals: { streams_total: 3, streams_open: 3, bytes_up: 0, bytes_down: 0, rate_up: 0, rate_down: 0, connections: 1, slot_waits: 0, evictions: 0 },
    });
    expect(rows()[1]).toBe(kept);
    expect(cellOf(1, "down").textContent).toBe("9.0 MB");
    expect(visibleKeys()).toEqual(["3", "2", "1"]);
    // A row that closes while closed rows are hidden disappears from view.
    await engine({ type: "stream_closed", data: stream(2, { target: "127.0.0.1:2967", state: "closed", close_reason: "eof" }) });
    expect(visibleKeys()).toEqual(["3", "1"]);
    expect(q("streams-count").textContent).toBe("2 of 4");
  });

  it("closes one connection with its row's key from the ×, on open rows only", async () => {
    await fill();
    const button = (key: number) => q("streams").querySelector<HTMLButtonElement>(`tr[data-key="${key}"] button.row-close`)!;
    expect(button(2).hidden).toBe(false);
    expect(button(2).getAttribute("aria-label")).toBe("Close the connection to 127.0.0.1:2967");
    expect(button(4).hidden).toBe(true);
    button(2).click();
    await tick();
    expect(calls.filter((c) => c.cmd === "close_stream")).toEqual([{ cmd: "close_stream", args: { key: 2 } }]);
    expect(button(2).disabled).toBe(true);
    // The row then closes through the usual event; the × goes.
    await engine({ type: "stream_closed", data: stream(2, { state: "closed", close_reason: "closed from the app" }) });
    expect(button(2).hidden).toBe(true);
    expect(cellOf(2, "reason").textContent).toBe("closed from the app");
    expect(q("error").hidden).toBe(true);
  });

  it("says so when closing fails, but not when the row had ended already", async () => {
    await fill();
    mockIPC((cmd) => {
      if (cmd === "close_stream") throw { code: "not_found", message: "connection 1 is not open (it has ended already)" };
      return current;
    });
    const button = q("streams").querySelector<HTMLButtonElement>('tr[data-key="1"] button.row-close')!;
    button.click();
    await tick();
    expect(q("error").hidden).toBe(true);
    expect(button.disabled).toBe(false);
    mockIPC((cmd) => {
      if (cmd === "close_stream") throw { code: "engine", message: "it broke" };
      return current;
    });
    button.click();
    await tick();
    expect(q("error").hidden).toBe(false);
    expect(q("error-message").textContent).toBe("it broke");
  });

  it("exports the table and the log through the app and shows where, with a copy button", async () => {
    const saved = { connections: "/home/me/Downloads/httvps-connections-20261207-113122.csv", log: "/home/me/Downloads/httvps-log-20261207-113122.txt", rows: 4, entries: 2 };
    mockIPC((cmd) => (cmd === "export_log" ? saved : current));
    expect(q("streams-exported").hidden).toBe(true);
    q("streams-export").click();
    await tick();
    expect(q("streams-exported").hidden).toBe(false);
    expect(q("streams-exported-csv").textContent).toBe(saved.connections);
    expect(q("streams-exported-log").textContent).toBe(saved.log);
    let copied = "";
    Object.defineProperty(navigator, "clipboard", { value: { writeText: async (t: string) => void (copied = t) }, configurable: true });
    q("streams-exported-copy").click();
    await tick();
    expect(copied).toBe(`${saved.connections}\n${saved.log}`);
    expect(q("streams-exported-copy").textContent).toBe("Copied");

    mockIPC((cmd) => {
      if (cmd === "export_log") throw { code: "unsupported", message: "this user has no home directory to save the export in" };
      return current;
    });
    q("streams-export").click();
    await tick();
    expect(q("error-message").textContent).toBe("this user has no home directory to save the export in");
    expect((q("streams-export") as HTMLButtonElement).disabled).toBe(false);
  });
});
