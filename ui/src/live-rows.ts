// The rows one view keeps of the engine's live table (the Connect panel's
// streams, the Publish panel's requests): the open rows by key and the last
// closed ones, newest first, rendered in place. Rows are keyed by the
// engine's row key and only the cells whose text changed are written, so a
// few updates per second never flicker, keep the selection and don't steal
// focus. A filter hides rows (they stay in place, updated, and come back
// as they were) rather than removing them.
import type { StreamInfo } from "./bindings";
import { setData, setHidden, setText } from "./dom";

/** What a view makes of one row: its cells, by column. `row` is the table
 * row, for data attributes the view's styles use. */
export type Fill<C extends string> = (s: StreamInfo, row: HTMLTableRowElement, nowMs: number) => Record<C, string>;

export class LiveRows<C extends string> {
  private rows = new Map<number, HTMLTableRowElement>();
  protected open = new Map<number, StreamInfo>();
  protected closed: StreamInfo[] = [];
  private shows: (s: StreamInfo) => boolean = () => true;

  /** `keep` picks this view's rows; `limit` closed rows stay. */
  constructor(
    private body: HTMLTableSectionElement,
    private empty: HTMLElement,
    private columns: readonly C[],
    private keep: (s: StreamInfo) => boolean,
    private limit: number,
    private fill: Fill<C>,
  ) {}

  /** Replaces everything (from a snapshot). */
  reset(open: StreamInfo[], closed: StreamInfo[]): void {
    this.open = new Map(open.filter(this.keep).map((s) => [s.key, s]));
    this.closed = closed.filter(this.keep).slice(-this.limit).reverse();
    this.render();
  }

  opened(s: StreamInfo): void {
    if (!this.keep(s)) return;
    this.open.set(s.key, s);
    this.render();
  }

  closedRow(s: StreamInfo): void {
    if (!this.keep(s)) return;
    this.open.delete(s.key);
    this.closed = [s, ...this.closed.filter((c) => c.key !== s.key)].slice(0, this.limit);
    this.render();
  }

  /** The open rows' latest counters (the complete open set). */
  update(open: StreamInfo[]): void {
    this.open = new Map(open.filter(this.keep).map((s) => [s.key, s]));
    this.render();
  }


  /** Whether any row is open (its age or duration counts seconds). */
  get hasOpen(): boolean {
    return this.open.size > 0;
  }

  /** Refreshes ages and durations. */
  tick(): void {
    this.render();
  }

  /** Shows only the rows `shows` keeps (all of them: `() => true`). */
  setFilter(shows: (s: StreamInfo) => boolean): void {
    this.shows = shows;
    this.render();
  }

  /** Called after every render with the rows shown and the rows kept. */
  protected rendered(_shown: number, _total: number): void {}

  render(nowMs = Date.now()): void {
    const ordered = [...[...this.open.values()].sort((a, b) => b.key - a.key), ...this.closed];
    const wanted = new Set(ordered.map((s) => s.key));
    for (const [key, row] of this.rows) {
      if (!wanted.has(key)) {
        row.remove();
        this.rows.delete(key);
      }
    }
    let previous: HTMLTableRowElement | null = null;
    let shown = 0;
    for (const s of ordered) {
      let row = this.rows.get(s.key);
      if (!row) {
        row = document.createElement("tr");
        row.dataset.key = String(s.key);
        for (const column of this.columns) {
          const cell = document.createElement("td");
          cell.dataset.col = column;
          row.appendChild(cell);
        }
        this.rows.set(s.key, row);
      }
      setData(row, "state", s.state);
      const visible = this.shows(s);
      setHidden(row, !visible);
      if (visible) shown += 1;
      const values = this.fill(s, row, nowMs);
      this.columns.forEach((column, i) => {
        const cell = row!.children[i] as HTMLTableCellElement;
        setText(cell, values[column]);
      });
      const expected: ChildNode | null = previous ? previous.nextSibling : this.body.firstChild;
      if (expected !== row) this.body.insertBefore(row, expected);
      previous = row;
    }
    setHidden(this.empty, ordered.length > 0);
    this.rendered(shown, ordered.length);
  }
}
