// Share links (docs/links.md): a profile's httvps:// link and QR code, and
// a profile added from a link on the clipboard. The link and QR code come
// from the app (`share_link`); a secret is put in only when the user ticks
// the box, and the dialog then says in red that the link is a password.
// Dynamic text is set with textContent; the QR code's SVG is shown as an
// image (a data: URL), never parsed into the page.
import { asCommandError, call, type ShownError } from "./api";
import type { LinkAdded, LinkShare, Overview, ProtocolInfo } from "./bindings";

/** How a link starts (the app checks everything else). */
export const LINK_PREFIX = "httvps://add?";

/** Whether pasted text looks like a share link (before asking the app). */
export function looksLikeLink(text: string): boolean {
  return text.trim().toLowerCase().startsWith(LINK_PREFIX);
}

/** The red warning shown under a link that carries the secret. */
export const SECRET_WARNING =
  "This link contains the secret. Anyone who has it — or a photo of the QR code — can sign in as you. Send it only over a channel you trust, and never post it.";

/** Names of profile fields the app left out of a link, in words. */
const LEFT_OUT: Record<string, string> = {
  ca_file: "the CA file (a file on this computer: the other side needs its own, or a certificate pin)",
  listen: "the proxy address (it is open to the network)",
  dns_listen: "the DNS address (it is open to the network)",
};

/** What the dialog says about fields that stayed out of the link, or "". */
export function leftOutText(fields: readonly string[]): string {
  if (fields.length === 0) return "";
  return `Not in the link: ${fields.map((f) => LEFT_OUT[f] ?? f).join("; ")}.`;
}

