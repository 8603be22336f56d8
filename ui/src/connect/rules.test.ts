// The Rules tab: the pure list operations, then the editor in the window
// with Tauri's IPC mocked (the app's checks and matching stand in as a
// small fake: the real ones are the routing crate's, tested there).
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { App } from "../app";
import type { Decision, Overview, ProfileView, ProtocolInfo, Rule, RuleSet } from "../bindings";
import {
  addRule,
  cleanRules,
  decisionText,
  moveRule,
  moved,
  noRulesText,
  parseRuleError,
  removeRule,
  ruleText,
  sameRules,
  updateRule,
} from "./rules";
import { idleOverview } from "../test-fixtures";

const none = { streams: false, datagrams: false, dns: false };
const PROTOCOLS: ProtocolInfo[] = [
  { id: "httvps", title: "HTTVPS", summary: "Streams over a WebSocket", mode: "connect", carries: { ...none, streams: true }, available: true },
  { id: "ht", title: "HT", summary: "Streams and datagrams", mode: "connect", carries: { streams: true, datagrams: true, dns: true }, available: true },
  { id: "hlhv", title: "HLHV", summary: "Publish a local web app", mode: "publish", carries: none, available: true },
  { id: "relay", title: "Relay", summary: "Share this computer's ports", mode: "remote_access", carries: none, available: true },
];

const r = (match: Rule["match"], value: string, action: Rule["action"]): Rule => (value ? { match, value, action } : { match, action });
const SET: RuleSet = {
  default: "tunnel",
  rules: [r("domain-suffix", "corp.example", "direct"), r("domain", "ads.example", "block"), r("private", "", "direct")],
};

describe("the rule list operations", () => {
  it("add at the end, delete, and move in either direction", () => {
    const added = addRule(SET, r("port", "25", "block"));
    expect(added.rules.map(ruleText)).toEqual([
      "domain-suffix corp.example → direct",
      "domain ads.example → block",
      "private → direct",
      "port 25 → block",
    ]);
    expect(SET.rules).toHaveLength(3); // the input is not changed
    expect(addRule(SET).rules[3]).toEqual({ match: "domain-suffix", value: "", action: "direct" });
    expect(removeRule(SET, 1).rules.map((x) => x.match)).toEqual(["domain-suffix", "private"]);
    expect(moveRule(SET, 2, 0).rules.map((x) => x.match)).toEqual(["private", "domain-suffix", "domain"]);
    expect(moveRule(SET, 0, 1).rules.map((x) => x.match)).toEqual(["domain", "domain-suffix", "private"]);
    expect(moveRule(SET, 0, 9).rules.map((x) => x.match)).toEqual(["domain", "private", "domain-suffix"]);
    expect(moved(["a", "b"], 5, 0)).toEqual(["a", "b"]);
    expect(moveRule(SET, 1, 1)).toEqual(SET);
  });

  it("edit a rule; private drops its value; what is sent is trimmed", () => {
    const edited = updateRule(SET, 0, { value: " wiki.corp.example ", action: "block" });
    expect(edited.rules[0]).toEqual({ match: "domain-suffix", value: " wiki.corp.example ", action: "block" });
    expect(cleanRules(edited).rules[0]).toEqual({ match: "domain-suffix", value: "wiki.corp.example", action: "block" });
    expect(updateRule(SET, 1, { match: "private" }).rules[1]).toEqual({ match: "private", value: "", action: "block" });
    expect(cleanRules({ default: "direct", rules: [{ match: "private", value: "x", action: "block" }] })).toEqual({
      default: "direct",
      rules: [{ match: "private", action: "block" }],
    });
    expect(sameRules(edited, SET)).toBe(false);
    expect(sameRules(updateRule(SET, 0, { value: "corp.example  " }), SET)).toBe(true);
  });

  it("find the rule a refusal names, from 1 in the message and from 0 here", () => {
    const rules = [r("domain", "a.example", "block"), r("ip", "10.0.0.0/33", "block")];
    expect(parseRuleError('rule 2 (ip 10.0.0.0/33 → block): the prefix length must be 0 to 32, not "33"', rules)).toEqual({
      index: 1,
      reason: 'The prefix length must be 0 to 32, not "33"',
    });
    // A value with "): " in it does not cut the reason short.
    const odd = [r("domain", "x): y", "block")];
    expect(parseRuleError('rule 1 (domain x): y → block): "x): y" is not a domain name', odd)?.reason).toBe('"x): y" is not a domain name');
    expect(parseRuleError("routing: rule 1 (domain a.example → block): bad", rules)?.index).toBe(0);
    expect(parseRuleError("rule 7 (port 1 → block): bad", rules)).toBeNull();
    expect(parseRuleError("the settings could not be written", rules)).toBeNull();
  });

  it("say what a test decided and why a profile has no rules", () => {
    expect(decisionText({ action: "block", rule: 0, label: "rule 1: domain-suffix example.invalid → block" })).toBe(
      "by rule 1: domain-suffix example.invalid → block",
    );
    expect(decisionText({ action: "tunnel", rule: null, label: "default → tunnel" })).toBe("by the default (no rule matches)");
    expect(noRulesText(PROTOCOLS, SITE)).toContain("The HLHV profile “site” publishes a local web app, so it has no routing rules");
    expect(noRulesText(PROTOCOLS, SITE)).toContain("Connect profiles (HTTVPS, HT)");
    expect(noRulesText(PROTOCOLS, HOME)).toContain("shares this computer's ports");
  });
});

