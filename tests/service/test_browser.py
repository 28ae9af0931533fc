"""The web UI in a real browser: Debian's Chromium driven by Playwright (no browser download).

Needs ``apt-get install chromium`` and the ``playwright`` package (in the ``dev`` extra). Under
``CI=true`` a missing browser FAILS these tests; elsewhere they are skipped with the reason.
``HEADRACE_UPDATE_SCREENSHOTS=1`` also writes the screenshots to docs/screenshots/.

What is checked follows Dataflow's job page (a graph whose steps show element counts, a steps
table, logs, a cancel button) and Pachyderm's console (datums failed first with their logs, a
repo browser with file previews and provenance).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from tests.service.conftest import TOKEN, headrace_command, wait_for

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("HEADRACE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

SCRIPT = """
import logging, sys, time
from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions

def slow(x):
    if x == 0:
        logging.getLogger("wordcount").warning("first element seen")
    time.sleep(float(sys.argv[1]))
    return x

class Keyed(beam.PTransform):
    def expand(self, pcoll):
        return (pcoll | "Pair" >> beam.Map(lambda x: (x % 3, x))
                      | "Odd" >> beam.Filter(lambda kv: kv[1] % 2 == 1))

with beam.Pipeline(options=PipelineOptions(direct_bundle_size=10)) as p:
    (p | "Numbers" >> beam.Create(list(range(int(sys.argv[2]))))
       | "Slow" >> beam.Map(slow)
       | "Keyed" >> Keyed()
       | "Group" >> beam.GroupByKey()
       | "Sizes" >> beam.MapTuple(lambda k, v: (k, len(list(v)))))
