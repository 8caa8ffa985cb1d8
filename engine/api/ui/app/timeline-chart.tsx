// The timeline drawn by Chart.js: a horizontal floating-bar chart with one row per step; the
// step's span underneath, its attempts (green succeeded, red failed, blue running), retry
// back-offs and timers (grey) on top. Seconds from the execution's start on the x axis.
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Legend,
  LinearScale,
  Tooltip,
  type ChartDataset,
} from "chart.js";
import { useEffect, useRef } from "preact/hooks";
import type { Segment, TimelineRow } from "./timeline.ts";

Chart.register(BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend);

const colors: Record<string, string> = {
  succeeded: "#1a9f5b",
  failed: "#d92d20",
  running: "#2f6fed",
  skipped: "#98a2b3",
  wait: "#98a2b3",
};

interface Point {
  x: [number, number];
  y: string;
  segment: Segment;
}

function dataset(
  label: string,
  rows: TimelineRow[],
  kinds: Segment["kind"][],
  color: (segment: Segment) => string,
  barPercentage: number,
): ChartDataset<"bar", Point[]> {
  const points: Point[] = rows.flatMap((row) =>
    row.segments
      .filter((segment) => kinds.includes(segment.kind))
      // A zero-length bar is invisible: give it a sliver.
      .map((segment) => ({
        x: [segment.from / 1000, Math.max(segment.to, segment.from + 20) / 1000],
        y: row.step,
        segment,
      })),
  );
  return {
    label,
    data: points,
    backgroundColor: points.map((point) => color(point.segment)),
    barPercentage,
    categoryPercentage: 0.9,
    grouped: false,
  };
}

export function TimelineChart({ rows }: { rows: TimelineRow[] }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart<"bar", Point[], string> | null>(null);

  useEffect(() => {
    if (!canvas.current) return;
    chart.current = new Chart(canvas.current, {
      type: "bar",
      data: { labels: [], datasets: [] },
      options: {
        indexAxis: "y",
        animation: false,
        maintainAspectRatio: false,
        parsing: { xAxisKey: "x", yAxisKey: "y" },
        scales: {
          x: { type: "linear", min: 0, title: { display: true, text: "seconds since start" } },
          y: { type: "category", stacked: true },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: (item) => {
                const { segment } = item.raw as Point;
                const seconds = ((segment.to - segment.from) / 1000).toFixed(2);
                const who = segment.worker ? ` on ${segment.worker}` : "";
                return `${segment.label}${segment.outcome ? ` (${segment.outcome})` : ""}: ${seconds} s${who}`;
              },
            },
          },
        },
      },
    });
    return () => chart.current?.destroy();
  }, []);

  useEffect(() => {
    const current = chart.current;
    if (!current) return;
    current.data.labels = rows.map((row) => row.step);
    current.data.datasets = [
      dataset("step", rows, ["step"], (segment) => `${colors[segment.outcome ?? "running"]}33`, 0.9),
      dataset("attempts", rows, ["attempt"], (segment) => colors[segment.outcome ?? "running"]!, 0.5),
      dataset("waits and timers", rows, ["retry-wait", "timer"], () => colors.wait!, 0.3),
    ];
    current.update();
  }, [rows]);

  return (
    <div
      class="timeline"
      style={{ height: `${Math.max(160, rows.length * 44 + 90)}px` }}
      // What the chart draws, in short, for tests and for whoever inspects the page.
      data-rows={JSON.stringify(
        rows.map((row) => ({
          step: row.step,
          attempts: row.segments
            .filter((segment) => segment.kind === "attempt")
            .map((segment) => segment.outcome),
          waits: row.segments.filter((segment) => segment.kind === "retry-wait" || segment.kind === "timer")
            .length,
        })),
      )}
    >
      <canvas ref={canvas} aria-label="timeline of the execution's steps" role="img" />
    </div>
  );
}
