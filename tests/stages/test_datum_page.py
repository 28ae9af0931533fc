"""A page of a job's datums for the job service and the UI: failed first, then the slowest,
sorted and cut in the database (Pachyderm's console lists failed datums first)."""

from __future__ import annotations

from headrace.stages.catalog import DatumRecord


def test_datum_page_orders_failed_first_then_slowest_and_counts(kit):
    rows = [
        DatumRecord("job1", f"d{i:03d}", state, f"h{i}", seconds=seconds, log="x" * 10)
        for i, (state, seconds) in enumerate(
            [("success", 1.0), ("failed", 0.1), ("skipped", 0.0), ("success", 5.0),
             ("failed", 2.0), ("recovered", 3.0)]
        )
    ] + [DatumRecord("job2", "d999", "failed", "h")]  # fmt: skip
    with kit.catalog.transaction() as conn:
        kit.catalog.insert_datums(conn, rows)

    page, total = kit.catalog.datum_page("job1", offset=0, limit=3)
    assert total == 6
    assert [(r.datum_id, r.state) for r in page] == [
        ("d004", "failed"), ("d001", "failed"), ("d003", "success"),
    ]  # fmt: skip
    assert all(r.log == "" for r in page)  # logs are not read for a listing
    rest, _ = kit.catalog.datum_page("job1", offset=3, limit=10)
    assert [r.datum_id for r in rest] == ["d005", "d000", "d002"]
    only, n = kit.catalog.datum_page("job1", states=("success",))
    assert n == 2 and [r.datum_id for r in only] == ["d003", "d000"]
