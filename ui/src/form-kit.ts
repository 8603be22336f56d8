// What the Publish and Remote access profile forms share: reading and
// filling their named inputs, marking refused fields, and the HOST:PORT
// check both a queen and a relay address go through.

/** `HOST[:PORT]` or `[v6][:PORT]`, as the app splits it; null when malformed. */
export function hostPort(text: string): { host: string; port: string | null } | null {
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6) return { host: v6[1], port: v6[2] ?? null };
  const parts = text.split(":");
  if (parts.length > 2) return null;
  return { host: parts[0], port: parts.length === 2 ? parts[1] : null };
}

/** A port 1–65535 (or none). */
export function validPort(port: string | null): boolean {
  return port === null || (/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535);
}

/** Why a HOST[:PORT] field is refused (`what`: "the queen's", "the relay's"), or null. */
export function hostPortError(value: string, what: string, example: string): string | null {
  const text = value.trim();
  const hp = hostPort(text);
  if (!text) return `Enter ${what} HOST:PORT.`;
  if (text.includes("://") || text.includes("/")) return "Give HOST:PORT, without a scheme or path.";
  if (!hp || !hp.host || !validPort(hp.port)) return `Expected HOST:PORT, e.g. ${example}.`;
  return null;
}

/** The form's named inputs' values, for `names`. */
export function readValues<K extends string>(form: HTMLFormElement, names: readonly K[]): Record<K, string> {
  const values = {} as Record<K, string>;
  for (const name of names) {
    values[name] = String((form.elements.namedItem(name) as HTMLInputElement | null)?.value ?? "");
  }
  return values;
}

/** Puts values into the form's named inputs. */
export function fillValues(form: HTMLFormElement, values: Record<string, string>): void {
  for (const [k, value] of Object.entries(values)) {
    const input = form.elements.namedItem(k) as HTMLInputElement | null;
    if (input) input.value = value;
  }
}

/** Marks the refused fields (aria-invalid, the message in each
 * `[data-error]` span); focuses the first. */
export function showFieldErrors(form: HTMLFormElement, errors: Partial<Record<string, string>>): void {
  for (const span of form.querySelectorAll<HTMLElement>("[data-error]")) {
    const name = span.dataset.error ?? "";
    const message = errors[name] ?? "";
    span.textContent = message;
    const input = form.elements.namedItem(name) as HTMLInputElement | null;
    if (message) input?.setAttribute("aria-invalid", "true");
    else input?.removeAttribute("aria-invalid");
  }
  const first = form.querySelector<HTMLInputElement>('[aria-invalid="true"]');
  first?.focus();
}

/** The longest secret the app accepts from a form (`MAX_TOKEN_LEN`). */
export const MAX_SECRET_LEN = 4096;

/** Why a secret is refused (`noun`: "cell key", "relay token"), or null;
 * `needed`: a new profile must have one. */
export function secretError(value: string, noun: string, needed: boolean): string | null {
  const secret = value.trim();
  if (needed && !secret) return `Enter the ${noun}.`;
  if (secret.length > MAX_SECRET_LEN || /[\u0000-\u001f\u007f]/.test(secret)) {
    return `A ${noun} is at most ${MAX_SECRET_LEN} printable characters.`;
  }
  return null;
}
