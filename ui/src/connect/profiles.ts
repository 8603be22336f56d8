// The Profiles tab: the saved profiles and the form that adds one. The
// form's protocol choice comes from the registry's connect-mode entries;
// each protocol's own inputs come from FORM_FIELDS, and the secret its
// profiles sign in with (a token, a key) from SECRETS. Each saved profile
// has a "Share link" action (its link and QR code), and "Add from a link" adds a
// profile of any protocol from a share link (links.ts).
import { call, type ShownError } from "../api";
import type { Overview, ProfileInput, ProfileView, Protocol, ProtocolInfo } from "../bindings";
import { AddFromLink, ShareDialog } from "../links";
import { NOT_AVAILABLE, carriesText, titleOf } from "../protocols";
import { FORM_FIELDS, SECRETS, TRANSPORTS, isPlainHttp, type FieldSet, type Secret } from "./fields";

/** Runs a command that returns the overview; false if it failed (the error is shown). */
export type Runner = (command: () => Promise<Overview>) => Promise<boolean>;

export class ProfilesView {
  private protocols: ProtocolInfo[] = [];
  private shownChoice = "";
  private fields: FieldSet | null = null;
  private fieldsFor: Protocol | null = null;
  /** Every protocol (the overview's), for the words after "Add from a link". */
  private allProtocols: ProtocolInfo[] = [];
  private share: ShareDialog;
  private adder: AddFromLink;

  constructor(
    private form: HTMLFormElement,
    private list: HTMLElement,
    private run: Runner,
  ) {
    // Errors and overviews go through the panel's runner, which shows the
    // one and applies the other as for any command.
    const showError = (error: ShownError) => void this.run(() => Promise.reject(error));
    this.share = new ShareDialog({ showError });
    this.adder = new AddFromLink({
      apply: (overview) => void this.run(() => Promise.resolve(overview)),
      protocols: () => this.allProtocols,
    });
    list.after(this.share.element);
    form.after(this.adder.element);
    form.addEventListener("change", () => this.sync());
    this.secretInput().addEventListener("input", () => this.secretInput().removeAttribute("aria-invalid"));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
    this.sync();
  }

  private el(selector: string): HTMLElement {
    return this.form.querySelector(selector) as HTMLElement;
  }

  /** The connect-mode protocols, for the form's choice. */
  setProtocols(protocols: readonly ProtocolInfo[]): void {
    const key = JSON.stringify(protocols);
    if (key === this.shownChoice) return;
    this.shownChoice = key;
    this.protocols = [...protocols];
    const current = this.checked();
    const keep = protocols.some((p) => p.id === current && p.available);
    const first = protocols.find((p) => p.available)?.id ?? null;
    const choice = this.el("#profile-protocols");
    choice.hidden = protocols.length === 0;
    choice.replaceChildren(
      Object.assign(document.createElement("legend"), { textContent: "Protocol" }),
      ...protocols.map((p) => {
        const label = document.createElement("label");
        label.className = "protocol-option";
        label.dataset.available = String(p.available);
        const radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "protocol";
        radio.value = p.id;
        radio.disabled = !p.available;
        radio.defaultChecked = p.id === first;
        radio.checked = keep ? p.id === current : p.id === first;
        radio.dataset.testid = `profile-protocol-${p.id}`;
        const noteId = `profile-protocol-${p.id}-note`;
        radio.setAttribute("aria-describedby", noteId);
        const title = document.createElement("strong");
        title.textContent = p.title;
        const note = document.createElement("span");
        note.id = noteId;
        note.className = "hint";
        const carries = carriesText(p.carries);
        note.textContent = `${p.summary}${carries ? ` (${carries})` : ""}`;
        label.append(radio, " ", title);
        if (!p.available) {
          const soon = document.createElement("span");
          soon.className = "soon";
          soon.textContent = NOT_AVAILABLE;
          label.append(" ", soon);
        }
        label.append(" ", note);
        return label;
      }),
    );
    this.sync();
  }

  /** The form's secret field (named `token` whatever it holds). */
  private secretInput(): HTMLInputElement {
    return this.form.elements.namedItem("token") as HTMLInputElement;
  }

  /** The secret the chosen protocol's profile signs in with. */
  private secret(): Secret {
    return SECRETS[this.fields?.kind() ?? "gateway"];
  }

  /** The protocol chosen in the form. */
  private checked(): Protocol | null {
    const radio = this.form.querySelector<HTMLInputElement>('input[name="protocol"]:checked');
    return (radio?.value as Protocol | undefined) ?? null;
  }

