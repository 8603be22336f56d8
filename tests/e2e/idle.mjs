// The quiet app, measured: the release build of the desktop app idle under
// --demo, in three phases of one run, each after a few fetches through its
// proxy:
//   1. started in the tray (`httvps-tray --demo --minimized`, as autostart
//      starts it): the tray process alone;
//   2. the window open (a launch of the window binary, httvps-desktop, shows
//      it: that process hosts the window);
//   3. the window closed to the tray again (a launch with `--minimized`):
//      the window's process and its WebKit processes end.
// Then the window is shown once more by a launch (a further launch only
// focuses it), and once from the tray's menu (Show window, clicked over
// D-Bus as a tray host does), and the tray's Quit ends the app: the tray
// process and the window's. Each time the window is shown, the test waits
// for the page to reach the app (the tray's debug line for the window's
// `watch_streams` call): a second window must load like the first.
// (WebDriver cannot follow this: its session ends with the window.)
// For each phase: CPU over IDLE_SECONDS (default 60) of the tray process,
// the window's process and every process they started (the WebKit
// processes; time on a CPU from schedstat, all threads), and memory at the
// end: RSS
// (resident, shared library pages counted in full in every process), PSS
// (shared pages divided among the processes that map them) and USS (pages
// private to the process). Figures are reported, not asserted (the targets:
// CPU < 0.2 % of a core; hidden ≤ 60 MiB; open ≤ 250 MiB); what is asserted
// is that the web view's processes end with the window and come back with
// it. Run by tests/e2e/run inside its Xvfb and D-Bus session, without
// WebDriver (an automation session would be measured too).
//
// Environment: APP_RELEASE_BIN (the release httvps-desktop; httvps-tray is
// beside it), IDLE_SECONDS,
// IDLE_REPORT (where the Markdown table goes; a .json twin beside it).
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { freePort } from "./net.mjs";
import { clickTray, trayItem } from "./tray.mjs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const APP = process.env.APP_RELEASE_BIN;
const TRAY = APP && join(dirname(APP), "httvps-tray");
const SECONDS = Number(process.env.IDLE_SECONDS ?? 60);
const REPORT = process.env.IDLE_REPORT;

