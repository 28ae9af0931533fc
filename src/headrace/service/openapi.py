"""The service's OpenAPI document as JSON text; ``python -m headrace.service.openapi`` prints
it (``docs/openapi.json`` is that output, checked by a test)."""

from __future__ import annotations

import json

from headrace.service.app import create_app
from headrace.service.config import ServiceConfig

__all__ = ["openapi_document"]


def openapi_document() -> str:
    """The document, with sorted keys and a final newline (stable for the repository)."""
    app = create_app(ServiceConfig())
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(openapi_document(), end="")
