"""Beam conformance: run Apache Beam 2.77's own test modules on headrace and classify failures.

One command::

    python benchmarks/beam_conformance.py [--json PATH] [--only SUBSTR] [--jobs N]

What it does (everything downloaded or built lives in a cache folder outside the repository,
``$HEADRACE_BEAM_CACHE`` or ``~/.cache/headrace/beam-conformance``; Apache Beam is never a
headrace dependency):

1. ``pip download apache-beam==2.77.0 --no-deps`` into the cache, and unpacks the wheel.
2. Copies the :data:`MODULES` below (Beam's test modules for transforms, windowing, triggers,
   state, side inputs, TestStream, the testing utilities, text/Parquet/Avro IO, the cookbook, the
   complete and mobile-gaming examples and the documentation snippets), with every Beam example
   module they import, into a package ``bct`` in the cache. Every other ``apache_beam`` name is
   rewritten to ``headrace.beam``; nothing else in the test code changes.
3. Runs each module with pytest in its own subprocess of headrace's interpreter (per-test timeout
   ``--timeout``; pytest plugins from the cache supply ``parameterized``/``hamcrest``/``mock``,
   which Beam's tests import), and records every test's outcome and error.
4. The reference: the same modules, unrewritten, on real Apache Beam 2.77 in a separate venv in
   the cache (made on first use; its results are cached, ``--refresh-beam`` redoes them). A test
   is *applicable* when it passes on Beam and does not fail on headrace for want of a Beam
   *internal* name (see :func:`is_internal`): runner internals, portability protos, names
   starting with ``_``, the load-test and synthetic-pipeline helpers.
5. Classifies each applicable failure: ``missing_api`` (ImportError / ModuleNotFoundError, or an
   AttributeError raised in the test's own code, on a public Beam name), ``wrong_result``
   (an AssertionError: ``assert_that``, ``assertEqual``...), ``crash`` (any other exception,
   timeouts included). Prints the counts, the pass rate of the applicable tests and the most
   frequent causes; ``--json`` writes every test's result.

Options: ``--no-beam`` skips the reference run and counts every collected test as applicable
unless it fails on an internal name (a rougher figure; it says so).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BEAM_VERSION = "2.77.0"
PIP = (sys.executable, "-m", "pip", "-q", "--disable-pip-version-check")
TEST_DEPS = (
    "parameterized",
    "pyhamcrest",
    "mock",
    "pytest-timeout",
    "pytz",
    "pandas",
    "python-dateutil",
    "tzdata",
)

#: The 78 Beam modules (paths inside the wheel, without ``apache_beam/`` and ``.py``).
MODULES: tuple[str, ...] = (
    # SDK: transforms, windowing, triggers, state, side inputs
    "transforms/core_test",
    "transforms/create_test",
    "transforms/combiners_test",
    "transforms/combinefn_lifecycle_test",
    "transforms/deduplicate_test",
    "transforms/dofn_lifecycle_test",
    "transforms/error_handling_test",
    "transforms/ptransform_test",
    "transforms/sideinputs_test",
    "transforms/stats_test",
    "transforms/transforms_keyword_only_args_test",
    "transforms/trigger_test",
    "transforms/userstate_test",
    "transforms/util_test",
    "transforms/window_test",
    "utils/windowed_value_test",
    # testing utilities, TestStream
    "testing/test_stream_test",
    "testing/util_test",
    "testing/test_pipeline_test",
    # IO
    "io/textio_test",
    "io/parquetio_test",
    "io/avroio_test",
    # examples
    "examples/wordcount_test",
    "examples/wordcount_minimal_test",
    "examples/wordcount_debugging_test",
    "examples/matrix_power_test",
    "examples/avro_nyc_trips_test",
    "examples/complete/autocomplete_test",
    "examples/complete/estimate_pi_test",
    "examples/complete/tfidf_test",
    "examples/complete/top_wikipedia_sessions_test",
    "examples/complete/game/game_stats_test",
    "examples/complete/game/hourly_team_score_test",
    "examples/complete/game/leader_board_test",
    "examples/complete/game/user_score_test",
    "examples/cookbook/coders_test",
    "examples/cookbook/combiners_test",
    "examples/cookbook/custom_ptransform_test",
    "examples/cookbook/filters_test",
    "examples/cookbook/group_with_coder_test",
    "examples/cookbook/mergecontacts_test",
    "examples/cookbook/multiple_output_pardo_test",
    # documentation snippets
    "examples/snippets/snippets_test",
    "examples/snippets/util_test",
    *(
        f"examples/snippets/transforms/aggregation/{name}_test"
        for name in (
            "approximatequantiles",
            "approximateunique",
            "batchelements",
            "cogroupbykey",
            "combineglobally",
            "combineperkey",
            "combinevalues",
            "count",
            "distinct",
            "groupby",
            "groupbykey",
            "groupintobatches",
            "latest",
            "max",
            "mean",
            "min",
            "sample",
            "sum",
            "tolist",
            "top",
        )
    ),
    *(
        f"examples/snippets/transforms/elementwise/{name}_test"
        for name in (
            "filter",
            "flatmap",
            "keys",
            "kvswap",
            "map",
            "pardo",
            "partition",
            "regex",
            "tostring",
            "values",
            "withtimestamps",
        )
    ),
    "examples/snippets/transforms/other/create_test",
    "examples/snippets/transforms/other/flatten_test",
    "examples/snippets/transforms/other/window_test",
)

#: Given to Beam's TestPipeline so that the examples' integration tests run (locally) instead
#: of skipping; both runs get it (``{tmp}``: a scratch folder of the run).
IT_OPTIONS = "--direct_num_workers=1 --temp_location={tmp}"

#: Runner-level Beam modules that some tests import at module level: Beam's own is used while
#: headrace.beam has no module of that name.
BEAM_IF_MISSING = ("apache_beam.utils.windowed_value",)

#: Beam test helper modules the tests import: copied and rewritten like the tests.
HELPERS = ("transforms/combinefn_lifecycle_pipeline", "testing/pipeline_verifiers")

#: Beam modules whose names are internal (a test failing for want of them is not applicable).
INTERNAL_MODULES = (
    "apache_beam.runners.portability",
    "apache_beam.runners.worker",
    "apache_beam.runners.common",
    "apache_beam.runners.dataflow",
    "apache_beam.runners.interactive",
    "apache_beam.runners.pipeline_context",
    "apache_beam.runners.direct.direct_runner",
    "apache_beam.runners.direct.clock",
    "apache_beam.runners.direct.evaluation_context",
    "apache_beam.runners.direct.transform_evaluator",
    "apache_beam.runners.direct.util",
    "apache_beam.runners.direct.direct_metrics",
    "apache_beam.runners.direct.executor",
    "apache_beam.runners.dask",
    "apache_beam.runners.render",
    "apache_beam.portability",
    "apache_beam.internal",
    "apache_beam.coders.coder_impl",
    "apache_beam.coders.proto2_coder_test_messages_pb2",
    "apache_beam.transforms.display",
    "apache_beam.transforms.environments",
    "apache_beam.transforms.resources",
    "apache_beam.transforms.external",
    "apache_beam.transforms.trigger_test",
    "apache_beam.transforms.sideinputs",
    "apache_beam.transforms.trigger.GeneralTriggerDriver",
    "apache_beam.transforms.trigger.InMemoryUnmergedState",
    "apache_beam.pipeline.PipelineVisitor",
    "apache_beam.testing.test_stream.WindowedValueHolder",
    "apache_beam.testing.test_stream.ReverseTestStream",
    "apache_beam.typehints.typehints",
    "apache_beam.schema_pb2",
    "apache_beam.utils.retry",
    "apache_beam.io.range_trackers",
    "apache_beam.io.filebasedsource",
    "apache_beam.testing.test_stream.OutputFormat",
    "apache_beam.testing.synthetic_pipeline",
    "apache_beam.testing.load_tests",
    "apache_beam.testing.test_stream_service",
    "apache_beam.utils.counters",
    "apache_beam.utils.proto_utils",
    "apache_beam.utils.urns",
    "apache_beam.utils.subprocess_server",
    "apache_beam.utils.python_callable",
    "apache_beam.utils.profiler",
    "apache_beam.typehints.trivial_inference",
    "apache_beam.typehints.row_type",
    "apache_beam.typehints.schemas",
    "apache_beam.typehints.sharded_key_type",
    "apache_beam.typehints.typehints_test",
    "apache_beam.typehints.native_type_compatibility",
    "apache_beam.typehints.opcodes",
    "apache_beam.metrics.execution",
    "apache_beam.metrics.cells",
    "apache_beam.io.gcp",
    "apache_beam.io.iobase",
    "apache_beam.io.concat_source",
    "apache_beam.io.source_test_utils",
    "apache_beam.io.restriction_trackers",
    "apache_beam.io.watermark_estimators",
    "apache_beam.ml",
    "apache_beam.yaml",
    "apache_beam.dataframe",
)
#: Attribute names that are Beam internals wherever they appear.
INTERNAL_ATTRS = frozenset(
    {
        "to_runner_api",
        "from_runner_api",
        "to_runner_api_parameter",
        "runner_api_requires_keyed_input",
        "display_data",
        "default_type_hints",
        "get_type_hints",
        "infer_output_type",
        "get_impl",
        "_get_function_body_without_inputs",
        "MetricsEnvironment",
        "DoFnSignature",
        "DoFnInvoker",
        "PerWindowInvoker",
        "SimpleInvoker",
        "DoFnRunner",
        "DoFnState",
        "DataflowRunner",
        "BundleBasedDirectRunner",
        "SwitchingDirectRunner",
        "PortableRunner",
        "FnApiRunner",
        "RunnerApiFn",
        "environments",
        "beam_runner_api_pb2",
        "common_urns",
        "python_urns",
        "StateSpec",
    }
)


def _beam_site_packages(cache: Path) -> Path | None:
    found = sorted((cache / "beam-venv" / "lib").glob("python3*/site-packages"))
    return found[0] if found else None


def cache_dir() -> Path:
    """Where the wheel, the venv for Beam, the test helpers and the rewritten tests live."""
    env = os.environ.get("HEADRACE_BEAM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "headrace" / "beam-conformance"


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kw)


def ensure_wheel(cache: Path) -> Path:
    wheels = sorted((cache / "wheel").glob(f"apache_beam-{BEAM_VERSION}-*.whl"))
    if not wheels:
        (cache / "wheel").mkdir(parents=True, exist_ok=True)
        print(f"downloading apache-beam=={BEAM_VERSION} (wheel only) ...", flush=True)
        run(
            [
                *PIP,
                "download",
                "--no-deps",
                "-d",
                str(cache / "wheel"),
                f"apache-beam=={BEAM_VERSION}",
            ]
        )
        wheels = sorted((cache / "wheel").glob(f"apache_beam-{BEAM_VERSION}-*.whl"))
    return wheels[0]


def ensure_test_deps(cache: Path) -> Path:
    """pip install --target: the helpers Beam's tests import, kept out of headrace's venv."""
    target = cache / "testdeps"
    if not (target / ".complete").exists():
        print("installing Beam's test helpers into the cache ...", flush=True)
        run([*PIP, "install", "--no-deps", "--target", str(target), *TEST_DEPS])
        (target / ".complete").touch()
    return target


def ensure_beam_venv(cache: Path, wheel: Path) -> Path:
    """A venv with real Apache Beam for the reference run (created once)."""
    venv = cache / "beam-venv"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        print("creating the reference venv with apache-beam (once; a few minutes) ...", flush=True)
        run([sys.executable, "-m", "venv", str(venv)])
        run([str(python), *PIP[1:], "install", str(wheel), "pytest", *TEST_DEPS])
        (venv / ".complete").touch()
    return python


# --- extracting and rewriting -------------------------------------------------------------


_BEAM_NAME = re.compile(r"\bapache_beam((?:\.[A-Za-z_]\w*)*)")


_FROM_IMPORT = re.compile(r"^([ \t]*)from (apache_beam(?:\.\w+)*) import ([^\n#]+)$", re.M)
# Rewritten ``from`` lines are marked so that the general rename leaves them alone.
_KEEP = "APACHE__BEAM__KEEP"


def _stays_beam(module: str) -> bool:
    """Beam internals and Beam's own test helpers are imported from the real Beam (installed in
    the reference venv, appended to the path), so that a test module importing one of them can
    still run its other, public-API tests on headrace."""
    last = module.rsplit(".", 1)[-1]
    if module in BEAM_IF_MISSING and not _headrace_has(module):
        return True
    return is_internal(module) or last.endswith(("_test", "_test_common", "test_utils"))


def _headrace_has(module: str) -> bool:
    try:
        return importlib.util.find_spec(_beam_to_headrace(module)) is not None
    except ImportError:
        return False


def _beam_to_headrace(module: str) -> str:
    return "headrace.beam" + module[len("apache_beam") :]


def _module_of(path: str) -> str:
    return path[: -len(".py")].replace("/", ".").removesuffix(".__init__")


def extract(wheel: Path, dest: Path, *, rewrite: bool) -> None:
    """Copy the test modules and Beam's example package into ``dest/bct``.

    ``apache_beam.examples...`` and the copied test modules become ``bct...``; with
    ``rewrite`` every other ``apache_beam`` name becomes ``headrace.beam``, without it (the
    reference run) they stay and come from the installed Beam.
    """
    if dest.exists():
        shutil.rmtree(dest)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        wanted = {f"apache_beam/{m}.py" for m in (*MODULES, *HELPERS)}
        # Beam's examples, in both trees: the snippet tests import their siblings relatively.
        wanted |= {
            n
            for n in names
            if n.startswith("apache_beam/examples/")
            and not n.endswith((".pyc", ".so", ".pyx", ".pxd", ".c", "/"))
        }
        data_dirs = {os.path.dirname(f"apache_beam/{m}") for m in MODULES}
        wanted |= {
            n
            for n in names
            if os.path.dirname(n) in data_dirs
            and not n.endswith((".py", ".pyc", ".so", ".pyx", ".pxd", ".c", "/"))
        }
        missing = {f"apache_beam/{m}.py" for m in MODULES} - set(names)
        if missing:
            raise SystemExit(f"not in the wheel: {sorted(missing)}")
        copied = {_module_of(n) for n in wanted if n.endswith(".py")}

        def rename(match: re.Match[str]) -> str:
            dotted = "apache_beam" + match.group(1)
            parts = dotted.split(".")
            for i in range(len(parts), 1, -1):
                if ".".join(parts[:i]) in copied:
                    return "bct." + ".".join(parts[1:])
            if not rewrite or _stays_beam(dotted):
                return dotted
            return "headrace.beam" + match.group(1)

        def rename_from_import(match: re.Match[str]) -> str:
            # ``from apache_beam.x import internal_module``: the module stays Beam's own.
            indent, module, names = match.group(1), match.group(2), match.group(3)
            imported = [n.strip() for n in names.split(",")]
            beam_own = [n for n in imported if _stays_beam(f"{module}.{n.split(' as ')[0]}")]
            if not rewrite or not beam_own or any(c in names for c in "()\\"):
                return match.group(0)
            public = [n for n in imported if n not in beam_own]
            lines = [f"from {module.replace('apache_beam', _KEEP, 1)} import {', '.join(beam_own)}"]
            if public:
                lines.append(f"from {module} import {', '.join(public)}")
            return indent + "; ".join(lines)

        for name in sorted(wanted):
            target = dest / "bct" / name[len("apache_beam/") :]
            target.parent.mkdir(parents=True, exist_ok=True)
            data = zf.read(name)
            if name.endswith(".py"):
                text = _FROM_IMPORT.sub(rename_from_import, data.decode("utf-8"))
                data = _BEAM_NAME.sub(rename, text).replace(_KEEP, "apache_beam").encode("utf-8")
            target.write_bytes(data)
    for folder in [dest / "bct", *(p for p in (dest / "bct").rglob("*") if p.is_dir())]:
        init = folder / "__init__.py"
        if not init.exists():
            init.write_text("")
    (dest / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider --import-mode=prepend\nfilterwarnings = ignore\n"
    )
    (dest / "conftest.py").write_text(_CONFTEST)


_CONFTEST = textwrap.dedent(
    '''
    """Records every test's outcome as a JSON line in $BCT_RESULTS."""
    import json, os, sys, traceback

    _OUT = open(os.environ["BCT_RESULTS"], "a")
    if os.environ.get("BCT_BEAM_SITE"):
        # Beam internals and test helpers some test modules import come from the real Beam;
        # appended, so that everything headrace itself imports wins.
        sys.path.append(os.environ["BCT_BEAM_SITE"])

    def _frames(excinfo):
        return [(str(e.path), e.lineno + 1) for e in excinfo.traceback][-12:]

    def _write(nodeid, outcome, excinfo=None, when="call"):
        rec = {"id": nodeid, "outcome": outcome, "when": when}
        if excinfo is not None:
            rec["exc"] = excinfo.typename
            rec["msg"] = str(excinfo.value)[:600]
            rec["frames"] = _frames(excinfo)
            chain = []
            cur = excinfo.value
            while cur is not None and len(chain) < 5:
                chain.append([type(cur).__name__, str(cur)[:300]])
                cur = cur.__cause__ or cur.__context__
            rec["chain"] = chain
        _OUT.write(json.dumps(rec) + "\\n")
        _OUT.flush()

    def pytest_runtest_makereport(item, call):
        if call.when == "call" or call.excinfo is not None:
            if call.excinfo is None:
                _write(item.nodeid, "passed")
            elif call.excinfo.errisinstance(__import__("unittest").SkipTest) or (
                call.excinfo.typename == "Skipped"
            ):
                _write(item.nodeid, "skipped", when=call.when)
            else:
                _write(item.nodeid, "failed", call.excinfo, call.when)

    def pytest_addoption(parser):
        # Beam's TestPipeline reads it from sys.argv; integration tests skip without it.
        parser.addoption("--test-pipeline-options", default=None)

    def pytest_collection_modifyitems(session, config, items):
        if os.environ.get("BCT_COLLECT"):
            for item in items:
                _OUT.write(json.dumps({"id": item.nodeid, "outcome": "collected"}) + "\\n")
            _OUT.flush()

    def pytest_collectreport(report):
        if report.failed:
            rec = {"id": report.nodeid, "outcome": "collect_error", "when": "collect",
                   "msg": str(report.longrepr)[-1500:]}
            _OUT.write(json.dumps(rec) + "\\n")
            _OUT.flush()
    '''
)


# --- running ------------------------------------------------------------------------------


def run_module(
    python: Path,
    root: Path,
    module: str,
    results: Path,
    timeout: int,
    pythonpath: list[Path],
    collect_only: bool = False,
    beam_site: Path | None = None,
) -> list[dict[str, Any]]:
    out = results / (module.replace("/", ".") + ".jsonl")
    out.unlink(missing_ok=True)
    out.touch()
    env = dict(os.environ)
    env["BCT_RESULTS"] = str(out)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [root, *pythonpath])
    env.pop("PYTHONSTARTUP", None)
    scratch = results / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    cmd = [str(python), "-m", "pytest", f"bct/{module}.py", "-q"]
    if beam_site is not None:
        env["BCT_BEAM_SITE"] = str(beam_site)
    if collect_only:
        env["BCT_COLLECT"] = "1"
        cmd.append("--collect-only")
    cmd += [
        f"--timeout={timeout}",
        "--timeout-method=signal",
        "--test-pipeline-options=" + IT_OPTIONS.format(tmp=scratch),
    ]
    cmd += ["-o", "console_output_style=classic", "--rootdir", str(root), "-c", "pytest.ini"]
    try:
        subprocess.run(
            cmd,
            check=False,
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=max(900, timeout * 20),
        )
    except subprocess.TimeoutExpired:
        pass
    records: list[dict[str, Any]] = []
    for line in out.read_text().splitlines():
        rec = json.loads(line)
        rec["module"] = module
        records.append(rec)
    return records


def _load_results(results: Path, modules: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for module in modules:
        path = results / (module.replace("/", ".") + ".jsonl")
        if path.exists():
            out[module] = [
                {**json.loads(line), "module": module} for line in path.read_text().splitlines()
            ]
    return out


def run_all(
    python: Path,
    root: Path,
    results: Path,
    timeout: int,
    pythonpath: list[Path],
    jobs: int,
    modules: list[str],
    on_done: Callable[[str, list[dict[str, Any]]], None] | None = None,
    collect_only: bool = False,
    beam_site: Path | None = None,
) -> dict[str, list[dict[str, Any]]]:
    results.mkdir(parents=True, exist_ok=True)
    done: dict[str, list[dict[str, Any]]] = {}
    lock = threading.Lock()

    def one(module: str) -> None:
        records = run_module(
            python, root, module, results, timeout, pythonpath, collect_only, beam_site
        )
        passed = sum(r["outcome"] == "passed" for r in records)
        with lock:
            done[module] = records
            print(f"  {module}: {passed}/{len(records)} passed", flush=True)
            if on_done is not None:
                on_done(module, records)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, modules))
    return done


# --- classification -----------------------------------------------------------------------


def _beam_name(name: str) -> str:
    return re.sub(r"^(headrace\.beam|bct)\b", "apache_beam", name)


def is_internal(module: str, attr: str | None = None) -> bool:
    """Is ``module`` (a Beam dotted name) or ``module.attr`` a Beam internal?"""
    module = _beam_name(module)
    if attr is not None and (attr.startswith("_") or attr in INTERNAL_ATTRS):
        return True
    if any(module == m or module.startswith(m + ".") for m in INTERNAL_MODULES):
        return True
    return any(part.startswith("_") for part in module.split(".")[1:])


_NO_MODULE = re.compile(r"No module named '([\w.]+)'")
_CANNOT_IMPORT = re.compile(r"cannot import name '(\w+)' from '([\w.]+)'")
_MODULE_ATTR = re.compile(r"module '([\w.]+)' has no attribute '(\w+)'")
_OBJ_ATTR = re.compile(
    r"'([\w.]+)' object has no attribute '(\w+)'|type object '([\w.]+)' has no attribute '(\w+)'"
)


_IN_BEAM = "/site-packages/apache_beam/"


def _import_cause(text: str) -> tuple[str, str] | None:
    """(class, cause) when ``text`` reports a missing module or a name missing in an import."""
    m = _NO_MODULE.search(text)
    if m:
        name = m.group(1)
        cls = "internal" if is_internal(name) else "missing_api"
        return cls, f"no module {_beam_name(name)}"
    m = _CANNOT_IMPORT.search(text)
    if m:
        name, module = m.group(1), m.group(2)
        cls = "internal" if is_internal(module, name) else "missing_api"
        return cls, f"cannot import {_beam_name(module)}.{name}"
    return None


def _attr_cause(text: str, *, in_test: bool) -> tuple[str, str] | None:
    """(class, cause) when ``text`` reports a missing attribute the test itself asked for."""
    m = _MODULE_ATTR.search(text)
    if m:
        module, name = m.group(1), m.group(2)
        if is_internal(module, name):
            return "internal", f"no attribute {_beam_name(module)}.{name}"
        if in_test:
            return "missing_api", f"no attribute {_beam_name(module)}.{name}"
    m = _OBJ_ATTR.search(text)
    if m:
        owner, name = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        if name.startswith("_") or name in INTERNAL_ATTRS:
            return "internal", f"no attribute {owner}.{name}"
        if in_test:
            return "missing_api", f"no attribute {owner}.{name}"
    return None


def classify(rec: dict[str, Any]) -> tuple[str, str]:
    """(class, cause) of one failed headrace test record."""
    msg = rec.get("msg", "")
    exc = rec.get("exc", "")
    frames = rec.get("frames") or []
    if any(_IN_BEAM in f[0] for f in frames[-3:]) or (
        rec["outcome"] == "collect_error" and _IN_BEAM in msg
    ):
        return "internal", "fails inside Beam's own internal modules"
    if rec["outcome"] == "collect_error":
        found = _import_cause(msg) or _attr_cause(msg, in_test=True)
        if found:
            return found
        last = [ln for ln in msg.splitlines() if ln.startswith("E ")]
        return "crash", "collection: " + (last[-1][2:].strip()[:120] if last else "error")
    if "Timeout" in msg[:40] or (exc == "Failed" and "Timeout" in msg):
        return "crash", "timeout"
    if exc in ("ModuleNotFoundError", "ImportError"):
        return _import_cause(msg) or ("missing_api", f"{exc}: {msg[:100]}")
    if exc == "AttributeError":
        frames = rec.get("frames") or []
        in_test = bool(frames) and "/bct/" in frames[-1][0]
        return _attr_cause(msg, in_test=in_test) or ("crash", f"AttributeError: {msg[:120]}")
    if exc in ("AssertionError", "BeamAssertException") or "AssertionError" in exc:
        return "wrong_result", f"{exc}: {_first_line(msg)[:120]}"
    chain = rec.get("chain") or []
    if any(c[0] in ("AssertionError", "BeamAssertException") for c in chain):
        return "wrong_result", f"{exc} from assertion: {_first_line(msg)[:100]}"
    return "crash", f"{exc}: {_first_line(msg)[:120]}"


def _import_failed(records: list[dict[str, Any]]) -> bool:
    """A reference result that is only a collection error or only skips (a harness problem,
    e.g. before IT_OPTIONS: redo it)."""
    return all(r["outcome"] in ("collect_error", "skipped") for r in records)


def _first_line(msg: str) -> str:
    lines = [ln for ln in msg.strip().splitlines() if ln.strip()]
    return lines[0] if lines else ""


def _test_key(rec: dict[str, Any]) -> str:
    """The test's identity, the same in both runs (bct paths, parametrized ids kept)."""
    return rec["id"]


def summarize(
    beam: dict[str, list[dict[str, Any]]] | None,
    head: dict[str, list[dict[str, Any]]],
    modules: list[str],
) -> dict[str, Any]:
    tests: list[dict[str, Any]] = []
    for module in modules:
        head_recs = head.get(module, [])
        collect_err = next(
            (r for r in head_recs if r["outcome"] == "collect_error" and "msg" in r), None
        )
        head_by_id: dict[str, dict[str, Any]] = {}
        for r in head_recs:
            if r["outcome"] != "collect_error":
                # a failure in setup/teardown overrides a passed call
                if r["id"] not in head_by_id or r["outcome"] == "failed":
                    head_by_id[r["id"]] = r
        if beam is not None:
            beam_by_id: dict[str, dict[str, Any]] = {}
            for r in beam.get(module, []):
                if r["outcome"] != "collect_error":
                    if r["id"] not in beam_by_id or r["outcome"] == "failed":
                        beam_by_id[r["id"]] = r
            ids = list(beam_by_id)
        else:
            beam_by_id = {}
            ids = list(head_by_id)
        for test_id in ids:
            entry: dict[str, Any] = {"id": test_id, "module": module}
            b = beam_by_id.get(test_id)
            entry["beam"] = b["outcome"] if b else None
            h = head_by_id.get(test_id)
            if h is None and collect_err is not None:
                h = collect_err
            if h is None:
                h = {"outcome": "missing", "msg": "not collected on headrace"}
            entry["headrace"] = h["outcome"]
            if beam is not None and entry["beam"] not in ("passed", "collected"):
                entry["class"] = "not_passing_on_beam"
            elif h["outcome"] == "passed":
                entry["class"] = "passed"
            elif h["outcome"] == "skipped":
                entry["class"] = "crash"
                entry["cause"] = "skipped on headrace"
            elif h["outcome"] == "missing":
                entry["class"] = "crash"
                entry["cause"] = "not collected on headrace"
            else:
                entry["class"], entry["cause"] = classify(h)
                entry["error"] = (h.get("exc", "") + ": " + h.get("msg", ""))[:400]
            tests.append(entry)
    counts = collections.Counter(t["class"] for t in tests)
    applicable = [t for t in tests if t["class"] not in ("not_passing_on_beam", "internal")]
    passed = sum(t["class"] == "passed" for t in applicable)
    causes = collections.Counter(
        t["cause"] for t in applicable if t["class"] not in ("passed",) and "cause" in t
    )
    per_module = {}
    for module in modules:
        mod_app = [t for t in applicable if t["module"] == module]
        per_module[module] = {
            "applicable": len(mod_app),
            "passed": sum(t["class"] == "passed" for t in mod_app),
        }
    return {
        "beam_version": BEAM_VERSION,
        "reference": "apache-beam run" if beam is not None else "none (--no-beam)",
        "assumed_passing_on_beam": sum(t["beam"] == "collected" for t in tests),
        "total": len(tests),
        "not_passing_on_beam": counts.get("not_passing_on_beam", 0),
        "internal": counts.get("internal", 0),
        "applicable": len(applicable),
        "passed": passed,
        "pass_rate": round(passed / len(applicable), 4) if applicable else 0.0,
        "failures": {k: counts.get(k, 0) for k in ("missing_api", "wrong_result", "crash")},
        "top_causes": causes.most_common(40),
        "modules": per_module,
        "tests": tests,
    }


def print_summary(s: dict[str, Any], top: int) -> None:
    print()
    print(f"Beam {s['beam_version']} conformance (reference: {s['reference']})")
    print(f"  tests collected on Beam:      {s['total']}")
    print(f"  not passing on Beam:          {s['not_passing_on_beam']}")
    if s["assumed_passing_on_beam"]:
        print(f"  (only collected on Beam, assumed passing: {s['assumed_passing_on_beam']})")
    print(f"  failing on a Beam internal:   {s['internal']}")
    print(f"  applicable:                   {s['applicable']}")
    print(f"  passing on headrace:          {s['passed']}  ({100 * s['pass_rate']:.1f}%)")
    for k, v in s["failures"].items():
        print(f"  failing, {k + ':':<22}{v}")
    print("\nper module (passed/applicable):")
    for module, m in s["modules"].items():
        if m["applicable"]:
            print(f"  {m['passed']:>4}/{m['applicable']:<4} {module}")
    print(f"\ntop {top} causes of failure:")
    for cause, n in s["top_causes"][:top]:
        print(f"  {n:>4}  {cause}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write every test's result here")
    parser.add_argument("--only", action="append", default=[], help="modules containing this")
    parser.add_argument("--jobs", type=int, default=1, help="modules run at once (default 1)")
    parser.add_argument("--timeout", type=int, default=60, help="per-test timeout, seconds")
    parser.add_argument("--no-beam", action="store_true", help="skip the reference run")
    parser.add_argument("--refresh-beam", action="store_true", help="redo the reference run")
    parser.add_argument(
        "--reference",
        choices=("run", "collect"),
        default="run",
        help="for modules without cached Beam results: run them on Beam (default), or only "
        "collect their tests there and count every one as passing on Beam (fast, rougher)",
    )
    parser.add_argument("--work", default="run", help="name of this run's work folder in the cache")
    parser.add_argument(
        "--headrace-src",
        type=Path,
        help="import headrace from this src folder (e.g. an exported older commit)",
    )
    parser.add_argument(
        "--rescore",
        action="store_true",
        help="do not run headrace: classify the results of this --work folder's last run again "
        "(against the reference results cached now)",
    )
    parser.add_argument("--python", type=Path, default=REPO / ".venv" / "bin" / "python")
    parser.add_argument("--top", type=int, default=25, help="causes listed")
    args = parser.parse_args(argv)

    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    wheel = ensure_wheel(cache)
    testdeps = ensure_test_deps(cache)
    modules = [m for m in MODULES if not args.only or any(o in m for o in args.only)]

    beam: dict[str, list[dict[str, Any]]] | None = None
    if not args.no_beam:
        ref = cache / "beam-results.json"
        cached: dict[str, Any] = json.loads(ref.read_text()) if ref.exists() else {}
        todo = [
            m for m in modules if args.refresh_beam or m not in cached or _import_failed(cached[m])
        ]
        work = cache / f"work-{args.work}"
        if args.rescore:
            todo = [m for m in modules if m not in cached]
            if todo:
                raise SystemExit(f"--rescore: no reference results yet for {todo}")
        if todo:
            python = ensure_beam_venv(cache, wheel)
            tree, res = work / "beam-tree", work / "beam-results"
            extract(wheel, tree, rewrite=False)
            if args.reference == "run":
                print(f"reference run on Apache Beam ({len(todo)} modules) ...", flush=True)

                def save(module: str, records: list[dict[str, Any]]) -> None:
                    cached[module] = records
                    latest = json.loads(ref.read_text()) if ref.exists() else {}
                    latest[module] = records
                    ref.write_text(json.dumps(latest))

                run_all(python, tree, res, args.timeout, [], args.jobs, todo, save)
            else:
                print(f"collecting {len(todo)} modules on Apache Beam ...", flush=True)
                cached.update(run_all(python, tree, res, 120, [], 2, todo, collect_only=True))
        beam = {m: cached[m] for m in modules}

    work = cache / f"work-{args.work}"
    if args.rescore:
        head = _load_results(work / "headrace-results", modules)
    else:
        extract(wheel, work / "headrace-tree", rewrite=True)
        print(f"running {len(modules)} modules on headrace ...", flush=True)
        extra_path = [args.headrace_src.resolve()] if args.headrace_src else []
        head = run_all(
            args.python,
            work / "headrace-tree",
            work / "headrace-results",
            args.timeout,
            [*extra_path, testdeps],
            args.jobs,
            modules,
            beam_site=_beam_site_packages(cache),
        )
    summary = summarize(beam, head, modules)
    print_summary(summary, args.top)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
        print(f"\nper-test results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