/** The QR code's SVG as an image source. */
export function qrSource(svg: string): string {
  return `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
}

/** The sentence after "Add from link": what was added, where, and whether
 * it still needs its secret. */
export function addedText(added: LinkAdded, protocols: readonly ProtocolInfo[]): string {
  const info = protocols.find((p) => p.id === added.protocol);
  const title = info?.title ?? added.protocol;
  const where =
    info?.mode === "publish" ? " It is in the Publish panel." : info?.mode === "remote_access" ? " It is in the Remote access panel." : "";
  const verb = added.replaced ? "replaced" : "added";
  const secret = added.secret_saved
    ? " Its secret is in the system keychain."
    : " Sign in to it (enter its secret) before using it.";
  return `${title} profile “${added.name}” ${verb}.${secret}${where}`;
}

/** What the share dialog needs from its panel. */
export interface ShareHost {
  showError(error: ShownError): void;
}

/** The Share dialog: one per panel, opened for a profile by name. */
export class ShareDialog {
  readonly element: HTMLElement;
  private name = "";
  private shown: LinkShare | null = null;

  constructor(private host: ShareHost) {
    this.element = document.createElement("section");
    this.element.className = "card link-text";
    this.element.hidden = true;
    this.element.dataset.testid = "link-dialog";
    this.element.setAttribute("aria-label", "Share a profile");
    const title = document.createElement("h2");
    title.dataset.part = "title";
    const secret = document.createElement("label");
    secret.className = "check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.testid = "link-secret";
    secret.append(box, " Include the secret (the link becomes a password)");
    const warning = document.createElement("p");
    warning.className = "error";
    warning.setAttribute("role", "alert");
    warning.dataset.testid = "link-warning";
    warning.hidden = true;
    const link = document.createElement("textarea");
    link.readOnly = true;
    link.rows = 3;
    link.spellcheck = false;
    link.dataset.testid = "link-text";
    link.setAttribute("aria-label", "Share link");
    const qr = document.createElement("img");
    qr.alt = "QR code of the link";
    qr.width = 240;
    qr.height = 240;
    qr.dataset.testid = "link-qr";
    const note = document.createElement("p");
    note.className = "hint";
    note.dataset.testid = "link-note";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "primary";
    copy.textContent = "Copy link";
    copy.dataset.testid = "link-copy";
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "Close";
    close.dataset.testid = "link-close";
    this.element.append(title, secret, warning, link, qr, note, copy, " ", close);
    box.addEventListener("change", () => void this.load(box.checked));
    copy.addEventListener("click", () => void this.copy());
    close.addEventListener("click", () => this.close());
  }

  private part(testid: string): HTMLElement {
    return this.element.querySelector(`[data-testid="${testid}"]`) as HTMLElement;
  }

  /** Opens the dialog for profile `name`, without its secret. */
  async open(name: string): Promise<void> {
    this.name = name;
    (this.part("link-secret") as HTMLInputElement).checked = false;
    (this.element.querySelector('[data-part="title"]') as HTMLElement).textContent = `Share “${name}”`;
    this.element.hidden = false;
    await this.load(false);
  }

  /** Hides the dialog and forgets the link (it may hold a secret). */
  close(): void {
    this.element.hidden = true;
    this.shown = null;
    (this.part("link-text") as HTMLTextAreaElement).value = "";
    (this.part("link-qr") as HTMLImageElement).removeAttribute("src");
    (this.part("link-secret") as HTMLInputElement).checked = false;
    this.part("link-warning").hidden = true;
  }

  private async load(includeSecret: boolean): Promise<void> {
    try {
      this.render(await call("share_link", { name: this.name, includeSecret }));
    } catch (e) {
      (this.part("link-secret") as HTMLInputElement).checked = false;
      if (includeSecret && this.shown?.contains_secret) this.close();
      this.host.showError(asCommandError(e));
    }
  }

  private render(share: LinkShare): void {
    this.shown = share;
    (this.part("link-text") as HTMLTextAreaElement).value = share.link;
    (this.part("link-qr") as HTMLImageElement).src = qrSource(share.qr_svg);
    const warning = this.part("link-warning");
    warning.hidden = !share.contains_secret;
    warning.textContent = share.contains_secret ? SECRET_WARNING : "";
    this.element.dataset.secret = String(share.contains_secret);
    this.part("link-note").textContent = leftOutText(share.left_out);
  }

  private async copy(): Promise<void> {
    if (!this.shown) return;
    const button = this.part("link-copy");
    try {
      await navigator.clipboard.writeText(this.shown.link);
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy link"), 1500);
    } catch (e) {
      this.host.showError({ code: "clipboard", message: `Cannot copy: ${String(e)}` });
    }
  }
}

/** What "Add from link" needs from its panel. */
export interface AddHost {
  apply(overview: Overview): void;
  protocols(): readonly ProtocolInfo[];
}

/** "Add from clipboard", with a paste field when the clipboard cannot be
 * read (the system refused, or it holds something else). */
export class AddFromLink {
  readonly element: HTMLElement;

  constructor(private host: AddHost) {
    this.element = document.createElement("form");
    this.element.className = "form add-link";
    this.element.dataset.testid = "add-link";
    this.element.setAttribute("autocomplete", "off");
    this.element.innerHTML = `
      <h2>Add from a link</h2>
      <p class="hint">Someone sent you an httvps:// link or QR code: add its profile here.</p>
      <button type="button" data-testid="add-clipboard">Add from clipboard</button>
      <label data-part="paste" hidden>Paste the link
        <input name="link" type="password" spellcheck="false" data-testid="add-link-input" /></label>
      <label>Name (optional) <input name="name" maxlength="64" data-testid="add-link-name" /></label>
      <label class="check"><input type="checkbox" name="replace" data-testid="add-link-replace" /> Replace a profile of the same name</label>
      <button type="submit" data-part="add" data-testid="add-link-submit" hidden>Add</button>
      <p class="hint" role="status" data-testid="add-link-status"></p>`;
    // The link field is a password field: the link may carry a secret.
    this.part("add-clipboard").addEventListener("click", () => void this.fromClipboard());
    this.element.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.add(this.input().value);
    });
  }

  private part(testid: string): HTMLElement {
    return this.element.querySelector(`[data-testid="${testid}"]`) as HTMLElement;
  }

  private input(): HTMLInputElement {
    return this.part("add-link-input") as HTMLInputElement;
  }

  private status(text: string): void {
    this.part("add-link-status").textContent = text;
  }

  /** Shows the paste field (the clipboard could not be used). */
  private askToPaste(why: string): void {
    (this.element.querySelector('[data-part="paste"]') as HTMLElement).hidden = false;
    (this.element.querySelector('[data-part="add"]') as HTMLElement).hidden = false;
    this.status(why);
    this.input().focus();
  }

  async fromClipboard(): Promise<void> {
    let text: string;
    try {
      text = await navigator.clipboard.readText();
    } catch {
      this.askToPaste("The clipboard cannot be read here: paste the link below and press Add.");
      return;
    }
    if (!looksLikeLink(text)) {
      this.askToPaste("The clipboard holds no httvps:// link: copy the link again, or paste it below.");
      return;
    }
    await this.add(text);
  }

  /** Asks the app to add the link's profile; says what happened in words. */
  async add(link: string): Promise<boolean> {
    const form = this.element as HTMLFormElement;
    const name = (form.elements.namedItem("name") as HTMLInputElement).value.trim();
    const replace = (form.elements.namedItem("replace") as HTMLInputElement).checked;
    if (!link.trim()) {
      this.status("Paste a link first.");
      return false;
    }
    this.status("Adding…");
    try {
      const added = await call("add_from_link", { link: link.trim(), name: name || null, replace });
      this.input().value = "";
      form.reset();
      this.status(addedText(added, this.host.protocols()));
      this.host.apply(added.overview);
      return true;
    } catch (e) {
      this.status(`Not added: ${asCommandError(e).message}`);
      return false;
    }
  }
}
