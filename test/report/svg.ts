/**
 * The pictures the soak and benchmark reports draw, as SVG text: a stack of line charts (one
 * panel per measured quantity, sharing the time axis) and a horizontal bar chart of ratios
 * against their goals. Written here rather than taken from a charting library because both
 * reports must render in CI with no browser and no canvas: an SVG is text, and a reviewer opens
 * it in any browser or in the repository's web view.
 */

export interface Series {
  name: string;
  /** [x, y] pairs in data units; non-finite points are skipped (a gap in a sampled curve). */
  points: readonly (readonly [number, number])[];
  color?: string;
  /** Drawn dashed: a fitted trend or a bound beside the measured curve. */
  dashed?: boolean;
}

export interface LinePanel {
  title: string;
  yLabel: string;
  series: Series[];
  /** A horizontal line at this y (a stated bound), labelled. */
  limit?: { y: number; label: string };
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  panels: LinePanel[];
  width?: number;
  panelHeight?: number;
}

export interface Bar {
  label: string;
  /** The measured ratio (>= 1 is as good as the baseline). */
  value: number;
  /** The goal on the ratio, drawn as a tick on the bar's row. */
  goal?: number;
  pass: boolean;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b'];
const MARGIN = { left: 70, right: 20, top: 28, bottom: 34 };

/** Text for an SVG text node or attribute: the five characters XML reserves, escaped. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** Round, readable tick values covering [min, max] (about `count` of them). */
export function ticks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [];
  if (max === min) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function label(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (abs >= 100 || Number.isInteger(value)) return value.toFixed(0);
  return abs >= 1 ? value.toFixed(1) : value.toPrecision(2);
}

const num = (v: number): string => (Math.round(v * 10) / 10).toString();

function extent(values: number[], include: number[] = []): [number, number] {
  const all = [...values, ...include].filter(Number.isFinite);
  if (all.length === 0) return [0, 1];
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (lo === hi) {
    lo -= Math.abs(lo) * 0.1 || 1;
    hi += Math.abs(hi) * 0.1 || 1;
  }
  const pad = (hi - lo) * 0.05;
  return [lo >= 0 && lo - pad < 0 ? 0 : lo - pad, hi + pad];
}

/** Stacked line charts sharing one x axis; each panel has its own y axis. */
export function lineChart(options: LineChartOptions): string {
  const width = options.width ?? 860;
  const panelHeight = options.panelHeight ?? 220;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = panelHeight - MARGIN.top - MARGIN.bottom;
  const xs = options.panels.flatMap((p) => p.series.flatMap((s) => s.points.map(([x]) => x)));
  const [x0, x1] = extent(xs);
  const height = 30 + panelHeight * options.panels.length;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  options.panels.forEach((panel, index) => {
    const top = 30 + index * panelHeight + MARGIN.top;
    const ys = panel.series.flatMap((s) => s.points.map(([, y]) => y));
    const [y0, y1] = extent(ys, panel.limit ? [panel.limit.y] : []);
    const sx = (x: number): number => MARGIN.left + ((x - x0) / (x1 - x0)) * plotW;
    const sy = (y: number): number => top + plotH - ((y - y0) / (y1 - y0)) * plotH;
    parts.push(`<g>`, `<text x="${MARGIN.left}" y="${top - 8}" font-size="12" font-weight="bold">${escapeXml(panel.title)}</text>`);
    parts.push(`<rect x="${MARGIN.left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
    for (const t of ticks(y0, y1)) {
      parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${num(sy(t))}" y2="${num(sy(t))}" stroke="#eee"/>`);
      parts.push(`<text x="${MARGIN.left - 4}" y="${num(sy(t) + 4)}" text-anchor="end">${label(t)}</text>`);
    }
    for (const t of ticks(x0, x1, 8)) {
      parts.push(`<text x="${num(sx(t))}" y="${top + plotH + 14}" text-anchor="middle">${label(t)}</text>`);
    }
    parts.push(
      `<text transform="translate(14 ${num(top + plotH / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(panel.yLabel)}</text>`,
      `<text x="${MARGIN.left + plotW / 2}" y="${top + plotH + 28}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`,
    );
    if (panel.limit) {
      const y = num(sy(panel.limit.y));
      parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${y}" y2="${y}" stroke="#d62728" stroke-dasharray="2 3"/>`);
      parts.push(`<text x="${MARGIN.left + plotW - 4}" y="${Number(y) - 4}" text-anchor="end" fill="#d62728">${escapeXml(panel.limit.label)}</text>`);
    }
    panel.series.forEach((series, s) => {
      const color = series.color ?? PALETTE[s % PALETTE.length]!;
      const points = series.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
      if (points.length === 0) return;
      const d = points.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${num(sx(x))} ${num(sy(y))}`).join(' ');
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.5"${series.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
      parts.push(`<text x="${MARGIN.left + 8 + s * 200}" y="${top + 14}" fill="${color}">${series.dashed ? '- - ' : '— '}${escapeXml(series.name)}</text>`);
    });
    parts.push(`</g>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}

/**
 * Ratios as horizontal bars on a logarithmic axis (ratios from 1/3000 to 3 share one report),
 * with each goal as a black tick and a line at 1 (as good as the baseline). Green meets its
 * goal, red does not.
 */
export function barChart(options: { title: string; bars: Bar[]; width?: number }): string {
  const width = options.width ?? 860;
  const labelW = 360;
  const row = 20;
  const top = 40;
  const plotW = width - labelW - MARGIN.right;
  const height = top + row * options.bars.length + 40;
  const values = options.bars.flatMap((b) => [b.value, b.goal ?? 1]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.min(0.1, ...values);
  const hi = Math.max(2, ...values);
  const [l0, l1] = [Math.floor(Math.log10(lo)), Math.ceil(Math.log10(hi))];
  const sx = (v: number): number => labelW + ((Math.log10(Math.max(v, 10 ** l0)) - l0) / (l1 - l0)) * plotW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  for (let e = l0; e <= l1; e += 1) {
    const x = num(sx(10 ** e));
    parts.push(`<line x1="${x}" x2="${x}" y1="${top - 6}" y2="${top + row * options.bars.length}" stroke="${e === 0 ? '#555' : '#ddd'}"/>`);
    parts.push(`<text x="${x}" y="${top + row * options.bars.length + 14}" text-anchor="middle">${label(10 ** e)}x</text>`);
  }
  options.bars.forEach((bar, i) => {
    const y = top + i * row;
    const short = bar.label.length > 58 ? `${bar.label.slice(0, 57)}…` : bar.label;
    parts.push(`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${escapeXml(short)}</text>`);
    if (Number.isFinite(bar.value) && bar.value > 0) {
      const x = sx(bar.value);
      const base = sx(10 ** l0);
      parts.push(`<rect x="${num(base)}" y="${y + 4}" width="${num(Math.max(1, x - base))}" height="${row - 8}" fill="${bar.pass ? '#2ca02c' : '#d62728'}"/>`);
      parts.push(`<text x="${num(x + 4)}" y="${y + 14}">${bar.value.toPrecision(2)}x</text>`);
    }
    if (bar.goal !== undefined && Number.isFinite(bar.goal) && bar.goal > 0) {
      const x = num(sx(bar.goal));
      parts.push(`<line x1="${x}" x2="${x}" y1="${y + 1}" y2="${y + row - 1}" stroke="#000" stroke-width="2"/>`);
    }
  });
  parts.push(
    `<text x="${labelW}" y="${height - 8}">ratio to the same-run baseline (log scale; black tick: the goal; green: met, red: not met)</text>`,
    '</svg>',
  );
  return `${parts.join('\n')}\n`;
}
