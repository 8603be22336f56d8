// What the UI tests share: an overview of an app with nothing running, to
// which each test file adds its protocols and profiles.
import type { Overview } from "./bindings";

/** An idle app's overview (no protocols or profiles), with `over` on top. */
export function idleOverview(over: Partial<Overview> = {}): Overview {
  return {
    protocols: [],
    profiles: [],
    selected: null,
    preferences: { proxy_port: 1080, start_minimized: false, autostart: false, system_proxy: false, fast_connect: false },
    system_proxy_available: false,
    snapshot: {
      state: { state: "disconnected", reason: null },
      proxy_addr: null,
      endpoints: [],
      warnings: [],
      open: [],
      closed: [],
      totals: { streams_total: 0, streams_open: 0, bytes_up: 0, bytes_down: 0, rate_up: 0, rate_down: 0, connections: 1, slot_waits: 0, evictions: 0 },
    },
    connection: null,
    share: null,
    log: [],
    ...over,
  };
}
