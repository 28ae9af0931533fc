"""Writing the versioned store's repositories: :class:`WriteToRepo`.

``WriteToRepo("repo@branch")`` publishes one commit, and only when the whole run succeeded. Its
states: workers store file contents as objects (a :class:`~headrace.store.content.ContentWriter`
per bundle, flushed at the end of the bundle; contents the store already holds are found with
one query per batch of files and not stored again) and send a small record per file, ``(path,
Content JSON)``, or ``(shard, Content JSON)`` in text mode, to
:class:`~headrace.model.sinks.FinalizeOnSuccess`. After every stage succeeded,
:meth:`_RepoFinalizer.commit` runs once in the coordinating process and records all contents and
files as one commit with :meth:`~headrace.store.store.Store.record_files` (one transaction). On
failure :meth:`_RepoFinalizer.abort` does nothing: the objects already written stay
unreferenced, invisible, until the store's ``gc``.

The DoFns and the finalizer carry the store as a :class:`~headrace.io.repostore.StoreLocation`
and open it where they run; ``headrace.store.content`` and ``headrace.store.objects`` (blake3,
zstandard, fsspec, FastCDC) are imported only when contents are written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from headrace.io.filebasedsink import AssignShardsDoFn, ShardWriter, describe_record
from headrace.io.filesystem import CompressionTypes
from headrace.io.lines import TextSink
from headrace.io.reporead import ReadFromRepo
from headrace.io.repostore import LazyStore, StoreLocation, error_in_context
from headrace.model.sinks import FinalizeOnSuccess, Finalizer
from headrace.model.transforms.core import DoFn, GroupByKey, ParDo, WindowInto
from headrace.model.transforms.ptransform import PTransform
from headrace.model.window import GlobalWindows
from headrace.store.errors import StoreError
from headrace.store.refs import normalize_path, parse_ref

if TYPE_CHECKING:
    from headrace.store.content import Content, ContentWriter
    from headrace.store.store import Store

__all__ = ["WriteToRepo"]


def _store_local_file(store: Store, path: str) -> Content:
    """Store the local file ``path``; return its final Content."""
    writer = store.writer()
    content = writer.add_file(path)
    writer.flush()
    return writer.resolve(content)


class _LocalShard:
    """A text shard written to a local temporary file, then stored as one file's content."""

    def __init__(self, sink: TextSink) -> None:
        fd, self.path = tempfile.mkstemp(prefix="headrace-repo-shard-")
        os.close(fd)
        self.writer: ShardWriter | None = sink.open_writer(self.path)

    def write(self, value: Any) -> None:
        assert self.writer is not None
        self.writer.write(value)

    def store(self, store: Store) -> Content:
        try:
            writer, self.writer = self.writer, None
            if writer is not None:
                writer.close()
            return _store_local_file(store, self.path)
        finally:
            self.discard()

    def discard(self) -> None:
        writer, self.writer = self.writer, None
        with contextlib.suppress(Exception):  # best effort: the original error matters
            if writer is not None:
                writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


