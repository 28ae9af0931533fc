"""The windowed word count example: files dropped into a folder while the pipeline runs are
counted per window, and each window lands in its own output file."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

from headrace.examples import windowed_wordcount

WINDOW = 10  # seconds


def drop(folder: Path, name: str, text: str, mtime: float) -> None:
    """Write a file under a name the pattern does not match, then rename it into place."""
    staging = folder / f".{name}.partial"
    staging.write_text(text)
    os.utime(staging, (mtime, mtime))
    os.replace(staging, folder / name)


def counts_per_file(out: Path) -> dict[str, dict[str, int]]:
    result = {}
    for path in sorted(out.iterdir()):
        pairs = (line.split(": ") for line in path.read_text().splitlines())
        result[path.name] = {word: int(n) for word, n in pairs}
    return result


def test_files_dropped_over_time_are_counted_per_window(tmp_path: Path) -> None:
    incoming, out = tmp_path / "incoming", tmp_path / "out"
    incoming.mkdir()
    # Event time is each file's modification time: windows of ten minutes ago, aligned, so the
    # expected windows are known; a watermark lag of an hour keeps those files on time.
    base = (int(time.time()) // WINDOW) * WINDOW - 600
    drop(incoming, "0.txt", "The cat sat.", base + 1)  # there before the pipeline starts
    schedule = [
        ("1.txt", "the cat, the hat\nand the bat", base + 4),
        ("2.txt", "Cat's hat", base + 9),
        ("3.txt", "a dog\n\nthe dog's end", base + 12),
        ("4.txt", "dog dog DOG", base + 25),
    ]

    def dropper() -> None:
        for name, text, mtime in schedule:
            time.sleep(0.15)
            drop(incoming, name, text, mtime)

    thread = threading.Thread(target=dropper)
    thread.start()
    try:
        windowed_wordcount.main(
            [
                "--input",
                str(incoming / "*.txt"),
                "--output",
                str(out / "counts"),
                "--window_size",
                str(WINDOW),
                "--interval",
                "0.05",
                "--watermark_lag",
                "3600",
                "--stop_after",
                "2",
            ]
        )
    finally:
        thread.join()

    def name(start: int) -> str:
        return f"counts-[{float(start)}, {float(start + WINDOW)})-00000-of-00001.txt"

    assert counts_per_file(out) == {
        name(base): {"the": 4, "cat": 2, "sat": 1, "hat": 2, "and": 1, "bat": 1, "cat's": 1},
        name(base + 10): {"a": 1, "dog": 1, "the": 1, "dog's": 1, "end": 1},
        name(base + 20): {"dog": 3},
    }
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_processing_time_windows_count_every_word_once(tmp_path: Path) -> None:
    incoming, out = tmp_path / "incoming", tmp_path / "out"
    incoming.mkdir()
    texts = ["red green", "green blue", "blue blue red"]

    def dropper() -> None:
        for i, text in enumerate(texts):
            time.sleep(0.3)
            drop(incoming, f"{i}.txt", text, time.time())

    thread = threading.Thread(target=dropper)
    thread.start()
    try:
        windowed_wordcount.main(
            [
                "--input",
                str(incoming / "*.txt"),
                "--output",
                str(out / "counts"),
                "--window_size",
                "0.25",
                "--interval",
                "0.05",
                "--timestamp",
                "processing_time",
                "--stop_after",
                "2",
            ]
        )
    finally:
        thread.join()
    per_file = counts_per_file(out)
    total: Counter[str] = Counter()
    for counts in per_file.values():
        total.update(counts)
    assert total == Counter(" ".join(texts).split())
    # The first and last files are found at scans at least 0.3 s apart: different windows.
    assert len(per_file) >= 2
    for file_name in per_file:
        assert file_name.startswith("counts-[") and file_name.endswith(")-00000-of-00001.txt")
