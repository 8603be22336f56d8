// Generated from the Rust types by `UPDATE_BINDINGS=1 cargo test -p app bindings`.
// Do not edit: change the Rust types and regenerate.

import type { Channel } from "@tauri-apps/api/core";

export type SessionState = { "state": "disconnected", 
/**
 * Why the last session ended, when it ended on its own.
 */
reason: string | null, } | { "state": "authenticating", 
/**
 * The gateway or control plane being contacted.
 */
server: string, } | { "state": "active", 
/**
 * The gateway's session id.
 */
session_id: string, 
/**
 * The gateway URL.
 */
gateway: string, 
/**
 * The session's stream limit.
 */
max_streams: number, 
/**
 * When the session became active (seconds since the Unix epoch).
 */
since_unix: number, } | { "state": "reconnecting", 
/**
 * The attempt about to be made (1-based).
 */
attempt: number, 
/**
 * The policy's limit; 0 when it keeps trying without one.
 */
max_attempts: number, 
/**
 * Seconds until the attempt.
 */
retry_in_secs: number, 
/**
 * Why the previous session or attempt failed.
 */
last_error: string, };

export type StreamState = "opening" | "open" | "closed";

export type Action = "tunnel" | "direct" | "block";

export type RuleKind = "domain" | "domain-suffix" | "domain-keyword" | "ip" | "port" | "private";

export type Rule = { 
/**
 * What the rule looks at.
 */
match: RuleKind, 
/**
 * The domain, CIDR or port; empty for `private`.
 */
value?: string, 
/**
 * Where a matching connection goes.
 */
action: Action, };

export type RuleSet = { 
/**
 * Where connections no rule matches go.
 */
default: Action, 
/**
 * The rules, in order.
 */
rules: Array<Rule>, };

export type Decision = { 
/**
 * Where the connection goes.
 */
action: Action, 
/**
 * The rule that matched, from 0 (the position in [`RuleSet::rules`]);
 * `None` when none did and the default applies.
 */
rule: number | null, 
/**
 * For people and the stream table: `rule 2: domain-suffix corp.example
 * → direct`, or `default → tunnel`.
 */
label: string, };

export type StreamInfo = { 
/**
 * Engine-wide row id (unique across sessions).
 */
key: number, 
/**
 * The tunnel's stream id (`s1`, …) once open.
 */
stream_id: string | null, 
/**
 * `host:port`.
 */
target: string, 
/**
 * The local client (browser, app) address.
 */
client: string, 
/**
 * `socks5`, `http_connect` or `http_forward`.
 */
protocol: string, 
/**
 * Seconds since the Unix epoch when the connection arrived.
 */
started_unix: number, 
/**
 * Seconds since the Unix epoch when it closed (`None` while open): a
 * closed row's age is how long it lived, which no longer changes.
 */
ended_unix: number | null, 
/**
 * Client → target bytes.
 */
bytes_up: number, 
/**
 * Target → client bytes.
 */
bytes_down: number, 
/**
 * Current upload rate, bytes per second.
 */
rate_up: number, 
/**
 * Current download rate, bytes per second.
 */
rate_down: number, 
/**
 * State.
 */
state: StreamState, 
/**
 * Why it closed (`eof`, an error code and text, …).
 */
close_reason: string | null, 
/**
 * Milliseconds spent waiting for a slot or the tunnel before opening.
 */
wait_ms: number, 
/**
 * Where the routing rules sent this connection (`tunnel`, `direct`,
 * `block`); `None` for rows the rules do not judge (DNS, inbound).
 */
route: Action | null, 
/**
 * Which rule decided, as the user wrote it (`rule 2: domain-suffix
 * corp.example → direct`), or `default → tunnel`.
 */
rule: string | null, };