class _WriteFilesDoFn(DoFn):
    """Stores ``(path, data)`` elements; emits ``(path, Content JSON)`` at the end of a bundle.

    Elements are stored in batches: the contents the store already knows are looked up with one
    query per batch (not one per file), and known content is not stored again.
    """

    BATCH_FILES = 1024
    BATCH_BYTES = 32 << 20

    def __init__(self, location: StoreLocation, prefix: str, target: str) -> None:
        self.store = LazyStore(location)
        self.prefix = prefix.rstrip("/")
        self.target = target
        self._reset()

    def _reset(self) -> None:
        self._writer: ContentWriter | None = None
        self._known: dict[str, Content] = {}
        self._batch: list[tuple[str, bytes]] = []
        self._batch_bytes = 0
        self._files: list[tuple[str, Content]] = []

    def start_bundle(self) -> None:
        self._reset()

    def _bad(self, element: Any, problem: str) -> ValueError:
        return ValueError(
            f"WriteToRepo to {self.target}: cannot write element {describe_record(element)}: "
            f"{problem}"
        )

    def process(self, element: Any) -> None:
        try:
            path, data = element
        except (TypeError, ValueError):
            raise self._bad(
                element, "give (path, bytes or str) pairs, or use as_text=True to write lines"
            ) from None
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise self._bad(element, f"the data is {type(data).__name__}; give bytes or str")
        if not isinstance(path, str):
            raise self._bad(element, f"the path is {type(path).__name__}; give a str")
        try:
            full = normalize_path(self.prefix + "/" + path.lstrip("/"), allow_root=False)
        except StoreError as e:
            raise self._bad(element, str(e)) from None
        self._batch.append((full, data))
        self._batch_bytes += len(data)
        if len(self._batch) >= self.BATCH_FILES or self._batch_bytes >= self.BATCH_BYTES:
            self._store_batch()

    def _store_batch(self) -> None:
        batch = self._batch
        self._batch, self._batch_bytes = [], 0
        if not batch:
            return
        from headrace.store.content import Content, ContentWriter
        from headrace.store.objects import hash_bytes

        store = self.store.get()
        writer = self._writer
        if writer is None:
            writer = self._writer = ContentWriter(store.objects, lookup=self._known.get)
        digests = {hash_bytes(data) for _, data in batch}
        with store.meta.read() as conn:
            records = store.meta.get_contents(conn, digests)
        self._known.clear()
        self._known.update((h, Content.from_json(r.layout)) for h, r in records.items())
        files = self._files
        for path, data in batch:
            files.append((path, writer.add_bytes(data)))

    def finish_bundle(self) -> Iterator[tuple[str, str]]:
        self._store_batch()
        writer, files = self._writer, self._files
        self._reset()
        if writer is None:
            return
        writer.flush()
        for path, content in files:
            yield (path, writer.resolve(content).to_json())

    def teardown(self) -> None:
        self._reset()
        self.store.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "prefix": self.prefix, "target": self.target}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()


class _WriteTextBundlesDoFn(DoFn):
    """One text shard per bundle; emits ``(None, Content JSON)`` at the end of the bundle."""

    def __init__(self, location: StoreLocation, sink: TextSink) -> None:
        self.store = LazyStore(location)
        self.sink = sink
        self._shard: _LocalShard | None = None

    def process(self, element: Any) -> None:
        shard = self._shard
        if shard is None:
            shard = self._shard = _LocalShard(self.sink)
        shard.write(element)

    def finish_bundle(self) -> Iterator[tuple[None, str]]:
        shard, self._shard = self._shard, None
        if shard is not None:
            yield (None, shard.store(self.store.get()).to_json())

    def teardown(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.discard()
        self.store.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "sink": self.sink, "_shard": None}


class _WriteTextShardsDoFn(DoFn):
    """Writes each ``(shard index, lines)`` group as one file; emits ``(index, Content JSON)``."""

    def __init__(self, location: StoreLocation, sink: TextSink) -> None:
        self.store = LazyStore(location)
        self.sink = sink

    def process(self, element: tuple[int, Iterable[Any]]) -> Iterator[tuple[int, str]]:
        index, values = element
        shard = _LocalShard(self.sink)
        try:
            for value in values:
                shard.write(value)
        except BaseException:
            shard.discard()
            raise
        yield (index, shard.store(self.store.get()).to_json())

    def teardown(self) -> None:
        self.store.close()


class _RepoTextSink(TextSink):
    transform_name = "WriteToRepo"


