// The Remote access panel: its pure parts (the form's checks, the status's
// words) and the panel in the window with Tauri's IPC mocked.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Channel } from "@tauri-apps/api/core";
import { App } from "../app";
import type { Overview, ProfileInput, ProfileView, ProtocolInfo, ShareStatus, StreamInfo, StreamsUpdate } from "../bindings";
import { fromProfileView, parsePorts, relayDetail, toProfileInput, validateRelay, type RelayValues } from "./form";
import { handshakeAge, isShareConnection, problemText, servicePort } from "./connections";
import { idleOverview } from "../test-fixtures";

const none = { streams: false, datagrams: false, dns: false };
const PROTOCOLS: ProtocolInfo[] = [
  { id: "httvps", title: "HTTVPS", summary: "Streams over a WebSocket", mode: "connect", carries: { ...none, streams: true }, available: true },
  { id: "relay", title: "Relay", summary: "Let colleagues reach this machine's ports over WireGuard", mode: "remote_access", carries: none, available: true },
];

const VALID: RelayValues = {
  name: "office",
  relay: "relay.example:8443",
  tunnel: "my-desk",
  ports: "22, 3389",
  ca_file: "",
  pin_sha256: "",
  sni: "",
  token: "eyJhbGciOi.jwt.sig",
};

const OFFICE: ProfileView = {
  name: "office", protocol: "relay", kind: "relay_token", server: "relay.example:8443", device_id: null, region: null,
  ca_file: null, pin_sha256: null, sni: null, connections: null, dns_listen: null, transport: null, mount: null, to: null,
  max_body: null, public_url: null, tunnel: "my-desk", ports: [22, 3389], signed_in: true,
};
const WORK: ProfileView = { ...OFFICE, name: "work", protocol: "httvps", kind: "gateway", server: "wss://gw.example/ws", tunnel: null, ports: null, transport: "h1" };

function status(over: Partial<ShareStatus> = {}): ShareStatus {
  return {
    relay: "relay.example:8443",
    state: "active",
    tunnel_id: "7c0e-tunnel",
    address: "10.0.0.7/32",
    forwards: [
      { port: 22, public: "relay.example:40022" },
      { port: 3389, public: "relay.example:43389" },
    ],
    bytes_in: 2048,
    bytes_out: 1_500_000,
    last_handshake_unix: Math.floor(Date.now() / 1000) - 12,
    open_connections: 1,
    attempt: null,
    retry_in_secs: null,
    error: null,
    ...over,
  };
}

