"""Commit-on-success sinks: how output becomes visible only when a whole run succeeds.

A sink writes its data to temporary locations inside the pipeline (ordinary ParDos), sending a small
record per temporary file downstream into :class:`FinalizeOnSuccess`. The runner collects every
record reaching a ``FinalizeOnSuccess`` node and, only after *every* stage of the run succeeded,
calls :meth:`Finalizer.commit` once in the coordinating process (renaming temp files into place).
If the run fails or is cancelled it calls :meth:`Finalizer.abort` instead, with whatever records
arrived (possibly none), which must remove every temporary file. So a failed run leaves no partial
output visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from headrace.model.transforms.ptransform import PTransform

if TYPE_CHECKING:
    from headrace.model.pvalue import PCollection, PDone

__all__ = ["FinalizeOnSuccess", "Finalizer"]


class Finalizer:
    """Makes a sink's temporary output visible (``commit``) or removes it (``abort``).

    Must be picklable; both methods run in the coordinating process, exactly once per run.
    """

    def commit(self, results: list[Any]) -> None:
        """Publish the output described by ``results`` (all records, in no particular order)."""
        raise NotImplementedError

    def abort(self, results: list[Any]) -> None:
        """Remove temporary output; ``results`` holds only the records that arrived."""
        raise NotImplementedError


class FinalizeOnSuccess(PTransform):
    """Terminal transform: hand all input records to ``finalizer`` once the run has succeeded."""

    def __init__(self, finalizer: Finalizer, label: str | None = None) -> None:
        super().__init__(label)
        if not isinstance(finalizer, Finalizer):
            raise TypeError(f"FinalizeOnSuccess needs a Finalizer, got {type(finalizer).__name__}")
        self.finalizer = finalizer

    def expand(self, pcoll: PCollection) -> PDone:
        return pcoll.pipeline._apply_primitive(
            self, "Finalize", [pcoll], payload=self.finalizer, outputs=None
        )