export type Totals = { 
/**
 * Streams ever opened.
 */
streams_total: number, 
/**
 * Streams open now.
 */
streams_open: number, 
/**
 * Bytes up, all streams.
 */
bytes_up: number, 
/**
 * Bytes down, all streams.
 */
bytes_down: number, 
/**
 * Current total upload rate.
 */
rate_up: number, 
/**
 * Current total download rate.
 */
rate_down: number, 
/**
 * Connections the current session uses (a pool may hold several).
 */
connections: number, 
/**
 * Opens of the current session that had to wait for a free slot.
 */
slot_waits: number, 
/**
 * Idle streams the current session closed to free a slot.
 */
evictions: number, };

export type WarningCode = "open_proxy" | "open_dns";

export type Warning = { 
/**
 * Stable code.
 */
code: WarningCode, 
/**
 * The listening address it is about.
 */
addr: string, 
/**
 * Human sentence, without a remedy (front-ends name their own: a flag,
 * a setting).
 */
message: string, };

export type Snapshot = { 
/**
 * The session state.
 */
state: SessionState, 
/**
 * Where the local proxy listens, while running outbound.
 */
proxy_addr: string | null, 
/**
 * Where others reach what is published, while a publication is active.
 */
endpoints: Array<string>, 
/**
 * What the current run exposes (a proxy or DNS server open to the
 * network), while it runs.
 */
warnings: Array<Warning>, 
/**
 * Open streams.
 */
open: Array<StreamInfo>, 
/**
 * Recently closed streams, oldest first.
 */
closed: Array<StreamInfo>, 
/**
 * Totals.
 */
totals: Totals, };

export type ErrorCode = "auth_failed" | "bad_version" | "bad_hello" | "config_error" | "handshake_failed" | "control_plane_error" | "session_lost" | "reconnect_failed" | "stream_limit" | "protocol_error" | "server_error" | "unsupported";

export type EngineEvent = { "type": "state", "data": SessionState } | { "type": "stream_opened", "data": StreamInfo } | { "type": "stream_closed", "data": StreamInfo } | { "type": "streams", "data": { 
/**
 * Open streams.
 */
open: Array<StreamInfo>, 
/**
 * Totals.
 */
totals: Totals, } } | { "type": "error", "data": { 
/**
 * Stable code (`auth_failed`, `handshake_failed`, `session_lost`, …).
 */
code: ErrorCode, 
/**
 * Human sentence.
 */
message: string, } };

export type Protocol = "httvps" | "ht" | "hlhv" | "relay";

export type Mode = "connect" | "publish" | "remote_access";

export type Carries = { 
/**
 * TCP streams (SOCKS5 CONNECT, HTTP proxy).
 */
streams: boolean, 
/**
 * UDP datagrams (SOCKS5 UDP ASSOCIATE).
 */
datagrams: boolean, 
/**
 * DNS resolved on the far side.
 */
dns: boolean, };

export type ProtocolInfo = { 
/**
 * The protocol.
 */
id: Protocol, 
/**
 * Its name for people.
 */
title: string, 
/**
 * What it is, in one line.
 */
summary: string, 
/**
 * The panel it belongs to.
 */
mode: Mode, 
/**
 * What it carries (connect mode).
 */
carries: Carries, 
/**
 * Whether this build can create and use its profiles.
 */
available: boolean, };

export type ProfileKind = "gateway" | "control_plane" | "preshared_key" | "cell_key" | "relay_token";

export type Transport = "h1" | "h3" | "auto";

