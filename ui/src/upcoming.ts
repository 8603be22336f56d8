// A panel whose protocols are not usable yet (Remote access): for
// each of its protocols, the title, the summary and a "not available yet"
// note while the registry says so. The real panels replace this later.
import type { ProtocolInfo } from "./bindings";
import { protocolCard } from "./protocols";

export class UpcomingPanel {
  readonly element: HTMLElement;
  private list: HTMLElement;
  private shown = "";

  /**
   * @param heading the panel's heading
   * @param intro one sentence on what the mode is for
   */
  constructor(heading: string, intro: string) {
    this.element = document.createElement("div");
    this.element.className = "upcoming";
    const h2 = document.createElement("h2");
    h2.textContent = heading;
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = intro;
    this.list = document.createElement("div");
    this.list.className = "protocols";
    this.element.append(h2, p, this.list);
  }

  /** Shows this mode's protocols. */
  render(protocols: readonly ProtocolInfo[]): void {
    const key = JSON.stringify(protocols);
    if (key === this.shown) return;
    this.shown = key;
    this.list.replaceChildren(...protocols.map(protocolCard));
  }
}