class _RepoFinalizer(Finalizer):
    """Records every written file as one commit on success; leaves nothing visible on failure."""

    def __init__(
        self,
        location: StoreLocation,
        branch: str,
        message: str,
        provenance: tuple[str, ...],
        text_sink: TextSink | None,
    ) -> None:
        self.location = location
        self.branch = branch
        self.message = message
        self.provenance = provenance
        self.text_sink = text_sink

    def _text_files(self, store: Store, results: list[Any]) -> list[tuple[str, Content]]:
        from headrace.store.content import Content

        sink = self.text_sink
        assert sink is not None
        shards: list[str | None]
        if sink.num_shards > 0:
            by_index: dict[int, str] = {}
            for index, text in results:
                if not isinstance(index, int) or not 0 <= index < sink.num_shards:
                    raise ValueError(f"WriteToRepo to {self.branch}: bad shard record {index!r}")
                if index in by_index:
                    raise ValueError(
                        f"WriteToRepo to {self.branch}: shard {index} was written twice; a "
                        "sharded write needs its input in the global window"
                    )
                by_index[index] = text
            shards = [by_index.get(i) for i in range(sink.num_shards)]
        else:
            shards = sorted(text for _, text in results) or [None]
        empty: Content | None = None
        files = []
        for index, text in enumerate(shards):
            if text is not None:
                content = Content.from_json(text)
            else:
                if empty is None:
                    empty = _LocalShard(sink).store(store)  # header and footer only
                content = empty
            files.append((sink.final_path(index, len(shards)), content))
        return files

    def commit(self, results: list[Any]) -> None:
        from headrace.store.content import Content

        store = self.location.open()
        try:
            if self.text_sink is not None:
                files = self._text_files(store, results)
            else:
                files = [(path, Content.from_json(text)) for path, text in results]
            store.record_files(self.branch, files, message=self.message, provenance=self.provenance)
        finally:
            store.close()

    def abort(self, results: list[Any]) -> None:
        """Nothing to undo: written objects stay unreferenced (invisible) until ``gc``."""


