// The profile form's protocol-specific fields: one function per protocol
// that builds its inputs and reads them back into a `ProfileInput`. A
// protocol without an entry here cannot be saved from the window yet. The
// secret each kind of profile signs in with (a token, a key) is described
// by SECRETS, so the form and the profile list name it right.
import type { ProfileInput, ProfileKind, Protocol, Transport } from "../bindings";

/** The protocol's part of a profile (everything but the name and protocol). */
export type ProtocolPart = Omit<ProfileInput, "name" | "protocol">;

export interface FieldSet {
  /** The inputs, to be placed inside the form. */
  readonly element: HTMLElement;
  /** Shows the inputs that apply (after a change or a reset). */
  sync(): void;
  /** How the profile signs in, as the inputs stand. */
  kind(): ProfileKind;
  /** Reads the inputs. */
  read(data: FormData): ProtocolPart;
}

/** The secret a kind of profile signs in with (handed to `sign_in`). */
export interface Secret {
  /** The form's label for it. */
  readonly label: string;
  /** Its name in messages: "its token is in the system keychain". */
  readonly noun: string;
  /** A saved profile whose secret is stored / is not. */
  readonly stored: string;
  readonly missing: string;
  /** The button that removes it from the keychain. */
  readonly forget: string;
  /** Why a value is refused before anything is saved (null: it may be sent). */
  check(value: string): string | null;
}

const TOKEN: Secret = {
  label: "Token",
  noun: "token",
  stored: "signed in (token in keychain)",
  missing: "signed out",
  forget: "Sign out",
  check: () => null,
};

/** An HT pre-shared key: 32 bytes as 64 hexadecimal characters. */
export const HT_KEY_PATTERN = /^[0-9a-fA-F]{64}$/;

const KEY: Secret = {
  label: "Key (64 hex characters)",
  noun: "key",
  stored: "key in keychain",
  missing: "no key stored",
  forget: "Forget key",
  check(value) {
    const key = value.trim();
    if (HT_KEY_PATTERN.test(key)) return null;
    return key.length === 64
      ? "The key must be 64 hexadecimal characters (0–9, a–f); this one has other characters."
      : `The key must be 64 hexadecimal characters (0–9, a–f); this one has ${key.length}.`;
  },
};

/** An HLHV cell key (the queen's connKey): any printable text. Such
 * profiles are made in the Publish panel; listed here so every kind of
 * profile names its secret. */
const CELL_KEY: Secret = {
  label: "Cell key",
  noun: "cell key",
  stored: "key in keychain",
  missing: "no key stored",
  forget: "Forget key",
  check: (value) => (value.trim() ? null : "Enter the cell key."),
};

/** A Relay's JWT. Such profiles are made in the Remote access panel;
 * listed here so every kind of profile names its secret. */
const RELAY_TOKEN: Secret = {
  label: "Relay token",
  noun: "relay token",
  stored: "token in keychain",
  missing: "no token stored",
  forget: "Forget token",
  check: (value) => (value.trim() ? null : "Enter the relay token."),
};

/** The secret of each kind of profile. */
export const SECRETS: Record<ProfileKind, Secret> = {
  gateway: TOKEN,
  control_plane: TOKEN,
  preshared_key: KEY,
  cell_key: CELL_KEY,
  relay_token: RELAY_TOKEN,
};

export type FormFields = () => FieldSet;

/** Each HTTVPS transport's name for people, in the order the form offers them. */
export const TRANSPORTS: Record<Transport, string> = {
  h1: "HTTP/1.1 (TCP)",
  h3: "HTTP/3 (QUIC)",
  auto: "Automatic",
};

/** The form's default transport: what every gateway speaks. */
export const DEFAULT_TRANSPORT: Transport = "h1";

function transportOptions(): string {
  return (Object.keys(TRANSPORTS) as Transport[])
    .map((t) => `<option value="${t}"${t === DEFAULT_TRANSPORT ? " selected" : ""}>${TRANSPORTS[t]}</option>`)
    .join("");
}

/** A transport from the form, or the default for anything else. */
export function asTransport(value: unknown): Transport {
  return (Object.keys(TRANSPORTS) as unknown[]).includes(value) ? (value as Transport) : DEFAULT_TRANSPORT;
}

