"""Publishing: cached images copied to their names in the build folder, and the pages composed from them.

Every output is written atomically and only when its bytes change, so unchanged outputs keep their times, and a
page is composed again only when its key changed (or a file of it is missing).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from storyboard import __version__
from storyboard.building.record import Recorder
from storyboard.building.write import write_book
from storyboard.cache import PanelCache
from storyboard.compose.book import BookPage, book_from_story, page_key_input
from storyboard.compose.page import CastMember, page_captions, story_page
from storyboard.files import atomic_write_bytes, is_complete_png
from storyboard.output import OutputFolder
from storyboard.provenance import STORYBOARD, text_chunk, with_text
from storyboard.render import Renderer
from storyboard.resolve import KeyedJob, PanelJob, content_key
from storyboard.story import Story


def write_if_changed(path: Path, data: bytes) -> None:
    """Write `data` atomically unless the file already holds it, so unchanged outputs keep their times."""
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    atomic_write_bytes(path, data)


def publish(cache: PanelCache, keyed: KeyedJob, target: Path, recorder: Recorder, renderer: str) -> dict[str, Any]:
    """Copy a cached image to `target`, atomically, unless it is already identical; return the renderer's info
    recorded when it was drawn.

    The copy's provenance names the story, panel and build it is published for now (a cached image may have
    been drawn for another panel number, or as a variant); the rest of the file is the cached bytes.
    """
    cached = cache.read_bytes(keyed.key)
    try:
        drawn = json.loads(text_chunk(cached, STORYBOARD) or "{}")
    except ValueError:
        drawn = {}
    drawn = drawn if isinstance(drawn, dict) else {}
    info = drawn.get("info") if isinstance(drawn.get("info"), dict) else {}
    text = recorder.text(keyed, renderer, info, drawn.get("storyboard", __version__))
    write_if_changed(target, with_text(cached, STORYBOARD, text))
    return info


def store_pictures(missing: list[KeyedJob], pictures: Mapping[str, Image.Image], cache: PanelCache,
                   recorder: Recorder, renderer: str) -> None:
    """Put the fitted reference pictures that are not cached yet into the cache, like drawn anchors."""
    for k in missing:
        if k.job.image:
            cache.put(k.key, pictures[k.key], recorder.pnginfo(k, renderer, parameters=False))


def remove_stale(out: OutputFolder, panels: int, characters: set[str]) -> None:
    """Remove panel files left by an earlier build of a longer story, and anchor files of characters that no panel
    lists any more (or that were renamed)."""
    for path in [*out.panels_after(panels), *out.characters_besides(characters)]:
        path.unlink(missing_ok=True)


def page_marks(engine: Renderer) -> dict[str, Any]:
    """How the page shows what `engine` drew: the strip at the top of each panel it draws its own marks on (its
    `page_header`), and whether the footer names the model (its `names_model`)."""
    return {"header": getattr(engine, "page_header", 0.0), "names_model": getattr(engine, "names_model", True)}


class Pages:
    """A story's pages: their keys, and composing them when a key changed or a file is missing."""

    def __init__(self, story: Story, jobs: list[PanelJob], keys: dict[int, str], engine: Renderer,
                 self_contained: bool, cast: list[CastMember], pages: list[BookPage],
                 editions: list[tuple[str, str]] | None = None) -> None:
        renderer = engine.name
        self.story, self.jobs, self.keys, self.renderer, self.engine = story, jobs, keys, renderer, engine
        self.self_contained, self.cast, self.pages = self_contained, cast, pages
        self.editions = list(editions or [])  # (language, link) of the story's editions, for the page's switch
        self.book = len(pages) > 1
        self.webtoon = story.layout.page == "webtoon"
        captions = page_captions(story)
        self.page_keys = [content_key(page_key_input(story, jobs, keys, renderer=renderer, version=__version__,
                                                     self_contained=self_contained, page=page, book=self.book,
                                                     cast=cast, editions=self.editions, captions=captions))
                          for page in pages]
        self.key = self.page_keys[0] if not self.book else content_key(
            {"pages": self.page_keys, "self_contained": self_contained})

    def write(self, out: OutputFolder, cache: PanelCache, previous: tuple[str | None, dict[Any, Any]],
              flagged: set[int]) -> None:
        """Compose and write the pages unless the last build (`previous`: its page key and book page keys) wrote
        these same pages and they are all there."""
        before, drawn_pages = previous
        stale = [page.number for page, key in zip(self.pages, self.page_keys, strict=True)
                 if self.book and not self.webtoon and (drawn_pages.get(page.number) != key
                                   or not is_complete_png(out.book_page(page.number)))]
        if self.key == before and not stale and page_complete(out, self.self_contained, len(self.pages),
                                                              self.webtoon):
            return
        images = {j.index: cache.open(self.keys[j.index]) for j in self.jobs}
        write_book(out, book_from_story(self.story, self.jobs, images, renderer=self.renderer,
                                             version=__version__, flagged=flagged, cast=self.cast,
                                             pages=self.pages, editions=self.editions,
                                             **page_marks(self.engine)),
                   self_contained=self.self_contained, pngs=stale)

    def listed(self) -> list[tuple[BookPage, str]]:
        """A book's pages with their keys, for the result and the manifest; [] for a story on one page."""
        return list(zip(self.pages, self.page_keys, strict=True)) if self.book else []


def page_complete(out: OutputFolder, self_contained: bool, pages: int = 1, webtoon: bool = False) -> bool:
    fonts = self_contained or any(out.fonts_dir.glob("*.woff"))
    if webtoon:
        slices = out.webtoon_slices()
        drawn = bool(slices) and all(is_complete_png(p) for p in slices) \
            and (out.page_pdf if pages == 1 else out.book_pdf).is_file()
    elif pages > 1:
        drawn = all(is_complete_png(out.book_page(n)) for n in range(1, pages + 1)) and out.book_pdf.is_file()
    else:
        drawn = is_complete_png(out.page_png) and out.page_pdf.is_file()
    return drawn and out.index_html.is_file() and fonts


def warm_page(story: Story, jobs: list[PanelJob], engine: Renderer) -> threading.Thread:
    """Cut the page's font subsets and import the PDF writer while panels are drawn: neither needs their pixels.

    Started once the model is loaded, so that it overlaps the drawing (which leaves the interpreter free while
    torch computes) rather than the imports and the model load.

    The page is composed again once the panels exist; that reuses the subsets (they are memoised) and reports
    any error, so a failure here is ignored.
    """
    def warm() -> None:
        try:
            # The fonts depend on the page's text alone: one tiny stand-in picture serves every panel.
            blank = Image.new("RGB", (1, 1))
            stand_ins = {job.index: blank for job in jobs}
            page = story_page(story, jobs, stand_ins, renderer=engine.name, version=__version__, **page_marks(engine))
            page.fonts  # noqa: B018 - reading it cuts the subsets
            import fpdf  # noqa: F401
        except Exception:
            pass

    thread = threading.Thread(target=warm, name="storyboard-page-fonts", daemon=True)
    thread.start()
    return thread
