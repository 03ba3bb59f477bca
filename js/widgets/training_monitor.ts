// TrainingMonitor: one small chart per training metric (loss on a log scale, L0, explained variance, dead fraction),
// a line per run in its own colour, the legend saying how each run stands (training, finished, interrupted with the
// checkpoint kept). The kernel pushes the `runs` trait while the training cell runs; each push redraws (once per
// frame). Hovering a chart reads every run's value at the nearest step. Nothing here asks the kernel anything:
// training owns the kernel while it runs, and interrupting the kernel is how a run is stopped.
// Python side: interpwidgets/widgets/training_monitor.py.

import "../lib/base.css";
import "./training_monitor.css";
import type { RenderProps } from "../lib/anywidget";
import { sizeCanvas } from "../lib/canvas";
import { cssColour } from "../lib/colour";
import { h, setChildren } from "../lib/dom";
import { formatNumber } from "../lib/format";
import { createShell } from "../lib/shell";
import { type RGB, type Theme, mix } from "../lib/theme";

interface Metric { key: string; label: string; units: string; scale: "log" | "linear"; range: [number, number] | null }
interface Run {
  name: string;
  status: string;
  step: number;
  steps: number | null;
  tokens: number;
  checkpoint: string | null;
  text: string;
  points: Record<string, (number | null)[]>;
}
interface Traits { title: string; metrics: Metric[]; runs: Run[] }

const WIDTH = 300;
const HEIGHT = 150;
const PAD = { left: 48, right: 10, top: 8, bottom: 22 };
// colour-blind-safe categorical colours (Okabe-Ito), lightened on dark backgrounds
const PALETTE: RGB[] = [[0, 114, 178], [213, 94, 0], [0, 158, 115], [204, 121, 167], [230, 159, 0], [86, 180, 233], [120, 120, 120]];

function runColour(theme: Theme, index: number): string {
  const base = PALETTE[index % PALETTE.length];
  return cssColour(theme.dark ? mix(base, [255, 255, 255], 0.25) : base);
}

/** The value range a chart spans: the metric's fixed one, widened to the data; log charts span powers of the data. */
function extent(metric: Metric, runs: Run[]): [number, number] {
  let low = Infinity;
  let high = -Infinity;
  for (const run of runs) for (const v of run.points[metric.key] ?? []) {
    if (v === null || (metric.scale === "log" && !(v > 0))) continue;
    low = Math.min(low, v);
    high = Math.max(high, v);
  }
  if (metric.range) return [Math.min(metric.range[0], low), Math.max(metric.range[1], high)];
  if (!Number.isFinite(low)) return metric.scale === "log" ? [0.1, 1] : [0, 1];
  if (metric.scale === "log") return low === high ? [low / 2, high * 2] : [low, high];
  return [Math.min(0, low), high > low ? high : low + 1];
}

