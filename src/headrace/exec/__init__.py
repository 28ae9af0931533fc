"""Operator executors shared by every runner.

A runner hands :func:`headrace.exec.stage.run_stage_task` one fused stage of an execution plan and
the input of one task; the executors here process it bundle-at-a-time (lists of elements), write
grouping and materialisation outputs, and return small descriptors of what they wrote.
"""
