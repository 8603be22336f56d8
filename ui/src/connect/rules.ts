// The Rules tab: the routing rules (split tunnelling) of one outbound
// profile (HTTVPS, HT), edited in place. Rules are tried top to bottom and
// the first that matches decides (docs/routing.md). The editor keeps a
// draft: rows are added, edited, moved and deleted there, "Test a host"
// asks the app (`test_route`) about the draft as it stands, saved or not,
// and Save hands it to `save_routing_rules`, which checks every rule. A
// refused rule's message is shown next to that rule. A saved change
// applies from the next connect: a running proxy keeps the rules it
// started with. Profiles that publish or share (HLHV, Relay) carry no
// outgoing connections, so they have no rules and the view says so.
//
// The list operations are pure functions over `RuleSet` (tested alone);
// the view only renders the draft and calls them. Dynamic text is only
// ever set with textContent.
import { asCommandError, call } from "../api";
import type { Action, Decision, Mode, Overview, ProfileView, ProtocolInfo, Rule, RuleKind, RuleSet } from "../bindings";
import { titleOf } from "../protocols";

/** Each match kind in words, in the order the choice lists them. */
export const KINDS: Record<RuleKind, { label: string; placeholder: string }> = {
  domain: { label: "domain: this name exactly", placeholder: "ads.example" },
  "domain-suffix": { label: "domain-suffix: the name and every name below it", placeholder: "corp.example" },
  "domain-keyword": { label: "domain-keyword: names containing the text", placeholder: "tracker" },
  ip: { label: "ip: an address or CIDR block (IP targets only)", placeholder: "10.0.0.0/8" },
  port: { label: "port: a port or a range", placeholder: "443 or 8000-8999" },
  private: { label: "private: private addresses and localhost", placeholder: "" },
};

/** Each action in words. */
export const ACTIONS: Record<Action, string> = {
  tunnel: "tunnel: through the tunnel",
  direct: "direct: straight from this computer",
  block: "block: refuse the connection",
};

/** What "Add a rule" appends. */
export const NEW_RULE: Rule = { match: "domain-suffix", value: "", action: "direct" };

/** What a profile without rules has: everything through the tunnel. */
export const NO_RULES: RuleSet = { default: "tunnel", rules: [] };

/** Said wherever the rules are saved. */
export const APPLIES_NEXT_CONNECT =
  "Saved changes apply from the next connect: a connection already running keeps the rules it started with.";

/** `list` with the item at `from` moved to `to` (both clamped). */
export function moved<T>(list: readonly T[], from: number, to: number): T[] {
  const out = [...list];
  if (from < 0 || from >= out.length) return out;
  const [item] = out.splice(from, 1);
  out.splice(Math.max(0, Math.min(to, out.length)), 0, item);
  return out;
}

/** `list` without the item at `i`. */
export function without<T>(list: readonly T[], i: number): T[] {
  return list.filter((_, j) => j !== i);
}

/** The rules with `rule` appended (last: tried after every other). */
export function addRule(set: RuleSet, rule: Rule = NEW_RULE): RuleSet {
  return { ...set, rules: [...set.rules, { ...rule }] };
}

/** The rules without rule `i` (from 0). */
export function removeRule(set: RuleSet, i: number): RuleSet {
  return { ...set, rules: without(set.rules, i) };
}

/** The rules with rule `from` moved to position `to` (from 0). */
export function moveRule(set: RuleSet, from: number, to: number): RuleSet {
  return { ...set, rules: moved(set.rules, from, to) };
}

/** The rules with rule `i` changed; `private` takes no value, so choosing
 * it clears the value. */
export function updateRule(set: RuleSet, i: number, patch: Partial<Rule>): RuleSet {
  return {
    ...set,
    rules: set.rules.map((r, j) => {
      if (j !== i) return r;
      const next = { ...r, ...patch };
      if (next.match === "private") next.value = "";
      return next;
    }),
  };
}

/** The rules as the app receives them: values trimmed, none for `private`. */
export function cleanRules(set: RuleSet): RuleSet {
  return {
    default: set.default,
    rules: set.rules.map((r) => {
      const value = r.match === "private" ? "" : (r.value ?? "").trim();
      return value ? { match: r.match, value, action: r.action } : { match: r.match, action: r.action };
    }),
  };
}