async function render({ model, el, signal }: RenderProps<Traits>): Promise<void> {
  const metrics = model.get("metrics");
  const shell = createShell(el, model.get("title"), "iw-training-monitor", signal, () => schedule());
  shell.toolbar.append(h("span", { className: "iw-hint" },
    "curves update while the training cell runs \u00b7 interrupt the kernel (\u25a0) to stop a run: its last checkpoint is kept"));
  const legendEl = h("div", { className: "iw-monitor-legend", attrs: { role: "list" } });
  const grid = h("div", { className: "iw-monitor-grid" });
  shell.body.append(legendEl, grid);

  const charts = metrics.map((metric) => {
    const canvas = h("canvas", { className: "iw-monitor-canvas", attrs: { role: "img", "aria-label": `${metric.label} against training step` } });
    const latest = h("span", { className: "iw-monitor-latest" });
    const box = h("div", { className: "iw-monitor-chart", attrs: { "data-metric": metric.key } },
      h("div", { className: "iw-monitor-chart-title" }, h("span", { className: "iw-monitor-label" }, metric.label), latest),
      canvas, h("div", { className: "iw-caption" }, `${metric.units} \u00b7 x: training step`));
    grid.append(box);
    return { metric, canvas, latest };
  });

  let runs: Run[] = model.get("runs");
  let hoverStep: number | null = null;
  let frame = 0;

  function schedule(): void {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; draw(); });
  }

  function maxStep(): number {
    let top = 1;
    for (const run of runs) top = Math.max(top, run.steps ?? 0, run.step);
    return top;
  }

  function drawLegend(theme: Theme): void {
    setChildren(legendEl, ...(runs.length ? runs.map((run, i) =>
      h("div", { className: "iw-monitor-run", attrs: { role: "listitem", "data-run": run.name, "data-status": run.status, "data-step": String(run.step) } },
        h("span", { className: "iw-monitor-swatch", style: { background: runColour(theme, i) } }),
        h("span", { className: "iw-monitor-name" }, run.name),
        h("span", { className: "iw-monitor-progress" }, `step ${run.step}${run.steps ? ` / ${run.steps}` : ""}`),
        h("span", { className: `iw-monitor-status iw-status-${run.status}` }, run.text)))
      : [h("span", { className: "iw-hint" }, "no run yet: pass callback=monitor.track(name) to iw.sae.train")]));
  }

  function draw(): void {
    const theme = shell.theme();
    drawLegend(theme);
    const top = maxStep();
    for (const { metric, canvas, latest } of charts) {
      const ctx = sizeCanvas(canvas, WIDTH, HEIGHT);
      const [low, high] = extent(metric, runs);
      const log = metric.scale === "log";
      const ty = (v: number) => (log ? Math.log10(v) : v);
      const [a, b] = [ty(low), ty(high)];
      const plotW = WIDTH - PAD.left - PAD.right;
      const plotH = HEIGHT - PAD.top - PAD.bottom;
      const x = (step: number) => PAD.left + (step / top) * plotW;
      const y = (v: number) => PAD.top + (1 - (ty(v) - a) / (b - a || 1)) * plotH;
      // axes, a few gridlines and their values
      ctx.font = "10px var(--jp-ui-font-family, sans-serif)";
      ctx.fillStyle = cssColour(theme.muted);
      ctx.strokeStyle = cssColour(mix(theme.background, theme.border, 0.6));
      ctx.lineWidth = 1;
      const ticks = log ? logTicks(low, high) : [low, (low + high) / 2, high];
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      for (const tick of ticks) {
        const ty0 = Math.round(y(tick)) + 0.5;
        ctx.beginPath(); ctx.moveTo(PAD.left, ty0); ctx.lineTo(WIDTH - PAD.right, ty0); ctx.stroke();
        ctx.fillText(formatNumber(tick), PAD.left - 4, ty0);
      }
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const step of [0, Math.round(top / 2), top]) ctx.fillText(String(step), x(step), HEIGHT - PAD.bottom + 4);
      ctx.strokeStyle = cssColour(theme.border);
      ctx.strokeRect(PAD.left + 0.5, PAD.top + 0.5, plotW, plotH);
      // one line per run
      const latestParts: HTMLElement[] = [];
      runs.forEach((run, i) => {
        const steps = (run.points.step ?? []) as number[];
        const values = run.points[metric.key] ?? [];
        ctx.strokeStyle = runColour(theme, i);
        ctx.lineWidth = 1.5;
        ctx.beginPath();
        let open = false;
        let last: number | null = null;
        for (let j = 0; j < steps.length; j++) {
          const v = values[j];
          if (v === null || (log && !(v > 0))) { open = false; continue; }
          const px = x(steps[j]);
          const py = y(Math.min(Math.max(v, low), high));
          if (open) ctx.lineTo(px, py); else ctx.moveTo(px, py);
          open = true;
          last = v;
        }
        ctx.stroke();
        if (last !== null) latestParts.push(h("span", { className: "iw-monitor-value", attrs: { "data-run": run.name }, style: { color: runColour(theme, i) } },
          `${run.name} ${formatNumber(last)}`));
      });
      setChildren(latest, ...latestParts);
      if (hoverStep !== null) {
        ctx.strokeStyle = cssColour(theme.foreground);
        ctx.setLineDash([3, 3]);
        ctx.beginPath(); ctx.moveTo(x(hoverStep), PAD.top); ctx.lineTo(x(hoverStep), HEIGHT - PAD.bottom); ctx.stroke();
        ctx.setLineDash([]);
      }
    }
  }

  /** Every run's values at the recorded step nearest `step`. */
  function readout(step: number): string[] {
    const lines = [`step ${step}`];
    for (const run of runs) {
      const steps = (run.points.step ?? []) as number[];
      if (!steps.length) continue;
      let best = 0;
      for (let j = 1; j < steps.length; j++) if (Math.abs(steps[j] - step) < Math.abs(steps[best] - step)) best = j;
      const values = metrics.map((m) => `${m.label} ${formatNumber(run.points[m.key]?.[best] ?? NaN)}`);
      lines.push(`${run.name} (step ${steps[best]}): ${values.join(", ")}`);
    }
    return lines;
  }

  for (const { canvas } of charts) {
    canvas.addEventListener("mousemove", (event) => {
      const rect = canvas.getBoundingClientRect();
      const fraction = (event.clientX - rect.left - PAD.left) / (rect.width - PAD.left - PAD.right);
      if (fraction < 0 || fraction > 1 || !runs.length) { hoverStep = null; shell.tooltip.hide(); schedule(); return; }
      hoverStep = Math.round(fraction * maxStep());
      shell.tooltip.show(event, readout(hoverStep));
      schedule();
    });
    canvas.addEventListener("mouseleave", () => { hoverStep = null; shell.tooltip.hide(); schedule(); });
  }
  const onRuns = () => { runs = model.get("runs"); schedule(); };
  model.on("change:runs", onRuns);
  signal.addEventListener("abort", () => { model.off("change:runs", onRuns); if (frame) cancelAnimationFrame(frame); });
  draw();
}

/** Powers of ten inside [low, high], or the ends when the span is under one decade. */
function logTicks(low: number, high: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.ceil(Math.log10(low)); e <= Math.floor(Math.log10(high)); e++) ticks.push(10 ** e);
  return ticks.length >= 2 ? ticks : [low, Math.sqrt(low * high), high];
}

export default { render };