"""


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser():
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run under CI: {reason}")
        pytest.skip(f"browser tests need a browser: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, service):
    context = browser.new_context(viewport={"width": 1366, "height": 820})
    pg = context.new_page()
    pg.set_default_timeout(90_000)  # generous: the machine may be loaded
    pg.goto(f"{service.url}/?token={TOKEN}")  # sets the token cookie, redirects to the UI
    yield pg
    context.close()


def _shot(page, tmp_path: Path, name: str, docs: bool = True) -> None:
    """A full-page screenshot; with HEADRACE_UPDATE_SCREENSHOTS also into docs/screenshots
    (unless ``docs`` is False: pages too long to be worth keeping)."""
    target = tmp_path / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 0
    if docs and os.environ.get("HEADRACE_UPDATE_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(target, SCREENSHOTS / f"{name}.png")


def _run(service, tmp_path: Path, sleep: str, n: str) -> subprocess.Popen[bytes]:
    script = tmp_path / "pipeline.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_TOKEN"] = TOKEN
    return subprocess.Popen(
        [*headrace_command(), "run", "--service", service.url, "--no-progress", str(script),
         sleep, n],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_job_page_shows_every_step_with_its_counts(page, service, tmp_path):
    proc = _run(service, tmp_path, "0", "60")
    assert proc.wait(timeout=120) == 0
    run = service.get("/api/v1/runs?state=DONE")["runs"][0]
    detail = service.get(f"/api/v1/runs/{run['id']}")
    steps, transforms = detail["steps"], {t["label"]: t for t in detail["transforms"]}
    assert steps and transforms["Keyed"]["composite"]

    page.goto(f"{service.url}/ui/#/jobs")
    page.locator(f"tr[data-job='{run['id']}'] a.job-link").click()
    # the transforms view first, the composite folded: one box standing for its two parts
    graph = page.locator("#transforms")
    graph.wait_for()
    shown = lambda: sorted(
        graph.locator("g.tnode").evaluate_all(  # noqa: E731
            "nodes => nodes.map(n => n.dataset.transform)"
        )
    )
    assert shown() == ["Group", "Keyed", "Numbers", "Sizes", "Slow"]
    edge = lambda a, b: graph.locator(  # noqa: E731
        f"g.tedge[data-from='{transforms[a]['id']}'][data-to='{transforms[b]['id']}']"
    )
    # counts on the true edges: 60 numbers into Slow and into the composite, 30 odd ones out
    assert edge("Numbers", "Slow").get_attribute("data-count") == "60"
    assert edge("Slow", "Keyed").get_attribute("data-count") == "60"
    assert edge("Keyed", "Group").get_attribute("data-count") == "30"
    assert edge("Keyed", "Group").text_content() == "30"
    slow = graph.locator("g.tnode[data-transform='Slow']")
    assert "in 60 · out 60" in slow.text_content() and "step #1" in slow.text_content()
    _shot(page, tmp_path, "pipeline-run")
    # unfolding the composite shows its parts and the edge between them
    graph.locator("g.tnode.folded[data-transform='Keyed']").click()
    graph.locator("g.tnode[data-transform='Keyed/Odd']").wait_for()
    assert shown() == ["Group", "Keyed/Odd", "Keyed/Pair", "Numbers", "Sizes", "Slow"]
    assert edge("Keyed/Pair", "Keyed/Odd").get_attribute("data-count") == "60"
    assert edge("Keyed/Odd", "Group").get_attribute("data-count") == "30"
    _shot(page, tmp_path, "pipeline-run-unfolded")
    page.locator("button.chip[data-fold='Keyed']").click()
    graph.locator("g.tnode.folded[data-transform='Keyed']").wait_for()

    # the fused stages, as the runner ran them
    page.locator("#view-stages").click()
    fused = page.locator("#graph")
    fused.wait_for()
    for step in steps:
        box = fused.locator(f".step[data-step='{step['name']}']")
        assert box.count() == 1, step["name"]
        assert box.locator(".count-in").inner_text() == f"in {step['elements_in']:,}"
        assert box.locator(".count-out").inner_text() == f"out {step['elements_out']:,}"
        row = page.locator(f"#steps tr[data-step='{step['name']}']")
        assert step["name"] in row.inner_text()
    assert "first element seen" in page.locator("#logs").inner_text()
    # the steps table sorts by a column when its header is clicked
    page.locator("#steps th", has_text="Elements out").click()
    outs = [
        int(t.replace(",", ""))
        for t in page.locator("#steps tbody tr td:nth-child(6)").all_inner_texts()
    ]
    assert outs == sorted(outs)
    _shot(page, tmp_path, "pipeline-run-stages")
    page.goto(f"{service.url}/ui/#/jobs")
    page.locator("#jobs").wait_for()
    _shot(page, tmp_path, "jobs")


def test_cancel_button_cancels_a_running_pipeline(page, service, tmp_path):
    proc = _run(service, tmp_path, "0.05", "4000")
    try:
        run_id = wait_for(
            lambda: next(
                (r["id"] for r in service.get("/api/v1/runs?state=RUNNING")["runs"]), None
            ),
            what="a running run",
        )
        page.goto(f"{service.url}/ui/#/run/{run_id}")
        page.locator("#cancel").click()
        page.locator(".meta .state", has_text="CANCELLED").wait_for(timeout=120_000)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pages_follow_the_event_stream_and_poll_when_it_drops(page, service, tmp_path):
    """The jobs list and a running run's page update from server-sent events, not by polling;
    a page whose stream cannot be opened polls instead and still follows the run."""
    page.goto(f"{service.url}/ui/#/jobs")
    page.locator("body[data-live='stream']").wait_for()
    before = {r["id"] for r in service.get("/api/v1/runs?limit=1000")["runs"]}
    proc = _run(service, tmp_path, "0.05", "200")
    try:
        run_id = wait_for(
            lambda: next(
                (r["id"] for r in service.get("/api/v1/runs?state=RUNNING")["runs"]
                 if r["id"] not in before), None,
            ),
            what="a running run",
        )  # fmt: skip
        # the new run shows in the list without a reload, from the stream
        page.locator(f"tr[data-job='{run_id}']").wait_for()
        fetched: list[str] = []
        page.on(
            "request",
            lambda r: fetched.append(r.url)
            if r.url.split("?")[0].endswith(f"/api/v1/runs/{run_id}") else None,
        )  # fmt: skip
        page.locator(f"tr[data-job='{run_id}'] a.job-link").click()
        page.locator("body[data-live='stream']").wait_for()
        # counts move while it runs (elements in of the first step, read from the stream)
        page.wait_for_function(
            """() => {
                const state = document.querySelector('.meta .state');
                const cell = document.querySelector('#steps tbody tr td:nth-child(5)');
                const n = cell ? Number(cell.textContent.replace(/,/g, '')) : 0;
                return state && state.textContent === 'RUNNING' && n > 0 && n < 200;
            }"""
        )
        # a page whose stream is refused polls
        other = page.context.new_page()
        other.route("**/stream*", lambda route: route.abort())
        other.goto(f"{service.url}/ui/#/run/{run_id}")
        other.locator("body[data-live='polling']").wait_for()
        for p in (page, other):
            p.locator(".meta .state", has_text="DONE").wait_for(timeout=120_000)
            p.locator("#steps").wait_for()
        assert proc.wait(timeout=60) == 0
        # the streaming page fetched the run once when it opened and once at the end; the
        # counts in between came from the stream (polling would fetch it every second)
        assert 1 <= len(fetched) <= 2, fetched
        assert page.locator("body").get_attribute("data-live") == "off"
        final = service.get(f"/api/v1/runs/{run_id}")["steps"]
        for p in (page, other):
            for step in final:
                row = p.locator(f"#steps tr[data-step='{step['name']}']")
                assert f"{step['elements_out']:,}" in row.inner_text()
        other.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


FAILING = """
import logging
from headrace import beam

