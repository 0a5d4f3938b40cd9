/**
 * The small chart (uPlot), in a module of its own: only the pages that draw one load uPlot, so
 * the others' script is the smaller by it (the bundle is split per page: platform/web/assets.ts).
 * Its stylesheet is in the one the document links (web/main.ts): a split chunk's CSS is not loaded.
 */
import { type ComponentChild, h } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

/** A small line chart of one series over time (uPlot; drawn, not read). */
export function Chart({ points, label, name }: { points: [number[], number[]]; label: string; name: string }): ComponentChild {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  useEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot({ width: 480, height: 160, legend: { show: false }, series: [{}, { label, stroke: '#2b6cb0', width: 2 }] }, points, box.current);
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => plot.current?.setData(points), [points]);
  return h('div', { ref: box, class: 'chart', role: 'img', 'aria-label': name });
}
