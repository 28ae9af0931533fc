"""Secrets: values a pipeline needs (keys, tokens) that must not travel in pickled code.

Beam's ``apache_beam.utils.secret`` (also ``beam.Secret``): a :class:`Secret` fetches its bytes
on demand through ``get_secret_bytes``; ``get_bytes(cacheSecret=True)`` keeps them in memory,
and a cached value is dropped when the object is pickled. :class:`RawSecret` wraps a value
given directly. The Google Cloud secret kinds are known by name so that specs parse, but
headrace does not talk to Google Cloud: fetching one refuses with an error saying so.
"""

from __future__ import annotations

import abc
import ast
import json
import logging
import warnings
from typing import Any

__all__ = ["GcpHsmGeneratedSecret", "GcpSecret", "RawSecret", "Secret"]

_LOG = logging.getLogger(__name__)


class Secret(abc.ABC):
    """A secret whose bytes a subclass fetches in :meth:`get_secret_bytes`.

    >>> class Fixed(Secret):
    ...     def get_secret_bytes(self):
    ...         return b"s3cr3t"
    >>> Fixed().get_str()
    's3cr3t'
    """

    def __init__(self) -> None:
        self._cached_secret_bytes: bytes | None = None

    def get_str(self, cacheSecret: bool = False) -> str:
        return self.get_bytes(cacheSecret=cacheSecret).decode("utf-8")

    def get_bytes(self, cacheSecret: bool = False) -> bytes:
        cached = getattr(self, "_cached_secret_bytes", None)
        if cacheSecret and cached is not None:
            return cached
        value = self.get_secret_bytes()
        if cacheSecret:
            self._cached_secret_bytes = value
        return value

    @abc.abstractmethod
    def get_secret_bytes(self) -> bytes:
        """The secret, fetched from wherever it lives."""

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cached_secret_bytes"] = None  # never ship a fetched secret with the code
        return state

    @staticmethod
    def generate_secret_bytes() -> bytes:
        """A new random key in Fernet's format (needs the ``cryptography`` package)."""
        try:
            from cryptography.fernet import Fernet
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "Secret.generate_secret_bytes() needs the 'cryptography' package: "
                "pip install cryptography"
            ) from e
        return Fernet.generate_key()

    @classmethod
    def parse_secret_option(cls, secret: str) -> Secret:
        """``'type:GcpSecret;version_name:...'`` into a secret of that type."""
        params = {}
        for part in secret.split(";"):
            pieces = part.split(":")
            if len(pieces) == 2:
                params[pieces[0]] = pieces[1]
        if "type" not in params:
            raise ValueError("Secret string must contain a valid type parameter")
        kind = params.pop("type").lower()
        manager = _MANAGER_OF_TYPE.get(kind)
        if manager is None:
            raise ValueError(
                f"Invalid secret type {kind}, currently only GcpSecret and "
                "GcpHsmGeneratedSecret are supported"
            )
        return cls.from_json(json.dumps(params), manager)

    @classmethod
    def from_json(cls, spec: str, secret_manager: str | None = None) -> Secret:
        """A secret from a spec: JSON (or a Python dict literal) for a named manager, else the
        spec itself as a :class:`RawSecret`."""
        if not isinstance(spec, str):
            raise TypeError(f"Secret 'spec' must be a string, got {type(spec).__name__}")
        as_dict = _spec_dict(spec)
        manager = (secret_manager or "").strip()
        if manager:
            target = _CLASS_OF_MANAGER.get(manager.lower())
            if target is None:
                raise ValueError(
                    f"Unsupported secret manager: '{manager}'. Currently supported options: "
                    "'GoogleCloudSecretManager', 'GoogleCloudHsmGeneratedSecretManager'."
                )
            if as_dict is not None:
                return target.from_dict(as_dict)
            return target(spec)
        if as_dict is not None:
            message = (
                "The 'spec' parameter appears to be a JSON specification, but "
                "'secret_manager' is not set. Defaulting to Raw."
            )
            _LOG.warning(message)
            warnings.warn(message, UserWarning, stacklevel=2)
        return RawSecret(spec)


