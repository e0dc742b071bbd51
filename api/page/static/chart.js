// Candles and a volume histogram (its own pane below) drawn by TradingView's lightweight-charts, with a legend that
// shows the hovered bar's exact values.

import { decimal, localTime } from "./format.js";
import { element as el } from "./dom.js";

export const UP = "#26a69a";
export const DOWN = "#ef5350";
const LEGEND = { open: "O", high: "H", low: "L", close: "C", volume: "Vol", vwap: "VWAP", trades: "Trades" };

export function candleChart(element, legend) {
  const { createChart, CandlestickSeries, HistogramSeries, ColorType, CrosshairMode } = window.LightweightCharts;
  const chart = createChart(element, {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: "#11161d" },
      textColor: "#aab4c0",
      fontFamily: "system-ui, sans-serif",
      panes: { separatorColor: "#2a323d" },
    },
    grid: { vertLines: { color: "#1b222b" }, horzLines: { color: "#1b222b" } },
    crosshair: { mode: CrosshairMode.Normal },
    rightPriceScale: { borderColor: "#2a323d" },
    timeScale: { borderColor: "#2a323d", timeVisible: true, rightOffset: 2 },
  });
  const candles = chart.addSeries(CandlestickSeries, {
    upColor: UP,
    downColor: DOWN,
    wickUpColor: UP,
    wickDownColor: DOWN,
    borderVisible: false,
  });
  const volume = chart.addSeries(
    HistogramSeries,
    { priceFormat: { type: "volume" }, priceLineVisible: false, lastValueVisible: false },
    1,
  );
  chart.panes()[1].setStretchFactor(0.3);

  let byTime = new Map();
  let zone = "UTC";
  let last = null;
  const describe = (bar) => {
    if (!bar) return legend.replaceChildren();
    const values = Object.entries(LEGEND).flatMap(([name, label]) => [el("b", label), ` ${decimal(bar[name])}`]);
    legend.replaceChildren(el("span", localTime(Date.parse(bar.start), zone), "when"), ...values);
  };
  chart.subscribeCrosshairMove((param) => describe((param.time !== undefined && byTime.get(param.time)) || last));

  return {
    // `bars` as the API sent them; `zone` is the exchange's clock, which the axis shows.
    show(bars, exchangeZone, interval) {
      zone = exchangeZone;
      byTime = new Map();
      const candleData = [];
      const volumeData = [];
      let previous = -Infinity;
      for (const bar of bars) {
        const time = Math.max(wallClockSeconds(Date.parse(bar.start), zone), previous + 1);
        previous = time;
        byTime.set(time, bar);
        const [open, high, low, close] = [bar.open, bar.high, bar.low, bar.close].map(Number);
        candleData.push({ time, open, high, low, close });
        volumeData.push({ time, value: Number(bar.volume), color: close >= open ? `${UP}99` : `${DOWN}99` });
      }
      const precision = decimalsOf(bars);
      candles.applyOptions({ priceFormat: { type: "price", precision, minMove: 10 ** -precision } });
      chart.applyOptions({ timeScale: { secondsVisible: interval.endsWith("s") } });
      candles.setData(candleData);
      volume.setData(volumeData);
      chart.timeScale().fitContent();
      last = bars.at(-1) || null;
      describe(last);
      element.dataset.bars = String(candleData.length);
    },
    clear() {
      candles.setData([]);
      volume.setData([]);
      last = null;
      legend.replaceChildren();
      element.dataset.bars = "0";
    },
  };
}

// The library labels its axis in UTC; giving it each instant's wall-clock time on the exchange's clock makes the axis
// (and where it puts day and month marks) read in exchange time, as the library's docs recommend. A DST fall-back
// can repeat a wall-clock time, and the library needs strictly increasing times: the caller nudges repeats by 1 s.
function wallClockSeconds(ms, zone) {
  const [date, clock] = localTime(ms, zone).split(" ");
  return Date.parse(`${date}T${clock}Z`) / 1000;
}

// Enough decimals for the finest price in view (2..8): "0.675" needs 3, "187.25" needs 2.
function decimalsOf(bars) {
  let most = 2;
  for (const bar of bars) {
    for (const text of [bar.open, bar.high, bar.low, bar.close]) {
      const fraction = decimal(text).split(".")[1] || "";
      most = Math.max(most, fraction.length);
    }
  }
  return Math.min(most, 8);
}
