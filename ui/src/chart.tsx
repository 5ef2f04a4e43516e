//! The earnings chart, drawn as plain SVG: one stacked bar per period, GPU below and
//! bandwidth above. Hand-drawn because it is one chart type and about a hundred lines;
//! a charting library would outweigh the rest of the dashboard. Adjustments and
//! payouts are in the table under the chart, not in the bars.

import type { Period } from "./bindings/Period";
import type { PeriodRow } from "./bindings/PeriodRow";
import { creditsNumber, formatCredits } from "./credits";
import { axisLabel, periodLabel } from "./periods";

export const PLOT_HEIGHT = 180;
const WIDTH = 720;
const LEFT = 8;
/** Room an axis label needs, so labels never overlap. */
const LABEL_WIDTH = 40;
const TOP = 20;
const BOTTOM = 22;

export type Bar = { start: string; gpu: bigint; bandwidth: bigint };

/** One bar per period start, summing networks; negative sums draw as nothing. */
export function barsOf(rows: PeriodRow[]): Bar[] {
  const bars = new Map<string, Bar>();
  for (const row of rows) {
    const bar = bars.get(row.start) ?? { start: row.start, gpu: 0n, bandwidth: 0n };
    bar.gpu += BigInt(row.gpu_micro);
    bar.bandwidth += BigInt(row.bandwidth_micro);
    bars.set(row.start, bar);
  }
  return [...bars.values()].sort((a, b) => (a.start < b.start ? -1 : 1));
}

const positive = (v: bigint) => (v > 0n ? v : 0n);

/** Height in px of `value` on a plot whose tallest bar is `max`, to 1/100 px. */
function heightOf(value: bigint, max: bigint): number {
  if (max <= 0n) return 0;
  return Number((positive(value) * BigInt(PLOT_HEIGHT * 100)) / max) / 100;
}

/**
 * The bars of `rows`: earnings, or, with `demo`, the built-in demo's work in demo
 * credits, drawn apart and labelled so (never added to earnings).
 */
export function EarningsChart({ rows, period, demo = false }: { rows: PeriodRow[]; period: Period; demo?: boolean }) {
  const bars = barsOf(rows);
  if (bars.length === 0) {
    return <p class="muted">{demo ? "No demo work in this range." : "Nothing earned in this range yet."}</p>;
  }
  const what = demo ? "Demo work (demo credits, not earnings)" : "Earnings";
  const unit = demo ? "demo credits" : "credits";
  const max = bars.reduce((m, b) => {
    const total = positive(b.gpu) + positive(b.bandwidth);
    return total > m ? total : m;
  }, 0n);
  const width = WIDTH;
  const slot = (WIDTH - LEFT) / bars.length;
  const barWidth = Math.min(56, slot * 0.7);
  const labelEvery = Math.ceil(LABEL_WIDTH / slot);
  const baseline = TOP + PLOT_HEIGHT;

  return (
    <figure class={demo ? "chart chart-demo" : "chart"} data-testid={demo ? "demo-chart" : "earnings-chart"}>
      <svg
        viewBox={`0 0 ${width} ${baseline + BOTTOM}`}
        width={width}
        height={baseline + BOTTOM}
        role="img"
        aria-label={`${what} by ${period}, GPU and bandwidth, tallest bar ${formatCredits(max)}${demo ? " (demo)" : ""}`}
        data-plot-height={PLOT_HEIGHT}
        data-max-micro={max.toString()}
      >
        <text x={LEFT} y={12} class="axis-label">
          {creditsNumber(max)} {unit}
        </text>
        <line x1={LEFT} x2={width} y1={TOP} y2={TOP} class="grid" />
        {bars.map((bar, i) => {
          const x = LEFT + i * slot + (slot - barWidth) / 2;
          const gpuHeight = heightOf(bar.gpu, max);
          const bandwidthHeight = heightOf(bar.bandwidth, max);
          const label = periodLabel(period, bar.start);
          return (
            <g data-start={bar.start}>
              <rect
                class="bar-gpu"
                x={x}
                y={baseline - gpuHeight}
                width={barWidth}
                height={gpuHeight}
                data-resource="gpu"
                data-start={bar.start}
                data-micro={bar.gpu.toString()}
              >
                <title>{`${label}: GPU ${formatCredits(bar.gpu)}`}</title>
              </rect>
              <rect
                class="bar-bandwidth"
                x={x}
                y={baseline - gpuHeight - bandwidthHeight}
                width={barWidth}
                height={bandwidthHeight}
                data-resource="bandwidth"
                data-start={bar.start}
                data-micro={bar.bandwidth.toString()}
              >
                <title>{`${label}: bandwidth ${formatCredits(bar.bandwidth)}`}</title>
              </rect>
              {i % labelEvery === 0 && (
                <text x={x + barWidth / 2} y={baseline + 15} class="axis-label" text-anchor="middle">
                  {axisLabel(period, bar.start)}
                </text>
              )}
            </g>
          );
        })}
        <line x1={LEFT} x2={width} y1={baseline} y2={baseline} class="axis" />
      </svg>
      <figcaption class="legend">
        <span class="swatch swatch-gpu" aria-hidden="true" /> GPU
        <span class="swatch swatch-bandwidth" aria-hidden="true" /> Bandwidth
        {demo && " (demo credits, worth nothing)"}
      </figcaption>
    </figure>
  );
}