export type ProfileView = { 
/**
 * Unique name.
 */
name: string, 
/**
 * Its protocol.
 */
protocol: Protocol, 
/**
 * How it signs in.
 */
kind: ProfileKind, 
/**
 * The gateway or control-plane URL.
 */
server: string, 
/**
 * The device id (control plane only).
 */
device_id: string | null, 
/**
 * Preferred region (control plane only).
 */
region: string | null, 
/**
 * Extra CA file.
 */
ca_file: string | null, 
/**
 * Certificate pin (hex SHA-256 of the SPKI).
 */
pin_sha256: string | null, 
/**
 * TLS server name override.
 */
sni: string | null, 
/**
 * Transport connections per session (HT).
 */
connections: number | null, 
/**
 * Where DNS is served through the tunnel (HT), `host:port`.
 */
dns_listen: string | null, 
/**
 * What carries the tunnel (HTTVPS).
 */
transport: Transport | null, 
/**
 * Where the app is published, `HOST/PATH` (HLHV).
 */
mount: string | null, 
/**
 * The local app published, `http://HOST:PORT` (HLHV).
 */
to: string | null, 
/**
 * The largest request body passed to the local app, in bytes (HLHV;
 * null: the cell's default).
 */
max_body: number | null, 
/**
 * Where people reach the app: the profile's own URL, or
 * `https://` + the mount (HLHV).
 */
public_url: string | null, 
/**
 * The tunnel's name at the relay (Relay).
 */
tunnel: string | null, 
/**
 * The local TCP ports shared (Relay).
 */
ports: Array<number> | null, 
/**
 * Whether the keychain holds its token.
 */
signed_in: boolean, };

export type ProfileInput = { 
/**
 * Unique name (no `/`).
 */
name: string, 
/**
 * Its protocol (absent: HTTVPS, as from a UI before there were others).
 */
protocol?: Protocol, 
/**
 * How it signs in.
 */
kind: ProfileKind, 
/**
 * `wss://…` gateway URL or `https://…` control-plane URL; for HLHV
 * the queen's `HOST:PORT`; for Relay the relay's `HOST[:PORT]`.
 */
server: string, 
/**
 * The device id (control plane only).
 */
device_id?: string, 
/**
 * Preferred region (control plane only).
 */
region?: string, 
/**
 * Extra CA file (PEM).
 */
ca_file?: string, 
/**
 * Certificate pin (hex SHA-256 of the SPKI).
 */
pin_sha256?: string, 
/**
 * TLS server name override.
 */
sni?: string, 
/**
 * Transport connections per session (HT; absent: 4).
 */
connections?: number, 
/**
 * Serve DNS through the tunnel on this `host:port` (HT; absent: off).
 */
dns_listen?: string, 
/**
 * What carries the tunnel (HTTVPS; absent: `h1`, as from a UI before
 * there was a choice).
 */
transport?: Transport, 
/**
 * Where to publish, `HOST/PATH` (HLHV).
 */
mount?: string, 
/**
 * The local app to publish, `http://HOST:PORT` (HLHV).
 */
to?: string, 
/**
 * The largest request body passed on, in bytes (HLHV; absent: the
 * cell's default).
 */
max_body?: number, 
/**
 * The URL shown to people, when it is not `https://` + the mount
 * (HLHV).
 */
public_url?: string, 
/**
 * The tunnel's name at the relay (Relay).
 */
tunnel?: string, 
/**
 * The local TCP ports to share (Relay).
 */
ports?: Array<number>, };

export type Preferences = { 
/**
 * Local proxy port on 127.0.0.1 (1–65535).
 */
proxy_port: number, 
/**
 * Start hidden in the tray.
 */
start_minimized: boolean, 
/**
 * Start on login.
 */
autostart: boolean, 
/**
 * Point the desktop's proxy settings at the tunnel while connected.
 */
system_proxy: boolean, 
/**
 * Fast connect: answer apps before the gateway confirms each connection
 * (one tunnel round trip less per new connection); an unreachable site
 * then shows as a closed connection instead of a precise proxy error.
 * Absent (an older UI) means off.
 */
fast_connect: boolean, };

export type Connection = { "kind": "profile", 
/**
 * Its name.
 */
name: string, 
/**
 * What carries its tunnel, as this run was started (HTTVPS; null
 * for protocols without the choice).
 */
transport: Transport | null, } | { "kind": "demo", 
/**
 * The demo gateway's URL.
 */
gateway: string, 
/**
 * A local page to fetch through the tunnel.
 */
page: string, } | { "kind": "publish", 
/**
 * The saved profile's name; null for the demo publication.
 */
name: string | null, 
/**
 * The queen's cell address, `HOST:PORT`.
 */
queen: string, 
/**
 * Where it is mounted, `HOST/PATH`.
 */
mount: string, 
/**
 * The local app published, `http://HOST:PORT`.
 */
to: string, } | { "kind": "share", 
/**
 * The saved profile's name; null for the demo share.
 */
name: string | null, 
/**
 * The relay's control address, `HOST:PORT`.
 */
relay: string, 
/**
 * The tunnel's name at the relay.
 */
tunnel: string, 
/**
 * The local ports shared (on 127.0.0.1).
 */
ports: Array<number>, };