  /** Puts the chosen protocol's inputs in the form. */
  private sync(): void {
    const protocol = this.checked();
    if (protocol !== this.fieldsFor) {
      this.fieldsFor = protocol;
      const make = protocol ? FORM_FIELDS[protocol] : undefined;
      this.fields = make ? make() : null;
      this.el("#profile-fields").replaceChildren(...(this.fields ? [this.fields.element] : []));
    }
    this.fields?.sync();
    const secret = this.secret();
    const label = this.el("#profile-secret-label");
    if (label.textContent !== secret.label) {
      label.textContent = secret.label;
      this.secretInput().removeAttribute("aria-invalid");
    }
    const unusable = this.el("#profile-unusable");
    unusable.hidden = !!this.fields;
    unusable.textContent = this.fields
      ? ""
      : protocol
        ? `${titleOf(this.protocols, protocol)} profiles cannot be created here yet.`
        : "No protocol for outbound connections is available in this build.";
    (this.el("#profile-save") as HTMLButtonElement).disabled = !this.fields;
  }

  private async save(): Promise<void> {
    const protocol = this.checked();
    if (!protocol || !this.fields) return;
    const data = new FormData(this.form);
    const input: ProfileInput = {
      name: String(data.get("name") ?? "").trim(),
      protocol,
      ...this.fields.read(data),
    };
    const token = String(data.get("token") ?? "");
    const secret = this.secret();
    const status = this.el("#profile-status");
    // A secret the app would refuse is refused here, before the profile is saved.
    const refused = secret.check(token);
    if (refused) {
      this.secretInput().setAttribute("aria-invalid", "true");
      this.secretInput().focus();
      status.textContent = `Not saved: ${refused}`;
      return;
    }
    status.textContent = "Saving…";
    const saved = await this.run(() => call("save_profile", { input }));
    if (!saved) {
      status.textContent = "Not saved.";
      return;
    }
    const signedIn = await this.run(() => call("sign_in", { name: input.name, token }));
    // The secret leaves the form as soon as it has been handed over.
    this.secretInput().value = "";
    status.textContent = signedIn
      ? `Profile “${input.name}” saved; its ${secret.noun} is in the system keychain.`
      : `Profile “${input.name}” saved, but the ${secret.noun} was not stored.`;
    if (signedIn) this.form.reset();
    this.sync();
  }

  /** The saved profiles, with their protocol's title and whether their secret is stored. */
  render(o: Overview): void {
    this.allProtocols = [...o.protocols];
    this.list.replaceChildren(
      ...o.profiles.map((p) => {
        const item = document.createElement("li");
        item.dataset.profile = p.name;
        item.dataset.protocol = p.protocol;
        const title = document.createElement("strong");
        title.textContent = p.name;
        const protocol = document.createElement("span");
        protocol.className = "tag";
        protocol.textContent = titleOf(o.protocols, p.protocol);
        const secret = SECRETS[p.kind];
        const detail = document.createElement("span");
        detail.className = "hint";
        detail.dataset.testid = "profile-detail";
        detail.textContent = profileDetail(p, secret);
        const signOut = document.createElement("button");
        signOut.textContent = secret.forget;
        signOut.disabled = !p.signed_in;
        signOut.dataset.testid = "sign-out";
        signOut.addEventListener("click", () => void this.run(() => call("sign_out", { name: p.name })));
        const share = document.createElement("button");
        share.textContent = "Share link";
        share.dataset.testid = "link-share";
        share.addEventListener("click", () => void this.share.open(p.name));
        const remove = document.createElement("button");
        remove.textContent = "Remove";
        remove.addEventListener("click", () => void this.run(() => call("remove_profile", { name: p.name })));
        item.append(title, protocol, detail, share, signOut, remove);
        return item;
      }),
    );
  }
}

/** A saved profile's line: where it connects, its options, its secret. */
export function profileDetail(p: ProfileView, secret: Secret): string {
  const parts = [p.server];
  if (isPlainHttp(p.server)) parts.push("no TLS");
  if (p.device_id) parts.push(`device ${p.device_id}`);
  if (p.transport) parts.push(TRANSPORTS[p.transport]);
  if (p.connections !== null) parts.push(`${p.connections} connection${p.connections === 1 ? "" : "s"}`);
  if (p.dns_listen) parts.push(`DNS on ${p.dns_listen}`);
  parts.push(p.signed_in ? secret.stored : secret.missing);
  return parts.join(" · ");
}
