"""The page as one value: panels, text and the layout geometry that the PNG, PDF and HTML outputs all draw."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from storyboard.compose.fonts import FontSubset, page_subsets
from storyboard.compose.layout import PageLayout, PageSpec, page_layout
from storyboard.compose.typeset import PageText
from storyboard.resolve import PanelJob
from storyboard.story import Story


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

    @functools.cached_property
    def fonts(self) -> list[FontSubset]:
        """Subsets of the page's fonts holding every character the page shows, for the PDF and the HTML."""
        texts = [self.title, self.footer]
        for panel in self.panels:
            texts += [panel.caption, panel.narration, panel.prompt, *(s + t for s, t in panel.dialogue)]
        return page_subsets(texts, self.language)


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
    )
    spec = PageSpec(cell=cell, columns=columns, spans=tuple(p.span for p in panels), direction=direction,
                    page=preset, margin=margin, gutter=gutter, border=border, captions=captions,
                    narrations=tuple(bool(p.narration.strip()) for p in panels))
    layout = page_layout(spec, text)
    return Page(title=title, panels=panels, layout=layout, text=text, language=language, background=background,
                footer=footer, renderer=renderer, model=model, version=version)


def page_from_story(story: Story, jobs: Sequence[PanelJob], images: Mapping[int, Image.Image], *,
                    renderer: str, version: str, flagged: Collection[int] = ()) -> Page:
    """The page of a resolved story; `flagged` holds the numbers of panels the safety checker flagged."""
    layout = story.layout
    panels = [
        PagePanel(index=job.index, image=images[job.index], file=job.file, caption=job.caption,
                  narration=panel.narration, dialogue=tuple((d.speaker, d.text) for d in panel.dialogue),
                  span=panel.span, prompt=job.prompt, seed=job.seed, flagged=job.index in flagged)
        for job, panel in zip(jobs, story.panels)
    ]
    footer_parts = [layout.credits.strip()] if layout.credits.strip() else []
    footer_parts.append(f"drawn by the {renderer} renderer" + (f" with {jobs[0].model}" if renderer != "draft" else ""))
    return make_page(
        story.title, panels, cell=(story.render.width, story.render.height), columns=layout.columns,
        direction=layout.direction, preset=layout.page, margin=layout.margin, gutter=layout.gutter,
        border=layout.border, captions=layout.captions, background=layout.background,
        footer=" · ".join(footer_parts) if layout.footer else "", language=story.language,
        renderer=renderer, model=jobs[0].model, version=version,
    )