class WriteToRepo(PTransform):
    """Write a PCollection as one new commit on ``repo@branch``, made only if the run succeeds.

    Files mode (default): elements are ``(path, data)`` pairs, ``data`` ``bytes`` or ``str``
    (UTF-8). Paths are placed under the ``:/dir`` of ``ref`` if it has one; a path written twice
    fails the run. Text mode (``as_text=True``): elements are lines, written like
    :class:`~headrace.io.WriteToText` to files named ``:/path/prefix`` + ``-SSSSS-of-NNNNN``
    + ``file_name_suffix`` (``num_shards``, ``shard_name_template``, ``coder``, ``header``,
    ``footer``, ``compression_type`` as there).

    The commit's parent is the branch head when the run ends: files not written keep their
    content. ``message`` is its message; ``provenance`` lists the commits it was made from:
    references (resolved to commit ids when the transform is applied) or applied
    :class:`ReadFromRepo` transforms (their resolved commit). The store is given as for
    :class:`ReadFromRepo`; the repo must exist. A failed run makes no commit.

    >>> import tempfile
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.store.store import Store
    >>> home = tempfile.TemporaryDirectory()
    >>> with Store.open(home.name) as store:
    ...     _ = store.create_repo("raw")
    ...     _ = store.create_repo("clean")
    ...     _ = store.put_file("raw@master:/a.txt", b"hello")
    >>> with Pipeline() as p:
    ...     read = ReadFromRepo("raw@master", store_home=home.name)
    ...     _ = (p | read | Map(lambda f: (f[0], f[1].upper()))
    ...          | WriteToRepo("clean@master:/out", message="upper", provenance=[read],
    ...                        store_home=home.name))
    >>> with Store.open(home.name) as store:
    ...     store.get_file("clean@master:/out/a.txt"), store.inspect_commit("clean@master").message
    (b'HELLO', 'upper')
    >>> home.cleanup()
    """

    def __init__(
        self,
        ref: str,
        *,
        message: str = "",
        provenance: str | ReadFromRepo | Iterable[str | ReadFromRepo] = (),
        as_text: bool = False,
        num_shards: int = 0,
        shard_name_template: str | None = None,
        file_name_suffix: str = "",
        coder: Any = None,
        header: Any = None,
        footer: Any = None,
        compression_type: str = CompressionTypes.AUTO,
        store_home: str | os.PathLike[str] | None = None,
        db: str | None = None,
        objects: str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        r = parse_ref(ref)
        if r.is_commit or r.ancestry:
            raise ValueError(
                f"WriteToRepo({ref!r}): write to a branch, as repo@branch or repo@branch:/path"
            )
        self.ref = ref
        self.branch = f"{r.repo}@{r.ref}"
        if not isinstance(message, str):
            raise TypeError(f"WriteToRepo({ref!r}): message must be a str, got {message!r}")
        self.message = message
        if isinstance(provenance, (str, ReadFromRepo)):
            provenance = [provenance]
        self.provenance: list[str | ReadFromRepo] = list(provenance)
        for p in self.provenance:
            if not isinstance(p, (str, ReadFromRepo)):
                raise TypeError(
                    f"WriteToRepo({ref!r}): provenance holds {p!r}; give references "
                    "('repo@branch', 'repo@<commit id>') or ReadFromRepo transforms"
                )
        self.prefix = r.path or "/"
        self.text_sink: TextSink | None = None
        if as_text:
            if r.path is None or r.path == "/":
                raise ValueError(
                    f"WriteToRepo({ref!r}, as_text=True): name the files' prefix in the "
                    "reference, e.g. 'repo@branch:/counts/part'"
                )
            self.text_sink = _RepoTextSink(
                r.path,
                file_name_suffix=file_name_suffix,
                num_shards=num_shards,
                shard_name_template=shard_name_template,
                coder=coder,
                compression_type=compression_type,
                header=header,
                footer=footer,
            )
        else:
            given = {
                "num_shards": num_shards != 0,
                "shard_name_template": shard_name_template is not None,
                "file_name_suffix": file_name_suffix != "",
                "coder": coder is not None,
                "header": header is not None,
                "footer": footer is not None,
                "compression_type": compression_type != CompressionTypes.AUTO,
            }
            for name, set_ in given.items():
                if set_:
                    raise ValueError(
                        f"WriteToRepo({ref!r}): {name} applies to text mode only; pass "
                        "as_text=True to write lines, or leave it out to write (path, data) pairs"
                    )
        self._store = (store_home, db, objects)

    def _resolve_provenance(self, store: Store) -> tuple[str, ...]:
        out = []
        for p in self.provenance:
            if isinstance(p, ReadFromRepo):
                if p.commit_ref is None:
                    raise ValueError(
                        f"{self.label}: provenance {p.label!r} has not been applied to a pipeline "
                        "yet; apply the ReadFromRepo before the WriteToRepo that names it"
                    )
                out.append(p.commit_ref)
                continue
            try:
                info = store.inspect_commit(p)
            except StoreError as e:
                raise error_in_context(e, f"{self.label}: provenance {p!r}") from None
            out.append(f"{info.repo}@{info.id}")
        return tuple(out)

    def expand(self, pcoll: Any) -> Any:
        store, location = StoreLocation.open_new(*self._store)
        try:
            try:
                store.inspect_repo(self.branch.partition("@")[0])
            except StoreError as e:
                raise error_in_context(e, f"{self.label}: cannot write to {self.ref!r}") from None
            provenance = self._resolve_provenance(store)
        finally:
            store.close()
        sink = self.text_sink
        if sink is None:
            records = pcoll | "WriteFiles" >> ParDo(
                _WriteFilesDoFn(location, self.prefix, self.ref)
            )
        elif sink.num_shards == 0:
            records = pcoll | "WriteText" >> ParDo(_WriteTextBundlesDoFn(location, sink))
        else:
            windowing = pcoll.windowing
            if windowing.window_fn is not None or windowing.trigger is not None:
                pcoll = pcoll | "GlobalWindow" >> WindowInto(GlobalWindows())  # one numbering
            records = (
                pcoll
                | "AssignShards" >> ParDo(AssignShardsDoFn(sink.num_shards))
                | "GroupShards" >> GroupByKey()
                | "WriteShards" >> ParDo(_WriteTextShardsDoFn(location, sink))
            )
        finalizer = _RepoFinalizer(location, self.branch, self.message, provenance, sink)
        return records | "Commit" >> FinalizeOnSuccess(finalizer)
