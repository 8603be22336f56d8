// Share links in the window: the Share dialog (link, QR code, the secret only
// when ticked, with its red warning) and "Add from clipboard" with its paste
// field, with Tauri's IPC mocked; and the pure helpers' words.
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { App } from "./app";
import type { LinkAdded, LinkShare, Overview, ProfileView, ProtocolInfo } from "./bindings";
import { SECRET_WARNING, addedText, leftOutText, looksLikeLink, qrSource } from "./links";
import { idleOverview } from "./test-fixtures";

const none = { streams: false, datagrams: false, dns: false };
const PROTOCOLS: ProtocolInfo[] = [
  { id: "httvps", title: "HTTVPS", summary: "Streams over a WebSocket", mode: "connect", carries: { ...none, streams: true }, available: true },
  { id: "ht", title: "HT", summary: "Chunked HTTP", mode: "connect", carries: { streams: true, datagrams: true, dns: true }, available: true },
  { id: "hlhv", title: "HLHV", summary: "Publish a local web app", mode: "publish", carries: none, available: true },
  { id: "relay", title: "Relay", summary: "Share ports", mode: "remote_access", carries: none, available: true },
];

const WORK: ProfileView = {
  name: "work", protocol: "httvps", kind: "gateway", server: "wss://gw.example/ws", device_id: null, region: null,
  ca_file: null, pin_sha256: null, sni: null, connections: null, dns_listen: null, transport: "h1", mount: null, to: null,
  max_body: null, public_url: null, tunnel: null, ports: null, signed_in: true,
};

const LINK = "httvps://add?v=1&p=eyJwcm90b2NvbCI6Imh0dHZwcyJ9";
const SECRET_LINK = `${LINK}&s=dG9rLTEyMw`;

function overview(profiles: ProfileView[] = [WORK]): Overview {
  return idleOverview({
    protocols: PROTOCOLS,
    profiles,
    selected: profiles[0]?.name ?? null,
    system_proxy_available: true,
  });
}

const tick = () => new Promise((r) => setTimeout(r, 0));
const settle = async () => {
  for (let i = 0; i < 4; i++) await tick();
};

let calls: { cmd: string; args: Record<string, unknown> }[];
let current: Overview;
let app: App;
let root: HTMLElement;
let clipboard: { readText: ReturnType<typeof vi.fn>; writeText: ReturnType<typeof vi.fn> };

const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;

beforeEach(async () => {
  calls = [];
  current = overview();
  clipboard = { readText: vi.fn(), writeText: vi.fn(async () => undefined) };
  Object.defineProperty(navigator, "clipboard", { value: clipboard, configurable: true });
  mockIPC((cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: a });
    switch (cmd) {
      case "share_link": {
        const withSecret = a.includeSecret === true;
        const share: LinkShare = {
          link: withSecret ? SECRET_LINK : LINK,
          qr_svg: `<svg xmlns="http://www.w3.org/2000/svg"><rect width="${withSecret ? 2 : 1}"/></svg>`,
          contains_secret: withSecret,
          left_out: ["ca_file"],
        };
        return share;
      }
      case "add_from_link": {
        if (a.link !== LINK && a.link !== SECRET_LINK) {
          throw { code: "invalid_input", message: "this is not an httvps profile link (it should start with httvps://add?)" };
        }
        if (!a.replace && a.name === null && current.profiles.some((p) => p.name === "work")) {
          throw { code: "invalid_input", message: 'a profile named "work" exists already: give the new one another name, or choose to replace it' };
        }
        const name = (a.name as string | null) ?? "work";
        current = overview([...current.profiles.filter((p) => p.name !== name), { ...WORK, name, signed_in: a.link === SECRET_LINK }]);
        const added: LinkAdded = { name, protocol: "httvps", secret_saved: a.link === SECRET_LINK, replaced: false, overview: current };
        return added;
      }
      case "watch_streams":
        return null;
      default:
        return current;
    }
  });
  root = document.createElement("div");
  document.body.replaceChildren(root);
  app = new App(root);
  await app.start();
  await settle();
});

afterEach(() => {
  app.stop();
  clearMocks();
});

describe("the words around links", () => {
  it("recognise a link, name what stayed out, and say where an added profile went", () => {
    expect(looksLikeLink("  HTTVPS://add?v=1&p=x\n")).toBe(true);
    expect(looksLikeLink("https://example.com")).toBe(false);
    expect(leftOutText([])).toBe("");
    expect(leftOutText(["ca_file", "listen"])).toContain("CA file");
    expect(leftOutText(["ca_file", "listen"])).toContain("proxy address");
    expect(qrSource("<svg/>")).toBe("data:image/svg+xml;charset=utf-8,%3Csvg%2F%3E");
    const added: LinkAdded = { name: "site", protocol: "hlhv", secret_saved: false, replaced: false, overview: overview() };
    expect(addedText(added, PROTOCOLS)).toBe(
      "HLHV profile “site” added. Sign in to it (enter its secret) before using it. It is in the Publish panel.",
    );
    expect(addedText({ ...added, protocol: "relay", secret_saved: true, replaced: true }, PROTOCOLS)).toBe(
      "Relay profile “site” replaced. Its secret is in the system keychain. It is in the Remote access panel.",
    );
    expect(addedText({ ...added, protocol: "ht", secret_saved: true }, PROTOCOLS)).toBe(
      "HT profile “site” added. Its secret is in the system keychain.",
    );
  });
});

