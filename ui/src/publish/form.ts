// The Publish panel's profile form: what to publish (the local app), where
// (the queen and the mount), how to trust the queen, and the cell key. The
// checks below mirror the app's (hlhv-cell's profile validation), so that a
// mistake is pointed at in its field before anything is saved; the app
// checks again and has the last word.
import type { ProfileInput, ProfileView } from "../bindings";
import { MAX_SECRET_LEN, fillValues, hostPort, hostPortError, readValues, secretError, showFieldErrors, validPort } from "../form-kit";

/** The form's fields, by input name. */
export interface PublishValues {
  name: string;
  queen: string;
  mount: string;
  to: string;
  ca_file: string;
  pin_sha256: string;
  sni: string;
  /** The largest request body, in MiB (blank: the cell's default). */
  max_body_mib: string;
  public_url: string;
  key: string;
}

export type FieldErrors = Partial<Record<keyof PublishValues, string>>;

/** The longest cell key the app accepts (`MAX_TOKEN_LEN`). */
export const MAX_KEY_LEN = MAX_SECRET_LEN;

const MIB = 1024 * 1024;

const FIELDS = ["name", "queen", "mount", "to", "ca_file", "pin_sha256", "sni", "max_body_mib", "public_url", "key"] as const;

/** Why each field is refused; `needKey`: a new profile needs its key. */
export function validatePublish(v: PublishValues, needKey: boolean): FieldErrors {
  const errors: FieldErrors = {};
  if (!v.name.trim()) errors.name = "Enter a name.";
  else if (v.name.includes("/")) errors.name = "A name cannot contain “/”.";
  else if ([...v.name.trim()].length > 64) errors.name = "A name has at most 64 characters.";

  const queen = hostPortError(v.queen, "the queen's", "queen.example:2001");
  if (queen) errors.queen = queen;

  const mount = v.mount.trim();
  const slash = mount.indexOf("/");
  const mountHost = slash < 0 ? mount : mount.slice(0, slash);
  if (!mount) errors.mount = "Enter where to publish, HOST/PATH.";
  else if (mount.includes("://")) errors.mount = "No scheme: HOST/PATH, e.g. demo.example/app/.";
  else if (!mountHost || /[\s?#]/.test(mount)) errors.mount = "Expected HOST/PATH, e.g. demo.example/app/.";

  const to = v.to.trim();
  const local = /^http:\/\/([^/?#@]+)\/?$/.exec(to);
  const lp = local ? hostPort(local[1]) : null;
  if (!to) errors.to = "Enter the local app's URL, e.g. http://127.0.0.1:3000.";
  else if (!/^http:\/\//.test(to)) errors.to = "Only http:// is supported for the local app.";
  else if (!lp || !lp.host || !validPort(lp.port)) errors.to = "Expected http://HOST:PORT, without a path.";

  const pin = v.pin_sha256.trim();
  if (pin && !/^[0-9a-fA-F]{64}$/.test(pin)) errors.pin_sha256 = "A pin is 64 hexadecimal characters.";

  const max = v.max_body_mib.trim();
  if (max && !(Number.isFinite(Number(max)) && Math.floor(Number(max) * MIB) >= 1)) {
    errors.max_body_mib = "A positive number of MiB, e.g. 8.";
  }

  const url = v.public_url.trim();
  if (url && !/^https?:\/\/\S+$/.test(url)) errors.public_url = "A URL starting with https://.";

  const key = secretError(v.key, "cell key", needKey);
  if (key) errors.key = key;
  return errors;
}

/** The profile the app saves (the key goes to `sign_in`, never here). */
export function toProfileInput(v: PublishValues): ProfileInput {
  const text = (s: string) => s.trim() || undefined;
  const max = v.max_body_mib.trim();
  return {
    name: v.name.trim(),
    protocol: "hlhv",
    kind: "cell_key",
    server: v.queen.trim(),
    mount: v.mount.trim(),
    to: v.to.trim(),
    ca_file: text(v.ca_file),
    pin_sha256: text(v.pin_sha256),
    sni: text(v.sni),
    max_body: max ? Math.floor(Number(max) * MIB) : undefined,
    public_url: text(v.public_url),
  };
}

/** A saved profile back in the form (to edit it or enter its key again). */
export function fromProfileView(p: ProfileView): PublishValues {
  return {
    name: p.name,
    queen: p.server,
    mount: p.mount ?? "",
    to: p.to ?? "",
    ca_file: p.ca_file ?? "",
    pin_sha256: p.pin_sha256 ?? "",
    sni: p.sni ?? "",
    max_body_mib: p.max_body ? String(p.max_body / MIB) : "",
    // Shown only when it is not the one derived from the mount.
    public_url: p.public_url && p.public_url !== `https://${p.mount ?? ""}` ? p.public_url : "",
    key: "",
  };
}

/** A saved profile's line: the local app, where it is published, the key. */
export function publishDetail(p: ProfileView): string {
  const parts = [`${p.to ?? "?"} → ${p.public_url ?? p.mount ?? "?"}`, `queen ${p.server}`];
  if (p.pin_sha256) parts.push("pinned");
  parts.push(p.signed_in ? "key in keychain" : "no key stored");
  return parts.join(" · ");
}

export const FORM = `
<form id="publish-form" class="form" data-testid="publish-form" autocomplete="off" novalidate>
  <h2>Add a publication</h2>
  <label>Name <input name="name" required maxlength="64" aria-describedby="publish-err-name" data-testid="publish-name" />
    <span id="publish-err-name" class="field-error" data-error="name"></span></label>
  <label>Local app <input name="to" required placeholder="http://127.0.0.1:3000" aria-describedby="publish-err-to" data-testid="publish-to" />
    <span id="publish-err-to" class="field-error" data-error="to"></span></label>
  <label>Queen <input name="queen" required placeholder="queen.example:2001" aria-describedby="publish-err-queen" data-testid="publish-queen" />
    <span id="publish-err-queen" class="field-error" data-error="queen"></span></label>
  <label>Mount <input name="mount" required placeholder="demo.example/app/" aria-describedby="publish-mount-hint publish-err-mount" data-testid="publish-mount" />
    <span id="publish-mount-hint" class="hint">Host and path the queen routes to this app; a path ending in / takes everything below it.</span>
    <span id="publish-err-mount" class="field-error" data-error="mount"></span></label>
  <label>Extra CA file (PEM, optional) <input name="ca_file" placeholder="/path/to/ca.pem" data-testid="publish-ca" /></label>
  <label>Certificate pin (SHA-256 of the key, optional) <input name="pin_sha256" aria-describedby="publish-err-pin_sha256" data-testid="publish-pin" />
    <span id="publish-err-pin_sha256" class="field-error" data-error="pin_sha256"></span></label>
  <label>TLS server name (SNI, optional) <input name="sni" placeholder="the queen's host" data-testid="publish-sni" /></label>
  <label>Largest request body (MiB, optional) <input name="max_body_mib" inputmode="decimal" placeholder="8" aria-describedby="publish-err-max_body_mib" data-testid="publish-max-body" />
    <span id="publish-err-max_body_mib" class="field-error" data-error="max_body_mib"></span></label>
  <label>Public URL (optional) <input name="public_url" placeholder="https:// + the mount" aria-describedby="publish-err-public_url" data-testid="publish-public-url" />
    <span id="publish-err-public_url" class="field-error" data-error="public_url"></span></label>
  <label>Cell key <input name="key" type="password" spellcheck="false" aria-describedby="publish-key-hint publish-err-key" data-testid="publish-key" />
    <span id="publish-key-hint" class="hint">The queen's connKey. Stored in the system keychain only; it is never shown again.</span>
    <span id="publish-err-key" class="field-error" data-error="key"></span></label>
  <button type="submit" class="primary" data-testid="publish-save">Save and sign in</button>
  <p id="publish-form-status" class="hint" role="status" data-testid="publish-form-status"></p>
</form>`;

/** The form's current values. */
export function readForm(form: HTMLFormElement): PublishValues {
  return readValues(form, FIELDS);
}

/** Puts values into the form. */
export function fillForm(form: HTMLFormElement, v: PublishValues): void {
  fillValues(form, { ...v });
}

/** Marks the refused fields (aria-invalid, the message under each); focuses the first. */
export function showErrors(form: HTMLFormElement, errors: FieldErrors): void {
  showFieldErrors(form, errors);
}
