"""``utils.windowed_value.WindowedBatch`` / ``HomogeneousWindowedBatch`` (Beam:
apache_beam/utils/windowed_value.py; windowed_value_test): a batch is a windowed value whose
value is the batch; grouping windowed values makes one batch per (timestamp, windows, pane)."""

from __future__ import annotations

import copy
import pickle

from headrace.beam.utils import windowed_value as wv


def _pane(first: bool = True) -> wv.PaneInfo:
    return wv.PaneInfo(first, True, wv.PaneInfoTiming.ON_TIME, 0, 0)


def test_batches_group_values_by_timestamp_windows_and_pane_in_first_seen_order() -> None:
    values = [wv.WindowedValue(f"v{i}", t, (), _pane()) for i, t in enumerate([3, 6, 3, 9, 6])]
    values.append(wv.WindowedValue("other-pane", 3, (), _pane(first=False)))
    batches = list(wv.WindowedBatch.from_windowed_values(values, produce_fn=list))
    assert batches == [
        wv.HomogeneousWindowedBatch.of(["v0", "v2"], 3, (), _pane()),
        wv.HomogeneousWindowedBatch.of(["v1", "v4"], 6, (), _pane()),
        wv.HomogeneousWindowedBatch.of(["v3"], 9, (), _pane()),
        wv.HomogeneousWindowedBatch.of(["other-pane"], 3, (), _pane(first=False)),
    ]


def test_batch_explodes_back_and_behaves_as_a_value() -> None:
    wb = wv.HomogeneousWindowedBatch.of(["a", "b"], 3, (), _pane())
    assert list(wb.as_windowed_values(iter)) == [
        wv.WindowedValue("a", 3, (), _pane()),
        wv.WindowedValue("b", 3, (), _pane()),
    ]
    assert wb.with_values(["c"]) == wv.HomogeneousWindowedBatch.of(["c"], 3, (), _pane())
    hashable = wv.HomogeneousWindowedBatch.of(("a", "b"), 3, (), _pane())  # as Beam: hash(value)
    assert {hashable: 1}.get(copy.copy(hashable)) == 1
    assert pickle.loads(pickle.dumps(wb)) == wb
    assert wb != wv.HomogeneousWindowedBatch.of(["a", "b"], 3, (), wv.PANE_INFO_UNKNOWN)
    assert wb != object()
