"""The model stages of the e-commerce example: ``train`` and ``predict`` (numpy only).

The model is a logistic regression of ``returned`` (0/1) on one-hot encodings of ``age_band``,
``colour`` and ``region`` (the values seen in training, sorted) and on ``amount`` scaled to mean
0 and standard deviation 1 over the training rows. :func:`fit_logistic` trains it by full-batch
gradient descent from zero weights with a fixed step, a fixed number of iterations and a small
L2 penalty: no randomness, so the same rows give the same ``model.json``, byte for byte.

``model.json`` holds ``features`` (names such as ``"colour=navy"`` and ``"amount"``),
``weights`` (one per feature), ``bias``, ``amount_mean`` and ``amount_std`` (the scaling),
``threshold`` (0.5), ``rows`` (training rows), ``accuracy`` on the training rows and
``majority_baseline`` (the accuracy of always predicting the commoner class), plus the training
settings. Weights are rounded to 6 decimals and the accuracy is that of the rounded model, so
``predict`` reproduces it exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headrace.examples.ecommerce.tables import (
    DataError,
    csv_files,
    input_dir,
    read_csv,
    require_columns,
    write_csv,
)

__all__ = [
    "CATEGORICAL",
    "PREDICTION_FIELDS",
    "features",
    "fit_logistic",
    "load_model",
    "predict",
    "probabilities",
    "train",
]

CATEGORICAL = ("age_band", "colour", "region")
"""The columns one-hot encoded as features, in feature order (``amount`` comes last)."""

PREDICTION_FIELDS = ("order_id", "customer_key", "region", "day", "return_probability", "predicted")
"""Columns written by :func:`predict`."""

ITERATIONS = 3000
LEARNING_RATE = 0.5
L2 = 1e-3
THRESHOLD = 0.5
_NEEDED = (*CATEGORICAL, "amount", "order_id", "customer_key")


def features(rows: Sequence[Mapping[str, str]], model: Mapping[str, Any]) -> np.ndarray:
    """The feature matrix of ``rows`` (one row each) for ``model``'s feature names and scaling.

    A category the model did not see in training sets no feature.

    >>> model = {"features": ["colour=navy", "colour=red", "amount"],
    ...          "amount_mean": 10.0, "amount_std": 5.0}
    >>> rows = [{"colour": "red", "amount": "20"}, {"colour": "pink", "amount": "5"}]
    >>> features(rows, model).tolist()
    [[0.0, 1.0, 2.0], [0.0, 0.0, -1.0]]
    """
    names: list[str] = list(model["features"])
    column = {name: i for i, name in enumerate(names)}
    out = np.zeros((len(rows), len(names)))
    categorical = [field for field in CATEGORICAL if any(n.startswith(f"{field}=") for n in names)]
    for i, row in enumerate(rows):
        for field in categorical:
            j = column.get(f"{field}={row[field]}")
            if j is not None:
                out[i, j] = 1.0
    if "amount" in column:
        amounts = np.array([float(row["amount"]) for row in rows], dtype=float)
        out[:, column["amount"]] = (amounts - model["amount_mean"]) / model["amount_std"]
    return out


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    iterations: int = ITERATIONS,
    learning_rate: float = LEARNING_RATE,
    l2: float = L2,
) -> tuple[np.ndarray, float]:
    """Weights and bias of a logistic regression of ``y`` (0/1) on ``x``, by gradient descent.

    Starts from zero and takes ``iterations`` full-batch steps on the mean log loss plus
    ``l2 / 2 * |weights|^2`` (the bias is not penalised): deterministic.

    >>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> weights, bias = fit_logistic(x, np.array([0, 0, 1, 1]))
    >>> bool(weights[0] > 0), bool(bias < 0)
    (True, True)
    >>> (probabilities(x, weights, bias) > 0.5).astype(int).tolist()
    [0, 0, 1, 1]
    """
    n, k = x.shape
    weights = np.zeros(k)
    bias = 0.0
    if n == 0:
        return weights, bias
    y = y.astype(float)
    for _ in range(iterations):
        error = probabilities(x, weights, bias) - y
        weights -= learning_rate * (x.T @ error / n + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return weights, bias


def probabilities(x: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """The logistic function of ``x @ weights + bias``, row by row.

    >>> probabilities(np.array([[0.0], [2.0]]), np.array([1.0]), 0.0).round(4).tolist()
    [0.5, 0.8808]
    """
    z = np.clip(x @ weights + bias, -35.0, 35.0)
    return 1.0 / (1.0 + np.exp(-z))


def _read_rows(root: Path, stage: str) -> list[tuple[str, list[dict[str, str]], list[int]]]:
    files = []
    for rel, path in csv_files(root):
        table = read_csv(path)
        require_columns(
            table, (*_NEEDED, "returned"), stage, f"/{rel}", "the output of standardise"
        )
        files.append((rel, table.rows, table.lines))
    return files


def train(inputs: Mapping[str, Path], output: Path) -> None:
    """Train the return model on every file of the one input: the ``train`` stage.

    Writes ``/model.json`` (see the module docstring). Every row needs ``returned`` 0 or 1.

    >>> import tempfile
    >>> from headrace.examples.ecommerce.tables import write_csv
    >>> rows = [{"order_id": str(i), "customer_key": "", "age_band": "18-24", "region": "eu",
    ...          "colour": "red" if i % 2 else "navy", "amount": str(i), "returned": str(i % 2)}
    ...         for i in range(10)]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_csv(Path(tmp, "in/eu/d.csv"), list(rows[0]), rows)
    ...     train({"standardise": Path(tmp, "in")}, Path(tmp, "out"))
    ...     model = json.loads(Path(tmp, "out/model.json").read_text())
    train: 10 rows, accuracy 1.0000 (always predicting the commoner class: 0.5000)
    >>> model["features"]
    ['age_band=18-24', 'colour=navy', 'colour=red', 'region=eu', 'amount']
    >>> model["rows"], model["accuracy"], model["majority_baseline"]
    (10, 1.0, 0.5)
    """
    rows: list[dict[str, str]] = []
    targets: list[int] = []
    amounts: list[float] = []
    for rel, file_rows, lines in _read_rows(input_dir(inputs, None, "train"), "train"):
        for row, line in zip(file_rows, lines):
            if row["returned"] not in ("0", "1"):
                raise DataError(
                    "train",
                    f"/{rel}",
                    f"order {row['order_id']}: returned must be 0 or 1, got {row['returned']!r}",
                    line,
                )
            try:
                amounts.append(float(row["amount"]))
            except ValueError:
                raise DataError(
                    "train",
                    f"/{rel}",
                    f"order {row['order_id']}: amount {row['amount']!r} is not a number",
                    line,
                ) from None
            rows.append(row)
            targets.append(int(row["returned"]))
    if not rows:
        raise ValueError(
            "train: no rows to learn from in its input; run standardise on some orders first"
        )
    names = [
        f"{field}={value}" for field in CATEGORICAL for value in sorted({r[field] for r in rows})
    ]
    std = float(np.std(amounts))
    model: dict[str, Any] = {
        "features": [*names, "amount"],
        "amount_mean": round(float(np.mean(amounts)), 6),
        "amount_std": round(std, 6) if std > 0 else 1.0,
    }
    x = features(rows, model)
    y = np.array(targets)
    weights, bias = fit_logistic(x, y)
    model["weights"] = [round(float(w), 6) for w in weights]
    model["bias"] = round(bias, 6)
    predicted = probabilities(x, np.array(model["weights"]), model["bias"]) >= THRESHOLD
    share_returned = float(y.mean())
    model.update(
        {
            "target": "returned",
            "threshold": THRESHOLD,
            "rows": len(rows),
            "accuracy": round(float((predicted == (y == 1)).mean()), 4),
            "majority_baseline": round(max(share_returned, 1.0 - share_returned), 4),
            "training": {"iterations": ITERATIONS, "learning_rate": LEARNING_RATE, "l2": L2},
        }
    )
    output.mkdir(parents=True, exist_ok=True)
    text = json.dumps(model, indent=2, sort_keys=True, allow_nan=False)
    (output / "model.json").write_text(text + "\n", encoding="utf-8")
    print(
        f"train: {len(rows)} rows, accuracy {model['accuracy']:.4f} "
        f"(always predicting the commoner class: {model['majority_baseline']:.4f})"
    )


def load_model(path: Path) -> dict[str, Any]:
    """Read a ``model.json`` written by :func:`train`, checking that it fits together.

    >>> load_model(Path("/nowhere/model.json"))
    Traceback (most recent call last):
    ...
    FileNotFoundError: no model at /nowhere/model.json; run the train stage first
    """
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}; run the train stage first")
    model: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    missing = [
        key
        for key in ("features", "weights", "bias", "amount_mean", "amount_std", "threshold")
        if key not in model
    ]
    if missing or len(model["features"]) != len(model["weights"]):
        raise ValueError(
            f"{path} is not a model written by train (missing {', '.join(missing) or 'nothing'}, "
            f"{len(model.get('features', ()))} features for {len(model.get('weights', ()))} "
            "weights); run the train stage again"
        )
    if not math.isfinite(model["amount_std"]) or model["amount_std"] <= 0:
        raise ValueError(f"{path}: amount_std must be a positive number; run train again")
    return model


def predict(inputs: Mapping[str, Path], output: Path) -> None:
    """Score orders with the model: the ``predict`` stage.

    Inputs ``standardise`` (files ``/<region>/<day>.csv``) and ``train`` (``/model.json``).
    Writes :data:`PREDICTION_FIELDS` at each file's path: ``day`` is the file name without
    ``.csv``, ``return_probability`` has 4 decimals and ``predicted`` is 1 when it is at least
    the model's threshold.

    >>> import tempfile
    >>> from headrace.examples.ecommerce.tables import write_csv
    >>> model = {"features": ["colour=red", "amount"], "weights": [2.0, 0.0], "bias": -1.0,
    ...          "amount_mean": 0.0, "amount_std": 1.0, "threshold": 0.5}
    >>> rows = [{"order_id": "o1", "customer_key": "k1", "region": "eu", "age_band": "65+",
    ...          "colour": "red", "amount": "9.50"}]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_csv(Path(tmp, "rows/eu/2024-03-25.csv"), list(rows[0]), rows)
    ...     _ = Path(tmp, "model").mkdir()
    ...     _ = Path(tmp, "model/model.json").write_text(json.dumps(model))
    ...     predict({"standardise": Path(tmp, "rows"), "train": Path(tmp, "model")},
    ...             Path(tmp, "out"))
    ...     print(Path(tmp, "out/eu/2024-03-25.csv").read_text(), end="")
    order_id,customer_key,region,day,return_probability,predicted
    o1,k1,eu,2024-03-25,0.7311,1
    """
    model = load_model(input_dir(inputs, "train", "predict") / "model.json")
    weights = np.array(model["weights"], dtype=float)
    bias = float(model["bias"])
    threshold = float(model["threshold"])
    for rel, path in csv_files(input_dir(inputs, "standardise", "predict")):
        table = read_csv(path)
        require_columns(table, _NEEDED, "predict", f"/{rel}", "the output of standardise")
        try:
            scores = probabilities(features(table.rows, model), weights, bias)
        except ValueError as err:
            raise DataError("predict", f"/{rel}", f"an amount is not a number ({err})") from None
        day = Path(rel).stem
        write_csv(
            output / rel,
            PREDICTION_FIELDS,
            (
                {
                    "order_id": row["order_id"],
                    "customer_key": row["customer_key"],
                    "region": row["region"],
                    "day": day,
                    "return_probability": f"{score:.4f}",
                    "predicted": int(score >= threshold),
                }
                for row, score in zip(table.rows, scores.tolist())
            ),
        )