// The editor in the window.

const WORK: ProfileView = {
  name: "work", protocol: "httvps", kind: "gateway", server: "wss://gw.example/ws", device_id: null, region: null, ca_file: null,
  pin_sha256: null, sni: null, connections: null, dns_listen: null, transport: "h1", mount: null, to: null, max_body: null,
  public_url: null, tunnel: null, ports: null, signed_in: true,
};
const FAST: ProfileView = { ...WORK, name: "fast", protocol: "ht", kind: "preshared_key", transport: null, connections: 2 };
const SITE: ProfileView = {
  ...WORK, name: "site", protocol: "hlhv", kind: "cell_key", server: "queen.example:2001", transport: null,
  mount: "demo.example/app/", to: "http://127.0.0.1:3000",
};
const HOME: ProfileView = { ...WORK, name: "home", protocol: "relay", kind: "relay_token", server: "relay.example:443", transport: null };

function overview(over: Partial<Overview> = {}): Overview {
  return idleOverview({
    protocols: PROTOCOLS,
    profiles: [FAST, HOME, SITE, WORK],
    selected: "work",
    system_proxy_available: false,
    ...over,
  });
}

/** The app's answers: the saved rules per profile, a stand-in for its checks and matching. */
let saved: Record<string, RuleSet>;
let calls: { cmd: string; args: Record<string, unknown> }[];
let current: Overview;
let root: HTMLElement;
let app: App;

function check(set: RuleSet): void {
  set.rules.forEach((rule, i) => {
    if (rule.match === "ip" && /\/(3[3-9]|[4-9]\d)$/.test(rule.value ?? "")) {
      const bits = rule.value!.split("/")[1];
      throw { code: "invalid_input", message: `rule ${i + 1} (${ruleText(rule)}): the prefix length must be 0 to 32, not "${bits}"` };
    }
    if (rule.match !== "private" && !rule.value) {
      throw { code: "invalid_input", message: `rule ${i + 1} (${ruleText(rule)}): ${rule.match} needs a value` };
    }
  });
}

function decide(set: RuleSet, host: string): Decision {
  const i = set.rules.findIndex(
    (rule) =>
      (rule.match === "domain-suffix" && (host === rule.value || host.endsWith(`.${rule.value}`))) ||
      (rule.match === "domain" && host === rule.value),
  );
  return i < 0
    ? { action: set.default, rule: null, label: `default → ${set.default}` }
    : { action: set.rules[i].action, rule: i, label: `rule ${i + 1}: ${ruleText(set.rules[i])}` };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement;
const rows = () => [...q("rules-list").querySelectorAll<HTMLElement>('[data-testid="rule"]')];
// Inputs, selects and buttons alike (value, disabled, click).
const inRow = (i: number, id: string) => rows()[i].querySelector(`[data-testid="${id}"]`) as HTMLInputElement;
const shown = () => rows().map((row) => {
  const get = (id: string) => row.querySelector(`[data-testid="${id}"]`) as HTMLInputElement;
  return `${get("rule-match").value} ${get("rule-value").value.trim()} → ${get("rule-action").value}`.replace("  ", " ");
});
const commands = () => calls.map((c) => c.cmd).filter((c) => c !== "overview" && c !== "watch_streams" && !c.startsWith("plugin:"));
const argsOf = (cmd: string) => calls.filter((c) => c.cmd === cmd).map((c) => c.args);

function change(el: HTMLInputElement | HTMLSelectElement, value: string): void {
  el.value = value;
  el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? "change" : "input", { bubbles: true }));
}

