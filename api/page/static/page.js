// The candlestick page: pick an instrument and an interval, see its bars, latest trade and quote, and gap report.
// The chosen symbol and interval stay in the address (`?symbol=ASX:DVN&interval=1h`), so a view can be shared.

import { ApiError, chartLibraryProblem, getJson, initialKey, rememberKey } from "./api.js";
import { candleChart } from "./chart.js";
import { element as el } from "./dom.js";
import { nextDay, utcDate } from "./format.js";
import { renderGaps, renderLatest } from "./panels.js";

const GAP_LIMIT = 200;
const byId = (id) => document.getElementById(id);
const ui = {
  keyForm: byId("key-form"),
  key: byId("key"),
  controls: byId("controls"),
  symbol: byId("symbol"),
  interval: byId("interval"),
  start: byId("start"),
  end: byId("end"),
  message: byId("message"),
  chart: byId("chart"),
  legend: byId("legend"),
  latest: byId("latest"),
  gaps: byId("gaps").querySelector("table"),
  gapCount: byId("gap-count"),
};

let key = initialKey();
let instruments = [];
let chart = null;
let generation = 0; // answers to a superseded choice are dropped
let intervalChosen = false; // by the user or the address; until then it follows the instrument's span

// `state` is on <body data-state> for tests and styling: idle, loading, ready, empty, error.
function setState(state, text = "") {
  document.body.dataset.state = state;
  ui.message.hidden = !text;
  ui.message.textContent = text;
  ui.message.className = state;
}

function fail(error) {
  const text = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  setState("error", text);
  if (error.status === 401 || error.status === 403) ui.key.focus();
}

const instrumentId = (instrument) => `${instrument.exchange}:${instrument.symbol}`;
const selected = () => instruments.find((instrument) => instrumentId(instrument) === ui.symbol.value);

async function loadSymbols() {
  setState("loading", "Loading symbols…");
  try {
    instruments = (await getJson("/v1/symbols", {}, key)).data.filter((instrument) => instrument.trades > 0);
  } catch (error) {
    return fail(error);
  }
  if (instruments.length === 0) {
    ui.symbol.replaceChildren();
    return setState("empty", "The warehouse has no trades yet: ingest some data, then reload.");
  }
  const wanted = ui.symbol.value || new URL(window.location.href).searchParams.get("symbol");
  ui.symbol.replaceChildren(
    ...instruments.map((instrument) => {
      const option = el("option", `${instrument.symbol} · ${instrument.exchange} (${instrument.trades} trades)`);
      option.value = instrumentId(instrument);
      return option;
    }),
  );
  ui.symbol.disabled = false;
  if (instruments.some((instrument) => instrumentId(instrument) === wanted)) ui.symbol.value = wanted;
  resetRange();
  await loadInstrument();
}

// The date range follows the instrument's data: its first and last day (UTC); the interval, until someone picks
// one, is the coarsest that still cuts that span into 200 or more steps (a few minutes of synthetic ticks get 1s
// bars, a week of ASX trading 30m).
function resetRange() {
  const instrument = selected();
  if (!instrument?.first_time) return;
  ui.start.value = utcDate(instrument.first_time);
  ui.end.value = utcDate(instrument.last_time);
  if (intervalChosen) return;
  const span = (Date.parse(instrument.last_time) - Date.parse(instrument.first_time)) / 1000;
  const fitting = [...ui.interval.options].filter((option) => span / Number(option.dataset.seconds) >= 200);
  ui.interval.value = (fitting.at(-1) || ui.interval.options[0]).value;
}

async function loadInstrument() {
  const instrument = selected();
  if (!instrument) return;
  if (ui.start.value && ui.end.value && ui.end.value < ui.start.value) {
    return setState("error", "The range ends before it starts: pick a 'To' date on or after 'From'.");
  }
  const current = ++generation;
  const interval = ui.interval.value;
  const which = { symbol: instrument.symbol, exchange: instrument.exchange };
  const range = { start: ui.start.value, end: ui.end.value && nextDay(ui.end.value) }; // the API's end is exclusive
  keepInAddress(instrument, interval);
  setState("loading", `Loading ${instrument.symbol}…`);
  const [bars, latest, gaps] = await Promise.allSettled([
    getJson("/v1/bars", { ...which, interval, ...range }, key),
    getJson("/v1/latest", which, key),
    getJson("/v1/gaps", { ...which, ...range, limit: GAP_LIMIT }, key),
  ]);
  if (current !== generation) return;

  const zone = bars.status === "fulfilled" ? bars.value.timezone : "UTC";
  const found = bars.status === "fulfilled" ? bars.value.data : [];
  if (found.length) chart.show(found, zone, interval);
  else chart.clear();
  ui.chart.dataset.symbol = instrumentId(instrument);
  ui.chart.dataset.interval = interval;
  if (latest.status === "fulfilled") renderLatest(ui.latest, latest.value.data[0], zone);
  else ui.latest.replaceChildren(el("h2", "Latest"), el("p", "Not loaded.", "empty"));
  if (gaps.status === "fulfilled") renderGaps(ui.gaps, ui.gapCount, gaps.value, zone, GAP_LIMIT);
  else ui.gaps.tBodies[0].replaceChildren();

  const problem = [bars, latest, gaps].find((answer) => answer.status === "rejected");
  if (problem) return fail(problem.reason);
  if (!found.length) {
    return setState("empty", `No trades for ${instrument.symbol} from ${ui.start.value} to ${ui.end.value}.`);
  }
  setState("ready");
}

function keepInAddress(instrument, interval) {
  const url = new URL(window.location.href);
  url.searchParams.set("symbol", instrumentId(instrument));
  url.searchParams.set("interval", interval);
  window.history.replaceState(null, "", url);
}

async function start() {
  ui.key.value = key;
  const interval = new URL(window.location.href).searchParams.get("interval");
  if ([...ui.interval.options].some((option) => option.value === interval)) {
    ui.interval.value = interval;
    intervalChosen = true;
  }
  if (!window.LightweightCharts) {
    return setState("error", `The chart cannot be drawn: ${await chartLibraryProblem()}.`);
  }
  chart = candleChart(ui.chart, ui.legend);
  ui.keyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    key = ui.key.value.trim();
    rememberKey(key);
    loadSymbols();
  });
  ui.controls.addEventListener("submit", (event) => {
    event.preventDefault();
    loadInstrument();
  });
  ui.symbol.addEventListener("change", () => {
    resetRange();
    loadInstrument();
  });
  ui.interval.addEventListener("change", () => {
    intervalChosen = true;
    loadInstrument();
  });
  for (const input of [ui.start, ui.end]) input.addEventListener("change", () => loadInstrument());
  await loadSymbols();
}

start();
