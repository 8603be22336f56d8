// A small throughput graph: the last minute of total down/up rates, drawn on
// a canvas (no library; a few dozen lines do it).

/** Samples kept (one per `streams` event, at most a few per second). */
export const GRAPH_SAMPLES = 120;

export class ThroughputGraph {
  private down: number[] = [];
  private up: number[] = [];

  constructor(private canvas: HTMLCanvasElement) {}

  push(down: number, up: number): void {
    this.down.push(down);
    this.up.push(up);
    if (this.down.length > GRAPH_SAMPLES) {
      this.down.shift();
      this.up.shift();
    }
    this.draw();
  }

  clear(): void {
    this.down = [];
    this.up = [];
    this.draw();
  }

  get samples(): number {
    return this.down.length;
  }

  draw(): void {
    const ctx = this.canvas.getContext?.("2d");
    if (!ctx) return; // jsdom has no canvas
    const { width, height } = this.canvas;
    ctx.clearRect(0, 0, width, height);
    const max = Math.max(1, ...this.down, ...this.up);
    const style = getComputedStyle(this.canvas);
    const line = (values: number[], color: string) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      values.forEach((v, i) => {
        const x = (i / (GRAPH_SAMPLES - 1)) * width;
        const y = height - 2 - (v / max) * (height - 4);
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    };
    line(this.down, style.getPropertyValue("--down").trim() || "#0f766e");
    line(this.up, style.getPropertyValue("--up").trim() || "#d97706");
  }
}
