"""The page as one value: panels, text and the layout geometry that the PNG, PDF and HTML outputs all draw."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from storyboard.compose.fonts import FontSubset, page_subsets
from storyboard.compose.typeset import PageText
from storyboard.geometry import PageLayout, PageSpec, page_layout
from storyboard.output import EXPORT_FILES
from storyboard.resolve import PanelJob
from storyboard.story import Story, timeline


@dataclass(frozen=True)
class PagePanel:
    index: int
    image: Image.Image
    file: str  # relative path of the panel image, for the HTML page
    caption: str = ""
    narration: str = ""
    dialogue: tuple[tuple[str, str], ...] = ()  # (speaker, text)
    span: int = 1
    prompt: str = ""
    seed: int | None = None
    flagged: bool = False  # the model's safety checker flagged the image


@dataclass(frozen=True)
class CastMember:
    """A character shown in the cast strip: name, portrait, its file beside index.html (``characters/…``) and the
    portrait's content key (so a redrawn portrait recomposes the page)."""

    name: str
    image: Image.Image
    file: str
    key: str = ""


@dataclass
class Page:
    title: str
    panels: Sequence[PagePanel]
    layout: PageLayout
    text: PageText
    language: str = "en"
    background: str = "#ffffff"
    footer: str = ""
    renderer: str = ""
    model: str = ""
    version: str = ""
    heading: str = ""  # the title of the chapter this page starts
    cast: Sequence[CastMember] = ()
    number: int = 0  # its number in a book of several pages; 0 for a story on one page
    animatic: str = ""  # a film's animatic, relative to the page: shown in a player once `storyboard export` made it
    editions: Sequence[tuple[str, str]] = ()  # (language, link) of the story in other languages, this one included

    def texts(self) -> list[str]:
        """Every text the page shows."""
        texts = [self.title, self.footer, self.heading, *(member.name for member in self.cast)]
        for panel in self.panels:
            texts += [panel.caption, panel.narration, panel.prompt, *(s + t for s, t in panel.dialogue)]
        return texts

    @functools.cached_property
    def fonts(self) -> list[FontSubset]:
        """Subsets of the page's fonts holding every character the page shows, for the PDF and the HTML."""
        return page_subsets(self.texts(), self.language)


def make_page(
    title: str,
    panels: Sequence[PagePanel],
    *,
    cell: tuple[int, int],
    columns: int,
    direction: str = "ltr",
    preset: str = "auto",
    margin: int = 48,
    gutter: int = 32,
    border: int = 3,
    captions: str = "below",
    background: str = "#ffffff",
    footer: str = "",
    language: str = "en",
    renderer: str = "",
    model: str = "",
    version: str = "",
    heading: str = "",
    cast: Sequence[CastMember] = (),
    number: int = 0,
    keep_columns: bool = False,
    reserve_top: float = 0.0,
) -> Page:
    """Typeset the text and lay the page out."""
    text = PageText(
        title_text=title,
        captions=[p.caption for p in panels],
        narrations=[p.narration for p in panels],
        dialogue=[[line for _, line in p.dialogue] for p in panels],
        footer_text=footer,
        language=language,
        overlay_captions=captions == "overlay",
        heading_text=heading,
        cast_names=[member.name for member in cast],
    )
    spec = PageSpec(cell=cell, columns=columns, spans=tuple(p.span for p in panels), direction=direction,
                    page=preset, margin=margin, gutter=gutter, border=border, captions=captions,
                    narrations=tuple(bool(p.narration.strip()) for p in panels), heading=bool(heading.strip()),
                    cast=len(cast), keep_columns=keep_columns, reserve_top=reserve_top)
    layout = page_layout(spec, text)
    return Page(title=title, panels=panels, layout=layout, text=text, language=language, background=background,
                footer=footer, renderer=renderer, model=model, version=version, heading=heading, cast=tuple(cast),
                number=number)


def story_page(story: Story, jobs: Sequence[PanelJob], images: Mapping[int, Image.Image], *, renderer: str,
               version: str, flagged: Collection[int] = (), cast: Sequence[CastMember] = (),
               title: str | None = None, heading: str = "", number: int = 0, book: bool = False,
               header: float = 0.0, names_model: bool = True, editions: Sequence[tuple[str, str]] = (),
               captions: Sequence[str] | None = None) -> Page:
    """A page holding `jobs` (panels of `story`, in order): the whole story, or one page of its book.

    `flagged` holds the numbers of panels the safety checker flagged, and `cast` the portraits shown under the
    title (when `layout.cast` is on). The renderer that drew the panels decides `header`, the share of each
    panel's height at its top that it draws on itself and bubbles leave free, and `names_model`, whether the
    footer names the model it drew with.
    """
    layout = story.layout
    webtoon = layout.page == "webtoon"  # one column, read top to bottom whatever the direction
    captions = page_captions(story) if captions is None else captions  # a book passes them, made once
    panels = [
        PagePanel(index=job.index, image=images[job.index], file=job.file, caption=captions[job.index - 1],
                  narration=panel.narration, dialogue=tuple((d.speaker, d.text) for d in panel.dialogue),
                  span=1 if webtoon else panel.span, prompt=job.prompt, seed=job.seed, flagged=job.index in flagged)
        for job, panel in ((job, story.panels[job.index - 1]) for job in jobs)
    ]
    footer = story_footer(story, renderer, jobs[0].model, names_model)
    if footer and number:
        footer += f" · page {number}"
    page = make_page(
        story.title if title is None else title, panels, cell=(story.render.width, story.render.height),
        columns=1 if webtoon else layout.columns, direction="ltr" if webtoon else layout.direction,
        preset=layout.page, margin=layout.margin,
        gutter=layout.gutter, border=layout.border, captions=layout.captions, background=layout.background,
        footer=footer, language=story.language,
        renderer=renderer, model=jobs[0].model, version=version, heading=heading,
        cast=tuple(cast) if layout.cast else (), number=number, keep_columns=book,
        reserve_top=header,
    )
    if story.medium == "film" and number <= 1:
        page.animatic = EXPORT_FILES["animatic"]
    page.editions = tuple(editions)
    return page


def page_captions(story: Story) -> list[str]:
    """What the page shows under each panel: its caption; for a film, its shot line first
    ('1B · WS · low · push-in · 4 s — caption')."""
    if story.medium != "film":
        return [panel.caption for panel in story.panels]
    captions = []
    for board in timeline(story):
        line = " · ".join(part for part in (board.shot, board.framing.label(), f"{board.duration:g} s") if part)
        captions.append(f"{line} — {board.caption}" if board.caption else line)
    return captions


def story_footer(story: Story, renderer: str, model: str, names_model: bool = True) -> str:
    """The footer of the story's pages (without a page number): the credits and what drew the panels."""
    if not story.layout.footer:
        return ""
    parts = [story.layout.credits.strip()] if story.layout.credits.strip() else []
    parts.append(f"drawn by the {renderer} renderer" + (f" with {model}" if names_model else ""))
    return " · ".join(parts)