describe("the Share dialog", () => {
  it("shows the link and QR code without the secret, and with it only when ticked, in red", async () => {
    expect(q("link-dialog").hidden).toBe(true);
    (root.querySelector('[data-profile="work"] [data-testid="link-share"]') as HTMLButtonElement).click();
    await settle();
    expect(calls.filter((c) => c.cmd === "share_link").map((c) => c.args)).toEqual([{ name: "work", includeSecret: false }]);
    expect(q("link-dialog").hidden).toBe(false);
    expect((q("link-text") as HTMLTextAreaElement).value).toBe(LINK);
    expect((q("link-qr") as HTMLImageElement).src).toMatch(/^data:image\/svg\+xml/);
    expect(q("link-warning").hidden).toBe(true);
    expect(q("link-note").textContent).toContain("CA file");

    const box = q("link-secret") as HTMLInputElement;
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    await settle();
    expect(calls.at(-1)?.args).toEqual({ name: "work", includeSecret: true });
    expect((q("link-text") as HTMLTextAreaElement).value).toBe(SECRET_LINK);
    expect(q("link-warning").hidden).toBe(false);
    expect(q("link-warning").textContent).toBe(SECRET_WARNING);
    expect(q("link-warning").className).toBe("error");
    expect(q("link-dialog").dataset.secret).toBe("true");

    q("link-copy").click();
    await settle();
    expect(clipboard.writeText).toHaveBeenCalledWith(SECRET_LINK);

    // Closing forgets the link with its secret.
    q("link-close").click();
    expect(q("link-dialog").hidden).toBe(true);
    expect((q("link-text") as HTMLTextAreaElement).value).toBe("");
    expect(box.checked).toBe(false);
  });
});

describe("Share link in the other panels", () => {
  it("shares an HLHV and a Relay profile from their own lists", async () => {
    const site: ProfileView = { ...WORK, name: "site", protocol: "hlhv", kind: "cell_key", server: "queen.example:2001", transport: null, mount: "demo.example/app/", to: "http://127.0.0.1:3000" };
    const office: ProfileView = { ...WORK, name: "office", protocol: "relay", kind: "relay_token", server: "relay.example", transport: null, tunnel: "desk", ports: [22] };
    current = overview([WORK, site, office]);
    app.apply(current);
    await settle();
    for (const name of ["site", "office"]) {
      const item = [...root.querySelectorAll(`[data-profile="${name}"]`)].find((el) => el.querySelector('[data-testid="link-share"]'));
      (item!.querySelector('[data-testid="link-share"]') as HTMLButtonElement).click();
      await settle();
      expect(calls.at(-1)).toEqual({ cmd: "share_link", args: { name, includeSecret: false } });
      const dialog = item!.closest("section, div.publish, div.remote")!.parentElement!.querySelector('[data-testid="link-dialog"]:not([hidden])');
      expect(dialog, `a dialog for ${name}`).not.toBeNull();
    }
  });
});

describe("Add from clipboard", () => {
  it("adds the clipboard's link and says what it added", async () => {
    current = overview([]);
    app.apply(current);
    clipboard.readText.mockResolvedValue(`${SECRET_LINK}\n`);
    q("add-clipboard").click();
    await settle();
    expect(calls.find((c) => c.cmd === "add_from_link")?.args).toEqual({ link: SECRET_LINK, name: null, replace: false });
    expect(q("add-link-status").textContent).toBe("HTTVPS profile “work” added. Its secret is in the system keychain.");
    expect(root.querySelector('[data-profile="work"]')).not.toBeNull();
  });

  it("offers a paste field when the clipboard is refused, and shows errors in words", async () => {
    clipboard.readText.mockRejectedValue(new Error("NotAllowedError"));
    q("add-clipboard").click();
    await settle();
    expect(q("add-link-input").closest("label")!.hidden).toBe(false);
    expect(q("add-link-status").textContent).toContain("cannot be read");
    expect(calls.some((c) => c.cmd === "add_from_link")).toBe(false);

    // A name clash is explained; another name adds it.
    (q("add-link-input") as HTMLInputElement).value = LINK;
    (q("add-link") as HTMLFormElement).dispatchEvent(new Event("submit", { cancelable: true }));
    await settle();
    expect(q("add-link-status").textContent).toBe(
      'Not added: a profile named "work" exists already: give the new one another name, or choose to replace it',
    );
    (q("add-link-input") as HTMLInputElement).value = LINK;
    (q("add-link-name") as HTMLInputElement).value = "work-2";
    (q("add-link") as HTMLFormElement).dispatchEvent(new Event("submit", { cancelable: true }));
    await settle();
    expect(calls.at(-1)?.args).toEqual({ link: LINK, name: "work-2", replace: false });
    expect(q("add-link-status").textContent).toContain("“work-2” added. Sign in to it");
    expect((q("add-link-input") as HTMLInputElement).value).toBe("");
  });

  it("says so when the clipboard holds something else", async () => {
    clipboard.readText.mockResolvedValue("https://example.com/");
    q("add-clipboard").click();
    await settle();
    expect(q("add-link-status").textContent).toContain("no httvps:// link");
    expect(calls.some((c) => c.cmd === "add_from_link")).toBe(false);
  });
});
