"""What a build returns: each panel's and anchor's key and whether it was drawn, and where the pages are."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.compose.book import BookPage
from storyboard.output import OutputFolder
from storyboard.resolve import PanelJob
from storyboard.story import Story


@dataclass
class PanelResult:
    job: PanelJob
    key: str
    rendered: bool
    info: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # the keys of the anchors it read, by name
    page: int = 1  # the page it is on


@dataclass
class BuildResult:
    story: Story
    out_dir: Path
    renderer: str
    panels: list[PanelResult]
    page_key: str = ""
    characters: list[PanelResult] = field(default_factory=list)  # the anchors, in the story's order
    pages: list[tuple[BookPage, str]] = field(default_factory=list)  # a book's pages and their keys; [] for one page

    @property
    def folder(self) -> OutputFolder:
        return OutputFolder(self.out_dir)

    @property
    def rendered(self) -> int:
        return sum(p.rendered for p in self.panels)

    @property
    def reused(self) -> int:
        return len(self.panels) - self.rendered

    @property
    def anchors_rendered(self) -> int:
        return sum(c.rendered for c in self.characters)

    @property
    def index_html(self) -> Path:
        return self.folder.index_html

    @property
    def page_png(self) -> Path:
        return self.folder.page_png

    @property
    def page_pdf(self) -> Path:
        return self.folder.page_pdf

    @property
    def webtoon(self) -> bool:
        return self.story.layout.page == "webtoon"

    @property
    def page_pngs(self) -> list[Path]:
        """The PNG of every page: page.png, a book's pages/page-01.png…, or a webtoon's slices webtoon/001.png…"""
        if self.webtoon:
            return self.folder.webtoon_slices()
        if not self.pages:
            return [self.page_png]
        return [self.folder.book_page(page.number) for page, _ in self.pages]

    @property
    def pdf(self) -> Path:
        """page.pdf, or a book's book.pdf."""
        return self.folder.book_pdf if self.pages else self.page_pdf

    @property
    def manifest(self) -> Path:
        return self.folder.manifest
