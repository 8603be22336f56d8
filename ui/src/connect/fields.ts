// The profile form's protocol-specific fields: one function per protocol
// that builds its inputs and reads them back into a `ProfileInput`. A
// protocol without an entry here cannot be saved from the window yet.
import type { ProfileInput, ProfileKind, Protocol } from "../bindings";

/** The protocol's part of a profile (everything but the name and protocol). */
export type ProtocolPart = Omit<ProfileInput, "name" | "protocol">;

export interface FieldSet {
  /** The inputs, to be placed inside the form. */
  readonly element: HTMLElement;
  /** Shows the inputs that apply (after a change or a reset). */
  sync(): void;
  /** Reads the inputs. */
  read(data: FormData): ProtocolPart;
}

export type FormFields = () => FieldSet;

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
<label>TLS server name (SNI, optional) <input name="sni" placeholder="the URL's host" data-testid="profile-sni" /></label>`;

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
      };
    },
  };
}

/** The form fields of each protocol the window can create profiles for. */
export const FORM_FIELDS: Partial<Record<Protocol, FormFields>> = {
  httvps: httvpsFields,
};
