// Writes to the page that happen only when the value changes. The window
// refreshes itself once a second (ages, uptimes) and on every engine event;
// a text write replaces the element's text node even when the text is the
// same, and each such write costs WebKit a layout and a repaint, in the web
// process and again in the app's process that draws it. Measured with the
// release app idle under --demo, window open: the once-a-second refresh
// rewriting every field cost 1 % of a core (0.8 % in the web process, 0.2 %
// in the app's); writing only what changed, 0.1 % in all (bench/README.md,
// "The quiet app").

/** Sets `el`'s text when it differs. */
export function setText(el: HTMLElement, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}

/** Shows or hides `el` when that changes. */
export function setHidden(el: HTMLElement, hidden: boolean): void {
  if (el.hidden !== hidden) el.hidden = hidden;
}

/** Sets `el.title` (the tooltip) when it differs. */
export function setTitle(el: HTMLElement, title: string): void {
  if (el.title !== title) el.title = title;
}

/** Sets one `data-` attribute when it differs. */
export function setData(el: HTMLElement, key: string, value: string): void {
  if (el.dataset[key] !== value) el.dataset[key] = value;
}

/** Sets a control's `disabled` when it differs. */
export function setDisabled(el: HTMLButtonElement | HTMLSelectElement | HTMLInputElement, disabled: boolean): void {
  if (el.disabled !== disabled) el.disabled = disabled;
}
