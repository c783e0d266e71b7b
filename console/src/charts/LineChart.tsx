// ECharts, only the parts used (line series, grid, tooltip, legend, marker lines), on a
// canvas.
import { useEffect, useRef } from "react";
import * as echarts from "echarts/core";
import { LineChart as Lines } from "echarts/charts";
import {
  GridComponent,
  LegendComponent,
  MarkLineComponent,
  TooltipComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([Lines, GridComponent, LegendComponent, MarkLineComponent, TooltipComponent, CanvasRenderer]);

// Okabe–Ito: distinguishable with every common colour-vision deficiency
export const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9"];

export interface Series {
  name: string;
  points: [number, number][];
}

/** A shaded interval around a series (e.g. a prediction's low to high), drawn in the colour
 * of the series it belongs to. */
export interface Band {
  of: string;
  points: [number, number, number][];
}

/** A vertical line at a time, labelled (e.g. an emergence detected in that window). */
export interface Marker {
  at: number;
  label: string;
}

/** Lines over time, or over ``categories`` (then each point's x is its category's index). */
export function LineChart({
  series,
  label,
  categories,
  bands = [],
  markers = [],
}: {
  series: Series[];
  label: string;
  categories?: string[];
  bands?: Band[];
  markers?: Marker[];
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const chart = echarts.init(box.current);
    chart.setOption({
      color: PALETTE,
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0, data: series.map((s) => s.name) },
      grid: { left: 40, right: 12, top: 32, bottom: 28 },
      xAxis: categories ? { type: "category", data: categories } : { type: "time" },
      yAxis: { type: "value" },
      series: [
        ...series.map((s, i) => ({
          name: s.name,
          type: "line",
          showSymbol: Boolean(categories),
          data: categories ? s.points.map((p) => p[1]) : s.points,
          ...(i === 0 && markers.length
            ? {
                markLine: {
                  symbol: "none",
                  lineStyle: { color: "#cc79a7", type: "dashed" },
                  label: { formatter: "{b}", position: "insideEndTop" },
                  data: markers.map((m) => ({ name: m.label, xAxis: m.at })),
                },
              }
            : {}),
        })),
        // an interval: its low end (not drawn) and, stacked on it, its width shaded
        ...bands.flatMap((b) => {
          const colour = PALETTE[Math.max(0, series.findIndex((s) => s.name === b.of)) % PALETTE.length];
          const stack = `band:${b.of}`;
          const common = { type: "line", stack, symbol: "none", lineStyle: { opacity: 0 }, tooltip: { show: false } };
          return [
            { ...common, name: `${b.of} low`, data: b.points.map((p) => [p[0], p[1]]) },
            {
              ...common,
              name: `${b.of} predicted`,
              data: b.points.map((p) => [p[0], p[2] - p[1]]),
              areaStyle: { color: colour, opacity: 0.25 },
            },
          ];
        }),
      ],
    });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [series, categories, bands, markers]);
  return <div ref={box} className="chart" role="img" aria-label={label} />;
}
