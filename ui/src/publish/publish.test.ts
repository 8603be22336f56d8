// The Publish panel: its pure parts (the request rows' parsing, the form's
// checks) and the panel in the window with Tauri's IPC mocked.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Channel } from "@tauri-apps/api/core";
import { App } from "../app";
import type { EngineEvent, Overview, ProfileInput, ProfileView, ProtocolInfo, SessionState, StreamInfo, StreamsUpdate } from "../bindings";
import { fromProfileView, toProfileInput, validatePublish, type PublishValues } from "./form";
import { parseOutcome, requestCells, splitTarget, statusClass } from "./requests";
import { publishStateLabel } from "./panel";
import { idleOverview } from "../test-fixtures";

const none = { streams: false, datagrams: false, dns: false };
const PROTOCOLS: ProtocolInfo[] = [
  { id: "httvps", title: "HTTVPS", summary: "Streams over a WebSocket", mode: "connect", carries: { ...none, streams: true }, available: true },
  { id: "hlhv", title: "HLHV", summary: "Publish a local web app through a queen", mode: "publish", carries: none, available: true },
];

function row(key: number, over: Partial<StreamInfo> = {}): StreamInfo {
  return {
    key,
    stream_id: "band-2",
    target: "GET /app/index.html",
    client: "203.0.113.7:51000",
    protocol: "inbound_http",
    started_unix: 1_700_000_000,
    ended_unix: null,
    bytes_up: 0,
    bytes_down: 0,
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

const VALID: PublishValues = {
  name: "site",
  queen: "queen.example:2001",
  mount: "demo.example/app/",
  to: "http://127.0.0.1:3000",
  ca_file: "",
  pin_sha256: "",
  sni: "",
  max_body_mib: "",
  public_url: "",
  key: "cell-secret",
};

describe("request rows", () => {
  it("parse the close reason STATUS in N ms, and nothing else", () => {
    expect(parseOutcome("200 in 12 ms")).toEqual({ status: 200, ms: 12 });
    expect(parseOutcome("502 in 3001 ms")).toEqual({ status: 502, ms: 3001 });
    expect(parseOutcome(null)).toBeNull();
    expect(parseOutcome("aborted")).toBeNull();
    expect(parseOutcome("200 in ms")).toBeNull();
    expect(parseOutcome("20 in 5 ms")).toBeNull();
  });

  it("split the target into method and path", () => {
    expect(splitTarget("POST /upload?x=1 2")).toEqual({ method: "POST", path: "/upload?x=1 2" });
    expect(splitTarget("/odd")).toEqual({ method: "", path: "/odd" });
    expect(statusClass(404)).toBe("4xx");
    expect(statusClass(null)).toBe("");
  });

  it("show status, bytes each way, duration and band", () => {
    const done = requestCells(row(1, { state: "closed", close_reason: "201 in 1500 ms", bytes_down: 2048, bytes_up: 10 }), 0);
    expect(done).toMatchObject({ method: "GET", path: "/app/index.html", status: "201", received: "2.0 kB", sent: "10 B", duration: "1.5 s", band: "band-2", client: "203.0.113.7:51000" });
    const open = requestCells(row(2), 1_700_000_000_250);
    expect(open.status).toBe("…");
    expect(open.duration).toBe("250 ms …");
    const broken = requestCells(row(3, { state: "closed", close_reason: "aborted", stream_id: null }), 0);
    expect(broken).toMatchObject({ status: "aborted", duration: "—", band: "—" });
  });
});

describe("the publication form's checks", () => {
  const errors = (over: Partial<PublishValues>, needKey = true) => validatePublish({ ...VALID, ...over }, needKey);

  it("accept a complete form and build the profile without the key", () => {
    expect(errors({})).toEqual({});
    const input = toProfileInput({ ...VALID, max_body_mib: "2", pin_sha256: " " + "ab".repeat(32) });
    expect(input).toEqual({
      name: "site",
      protocol: "hlhv",
      kind: "cell_key",
      server: "queen.example:2001",
      mount: "demo.example/app/",
      to: "http://127.0.0.1:3000",
      ca_file: undefined,
      pin_sha256: "ab".repeat(32),
      sni: undefined,
      max_body: 2 * 1024 * 1024,
      public_url: undefined,
    });
    expect(JSON.stringify(input)).not.toContain("cell-secret");
  });

  it("point at each bad field", () => {
    expect(Object.keys(errors({ name: "", queen: "", mount: "", to: "", key: "" })).sort()).toEqual(["key", "mount", "name", "queen", "to"]);
    expect(errors({ queen: "https://queen.example" }).queen).toContain("without a scheme");
    expect(errors({ queen: "queen.example:99999" }).queen).toContain("HOST:PORT");
    expect(errors({ queen: "[::1]:2001" }).queen).toBeUndefined();
    expect(errors({ mount: "https://demo.example/app/" }).mount).toContain("No scheme");
    expect(errors({ mount: "/app/" }).mount).toContain("HOST/PATH");
    expect(errors({ to: "https://127.0.0.1:3000" }).to).toContain("Only http://");
    expect(errors({ to: "http://127.0.0.1:3000/app" }).to).toContain("without a path");
    expect(errors({ to: "http://127.0.0.1:3000/" }).to).toBeUndefined();
    expect(errors({ pin_sha256: "abc" }).pin_sha256).toContain("64 hexadecimal");
    expect(errors({ max_body_mib: "0" }).max_body_mib).toBeDefined();
    expect(errors({ max_body_mib: "lots" }).max_body_mib).toBeDefined();
    expect(errors({ public_url: "demo.example" }).public_url).toContain("https://");
    expect(errors({ name: "a/b" }).name).toContain("/");
    // Editing a signed-in profile: the key may stay blank.
    expect(errors({ key: "" }, false)).toEqual({});
  });

  it("put a saved profile back, showing only a public URL of its own", () => {
    const view: ProfileView = {
      name: "site", protocol: "hlhv", kind: "cell_key", server: "q:2001", device_id: null, region: null, ca_file: null,
      pin_sha256: null, sni: null, connections: null, dns_listen: null, transport: null, mount: "d.example/app/",
      to: "http://127.0.0.1:3000", max_body: 3 * 1024 * 1024, public_url: "https://d.example/app/", tunnel: null, ports: null, signed_in: true,
    };
    expect(fromProfileView(view)).toMatchObject({ queen: "q:2001", max_body_mib: "3", public_url: "", key: "" });
    expect(fromProfileView({ ...view, public_url: "https://pretty.example/" }).public_url).toBe("https://pretty.example/");
  });

  it("name the states", () => {
    const reconnecting: SessionState = { state: "reconnecting", attempt: 2, max_attempts: 10, retry_in_secs: 1.5, last_error: "gone" };
    expect(publishStateLabel(reconnecting)).toBe("Reconnecting (attempt 2 of 10)");
    expect(publishStateLabel({ state: "disconnected", reason: "refused" })).toBe("Stopped (error)");
  });
});

// The panel in the window.

const SITE: ProfileView = {
  name: "site", protocol: "hlhv", kind: "cell_key", server: "queen.example:2001", device_id: null, region: null,
  ca_file: null, pin_sha256: null, sni: null, connections: null, dns_listen: null, transport: null,
  mount: "demo.example/app/", to: "http://127.0.0.1:3000", max_body: null, public_url: "https://demo.example/app/", tunnel: null, ports: null, signed_in: true,
};
const WORK: ProfileView = { ...SITE, name: "work", protocol: "httvps", kind: "gateway", server: "wss://gw.example/ws", mount: null, to: null, public_url: null, transport: "h1" };

const ACTIVE: SessionState = { state: "active", session_id: "cell-uuid-1", gateway: "queen.example:2001", max_streams: 0, since_unix: Math.floor(Date.now() / 1000) - 3 };

function overview(over: Partial<Overview> = {}): Overview {
  return idleOverview({
    protocols: PROTOCOLS,
    profiles: [SITE, WORK],
    selected: "work",
    system_proxy_available: false,
    ...over,
  });
}

const publishing = (state: SessionState = ACTIVE, endpoints = ["https://demo.example/app/"]) =>
  overview({
    connection: { kind: "publish", name: "site", queen: "queen.example:2001", mount: "demo.example/app/", to: "http://127.0.0.1:3000" },
    snapshot: { ...overview().snapshot, state, endpoints },
  });

let calls: { cmd: string; args: Record<string, unknown> }[];
let current: Overview;
let feed: Channel<StreamsUpdate> | null;
let root: HTMLElement;
let app: App;

const tick = () => new Promise((r) => setTimeout(r, 0));
const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;
const commands = () => calls.map((c) => c.cmd).filter((c) => c !== "overview" && c !== "watch_streams");
async function engine(event: EngineEvent) {
  await emit("httvps://engine", event);
  await tick();
}

beforeEach(async () => {
  calls = [];
  feed = null;
  current = overview();
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args: (args ?? {}) as Record<string, unknown> });
      switch (cmd) {
        case "watch_streams":
          feed = (args as { feed: Channel<StreamsUpdate> }).feed;
          return null;
        case "publish":
          current = publishing({ state: "authenticating", server: "queen.example:2001" }, []);
          return current;
        case "stop_publishing":
          current = overview();
          return current;
        case "save_profile": {
          const input = (args as { input: ProfileInput }).input;
          current = overview({ profiles: [{ ...SITE, name: input.name, signed_in: false }, WORK] });
          return current;
        }
        case "sign_in":
          current.profiles[0].signed_in = true;
          return current;
        case "start_publish_demo":
          throw { code: "already_running", message: "the tunnel is already running; disconnect first" };
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
  q("mode-tab-publish").click();
});

afterEach(() => {
  app.stop();
  clearMocks();
});

describe("the Publish panel", () => {
  it("lists publication profiles here and keeps them out of Connect", () => {
    const options = [...(q("publish-profile") as HTMLSelectElement).options].map((o) => o.value);
    expect(options).toEqual(["site"]);
    expect(q("publish-profiles").textContent).toContain("http://127.0.0.1:3000 → https://demo.example/app/ · queen queen.example:2001 · key in keychain");
    const connect = [...(q("profile-select") as HTMLSelectElement).options].map((o) => o.value);
    expect(connect).toEqual(["work"]);
    expect(q("profiles").querySelector('[data-profile="site"]')).toBeNull();
    expect(q("publish-state").textContent).toBe("Not published");
    expect(q("public-url").textContent).toBe("not published");
    expect((q("copy-public-url") as HTMLButtonElement).disabled).toBe(true);
  });

  it("publishes the chosen profile, shows the public URL, then stops", async () => {
    (q("publish-toggle") as HTMLButtonElement).click();
    await tick();
    expect(calls.find((c) => c.cmd === "publish")!.args).toEqual({ name: "site" });
    expect(q("publish-state").textContent).toBe("Connecting to the queen…");
    expect(q("publish-toggle").textContent).toBe("Stop publishing");
    expect(q("publish-demo").hidden).toBe(true);

    app.apply(publishing());
    expect(q("publish-state").textContent).toBe("Published");
    expect(q("public-url").textContent).toBe("https://demo.example/app/");
    expect((q("copy-public-url") as HTMLButtonElement).disabled).toBe(false);
    expect(q("publish-cell").textContent).toBe("cell-uuid-1");
    expect(q("publish-to").textContent).toBe("http://127.0.0.1:3000");
    // Connect says why it is off.
    expect((q("connect") as HTMLButtonElement).disabled).toBe(true);
    expect(q("state").textContent).toContain("being published");

    (q("publish-toggle") as HTMLButtonElement).click();
    await tick();
    expect(commands()).toEqual(["publish", "stop_publishing"]);
    expect(q("publish-toggle").textContent).toBe("Publish");
  });

  it("shows reconnect attempts with the last error", async () => {
    app.apply(publishing());
    const reconnecting: SessionState = { state: "reconnecting", attempt: 2, max_attempts: 10, retry_in_secs: 1.5, last_error: "the queen closed the leash" };
    // The app's overview agrees with the event (the window refetches it).
    current = publishing(reconnecting, []);
    await engine({ type: "state", data: reconnecting });
    await tick();
    expect(q("publish-state").textContent).toBe("Reconnecting (attempt 2 of 10)");
    expect(q("publish-state").dataset.state).toBe("reconnecting");
    const retry = q("publish-retry");
    expect(retry.hidden).toBe(false);
    expect(retry.textContent).toContain("the queen closed the leash");
    expect(retry.textContent).toContain("1.5 s");
    expect(q("public-url").textContent).toBe("not published");
  });

  it("logs requests live from the events and the stream channel, apart from Connect's streams", async () => {
    app.apply(publishing());
    await engine({ type: "stream_opened", data: row(7, { target: "POST /app/upload" }) });
    await engine({ type: "stream_opened", data: row(8, { protocol: "socks5", target: "example.com:443" }) });
    const cell = (key: number, col: string) => q("requests-body").querySelector(`tr[data-key="${key}"] [data-col="${col}"]`)?.textContent;
    expect(cell(7, "method")).toBe("POST");
    expect(cell(7, "path")).toBe("/app/upload");
    expect(cell(7, "status")).toBe("…");
    expect(cell(8, "method")).toBeUndefined(); // not a request
    expect(q("streams").querySelector('tr[data-key="7"]')).toBeNull(); // not a stream
    expect(q("streams").querySelector('tr[data-key="8"]')).not.toBeNull();
    expect(q("requests-open").textContent).toBe("1");

    feed!.onmessage({ open: [row(7, { target: "POST /app/upload", bytes_down: 5000 })], totals: overview().snapshot.totals });
    await tick();
    expect(cell(7, "received")).toBe("5.0 kB");

    await engine({ type: "stream_closed", data: row(7, { target: "POST /app/upload", state: "closed", bytes_down: 5000, bytes_up: 12, close_reason: "413 in 4 ms" }) });
    expect(cell(7, "status")).toBe("413");
    expect(cell(7, "duration")).toBe("4 ms");
    expect(cell(7, "sent")).toBe("12 B");
    expect((q("requests-body").querySelector('tr[data-key="7"]') as HTMLElement).dataset.status).toBe("4xx");
    expect(q("requests-answered").textContent).toBe("1");
    expect(q("requests-bytes").textContent).toBe("5.0 kB / 12 B");
    expect(q("requests-empty").hidden).toBe(true);
    const headers = [...q("requests").querySelectorAll("thead th")].map((th) => th.textContent);
    expect(headers).toEqual(["Time", "Method", "Path", "Status", "Received", "Sent", "Duration", "Band", "Client"]);
  });

  it("refuses a bad form in place and saves a good one with its key", async () => {
    const form = q("publish-form") as HTMLFormElement;
    const field = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
    field("name").value = "new";
    field("to").value = "https://127.0.0.1:3000";
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    expect(commands()).toEqual([]);
    expect(field("to").getAttribute("aria-invalid")).toBe("true");
    expect(field("queen").getAttribute("aria-invalid")).toBe("true");
    expect(form.querySelector('[data-error="to"]')!.textContent).toContain("Only http://");
    expect(field("name").hasAttribute("aria-invalid")).toBe(false);
    expect(q("publish-form-status").textContent).toContain("Not saved");

    for (const [k, v] of Object.entries({ to: "http://127.0.0.1:3000", queen: "queen.example:2001", mount: "demo.example/app/", key: "cell-secret" })) field(k).value = v;
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    await tick();
    expect(commands()).toEqual(["save_profile", "sign_in"]);
    const save = calls.find((c) => c.cmd === "save_profile")!.args.input as ProfileInput;
    expect(save).toMatchObject({ name: "new", protocol: "hlhv", kind: "cell_key", server: "queen.example:2001", to: "http://127.0.0.1:3000" });
    expect(JSON.stringify(save)).not.toContain("cell-secret");
    expect(calls.find((c) => c.cmd === "sign_in")!.args).toEqual({ name: "new", token: "cell-secret" });
    expect(field("key").value).toBe("");
    expect(q("publish-form-status").textContent).toContain("cell key is in the system keychain");
  });

  it("is off while a tunnel is connected, and shows the app's refusal of the demo", async () => {
    app.apply(overview({ connection: { kind: "profile", name: "work", transport: "h1" }, snapshot: { ...overview().snapshot, state: ACTIVE } }));
    expect(q("publish-state").textContent).toBe("Not published (a tunnel is connected)");
    expect((q("publish-toggle") as HTMLButtonElement).disabled).toBe(true);
    expect((q("publish-demo") as HTMLButtonElement).disabled).toBe(true);

    app.apply(overview());
    (q("publish-demo") as HTMLButtonElement).click();
    await tick();
    expect(commands()).toEqual(["start_publish_demo"]);
    expect(q("publish-error").hidden).toBe(false);
    expect(q("publish-error-code").textContent).toBe("already_running");
    expect(q("error").hidden).toBe(true); // not in the Connect panel's banner
  });
});
