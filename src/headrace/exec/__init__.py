"""Operator executors shared by every runner: what happens to elements, defined once.

A runner decides where work runs; everything about what the work *means* lives here, so two
runners cannot disagree on semantics. Modules (one concern each):

``operators``   fused operators: ParDo (fast paths for Map/FlatMap/Filter), WindowInto, Flatten;
                the per-bundle life of a DoFn (setup, start_bundle, process, finish_bundle,
                teardown) and windowed-value handling.
``grouping``    the two sides of a shuffle: :class:`~headrace.exec.grouping.GroupTable` (group or
                lifted combine within a memory budget, spilling hash-partitioned runs) and
                :func:`~headrace.exec.grouping.read_partition` (merging one partition's runs).
``runs``        the runs a grouping writer leaves for a reader (in memory, or blocks in a blob).
``blocks``      how a shuffle or collection block becomes bytes (memo-free pickle) and back.
``collect``     materialised PCollections (side inputs, sink records, inputs of cut stages).
``spill``       :class:`~headrace.exec.spill.SpillSpace`: where shuffle runs and collections are
                written and found again by key (local files today).
``keys``        deterministic key hashing, the same in every process and machine.
``sideinputs``  side-input views (singleton, iterable, list, dict, multimap) per window.
``panes``       streaming groupings: buffering, triggering, lateness and garbage collection per
                key and window (the pane state machine).
``triggers``    trigger state machines (Beam's trigger semantics) used by ``panes``.
``userstate``   user state and timers of stateful DoFns, keyed by (key, window).
``stateful``    the executor of a stateful DoFn in a streaming run (state, timers, merging).
``watermarks``  watermark propagation of a streaming run: per-step input and output watermarks,
                holds, per-bundle updates (Beam's rules, for every runner's streaming driver).
``windowing``   window merging and output-timestamp rules shared by the executors.
``protocols``   what executors call on user objects (windows, window functions, CombineFns,
                sources, readers, finalizers), as ``typing.Protocol`` classes.
``errors``      errors in user code annotated with the transform label and the element.
``gcpolicy``    the garbage-collector policy while stages run; worker processes that keep big dead
                tables until they exit instead of freeing them object by object.

Runners assemble these into stage tasks (:mod:`headrace.runners.tasks`).
"""