export type ForwardInfo = { 
/**
 * The local port.
 */
port: number, 
/**
 * Where people connect, `host:port`.
 */
public: string, };

export type ShareStatus = { 
/**
 * The relay, `host:port`.
 */
relay: string, 
/**
 * Seed 004 §3.1: `disconnected`, `authenticating`, `registered`,
 * `active`, `reconnecting`.
 */
state: "disconnected" | "authenticating" | "registered" | "active" | "reconnecting", 
/**
 * The tunnel's id, once registered.
 */
tunnel_id: string | null, 
/**
 * This machine's tunnel address (`10.0.0.7/32`).
 */
address: string | null, 
/**
 * The public forwards.
 */
forwards: Array<ForwardInfo>, 
/**
 * WireGuard bytes received from the relay.
 */
bytes_in: number, 
/**
 * WireGuard bytes sent to the relay.
 */
bytes_out: number, 
/**
 * The last completed WireGuard handshake (seconds since the Unix epoch).
 */
last_handshake_unix: number | null, 
/**
 * Connections open through the forwards now.
 */
open_connections: number, 
/**
 * The next reconnect attempt (1-based) while reconnecting.
 */
attempt: number | null, 
/**
 * Seconds until that attempt.
 */
retry_in_secs: number | null, 
/**
 * The last error, in words for people (an expired sign-in says to
 * sign in again).
 */
error: string | null, };

export type LogLevel = "info" | "warn" | "error";

export type LogEntry = { 
/**
 * Milliseconds since the Unix epoch.
 */
at_ms: number, 
/**
 * Level.
 */
level: LogLevel, 
/**
 * The contract's or the app's code, for errors.
 */
code: string | null, 
/**
 * Human sentence.
 */
message: string, };

export type Notice = { 
/**
 * Title line.
 */
title: string, 
/**
 * Body text.
 */
body: string, };

export type AppEvent = { "type": "log", "data": LogEntry } | { "type": "notice", "data": Notice } | { "type": "changed" } | { "type": "share", "data": ShareStatus };

export type Overview = { 
/**
 * Every protocol the app knows, for the navigation and the forms.
 */
protocols: Array<ProtocolInfo>, 
/**
 * Saved profiles.
 */
profiles: Array<ProfileView>, 
/**
 * The profile Connect uses.
 */
selected: string | null, 
/**
 * Preferences.
 */
preferences: Preferences, 
/**
 * Whether this desktop's proxy settings can be changed.
 */
system_proxy_available: boolean, 
/**
 * The engine's state and streams.
 */
snapshot: Snapshot, 
/**
 * What is connected.
 */
connection: Connection | null, 
/**
 * The share's status (Remote access): live while sharing, the last
 * one after a share ended on its own (its error sentence), null
 * otherwise.
 */
share: ShareStatus | null, 
/**
 * The log, oldest first.
 */
log: Array<LogEntry>, };

export type LinkShare = { 
/**
 * The `httvps://add?…` link.
 */
link: string, 
/**
 * The link as a QR code (an SVG document).
 */
qr_svg: string, 
/**
 * Whether the link carries the profile's secret: then it is a
 * password, and the window says so in red.
 */
contains_secret: boolean, 
/**
 * Fields of the profile that stayed out (`ca_file`; a `listen` or
 * `dns_listen` open to the network), for the dialog to mention.
 */
left_out: Array<string>, };