function row(key: number, over: Partial<StreamInfo> = {}): StreamInfo {
  return {
    key,
    stream_id: `7c0e-tunnel#${key}`,
    target: "127.0.0.1:22",
    client: "10.0.0.1:51000",
    protocol: "inbound",
    started_unix: Math.floor(Date.now() / 1000) - 3,
    ended_unix: null,
    bytes_up: 300,
    bytes_down: 40,
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

describe("the relay form's checks", () => {
  const errors = (over: Partial<RelayValues>, needToken = true) => validateRelay({ ...VALID, ...over }, needToken);

  it("accept a complete form and build the profile without the token", () => {
    expect(errors({})).toEqual({});
    const input = toProfileInput({ ...VALID, ports: " 22 3389,8080 ", sni: " ", pin_sha256: "ab".repeat(32) });
    expect(input).toEqual({
      name: "office",
      protocol: "relay",
      kind: "relay_token",
      server: "relay.example:8443",
      tunnel: "my-desk",
      ports: [22, 3389, 8080],
      ca_file: undefined,
      pin_sha256: "ab".repeat(32),
      sni: undefined,
    });
    expect(JSON.stringify(input)).not.toContain("jwt");
  });

  it("point at each bad field", () => {
    expect(Object.keys(errors({ name: "", relay: "", tunnel: "", ports: "", token: "" })).sort()).toEqual(["name", "ports", "relay", "token", "tunnel"]);
    expect(errors({ relay: "https://relay.example" }).relay).toContain("without a scheme");
    expect(errors({ relay: "relay.example:0" }).relay).toContain("HOST:PORT");
    expect(errors({ relay: "[::1]:443" }).relay).toBeUndefined();
    expect(errors({ relay: "relay.example" }).relay).toBeUndefined();
    expect(errors({ tunnel: "my desk" }).tunnel).toContain("no spaces");
    expect(errors({ tunnel: "x".repeat(65) }).tunnel).toBeDefined();
    expect(errors({ pin_sha256: "abc" }).pin_sha256).toContain("64 hexadecimal");
    expect(errors({ token: "a\nb" }).token).toContain("printable");
    // Editing a signed-in profile: the token may stay blank.
    expect(errors({ token: "" }, false)).toEqual({});
  });

  it("read the ports the relay accepts, and say what is wrong with the others", () => {
    expect(parsePorts("22,3389")).toEqual([22, 3389]);
    expect(parsePorts("  ")).toContain("Enter the local ports");
    expect(parsePorts("22, 22")).toBe("Port 22 is listed twice.");
    expect(parsePorts("0")).toContain("not a port");
    expect(parsePorts("65536")).toContain("not a port");
    expect(parsePorts("ssh")).toContain("“ssh” is not a port");
    expect(parsePorts(Array.from({ length: 17 }, (_, i) => 1000 + i).join(","))).toContain("At most 16");
  });

  it("put a saved profile back and describe it", () => {
    expect(fromProfileView(OFFICE)).toMatchObject({ relay: "relay.example:8443", tunnel: "my-desk", ports: "22, 3389", token: "" });
    expect(relayDetail(OFFICE)).toBe("127.0.0.1:22, 127.0.0.1:3389 as my-desk · relay relay.example:8443 · token in keychain");
    expect(relayDetail({ ...OFFICE, signed_in: false, pin_sha256: "ab".repeat(32) })).toContain("pinned · no token stored");
  });
});

describe("a share's status in words", () => {
  it("gives the handshake's age, the problem and each connection's port", () => {
    expect(handshakeAge(1000, 1_012_400)).toBe("less than a minute ago");
    expect(handshakeAge(1000, 1_125_000)).toBe("2 min ago");
    expect(handshakeAge(null, 0)).toBe("never");
    expect(problemText(status())).toBe("");
    expect(problemText(status({ state: "reconnecting", attempt: 3, retry_in_secs: 2, error: "cannot reach the relay" }))).toBe(
      "cannot reach the relay. Trying again in 2.0 s (attempt 3).",
    );
    expect(problemText(status({ state: "disconnected", error: "The relay token has expired; sign in again." }))).toBe(
      "The relay token has expired; sign in again.",
    );
    expect(servicePort("127.0.0.1:3389")).toBe(3389);
    expect(servicePort("GET /x")).toBeNull();
    const ports = new Set([22]);
    expect(isShareConnection(row(1), ports)).toBe(true);
    expect(isShareConnection(row(2, { target: "127.0.0.1:80" }), ports)).toBe(false);
    expect(isShareConnection(row(3, { protocol: "socks5" }), ports)).toBe(false);
  });
});

// The panel in the window.

function overview(over: Partial<Overview> = {}): Overview {
  return idleOverview({
    protocols: PROTOCOLS,
    profiles: [OFFICE, WORK],
    selected: "work",
    system_proxy_available: false,
    ...over,
  });
}

const sharing = (share: ShareStatus = status(), name: string | null = "office") =>
  overview({
    connection: { kind: "share", name, relay: "relay.example:8443", tunnel: name ? "my-desk" : "demo", ports: [22, 3389] },
    share,
  });

let calls: { cmd: string; args: Record<string, unknown> }[];
let current: Overview;
let feed: Channel<StreamsUpdate> | null;
let root: HTMLElement;
let app: App;
let clipboard: ReturnType<typeof vi.fn>;

const tick = () => new Promise((r) => setTimeout(r, 0));
const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;
const commands = () => calls.map((c) => c.cmd).filter((c) => c !== "overview" && c !== "watch_streams");
async function shareEvent(data: ShareStatus) {
  await emit("httvps://app", { type: "share", data });
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
        case "share":
          current = sharing(status({ state: "authenticating", tunnel_id: null, address: null, forwards: [], bytes_in: 0, bytes_out: 0, last_handshake_unix: null, open_connections: 0 }));
          return current;
        case "share_demo":
          current = sharing(status({ state: "disconnected", tunnel_id: null, address: null, forwards: [] }), null);
          return current;
        case "stop_share":
          current = overview();
          return current;
        case "save_profile": {
          const input = (args as { input: ProfileInput }).input;
          current = overview({ profiles: [{ ...OFFICE, name: input.name, signed_in: false }, WORK] });
          return current;
        }
        case "sign_in":
          current.profiles[0].signed_in = true;
          return current;
        default:
          return current;
      }
    },
    { shouldMockEvents: true },
  );
  clipboard = vi.fn(() => Promise.resolve());
  Object.defineProperty(navigator, "clipboard", { value: { writeText: clipboard }, configurable: true });
  root = document.createElement("div");
  document.body.replaceChildren(root);
  app = new App(root);
  await app.start();
  q("mode-tab-remote_access").click();
});

afterEach(() => {
  app.stop();
  clearMocks();
});

