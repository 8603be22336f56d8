// End-to-end test of the real desktop app: the built binary under Xvfb,
// driven by WebDriver (tauri-driver + WebKitWebDriver), with a real gateway
// (httvps-gateway, TLS with its own CA), a real keychain (gnome-keyring in a
// private D-Bus session), curl as the proxy client and a local HTTP server
// as the target. Run by tests/e2e/run, which sets up Xvfb, D-Bus and the
// keyring; see README "Desktop app".
//
// The app is two processes: WebDriver launches the window (APP_BIN), which
// starts the tray process (httvps-tray beside it) that runs the tunnel.
//
// Environment: APP_BIN, GATEWAY_BIN (absolute paths), TAURI_DRIVER,
// E2E_HOME (the app's private home: settings and autostart files),
// SCREENSHOT (where to save the main window with live streams).
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync, readdirSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import net from "node:net";
import { freePort } from "./net.mjs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { remote } from "webdriverio";

const APP_BIN = process.env.APP_BIN;
const TRAY_BIN = join(dirname(APP_BIN ?? "."), "httvps-tray");
const GATEWAY_BIN = process.env.GATEWAY_BIN;
const TAURI_DRIVER = process.env.TAURI_DRIVER ?? "tauri-driver";
const HOME = process.env.E2E_HOME;
const SCREENSHOT = process.env.SCREENSHOT;
const TOKEN = "e2e-good-token-" + Math.random().toString(36).slice(2);
const KEYRING_SERVICE = process.env.HTTVPS_KEYRING_SERVICE ?? "httvps";

let passed = 0;
let failed = 0;
const cleanups = [];

function log(msg) {
  console.log(`[e2e] ${msg}`);
}

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    passed += 1;
    console.log(`  PASS ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failed += 1;
    console.log(`  FAIL ${name}: ${e?.stack ?? e}`);
    throw e;
  }
}

function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

async function waitUntil(what, fn, timeoutMs = 20000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** A target web server: /slow/N sends N bytes at about 640 kB/s. */
async function startTarget() {
  const server = createServer((req, res) => {
    const m = /^\/slow\/(\d+)$/.exec(req.url ?? "");
    if (!m) {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("hello through the tunnel\n");
      return;
    }
    let left = Number(m[1]);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(left) });
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const timer = setInterval(() => {
      const n = Math.min(left, chunk.length);
      res.write(chunk.subarray(0, n));
      left -= n;
      if (left === 0) {
        clearInterval(timer);
        res.end();
      }
    }, 100);
    res.on("close", () => clearInterval(timer));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => server.close());
  return server.address().port;
}

/** The real gateway with a fresh CA, a leaf certificate it signed, and a token file. */
async function startGateway(dir) {
  const ca = join(dir, "ca.pem");
  const caKey = join(dir, "ca-key.pem");
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const csr = join(dir, "cert.csr");
  const ext = join(dir, "leaf.ext");
  const openssl = (args) => execFileSync("openssl", args, { stdio: "ignore" });
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", caKey, "-out", ca, "-days", "2", "-subj", "/CN=httvps e2e CA"]);
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
    "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"]);
  writeFileSync(ext, "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  openssl(["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", caKey, "-CAcreateserial",
    "-out", cert, "-days", "2", "-extfile", ext]);
  const tokens = join(dir, "tokens");
  writeFileSync(tokens, `${TOKEN}\n`);
  const port = await freePort();
  const gateway = spawn(GATEWAY_BIN, [
    "--listen", `127.0.0.1:${port}`, "--cert", cert, "--key", key, "--tokens", tokens,
    "--allow-private-targets",
  ], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  gateway.stderr.on("data", (d) => (stderr += d));
  cleanups.push(() => gateway.kill("SIGKILL"));
  await waitUntil("the gateway to listen", () => new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => { socket.destroy(); resolve(true); });
    socket.on("error", () => resolve(false));
  }), 20000);
  return { url: `wss://127.0.0.1:${port}/ws`, ca, logs: () => stderr };
}

/** The tray process's pids (the one this test's window started). */
function trayPids() {
  const out = spawnSync("pgrep", ["-x", "-f", `${TRAY_BIN}( .*)?`], { encoding: "utf8" });
  return out.stdout.split("\n").filter(Boolean);
}

/** Ends the tray process (the app's Quit, from outside) and waits for it. */
async function stopTray() {
  spawnSync("pkill", ["-TERM", "-x", "-f", `${TRAY_BIN}( .*)?`]);
  await waitUntil("the tray process to end", async () => trayPids().length === 0);
}

