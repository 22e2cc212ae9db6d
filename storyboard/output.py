"""The one owner of a build folder's layout: every name a build writes under ``build/<story>/`` is spelled here.

::

    build/little_prince/
        panels/panel-01.png …        one image per panel           OutputFolder.panel_file(n)
        characters/<slug>.png         one anchor per character      OutputFolder.character_file(slug)
        cache/<key>.png               every image drawn, by key     OutputFolder.cache_dir
        page.png  page.pdf            a story on one page
        pages/page-01.png …  book.pdf a story on several pages      OutputFolder.book_page_file(n)
        webtoon/001.png …             a webtoon's slices (layout.page: webtoon), instead of page PNGs
        index.html  fonts/            the HTML page and its font subsets
        variants/panel-03/seed-S.png  candidates, and contact-sheet.png
        manifest.json  .lock
        animatic.mp4  animatic.srt    `storyboard export`: the boards played in time, and their subtitles
        animatic.otio  animatic.xml   the same timeline for editors (OpenTimelineIO, Final Cut Pro 7 XML)
        shotlist.csv  boards.pdf      the shot list, and the printed storyboard sheet
        <title>.cbz  <title>.epub     the pages for comic readers (ComicInfo.xml) and e-book readers (EPUB 3)
        exports.json                  what each exported file was made from     OutputFolder.export_file(name)

Names relative to the folder (what the manifest and the HTML page link to) are plain strings; paths are the folder
joined with them. A second folder shape for a story would be a second class, not a second spelling.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from storyboard.errors import BuildError
from storyboard.files import remove_temp_files

PANELS_DIR = "panels"
CHARACTERS_DIR = "characters"
CACHE_DIR = "cache"
PAGES_DIR = "pages"
WEBTOON_DIR = "webtoon"
FONTS_DIR = "fonts"
VARIANTS_DIR = "variants"
PAGE_PNG = "page.png"
PAGE_PDF = "page.pdf"
BOOK_PDF = "book.pdf"
INDEX_HTML = "index.html"
MANIFEST = "manifest.json"
CONTACT_SHEET = "contact-sheet.png"
EXPORTS = "exports.json"
#: What `storyboard export` writes, by format name.
EXPORT_FILES = {"animatic": "animatic.mp4", "srt": "animatic.srt", "otio": "animatic.otio",
                "fcpxml": "animatic.xml", "shotlist": "shotlist.csv", "boards": "boards.pdf",
                "cbz": "{title}.cbz", "epub": "{title}.epub"}
SCRATCH_DIR = ".scratch"  # what a build needs on disk only while it runs (the PDF writer's font files)
#: Where a build writes, hence where a killed one may have left temporary files.
SUBFOLDERS = (CACHE_DIR, PANELS_DIR, CHARACTERS_DIR, FONTS_DIR, VARIANTS_DIR, PAGES_DIR, WEBTOON_DIR)

_PANEL_FILE = re.compile(r"^panel-(\d+)\.png$")
_PAGE_FILE = re.compile(r"^page-(\d+)\.png$")
_SLICE_FILE = re.compile(r"^(\d+)\.png$")


def panel_file(index: int) -> str:
    """The file of panel `index` (1-based), relative to the build folder."""
    return f"{PANELS_DIR}/panel-{index:02d}.png"


def character_file(slug: str) -> str:
    """The anchor portrait of the character whose file-safe name is `slug`, relative to the build folder."""
    return f"{CHARACTERS_DIR}/{slug}.png"


def book_page_file(number: int) -> str:
    """The PNG of page `number` of a book, relative to the build folder."""
    return f"{PAGES_DIR}/page-{number:02d}.png"


def cache_file(key: str) -> str:
    """The cached image of `key` in a build folder's own cache, relative to the build folder."""
    return f"{CACHE_DIR}/{key}.png"


def default_out_dir(story_path: str | Path) -> Path:
    """Where a story is built unless told otherwise: ``build/<story file name without .yaml>``."""
    return Path("build") / Path(story_path).stem


