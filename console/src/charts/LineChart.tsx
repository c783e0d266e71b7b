// ECharts, only the parts used (line series, grid, tooltip, legend), on a canvas.
import { useEffect, useRef } from "react";
import * as echarts from "echarts/core";
import { LineChart as Lines } from "echarts/charts";
import { GridComponent, LegendComponent, TooltipComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([Lines, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

// Okabe–Ito: distinguishable with every common colour-vision deficiency
export const PALETTE = ["#0072b2", "#e69f00", "#009e73", "#d55e00", "#cc79a7", "#56b4e9"];

export interface Series {
  name: string;
  points: [number, number][];
}

/** Lines over time, or over ``categories`` (then each point's x is its category's index). */
export function LineChart({
  series,
  label,
  categories,
}: {
  series: Series[];
  label: string;
  categories?: string[];
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const chart = echarts.init(box.current);
    chart.setOption({
      color: PALETTE,
      animation: false,
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 40, right: 12, top: 32, bottom: 28 },
      xAxis: categories ? { type: "category", data: categories } : { type: "time" },
      yAxis: { type: "value" },
      series: series.map((s) => ({
        name: s.name,
        type: "line",
        showSymbol: Boolean(categories),
        data: categories ? s.points.map((p) => p[1]) : s.points,
      })),
    });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [series, categories]);
  return <div ref={box} className="chart" role="img" aria-label={label} />;
}
