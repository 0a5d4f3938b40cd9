import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { barChart, escapeXml, lineChart, ticks } from './svg.js';

/** Parsed by a real XML parser (python3's, which CI has for pymodbus): a picture a browser can open. */
function assertWellFormed(svg: string): void {
  execFileSync('python3', ['-c', 'import sys, xml.dom.minidom as m; d = m.parseString(sys.stdin.buffer.read()); assert d.documentElement.tagName == "svg"'], {
    input: svg,
  });
}

describe('SVG charts', () => {
  it('draws stacked line panels as well-formed SVG, one path per series', () => {
    const svg = lineChart({
      title: 'soak',
      xLabel: 's',
      panels: [
        {
          title: 'RSS',
          yLabel: 'MiB',
          series: [
            {
              name: 'rss',
              points: [
                [0, 1],
                [1, 2],
                [2, 3],
              ],
            },
            {
              name: 'fit',
              points: [
                [0, 1],
                [2, 3],
              ],
              dashed: true,
            },
          ],
        },
        {
          title: 'ELD',
          yLabel: 'ms',
          series: [
            {
              name: 'p99',
              points: [
                [0, 5],
                [1, Number.NaN],
                [2, 7],
              ],
            },
          ],
          limit: { y: 100, label: 'bound 100 ms' },
        },
      ],
    });
    assertWellFormed(svg);
    assert.equal(svg.match(/<path /g)?.length, 3);
    assert.equal(svg.match(/stroke-dasharray="6 4"/g)?.length, 1);
    assert.match(svg, /bound 100 ms/);
    // The NaN sample is a gap, not a point at the origin.
    assert.doesNotMatch(svg, /NaN/);
  });

  it('escapes text that would break the markup', () => {
    assert.equal(escapeXml(`<a href="x">&'`), '&lt;a href=&quot;x&quot;&gt;&amp;&apos;');
    const svg = barChart({ title: 'x < y & "z"', bars: [{ label: '</svg><script>', value: 1, pass: true }] });
    assertWellFormed(svg);
    assert.doesNotMatch(svg, /<script>/);
  });

  it('draws a bar per ratio, green when it meets its goal and red when not, with the goal as a tick', () => {
    const svg = barChart({
      title: 'ratios',
      bars: [
        { label: 'fast', value: 1.4, goal: 1, pass: true },
        { label: 'slow', value: 0.0004, goal: 0.5, pass: false },
        { label: 'no goal', value: 2, pass: true },
      ],
    });
    assertWellFormed(svg);
    assert.equal(svg.match(/fill="#2ca02c"/g)?.length, 2);
    assert.equal(svg.match(/fill="#d62728"/g)?.length, 1);
    assert.equal(svg.match(/stroke="#000" stroke-width="2"/g)?.length, 2);
  });

  it('picks round ticks', () => {
    assert.deepEqual(ticks(0, 10), [0, 2, 4, 6, 8, 10]);
    assert.deepEqual(ticks(263, 287), [265, 270, 275, 280, 285]);
    assert.deepEqual(ticks(3, 3), [3]);
    assert.deepEqual(ticks(0, Number.NaN), []);
  });
});