const HTTVPS = `
<fieldset>
  <legend>Sign in with</legend>
  <label><input type="radio" name="kind" value="gateway" checked /> a gateway URL and a session token</label>
  <label><input type="radio" name="kind" value="control_plane" /> a control plane, a device id and a device token</label>
</fieldset>
<label>Server URL <input name="server" required placeholder="wss://gateway.example/ws" data-testid="profile-server" /></label>
<label class="device">Device id <input name="device_id" data-testid="profile-device" /></label>
<label class="device">Region (optional) <input name="region" data-testid="profile-region" /></label>
<label>Extra CA file (PEM, optional) <input name="ca_file" placeholder="/path/to/ca.pem" data-testid="profile-ca" /></label>
<label>Certificate pin (SHA-256 of the key, optional) <input name="pin_sha256" data-testid="profile-pin" /></label>
<label>TLS server name (SNI, optional) <input name="sni" placeholder="the URL's host" data-testid="profile-sni" /></label>
<label>Transport <select name="transport" aria-describedby="profile-transport-hint" data-testid="profile-transport">
  ${transportOptions()}
</select>
  <span id="profile-transport-hint" class="hint">What carries the tunnel. HTTP/3 needs UDP to the gateway's port; Automatic tries HTTP/3
  and falls back to HTTP/1.1 within about a second when UDP is blocked.</span></label>`;

/** HTTVPS: a gateway URL and a session token, or a control plane and a device. */
export function httvpsFields(): FieldSet {
  const element = document.createElement("div");
  element.className = "fields";
  element.dataset.fields = "httvps";
  element.innerHTML = HTTVPS;
  const input = (name: string) => element.querySelector(`[name="${name}"]`) as HTMLInputElement;
  const kind = (): ProfileKind =>
    (element.querySelector('[name="kind"]:checked') as HTMLInputElement | null)?.value === "control_plane"
      ? "control_plane"
      : "gateway";
  return {
    element,
    kind,
    sync() {
      const device = kind() === "control_plane";
      for (const label of element.querySelectorAll<HTMLElement>(".device")) label.hidden = !device;
      input("device_id").required = device;
      input("server").placeholder = device ? "https://api.example" : "wss://gateway.example/ws";
    },
    read(data) {
      const text = (k: string) => String(data.get(k) ?? "").trim();
      const device = kind() === "control_plane";
      return {
        kind: kind(),
        server: text("server"),
        device_id: (device && text("device_id")) || undefined,
        region: (device && text("region")) || undefined,
        ca_file: text("ca_file") || undefined,
        pin_sha256: text("pin_sha256") || undefined,
        sni: text("sni") || undefined,
        transport: asTransport(data.get("transport")),
      };
    },
  };
}

const HT = `
<label>Server URL <input name="server" required placeholder="https://ht.example:8443" aria-describedby="profile-insecure" data-testid="profile-server" /></label>
<p id="profile-insecure" class="warning" role="status" data-testid="profile-insecure" hidden>This is a plain <code>http://</code> URL: no TLS. HT's own cipher hides
  the traffic but cannot tell whether it was changed on the way (no integrity). Use <code>https://</code> unless the network
  between you and the server is trusted.</p>
<label>Extra CA file (PEM, optional) <input name="ca_file" placeholder="/path/to/ca.pem" data-testid="profile-ca" /></label>
<label>Certificate pin (SHA-256 of the key, optional) <input name="pin_sha256" data-testid="profile-pin" /></label>
<label>TLS server name (SNI, optional) <input name="sni" placeholder="the URL's host" data-testid="profile-sni" /></label>
<label>Connections (1–64, optional) <input name="connections" type="number" min="1" max="64" step="1" placeholder="4" data-testid="profile-connections" />
  <span class="hint">HTTP connections to the server per session; blank means 4.</span></label>
<label>DNS address (optional) <input name="dns_listen" placeholder="127.0.0.1:5353" data-testid="profile-dns" />
  <span class="hint">Serve DNS through the tunnel on this local <code>host:port</code>; blank means off.</span></label>`;

/** Whether an HT URL goes without TLS. */
export function isPlainHttp(url: string): boolean {
  return /^http:\/\//i.test(url.trim());
}

/** HT: a server URL, its TLS checks, connections, DNS; signs in with a key. */
export function htFields(): FieldSet {
  const element = document.createElement("div");
  element.className = "fields";
  element.dataset.fields = "ht";
  element.innerHTML = HT;
  const server = element.querySelector('[name="server"]') as HTMLInputElement;
  const warning = element.querySelector('[data-testid="profile-insecure"]') as HTMLElement;
  const warn = () => {
    warning.hidden = !isPlainHttp(server.value);
  };
  // Warn while typing, not only once the field loses focus.
  server.addEventListener("input", warn);
  return {
    element,
    kind: () => "preshared_key",
    sync: warn,
    read(data) {
      const text = (k: string) => String(data.get(k) ?? "").trim();
      const connections = text("connections");
      return {
        kind: "preshared_key",
        server: text("server"),
        ca_file: text("ca_file") || undefined,
        pin_sha256: text("pin_sha256") || undefined,
        sni: text("sni") || undefined,
        connections: connections ? Number(connections) : undefined,
        dns_listen: text("dns_listen") || undefined,
      };
    },
  };
}

/** The form fields of each protocol the window can create profiles for. */
export const FORM_FIELDS: Partial<Record<Protocol, FormFields>> = {
  httvps: httvpsFields,
  ht: htFields,
};
