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

export function LineChart({ series, label }: { series: Series[]; label: string }) {
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
      xAxis: { type: "time" },
      yAxis: { type: "value" },
      series: series.map((s) => ({ name: s.name, type: "line", showSymbol: false, data: s.points })),
    });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [series]);
  return <div ref={box} className="chart" role="img" aria-label={label} />;
}
