// The latest trade and quote of the chosen instrument, and its sequence-gap report.

import { element as el } from "./dom.js";
import { decimal, localTime } from "./format.js";

const timeOf = (iso, zone) => localTime(Date.parse(iso), zone, { millis: true });

export function renderLatest(section, row, zone) {
  const heading = el("h2", "Latest");
  if (!row || (!row.trade && !row.quote)) {
    section.replaceChildren(heading, el("p", "No trade or quote for this instrument.", "empty"));
    return;
  }
  const parts = [heading];
  if (row.trade) {
    const t = row.trade;
    parts.push(
      el("h3", "Last trade"),
      el("p", `${decimal(t.price)} ${t.currency}`, "price"),
      facts([
        ["quantity", decimal(t.quantity)],
        ["side", t.side],
        ["time", timeOf(t.timestamp, zone)],
        ["trade id", t.trade_id],
      ]),
    );
  }
  if (row.quote) {
    const q = row.quote;
    const flags = [q.one_sided && "one-sided", q.crossed && "crossed"].filter(Boolean).join(", ");
    parts.push(
      el("h3", "Last quote"),
      quoteLine(q),
      facts([
        ["bid size", decimal(q.bid_quantity)],
        ["ask size", decimal(q.ask_quantity)],
        ["time", timeOf(q.timestamp, zone)],
        ["flags", flags || "none"],
      ]),
    );
  }
  parts.push(el("p", `times on the exchange clock (${zone})`, "note"));
  section.replaceChildren(...parts);
}

function quoteLine(quote) {
  const line = el("p", "", "quote");
  line.replaceChildren(
    el("span", decimal(quote.bid_price), "bid"),
    el("span", " × ", "sep"),
    el("span", decimal(quote.ask_price), "ask"),
  );
  return line;
}

function facts(pairs) {
  const list = el("dl");
  for (const [name, value] of pairs) list.append(el("dt", name), el("dd", value ?? "–"));
  return list;
}

export function renderGaps(table, counter, page, zone, limit) {
  const body = table.tBodies[0];
  const rows = page.data.map((gap) => {
    const row = el("tr", "", gap.event);
    row.append(
      el("td", timeOf(gap.timestamp, zone)),
      el("td", gap.kind),
      el("td", gap.event, "event"),
      el("td", gap.expected_sequence),
      el("td", gap.received_sequence),
      el("td", gap.missing_count),
      el("td", `${gap.source_topic}/${gap.source_partition}@${gap.source_offset}`),
    );
    return row;
  });
  if (rows.length === 0) {
    const none = el("tr", "", "none");
    const cell = el("td", "No gaps or resets in this range: every sequence number arrived in order.");
    cell.colSpan = 7;
    none.append(cell);
    rows.push(none);
  }
  body.replaceChildren(...rows);
  const shown = page.data.length;
  counter.textContent = shown >= limit ? `(first ${shown})` : `(${shown})`;
  table.dataset.rows = String(shown);
}