export type LinkAdded = { 
/**
 * The profile's name (the link's, or the one the user gave).
 */
name: string, 
/**
 * Its protocol: which panel it belongs to.
 */
protocol: Protocol, 
/**
 * Whether the link's secret went into the keychain (else the profile
 * needs a sign-in).
 */
secret_saved: boolean, 
/**
 * Whether a profile of that name was replaced.
 */
replaced: boolean, 
/**
 * Everything the window shows, after the change.
 */
overview: Overview, };

export type StreamsUpdate = { 
/**
 * Open streams with their counters and rates.
 */
open: Array<StreamInfo>, 
/**
 * Totals.
 */
totals: Totals, };

export type ExportedLog = { 
/**
 * The connections, CSV.
 */
connections: string, 
/**
 * The log, text.
 */
log: string, 
/**
 * Rows in the CSV.
 */
rows: number, 
/**
 * Log entries in the text file.
 */
entries: number, };

export type CommandCode = "invalid_input" | "not_found" | "no_profile" | "not_signed_in" | "busy" | "already_running" | "listen_failed" | "unsupported" | "keychain" | "settings" | "autostart" | "demo_failed" | "engine" | "service_gone";

export type CommandError = { 
/**
 * Stable machine-readable code.
 */
code: CommandCode, 
/**
 * Human sentence.
 */
message: string, };

export type TrayIcon = "disconnected" | "connecting" | "connected" | "error";

export type TraySummary = { 
/**
 * Which icon.
 */
icon: TrayIcon, 
/**
 * One line for the tooltip and the menu's first (disabled) item.
 */
status: string, 
/**
 * Rates and stream count, e.g. `3 streams · ↓ 1.2 MB/s ↑ 10 kB/s`.
 */
traffic: string, 
/**
 * The busiest streams, one line each.
 */
busiest: Array<string>, 
/**
 * Whether Connect (rather than Disconnect) is offered.
 */
can_connect: boolean, 
/**
 * Whether the run is a publication (HLHV) rather than a tunnel: the
 * menu then offers "Stop publishing".
 */
publishing: boolean, 
/**
 * Whether the run is a share (Relay, Remote access): the menu then
 * offers "Stop sharing".
 */
sharing: boolean, };

/** Every command: its arguments and its result (errors are `CommandError`). */
export interface Commands {
  overview: { args: {  }; returns: Overview };
  save_profile: { args: { input: ProfileInput }; returns: Overview };
  remove_profile: { args: { name: string }; returns: Overview };
  select_profile: { args: { name: string }; returns: Overview };
  sign_in: { args: { name: string; token: string }; returns: Overview };
  sign_out: { args: { name: string }; returns: Overview };
  connect: { args: {  }; returns: Overview };
  start_demo: { args: {  }; returns: Overview };
  disconnect: { args: {  }; returns: Overview };
  publish: { args: { name: string }; returns: Overview };
  start_publish_demo: { args: {  }; returns: Overview };
  stop_publishing: { args: {  }; returns: Overview };
  share: { args: { name: string }; returns: Overview };
  share_demo: { args: { ports: number[] | null }; returns: Overview };
  stop_share: { args: {  }; returns: Overview };
  set_preferences: { args: { prefs: Preferences }; returns: Overview };
  share_link: { args: { name: string; includeSecret: boolean }; returns: LinkShare };
  add_from_link: { args: { link: string; name: string | null; replace: boolean }; returns: LinkAdded };
  routing_rules: { args: { name: string }; returns: RuleSet };
  save_routing_rules: { args: { name: string; routing: RuleSet }; returns: Overview };
  test_route: { args: { routing: RuleSet; host: string; port: number }; returns: Decision };
  close_stream: { args: { key: number }; returns: null };
  export_log: { args: {  }; returns: ExportedLog };
  watch_streams: { args: { feed: Channel<StreamsUpdate> }; returns: null };
}

/** Every event the shell emits, with its payload. */
export interface Events {
  "httvps://engine": EngineEvent;
  "httvps://app": AppEvent;
}
