// The app's tray icon, driven as a tray host drives it: over the session
// bus with gdbus (GLib's command-line D-Bus client), reading the
// StatusNotifierItem's menu (com.canonical.dbusmenu) and clicking its items.
import { execFileSync } from "node:child_process";

function gdbus(...args) {
  return execFileSync("gdbus", ["call", "--session", ...args], { encoding: "utf8", timeout: 10000 });
}

/** The bus name of the tray item of process `pid` (ksni registers
 * `org.kde.StatusNotifierItem-PID-N`), or null while there is none. */
export function trayItem(pid) {
  const names = gdbus("--dest", "org.freedesktop.DBus", "--object-path", "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.ListNames");
  const match = new RegExp(`'(org\\.kde\\.StatusNotifierItem-${pid}-\\d+)'`).exec(names);
  return match ? match[1] : null;
}

/** The item's menu: its object path, and each item's label → id. */
export function trayMenu(item) {
  const menuProp = gdbus("--dest", item, "--object-path", "/StatusNotifierItem", "--method", "org.freedesktop.DBus.Properties.Get", "org.kde.StatusNotifierItem", "Menu");
  const path = /objectpath '([^']+)'/.exec(menuProp)?.[1];
  if (!path) throw new Error(`the tray item has no menu: ${menuProp}`);
  const layout = gdbus("--dest", item, "--object-path", path, "--method", "com.canonical.dbusmenu.GetLayout", "--", "0", "-1", "[]");
  const items = new Map();
  // Each item reads `(ID, {… 'label': <'TEXT'> …}, …)`.
  for (const m of layout.matchAll(/\((\d+), \{([^}]*)\}/g)) {
    const label = /'label': <'([^']*)'>/.exec(m[2])?.[1];
    if (label) items.set(label, Number(m[1]));
  }
  return { path, items };
}

/** Clicks the menu item labelled `label`. */
export function clickTray(item, label) {
  const { path, items } = trayMenu(item);
  const id = items.get(label);
  if (id === undefined) throw new Error(`no tray menu item "${label}" (${[...items.keys()].join(", ")})`);
  gdbus("--dest", item, "--object-path", path, "--method", "com.canonical.dbusmenu.Event", String(id), "clicked", "<0>", "0");
}
