"""Runners: turning an execution plan into running work."""
