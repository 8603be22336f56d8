// What the two inbound panels (Publish, Remote access) share: a toolbar
// choosing a profile of their mode, a profile form whose secret goes to
// the keychain, the profile list with its buttons, the protocols that are
// unavailable in this build, and commands run through runCommand. Each
// panel says in its own words what differs (InboundWords) and draws its
// own session, controls and live rows. Dynamic text is only ever set with
// textContent.
import { call, runCommand, type ShownError } from "./api";
import type { Overview, ProfileInput, ProfileView, ProtocolInfo } from "./bindings";
import { ErrorBox } from "./connect/errors";
import { ShareDialog } from "./links";
import { protocolCard } from "./protocols";
import { Tabs } from "./tabs";

/** The form functions of one inbound protocol (its form.ts). */
export interface InboundForm<Values extends { name: string }> {
  read(form: HTMLFormElement): Values;
  fill(form: HTMLFormElement, values: Values): void;
  showErrors(form: HTMLFormElement, errors: Partial<Record<keyof Values, string>>): void;
  validate(values: Values, needSecret: boolean): Partial<Record<keyof Values, string>>;
  toInput(values: Values): ProfileInput;
  fromView(p: ProfileView): Values;
  /** The secret typed into the form (blank: keep the stored one). */
  secret(values: Values): string;
  /** One line about a saved profile, for the list. */
  detail(p: ProfileView): string;
}

/** How a panel names its elements and says its messages. */
export interface InboundWords {
  /** The prefix of its ids and test ids (`publish`, `share`). */
  prefix: string;
  /** The protocol mode whose profiles it lists (`publish`, `remote_access`). */
  mode: string;
  /** The secret in a few words (`cell key`, `relay token`). */
  secret: string;
  /** Its short name on buttons (`key`, `token`). */
  secretShort: string;
  /** A saved profile in a sentence (`Publication “site”`). */
  saved(name: string): string;
  /** The form field to focus when editing (signed in) or signing in. */
  editField: string;
  signInField: string;
}

/** Where a panel's overview goes (the window hands it to every panel). */
export interface InboundHost {
  apply(overview: Overview): void;
}

export abstract class InboundPanel<Values extends { name: string }> {
  readonly element: HTMLElement;
  protected overview: Overview | null = null;
  protected tabs: Tabs;
  protected errors: ErrorBox;
  protected busy = false;
  /** The profile chosen in the toolbar (kept while the list changes). */
  protected chosen: string | null = null;
  protected protocols: readonly ProtocolInfo[] = [];
  private linkDialog: ShareDialog;

  constructor(
    protected host: InboundHost,
    protected words: InboundWords,
    protected forms: InboundForm<Values>,
    className: string,
    template: string,
  ) {
    this.element = document.createElement("div");
    this.element.className = className;
    this.element.innerHTML = template;
    const p = words.prefix;
    this.tabs = new Tabs(this.el(`#${p}-tabs`), this.element);
    this.errors = new ErrorBox(this.el(`#${p}-error`), () => this.tabs.select(`${p}-tab-profiles`));
    // A profile's share link and QR code (links.ts), under the list.
    this.linkDialog = new ShareDialog({ showError: (error) => this.showError(error) });
    this.q(`${p}-profiles`).after(this.linkDialog.element);
    (this.q(`${p}-profile`) as HTMLSelectElement).addEventListener("change", (e) => {
      this.chosen = (e.target as HTMLSelectElement).value || null;
      this.renderControls();
    });
    this.form().addEventListener("submit", (e) => {
      e.preventDefault();
      void this.save();
    });
  }

  protected el(selector: string): HTMLElement {
    const el = this.element.querySelector(selector);
    if (!el) throw new Error(`missing ${selector}`);
    return el as HTMLElement;
  }

  protected q(testid: string): HTMLElement {
    return this.el(`[data-testid="${testid}"]`);
  }

  protected form(): HTMLFormElement {
    return this.el(`#${this.words.prefix}-form`) as HTMLFormElement;
  }

  /** Enables and labels the toolbar's buttons for the current state. */
  protected abstract renderControls(): void;

  /** Whether a protocol of this mode is available in this build (or none
   * was told yet). */
  protected usable(): boolean {
    return this.protocols.length === 0 || this.protocols.some((p) => p.available);
  }

  showError(error: ShownError | null): void {
    this.errors.show(error);
  }

  /** This mode's protocols (from the shell): unavailable ones are explained. */
  render(protocols: readonly ProtocolInfo[]): void {
    if (JSON.stringify(protocols) === JSON.stringify(this.protocols)) return;
    this.protocols = protocols;
    const usable = protocols.some((p) => p.available);
    const note = this.el(`#${this.words.prefix}-unavailable`);
    note.hidden = usable;
    note.replaceChildren(...(usable ? [] : protocols.map(protocolCard)));
    this.renderControls();
  }

