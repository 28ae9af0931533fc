"""Runnable example pipelines (word count, ...) and the data generators they use."""
