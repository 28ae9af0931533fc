"""Word count, written exactly as for Apache Beam except for the import.

Run it with ``headrace run src/headrace/examples/wordcount.py --output out/counts`` or
``python -m headrace.examples.wordcount``. Without ``--input`` it generates 8 MB of text first.

>>> import tempfile, os, pathlib
>>> d = tempfile.mkdtemp()
>>> _ = pathlib.Path(d, "in.txt").write_text("a b a\\nb a\\n")
>>> main(["--input", os.path.join(d, "in.txt"), "--output", os.path.join(d, "out")])
>>> print(pathlib.Path(d, "out-00000-of-00001.txt").read_text())
a: 3
b: 2
<BLANKLINE>
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence

from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions

WORD = re.compile(r"[A-Za-z']+")


def run(input_pattern: str, output_prefix: str, options: PipelineOptions) -> None:
    with beam.Pipeline(options=options) as p:
        (
            p
            | "Read" >> beam.io.ReadFromText(input_pattern)
            | "Split" >> beam.FlatMap(WORD.findall)
            | "Lower" >> beam.Map(str.lower)
            | "Count" >> beam.combiners.Count.PerElement()
            | "Format" >> beam.MapTuple(lambda word, n: f"{word}: {n}")
            | "Write" >> beam.io.WriteToText(output_prefix, file_name_suffix=".txt", num_shards=1)
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="file pattern to read (default: generated text)")
    parser.add_argument("--output", default="wordcount-output/counts", help="output prefix")
    parser.add_argument("--size-mb", type=float, default=8.0, help="generated text size")
    args, pipeline_args = parser.parse_known_args(argv)
    input_pattern = args.input
    if input_pattern is None:
        from headrace.examples.textgen import generate_text

        path = generate_text("wordcount-input/text.txt", int(args.size_mb * 1_000_000))
        input_pattern = str(path)
        print(f"generated {path} ({path.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    run(input_pattern, args.output, PipelineOptions(pipeline_args))


if __name__ == "__main__":
    main()
