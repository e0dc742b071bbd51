// Text for people: times on the exchange's clock, decimals as the exact strings the API sent (only trailing zeros
// dropped; nothing goes through a float on its way to the screen).

const formatters = new Map();

function formatter(zone, withTime, withMillis) {
  const key = `${zone}|${withTime}|${withMillis}`;
  if (!formatters.has(key)) {
    const options = { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" };
    if (withTime) Object.assign(options, { hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
    if (withMillis) options.fractionalSecondDigits = 3;
    formatters.set(key, new Intl.DateTimeFormat("en-CA", options));
  }
  return formatters.get(key);
}

// "2014-03-14 15:59:31.631" for an instant (ms since epoch) in `zone`.
export function localTime(ms, zone, { time = true, millis = false } = {}) {
  const parts = Object.fromEntries(formatter(zone, time, millis).formatToParts(ms).map((p) => [p.type, p.value]));
  const day = `${parts.year}-${parts.month}-${parts.day}`;
  if (!time) return day;
  const clock = `${parts.hour}:${parts.minute}:${parts.second}`;
  return `${day} ${clock}${millis ? `.${parts.fractionalSecond}` : ""}`;
}

export function decimal(text) {
  if (text === null || text === undefined) return "–";
  text = String(text);
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

export function utcDate(iso) {
  return iso.slice(0, 10);
}

export function nextDay(date) {
  const day = new Date(`${date}T00:00:00Z`);
  day.setUTCDate(day.getUTCDate() + 1);
  return day.toISOString().slice(0, 10);
}
