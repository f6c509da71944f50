"""The HTML report in a real headless browser (Debian's chromium driven by playwright).

Skipped, saying why, when chromium or playwright is missing, except under CI (the ``CI``
environment variable set), where ``.ci/run`` installs chromium and a skip would hide a failure.
The browser runs in a child process bounded in time and memory: a browser that hangs or
balloons fails this test instead of the suite.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pytest

CHROMIUM = os.environ.get("SEGMINT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
NAMES = ["champions", "loyal regulars", "bargain hunters", "<script>alert(1)</script>", "at risk & lapsed",
         "new"]
TIMEOUT = 120  # seconds for the whole browser session
MEMORY = 3 << 30  # bytes of data (heap, anonymous memory) each process of the child may use


def _browser_or_skip():
    problems = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("the playwright package is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        problems.append(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    if problems:
        why = "; ".join(problems)
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser test of the report, but {why}")
        pytest.skip(f"browser test of the report skipped: {why}")


# The child: open the page offline, screenshot it, measure what a reader would see.
RUNNER = textwrap.dedent("""
    import json, resource, sys
    # RLIMIT_DATA, not RLIMIT_AS: chromium reserves terabytes of address space it never uses
    resource.setrlimit(resource.RLIMIT_DATA, ({memory}, {memory}))
    from playwright.sync_api import sync_playwright
    page_path, shot, names = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    requests = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path={chromium!r}, args=args)
        page = browser.new_page(viewport={{"width": 1280, "height": 900}})
        page.on("request", lambda r: requests.append(r.url))
        page.goto("file://" + page_path, wait_until="load")
        page.screenshot(path=shot, full_page=True)
        images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        visible = {{n: page.get_by_text(n, exact=True).first.is_visible() for n in names}}
        scripts = page.evaluate("document.scripts.length")
        # the drift section: its heading, its heatmap, and the segment names of its tables
        drift = page.locator("h2", has_text="Drift")
        heatmap = page.evaluate("Array.from(document.images).filter(i => i.alt.startsWith('Migration heatmap'))"
                                ".map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        drift_names = {{n: page.locator("h2:text-is('Drift') ~ div.scroll td.name").filter(has_text=n).first
                        .is_visible() for n in names}}
        drift_seen = {{"heading": drift.count() == 1 and drift.first.is_visible(), "heatmap": heatmap,
                      "names": drift_names}}
        browser.close()
    print(json.dumps({{"images": images, "visible": visible, "scripts": scripts, "drift": drift_seen,
                      "requests": [u for u in requests if not u.startswith(("file:", "data:"))]}}))
""")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    _browser_or_skip()  # before the data: a skip costs nothing
    from segmint.monitor.compare import drift
    from segmint.explain.profile import profile
    from segmint.explain.validate import validate
    from segmint.report import write_report

    rng = np.random.default_rng(7)
    n = 6_000
    seg = rng.integers(0, len(NAMES), n)
    columns = {"spend": rng.gamma(2.0, 50.0, n) * (1 + seg), "orders": rng.poisson(3 + seg, n).astype(np.float64),
               "recency": rng.exponential(60.0, n) / (1 + seg), "opt_in": rng.random(n) < 0.7,
               "segment": pa.array([NAMES[s] for s in seg]).dictionary_encode()}
    table = pa.table(columns)
    prof = profile(table, segments="segment", revenue="spend", reachable="opt_in")
    validation = validate(table, segments="segment", profile=prof, reachable="opt_in", n_bootstrap=5)
    # who moved where: a third of the customers changed segment, 500 left, 500 came
    ids = rng.permutation(n)
    moved = np.where(rng.random(n) < 0.33, rng.integers(0, len(NAMES), n), seg)
    previous = pa.table({"customer_id": ids[:n - 500], "segment": [NAMES[s] for s in moved[:n - 500]]})
    current = pa.table({"customer_id": np.concatenate([ids[500:], np.arange(n, n + 500)]),
                        "segment": [NAMES[s] for s in np.concatenate([seg[500:], seg[:500]])]})
    moves = drift(current, previous=previous, id_column="customer_id")
    path = tmp_path_factory.mktemp("browser") / "report.html"
    return write_report(path, prof, validation=validation, drift=moves, title="Browser check")


def test_the_report_renders_offline_with_every_segment_name_and_every_plot(report, tmp_path):
    _browser_or_skip()
    import matplotlib.image as mpimg

    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER.format(memory=MEMORY, chromium=CHROMIUM))
    shot = tmp_path / "screenshot.png"
    proc = subprocess.run([sys.executable, str(runner), str(report), str(shot), json.dumps(NAMES)],
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])

    assert seen["scripts"] == 0  # the hostile name stayed text
    assert seen["requests"] == []  # nothing fetched: the page is self-contained
    assert len(seen["images"]) >= 3  # sizes, differences, the migration heatmap
    assert all(complete and w > 0 and h > 0 for complete, w, h in seen["images"]), seen["images"]
    assert seen["visible"] == {n: True for n in NAMES}
    drift = seen["drift"]
    assert drift["heading"]
    assert len(drift["heatmap"]) == 1 and all(complete and w > 300 and h > 300 for complete, w, h in drift["heatmap"])
    assert drift["names"] == {n: True for n in NAMES}  # in the drift's tables, escaped and shown

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[1] == 1280 and pixels.shape[0] > 900  # the full page, longer than one screen
    assert pixels.std() > 0.05  # not blank
    colours = np.unique((pixels[::4, ::4] * 255).astype(np.uint8).reshape(-1, 3) // 32, axis=0)
    assert len(colours) >= 8  # text, bars, the heatmap's two ends: many colours
    shots = os.environ.get("SEGMINT_REPORT_SHOTS")
    if shots:  # keep the screenshot for a human to look at
        shutil.copy(shot, os.path.join(shots, "report_screenshot.png"))
