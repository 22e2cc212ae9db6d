"""The panel cache: drawn images named by their content key, each written whole or not at all.

A key is the sha256 of everything that decides an image's pixels (see `storyboard.building.panel_key`), so an image is
valid for as long as its key is asked for, and any number of builds may share one folder: writes are atomic renames,
and reading needs no lock.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from storyboard.errors import BuildError
from storyboard.files import atomic_save_png, atomic_write_bytes, is_complete_png


class PanelCache:
    """Images in `folder`, one `<key>.png` per content key."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.png"

    def has(self, key: str) -> bool:
        """Whether the image of `key` is there and complete (a build killed mid-write leaves none or a whole one)."""
        return is_complete_png(self.path(key))

    def put(self, key: str, image: Image.Image, pnginfo: PngInfo | None = None) -> Path:
        atomic_save_png(self.path(key), image, pnginfo)
        return self.path(key)

    def put_bytes(self, key: str, data: bytes) -> Path:
        """Store an image already encoded (one copied from another cache)."""
        atomic_write_bytes(self.path(key), data)
        return self.path(key)

    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open(self, key: str) -> Image.Image:
        """The image of `key`, loaded into memory."""
        path = self.path(key)
        try:
            with Image.open(path) as image:
                image.load()
                return image
        except (OSError, SyntaxError) as exc:
            raise BuildError(f"cannot read cached panel {path}: {exc}") from None