def _spec_dict(spec: str) -> dict[str, Any] | None:
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(spec)
        except Exception:
            continue
        return value if isinstance(value, dict) else None
    return None


class RawSecret(Secret):
    """A secret given directly (str or bytes).

    >>> RawSecret("abc").get_bytes()
    b'abc'
    """

    def __init__(self, secret: str | bytes) -> None:
        super().__init__()
        self._secret = secret.encode("utf-8") if isinstance(secret, str) else secret

    def get_secret_bytes(self) -> bytes:
        return self._secret

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RawSecret) and self._secret == other._secret

    def __hash__(self) -> int:
        return hash(self._secret)


def _no_gcp(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what}: headrace does not access Google Cloud Secret Manager or Cloud KMS; fetch "
        "the secret yourself and pass a RawSecret, or subclass Secret with your own "
        "get_secret_bytes()"
    )


class GcpSecret(Secret):
    """Beam's Google Cloud Secret Manager secret, by version name (fetching it is refused)."""

    def __init__(self, version_name: str) -> None:
        super().__init__()
        self._version_name = version_name

    @classmethod
    def from_dict(cls, spec: dict[str, str]) -> GcpSecret:
        unknown = set(spec) - {"version_name", "name", "project", "version"}
        if unknown:
            raise ValueError(f"Invalid secret parameter {', '.join(sorted(unknown))}")
        if "version_name" in spec:
            return cls(spec["version_name"])
        name, project = spec.get("name"), spec.get("project")
        if not name:
            raise ValueError("Secret name must be specified in secret spec.")
        if not project:
            raise ValueError(f"secret {name!r}: give 'project' in the spec")
        return cls(f"projects/{project}/secrets/{name}/versions/{spec.get('version', 'latest')}")

    def get_secret_bytes(self) -> bytes:
        raise _no_gcp(f"GcpSecret({self._version_name!r})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GcpSecret) and self._version_name == other._version_name

    def __hash__(self) -> int:
        return hash(self._version_name)


class GcpHsmGeneratedSecret(Secret):
    """Beam's HSM-generated Google Cloud secret (fetching or generating it is refused)."""

    def __init__(
        self, project_id: str, location_id: str, key_ring_id: str, key_id: str, job_name: str
    ) -> None:
        super().__init__()
        self._project_id = project_id
        self._location_id = location_id
        self._key_ring_id = key_ring_id
        self._key_id = key_id
        self._job_name = job_name

    @classmethod
    def from_dict(cls, spec: dict[str, str]) -> GcpHsmGeneratedSecret:
        names = ("project_id", "location_id", "key_ring_id", "key_id", "job_name")
        missing = [n for n in names if n not in spec]
        unknown = set(spec) - set(names)
        if missing or unknown:
            raise ValueError(
                f"GcpHsmGeneratedSecret spec: missing {missing}, unknown {sorted(unknown)}"
            )
        return cls(*(spec[n] for n in names))

    def get_secret_bytes(self) -> bytes:
        raise _no_gcp(f"GcpHsmGeneratedSecret(job_name={self._job_name!r})")

    def _key(self) -> tuple[str, ...]:
        return (
            self._project_id,
            self._location_id,
            self._key_ring_id,
            self._key_id,
            self._job_name,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GcpHsmGeneratedSecret) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


_MANAGER_OF_TYPE = {
    "gcpsecret": "GoogleCloudSecretManager",
    "gcphsmgeneratedsecret": "GoogleCloudHsmGeneratedSecretManager",
}
_CLASS_OF_MANAGER: dict[str, Any] = {
    "googlecloudsecretmanager": GcpSecret,
    "googlecloudhsmgeneratedsecretmanager": GcpHsmGeneratedSecret,
}