def boom(x):
    logging.getLogger("user").warning("looking at %s", x)
    if x == 7:
        raise ValueError(f"bad element {x}")
    return x

with beam.Pipeline() as p:
    _ = p | "Numbers" >> beam.Create(list(range(10))) | "Boom" >> beam.Map(boom)
"""


def test_a_failed_runs_page_shows_the_failing_element_and_traceback_first(page, service, tmp_path):
    script = tmp_path / "failing.py"
    script.write_text(textwrap.dedent(FAILING))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_TOKEN"] = TOKEN
    proc = subprocess.run(
        [*headrace_command(), "run", "--service", service.url, "--no-progress", str(script)],
        check=False, env=env, capture_output=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode != 0
    run = service.get("/api/v1/runs?state=FAILED")["runs"][0]
    page.goto(f"{service.url}/ui/#/run/{run['id']}")
    failure = page.locator("#failure")
    failure.wait_for()
    assert page.locator("#failed-step").inner_text() == "Boom"
    assert page.locator("#failed-element").inner_text() == "7"
    trace = page.locator("#run-traceback").inner_text()
    assert "Traceback" in trace and "in boom" in trace and "ValueError: bad element 7" in trace
    # the failure comes before the graph, and errors before the other log records
    first = page.evaluate(
        "document.querySelector('#failure').compareDocumentPosition("
        "document.querySelector('#graph-section')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    assert first
    lines = page.locator("#logs > div").all_inner_texts()
    errors = [i for i, line in enumerate(lines) if "failed" in line]
    assert errors and errors == list(range(len(errors))), lines
    assert any("looking at 7" in line for line in lines[len(errors) :])
    _shot(page, tmp_path, "pipeline-run-failed")


ENDLESS = """
import time
from headrace import beam
from headrace.io.streaming.periodic import PeriodicImpulse
from headrace.model.options import PipelineOptions
from headrace.model.window import FixedWindows

with beam.Pipeline(options=PipelineOptions(["--streaming"])) as p:
    (p | "Ticks" >> PeriodicImpulse(start_timestamp=time.time(), fire_interval=0.01)
       | "Ones" >> beam.Map(lambda t: 1)
       | "Hour" >> beam.WindowInto(FixedWindows(3600))
       | "Sum" >> beam.CombineGlobally(sum).without_defaults()
       | "Print" >> beam.Map(lambda n: print("sum", n, flush=True)))
