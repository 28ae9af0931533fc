"""Runners: turning an execution plan into running work.

Runner-neutral modules, shared by every runner:

``tasks``        one task of one fused stage: build the operators from ``exec``, feed the root,
                 close the outputs (:class:`~headrace.runners.tasks.TaskInput` in,
                 :class:`~headrace.runners.tasks.TaskResult` out; both pickle).
``coordinator``  :class:`~headrace.runners.coordinator.BatchCoordinator`: which tasks run when,
                 where their outputs are (:class:`~headrace.runners.coordinator.RunOutputs`), how
                 failures and cancellation end a run, sink commit/abort.
``executors``    the :class:`~headrace.runners.executors.Executor` protocol (where tasks run) and
                 the inline reference executor.
``events``       run events delivered to registered listeners (progress, metrics, logs).

Runners:

``direct``       the default runner on this machine: batch through the coordinator (inline, or a
                 local process pool), streaming through one in-process event loop.

A new runner (Ray) adds an executor, and a streaming driver if it runs unbounded pipelines;
``docs/architecture.md`` says how.
"""