const log = (msg) => console.log(`[idle] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitUntil(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fn()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** `/proc/PID/stat` as { comm, state, ppid }. */
function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = text.lastIndexOf(")");
    const fields = text.slice(close + 2).split(" ");
    return { comm: text.slice(text.indexOf("(") + 1, close), state: fields[0], ppid: Number(fields[1]) };
  } catch {
    return null; // ended meanwhile
  }
}

/** Nanoseconds on a CPU, all threads of `pid` (schedstat: exact, where the
 * user and system ticks of /proc/PID/stat count in 10 ms steps, too coarse
 * for an idle minute). */
function cpuNs(pid) {
  let total = 0;
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    // the process ended meanwhile
  }
  return total;
}

/** `pid` and its descendants: [{ pid, comm, ns }]. */
function tree(pid) {
  const all = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
  const stats = new Map(all.map((p) => [p, stat(p)]).filter(([, s]) => s));
  const out = [];
  const visit = (p) => {
    const s = stats.get(p);
    if (!s) return;
    out.push({ pid: p, comm: s.comm, ns: cpuNs(p) });
    for (const [child, cs] of stats) if (cs.ppid === p) visit(child);
  };
  visit(pid);
  return out;
}

/** Resident, proportional and private KiB of one process. */
function memory(pid) {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(rollup)?.[1] ?? 0);
  return { rss: kib("Rss"), pss: kib("Pss"), uss: kib("Private_Clean") + kib("Private_Dirty") };
}

/** One phase: CPU over SECONDS, then memory, for the app's processes (the
 * trees of `pids()`, read at each end: a process that ended meanwhile counts
 * no more). */
async function measure(name, pids) {
  const all = () => pids().flatMap((pid) => tree(pid));
  const before = new Map(all().map((p) => [p.pid, p.ns]));
  await sleep(SECONDS * 1000);
  const after = all();
  const percent = (ns) => (100 * ns) / 1e9 / SECONDS;
  const ns = after.reduce((sum, p) => sum + Math.max(0, p.ns - (before.get(p.pid) ?? p.ns)), 0);
  const processes = after.map((p) => ({
    pid: p.pid,
    comm: p.comm,
    // A thread that ended during the phase takes its time with it.
    cpu_percent: percent(Math.max(0, p.ns - (before.get(p.pid) ?? p.ns))),
    ...memory(p.pid),
  }));
  const total = (key) => processes.reduce((sum, p) => sum + p[key], 0) / 1024;
  const result = {
    phase: name,
    seconds: SECONDS,
    cpu_percent: percent(ns),
    rss_mib: total("rss"),
    pss_mib: total("pss"),
    uss_mib: total("uss"),
    processes,
  };
  log(`${name}: CPU ${result.cpu_percent.toFixed(3)} % over ${SECONDS} s; RSS ${result.rss_mib.toFixed(1)} MiB, PSS ${result.pss_mib.toFixed(1)}, USS ${result.uss_mib.toFixed(1)} (${processes.map((p) => p.comm).join(", ")})`);
  return result;
}

/** A fetch through the app's proxy; resolves to the HTTP status (async: the
 * target server runs in this process). */
function curl(proxyPort, url) {
  return new Promise((resolve) => {
    const child = spawn("curl", ["--silent", "--max-time", "10", "--socks5-hostname", `127.0.0.1:${proxyPort}`, "-o", "/dev/null", "-w", "%{http_code}", url]);
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", () => resolve(out));
  });
}

async function main() {
  if (!APP) throw new Error("APP_RELEASE_BIN is not set");
  const home = mkdtempSync(join(tmpdir(), "httvps-idle-"));
  const data = join(home, ".local", "share");
  const proxyPort = await freePort();
  mkdirSync(join(data, "dev.httvps.desktop"), { recursive: true });
  writeFileSync(join(data, "dev.httvps.desktop", "settings.json"), JSON.stringify({ settings: { proxy_port: proxyPort } }));
  const target = createServer((_req, res) => res.end("hello through the tunnel\n"));
  await new Promise((r) => target.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${target.address().port}/`;
  const env = { ...process.env, HTTVPS_LOG: "info,app::remote=debug", HOME: home, XDG_DATA_HOME: data, XDG_CONFIG_HOME: join(home, ".config"), XDG_CACHE_HOME: join(home, ".cache") };
  // The socket in this test's own home, whatever XDG_RUNTIME_DIR says: the
  // WebDriver run's app may not be quite gone.
  env.HTTVPS_APP_SOCKET = join(home, "app.sock");
  const launch = (args) => new Promise((resolve) => spawn(APP, args, { env, stdio: "ignore" }).on("close", resolve));

  const tray = spawn(TRAY, ["--demo", "--minimized"], { env, stdio: ["ignore", "ignore", "pipe"] });
  let logs = "";
  tray.stderr.on("data", (d) => (logs += d));
  let exited = null;
  tray.on("exit", (code) => (exited = code));
  const loads = () => logs.split("the window is loaded and follows the streams").length - 1;
  // The window's process: launched below, it hosts the window until it closes.
  let window = null;
  const pids = () => [tray.pid, ...(window && window.exitCode === null && window.signalCode === null ? [window.pid] : [])];
  const showWindow = async (count) => {
    window = spawn(APP, [], { env, stdio: "ignore" });
    await waitUntil("the window to load", () => loads() === count);
  };
  const results = [];
  try {
    await waitUntil("the demo tunnel", async () => {
      if (exited !== null) throw new Error(`the tray exited (status ${exited}): is another instance running?`);
      return (await curl(proxyPort, url)) === "200";
    });
    const fetches = async () => {
      for (let i = 0; i < 5; i++) if ((await curl(proxyPort, url)) !== "200") throw new Error("a fetch through the demo failed");
    };
    const webkit = () => pids().flatMap((pid) => tree(pid)).filter((p) => p.comm.startsWith("WebKit"));
    await fetches();
    await sleep(3000);
    if (webkit().length !== 0) throw new Error("started in the tray, the app started a web view");
    results.push(await measure("in the tray from the start (no window yet)", pids));

    if (loads() !== 0) throw new Error("started in the tray, a window loaded");
    await showWindow(1);
    await fetches();
    // The page loads and draws its first frames.
    await sleep(5000);
    results.push(await measure("window open", pids));

    const closing = window;
    if ((await launch(["--minimized"])) !== 0) throw new Error("the launch with --minimized failed");
    await waitUntil("the window's process to end", () => closing.exitCode !== null || closing.signalCode !== null);
    if (closing.exitCode !== 0) throw new Error(`the window's process ended with ${closing.exitCode ?? closing.signalCode}`);
    await waitUntil("the web view's processes to end", () => webkit().length === 0);
    await fetches();
    await sleep(3000);
    results.push(await measure("window closed to the tray", pids));

    await showWindow(2);
    // A second launch while it is open focuses it and exits at once.
    if ((await launch([])) !== 0) throw new Error("a second launch failed");
    if (window.exitCode !== null) throw new Error("the second launch closed the window");
    const second = window;
    if ((await launch(["--minimized"])) !== 0) throw new Error("the launch with --minimized failed");
    await waitUntil("the window's process to end", () => second.exitCode !== null || second.signalCode !== null);

    // The tray's menu: Show window starts the window's process (the tray's
    // child) and its page loads; Quit ends the window and the tray.
    let item = null;
    await waitUntil("the tray item on the bus", () => (item = trayItem(tray.pid)) !== null);
    clickTray(item, "Show window");
    await waitUntil("the window shown from the tray to load", () => loads() === 3);
    const fromTray = tree(tray.pid).find((p) => p.comm === "httvps-desktop");
    if (!fromTray) throw new Error("Show window started no window process");
    clickTray(item, "Quit httvps");
    await waitUntil("the tray process to quit", () => exited !== null);
    if (exited !== 0) throw new Error(`the tray quit with status ${exited}`);
    // Ended: gone, or a zombie left to whoever adopted it.
    const ended = (pid) => ["Z", "X", undefined].includes(stat(pid)?.state);
    await waitUntil("the window's process to end with it", () => ended(fromTray.pid));
  } catch (e) {
    console.log(`[idle] the tray's log:\n${logs}`);
    throw e;
  } finally {
    window?.kill("SIGTERM");
    tray.kill("SIGTERM");
    target.close();
  }
  const mib = (v) => v.toFixed(1);
  const table = [
    `Idle app (release build, --demo, ${SECONDS} s per phase; ${new Date().toISOString()})`,
    "",
    "| phase | CPU, % of a core | RSS, MiB | PSS, MiB | USS, MiB | each process: RSS, CPU |",
    "|---|---|---|---|---|---|",
    ...results.map((r) => `| ${r.phase} | ${r.cpu_percent.toFixed(3)} | ${mib(r.rss_mib)} | ${mib(r.pss_mib)} | ${mib(r.uss_mib)} | ${r.processes.map((p) => `${p.comm} ${mib(p.rss / 1024)} MiB, ${p.cpu_percent.toFixed(3)} %`).join("; ")} |`),
    "",
    "Targets (issue 16): CPU < 0.2 % in every phase; window closed ≤ 60 MiB; window open ≤ 250 MiB.",
  ].join("\n");
  console.log(table);
  if (REPORT) {
    mkdirSync(dirname(REPORT), { recursive: true });
    writeFileSync(REPORT, `${table}\n`);
    writeFileSync(REPORT.replace(/\.md$/, ".json"), `${JSON.stringify(results, null, 2)}\n`);
  }
  if (/panicked|ERROR/.test(logs)) console.log(`[idle] the app logged errors:\n${logs}`);
}

main()
  .then(() => {
    console.log("idle summary: 1 passed, 0 failed");
    process.exit(0);
  })
  .catch((e) => {
    console.log(`  FAIL idle: ${e?.stack ?? e}`);
    console.log("idle summary: 0 passed, 1 failed");
    process.exit(1);
  });
