"""The OpenAPI document kept in the repository (docs/openapi.json) is the one the service
serves; regenerate it with ``python -m headrace.service.openapi > docs/openapi.json``."""

from __future__ import annotations

import json
from pathlib import Path

from headrace.service.openapi import openapi_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_document_is_current():
    current = openapi_document()
    assert DOC.exists(), "docs/openapi.json is missing; generate it (see this module's docstring)"
    assert json.loads(DOC.read_text()) == json.loads(current), (
        "docs/openapi.json is out of date: python -m headrace.service.openapi > docs/openapi.json"
    )


def test_the_cli_does_not_import_the_web_framework():
    """Only ``headrace serve`` loads FastAPI; other commands start without it."""
    import subprocess
    import sys

    code = (
        "import sys, headrace.cli.main; "
        "bad = [m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