describe("the Remote access panel", () => {
  it("lists Relay profiles here only and starts idle", () => {
    expect(q("mode-tab-remote_access").textContent).toBe("Remote access");
    const options = [...(q("share-profile") as HTMLSelectElement).options].map((o) => o.value);
    expect(options).toEqual(["office"]);
    expect(q("share-profiles").textContent).toContain("127.0.0.1:22, 127.0.0.1:3389 as my-desk");
    const connect = [...(q("profile-select") as HTMLSelectElement).options].map((o) => o.value);
    expect(connect).toEqual(["work"]);
    expect(q("share-state").textContent).toBe("Disconnected");
    expect(q("share-forwards").children).toHaveLength(0);
    expect(q("share-forwards-empty").hidden).toBe(false);
    expect(q("share-problem").hidden).toBe(true);
    expect((q("share-demo") as HTMLButtonElement).disabled).toBe(false);
    expect(q("share-toggle").textContent).toBe("Start sharing");
  });

  it("follows the demo through the seed's states to Active, with copyable forwards", async () => {
    (q("share-demo") as HTMLButtonElement).click();
    await tick();
    expect(calls.find((c) => c.cmd === "share_demo")!.args).toEqual({ ports: null });
    expect(q("share-toggle").textContent).toBe("Stop sharing");
    expect(q("share-demo").hidden).toBe(true);
    expect(q("share-tunnel").textContent).toBe("demo (demo)");

    const seen: string[] = [];
    for (const state of ["authenticating", "registered", "active"] as const) {
      await shareEvent(status({ state }));
      seen.push(q("share-state").textContent!);
    }
    expect(seen).toEqual(["Authenticating", "Registered", "Active"]);
    expect(q("share-state").dataset.state).toBe("active");
    expect(q("share-tunnel-id").textContent).toBe("7c0e-tunnel");
    expect(q("share-address").textContent).toBe("10.0.0.7/32");
    expect(q("share-handshake").textContent).toBe("less than a minute ago");
    expect(q("share-bytes").textContent).toBe("2.0 kB / 1.5 MB");
    expect(q("share-open").textContent).toBe("1");

    const forwards = [...q("share-forwards").querySelectorAll("li")];
    expect(forwards.map((li) => li.querySelector('[data-testid="forward-public"]')!.textContent)).toEqual([
      "relay.example:40022",
      "relay.example:43389",
    ]);
    expect(forwards[1].textContent).toContain("→ 127.0.0.1:3389");
    const copy = forwards[1].querySelector('[data-testid="copy-forward"]') as HTMLButtonElement;
    expect(copy.getAttribute("aria-label")).toBe("Copy the public address of port 3389");
    copy.click();
    await tick();
    expect(clipboard).toHaveBeenCalledWith("relay.example:43389");
    expect(copy.textContent).toBe("Copied");

    // Traffic alone updates the text in place: the same buttons stay.
    await shareEvent(status({ bytes_in: 9000 }));
    expect(q("share-forwards").querySelector('[data-testid="copy-forward"]')).toBe(forwards[0].querySelector("button"));
    expect(q("share-bytes").textContent).toBe("9.0 kB / 1.5 MB");
  });

  it("lists the live connections through each forward, apart from Connect's streams", async () => {
    app.apply(sharing());
    await emit("httvps://engine", { type: "stream_opened", data: row(7) });
    await emit("httvps://engine", { type: "stream_opened", data: row(8, { target: "127.0.0.1:80" }) });
    await emit("httvps://engine", { type: "stream_opened", data: row(9, { protocol: "socks5", target: "example.com:443" }) });
    await tick();
    const cell = (key: number, col: string) => q("share-connections-body").querySelector(`tr[data-key="${key}"] [data-col="${col}"]`)?.textContent;
    expect(cell(7, "port")).toBe("22");
    expect(cell(7, "public")).toBe("relay.example:40022");
    expect(cell(7, "id")).toBe("7c0e-tunnel#7");
    expect(cell(7, "received")).toBe("40 B");
    expect(cell(7, "sent")).toBe("300 B");
    expect(cell(8, "port")).toBeUndefined(); // not a shared port
    expect(cell(9, "port")).toBeUndefined(); // outbound
    expect(q("streams").querySelector('tr[data-key="7"]')).toBeNull();
    expect(q("share-forwards").querySelector('li[data-port="22"] [data-testid="forward-open"]')!.textContent).toBe("1 open");

    feed!.onmessage({ open: [row(7, { bytes_up: 5000 })], totals: overview().snapshot.totals });
    await tick();
    expect(cell(7, "sent")).toBe("5.0 kB");
    await emit("httvps://engine", { type: "stream_closed", data: row(7, { state: "closed", bytes_up: 5000, close_reason: "closed by the peer" }) });
    await tick();
    expect(cell(7, "state")).toBe("closed");
    expect(cell(7, "reason")).toBe("closed by the peer");
    expect(q("share-forwards").querySelector('li[data-port="22"] [data-testid="forward-open"]')!.textContent).toBe("");
    expect(q("share-connections-empty").hidden).toBe(true);
  });

  it("says why while reconnecting and after the share ended", async () => {
    app.apply(sharing());
    await shareEvent(status({ state: "reconnecting", attempt: 3, retry_in_secs: 2, error: "cannot reach the relay at relay.example:8443" }));
    expect(q("share-state").textContent).toBe("Reconnecting");
    expect(q("share-state").dataset.state).toBe("reconnecting");
    const problem = q("share-problem");
    expect(problem.hidden).toBe(false);
    expect(problem.textContent).toBe("cannot reach the relay at relay.example:8443. Trying again in 2.0 s (attempt 3).");
    // The relay keeps the forwards while the tunnel resumes.
    expect(q("share-forwards").children).toHaveLength(2);

    const ended = status({ state: "disconnected", forwards: [], error: "The relay token has expired; sign in again (1003 TOKEN_EXPIRED)" });
    current = overview({ share: ended });
    app.apply(current);
    expect(q("share-state").textContent).toBe("Disconnected");
    expect(q("share-state").dataset.state).toBe("error");
    expect(problem.textContent).toBe("The relay token has expired; sign in again (1003 TOKEN_EXPIRED).");
    expect(q("share-forwards").children).toHaveLength(0);
    expect(q("share-handshake").textContent).toBe("—");
    expect(q("share-toggle").textContent).toBe("Start sharing");
  });

  it("starts the chosen profile and stops it", async () => {
    (q("share-toggle") as HTMLButtonElement).click();
    await tick();
    expect(calls.find((c) => c.cmd === "share")!.args).toEqual({ name: "office" });
    expect(q("share-state").textContent).toBe("Authenticating");
    expect(q("share-tunnel").textContent).toBe("my-desk");
    expect((q("share-profile") as HTMLSelectElement).disabled).toBe(true);
    // Connect says why it is off.
    expect((q("connect") as HTMLButtonElement).disabled).toBe(true);
    expect(q("state").textContent).toBe("Disconnected (this computer's ports are being shared)");

    (q("share-toggle") as HTMLButtonElement).click();
    await tick();
    expect(commands()).toEqual(["share", "stop_share"]);
    expect(q("share-state").textContent).toBe("Disconnected");
    expect(q("share-toggle").textContent).toBe("Start sharing");
  });

  it("refuses a bad form in place and saves a good one with its token", async () => {
    const form = q("share-form") as HTMLFormElement;
    const field = (name: string) => form.elements.namedItem(name) as HTMLInputElement;
    field("name").value = "home";
    field("ports").value = "22, ssh";
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    expect(commands()).toEqual([]);
    expect(field("ports").getAttribute("aria-invalid")).toBe("true");
    expect(field("relay").getAttribute("aria-invalid")).toBe("true");
    expect(form.querySelector('[data-error="ports"]')!.textContent).toContain("“ssh” is not a port");
    expect(field("name").hasAttribute("aria-invalid")).toBe(false);
    expect(q("share-form-status").textContent).toContain("Not saved");

    for (const [k, v] of Object.entries({ ports: "22", relay: "relay.example", tunnel: "home-pc", token: "secret.jwt.token" })) field(k).value = v;
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    await tick();
    expect(commands()).toEqual(["save_profile", "sign_in"]);
    const save = calls.find((c) => c.cmd === "save_profile")!.args.input as ProfileInput;
    expect(save).toMatchObject({ name: "home", protocol: "relay", kind: "relay_token", server: "relay.example", tunnel: "home-pc", ports: [22] });
    expect(JSON.stringify(save)).not.toContain("secret.jwt.token");
    expect(calls.find((c) => c.cmd === "sign_in")!.args).toEqual({ name: "home", token: "secret.jwt.token" });
    expect(field("token").value).toBe("");
    expect(q("share-form-status").textContent).toContain("relay token is in the system keychain");
  });

  it("is off while a tunnel is connected, and shows the app's refusals in its own banner", async () => {
    app.apply(overview({ connection: { kind: "profile", name: "work", transport: "h1" } }));
    expect(q("share-state").textContent).toBe("Disconnected (a tunnel is connected)");
    expect((q("share-toggle") as HTMLButtonElement).disabled).toBe(true);
    expect((q("share-demo") as HTMLButtonElement).disabled).toBe(true);

    app.apply(overview());
    mockIPC((cmd) => {
      calls.push({ cmd, args: {} });
      if (cmd === "share") throw { code: "not_signed_in", message: 'sign in to "office" first: enter its relay token' };
      return current;
    });
    (q("share-toggle") as HTMLButtonElement).click();
    await tick();
    await tick();
    expect(q("share-error").hidden).toBe(false);
    expect(q("share-error-code").textContent).toBe("not_signed_in");
    expect(q("share-error-message").textContent).toContain("relay token");
    expect(q("error").hidden).toBe(true); // not in the Connect panel's banner
  });
});
