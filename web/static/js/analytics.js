// A room's analytics as charts (decision 0044), drawn by uPlot: the page loads
// /static/vendor/uplot/uPlot.iife.min.js as a classic script before its modules (window.uPlot).
// Sparklines for the studio; a minute chart per ended room and a daily trend for the seller
// center. Each plot keeps its points count, last value and the sum of its points on its node
// (data-points, data-last, data-total), which is what the browser tests read: a count posted
// just before a minute turns is in the total, not in the newest point.

const COLORS = ["#e0245e", "#1d9bf0", "#00a37a", "#f59f00", "#7048e8", "#495057"];

function seriesOf(rows, x, names) {
  return [rows.map((row) => row[x] / 1000), ...names.map((name) => rows.map((row) => row[name]))];
}

function mark(node, data) {
  const last = data[1].at(-1);
  node.dataset.points = String(data[0].length);
  node.dataset.last = last === undefined ? "" : String(last);
  node.dataset.total = String(data[1].reduce((sum, value) => sum + (value ?? 0), 0));
}

// One small line per figure, no axes: the shape of the last minutes.
export class Sparklines {
  constructor(root, names, minutes = 15) {
    this.minutes = minutes;
    this.plots = names.map((name, n) => {
      const node = root.querySelector(`[data-series="${name}"] .spark-plot`);
      const value = root.querySelector(`[data-series="${name}"] .spark-value`);
      const plot = new uPlot(
        {
          width: Math.max(80, node.clientWidth || 140),
          height: 40,
          legend: { show: false },
          cursor: { show: false },
          select: { show: false },
          axes: [{ show: false }, { show: false }],
          scales: { x: { time: false } },
          series: [{}, { stroke: COLORS[n % COLORS.length], width: 2, points: { show: true, size: 3 } }],
        },
        [[], []],
        node,
      );
      return { name, node, value, plot };
    });
  }

  update(minutes) {
    const recent = minutes.slice(-this.minutes);
    for (const { name, node, value, plot } of this.plots) {
      const data = seriesOf(recent, "minute_ms", [name]);
      plot.setData(data);
      mark(node, data);
      if (value) value.textContent = String(data[1].at(-1) ?? 0);
    }
  }
}

// A chart with axes and a legend: several figures over time (x: ms in the rows' ``x`` field).
export function lineChart(node, rows, x, labels) {
  const names = Object.keys(labels);
  const data = seriesOf(rows, x, names);
  node.replaceChildren();
  mark(node, data);
  return new uPlot(
    {
      width: Math.max(200, Math.min(node.clientWidth || 640, 900)),
      height: 220,
      series: [
        { label: "Time" },
        ...names.map((name, n) => ({ label: labels[name], stroke: COLORS[n % COLORS.length], width: 2 })),
      ],
    },
    data,
    node,
  );
}
