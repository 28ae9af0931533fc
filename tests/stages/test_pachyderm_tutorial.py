"""Pachyderm's beginner tutorial (OpenCV edges + montage) from its specs, unchanged but for one
path, with its user code as Pachyderm users write it.

The specs in tests/stages/tutorial are Pachyderm's edges.json and montage.json (docs-content:
getting-started/beginner-tutorial; examples/opencv), read by ``load_spec`` as Pachyderm specs:
brace glob, ``/pfs`` paths, a cross of two ``/`` globs, ``transform.image``. The one change:
edges.json runs ``edges.py`` beside the spec instead of ``/edges.py`` inside the image. No
container engine runs here, so ``HEADRACE_CONTAINER_ENGINE=host`` runs the commands on this
machine, with Pillow standing in for OpenCV, matplotlib and ImageMagick's montage.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from headrace.stages.catalog import SUCCESS
from headrace.stages.daemon import Daemon
from headrace.stages.sandbox import ENGINE_VARIABLE
from headrace.stages.spec import load_spec

SPECS = Path(__file__).parent / "tutorial"

EDGES_PY = """
# The tutorial's user code as a Pachyderm user writes it: read every image under
# /pfs/images, detect its edges with OpenCV, save them under /pfs/out with matplotlib.
import os

import cv2
from matplotlib import pyplot as plt


def make_edges(image):
    img = cv2.imread(image)
    name = os.path.splitext(os.path.basename(image))[0]
    edges = cv2.Canny(img, 100, 200)
    plt.imsave(os.path.join("/pfs/out", name + ".png"), edges, cmap="gray")


for dirpath, dirs, files in os.walk("/pfs/images"):
    for file in files:
        make_edges(os.path.join(dirpath, file))
"""

CV2_STANDIN = """
# A stand-in for the two OpenCV calls of the tutorial, made with Pillow (OpenCV is too
# heavy to install for one test).

import numpy as np
from PIL import Image, ImageFilter


def imread(path):
    return np.asarray(Image.open(path).convert("RGB"))


def Canny(img, low, high):  # noqa: N802 (OpenCV's name)
    edges = Image.fromarray(img).convert("L").filter(ImageFilter.FIND_EDGES)
    return np.where(np.asarray(edges) >= low // 4, 255, 0).astype(np.uint8)
"""

PYPLOT_STANDIN = """# pyplot.imsave with Pillow: a 2-D array saved as a grey image.

import numpy as np
from PIL import Image


def imsave(path, arr, cmap=None):
    Image.fromarray(np.asarray(arr, dtype=np.uint8)).convert("L").save(path)
"""

MONTAGE_STANDIN = """#!/usr/bin/env python3
# A stand-in for ImageMagick's montage, made with Pillow: montage [options] FILE... OUT.
# The options the tutorial gives (-shadow, -background C, -geometry WxH+X+Y) are read; the
# images are laid out in a grid of WxH tiles on the background colour.
import math
import sys

from PIL import Image

args = sys.argv[1:]
background, size, files = "white", (300, 300), []
i = 0
while i < len(args):
    a = args[i]
    if a == "-background":
        background, i = args[i + 1], i + 2
    elif a == "-geometry":
        w, _, rest = args[i + 1].partition("x")
        size, i = (int(w), int(rest.split("+")[0])), i + 2
    elif a.startswith("-"):
        i += 1
    else:
        files.append(a)
        i += 1
*images, out = files
cols = math.ceil(math.sqrt(len(images)))
rows = math.ceil(len(images) / cols)
sheet = Image.new("RGB", (cols * size[0], rows * size[1]), background)
for k, path in enumerate(images):
    tile = Image.open(path).convert("RGB")
    tile.thumbnail(size)
    sheet.paste(tile, ((k % cols) * size[0], (k // cols) * size[1]))
sheet.save(out)
"""


def _picture(kind: str, size: tuple[int, int], box: tuple[int, int, int, int]) -> bytes:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).rectangle(box, fill="black")
    out = io.BytesIO()
    image.save(out, format=kind)
    return out.getvalue()


@pytest.mark.slow
def test_edges_and_montage_run_from_pachyderms_specs(kit, tmp_path, monkeypatch) -> None:
    specs = tmp_path / "specs"
    shutil.copytree(SPECS, specs)
    (specs / "edges.py").write_text(EDGES_PY)
    standins = tmp_path / "standins"
    (standins / "matplotlib").mkdir(parents=True)
    (standins / "bin").mkdir()
    (standins / "cv2.py").write_text(CV2_STANDIN)
    (standins / "matplotlib" / "__init__.py").write_text("")
    (standins / "matplotlib" / "pyplot.py").write_text(PYPLOT_STANDIN)
    montage = standins / "bin" / "montage"
    montage.write_text(MONTAGE_STANDIN.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    montage.chmod(0o755)
    python_bin = Path(sys.executable).parent
    monkeypatch.setenv(ENGINE_VARIABLE, "host")
    monkeypatch.setenv(
        "PATH", f"{standins / 'bin'}{os.pathsep}{python_bin}{os.pathsep}{os.environ['PATH']}"
    )
    monkeypatch.setenv("PYTHONPATH", str(standins))

    kit.store.create_repo("images")
    for name in ("edges.json", "montage.json"):
        notes: list[str] = []
        spec = load_spec(specs / name, warn=notes.append)
        assert notes == []
        kit.catalog.put_stage(spec, str(specs / name))
    kit.store.put_files(
        "images@master",
        [
            ("/liberty.png", _picture("PNG", (64, 48), (10, 10, 40, 30))),
        ],
    )
    daemon = Daemon(kit.catalog, log=lambda _: None)
    jobs = daemon.run_until_idle()
    logs = [r.log + r.error for j in jobs for r in kit.catalog.datums(j.id, with_logs=True)]
    assert [(j.stage, j.state) for j in jobs] == [("edges", SUCCESS), ("montage", SUCCESS)], logs
    edges = kit.files("edges@master")
    assert list(edges) == ["/liberty.png"]
    picture = Image.open(io.BytesIO(edges["/liberty.png"]))
    assert picture.size == (64, 48) and picture.mode == "L"
    lit = sum(1 for x in range(64) for y in range(48) if picture.getpixel((x, y)))
    assert 0 < lit < 64 * 48  # edges, not a blank image
    sheet = Image.open(io.BytesIO(kit.files("montage@master")["/montage.png"]))
    assert sheet.size == (600, 300)  # the image and its edges, side by side in tiles of 300

    kit.store.put_files(
        "images@master", [("/kitten.jpg", _picture("JPEG", (32, 32), (4, 4, 20, 20)))]
    )
    jobs = daemon.run_until_idle()
    assert [(j.stage, j.processed, j.skipped) for j in jobs] == [("edges", 1, 1), ("montage", 1, 0)]
    assert sorted(kit.files("edges@master")) == ["/kitten.png", "/liberty.png"]