/** Whether two rule sets say the same thing. */
export function sameRules(a: RuleSet, b: RuleSet): boolean {
  return JSON.stringify(cleanRules(a)) === JSON.stringify(cleanRules(b));
}

/** `domain-suffix corp.example → direct`, as the app writes a rule. */
export function ruleText(rule: Rule): string {
  const value = (rule.value ?? "").trim();
  return value ? `${rule.match} ${value} → ${rule.action}` : `${rule.match} → ${rule.action}`;
}

/** The rule a refusal names and why, from the app's message
 * (`rule 2 (ip 10.0.0.0/33 → block): the prefix length …`; positions
 * count from 1 there, from 0 here), or null when it names none. */
export function parseRuleError(message: string, rules: readonly Rule[]): { index: number; reason: string } | null {
  const m = /^(?:routing: )?rule (\d+) \(/.exec(message);
  if (!m) return null;
  const index = Number(m[1]) - 1;
  if (index < 0 || index >= rules.length) return null;
  const rest = message.slice(m[0].length);
  // The rule's own text may hold anything the user typed, ")" included:
  // cut it off where the app wrote it, else at the first "): ".
  const written = `${ruleText(rules[index])}): `;
  const cut = rest.startsWith(written) ? written.length : rest.indexOf("): ") + 3;
  const reason = cut >= 3 ? rest.slice(cut) : message;
  return { index, reason: reason.charAt(0).toUpperCase() + reason.slice(1) };
}

/** Why a tested host got its action, in words: `by rule 1: domain-suffix
 * example.invalid → block` or `by the default (no rule matches)`. */
export function decisionText(d: Decision): string {
  return d.rule === null ? "by the default (no rule matches)" : `by ${d.label}`;
}

/** Whether a protocol's profiles carry outgoing connections, and so have rules. */
export function hasRules(protocols: readonly ProtocolInfo[], protocol: ProfileView["protocol"]): boolean {
  return protocols.find((p) => p.id === protocol)?.mode === "connect";
}

const DOES: Record<Exclude<Mode, "connect">, string> = {
  publish: "publishes a local web app",
  remote_access: "shares this computer's ports",
};

/** Why a profile has no rules, in words. */
export function noRulesText(protocols: readonly ProtocolInfo[], p: ProfileView): string {
  const info = protocols.find((x) => x.id === p.protocol);
  const does = info && info.mode !== "connect" ? DOES[info.mode] : "carries no outgoing connections";
  const outbound = protocols.filter((x) => x.mode === "connect").map((x) => x.title);
  const which = outbound.length ? ` (${outbound.join(", ")})` : "";
  return `The ${titleOf(protocols, p.protocol)} profile “${p.name}” ${does}, so it has no routing rules. Routing rules belong to Connect profiles${which}, whose connections they send through the tunnel, directly or nowhere.`;
}

const TEMPLATE = `
<div class="rules-head">
  <label class="rules-profile">Rules of
    <select data-testid="rules-profile" aria-describedby="rules-profile-hint"></select></label>
  <p id="rules-profile-hint" class="hint" data-testid="rules-profile-hint" hidden>Save or discard the changes before choosing another profile.</p>
</div>
<p class="hint rules-none" data-testid="rules-none" hidden></p>
<div class="rules-editor" data-testid="rules-editor" hidden>
  <p class="hint">Rules are tried from the top; the first that matches decides, else the default below. Names are matched as names, never resolved: an ip or private rule matches only connections to an IP address.</p>
  <p class="warning rules-applies" data-testid="rules-applies"></p>
  <ol class="rules" data-testid="rules-list" aria-label="Rules, in order"></ol>
  <p class="hint table-empty" data-testid="rules-empty">No rules: every connection goes where the default says.</p>
  <div class="rules-actions">
    <button type="button" data-testid="rules-add">Add a rule</button>
    <label class="rules-default">Connections no rule matches:
      <select data-testid="rules-default"></select></label>
  </div>
  <div class="rules-actions">
    <button type="button" class="primary" data-testid="rules-save">Save rules</button>
    <button type="button" data-testid="rules-revert">Discard changes</button>
    <span class="hint" data-testid="rules-dirty" hidden>Unsaved changes.</span>
  </div>
  <p class="rules-status" role="status" data-testid="rules-status"></p>
  <form class="form rules-test" data-testid="rules-test" autocomplete="off">
    <h2>Test a host</h2>
    <p class="hint">Where a connection would go under the rules above, as edited (saved or not). Nothing is connected or resolved.</p>
    <div class="rules-test-fields">
      <label>Host <input name="host" spellcheck="false" placeholder="www.example.com or 10.1.2.3" data-testid="rules-test-host" /></label>
      <label>Port <input name="port" type="number" min="1" max="65535" value="443" required data-testid="rules-test-port" /></label>
      <button type="submit" data-testid="rules-test-run">Test</button>
    </div>
    <p class="rules-result" role="status" data-testid="rules-test-result"><strong data-testid="rules-test-action"></strong> <span data-testid="rules-test-label"></span></p>
  </form>
</div>`;

/** What the view needs from the panel. */
export interface RulesHost {
  /** Applies the overview a save returns. */
  apply(overview: Overview): void;
}

function option(value: string, text: string, selected: boolean): HTMLOptionElement {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  o.selected = selected;
  return o;
}

export class RulesView {
  private overview: Overview | null = null;
  /** The profile shown, and whether the user chose it here. */
  private name: string | null = null;
  private chosen = false;
  /** The rules as saved, once loaded; null while loading or for no rules. */
  private saved: RuleSet | null = null;
  private draft: RuleSet = NO_RULES;
  /** Each rule's refusal, by position (moves with its rule). */
  private errors: (string | null)[] = [];
  /** Bumped on every load and edit: a late answer about older rules is dropped. */
  private version = 0;
  private busy = false;
  /** The rule being dragged by its handle (the buttons do the same from the keyboard). */
  private dragging: number | null = null;

  constructor(
    private root: HTMLElement,
    private host: RulesHost,
  ) {
    root.innerHTML = TEMPLATE;
    this.el("rules-applies").textContent = APPLIES_NEXT_CONNECT;
    const fallback = this.el("rules-default") as HTMLSelectElement;
    fallback.replaceChildren(...(Object.keys(ACTIONS) as Action[]).map((a) => option(a, ACTIONS[a], a === "tunnel")));
    fallback.addEventListener("change", () => this.edit({ ...this.draft, default: fallback.value as Action }));
    (this.el("rules-profile") as HTMLSelectElement).addEventListener("change", (e) => {
      this.chosen = true;
      this.show((e.target as HTMLSelectElement).value);
    });
    this.el("rules-add").addEventListener("click", () => this.add());
    this.el("rules-save").addEventListener("click", () => void this.save());
    this.el("rules-revert").addEventListener("click", () => {
      if (this.saved) this.setRules(this.saved, "Changes discarded.");
    });
    const test = this.el("rules-test") as HTMLFormElement;
    test.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.test();
    });
  }

  private el(testid: string): HTMLElement {
    return this.root.querySelector(`[data-testid="${testid}"]`) as HTMLElement;
  }

  /** Whether the draft differs from the saved rules. */
  get dirty(): boolean {
    return this.saved !== null && !sameRules(this.draft, this.saved);
  }

  /** Follows the overview: the profiles to choose from and, unless the
   * user chose one here, the profile Connect uses. Unsaved edits stay. */
  render(overview: Overview): void {
    this.overview = overview;
    const names = overview.profiles.map((p) => p.name);
    const outbound = overview.profiles.filter((p) => hasRules(overview.protocols, p.protocol));
    let name = this.name;
    if (name === null || !names.includes(name)) {
      this.chosen = false;
      name = null;
    }
    if (!this.chosen && !this.dirty) {
      name = overview.selected && names.includes(overview.selected) ? overview.selected : (outbound[0]?.name ?? null);
    }
    const select = this.el("rules-profile") as HTMLSelectElement;
    // The outbound profiles, and the one shown if it is not one of them.
    const listed = overview.profiles.filter((p) => hasRules(overview.protocols, p.protocol) || p.name === name);
    select.replaceChildren(
      ...listed.map((p) => {
        const title = titleOf(overview.protocols, p.protocol);
        const rules = hasRules(overview.protocols, p.protocol) ? "" : " (no rules)";
        return option(p.name, `${p.name} · ${title}${rules}`, p.name === name);
      }),
    );
    if (name !== this.name) this.show(name);
    else this.renderState();
  }

  /** Called when the tab is shown: reads the saved rules again unless there are unsaved edits. */
  opened(): void {
    if (this.name && !this.dirty) this.show(this.name);
  }

  /** Shows profile `name`'s rules (loading them), or why there are none. */
  show(name: string | null): void {
    this.name = name;
    this.saved = null;
    this.draft = NO_RULES;
    this.errors = [];
    this.version += 1;
    this.clearTest();
    this.el("rules-status").textContent = "";
    const profile = this.profile();
    // Read when shown: an overview (several a second while connected)
    // costs no call while the tab is hidden.
    if (!this.root.hidden && profile && this.overview && hasRules(this.overview.protocols, profile.protocol)) {
      this.el("rules-status").textContent = "Loading…";
      void this.load(profile.name, this.version);
    }
    this.renderState();
    this.renderRules();
  }

  private profile(): ProfileView | null {
    return this.overview?.profiles.find((p) => p.name === this.name) ?? null;
  }

  private async load(name: string, version: number): Promise<void> {
    try {
      const rules = await call("routing_rules", { name });
      if (version !== this.version) return;
      this.el("rules-status").textContent = "";
      this.saved = cleanRules(rules);
      this.setRules(this.saved, "");
    } catch (e) {
      if (version !== this.version) return;
      this.el("rules-status").textContent = `Cannot read the rules: ${asCommandError(e).message}`;
    }
  }

  /** Replaces the draft (a load or a discard) and redraws. */
  private setRules(rules: RuleSet, status: string): void {
    this.draft = rules;
    this.errors = rules.rules.map(() => null);
    this.version += 1;
    this.clearTest();
    this.el("rules-status").textContent = status;
    this.renderState();
    this.renderRules();
  }

  /** The draft changed: keep it, drop a stale test result. */
  private edit(rules: RuleSet, errors: (string | null)[] = this.errors): void {
    this.draft = rules;
    this.errors = errors;
    this.version += 1;
    this.clearTest();
    this.el("rules-status").textContent = "";
    this.renderState();
  }

  private add(): void {
    this.edit(addRule(this.draft), [...this.errors, null]);
    this.renderRules();
    const rows = this.el("rules-list").children;
    (rows[rows.length - 1]?.querySelector('[data-testid="rule-value"]') as HTMLElement | null)?.focus();
    this.announce(`Rule ${this.draft.rules.length} added at the end.`);
  }

  private move(from: number, to: number, button: "up" | "down" | null): void {
    if (to < 0 || to >= this.draft.rules.length || to === from) return;
    this.edit(moveRule(this.draft, from, to), moved(this.errors, from, to));
    this.renderRules();
    this.announce(`Rule ${from + 1} is now rule ${to + 1}.`);
    if (!button) return;
    // Focus follows the rule, on the same button while it can still move.
    const row = this.el("rules-list").children[to];
    const same = row?.querySelector(`[data-testid="rule-${button}"]`) as HTMLButtonElement | null;
    const other = row?.querySelector(`[data-testid="rule-${button === "up" ? "down" : "up"}"]`) as HTMLButtonElement | null;
    (same && !same.disabled ? same : other)?.focus();
  }

  private remove(i: number): void {
    const gone = ruleText(this.draft.rules[i]);
    this.edit(removeRule(this.draft, i), without(this.errors, i));
    this.renderRules();
    const rows = this.el("rules-list").children;
    const next = rows[Math.min(i, rows.length - 1)]?.querySelector('[data-testid="rule-delete"]') as HTMLElement | null;
    (next ?? this.el("rules-add")).focus();
    this.announce(`Rule ${i + 1} (${gone}) deleted.`);
  }

  private announce(text: string): void {
    this.el("rules-status").textContent = text;
  }

  private async save(): Promise<void> {
    const name = this.name;
    if (!name || this.busy) return;
    const routing = cleanRules(this.draft);
    const version = this.version;
    this.busy = true;
    this.renderState();
    this.el("rules-status").textContent = "Saving…";
    try {
      const overview = await call("save_routing_rules", { name, routing });
      this.busy = false;
      this.saved = routing;
      if (version === this.version) this.setRules(routing, "");
      const connection = overview.connection;
      const running = connection?.kind === "profile" && connection.name === name && overview.snapshot.state.state !== "disconnected";
      this.el("rules-status").textContent = running
        ? `Saved. The running connection keeps its rules: ${APPLIES_NEXT_CONNECT.charAt(0).toLowerCase()}${APPLIES_NEXT_CONNECT.slice(1)}`
        : `Saved. ${APPLIES_NEXT_CONNECT}`;
      this.renderState();
      this.host.apply(overview);
    } catch (e) {
      this.busy = false;
      const error = asCommandError(e);
      this.el("rules-status").textContent = `Not saved: ${this.refusal(error.message, routing, version)}`;
      this.renderState();
    }
  }

  /** Puts a refusal next to the rule it names (if the draft is still the
   * one refused) and says it in words. */
  private refusal(message: string, sent: RuleSet, version: number): string {
    const at = parseRuleError(message, sent.rules);
    if (!at) return message;
    if (version === this.version) {
      this.errors = this.draft.rules.map((_, i) => (i === at.index ? at.reason : (this.errors[i] ?? null)));
      this.renderRules();
      (this.el("rules-list").children[at.index]?.querySelector('[data-testid="rule-value"]') as HTMLElement | null)?.focus();
    }
    return `rule ${at.index + 1} (${ruleText(sent.rules[at.index])}): ${at.reason}`;
  }

  private async test(): Promise<void> {
    const form = this.el("rules-test") as HTMLFormElement;
    const host = (form.elements.namedItem("host") as HTMLInputElement).value.trim();
    const port = Number((form.elements.namedItem("port") as HTMLInputElement).value);
    if (!host) return this.showTest(null, "Enter a host name or an IP address.");
    if (!Number.isInteger(port) || port < 1 || port > 65535) return this.showTest(null, "The port must be a number from 1 to 65535.");
    const routing = cleanRules(this.draft);
    const version = this.version;
    this.showTest(null, "Testing…");
    try {
      const decision = await call("test_route", { routing, host, port });
      if (version !== this.version) return;
      this.showTest(decision, decisionText(decision));
    } catch (e) {
      if (version !== this.version) return;
      const error = asCommandError(e);
      const at = parseRuleError(error.message, routing.rules);
      this.showTest(null, at ? `Cannot test: ${this.refusal(error.message, routing, version)}` : error.message);
    }
  }

  private showTest(decision: Decision | null, text: string): void {
    const action = this.el("rules-test-action");
    action.textContent = decision ? decision.action : "";
    action.dataset.action = decision?.action ?? "";
    action.hidden = !decision;
    this.el("rules-test-label").textContent = text;
    this.el("rules-test-result").dataset.rule = decision && decision.rule !== null ? String(decision.rule) : "";
    for (const [i, row] of [...this.el("rules-list").children].entries()) {
      (row as HTMLElement).dataset.matched = String(!!decision && decision.rule === i);
    }
  }

  private clearTest(): void {
    this.showTest(null, "");
  }

  /** The parts that depend on the profile and the draft, not the rows. */
  private renderState(): void {
    const profile = this.profile();
    const rules = !!profile && !!this.overview && hasRules(this.overview.protocols, profile.protocol);
    const none = this.el("rules-none");
    none.hidden = rules;
    none.textContent = rules
      ? ""
      : profile && this.overview
        ? noRulesText(this.overview.protocols, profile)
        : "No Connect profile yet: add an HTTVPS or HT profile in Profiles, then give it rules here.";
    this.el("rules-editor").hidden = !rules;
    const dirty = this.dirty;
    const select = this.el("rules-profile") as HTMLSelectElement;
    select.disabled = dirty || this.busy;
    select.hidden = select.options.length === 0;
    this.el("rules-profile-hint").hidden = !dirty;
    this.el("rules-dirty").hidden = !dirty;
    (this.el("rules-save") as HTMLButtonElement).disabled = !dirty || this.busy;
    (this.el("rules-revert") as HTMLButtonElement).disabled = !dirty || this.busy;
    (this.el("rules-add") as HTMLButtonElement).disabled = this.saved === null;
    (this.el("rules-test-run") as HTMLButtonElement).disabled = this.saved === null;
    (this.el("rules-default") as HTMLSelectElement).disabled = this.saved === null;
    (this.el("rules-default") as HTMLSelectElement).value = this.draft.default;
  }

  /** Redraws the rows (after a load or a change of order). */
  private renderRules(): void {
    const list = this.el("rules-list");
    const n = this.draft.rules.length;
    list.replaceChildren(...this.draft.rules.map((rule, i) => this.row(rule, i, n)));
    this.el("rules-empty").hidden = n > 0;
  }

  private row(rule: Rule, i: number, n: number): HTMLLIElement {
    const item = document.createElement("li");
    item.dataset.testid = "rule";
    item.dataset.index = String(i);
    item.className = "rule";
    const pos = i + 1;
    // The number is also a drag handle (mouse); Move up/down are the
    // keyboard's way.
    const number = document.createElement("span");
    number.className = "rule-pos";
    number.textContent = String(pos);
    number.setAttribute("aria-hidden", "true");
    number.draggable = true;
    number.title = "Drag to move the rule";
    number.addEventListener("dragstart", (e) => {
      this.dragging = i;
      e.dataTransfer?.setData("text/plain", ruleText(rule));
      item.dataset.dragging = "true";
    });
    number.addEventListener("dragend", () => {
      this.dragging = null;
      delete item.dataset.dragging;
    });
    item.addEventListener("dragover", (e) => {
      if (this.dragging !== null) e.preventDefault();
    });
    item.addEventListener("drop", (e) => {
      if (this.dragging === null) return;
      e.preventDefault();
      const from = this.dragging;
      this.dragging = null;
      this.move(from, i, null);
    });

    const kind = document.createElement("select");
    kind.dataset.testid = "rule-match";
    kind.setAttribute("aria-label", `Rule ${pos}: match`);
    kind.replaceChildren(...(Object.keys(KINDS) as RuleKind[]).map((k) => option(k, KINDS[k].label, k === rule.match)));

    const value = document.createElement("input");
    value.dataset.testid = "rule-value";
    value.spellcheck = false;
    value.setAttribute("aria-label", `Rule ${pos}: value`);
    const error = document.createElement("p");
    error.className = "field-error";
    error.id = `rule-error-${i}`;
    error.dataset.testid = "rule-error";
    error.textContent = this.errors[i] ?? "";
    if (this.errors[i]) {
      value.setAttribute("aria-invalid", "true");
      item.dataset.invalid = "true";
    }
    value.setAttribute("aria-describedby", error.id);
    const syncValue = (r: Rule) => {
      value.value = r.value ?? "";
      value.disabled = r.match === "private";
      value.placeholder = r.match === "private" ? "no value" : KINDS[r.match].placeholder;
    };
    syncValue(rule);

    const action = document.createElement("select");
    action.dataset.testid = "rule-action";
    action.setAttribute("aria-label", `Rule ${pos}: action`);
    action.replaceChildren(...(Object.keys(ACTIONS) as Action[]).map((a) => option(a, a, a === rule.action)));
    item.dataset.action = rule.action;

    // Edits change the draft without redrawing the row (focus stays).
    const fix = () => {
      if (!this.errors[i]) return;
      this.errors = this.errors.map((e, j) => (j === i ? null : e));
      error.textContent = "";
      value.removeAttribute("aria-invalid");
      delete item.dataset.invalid;
    };
    kind.addEventListener("change", () => {
      fix();
      this.edit(updateRule(this.draft, i, { match: kind.value as RuleKind }));
      syncValue(this.draft.rules[i]);
    });
    value.addEventListener("input", () => {
      fix();
      this.edit(updateRule(this.draft, i, { value: value.value }));
    });
    action.addEventListener("change", () => {
      this.edit(updateRule(this.draft, i, { action: action.value as Action }));
      item.dataset.action = action.value;
    });

    const button = (testid: string, text: string, label: string, disabled: boolean, onClick: () => void) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.testid = testid;
      b.textContent = text;
      b.setAttribute("aria-label", label);
      b.title = label;
      b.disabled = disabled;
      b.addEventListener("click", onClick);
      return b;
    };
    const up = button("rule-up", "↑", `Move rule ${pos} up`, i === 0, () => this.move(i, i - 1, "up"));
    const down = button("rule-down", "↓", `Move rule ${pos} down`, i === n - 1, () => this.move(i, i + 1, "down"));
    const remove = button("rule-delete", "Delete", `Delete rule ${pos}`, false, () => this.remove(i));

    const controls = document.createElement("div");
    controls.className = "rule-controls";
    controls.append(number, kind, value, action, up, down, remove);
    item.append(controls, error);
    return item;
  }
}