"""


def test_drain_button_drains_a_streaming_run(page, service, tmp_path):
    script = tmp_path / "endless.py"
    script.write_text(textwrap.dedent(ENDLESS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env={**env, "HEADRACE_SERVICE": service.url, "HEADRACE_TOKEN": TOKEN},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        run_id = wait_for(
            lambda: next(
                (r["id"] for r in service.get("/api/v1/runs?state=RUNNING")["runs"]
                 if r["streaming"]), None,
            ),
            what="a running streaming run",
        )  # fmt: skip
        page.goto(f"{service.url}/ui/#/run/{run_id}")
        assert page.locator(".meta").inner_text().count("streaming") == 1
        # a streaming run's graph: its steps are its transforms, with their counts
        ones = page.locator("#transforms g.tnode[data-transform='Ones']")
        ones.wait_for()
        page.wait_for_function(
            """() => {
                const n = document.querySelector("#transforms g.tnode[data-transform='Ones']");
                return n && /in [1-9]/.test(n.textContent);
            }"""
        )
        page.locator("#drain").click()
        # Beam's state for a drained streaming job (PipelineState.DRAINED), not DONE
        page.locator(".meta .state", has_text="DRAINED").wait_for(timeout=120_000)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # also closes the stdout pipe when the run ended on its own
    assert proc.returncode == 0 and b"sum " in out
    assert "drain requested" in page.locator("#logs").inner_text()
    assert page.locator("#drain").count() == 0 and page.locator("#cancel").count() == 0


def test_a_failed_datums_log_is_one_click_from_its_job(page, service, tmp_path):
    job_id = service.ids["failed_job"]
    page.goto(f"{service.url}/ui/#/jobs?kind=stage_job")
    page.locator(f"tr[data-job='{job_id}'] a.job-link").click()
    first = page.locator("#datums tbody tr").first
    first.wait_for()
    assert "failed" in first.inner_text() and "data:/c.txt" in first.inner_text()
    first.locator("a.datum-link").click()
    error = page.locator("#datum-error")
    error.wait_for()
    assert "ValueError: cannot process c.txt" in error.inner_text()
    assert "Traceback" in error.inner_text()
    _shot(page, tmp_path, "stage-job")


def test_browse_a_commits_files_and_provenance(page, service, tmp_path):
    page.goto(f"{service.url}/ui/#/repos")
    page.locator("#repos a.repo-link", has_text="data").click()
    page.locator("#commits a.commit-link").first.click()
    page.locator("#files a.file-link", has_text="docs/").click()
    page.locator("#files a.file-link", has_text="readme.md").click()
    preview = page.locator("#file-preview")
    preview.wait_for()
    assert preview.inner_text().strip() == "# read me"
    _shot(page, tmp_path, "commit")
    # the first commit of data was read by the stage's successful job: its output shows
    page.goto(f"{service.url}/ui/#/commit/data/{service.ids['first']}")
    page.locator("h1", has_text=service.ids["first"]).wait_for()
    assert re.search(r"up@[0-9a-f]{12}", page.locator("#provenance").inner_text())
    page.goto(f"{service.url}/ui/#/commit/up/{service.ids['up_head']}")
    page.locator("h1", has_text=service.ids["up_head"]).wait_for()
    assert "data@" in page.locator("#provenance").inner_text()
    _shot(page, tmp_path, "provenance")


def test_previews_show_csv_as_a_table_images_and_the_diff(page, service, tmp_path):
    import base64

    from tests.service.conftest import headrace_cli

    png = base64.b64decode(
        "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP4z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
    )
    (tmp_path / "t.csv").write_text('name,note\nann,"hello, world"\nbob,plain\n')
    (tmp_path / "dot.png").write_bytes(png)
    headrace_cli(service.home, "repo", "create", "tables")
    headrace_cli(service.home, "file", "put", "tables@master:/t.csv", str(tmp_path / "t.csv"))
    headrace_cli(service.home, "file", "put", "tables@master:/dot.png", str(tmp_path / "dot.png"))

    page.goto(f"{service.url}/ui/#/commit/tables/master?path=%2F&file=%2Ft.csv")
    cells = page.locator("table#file-preview tbody tr").first.locator("td")
    cells.first.wait_for()
    assert cells.all_inner_texts() == ["ann", "hello, world"]
    assert page.locator("#diff").inner_text().count("/t.csv") == 0  # this commit added the png
    assert "/dot.png" in page.locator("#diff").inner_text()
    _shot(page, tmp_path, "csv-preview")

    page.goto(f"{service.url}/ui/#/commit/tables/master?path=%2F&file=%2Fdot.png")
    image = page.locator("img#file-preview")
    image.wait_for()
    page.wait_for_function("document.querySelector('img#file-preview').naturalWidth === 2")


def test_parquet_as_a_table_diff_against_any_commit_and_the_provenance_drawing(
    page, service, tmp_path
):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tests.service.conftest import headrace_cli

    table = pa.table({"sku": [f"s{i}" for i in range(250)], "qty": list(range(250))})
    pq.write_table(table, tmp_path / "orders.parquet")
    (tmp_path / "b.txt").write_text("b\n")
    (tmp_path / "c.txt").write_text("c\n")
    headrace_cli(service.home, "repo", "create", "pq")
    for name in ("orders.parquet", "b.txt", "c.txt"):
        headrace_cli(service.home, "file", "put", f"pq@master:/{name}", str(tmp_path / name))
    commits = service.get("/api/v1/repos/pq/commits")
    first, head = commits[-1]["id"], commits[0]["id"]

    page.goto(f"{service.url}/ui/#/commit/pq/{head}?path=%2F&file=%2Forders.parquet")
    rows = page.locator("table#file-preview tbody tr")
    rows.first.wait_for()
    assert page.locator("table#file-preview th").all_inner_texts() == ["sku", "qty"]
    assert rows.count() == 100 and rows.nth(7).locator("td").all_inner_texts() == ["s7", "7"]
    assert page.locator("#table-rows").inner_text() == "100 of 250 rows"
    # the diff: from the parent by default, from any commit picked
    assert [r.split("\t")[0] for r in page.locator("#diff tbody tr").all_inner_texts()] == [
        "/c.txt"
    ]
    page.locator("#diff-against").select_option(first)
    page.locator("#diff tbody tr", has_text="/b.txt").wait_for()
    paths = sorted(r.split("\t")[0] for r in page.locator("#diff tbody tr").all_inner_texts())
    assert paths == ["/b.txt", "/c.txt"]
    _shot(page, tmp_path, "parquet-and-diff")

    # the provenance drawing of the stage's output commit reaches back to data's commit
    up_head = service.ids["up_head"]
    prov = service.get(f"/api/v1/repos/up/commits/{up_head}/provenance")
    page.goto(f"{service.url}/ui/#/commit/up/{up_head}")
    page.locator("h1", has_text=up_head).wait_for()
    drawing = page.locator("#provenance-graph")
    drawing.wait_for()
    drawn = drawing.locator("g.tnode").evaluate_all("ns => ns.map(n => n.dataset.repo).sort()")
    assert drawn == sorted(["up"] + [c["repo"] for c in prov["provenance"]])
    assert "data" in drawn
    edge = drawing.locator(f"g.tedge[data-to='{up_head}']").first
    assert edge.text_content() == "up"  # made by the stage up
    _shot(page, tmp_path, "provenance-drawing", docs=False)
    # a node leads to its commit
    drawing.locator("g.tnode[data-repo='data']").first.click()
    page.locator("h1", has_text="Commit").wait_for()
    page.wait_for_function("location.hash.startsWith('#/commit/data/')")


@pytest.fixture
def big_page(browser, big_service):
    context = browser.new_context(viewport={"width": 1366, "height": 820})
    pg = context.new_page()
    pg.set_default_timeout(90_000)
    pg.goto(f"{big_service.url}/?token={TOKEN}")
    yield pg
    context.close()


def test_10k_jobs_and_datums_show_a_page_of_rows_and_a_pager(big_page, big_service, tmp_path):
    page = big_page
    page.goto(f"{big_service.url}/ui/#/jobs?kind=pipeline_run")
    rows = page.locator("#jobs tbody tr")
    rows.first.wait_for()
    assert rows.count() == 100  # a page of rows, not 10k
    assert page.locator("#pager").inner_text().startswith("1–100")
    page.locator("#pager a.next").click()
    page.locator("#pager", has_text="101–200").wait_for()
    assert rows.count() == 100
    # the second page is what the API lists from offset 100 (the seeded store's own runs, newer
    # than the bulk ones, come before them; how many depends on the seeding)
    listed = big_service.get("/api/v1/jobs?kind=pipeline_run&offset=100&limit=100")["jobs"]
    assert rows.first.get_attribute("data-job") == listed[0]["id"]
    assert listed[0]["id"].startswith("run-bulk-") and len(listed) == 100
    page.locator("#pager a.prev").click()
    page.locator("#pager", has_text="1–100").wait_for()

    job = big_service.ids["failed_job"]
    page.goto(f"{big_service.url}/ui/#/stage-job/{job}")
    datums = page.locator("#datums tbody tr")
    datums.first.wait_for()
    assert datums.count() == 100
    total = big_service.get(f"/api/v1/stage-jobs/{job}/datums?limit=1")["total"]
    assert f"1–100 of {total:,} datums" in page.locator(".pager").inner_text()
    _shot(page, tmp_path, "stage-job-10k-datums", docs=False)
    page.locator(".pager a", has_text="next").click()
    page.locator(".pager", has_text="101–200").wait_for()
    assert datums.count() == 100
    # the page stays usable: a datum's log opens from the second page
    datums.first.locator("a.datum-link").click()
    page.locator("#datum-log").wait_for()
    assert "log of datum" in page.locator("#datum-log").inner_text()


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The README's e-commerce walkthrough, run as written (five stages from raw orders to
    predictions), and a service over its store."""
    from tests.service.conftest import start_service, stop_service

    work = tmp_path_factory.mktemp("shop")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_HOME"] = str(work / "store")
    exe = headrace_command()

    def sh(*args: str) -> str:
        done = subprocess.run(
            args, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    sh(sys.executable, "-m", "headrace.examples.ecommerce.data", "raw", "--days", "7")
    sh(*exe, "repo", "create", "orders")
    sh(*exe, "repo", "create", "customers")
    sh(*exe, "file", "put", "orders@master:/", "raw/orders")
    sh(*exe, "file", "put", "customers@master:/", "raw/customers")
    import headrace.examples.ecommerce as ecommerce

    for stage in ("enrich", "mask", "standardise", "train", "predict"):
        sh(*exe, "stage", "create", "-f", str(Path(ecommerce.SPECS_DIR) / f"{stage}.yaml"))
    sh(*exe, "daemon", "--once")
    sh(*exe, "commit", "wait", "predict@master", "--timeout", "120")
    service = start_service(work / "store", TOKEN, "--no-daemon")
    yield service
    stop_service(service)


def test_the_ecommerce_walkthrough_from_the_ui(browser, shop, tmp_path):
    """Follow the README's e-commerce walkthrough in the UI: its repos, a stage job of it, and
    the provenance of its output commit back to the raw orders and customers."""
    context = browser.new_context(viewport={"width": 1366, "height": 820})
    page = context.new_page()
    page.set_default_timeout(90_000)
    page.goto(f"{shop.url}/?token={TOKEN}")
    try:
        # repos: the two the walkthrough made and one output repo per stage
        page.goto(f"{shop.url}/ui/#/repos")
        names = page.locator("#repos a.repo-link")
        names.first.wait_for()
        assert sorted(names.all_inner_texts()) == sorted(
            ["orders", "customers", "enrich", "mask", "standardise", "train", "predict"]
        )
        names.filter(has_text="orders").first.click()
        page.locator("#commits a.commit-link").first.click()
        page.locator("#files a.file-link", has_text="eu/").click()
        page.locator("#files a.file-link", has_text=".csv").first.click()
        page.locator("table#file-preview thead th").first.wait_for()  # a CSV, as a table
        _shot(page, tmp_path, "ecommerce-orders", docs=False)

        # the predict stage's job, from the stages page
        page.goto(f"{shop.url}/ui/#/stages")
        row = page.locator("#stages tbody tr", has_text="predict")
        row.locator("a", has_text=re.compile("^[0-9a-f]{12}$")).click()
        page.locator("h1", has_text="Stage job").wait_for()
        assert "SUCCESS" in page.locator(".meta").first.inner_text()
        page.locator("#datums tbody tr").first.wait_for()
        assert "success" in page.locator("#datums tbody tr").first.inner_text()
        _shot(page, tmp_path, "ecommerce-stage-job")

        # its output commit, and the provenance drawing back to the raw data
        page.locator("a", has_text="output commit").click()
        page.locator("h1", has_text="Commit").wait_for()
        drawing = page.locator("#provenance-graph")
        drawing.wait_for()
        repos = set(drawing.locator("g.tnode").evaluate_all("ns => ns.map(n => n.dataset.repo)"))
        assert {"orders", "customers", "enrich", "predict"} <= repos
        labels = set(drawing.locator("g.tedge text").all_text_contents())
        assert {"enrich", "mask", "standardise", "predict"} <= labels
        origins = drawing.locator("g.tnode.origin").evaluate_all(
            "ns => ns.map(n => n.dataset.repo).sort()"
        )
        assert origins == ["customers", "orders"]
        _shot(page, tmp_path, "ecommerce-provenance")
    finally:
        context.close()
