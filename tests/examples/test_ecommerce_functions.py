"""The e-commerce example's stage functions, called directly on datum folders built by hand."""

from __future__ import annotations

import csv
import hashlib
import importlib
import json
import pickle
import shutil
from pathlib import Path

import cloudpickle
import pytest

from headrace.examples.ecommerce import STAGES, spec_paths
from headrace.examples.ecommerce.cleaning import (
    AGE_BANDS,
    COLOURS,
    CUSTOMER_FIELDS,
    ENRICHED_FIELDS,
    MASKED_FIELDS,
    ORDER_FIELDS,
    STANDARD_FIELDS,
    canonical_colour,
    enrich,
    mask,
    standardise,
    to_utc,
)
from headrace.examples.ecommerce.data import generate, generate_next_day
from headrace.examples.ecommerce.learning import PREDICTION_FIELDS, predict, train
from headrace.examples.ecommerce.tables import DataError, read_csv, write_csv
from headrace.stages.spec import CrossInput, JoinInput, PfsInput, iter_inputs, load_spec

REGIONS = ("eu", "us", "apac")


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def header_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[0].split(",")


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def make_datum(folder: Path, files: dict[str, Path]) -> Path:
    """A datum's input folder: each ``repo path -> source file`` copied to its repo path."""
    for rel, source in files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    generate(root)
    return root