async function startDriver() {
  const port = 4444;
  const driver = spawn(TAURI_DRIVER, ["--port", String(port)], { stdio: ["ignore", "inherit", "inherit"] });
  cleanups.push(() => driver.kill("SIGKILL"));
  await waitUntil("tauri-driver", () => new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => { socket.destroy(); resolve(true); });
    socket.on("error", () => resolve(false));
  }));
  return port;
}

async function openApp(driverPort) {
  const browser = await remote({
    hostname: "127.0.0.1",
    port: driverPort,
    logLevel: "warn",
    capabilities: {
      browserName: "wry",
      "wdio:enforceWebDriverClassic": true,
      "tauri:options": { application: APP_BIN },
    },
  });
  await waitUntil("the window to load", async () => (await (await browser.$('[data-testid="state"]')).getText()) !== "");
  return browser;
}

const tid = (browser, id) => browser.$(`[data-testid="${id}"]`);

async function text(browser, id) {
  return (await tid(browser, id)).getText();
}

async function setValue(browser, id, value) {
  const el = await tid(browser, id);
  await el.clearValue();
  await el.setValue(value);
}

function keychainLookup(account) {
  const out = spawnSync("secret-tool", ["lookup", "service", KEYRING_SERVICE, "username", account], { encoding: "utf8" });
  return out.status === 0 ? out.stdout.trim() : null;
}

function curlSocks(proxyPort, url) {
  return new Promise((resolve) => {
    const curl = spawn("curl", ["--silent", "--show-error", "--max-time", "60", "--socks5-hostname", `127.0.0.1:${proxyPort}`, "-o", "/dev/null", "-w", "%{size_download}", url]);
    let out = "";
    let err = "";
    curl.stdout.on("data", (d) => (out += d));
    curl.stderr.on("data", (d) => (err += d));
    curl.on("close", (code) => resolve({ code, size: Number(out), err }));
  });
}

/** The stream table's row for a target, as { state, down, reason }. */
async function streamRow(browser, target) {
  return browser.execute((t) => {
    const row = [...document.querySelectorAll('[data-testid="streams"] tbody tr')].find((r) => r.dataset.target === t);
    if (!row) return null;
    const cell = (c) => row.querySelector(`[data-col="${c}"]`).textContent;
    return { state: row.dataset.state, down: cell("down"), id: cell("id"), reason: cell("reason") };
  }, target);
}

function parseBytes(s) {
  const m = /^([\d.]+) (B|kB|MB|GB)$/.exec(s ?? "");
  if (!m) return -1;
  return Number(m[1]) * { B: 1, kB: 1e3, MB: 1e6, GB: 1e9 }[m[2]];
}

function settingsFile() {
  const dir = join(HOME, ".local", "share", "dev.httvps.desktop");
  const path = join(dir, "settings.json");
  return existsSync(path) ? readFileSync(path, "utf8") : null;
}

