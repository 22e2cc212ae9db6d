"""A story of many panels as a book: which panels go on which page, and the pages themselves.

Panels flow into pages in reading order, `layout.columns` wide and `layout.rows` tall; `page_break: true` or a
`chapter:` on a panel starts a new page, and a chapter's title heads its first page. A story that fits one page is a
book of one page, composed exactly as a single page always was.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from storyboard.compose.fonts import FontSubset, page_subsets
from storyboard.compose.page import CastMember, Page, page_captions, story_footer, story_page
from storyboard.geometry import place
from storyboard.resolve import PanelJob
from storyboard.story import Story


@dataclass(frozen=True)
class BookPage:
    """One page of a book, before it is composed: its number and the panels on it."""

    number: int  # 1-based
    panels: tuple[int, ...]  # 1-based panel numbers, in reading order
    chapter: str = ""  # the chapter this page starts, shown above its first row


def paginate(spans: Sequence[int], columns: int, rows: int | None = None,
             breaks: Collection[int] = (), chapters: Mapping[int, str] | None = None) -> list[BookPage]:
    """Cut panels (their `spans`, in reading order) into pages of `rows` rows of `columns` columns.

    A panel too wide for what is left of a row moves to the next row (`layout.place`), and to the next page when
    that row is past the last. `breaks` (1-based panel numbers) start a new page; so do `chapters` (panel number →
    chapter title), whose title heads the page. Without `rows` a page holds every panel up to the next break.
    """
    chapters = dict(chapters or {})
    pages: list[BookPage] = []
    current: list[int] = []
    chapter = chapters.get(1, "")
    for number, _ in enumerate(spans, start=1):
        starts_page = bool(current) and (number in breaks or number in chapters)
        if current and not starts_page and rows is not None:
            slots = place([spans[n - 1] for n in (*current, number)], columns)
            starts_page = slots[-1][0] >= rows
        if starts_page:
            pages.append(BookPage(len(pages) + 1, tuple(current), chapter))
            current, chapter = [], chapters.get(number, "")
        current.append(number)
    if current:
        pages.append(BookPage(len(pages) + 1, tuple(current), chapter))
    return pages


def book_pages(story: Story) -> list[BookPage]:
    """The pages of `story`'s panels, as its `layout:` and the panels' `page_break` and `chapter` place them. A
    webtoon is one strip of one column from break to break."""
    panels = story.panels
    if story.layout.page == "webtoon":
        return paginate([1] * len(panels), 1, None,
                        breaks={n for n, p in enumerate(panels, start=1) if p.page_break},
                        chapters={n: p.chapter.strip() for n, p in enumerate(panels, start=1) if p.chapter.strip()})
    return paginate([p.span for p in panels], story.layout.columns, story.layout.rows,
                    breaks={n for n, p in enumerate(panels, start=1) if p.page_break},
                    chapters={n: p.chapter.strip() for n, p in enumerate(panels, start=1) if p.chapter.strip()})


@dataclass
class Book:
    """The composed pages of a story, and the chapters as (title, page number) for the PDF's outline."""

    title: str
    pages: list[Page]
    chapters: list[tuple[str, int]]
    language: str = "en"
    footer: str = ""  # shown once under the pages of the HTML book; each PNG page adds its number
    webtoon: bool = False  # written as slices for phones (`storyboard.geometry.slice_cuts`) instead of page PNGs

    @property
    def single(self) -> bool:
        """A story on one page: written as page.png and page.pdf, as always."""
        return len(self.pages) == 1

    @functools.cached_property
    def fonts(self) -> list[FontSubset]:
        """Subsets holding every character of every page: the PDF and the HTML hold them all."""
        if len(self.pages) == 1:
            return self.pages[0].fonts
        return page_subsets([text for page in self.pages for text in page.texts()], self.language)


def book_from_story(story: Story, jobs: Sequence[PanelJob], images: Mapping[int, Image.Image], *, renderer: str,
                    version: str, flagged: Collection[int] = (), cast: Sequence[CastMember] = (),
                    pages: Sequence[BookPage] | None = None, header: float = 0.0, names_model: bool = True,
                    editions: Sequence[tuple[str, str]] = ()) -> Book:
    """Compose the pages of a resolved story (`pages`: by default as `book_pages` cuts them); `header` and
    `names_model` as for `story_page`."""
    pages = list(pages) if pages is not None else book_pages(story)
    by_index = {job.index: job for job in jobs}
    chapters = [(page.chapter, page.number) for page in pages if page.chapter]
    drawn_by: dict[str, Any] = dict(renderer=renderer, version=version, flagged=flagged, header=header,
                                    names_model=names_model, editions=tuple(editions),
                                    captions=page_captions(story))
    if len(pages) == 1:
        composed = [story_page(story, jobs, images, cast=cast, heading=pages[0].chapter, **drawn_by)]
        return Book(story.title, composed, chapters, story.language, composed[0].footer,
                    webtoon=story.layout.page == "webtoon")
    composed = [
        story_page(story, [by_index[n] for n in page.panels], images, cast=cast if page.number == 1 else (),
                   title=story.title if page.number == 1 else "", heading=page.chapter, number=page.number,
                   book=True, **drawn_by)
        for page in pages
    ]
    webtoon = story.layout.page == "webtoon"
    if not webtoon:  # a webtoon's chapters are parts of one strip, each as long as it is
        _same_height(composed)
    return Book(story.title, composed, chapters, story.language,
                story_footer(story, renderer, jobs[0].model, names_model), webtoon=webtoon)


def page_key_input(story: Story, jobs: Sequence[PanelJob], keys: Mapping[int, str], *, renderer: str, version: str,
                   self_contained: bool, page: BookPage, book: bool, cast: Sequence[CastMember] = (),
                   editions: Sequence[tuple[str, str]] = (), captions: Sequence[str] | None = None,
                   ) -> dict[str, Any]:
    """What decides the pixels of a page: hashed into its page key, which the manifest keeps so that a rebuild
    composes only pages whose key changed.

    A story on one page (not `book`) keeps the key it always had: what the page shows, and whether its HTML is
    self-contained; the cast and a chapter heading are in it only when the page has them. A page of a book has
    its number and only its own panels in it, and not `self_contained`, which changes its HTML only.
    """
    panels = story.panels
    numbers = page.panels
    captions = page_captions(story) if captions is None else captions
    data: dict[str, Any] = {
        "storyboard": version, "title": story.title, "language": story.language,
        "layout": story.layout.page_key_input(), "renderer": renderer, "model": jobs[0].model,
        "panels": [[keys[n], captions[n - 1], panels[n - 1].narration,
                    [d.model_dump() for d in panels[n - 1].dialogue], panels[n - 1].span] for n in numbers],
    }
    if book:
        data["page"] = page.number
    else:
        data["self_contained"] = self_contained
    if page.chapter:
        data["chapter"] = page.chapter
    if story.medium == "film":
        data["medium"] = story.medium
    if editions:
        data["editions"] = [list(edition) for edition in editions]
    if cast and story.layout.cast and page.number == 1:
        data["cast"] = [[member.name, member.file, member.key] for member in cast]
    return data


def _same_height(pages: list[Page]) -> None:
    """Give the pages of a book one height, the tallest's, with each footer at the foot of its page: pages of a
    preset that grows with its content (`auto`, `strip`) differ by a title or a chapter heading otherwise."""
    height = max(page.layout.height for page in pages)
    for page in pages:
        layout = page.layout
        if layout.height == height:
            continue
        footer = layout.footer
        if footer is not None:
            footer = replace(footer, y=height - layout.margin - footer.h)
        page.layout = replace(layout, height=height, footer=footer)