@pytest.fixture(scope="module")
def dag(raw: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every stage run once over the whole of its input (one big datum each)."""
    out = tmp_path_factory.mktemp("dag")
    repos = {"orders": raw / "orders", "customers": raw / "customers"}
    enrich({"orders": repos["orders"], "customers": repos["customers"]}, out / "enrich")
    mask({"enrich": out / "enrich"}, out / "mask")
    standardise({"mask": out / "mask"}, out / "standardise")
    train({"standardise": out / "standardise"}, out / "train")
    predict({"standardise": out / "standardise", "train": out / "train"}, out / "predict")
    return {**repos, **{stage: out / stage for stage in STAGES}}


def enriched(order: dict[str, str], customer: dict[str, str] | None, region: str) -> dict:
    base = dict.fromkeys(ENRICHED_FIELDS, "")
    if customer is not None:
        base.update(customer)
    base.update(order)
    base["region"] = region
    return base


# ---------------------------------------------------------------------------------------------
# data


def test_generate_writes_the_raw_layouts_deterministically(raw: Path, tmp_path: Path) -> None:
    paths = generate(tmp_path)
    rels = sorted(p.relative_to(tmp_path).as_posix() for p in paths)
    days = [f"2024-03-{d}" for d in range(25, 32)]
    expected = [f"customers/{r}.csv" for r in REGIONS]
    expected += [f"orders/{r}/{d}.csv" for r in REGIONS for d in days]
    assert rels == sorted(expected)
    assert files_under(tmp_path) == files_under(raw)  # same arguments, same bytes
    other = tmp_path / "other"
    generate(other, seed=1)
    assert files_under(other) != files_under(raw)
    for region in REGIONS:
        assert header_of(raw / "customers" / f"{region}.csv") == list(CUSTOMER_FIELDS)
        for day in days:
            path = raw / "orders" / region / f"{day}.csv"
            assert header_of(path) == list(ORDER_FIELDS)
            rows = rows_of(path)
            assert len(rows) == 40
            assert all(r["ordered_at"].startswith(day) for r in rows)
            assert len({r["order_id"] for r in rows}) == 40


def test_generated_data_is_messy_in_the_documented_ways(raw: Path) -> None:
    orders = [r for p in sorted((raw / "orders").rglob("*.csv")) for r in rows_of(p)]
    spellings = {r["colour"] for r in orders}
    assert {"Navy Blue", "navy", "NAVY", "#000080"} <= spellings
    assert {"grey", "gray"} <= spellings
    assert {canonical_colour(s) for s in spellings} <= set(COLOURS)
    assert "other" in {canonical_colour(s) for s in spellings}
    known = {r["customer_id"] for p in (raw / "customers").glob("*.csv") for r in rows_of(p)}
    missing = [r for r in orders if r["customer_id"] not in known]
    assert 0 < len(missing) < 0.1 * len(orders)
    assert {r["returned"] for r in orders} == {"0", "1"}
    customers = [r for p in (raw / "customers").glob("*.csv") for r in rows_of(p)]
    assert {r["timezone"] for r in customers} >= {"Europe/Paris", "America/New_York"}
    assert any(r["email"] != r["email"].lower() for r in customers)


def test_generate_next_day_is_the_day_generate_would_write(tmp_path: Path) -> None:
    generate(tmp_path / "short", days=3, orders_per_day=12)
    generate(tmp_path / "long", days=4, orders_per_day=12)
    path = generate_next_day(tmp_path / "short", "us", orders_per_day=12)
    assert path == tmp_path / "short/orders/us/2024-03-28.csv"
    assert path.read_bytes() == (tmp_path / "long/orders/us/2024-03-28.csv").read_bytes()
    assert not (tmp_path / "short/orders/eu/2024-03-28.csv").exists()
    nxt = generate_next_day(tmp_path / "short", "us", orders_per_day=12)
    assert nxt.name == "2024-03-29.csv"


def test_generate_next_day_errors_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"generate\(\) first"):
        generate_next_day(tmp_path, "eu")
    generate(tmp_path, days=1, regions=("eu",), orders_per_day=2)
    (tmp_path / "orders/eu/notes.csv").write_text("x\n")
    with pytest.raises(ValueError, match=r"notes.csv: an orders file must be named"):
        generate_next_day(tmp_path, "eu")
    with pytest.raises(ValueError, match="cannot be a folder name"):
        generate(tmp_path, regions=("eu/west",))


# ---------------------------------------------------------------------------------------------
# enrich


def test_enrich_one_datum_per_orders_file_joins_its_region(
    raw: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rel = "eu/2024-03-27.csv"
    inputs = {
        "orders": make_datum(tmp_path / "in/orders", {rel: raw / "orders" / rel}),
        "customers": make_datum(tmp_path / "in/customers", {"eu.csv": raw / "customers/eu.csv"}),
    }
    enrich(inputs, tmp_path / "out")
    assert files_under(tmp_path / "out").keys() == {rel}
    orders = rows_of(raw / "orders" / rel)
    customers = {r["customer_id"]: r for r in rows_of(raw / "customers/eu.csv")}
    out = rows_of(tmp_path / "out" / rel)
    assert header_of(tmp_path / "out" / rel) == list(ENRICHED_FIELDS)
    assert len(out) == len(orders)
    assert out == [enriched(o, customers.get(o["customer_id"]), "eu") for o in orders]
    missing = sum(o["customer_id"] not in customers for o in orders)
    assert capsys.readouterr().out == (
        f"enrich: /{rel}: {len(orders)} orders, {missing} without a known customer\n"
    )


def test_enrich_keeps_orders_of_unknown_customers_with_empty_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order = dict.fromkeys(ORDER_FIELDS, "x")
    write_csv(
        tmp_path / "orders/eu/2024-01-05.csv",
        ORDER_FIELDS,
        [
            {**order, "order_id": "o1", "customer_id": "c1"},
            {**order, "order_id": "o2", "customer_id": "c2"},
            {**order, "order_id": "o3", "customer_id": "c3"},
        ],
    )
    customer = {f: f"{f}-1" for f in CUSTOMER_FIELDS} | {"customer_id": "c1"}
    write_csv(tmp_path / "customers/eu.csv", CUSTOMER_FIELDS, [customer])
    # c2 exists, but in another region: regions do not share customers
    write_csv(tmp_path / "customers/us.csv", CUSTOMER_FIELDS, [{**customer, "customer_id": "c2"}])
    enrich({"orders": tmp_path / "orders", "customers": tmp_path / "customers"}, tmp_path / "out")
    out = rows_of(tmp_path / "out/eu/2024-01-05.csv")
    assert [r["order_id"] for r in out] == ["o1", "o2", "o3"]
    assert out[0]["name"] == "name-1" and out[0]["timezone"] == "timezone-1"
    for row in out[1:]:
        assert all(row[f] == "" for f in CUSTOMER_FIELDS[1:])
        assert row["product"] == "x" and row["region"] == "eu"
    assert "3 orders, 2 without a known customer" in capsys.readouterr().out
    # An outer-join datum without a customers file: every order kept, none with a customer.
    enrich({"orders": tmp_path / "orders"}, tmp_path / "out2")
    assert [r["name"] for r in rows_of(tmp_path / "out2/eu/2024-01-05.csv")] == ["", "", ""]
    assert "3 orders, 3 without a known customer" in capsys.readouterr().out


def test_enrich_errors_name_the_file(tmp_path: Path) -> None:
    write_csv(tmp_path / "orders/eu/d.csv", ORDER_FIELDS, [])
    rows = [dict.fromkeys(CUSTOMER_FIELDS, "") | {"customer_id": c} for c in ("a", "b", "a")]
    write_csv(tmp_path / "customers/eu.csv", CUSTOMER_FIELDS, rows)
    inputs = {"orders": tmp_path / "orders", "customers": tmp_path / "customers"}
    with pytest.raises(DataError, match=r"^enrich: /eu.csv line 4: customer 'a' appears twice"):
        enrich(inputs, tmp_path / "out")
    write_csv(tmp_path / "customers/eu.csv", ["customer_id", "name"], [])
    with pytest.raises(DataError, match=r"/eu.csv: missing columns email, phone"):
        enrich(inputs, tmp_path / "out")
    with pytest.raises(LookupError, match="enrich needs an input named 'orders'"):
        enrich({"customers": tmp_path / "customers"}, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# mask


def test_mask_leaves_no_personal_data(raw: Path, dag: dict[str, Path]) -> None:
    customers = [r for p in sorted((raw / "customers").glob("*.csv")) for r in rows_of(p)]
    assert files_under(dag["mask"]).keys() == files_under(dag["enrich"]).keys()
    text = "\n".join(p.read_text() for p in sorted(dag["mask"].rglob("*.csv")))
    for customer in customers:
        for field in ("name", "email", "phone", "birth_date"):
            assert customer[field] not in text, (field, customer[field])
        assert customer["email"].lower() not in text
    for path in dag["mask"].rglob("*.csv"):
        assert header_of(path) == list(MASKED_FIELDS)


def test_mask_keys_ages_and_initials(dag: dict[str, Path]) -> None:
    for path in sorted(dag["enrich"].rglob("*.csv")):
        rel = path.relative_to(dag["enrich"])
        before = rows_of(path)
        after = rows_of(dag["mask"] / rel)
        assert len(after) == len(before)
        for b, a in zip(before, after):
            assert a["order_id"] == b["order_id"] and a["city"] == b["city"]
            email = b["email"].strip().lower()
            assert a["customer_key"] == (
                hashlib.sha256(email.encode()).hexdigest()[:16] if email else ""
            )
            assert (a["age"] == "") == (b["birth_date"] == "")
            assert a["initials"] == "".join(w[0].upper() + "." for w in b["name"].split())
    # The same customer has the same key in every file.
    key_of: dict[str, str] = {}
    for path in sorted(dag["enrich"].rglob("*.csv")):
        for b, a in zip(rows_of(path), rows_of(dag["mask"] / path.relative_to(dag["enrich"]))):
            if b["email"]:
                assert key_of.setdefault(b["email"], a["customer_key"]) == a["customer_key"]
    assert len(set(key_of.values())) == len(key_of)


def test_mask_age_is_taken_on_the_order_date(tmp_path: Path) -> None:
    base = dict.fromkeys(ENRICHED_FIELDS, "")
    rows = [
        base | {"order_id": "a", "birth_date": "1990-03-26", "ordered_at": "2024-03-25T23:59:59"},
        base | {"order_id": "b", "birth_date": "1990-03-26", "ordered_at": "2024-03-26T00:00:00"},
        base | {"order_id": "c", "birth_date": "2004-02-29", "ordered_at": "2022-02-28T12:00:00"},
        base | {"order_id": "d", "birth_date": "2004-02-29", "ordered_at": "2022-03-01T12:00:00"},
        base | {"order_id": "e", "birth_date": "", "ordered_at": "2022-03-01T12:00:00"},
    ]
    write_csv(tmp_path / "in/eu/d.csv", ENRICHED_FIELDS, rows)
    mask({"enrich": tmp_path / "in"}, tmp_path / "out")
    assert [r["age"] for r in rows_of(tmp_path / "out/eu/d.csv")] == ["33", "34", "17", "18", ""]
    rows[2]["birth_date"] = "29/02/2004"
    write_csv(tmp_path / "in/eu/d.csv", ENRICHED_FIELDS, rows)
    with pytest.raises(
        DataError, match=r"^mask: /eu/d.csv line 4: order c: cannot read birth_date"
    ):
        mask({"enrich": tmp_path / "in"}, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# standardise


UTC_CASES = [
    # (local time, timezone, UTC)
    ("2024-03-31T01:30:00", "Europe/Paris", "2024-03-31T00:30:00Z"),  # CET, before the change
    ("2024-03-31T03:30:00", "Europe/Paris", "2024-03-31T01:30:00Z"),  # CEST, after it
    ("2024-03-31T02:30:00", "Europe/Paris", "2024-03-31T01:30:00Z"),  # skipped: offset before
    ("2024-10-27T02:30:00", "Europe/Paris", "2024-10-27T00:30:00Z"),  # twice: the earlier one
    ("2024-03-31T00:30:00", "Europe/London", "2024-03-31T00:30:00Z"),  # GMT
    ("2024-03-31T02:30:00", "Europe/London", "2024-03-31T01:30:00Z"),  # BST
    ("2024-03-09T21:00:00", "America/New_York", "2024-03-10T02:00:00Z"),  # EST, next UTC day
    ("2024-03-10T03:30:00", "America/New_York", "2024-03-10T07:30:00Z"),  # EDT
    ("2024-04-07T02:30:00", "Australia/Sydney", "2024-04-06T15:30:00Z"),  # AEDT, first of two
    ("2024-04-07T03:30:00", "Australia/Sydney", "2024-04-06T17:30:00Z"),  # AEST
    ("2024-03-27T05:00:00", "Asia/Kolkata", "2024-03-26T23:30:00Z"),  # +05:30
    ("2024-01-01T00:00:00", "Asia/Tokyo", "2023-12-31T15:00:00Z"),
    ("2024-01-01T00:00:00+02:00", "Asia/Tokyo", "2023-12-31T22:00:00Z"),  # own offset wins
]


@pytest.mark.parametrize(("local", "zone", "utc"), UTC_CASES)
def test_to_utc(local: str, zone: str, utc: str) -> None:
    assert to_utc(local, zone) == utc


def test_standardise_hand_picked_rows(tmp_path: Path) -> None:
    base = dict.fromkeys(MASKED_FIELDS, "") | {"price": "10.00", "quantity": "1", "returned": "0"}
    cases = [
        # age, colour, local time, timezone, price, quantity -> age band, colour, UTC, amount
        (("17", "Navy Blue", "2024-03-31T01:30:00", "Europe/Paris", "19.99", "3"),
         ("0-17", "navy", "2024-03-31T00:30:00Z", "59.97")),
        (("18", "NAVY", "2024-03-31T03:30:00", "Europe/Paris", "0.10", "3"),
         ("18-24", "navy", "2024-03-31T01:30:00Z", "0.30")),
        (("24", "#000080", "2024-03-10T03:30:00", "America/New_York", "5", "2"),
         ("18-24", "navy", "2024-03-10T07:30:00Z", "10.00")),
        (("25", "gray", "2024-03-26T09:00:00", "Asia/Tokyo", "1.005", "1"),
         ("25-34", "grey", "2024-03-26T00:00:00Z", "1.01")),
        (("44", "Crimson", "2024-03-26T09:00:00", "Asia/Tokyo", "3", "1"),
         ("35-44", "red", "2024-03-26T00:00:00Z", "3.00")),
        (("64", "off-white", "2024-03-26T09:00:00", "Asia/Tokyo", "3", "1"),
         ("55-64", "white", "2024-03-26T00:00:00Z", "3.00")),
        (("65", "Tie-dye", "2024-03-26T09:00:00", "Asia/Tokyo", "3", "1"),
         ("65+", "other", "2024-03-26T00:00:00Z", "3.00")),
        (("", "", "2024-03-26T09:00:00", "", "3", "1"),  # unknown customer
         ("unknown", "other", "", "3.00")),
    ]  # fmt: skip
    rows = [
        base
        | dict(zip(("age", "colour", "ordered_at", "timezone", "price", "quantity"), given))
        | {"order_id": f"o{i}"}
        for i, (given, _) in enumerate(cases)
    ]
    write_csv(tmp_path / "in/us/2024-03-26.csv", MASKED_FIELDS, rows)
    standardise({"mask": tmp_path / "in"}, tmp_path / "out")
    path = tmp_path / "out/us/2024-03-26.csv"
    assert header_of(path) == list(STANDARD_FIELDS)
    got = [(r["age_band"], r["colour"], r["ordered_at"], r["amount"]) for r in rows_of(path)]
    assert got == [want for _, want in cases]


def test_standardise_whole_dataset(dag: dict[str, Path]) -> None:
    for path in sorted(dag["mask"].rglob("*.csv")):
        after = rows_of(dag["standardise"] / path.relative_to(dag["mask"]))
        before = rows_of(path)
        assert [a["order_id"] for a in after] == [b["order_id"] for b in before]
        for b, a in zip(before, after):
            assert a["age_band"] in AGE_BANDS and a["colour"] in COLOURS
            assert (a["ordered_at"] == "") == (b["timezone"] == "")
            if a["ordered_at"]:
                assert a["ordered_at"].endswith("Z") and len(a["ordered_at"]) == 20
            assert float(a["amount"]) == pytest.approx(float(b["price"]) * int(b["quantity"]))


def test_standardise_bad_timezone_names_file_and_row(tmp_path: Path) -> None:
    base = dict.fromkeys(MASKED_FIELDS, "") | {"price": "1", "quantity": "1"}
    rows = [
        base | {"order_id": "ok", "ordered_at": "2024-03-25T10:00:00", "timezone": "Europe/Paris"},
        base
        | {"order_id": "EU-7", "ordered_at": "2024-03-25T10:00:00", "timezone": "Mars/Olympus"},
    ]
    write_csv(tmp_path / "in/eu/2024-03-25.csv", MASKED_FIELDS, rows)
    with pytest.raises(DataError) as info:
        standardise({"mask": tmp_path / "in"}, tmp_path / "out")
    message = str(info.value)
    assert message.startswith("standardise: /eu/2024-03-25.csv line 3: order EU-7: ")
    assert "unknown timezone 'Mars/Olympus'" in message and "IANA" in message
    assert (info.value.file, info.value.line) == ("/eu/2024-03-25.csv", 3)
    rows[1] |= {"timezone": "Europe/Paris", "quantity": "two"}
    write_csv(tmp_path / "in/eu/2024-03-25.csv", MASKED_FIELDS, rows)
    with pytest.raises(DataError, match=r"line 3: order EU-7: quantity 'two' is not a whole"):
        standardise({"mask": tmp_path / "in"}, tmp_path / "out")
    rows[1] |= {"quantity": "1", "age": "thirty"}
    write_csv(tmp_path / "in/eu/2024-03-25.csv", MASKED_FIELDS, rows)
    with pytest.raises(DataError, match=r"line 3: order EU-7: age 'thirty' is not a whole number"):
        standardise({"mask": tmp_path / "in"}, tmp_path / "out")
    rows[1] |= {"age": "", "ordered_at": "25/03/2024 10:00"}
    write_csv(tmp_path / "in/eu/2024-03-25.csv", MASKED_FIELDS, rows)
    with pytest.raises(DataError, match=r"line 3: order EU-7: cannot read the time"):
        standardise({"mask": tmp_path / "in"}, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# train and predict


def test_train_beats_the_majority_class_and_learns_the_planted_effects(
    dag: dict[str, Path],
) -> None:
    model = json.loads((dag["train"] / "model.json").read_text())
    total = sum(len(rows_of(p)) for p in dag["standardise"].rglob("*.csv"))
    assert model["rows"] == total == 3 * 7 * 40
    assert model["accuracy"] > model["majority_baseline"] + 0.03
    returned = [r["returned"] for p in dag["standardise"].rglob("*.csv") for r in rows_of(p)]
    share = returned.count("1") / len(returned)
    assert model["majority_baseline"] == round(max(share, 1 - share), 4)
    weight = dict(zip(model["features"], model["weights"]))
    assert len(weight) == len(model["features"]) and model["features"][-1] == "amount"
    assert weight["colour=other"] > weight["colour=white"]
    assert weight["age_band=18-24"] > weight["age_band=65+"]
    assert weight["region=us"] > weight["region=apac"]
    assert weight["amount"] > 0


def test_train_is_deterministic(dag: dict[str, Path], tmp_path: Path) -> None:
    train({"standardise": dag["standardise"]}, tmp_path / "a")
    train({"x": dag["standardise"]}, tmp_path / "b")  # the single input may have any name
    first = (tmp_path / "a/model.json").read_bytes()
    assert first == (tmp_path / "b/model.json").read_bytes()
    assert first == (dag["train"] / "model.json").read_bytes()
    assert files_under(tmp_path / "a").keys() == {"model.json"}


def test_train_errors(tmp_path: Path) -> None:
    base = dict.fromkeys(STANDARD_FIELDS, "") | {"amount": "1", "returned": "1"}
    write_csv(tmp_path / "in/eu/d.csv", STANDARD_FIELDS, [base, base | {"returned": "yes"}])
    with pytest.raises(DataError, match=r"^train: /eu/d.csv line 3: .*returned must be 0 or 1"):
        train({"standardise": tmp_path / "in"}, tmp_path / "out")
    with pytest.raises(ValueError, match="no rows to learn from"):
        train({"standardise": tmp_path / "empty"}, tmp_path / "out")


def test_predict_scores_every_row(dag: dict[str, Path]) -> None:
    model = json.loads((dag["train"] / "model.json").read_text())
    assert files_under(dag["predict"]).keys() == files_under(dag["standardise"]).keys()
    hits = total = 0
    for path in sorted(dag["standardise"].rglob("*.csv")):
        rel = path.relative_to(dag["standardise"])
        rows = rows_of(path)
        scored = rows_of(dag["predict"] / rel)
        assert header_of(dag["predict"] / rel) == list(PREDICTION_FIELDS)
        assert len(scored) == len(rows)
        for row, out in zip(rows, scored):
            assert (out["order_id"], out["customer_key"]) == (row["order_id"], row["customer_key"])
            assert (out["region"], out["day"]) == (rel.parts[0], rel.stem)
            probability = out["return_probability"]
            assert len(probability.split(".")[1]) == 4 and 0.0 <= float(probability) <= 1.0
            assert out["predicted"] in ("0", "1")
            if abs(float(probability) - 0.5) > 1e-4:
                assert out["predicted"] == str(int(float(probability) > 0.5))
            hits += out["predicted"] == row["returned"]
            total += 1
    assert round(hits / total, 4) == model["accuracy"]  # predict agrees with train


def test_predict_needs_a_model(dag: dict[str, Path], tmp_path: Path) -> None:
    inputs = {"standardise": dag["standardise"], "train": tmp_path / "nothing"}
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        predict(inputs, tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps({"features": ["a"], "weights": []}))
    with pytest.raises(ValueError, match="not a model written by train"):
        predict({"standardise": dag["standardise"], "train": bad}, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# The DAG datum by datum, as the specs split it


def test_datum_by_datum_gives_the_same_repos_as_whole_runs(
    raw: Path, dag: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    n = 0

    def datum(files: dict[str, dict[str, Path]]) -> dict[str, Path]:
        nonlocal n
        n += 1
        return {name: make_datum(tmp_path / f"d{n}" / name, f) for name, f in files.items()}

    # enrich: join orders /(*)/*.csv with customers /(*).csv on $1: one orders file each
    for path in sorted((raw / "orders").rglob("*.csv")):
        rel = path.relative_to(raw / "orders").as_posix()
        region = rel.split("/")[0]
        customers = {f"{region}.csv": raw / "customers" / f"{region}.csv"}
        inputs = datum({"orders": {rel: path}, "customers": customers})
        enrich(inputs, out / "enrich")
    # mask and standardise: /*/* one file each
    for source, stage, fn in (("enrich", "mask", mask), ("mask", "standardise", standardise)):
        for path in sorted((out / source).rglob("*.csv")):
            rel = path.relative_to(out / source).as_posix()
            fn(datum({source: {rel: path}}), out / stage)
    # train: / the whole repo
    std = out / "standardise"
    files = {p.relative_to(std).as_posix(): p for p in std.rglob("*.csv")}
    train(datum({"standardise": files}), out / "train")
    # predict: cross standardise /*/* with train /
    for rel, path in sorted(files.items()):
        inputs = datum(
            {"standardise": {rel: path}, "train": {"model.json": out / "train/model.json"}}
        )
        predict(inputs, out / "predict")
    capsys.readouterr()
    for stage in STAGES:
        assert files_under(out / stage) == files_under(dag[stage]), stage


# ---------------------------------------------------------------------------------------------
# Specs and what travels to workers


def test_specs_load_and_point_at_the_stage_functions() -> None:
    paths = spec_paths()
    assert [p.stem for p in paths] == list(STAGES)
    made = {"orders", "customers"}
    for path in paths:
        spec = load_spec(path)
        assert spec.name == path.stem and spec.description
        assert spec.transform.kind == "python"
        module, function = spec.transform.entry_point or ("", "")
        assert callable(getattr(importlib.import_module(module), function))
        repos = {node.repo for _, node in iter_inputs(spec.input) if isinstance(node, PfsInput)}
        assert repos <= made, (spec.name, repos - made)  # the DAG order of STAGES holds
        made.add(spec.name)
    enrich_spec, _, _, train_spec, predict_spec = (load_spec(p) for p in paths)
    assert isinstance(enrich_spec.input, JoinInput)
    assert [(i.name, i.glob, i.join_on) for i in enrich_spec.input.inputs] == [
        ("orders", "/(*)/*.csv", "$1"),
        ("customers", "/(*).csv", "$1"),
    ]
    assert train_spec.input == PfsInput("standardise", "/")
    assert isinstance(predict_spec.input, CrossInput)
    assert predict_spec.input_names == ("standardise", "train")


def test_stage_functions_and_errors_pickle() -> None:
    for fn in (enrich, mask, standardise, train, predict, generate, generate_next_day):
        assert pickle.loads(pickle.dumps(fn)) is fn
        assert cloudpickle.loads(cloudpickle.dumps(fn)) is fn
    err = DataError("standardise", "/eu/d.csv", "bad", 3)
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) == "standardise: /eu/d.csv line 3: bad"


def test_read_csv_reports_the_line_of_each_row(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"two\nlines"\n3,4\n')
    table = read_csv(path)
    assert table.rows == [{"a": "1", "b": "two\nlines"}, {"a": "3", "b": "4"}]
    assert table.lines == [3, 4]
