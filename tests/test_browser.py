"""The generated report opened in headless Chromium (Debian's `chromium`; `.ci/run` installs it
as root): it loads, shows the summary table, and renders an embedded figure. Screenshots are
saved next to the report. Skips, saying why, where Chromium is missing."""

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.workflow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

#: Appended to a copy of the report: once loaded, display the best-and-worst gallery the way a
#: click on it in the report's menu does.
SHOW_GALLERY = """
<script>
const showGallery = setInterval(() => {
  if (typeof app === "undefined") return;  // the report's App sets it once it renders
  clearInterval(showGallery);
  const path = Object.keys(results).find((key) => key.endsWith("best_and_worst.png"));
  app.setView({content: "img", contentPath: results[path].data_uri});
}, 50);
</script>
"""


@pytest.fixture(scope="module")
def chromium():
    if CHROMIUM is None:
        print("skipping the browser check: no `chromium` on PATH (apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian package `chromium`)")
    return CHROMIUM


def open_headless(chromium, page, workdir, *arguments) -> subprocess.CompletedProcess:
    """Load `page` in headless Chromium without network, sync or a user profile to keep."""
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={workdir / 'chromium-profile'}",
        "--virtual-time-budget=5000",
        "--window-size=1280,2000",
        *arguments,
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_the_report_loads_with_its_summary_table(chromium, report_run):
    report = report_run / "results" / "report.html"
    dom = open_headless(chromium, report, report_run, "--dump-dom").stdout
    assert '<h1 class="title">rpsloc' in dom  # rendered by the report's own scripts
    table = dom[dom.index('<table border="1" class="docutils">') :]
    table = table[: table.index("</table>")]
    assert "tiny MaxBoxAccV2" in table
    assert table.count("<tr") == 3


def gallery_page(report_run):
    """A copy of the report that opens on the best-and-worst gallery."""
    page = report_run / "results" / "report-gallery.html"
    page.write_text((report_run / "results" / "report.html").read_text() + SHOW_GALLERY)
    return page


def test_the_report_renders_an_embedded_figure(chromium, report_run):
    dom = open_headless(chromium, gallery_page(report_run), report_run, "--dump-dom").stdout
    assert '<img src="data:image/png' in dom


@pytest.mark.parametrize("page", ["report", "report-gallery"])
def test_a_screenshot_of_the_report_is_saved(chromium, report_run, page):
    html = (
        gallery_page(report_run)
        if page == "report-gallery"
        else report_run / "results" / "report.html"
    )
    shot = report_run / "results" / f"{page}.png"
    open_headless(chromium, html, report_run, f"--screenshot={shot}")
    assert shot.stat().st_size > 20_000
    print(f"screenshot: {shot}")