  /** The profiles of this panel's mode. */
  profiles(): ProfileView[] {
    const o = this.overview;
    if (!o) return [];
    const ours = new Set(o.protocols.filter((p) => p.mode === this.words.mode).map((p) => p.id));
    return o.profiles.filter((p) => ours.has(p.protocol));
  }

  /** Takes `overview`, keeping the chosen profile (or the one running as
   * `kind`) when it still exists. */
  protected take(overview: Overview, kind: string): void {
    this.overview = overview;
    const names = this.profiles().map((p) => p.name);
    const connection = overview.connection;
    const running = connection && connection.kind === kind && "name" in connection ? connection.name : null;
    if (running) this.chosen = running;
    if (!this.chosen || !names.includes(this.chosen)) this.chosen = names[0] ?? null;
  }

  protected run(command: () => Promise<Overview>): Promise<boolean> {
    return runCommand(
      {
        setBusy: (busy) => {
          this.busy = busy;
          this.renderControls();
        },
        apply: (overview) => this.host.apply(overview),
        showError: (error) => this.showError(error),
      },
      command,
    );
  }

  /** Copies `text`, saying so on `button` for a moment. */
  protected async copy(text: string, button: HTMLElement): Promise<void> {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = "Copy"), 1500);
    } catch (e) {
      this.showError({ code: "clipboard", message: `Cannot copy: ${String(e)}` });
    }
  }

  private async save(): Promise<void> {
    const { forms, words } = this;
    const form = this.form();
    const values = forms.read(form);
    const existing = this.profiles().find((p) => p.name === values.name.trim());
    // Editing a signed-in profile may leave the secret blank (it stays).
    const errors = forms.validate(values, !existing?.signed_in);
    forms.showErrors(form, errors);
    const status = this.q(`${words.prefix}-form-status`);
    if (Object.keys(errors).length > 0) {
      status.textContent = "Not saved: check the marked fields.";
      return;
    }
    const input = forms.toInput(values);
    status.textContent = "Saving…";
    if (!(await this.run(() => call("save_profile", { input })))) {
      status.textContent = "Not saved.";
      return;
    }
    this.chosen = input.name;
    const secret = forms.secret(values).trim();
    const saved = words.saved(input.name);
    if (!secret) {
      status.textContent = `${saved} saved; its ${words.secret} is unchanged.`;
    } else {
      const signedIn = await this.run(() => call("sign_in", { name: input.name, token: secret }));
      status.textContent = signedIn
        ? `${saved} saved; its ${words.secret} is in the system keychain.`
        : `${saved} saved, but the ${words.secret} was not stored.`;
    }
    // The secret leaves the form as soon as it has been handed over.
    form.reset();
    this.renderControls();
  }

  /** The toolbar's profile choice and the profile list. */
  protected renderProfiles(): void {
    const p = this.words.prefix;
    const profiles = this.profiles();
    const select = this.q(`${p}-profile`) as HTMLSelectElement;
    select.replaceChildren(
      ...profiles.map((profile) => {
        const option = document.createElement("option");
        option.value = profile.name;
        option.textContent = profile.signed_in
          ? profile.name
          : `${profile.name} (no ${this.words.secretShort} stored)`;
        return option;
      }),
    );
    select.hidden = profiles.length === 0;
    this.renderControls();
    this.q(`${p}-profiles`).replaceChildren(...profiles.map((profile) => this.profileItem(profile)));
  }

  private profileItem(p: ProfileView): HTMLElement {
    const { prefix, secretShort } = this.words;
    const item = document.createElement("li");
    item.dataset.profile = p.name;
    const title = document.createElement("strong");
    title.textContent = p.name;
    const detail = document.createElement("span");
    detail.className = "hint";
    detail.dataset.testid = `${prefix}-profile-detail`;
    detail.textContent = this.forms.detail(p);
    const button = (label: string, testid: string, action: () => void) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.dataset.testid = testid;
      b.setAttribute("aria-label", `${label}: ${p.name}`);
      b.addEventListener("click", action);
      return b;
    };
    const edit = button(p.signed_in ? "Edit" : "Sign in", `${prefix}-edit`, () => {
      const form = this.form();
      this.forms.fill(form, this.forms.fromView(p));
      this.forms.showErrors(form, {});
      const field = p.signed_in ? this.words.editField : this.words.signInField;
      (form.elements.namedItem(field) as HTMLInputElement).focus();
    });
    const forget = button(`Forget ${secretShort}`, `${prefix}-sign-out`, () => void this.run(() => call("sign_out", { name: p.name })));
    forget.disabled = !p.signed_in;
    const remove = button("Remove", `${prefix}-remove`, () => void this.run(() => call("remove_profile", { name: p.name })));
    const link = button("Share link", "link-share", () => void this.linkDialog.open(p.name));
    item.append(title, detail, edit, link, forget, remove);
    return item;
  }
}
