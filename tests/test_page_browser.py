"""The leaderboard page in a real browser (headless Chromium through selenium) at a phone's width: the
first row's Method and Avg cells in view, headers one line high, every figure a link, an empty console.

Skipped, saying why, where Chromium or its driver is not installed (Debian: apt-get install chromium
chromium-driver; .ci/run installs them)."""

import shutil

import pytest
from test_leaderboard import full, write

from hubbench.leaderboard.generate import generate

TASKS = ["clutter", "digits", "scenes", "shapes"]
METHODS = [f"finetune[model=source{i}]" for i in range(5)] + [
    "zoo_tuning", "hub_pathway", "b_tuning", "ensemble_i", "ensemble_j", "distill", "kflow", "soup", "scratch"]
PHONE = 390


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("no Chromium and chromedriver installed (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the test extra")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}", "--window-size=1366,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
    yield chrome
    chrome.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A board as wide as the papers' (14 methods, 4 tasks) with every figure."""
    tmp = tmp_path_factory.mktemp("page")
    write(tmp / "r", [full(t, m, seed, 40.0 + 3 * i + j + seed, gflops=0.01 * (1 + i % 4))
                      for i, m in enumerate(METHODS) for j, t in enumerate(TASKS) for seed in (0, 1)])
    return generate("s", tmp / "r", tmp / "lb") / "index.html"


def test_phone_width_keeps_method_and_avg_in_view(browser, page):
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": PHONE, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    try:
        browser.get(page.as_uri())
        seen = browser.execute_script("""
            const width = document.documentElement.clientWidth;
            const table = [...document.querySelectorAll("table")].find(
                t => t.tHead.rows[0].cells[1].textContent === "Method");
            const row = table.tBodies[0].rows[0], box = c => c.getBoundingClientRect();
            const inView = c => box(c).left >= 0 && box(c).right <= width;
            return {width, page: document.documentElement.scrollWidth,
                    method: inView(row.cells[1]), avg: inView(row.cells[row.cells.length - 1]),
                    tallest: Math.max(...[...document.querySelectorAll("th")].map(h => box(h).height)),
                    line: parseFloat(getComputedStyle(document.querySelector("th")).lineHeight)};
        """)
        assert seen["width"] == PHONE and seen["page"] <= PHONE  # wide tables scroll in place, not the page
        assert seen["method"] and seen["avg"]
        assert seen["tallest"] < 2 * seen["line"] + 10  # headers stay one line high
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def test_every_figure_is_a_link_to_its_file_and_the_console_is_empty(browser, page):
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.as_uri())
    links = browser.execute_script("""
        return [...document.querySelectorAll("figure")].map(f => {
            const a = f.querySelector("a"); return a && a.querySelector("img") ? a.getAttribute("href") : null; });
    """)
    assert len(links) > 5 and all(link and (page.parent / link).is_file() for link in links)
    assert browser.get_log("browser") == []