async function openRules(): Promise<void> {
  q("tab-rules").click();
  await tick();
}

beforeEach(async () => {
  calls = [];
  saved = { work: structuredClone(SET), fast: { default: "tunnel", rules: [] } };
  current = overview();
  mockIPC((cmd, args) => {
    const a = (args ?? {}) as Record<string, unknown>;
    calls.push({ cmd, args: structuredClone(a) });
    switch (cmd) {
      case "watch_streams":
        return null;
      case "routing_rules": {
        const rules = saved[a.name as string];
        if (!rules) throw { code: "invalid_input", message: `profile "${a.name}" publishes or shares; routing rules apply to Connect profiles` };
        return structuredClone(rules);
      }
      case "save_routing_rules": {
        const routing = a.routing as RuleSet;
        check(routing);
        saved[a.name as string] = structuredClone(routing);
        return current;
      }
      case "test_route": {
        const routing = a.routing as RuleSet;
        if (!(a.host as string).trim()) throw { code: "invalid_input", message: "enter a host name or an IP address" };
        check(routing);
        return decide(routing, a.host as string);
      }
      default:
        return current;
    }
  });
  root = document.createElement("div");
  document.body.replaceChildren(root);
  app = new App(root);
  await app.start();
});

afterEach(() => {
  app.stop();
  clearMocks();
});

