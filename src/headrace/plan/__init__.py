"""Validation and optimisation: from a pipeline graph to an execution plan of fused stages.

``stages``  :func:`~headrace.plan.stages.build_plan`: fusion into stages, stage roots (source,
            impulse, grouping, collection), shuffle boundaries, combiner lifting, materialised
            collections, finalizers (sink commits), the stage order; ``ExecutionPlan.describe``
            is what ``headrace plan`` prints.
``udf``     reading small user functions to find cheaper equivalent plans (a ``Map`` that pairs
            with a constant before ``CombinePerKey(sum)`` becomes a count).
"""

from headrace.plan.stages import ExecutionPlan, Grouping, Stage, StageRoot, build_plan

__all__ = ["ExecutionPlan", "Grouping", "Stage", "StageRoot", "build_plan"]