async function main() {
  assert(APP_BIN && GATEWAY_BIN && HOME, "APP_BIN, GATEWAY_BIN and E2E_HOME are set");
  const work = mkdtempSync(join(tmpdir(), "httvps-e2e-"));
  const gateway = await startGateway(work);
  const targetPort = await startTarget();
  const target = `127.0.0.1:${targetPort}`;
  const proxyPort = await freePort();
  const driverPort = await startDriver();
  cleanups.push(() => spawnSync("pkill", ["-KILL", "-x", "-f", `${TRAY_BIN}( .*)?`]));
  log(`gateway ${gateway.url}, target ${target}, proxy port ${proxyPort}`);

  let browser = await openApp(driverPort);

  await step("starts disconnected and offers the demo", async () => {
    assert((await text(browser, "state")) === "Disconnected", "state is Disconnected");
    assert(await (await tid(browser, "demo")).isEnabled(), "the demo button is enabled");
  });

  await step("the proxy port is set in Settings and saved", async () => {
    await (await tid(browser, "tab-settings")).click();
    await setValue(browser, "settings-port", String(proxyPort));
    await (await tid(browser, "settings-save")).click();
    await waitUntil("settings saved", async () => (await text(browser, "settings-status")) === "Saved.");
  });

  await step("signing in with a wrong token stores it in the keychain only", async () => {
    await (await tid(browser, "tab-profiles")).click();
    await setValue(browser, "profile-name", "e2e");
    await setValue(browser, "profile-server", gateway.url);
    await setValue(browser, "profile-ca", gateway.ca);
    await setValue(browser, "profile-token", "wrong-token");
    await (await tid(browser, "profile-save")).click();
    await waitUntil("the profile to be saved", async () => (await text(browser, "profile-status")).includes("keychain"));
    assert(keychainLookup("e2e/session-token") === "wrong-token", "the keychain holds the token");
    const settings = settingsFile();
    assert(settings && settings.includes('"e2e"'), "the settings file has the profile");
    assert(!settings.includes("wrong-token"), "the settings file has no token");
    assert((await (await tid(browser, "profile-token")).getValue()) === "", "the token field is cleared");
  });

  await step("a wrong token shows auth_failed in the UI", async () => {
    await (await tid(browser, "connect")).click();
    await waitUntil("the auth_failed error", async () => (await text(browser, "error-code")) === "auth_failed");
    await waitUntil("the error state", async () => (await text(browser, "state")) === "Disconnected (error)");
    assert((await text(browser, "error-message")).length > 0, "the error has a human sentence");
  });

  await step("with the right token it connects and shows the session and proxy", async () => {
    await setValue(browser, "profile-name", "e2e");
    await setValue(browser, "profile-server", gateway.url);
    await setValue(browser, "profile-ca", gateway.ca);
    await setValue(browser, "profile-token", TOKEN);
    await (await tid(browser, "profile-save")).click();
    await waitUntil("the keychain to hold the new token", () => keychainLookup("e2e/session-token") === TOKEN);
    await (await tid(browser, "tab-streams")).click();
    await waitUntil("Connect to be enabled", async () => (await tid(browser, "connect")).isEnabled());
    await (await tid(browser, "connect")).click();
    await waitUntil("Connected", async () => (await text(browser, "state")) === "Connected");
    assert((await text(browser, "session-id")).length >= 4, "a session id is shown");
    assert((await text(browser, "gateway")) === gateway.url, "the gateway is shown");
    await waitUntil("the proxy address", async () => (await text(browser, "proxy-addr")) === `127.0.0.1:${proxyPort}`);
  });

  await step("a download through the proxy appears live in the table, then closed", async () => {
    const size = 3_000_000;
    const download = curlSocks(proxyPort, `http://${target}/slow/${size}`);
    const first = await waitUntil("the stream row with bytes", async () => {
      const row = await streamRow(browser, target);
      return row && row.state === "open" && parseBytes(row.down) > 0 ? row : null;
    });
    const grown = await waitUntil("the byte count to grow", async () => {
      const row = await streamRow(browser, target);
      return row && parseBytes(row.down) > parseBytes(first.down) ? row : null;
    });
    log(`live row: ${JSON.stringify(first)} then ${JSON.stringify(grown)}`);
    assert(/^s\d+$/.test(grown.id), "the row shows the tunnel's stream id");
    await new Promise((r) => setTimeout(r, 800));
    if (SCREENSHOT) {
      mkdirSync(dirname(SCREENSHOT), { recursive: true });
      await browser.saveScreenshot(SCREENSHOT);
      log(`screenshot saved to ${SCREENSHOT}`);
    }
    const result = await download;
    assert(result.code === 0 && result.size === size, `curl got all bytes (${JSON.stringify(result)})`);
    const closed = await waitUntil("the row to close", async () => {
      const row = await streamRow(browser, target);
      return row && row.state === "closed" ? row : null;
    });
    assert(parseBytes(closed.down) >= 2.9e6, `the closed row counts the bytes (${closed.down})`);
  });

  await step("a long download's row is closed with its ×, ends with the reason, and is exported", async () => {
    const download = curlSocks(proxyPort, `http://${target}/slow/30000000`);
    const key = await waitUntil("the long download's open row with bytes", () => browser.execute((t) => {
      const row = [...document.querySelectorAll('[data-testid="streams"] tbody tr')]
        .find((r) => r.dataset.target === t && r.dataset.state === "open" && r.querySelector('[data-col="down"]').textContent !== "0 B");
      return row ? row.dataset.key : null;
    }, target));
    const closeButton = await browser.$(`[data-testid="streams"] tr[data-key="${key}"] button.row-close`);
    await closeButton.scrollIntoView();
    await closeButton.click();
    const ended = await waitUntil("the row closed from the app", () => browser.execute((k) => {
      const row = document.querySelector(`[data-testid="streams"] tr[data-key="${k}"]`);
      return row?.dataset.state === "closed" ? row.querySelector('[data-col="reason"]').textContent : null;
    }, key), 10000);
    assert(ended === "closed from the app", `the row says why it ended (${ended})`);
    const result = await download;
    assert(result.code !== 0 && result.size < 30000000, `curl saw its connection cut (${JSON.stringify(result)})`);
    await (await tid(browser, "streams-export")).click();
    const csv = await waitUntil("the export's paths", async () => (await text(browser, "streams-exported-csv")) || null, 10000);
    assert(csv.startsWith(join(HOME, "Downloads")) && existsSync(csv), `the CSV is in Downloads (${csv})`);
    const line = readFileSync(csv, "utf8").split("\r\n").find((l) => l.startsWith(`${key},`));
    assert(line?.endsWith(",closed from the app"), `the CSV holds the closed row (${line})`);
    assert(existsSync(await text(browser, "streams-exported-log")), "the log file is there");
  });

  await step("at 200% zoom the window reflows without a horizontal scroll bar", async () => {
    const overflow = await browser.execute(() => {
      document.documentElement.style.zoom = "2";
      const root = document.documentElement;
      return root.scrollWidth - root.clientWidth;
    });
    if (SCREENSHOT) await browser.saveScreenshot(SCREENSHOT.replace(/\.png$/, "-zoom200.png"));
    await browser.execute(() => { document.documentElement.style.zoom = ""; });
    assert(overflow <= 1, `no horizontal overflow at 200% (${overflow} px)`);
  });

  await step("disconnect returns to Disconnected", async () => {
    await (await tid(browser, "connect")).click();
    await waitUntil("Disconnected", async () => (await text(browser, "state")) === "Disconnected");
    await waitUntil("the proxy to be shown stopped", async () => (await text(browser, "proxy-addr")) === "not running");
    const refused = await curlSocks(proxyPort, `http://${target}/`);
    assert(refused.code !== 0, "the proxy port no longer answers");
  });

  await step("a routing rule is added, tested unsaved, saved and read back in the Rules tab", async () => {
    await (await tid(browser, "tab-rules")).click();
    await waitUntil("the e2e profile's rules", async () =>
      (await (await tid(browser, "rules-profile")).getValue()) === "e2e" && (await tid(browser, "rules-add")).isEnabled());
    await (await tid(browser, "rules-add")).click();
    const last = '[data-testid="rules-list"] li:last-child';
    await (await browser.$(`${last} [data-testid="rule-value"]`)).setValue("example.invalid");
    // Selects set as a script would: WebKitWebDriver's option clicks vary.
    await browser.execute((sel) => {
      for (const [id, value] of [["rule-match", "domain-suffix"], ["rule-action", "block"]]) {
        const select = document.querySelector(`${sel} [data-testid="${id}"]`);
        select.value = value;
        select.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }, last);
    await setValue(browser, "rules-test-host", "www.example.invalid");
    await (await tid(browser, "rules-test-run")).click();
    await waitUntil("the test to say block", async () => (await text(browser, "rules-test-action")) === "block");
    if (SCREENSHOT) await browser.saveScreenshot(SCREENSHOT.replace(/\.png$/, "-rules.png"));
    await (await tid(browser, "rules-save")).click();
    await waitUntil("the rules saved", async () => (await text(browser, "rules-status")).startsWith("Saved."));
    assert((await text(browser, "rules-status")).includes("next connect"), "it says when the rules apply");
    await waitUntil("the rule in the settings file", () => settingsFile()?.includes("example.invalid"), 5000);
    await (await tid(browser, "tab-streams")).click();
    await (await tid(browser, "tab-rules")).click();
    await waitUntil("the saved rule read back", () => browser.execute((sel) => {
      const get = (id) => document.querySelector(`${sel} [data-testid="${id}"]`)?.value;
      return get("rule-match") === "domain-suffix" && get("rule-value") === "example.invalid" && get("rule-action") === "block";
    }, last));
    await (await tid(browser, "tab-streams")).click();
  });

  await step("the publish demo serves a page through a queen and logs the request", async () => {
    await (await browser.$("#mode-tab-publish")).click();
    await waitUntil("Try the demo enabled", async () => (await tid(browser, "publish-demo")).isEnabled());
    await (await tid(browser, "publish-demo")).click();
    await waitUntil("Published", async () => (await text(browser, "publish-state")) === "Published");
    const url = await text(browser, "public-url");
    assert(url.startsWith("https://localhost:"), `a public address (${url})`);
    const got = spawnSync("curl", ["--silent", "--insecure", "--max-time", "20", url], { encoding: "utf8" });
    assert(got.status === 0 && got.stdout.includes("It works."), `the page comes through the queen (${got.status})`);
    await waitUntil("the answered request in the log", async () =>
      browser.execute(() => {
        const row = document.querySelector('[data-testid="requests-body"] tr');
        return row !== null && row.querySelector('[data-col="status"]').textContent === "200";
      }),
    );
    await (await tid(browser, "publish-toggle")).click();
    await waitUntil("Not published", async () => (await text(browser, "publish-state")) === "Not published");
    await (await browser.$("#mode-tab-connect")).click();
  });

  await step("the remote access demo shares a page through a relay and lists the connection", async () => {
    await (await browser.$("#mode-tab-remote_access")).click();
    // Enabled once the publication's stop has settled (one run at a time).
    await waitUntil("Try the demo enabled", async () => (await tid(browser, "share-demo")).isEnabled());
    await (await tid(browser, "share-demo")).click();
    await waitUntil("Active", async () => (await text(browser, "share-state")) === "Active");
    const forward = await waitUntil("the public forward", async () => text(browser, "forward-public"));
    assert(/^127\.0\.0\.1:\d+$/.test(forward), `a public forward (${forward})`);
    // Active means the relay answered a heartbeat sent after register_ack,
    // so the forward is already listening: no retry.
    const got = spawnSync("curl", ["--silent", "--max-time", "20", `http://${forward}/`], { encoding: "utf8" });
    assert(got.status === 0 && got.stdout.includes("It works."), `the page comes through the relay (${got.status})`);
    await waitUntil("the connection in the table", async () =>
      browser.execute(() => {
        const row = document.querySelector('[data-testid="share-connections-body"] tr');
        return row !== null && row.querySelector('[data-col="public"]').textContent !== "—";
      }),
    );
    if (SCREENSHOT) await browser.saveScreenshot(SCREENSHOT.replace(/\.png$/, "-remote-access.png"));
    await (await tid(browser, "share-toggle")).click();
    await waitUntil("Disconnected", async () => (await text(browser, "share-state")) === "Disconnected");
    const gone = spawnSync("curl", ["--silent", "--max-time", "5", `http://${forward}/`]);
    assert(gone.status !== 0, "the forward is closed with the share");
    await (await browser.$("#mode-tab-connect")).click();
  });

  await step("a second launch exits and leaves the first running", async () => {
    assert(trayPids().length === 1, `one tray process runs the app (${trayPids()})`);
    const second = spawnSync(APP_BIN, [], { timeout: 20000, env: process.env });
    assert(second.status === 0, `the second instance exits at once (status ${second.status}, signal ${second.signal})`);
    assert((await text(browser, "state")) === "Disconnected", "the first instance still answers");
    assert(trayPids().length === 1, "still one tray process");
  });

  await step("autostart writes a login entry", async () => {
    await (await tid(browser, "tab-settings")).click();
    await (await tid(browser, "settings-autostart")).click();
    await (await tid(browser, "settings-save")).click();
    await waitUntil("settings saved", async () => (await text(browser, "settings-status")) === "Saved.");
    const dir = join(HOME, ".config", "autostart");
    const entries = existsSync(dir) ? readdirSync(dir) : [];
    assert(entries.some((f) => f.endsWith(".desktop")), `an autostart entry exists (${entries})`);
    const entry = readFileSync(join(dir, entries.find((f) => f.endsWith(".desktop"))), "utf8");
    assert(entry.includes("--minimized"), "it starts minimized");
  });

  await step("after a restart the profile is there and the token only in the keychain", async () => {
    // The window's process ends with the session; the tray's is ended too,
    // so the next launch starts the whole app afresh from its files.
    await browser.deleteSession();
    await stopTray();
    browser = await openApp(driverPort);
    await (await tid(browser, "tab-profiles")).click();
    await waitUntil("the profile list", async () => (await text(browser, "profiles")).includes("e2e"));
    assert((await text(browser, "profiles")).includes("signed in"), "the profile is signed in");
    const settings = settingsFile();
    assert(settings.includes('"e2e"') && !settings.includes(TOKEN), "settings have the profile, not the token");
    assert(keychainLookup("e2e/session-token") === TOKEN, "the keychain still holds it");
    const html = await browser.execute(() => document.documentElement.outerHTML);
    assert(!html.includes(TOKEN), "the token never reaches the web view");
  });

  await step("sign out deletes the token from the keychain", async () => {
    await (await tid(browser, "sign-out")).click();
    await waitUntil("signed out", async () => (await text(browser, "profiles")).includes("signed out"));
    assert(keychainLookup("e2e/session-token") === null, "the keychain no longer has it");
  });

  await browser.deleteSession();
  await stopTray();
}

main()
  .catch((e) => {
    if (failed === 0) {
      failed += 1;
      console.log(`  FAIL setup: ${e?.stack ?? e}`);
    }
  })
  .finally(() => {
    for (const cleanup of cleanups.reverse()) {
      try { cleanup(); } catch { /* already gone */ }
    }
    console.log(`e2e summary: ${passed} passed, ${failed} failed`);
    process.exit(failed === 0 ? 0 : 1);
  });
