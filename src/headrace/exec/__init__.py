"""Operator executors shared by every runner.

Fused ParDo/WindowInto/Flatten operators (:mod:`~headrace.exec.operators`), grouping and combining
tables with spilling (:mod:`~headrace.exec.grouping`), materialised collections
(:mod:`~headrace.exec.collect`), side-input views, deterministic key hashing and error
annotation. Runners assemble them into stage tasks (:mod:`headrace.runners.tasks`).
"""
