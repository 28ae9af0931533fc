"""Stages: commit-triggered, incremental pipelines over versioned repos (spec, datums, jobs)."""
