"""The job service: a REST API (``/api/v1``), Prometheus metrics and a web UI over the store,
the stage catalogue and the history of pipeline runs, served by ``headrace serve``.

Modules, one concern each:

``config``      where the store is and who may call (:class:`ServiceConfig`), bind checks
``wire``        run events as plain JSON (what a pipeline process posts to the service)
``runs``        the history of pipeline runs in the store's database (tables and queries)
``client``      a run-event listener that streams a process's runs to a service and obeys
                cancel requests (imports no web framework)
``views``       the JSON shapes of records (repos, commits, stage jobs, datums, runs, steps)
``submit``      running a submitted pipeline graph in the service (validation, cancel)
``errors``      what the store and catalogue raise, as HTTP statuses
``repos_api``   repos, branches, commits, files, diff, provenance
``stages_api``  stages, stage jobs, datums and their logs
``runs_api``    pipeline runs (event intake, list, inspect, logs, cancel) and the combined
                job list
``metrics``     ``GET /metrics`` in Prometheus text format
``app``         the FastAPI application: routers, authentication, the web UI's assets
``server``      running it: uvicorn and the stage daemon beside it
``openapi``     the OpenAPI document (``docs/openapi.json`` is its output)
``static/``     the web UI: ``index.html``, ``app.js``, ``style.css`` (package data, no CDN)

The web framework (FastAPI, uvicorn) is the optional extra ``headrace[service]``; only ``app``,
``errors``, the ``*_api`` modules, ``metrics``, ``openapi`` and ``server`` import it.
"""

from __future__ import annotations
