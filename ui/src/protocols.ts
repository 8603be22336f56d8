// The app's protocol registry as the UI uses it (`Overview.protocols`): the
// navigation, the panels and the profile form are built from it, never from
// a list of protocol names.
import type { Carries, Mode, Protocol, ProtocolInfo } from "./bindings";

/** The protocols of each mode, in the registry's order. */
export function byMode(protocols: readonly ProtocolInfo[]): Map<Mode, ProtocolInfo[]> {
  const groups = new Map<Mode, ProtocolInfo[]>();
  for (const p of protocols) {
    const group = groups.get(p.mode);
    if (group) group.push(p);
    else groups.set(p.mode, [p]);
  }
  return groups;
}

/** A protocol's name for people (its id if the registry doesn't know it). */
export function titleOf(protocols: readonly ProtocolInfo[], id: Protocol): string {
  return protocols.find((p) => p.id === id)?.title ?? id;
}

/** What a connect-mode protocol carries, e.g. `TCP · UDP · remote DNS`. */
export function carriesText(c: Carries): string {
  const parts = [c.streams && "TCP", c.datagrams && "UDP", c.dns && "remote DNS"].filter(Boolean);
  return parts.join(" · ");
}

export const NOT_AVAILABLE = "not available yet";

/** A protocol's title, summary and, while it is unavailable, a clear note. */
export function protocolCard(p: ProtocolInfo): HTMLElement {
  const card = document.createElement("article");
  card.className = "card protocol";
  card.dataset.protocol = p.id;
  card.dataset.available = String(p.available);
  const title = document.createElement("h3");
  title.textContent = p.title;
  const summary = document.createElement("p");
  summary.textContent = p.summary;
  card.append(title, summary);
  if (!p.available) {
    const note = document.createElement("p");
    note.className = "soon";
    note.dataset.testid = "not-available";
    note.textContent = `${p.title} is ${NOT_AVAILABLE}: it comes in a later version of the app.`;
    card.append(note);
  }
  return card;
}
