// The interaction matrix of one kind as an ECharts heat map: rows are sources, columns
// targets; a sequential blue scale (readable with every common colour-vision deficiency).
import { useEffect, useRef } from "react";
import * as echarts from "echarts/core";
import { HeatmapChart } from "echarts/charts";
import { GridComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([HeatmapChart, GridComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

export function HeatMap({ voices, matrix, label }: { voices: string[]; matrix: number[][]; label: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const chart = echarts.init(box.current);
    const cells: [number, number, number][] = [];
    matrix.forEach((row, i) => row.forEach((value, j) => cells.push([j, i, Number(value.toFixed(3))])));
    chart.setOption({
      animation: false,
      tooltip: {
        formatter: (p: { value: [number, number, number] }) =>
          `${voices[p.value[1]]} → ${voices[p.value[0]]}: ${p.value[2]}`,
      },
      grid: { left: 70, right: 16, top: 10, bottom: 70 },
      xAxis: { type: "category", data: voices, name: "target", axisLabel: { rotate: 45 } },
      yAxis: { type: "category", data: voices, name: "source" },
      visualMap: {
        min: 0,
        max: Math.max(1e-9, ...cells.map((c) => c[2])),
        calculable: false,
        orient: "horizontal",
        left: "center",
        bottom: 0,
        itemHeight: 120,
        inRange: { color: ["#f7fbff", "#6baed6", "#08306b"] },
      },
      series: [{ type: "heatmap", data: cells }],
    });
    const resize = () => chart.resize();
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.dispose();
    };
  }, [voices, matrix]);
  return <div ref={box} className="chart heat" role="img" aria-label={label} data-testid="heatmap" />;
}
