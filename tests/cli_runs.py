"""What the remote renderers' tests share: the CLI run in this process with its progress lines left out of stderr,
and the colour at a picture's centre (the fake servers draw one colour per prompt and seed)."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image

from storyboard.cli import main

PROGRESS = re.compile(r"^(drawing \d+ of \d+ panels( and \d+ character anchors?)? with the \w+ renderer"
                      r"|(panel \d+|.+ \(anchor\)) done \(\d+/\d+\)|composing the page)$")


def run(capsys, *args: object) -> tuple[int, str, str]:
    """Run the CLI; stderr comes back without the build's progress lines."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, "".join(line for line in err.splitlines(keepends=True) if not PROGRESS.match(line.rstrip("\n")))


def pixel(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as image:
        return image.convert("RGB").getpixel((image.width // 2, image.height // 2))