@dataclass(frozen=True)
class OutputFolder:
    """A build folder: where each output of a story's build lies."""

    root: Path

    @classmethod
    def of(cls, story_path: str | Path, out_dir: str | Path | None = None) -> OutputFolder:
        """The folder a build of `story_path` writes into: `out_dir`, or ``build/<story file name>``."""
        root = Path(out_dir) if out_dir is not None else default_out_dir(story_path)
        if root.exists() and not root.is_dir():
            raise BuildError(f"output folder {root} exists and is not a folder")
        return cls(root)

    def __truediv__(self, relative: str) -> Path:
        return self.root / relative

    @property
    def cache_dir(self) -> Path:
        return self.root / CACHE_DIR

    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def index_html(self) -> Path:
        return self.root / INDEX_HTML

    @property
    def page_png(self) -> Path:
        return self.root / PAGE_PNG

    @property
    def page_pdf(self) -> Path:
        return self.root / PAGE_PDF

    @property
    def book_pdf(self) -> Path:
        return self.root / BOOK_PDF

    @property
    def fonts_dir(self) -> Path:
        return self.root / FONTS_DIR

    def book_page(self, number: int) -> Path:
        return self.root / book_page_file(number)

    def webtoon_slice(self, number: int) -> Path:
        """Slice `number` (1-based) of a webtoon, top to bottom."""
        return self.root / WEBTOON_DIR / f"{number:03d}.png"

    def webtoon_slices(self) -> list[Path]:
        """The slices a webtoon build wrote, in order."""
        found = [p for p in (self.root / WEBTOON_DIR).glob("*.png") if _SLICE_FILE.match(p.name)]
        return sorted(found, key=lambda p: int(p.stem))

    def webtoon_slices_after(self, count: int) -> Iterator[Path]:
        """Slices numbered above `count`: left by an earlier build of a longer webtoon."""
        return _numbered_after(self.root / WEBTOON_DIR, _SLICE_FILE, count)

    def variants_dir(self, panel: int) -> Path:
        return self.root / VARIANTS_DIR / f"panel-{panel:02d}"

    def variant(self, panel: int, seed: int) -> Path:
        return self.variants_dir(panel) / f"seed-{seed}.png"

    def contact_sheet(self, panel: int) -> Path:
        return self.variants_dir(panel) / CONTACT_SHEET

    def export_file(self, name: str, title: str = "comic") -> Path:
        """The file the export format `name` writes (see `EXPORT_FILES`); `title` names a book's file (a name a
        file system takes, see `storyboard.export.Built.book_name`)."""
        return self.root / EXPORT_FILES[name].format(title=title)

    @property
    def exports(self) -> Path:
        """The record of what each exported file was made from, so an unchanged one is not made again."""
        return self.root / EXPORTS

    @property
    def scratch_dir(self) -> Path:
        return self.root / SCRATCH_DIR

    def remove_temp_files(self) -> int:
        """Delete the temporary files a killed build left where builds write (and nowhere else: `--out` may name a
        folder full of other things), and its scratch folder; call it only while holding the folder's lock."""
        shutil.rmtree(self.scratch_dir, ignore_errors=True)
        return remove_temp_files(self.root, SUBFOLDERS)

    def relative(self, path: Path) -> str:
        """`path`, a file inside the folder, as the page and the manifest name it."""
        return path.relative_to(self.root).as_posix()

    def panels_after(self, count: int) -> Iterator[Path]:
        """Panel files numbered above `count`: left by an earlier build of a longer story."""
        return _numbered_after(self.root / PANELS_DIR, _PANEL_FILE, count)

    def book_pages_after(self, count: int) -> Iterator[Path]:
        """Book page files numbered above `count`: left by an earlier build of a longer book."""
        return _numbered_after(self.root / PAGES_DIR, _PAGE_FILE, count)

    def characters_besides(self, current: set[str]) -> Iterator[Path]:
        """Anchor files other than `current` (names relative to the folder): characters no panel lists any more."""
        for path in (self.root / CHARACTERS_DIR).glob("*.png"):
            if character_file(path.stem) not in current:
                yield path


def _numbered_after(folder: Path, pattern: re.Pattern[str], count: int) -> Iterator[Path]:
    for path in folder.glob("*.png"):
        match = pattern.match(path.name)
        if match and int(match.group(1)) > count:
            yield path
