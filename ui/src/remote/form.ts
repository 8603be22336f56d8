// The Remote access panel's profile form: which local ports to share, under
// which tunnel name, through which relay, how to trust it, and the relay
// token. The checks below mirror the app's (the Relay profile's and the
// relay's own tunnel rules), so that a mistake is pointed at in its field
// before anything is saved; the app checks again and has the last word.
import type { ProfileInput, ProfileView } from "../bindings";
import { fillValues, hostPortError, readValues, secretError, showFieldErrors } from "../form-kit";

/** The form's fields, by input name. */
export interface RelayValues {
  name: string;
  relay: string;
  tunnel: string;
  /** "22, 3389": the local ports, comma or space separated. */
  ports: string;
  ca_file: string;
  pin_sha256: string;
  sni: string;
  token: string;
}

export type RelayFieldErrors = Partial<Record<keyof RelayValues, string>>;

const FIELDS = ["name", "relay", "tunnel", "ports", "ca_file", "pin_sha256", "sni", "token"] as const;

/** The relay's limits on a tunnel (`proto_relay::validate`). */
export const MAX_TUNNEL_NAME = 64;
export const MAX_PORTS = 16;

/** "22, 3389" → [22, 3389]; a message for anything else. */
export function parsePorts(text: string): number[] | string {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0) return "Enter the local ports to share, e.g. 22, 3389.";
  const ports: number[] = [];
  for (const part of parts) {
    const port = /^\d{1,5}$/.test(part) ? Number(part) : NaN;
    if (!(port >= 1 && port <= 65535)) return `“${part}” is not a port (1–65535).`;
    if (ports.includes(port)) return `Port ${port} is listed twice.`;
    ports.push(port);
  }
  if (ports.length > MAX_PORTS) return `At most ${MAX_PORTS} ports per tunnel.`;
  return ports;
}

/** Why each field is refused; `needToken`: a new profile needs its token. */
export function validateRelay(v: RelayValues, needToken: boolean): RelayFieldErrors {
  const errors: RelayFieldErrors = {};
  if (!v.name.trim()) errors.name = "Enter a name.";
  else if (v.name.includes("/")) errors.name = "A name cannot contain “/”.";
  else if ([...v.name.trim()].length > 64) errors.name = "A name has at most 64 characters.";

  const relay = hostPortError(v.relay, "the relay's", "relay.example:443");
  if (relay) errors.relay = relay;

  const tunnel = v.tunnel.trim();
  if (!tunnel) errors.tunnel = "Enter the tunnel's name at the relay.";
  else if (tunnel.length > MAX_TUNNEL_NAME || !/^[A-Za-z0-9._-]+$/.test(tunnel)) {
    errors.tunnel = `1 to ${MAX_TUNNEL_NAME} of A–Z a–z 0–9 . _ - (no spaces).`;
  }

  const ports = parsePorts(v.ports);
  if (typeof ports === "string") errors.ports = ports;

  const pin = v.pin_sha256.trim();
  if (pin && !/^[0-9a-fA-F]{64}$/.test(pin)) errors.pin_sha256 = "A pin is 64 hexadecimal characters.";

  const token = secretError(v.token, "relay token", needToken);
  if (token) errors.token = token;
  return errors;
}

/** The profile the app saves (the token goes to `sign_in`, never here).
 * Call after `validateRelay` found nothing. */
export function toProfileInput(v: RelayValues): ProfileInput {
  const text = (s: string) => s.trim() || undefined;
  const ports = parsePorts(v.ports);
  return {
    name: v.name.trim(),
    protocol: "relay",
    kind: "relay_token",
    server: v.relay.trim(),
    tunnel: v.tunnel.trim(),
    ports: typeof ports === "string" ? [] : ports,
    ca_file: text(v.ca_file),
    pin_sha256: text(v.pin_sha256),
    sni: text(v.sni),
  };
}

/** A saved profile back in the form (to edit it or enter its token again). */
export function fromProfileView(p: ProfileView): RelayValues {
  return {
    name: p.name,
    relay: p.server,
    tunnel: p.tunnel ?? "",
    ports: (p.ports ?? []).join(", "),
    ca_file: p.ca_file ?? "",
    pin_sha256: p.pin_sha256 ?? "",
    sni: p.sni ?? "",
    token: "",
  };
}

/** A saved profile's line: the ports, the tunnel, the relay, the token. */
export function relayDetail(p: ProfileView): string {
  const ports = (p.ports ?? []).map((port) => `127.0.0.1:${port}`).join(", ");
  const parts = [`${ports || "?"} as ${p.tunnel ?? "?"}`, `relay ${p.server}`];
  if (p.pin_sha256) parts.push("pinned");
  parts.push(p.signed_in ? "token in keychain" : "no token stored");
  return parts.join(" · ");
}

export const FORM = `
<form id="share-form" class="form" data-testid="share-form" autocomplete="off" novalidate>
  <h2>Add a shared machine</h2>
  <label>Name <input name="name" required maxlength="64" aria-describedby="share-err-name" data-testid="share-name" />
    <span id="share-err-name" class="field-error" data-error="name"></span></label>
  <label>Local ports <input name="ports" required placeholder="22, 3389" inputmode="numeric" aria-describedby="share-ports-hint share-err-ports" data-testid="share-ports" />
    <span id="share-ports-hint" class="hint">Services on this computer (127.0.0.1) that colleagues may reach.</span>
    <span id="share-err-ports" class="field-error" data-error="ports"></span></label>
  <label>Relay <input name="relay" required placeholder="relay.example:443" aria-describedby="share-err-relay" data-testid="share-relay-input" />
    <span id="share-err-relay" class="field-error" data-error="relay"></span></label>
  <label>Tunnel name <input name="tunnel" required maxlength="64" placeholder="my-desk" aria-describedby="share-tunnel-hint share-err-tunnel" data-testid="share-tunnel-input" />
    <span id="share-tunnel-hint" class="hint">How the relay names this computer for your account.</span>
    <span id="share-err-tunnel" class="field-error" data-error="tunnel"></span></label>
  <label>Extra CA file (PEM, optional) <input name="ca_file" placeholder="/path/to/ca.pem" data-testid="share-ca" /></label>
  <label>Certificate pin (SHA-256 of the key, optional) <input name="pin_sha256" aria-describedby="share-err-pin_sha256" data-testid="share-pin" />
    <span id="share-err-pin_sha256" class="field-error" data-error="pin_sha256"></span></label>
  <label>TLS server name (SNI, optional) <input name="sni" placeholder="the relay's host" data-testid="share-sni" /></label>
  <label>Relay token <input name="token" type="password" spellcheck="false" aria-describedby="share-token-hint share-err-token" data-testid="share-token" />
    <span id="share-token-hint" class="hint">The JWT your relay's administrator gave you. Stored in the system keychain only; it is never shown again.</span>
    <span id="share-err-token" class="field-error" data-error="token"></span></label>
  <button type="submit" class="primary" data-testid="share-save">Save and sign in</button>
  <p id="share-form-status" class="hint" role="status" data-testid="share-form-status"></p>
</form>`;

/** The form's current values. */
export function readForm(form: HTMLFormElement): RelayValues {
  return readValues(form, FIELDS);
}

/** Puts values into the form. */
export function fillForm(form: HTMLFormElement, v: RelayValues): void {
  fillValues(form, { ...v });
}

/** Marks the refused fields; focuses the first. */
export function showErrors(form: HTMLFormElement, errors: RelayFieldErrors): void {
  showFieldErrors(form, errors);
}
