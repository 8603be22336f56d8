// The window's shell: the brand and the navigation between the modes'
// panels. The tabs are built from the registry (`Overview.protocols`)
// grouped by mode; each mode's panel gets its own protocols to show.
import type { Mode, ProtocolInfo } from "./bindings";
import { byMode } from "./protocols";
import { Tabs } from "./tabs";

/** A mode's panel: its content and how it shows its protocols. */
export interface ModePanel {
  readonly element: HTMLElement;
  render(protocols: readonly ProtocolInfo[]): void;
}

/** Every mode's name for people, in the navigation's order. */
export const MODE_LABELS: Record<Mode, string> = {
  connect: "Connect",
  publish: "Publish",
  remote_access: "Remote access",
};

const MODES = Object.keys(MODE_LABELS) as Mode[];

/** Shown first, and before the registry has arrived. */
export const DEFAULT_MODE: Mode = "connect";

const TEMPLATE = `
<header class="bar">
  <div class="brand"><img src="/icon.png" alt="" width="28" height="28" /> <span>httvps</span></div>
  <nav id="modes" class="modes" role="tablist" aria-label="Modes" data-testid="modes"></nav>
</header>
<main id="mode-panels" class="mode-panels"></main>`;

export const tabId = (mode: Mode) => `mode-tab-${mode}`;
export const panelId = (mode: Mode) => `mode-${mode}`;

export class Shell {
  private nav: HTMLElement;
  private tabs: Tabs;
  private shownModes = "";

  constructor(root: HTMLElement, private panels: Record<Mode, ModePanel>) {
    root.innerHTML = TEMPLATE;
    this.nav = root.querySelector("#modes") as HTMLElement;
    const container = root.querySelector("#mode-panels") as HTMLElement;
    for (const mode of MODES) {
      const section = document.createElement("section");
      section.id = panelId(mode);
      section.className = "mode-panel";
      section.dataset.testid = panelId(mode);
      section.setAttribute("role", "tabpanel");
      section.setAttribute("aria-labelledby", tabId(mode));
      section.hidden = mode !== DEFAULT_MODE;
      section.append(panels[mode].element);
      container.append(section);
    }
    // A panel whose tab went away is hidden too.
    this.tabs = new Tabs(this.nav, root, (id) => {
      for (const mode of MODES) (container.querySelector(`#${panelId(mode)}`) as HTMLElement).hidden = tabId(mode) !== id;
    });
    this.render([]);
  }

  /** The mode whose panel is shown. */
  get mode(): Mode {
    const id = this.tabs.selected;
    return MODES.find((m) => tabId(m) === id) ?? DEFAULT_MODE;
  }

  select(mode: Mode): void {
    this.tabs.select(tabId(mode));
  }

  /** Rebuilds the navigation from the registry and hands each panel its protocols. */
  render(protocols: readonly ProtocolInfo[]): void {
    const groups = byMode(protocols);
    const modes = MODES.filter((m) => m === DEFAULT_MODE || groups.has(m));
    const key = JSON.stringify(modes.map((m) => [m, groups.get(m)?.some((p) => p.available) ?? true]));
    if (key !== this.shownModes) {
      this.shownModes = key;
      const selected = modes.includes(this.mode) ? this.mode : DEFAULT_MODE;
      this.nav.replaceChildren(...modes.map((m) => this.tab(m, groups.get(m) ?? [])));
      for (const tab of this.tabs.tabs()) this.tabs.wire(tab);
      this.select(selected);
    }
    for (const mode of MODES) this.panels[mode].render(groups.get(mode) ?? []);
  }

  private tab(mode: Mode, protocols: readonly ProtocolInfo[]): HTMLButtonElement {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.id = tabId(mode);
    tab.dataset.testid = tabId(mode);
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", panelId(mode));
    tab.textContent = MODE_LABELS[mode];
    if (protocols.length > 0 && !protocols.some((p) => p.available)) {
      const soon = document.createElement("span");
      soon.className = "badge";
      soon.textContent = "soon";
      tab.append(" ", soon);
    }
    return tab;
  }
}
