"""The e-commerce example: five stages from raw orders to predicted returns.

A shop keeps two raw repos, written by :func:`~headrace.examples.ecommerce.data.generate`:
``orders`` (``/<region>/<YYYY-MM-DD>.csv``, one file per region and local day) and
``customers`` (``/<region>.csv``). Five stages, each a Python function over one datum, turn them
into a model of which orders come back and a score for every order::

    orders ──┐
             ├─ join on region ─▶ enrich ─▶ mask ─▶ standardise ─┬────────────▶ predict
    customers┘                                                   └─▶ train ─────┘

=============  ========================================================  ==========================
stage          input (datums)                                            writes
=============  ========================================================  ==========================
enrich         join ``orders /(*)/*.csv`` (outer) with                   ``/<region>/<day>.csv``
               ``customers /(*).csv`` on ``$1``: one orders file each
mask           ``enrich /*/*``: one file each                            same paths
standardise    ``mask /*/*``: one file each                              same paths
train          ``standardise /``: every file in one datum                ``/model.json``
predict        cross ``standardise /*/*`` with ``train /``               ``/<region>/<day>.csv``
=============  ========================================================  ==========================

* ``enrich`` (:func:`~headrace.examples.ecommerce.cleaning.enrich`) adds the customer's columns
  to each order; an order whose customer is unknown keeps empty ones and is counted on stdout.
* ``mask`` (:func:`~headrace.examples.ecommerce.cleaning.mask`) removes personal data: initials
  for the name, a hashed ``customer_key`` for the email, the age at the order for the birth
  date; no phone.
* ``standardise`` (:func:`~headrace.examples.ecommerce.cleaning.standardise`) gives age bands,
  canonical colour names, UTC order times and ``amount``.
* ``train`` (:func:`~headrace.examples.ecommerce.learning.train`) fits a logistic regression of
  ``returned`` with numpy, deterministically.
* ``predict`` (:func:`~headrace.examples.ecommerce.learning.predict`) scores each file's orders
  (the training orders themselves, in this small example).

The stage specs are the YAML files in :data:`SPECS_DIR`, one per stage, named ``<stage>.yaml``
and listed in DAG order by :data:`STAGES`. Incrementally, a new day of one region
(:func:`~headrace.examples.ecommerce.data.generate_next_day`) is one new datum for ``enrich``,
``mask`` and ``standardise``; ``train`` sees its one datum change and retrains, and the new
model makes every ``predict`` datum run again (were the model byte-identical, only the new
day's would). A change to a region's customers file reruns that region's ``enrich`` datums
only, and downstream only the files whose content changed.

>>> [path.name for path in spec_paths()]
['enrich.yaml', 'mask.yaml', 'standardise.yaml', 'train.yaml', 'predict.yaml']
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SPECS_DIR", "STAGES", "spec_paths"]

SPECS_DIR = Path(__file__).resolve().parent / "specs"
"""The folder of the example's stage specs."""

STAGES = ("enrich", "mask", "standardise", "train", "predict")
"""The stages in DAG order; each one's output repo has its name."""


def spec_paths() -> list[Path]:
    """The stage spec files in DAG order (an order in which they can be created)."""
    return [SPECS_DIR / f"{stage}.yaml" for stage in STAGES]