describe("the Rules tab", () => {
  it("is a tab of the Connect panel, reads the selected profile's rules when shown, and says when they apply", async () => {
    const tabs = [...root.querySelectorAll<HTMLElement>('#connect-tabs [role="tab"]')].map((t) => t.textContent);
    expect(tabs).toEqual(["Streams", "Log", "Profiles", "Rules", "Settings"]);
    expect(commands()).toEqual([]); // nothing read while the tab is hidden
    await openRules();
    expect(q("rules").hidden).toBe(false);
    expect(argsOf("routing_rules")).toEqual([{ name: "work" }]);
    expect(shown()).toEqual(["domain-suffix corp.example → direct", "domain ads.example → block", "private → direct"]);
    expect(inRow(2, "rule-value").disabled).toBe(true); // private takes no value
    expect((q("rules-default") as HTMLSelectElement).value).toBe("tunnel");
    expect(q("rules-applies").textContent).toContain("apply from the next connect");
    // Only outbound profiles to choose from.
    expect([...(q("rules-profile") as HTMLSelectElement).options].map((o) => o.value)).toEqual(["fast", "work"]);
    expect((q("rules-save") as HTMLButtonElement).disabled).toBe(true); // nothing to save yet
    // Keyboard: every control is a button or a field, each named.
    expect(inRow(0, "rule-up").disabled).toBe(true);
    expect(inRow(0, "rule-down").getAttribute("aria-label")).toBe("Move rule 1 down");
    expect(inRow(1, "rule-delete").getAttribute("aria-label")).toBe("Delete rule 2");
    expect(inRow(2, "rule-down").disabled).toBe(true);
  });

  it("adds, edits, reorders and deletes, then saves exactly that list", async () => {
    await openRules();
    (q("rules-add") as HTMLButtonElement).click();
    expect(rows()).toHaveLength(4);
    expect(document.activeElement).toBe(inRow(3, "rule-value")); // ready to type
    change(inRow(3, "rule-value"), " example.invalid ");
    change(inRow(3, "rule-action"), "block");
    expect(q("rules-dirty").hidden).toBe(false);
    expect((q("rules-profile") as HTMLSelectElement).disabled).toBe(true); // save or discard first

    // The new rule to the top, with the keyboard's focus following it.
    inRow(3, "rule-up").click();
    expect(document.activeElement).toBe(inRow(2, "rule-up"));
    inRow(2, "rule-up").click();
    inRow(1, "rule-up").click();
    expect(document.activeElement).toBe(inRow(0, "rule-down")); // up is disabled at the top
    expect(q("rules-status").textContent).toBe("Rule 2 is now rule 1.");
    // The domain rule goes; private becomes a port rule.
    inRow(2, "rule-delete").click();
    change(inRow(2, "rule-match"), "port");
    expect(inRow(2, "rule-value").disabled).toBe(false);
    change(inRow(2, "rule-value"), "8000-8999");
    change(q("rules-default") as HTMLSelectElement, "direct");
    expect(shown()).toEqual(["domain-suffix example.invalid → block", "domain-suffix corp.example → direct", "port 8000-8999 → direct"]);

    (q("rules-save") as HTMLButtonElement).click();
    await tick();
    expect(argsOf("save_routing_rules")).toEqual([
      {
        name: "work",
        routing: {
          default: "direct",
          rules: [r("domain-suffix", "example.invalid", "block"), r("domain-suffix", "corp.example", "direct"), r("port", "8000-8999", "direct")],
        },
      },
    ]);
    expect(q("rules-status").textContent).toContain("Saved. Saved changes apply from the next connect");
    expect(q("rules-dirty").hidden).toBe(true);
    expect((q("rules-save") as HTMLButtonElement).disabled).toBe(true);

    // Shown again, the list is read back from the app.
    q("tab-streams").click();
    await openRules();
    expect(argsOf("routing_rules")).toHaveLength(2);
    expect(shown()).toEqual(["domain-suffix example.invalid → block", "domain-suffix corp.example → direct", "port 8000-8999 → direct"]);
  });

  it("tests a host against the rules as edited, before they are saved", async () => {
    await openRules();
    (q("rules-add") as HTMLButtonElement).click();
    change(inRow(3, "rule-match"), "domain-suffix");
    change(inRow(3, "rule-value"), "example.invalid");
    change(inRow(3, "rule-action"), "block");
    const form = q("rules-test") as HTMLFormElement;
    change(q("rules-test-host") as HTMLInputElement, "www.example.invalid");
    change(q("rules-test-port") as HTMLInputElement, "80");
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    // The unsaved rule is in what is tested.
    expect(argsOf("test_route")).toEqual([
      { routing: { ...SET, rules: [...SET.rules, r("domain-suffix", "example.invalid", "block")] }, host: "www.example.invalid", port: 80 },
    ]);
    expect(commands()).not.toContain("save_routing_rules");
    expect(q("rules-test-action").textContent).toBe("block");
    expect(q("rules-test-label").textContent).toBe("by rule 4: domain-suffix example.invalid → block");
    expect(rows()[3].dataset.matched).toBe("true");
    expect(rows()[0].dataset.matched).toBe("false");

    // An edit makes the answer stale: it goes.
    change(inRow(3, "rule-action"), "direct");
    expect(q("rules-test-action").textContent).toBe("");
    change(q("rules-test-host") as HTMLInputElement, "example.org");
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    expect(q("rules-test-action").textContent).toBe("tunnel");
    expect(q("rules-test-label").textContent).toBe("by the default (no rule matches)");

    // Asked nothing without a host or with a bad port.
    const before = argsOf("test_route").length;
    change(q("rules-test-host") as HTMLInputElement, " ");
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    expect(q("rules-test-label").textContent).toBe("Enter a host name or an IP address.");
    change(q("rules-test-host") as HTMLInputElement, "example.org");
    change(q("rules-test-port") as HTMLInputElement, "70000");
    form.dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    expect(q("rules-test-label").textContent).toContain("1 to 65535");
    expect(argsOf("test_route")).toHaveLength(before);
  });

  it("shows a refused rule's reason next to that rule, in words, and saves nothing", async () => {
    await openRules();
    (q("rules-add") as HTMLButtonElement).click();
    change(inRow(3, "rule-match"), "ip");
    change(inRow(3, "rule-value"), "10.0.0.0/33");
    inRow(3, "rule-up").click(); // now rule 3
    (q("rules-save") as HTMLButtonElement).click();
    await tick();
    expect(saved.work).toEqual(SET);
    const error = inRow(2, "rule-error");
    expect(error.textContent).toBe('The prefix length must be 0 to 32, not "33"');
    expect(rows()[2].dataset.invalid).toBe("true");
    expect(inRow(2, "rule-value").getAttribute("aria-invalid")).toBe("true");
    expect(inRow(2, "rule-value").getAttribute("aria-describedby")).toBe(error.id);
    expect(document.activeElement).toBe(inRow(2, "rule-value"));
    expect(rows().filter((row) => row.dataset.invalid === "true")).toHaveLength(1);
    expect(q("rules-status").textContent).toBe('Not saved: rule 3 (ip 10.0.0.0/33 → direct): The prefix length must be 0 to 32, not "33"');
    expect(q("error").hidden).toBe(true); // the rule's problem, not the session's

    // The error moves with its rule, and goes once the rule is edited.
    inRow(2, "rule-down").click();
    expect(inRow(3, "rule-error").textContent).toContain("prefix length");
    expect(inRow(2, "rule-error").textContent).toBe("");
    change(inRow(3, "rule-value"), "10.0.0.0/8");
    expect(inRow(3, "rule-error").textContent).toBe("");
    expect(inRow(3, "rule-value").hasAttribute("aria-invalid")).toBe(false);
    (q("rules-save") as HTMLButtonElement).click();
    await tick();
    expect(saved.work.rules[3]).toEqual(r("ip", "10.0.0.0/8", "direct"));

    // Testing with a bad rule names it the same way.
    (q("rules-add") as HTMLButtonElement).click();
    change(q("rules-test-host") as HTMLInputElement, "example.org");
    (q("rules-test") as HTMLFormElement).dispatchEvent(new Event("submit", { cancelable: true }));
    await tick();
    expect(q("rules-test-label").textContent).toBe("Cannot test: rule 5 (domain-suffix → direct): Domain-suffix needs a value");
    expect(inRow(4, "rule-error").textContent).toBe("Domain-suffix needs a value");
  });

  it("moves a rule dragged by its number onto another", async () => {
    await openRules();
    const handle = rows()[2].querySelector(".rule-pos") as HTMLElement;
    expect(handle.draggable).toBe(true);
    handle.dispatchEvent(new Event("dragstart", { bubbles: true }));
    const over = new Event("dragover", { bubbles: true, cancelable: true });
    rows()[0].dispatchEvent(over);
    expect(over.defaultPrevented).toBe(true); // a drop target
    rows()[0].dispatchEvent(new Event("drop", { bubbles: true, cancelable: true }));
    expect(shown()).toEqual(["private → direct", "domain-suffix corp.example → direct", "domain ads.example → block"]);
    expect(q("rules-status").textContent).toBe("Rule 3 is now rule 1.");
    // Nothing dragged: not a drop target.
    const stray = new Event("dragover", { bubbles: true, cancelable: true });
    rows()[1].dispatchEvent(stray);
    expect(stray.defaultPrevented).toBe(false);
  });

  it("discards unsaved edits, and follows the profile chosen here", async () => {
    await openRules();
    inRow(0, "rule-delete").click();
    expect(rows()).toHaveLength(2);
    expect(document.activeElement).toBe(inRow(0, "rule-delete"));
    (q("rules-revert") as HTMLButtonElement).click();
    expect(shown()).toHaveLength(3);
    expect(q("rules-status").textContent).toBe("Changes discarded.");
    change(q("rules-profile") as HTMLSelectElement, "fast");
    await tick();
    expect(argsOf("routing_rules").at(-1)).toEqual({ name: "fast" });
    expect(rows()).toHaveLength(0);
    expect(q("rules-empty").hidden).toBe(false);
    // An overview (a refresh, another profile selected) keeps the choice.
    app.apply(overview({ selected: "work" }));
    expect((q("rules-profile") as HTMLSelectElement).value).toBe("fast");
    // A save while connected with that profile says the running one keeps its rules.
    current = overview({
      selected: "fast",
      connection: { kind: "profile", name: "fast", transport: null },
      snapshot: { ...overview().snapshot, state: { state: "active", session_id: "s", gateway: "g", max_streams: 0, since_unix: 0 } },
    });
    change(q("rules-default") as HTMLSelectElement, "direct");
    (q("rules-save") as HTMLButtonElement).click();
    await tick();
    expect(q("rules-status").textContent).toContain("The running connection keeps its rules");
  });

  it("says that publishing and sharing profiles have no rules, and asks nothing", async () => {
    app.apply(overview({ selected: "site" }));
    await openRules();
    expect(q("rules-editor").hidden).toBe(true);
    expect(q("rules-none").hidden).toBe(false);
    expect(q("rules-none").textContent).toContain("The HLHV profile “site” publishes a local web app, so it has no routing rules");
    expect((q("rules-profile") as HTMLSelectElement).selectedOptions[0].textContent).toBe("site · HLHV (no rules)");
    expect(argsOf("routing_rules")).toEqual([]);

    // Not chosen here: the view follows the selected profile.
    app.apply(overview({ selected: "home" }));
    expect(q("rules-none").textContent).toContain("The Relay profile “home” shares this computer's ports");

    app.apply(overview({ profiles: [SITE], selected: null }));
    expect(q("rules-none").textContent).toContain("No Connect profile yet");
    expect(q("rules-editor").hidden).toBe(true);
  });
});
