"""The candlestick page in headless Chromium (Selenium, the Debian chromium + chromedriver) against the real API
process over a warehouse holding the ASX sample: it loads, fills the symbol list, draws as many candles as
`/v1/bars` answers (and they are on the canvas), shows the latest trade/quote and the gap report, and explains
missing keys and empty ranges. The last view is kept as `reports/page.png` (the CI artifact folder)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from k2.loaders import load_asx, to_batches
from k2.ops.config import load_settings
from tests.conftest import ASX_SAMPLES
from tests.fixtures.api import ROOT, api_server
from tests.fixtures.flow import run_ingest
from tests.fixtures.requirements import require

KEY = "page-key"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = ROOT / "reports" / "page.png"
SETTLED = ("ready", "empty", "error")

# Pixels painted in the candle colours (page's chart.js UP/DOWN), within a small tolerance for anti-aliasing.
CANDLE_PIXELS = """
const colours = [[0x26, 0xa6, 0x9a], [0xef, 0x53, 0x50]];
let count = 0;
for (const canvas of document.querySelectorAll('#chart canvas')) {
  if (!canvas.width || !canvas.height) continue;
  const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < pixels.length; i += 4) {
    if (pixels[i + 3] < 250) continue;
    if (colours.some(([r, g, b]) => Math.abs(pixels[i] - r) < 6 && Math.abs(pixels[i + 1] - g) < 6
        && Math.abs(pixels[i + 2] - b) < 6)) count++;
  }
}
return count;
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    settings = load_settings({}, data_dir=str(tmp_path_factory.mktemp("page") / "k2"), epoch_seconds=0.05)
    run_ingest(settings, list(to_batches(load_asx(ASX_SAMPLES), partitions=2, batch_size=200)))
    with api_server(settings, KEY) as base:
        yield base


@pytest.fixture(scope="module")
def api(served):
    with httpx.Client(base_url=served, headers={"X-API-Key": KEY}, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    absent = " or ".join(str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists())
    hint = "`make system-deps` installs them (Debian chromium, chromium-driver)"
    require("Chromium + chromedriver", f"no {absent}" if absent else None, hint=hint)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(argument)
    # An explicit driver path: Selenium Manager never runs, nothing is downloaded.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


def settle(browser, symbol: str | None = None) -> str:
    """Wait until the page has finished its last load (for `symbol`, when given) and return its state."""

    def settled(driver):
        state = driver.find_element(By.TAG_NAME, "body").get_attribute("data-state")
        shown = driver.find_element(By.ID, "chart").get_attribute("data-symbol")
        return state if state in SETTLED and (symbol is None or shown == symbol) else False

    return WebDriverWait(browser, 30, poll_frequency=0.1).until(settled)


def message(browser) -> str:
    return browser.find_element(By.ID, "message").text


def page_range(browser) -> tuple[str, str]:
    """The page's date inputs as the API's [start, end): both dates are included on the page."""
    start = browser.find_element(By.ID, "start").get_attribute("value")
    end = browser.find_element(By.ID, "end").get_attribute("value")
    return start, (date.fromisoformat(end) + timedelta(days=1)).isoformat()


def exact(text: str) -> str:
    return format(Decimal(text).normalize(), "f")


def test_page_draws_candles_latest_and_gaps_for_a_known_symbol(served, api, browser):
    symbols = api.get("/v1/symbols").json()["data"]
    browser.get(f"{served}/?key={KEY}")  # the demo's link
    assert settle(browser) == "ready", message(browser)
    assert "key=" not in browser.current_url  # remembered, then taken out of the address
    assert browser.execute_script("return localStorage.getItem('k2.apiKey')") == KEY
    picker = Select(browser.find_element(By.ID, "symbol"))
    assert [option.get_attribute("value") for option in picker.options] == [
        f"{s['exchange']}:{s['symbol']}" for s in symbols
    ]

    for symbol, interval in (("MWR", "5m"), ("DVN", "1h")):
        Select(browser.find_element(By.ID, "interval")).select_by_visible_text(interval)
        picker.select_by_value(f"ASX:{symbol}")
        assert settle(browser, f"ASX:{symbol}") == "ready", message(browser)
        instrument = next(s for s in symbols if s["symbol"] == symbol)
        start, end = page_range(browser)
        assert start == instrument["first_time"][:10]  # the range defaults to the instrument's data
        assert end == (date.fromisoformat(instrument["last_time"][:10]) + timedelta(days=1)).isoformat()
        chart = browser.find_element(By.ID, "chart")
        assert chart.get_attribute("data-interval") == interval
        bars = api.get("/v1/bars", params={"symbol": symbol, "interval": interval, "start": start, "end": end})
        expected = bars.json()["data"]
        assert int(chart.get_attribute("data-bars")) == len(expected) > 0
        # Drawn, not just fed: the library paints on the next animation frame.
        WebDriverWait(browser, 10).until(lambda driver: driver.execute_script(CANDLE_PIXELS) > 100)
        legend = browser.find_element(By.ID, "legend").text  # the newest bar, exact values
        assert f"C {exact(expected[-1]['close'])}" in legend and f"Trades {expected[-1]['trades']}" in legend

        (latest,) = api.get("/v1/latest", params={"symbol": symbol}).json()["data"]
        panel = browser.find_element(By.ID, "latest").text
        assert f"{exact(latest['trade']['price'])} {latest['trade']['currency']}" in panel
        assert latest["trade"]["trade_id"] in panel
        assert f"{exact(latest['quote']['bid_price'])} × {exact(latest['quote']['ask_price'])}" in panel

        gaps = api.get("/v1/gaps", params={"symbol": symbol, "start": start, "end": end, "limit": 200}).json()["data"]
        table = browser.find_element(By.CSS_SELECTOR, "#gaps table")
        assert int(table.get_attribute("data-rows")) == len(gaps) > 0  # each Sydney day restarts the sequence
        rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [row.find_elements(By.TAG_NAME, "td")[2].text for row in rows] == [gap["event"] for gap in gaps]

    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.get_screenshot_as_file(str(SCREENSHOT))


def test_page_explains_keys_and_empty_ranges(served, browser):
    browser.get(f"{served}/page/")
    browser.execute_script("localStorage.clear()")
    browser.refresh()
    assert settle(browser) == "error" and "needs a key" in message(browser)

    key = browser.find_element(By.ID, "key")
    key.send_keys("not-the-key")
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    WebDriverWait(browser, 30).until(lambda _: "does not accept" in message(browser))
    assert settle(browser) == "error"

    key.clear()
    key.send_keys(KEY)
    browser.find_element(By.CSS_SELECTOR, "#key-form button").click()
    WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "chart").get_attribute("data-symbol"))
    assert settle(browser) == "ready", message(browser)

    # A range without trades: the chart is emptied and the page says so.
    browser.execute_script(
        """for (const [id, day] of [['end', '2014-03-02'], ['start', '2014-03-01']]) {
             const input = document.getElementById(id);
             input.value = day;
             input.dispatchEvent(new Event('change'));
           }"""
    )
    WebDriverWait(browser, 30).until(lambda _: "No trades" in message(browser))
    assert settle(browser) == "empty"
    assert browser.find_element(By.ID, "chart").get_attribute("data-bars") == "0"
    WebDriverWait(browser, 10).until(lambda driver: driver.execute_script(CANDLE_PIXELS) == 0)  # nothing drawn
