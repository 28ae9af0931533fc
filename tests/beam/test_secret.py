"""``beam.Secret`` (Beam: apache_beam/utils/secret.py, re-exported by transforms/util.py's
``__all__`` and so public as ``beam.Secret``): fetch on demand, optional in-memory cache that
pickling drops, spec parsing; Google Cloud kinds parse but fetching them is refused loudly."""

from __future__ import annotations

import pickle

import pytest

import headrace.beam as beam
from headrace.beam.utils.secret import GcpSecret, RawSecret


class Counting(beam.Secret):
    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0

    def get_secret_bytes(self) -> bytes:
        self.fetches += 1
        return b"key-%d" % self.fetches


def test_cache_only_when_asked_and_dropped_by_pickling() -> None:
    s = Counting()
    assert s.get_bytes() == b"key-1"
    assert s.get_bytes(cacheSecret=True) == b"key-2"
    assert s.get_str(cacheSecret=True) == "key-2"
    copy = pickle.loads(pickle.dumps(s))
    assert copy._cached_secret_bytes is None
    assert copy.get_bytes(cacheSecret=True) == b"key-3"


def test_abstract_without_get_secret_bytes() -> None:
    with pytest.raises(TypeError):
        beam.Secret()  # type: ignore[abstract]


def test_specs_parse_to_the_named_kind() -> None:
    s = beam.Secret.parse_secret_option("type:GcpSecret;version_name:my/versions/1")
    assert s == GcpSecret("my/versions/1")
    assert beam.Secret.from_json("plain") == RawSecret("plain")
    with pytest.raises(ValueError, match="Invalid secret type"):
        beam.Secret.parse_secret_option("type:Vault;x:y")
    with pytest.raises(ValueError, match="Unsupported secret manager"):
        beam.Secret.from_json("{}", "Vault")


def test_fetching_a_gcp_secret_is_refused_saying_what_to_do() -> None:
    with pytest.raises(NotImplementedError, match="RawSecret"):
        GcpSecret("projects/p/secrets/s/versions/1").get_bytes()
