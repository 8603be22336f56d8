// One tab list (WAI-ARIA tabs): click or arrow keys select a tab and show its
// panel (`aria-controls`); only the selected tab is in the Tab order.

export class Tabs {
  /**
   * @param list the `role="tablist"` element
   * @param scope where the panels are looked up by id
   * @param onSelect called after a tab was selected
   */
  constructor(
    private list: HTMLElement,
    private scope: ParentNode,
    private onSelect: (id: string) => void = () => undefined,
  ) {
    for (const tab of this.tabs()) this.wire(tab);
  }

  /** The visible tabs, in order. */
  tabs(): HTMLButtonElement[] {
    return [...this.list.querySelectorAll<HTMLButtonElement>('[role="tab"]')].filter((t) => !t.hidden);
  }

  /** Makes a (new) tab react to clicks and keys. */
  wire(tab: HTMLButtonElement): void {
    tab.addEventListener("click", () => this.select(tab.id));
    tab.addEventListener("keydown", (e) => {
      const tabs = this.tabs();
      const i = tabs.indexOf(tab);
      let next: HTMLButtonElement | undefined;
      if (e.key === "ArrowRight") next = tabs[(i + 1) % tabs.length];
      else if (e.key === "ArrowLeft") next = tabs[(i - 1 + tabs.length) % tabs.length];
      else if (e.key === "Home") next = tabs[0];
      else if (e.key === "End") next = tabs[tabs.length - 1];
      if (!next) return;
      e.preventDefault();
      next.focus();
      this.select(next.id);
    });
  }

  /** The selected tab's id. */
  get selected(): string | null {
    return this.list.querySelector('[role="tab"][aria-selected="true"]')?.id ?? null;
  }

  select(id: string): void {
    for (const tab of this.list.querySelectorAll<HTMLButtonElement>('[role="tab"]')) {
      const selected = tab.id === id;
      tab.setAttribute("aria-selected", String(selected));
      tab.tabIndex = selected ? 0 : -1;
      const panel = this.scope.querySelector<HTMLElement>(`#${tab.getAttribute("aria-controls")}`);
      if (panel) panel.hidden = !selected;
    }
    this.onSelect(id);
  }
}
