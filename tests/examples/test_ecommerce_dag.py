"""The e-commerce example end to end: five stages run by the daemon, incremental updates,
egress to SQLite and provenance from a prediction back to the raw commits."""

from __future__ import annotations

import csv
import io
import sqlite3

from headrace.examples.ecommerce import STAGES, spec_paths
from headrace.examples.ecommerce.data import generate, generate_next_day
from headrace.stages.catalog import SUCCESS, Catalog
from headrace.stages.daemon import Daemon, wait_for_arrival
from headrace.stages.spec import load_spec
from headrace.store.store import Store


def _rows(store, ref):
    out = []
    for f in store.walk_files(ref):
        out.extend(csv.DictReader(io.StringIO(store.get_file(f"{ref}:{f.path}").decode())))
    return out


def test_the_shop_dag_runs_incrementally_and_egresses(tmp_path):
    raw = tmp_path / "raw"
    generate(raw, days=3, orders_per_day=12)
    store = Store.open(tmp_path / "store")
    catalog = Catalog(store)
    for repo in ("orders", "customers"):
        store.create_repo(repo)
    orders_commit = store.put_dir("orders@master", raw / "orders")
    customers_commit = store.put_dir("customers@master", raw / "customers")
    db = tmp_path / "shop.db"
    for path in spec_paths():
        spec = load_spec(path).to_dict()
        spec["parallelism"] = 2
        if "egress" in spec:
            spec["egress"] = {"sql": f"sqlite:///{db}", "table": "predictions"}
        catalog.put_stage(load_spec(spec), str(path))

    daemon = Daemon(catalog, log=lambda _: None)
    jobs = daemon.step()
    assert [(j.stage, j.state) for j in jobs] == [(s, SUCCESS) for s in STAGES], [
        j.reason for j in jobs
    ]
    n_orders = 3 * 3 * 12
    predictions = _rows(store, "predict@master")
    assert len(predictions) == n_orders
    masked = _rows(store, "mask@master")
    assert masked and not {"email", "phone", "name", "birth_date"} & set(masked[0])
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from predictions").fetchone()[0] == n_orders
    arrived = wait_for_arrival(catalog, "predict@master", timeout=1)
    assert arrived == store.inspect_commit("predict@master").id
    # provenance: from the predictions back to both raw commits, one trace for the chain
    origins = {c.id for c in store.provenance("predict@master")}
    assert {orders_commit.id, customers_commit.id} <= origins
    assert {j.trace for j in jobs} == {customers_commit.id}  # the newest raw commit

    # one more day of one region: one new datum upstream of train
    new_file = generate_next_day(raw, "eu", orders_per_day=12)
    new = store.put_file(f"orders@master:/eu/{new_file.name}", new_file)
    jobs = {j.stage: j for j in daemon.step()}
    assert all(j.state == SUCCESS for j in jobs.values())
    assert {j.trace for j in jobs.values()} == {new.id}
    for stage in ("enrich", "mask", "standardise"):
        assert (jobs[stage].processed, jobs[stage].skipped) == (1, 9), stage
    assert jobs["train"].processed == 1
    assert jobs["predict"].total == 10
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from predictions").fetchone()[0] == n_orders + 12
    assert daemon.step() == []
