"""Validation and optimisation: from a pipeline graph to an execution plan of fused stages."""

from headrace.plan.stages import ExecutionPlan, Grouping, Stage, StageRoot, build_plan

__all__ = ["ExecutionPlan", "Grouping", "Stage", "StageRoot", "build_plan"]
