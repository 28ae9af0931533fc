"""``import headrace.beam`` stays cheap: the heavy libraries load only when a connector is used.

Each check runs in a fresh interpreter, because this test process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Imported by connectors that need them, never by ``import headrace.beam``.
HEAVY = ("fastavro", "pyarrow", "numpy", "fsspec", "sqlalchemy")


def _run(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stdout (fail with its stderr)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_beam_loads_no_heavy_library() -> None:
    out = _run(
        f"""
        import json, sys
        import headrace.beam
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """
    )
    assert json.loads(out) == [], f"import headrace.beam loaded {out.strip()}"


def test_import_io_package_loads_no_heavy_library() -> None:
    out = _run(
        f"""
        import json, sys
        import headrace.io, headrace.io.streaming, headrace.beam.io
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
        """
    )
    assert json.loads(out) == []


def test_connectors_work_after_a_lazy_import(tmp_path: Path) -> None:
    """Attribute access, ``from ... import`` and a run of Avro and Parquet in a fresh process."""
    out = _run(
        """
        import json, sys
        import headrace.beam as beam
        from headrace.beam.io.avroio import ReadFromAvro
        from headrace.beam.io.parquetio import WriteToParquet
        from headrace.beam.testing.util import assert_that, equal_to

        assert beam.io.ReadFromAvro is ReadFromAvro
        assert beam.io.WriteToParquet is WriteToParquet
        assert beam.io.avroio.WriteToAvro is beam.io.WriteToAvro
        assert "fastavro" not in sys.modules and "pyarrow" not in sys.modules

        folder = sys.argv[1]
        schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
        rows = [{"n": 1}, {"n": 2}]
        with beam.Pipeline() as p:
            made = p | beam.Create(rows)
            _ = made | beam.io.WriteToAvro(folder + "/a", schema, shard_name_template="")
            _ = made | WriteToParquet(folder + "/p", shard_name_template="")
        with beam.Pipeline() as p:
            assert_that(p | "A" >> ReadFromAvro(folder + "/a"), equal_to(rows), label="avro")
            assert_that(
                p | "P" >> beam.io.ReadFromParquet(folder + "/p"), equal_to(rows), label="pq"
            )
        print(json.dumps(["fastavro" in sys.modules, "pyarrow" in sys.modules]))
        """,
        str(tmp_path),
    )
    assert json.loads(out) == [True, True]


def test_transforms_pickled_here_run_in_a_fresh_process(tmp_path: Path) -> None:
    """A worker that unpickles a connector has not imported fastavro or pyarrow yet."""
    import pickle

    import cloudpickle

    from headrace.beam.io import ReadFromAvro, ReadFromParquet, WriteToAvro, WriteToParquet

    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    folder = str(tmp_path)
    writers = [
        WriteToAvro(folder + "/a", schema, shard_name_template=""),
        WriteToParquet(folder + "/p", shard_name_template=""),
    ]
    # validate=False: the files appear only when the fresh process runs the writers.
    readers = [
        ReadFromAvro(folder + "/a", validate=False),
        ReadFromParquet(folder + "/p", validate=False),
    ]
    for dumps, name in ((pickle.dumps, "pickle"), (cloudpickle.dumps, "cloudpickle")):
        (tmp_path / f"{name}.bin").write_bytes(dumps((writers, readers)))
        out = _run(
            """
            import json, pickle, sys
            import headrace.beam as beam
            from headrace.beam.testing.util import assert_that, equal_to

            with open(sys.argv[1], "rb") as f:
                writers, readers = pickle.load(f)
            rows = [{"n": 3}]
            with beam.Pipeline() as p:
                made = p | beam.Create(rows)
                for i, w in enumerate(writers):
                    _ = made | f"W{i}" >> w
            with beam.Pipeline() as p:
                for i, r in enumerate(readers):
                    assert_that(p | f"R{i}" >> r, equal_to(rows), label=f"check{i}")
            print("ok")
            """,
            str(tmp_path / f"{name}.bin"),
        )
        assert out.strip() == "ok"


@pytest.mark.parametrize("package", ["headrace.io", "headrace.io.streaming", "headrace.beam.io"])
def test_every_public_name_resolves(package: str) -> None:
    module = __import__(package, fromlist=["__all__"])
    for name in module.__all__:
        assert getattr(module, name) is not None, f"{package}.{name}"
        assert name in dir(module)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchName'"):
        _ = module.NoSuchName


def test_star_import_gives_every_name() -> None:
    out = _run(
        """
        import json
        import headrace.beam.io
        namespace = {}
        exec("from headrace.beam.io import *", namespace)
        print(json.dumps(sorted(set(headrace.beam.io.__all__) - set(namespace))))
        """
    )
    assert json.loads(out) == []
