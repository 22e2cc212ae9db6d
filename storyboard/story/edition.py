"""Editions: a story told again in another language, by a file that holds its text only.

::

    edition_of: little_prince.yaml      # the story it translates, relative to this file
    language: en
    title: The Little Prince
    glossary: {小王子: The Little Prince, 狐狸: the fox}   # names and recurring terms, translated once
    panels:                              # by position: caption, narration, dialogue (speakers translated too)
      - caption: "The pilot crash-lands in the Sahara ..."
        dialogue: [{speaker: pilot, text: "..."}]
        source: 3f2a…                    # what the original panel said when it was translated
        locked: true                     # kept as you edited it when `translate` runs again

Everything else (prompts, seeds, characters, layout, render) comes from the original, so the edition's panels have
the original's keys: building it draws nothing the original's build drew.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr

from storyboard.errors import StoryError
from storyboard.story.models import (
    LANGUAGE_CODE,
    MAX_BUBBLE,
    MAX_NAME,
    MAX_TEXT,
    MAX_TITLE,
    Line,
    PlannedBy,
    Story,
    StoryModel,
)

TEXT_FIELDS = ("caption", "narration", "dialogue", "chapter", "source", "locked")


class EditionLine(StoryModel):
    speaker: str = Field("", max_length=MAX_NAME)
    text: str = Field(max_length=MAX_BUBBLE)


class EditionPanel(StoryModel):
    caption: str = Field("", max_length=MAX_TEXT)
    narration: str = Field("", max_length=MAX_TEXT)
    dialogue: list[EditionLine] = Field(default_factory=list)
    chapter: str = Field("", max_length=MAX_TITLE)
    source: str = Field("", max_length=64, description="The original panel's text when it was translated.")
    locked: bool = Field(False, description="`storyboard translate` keeps a locked panel exactly as written.")


class Edition(StoryModel):
    edition_of: str = Field(min_length=1, description="The story this edition translates, relative to this file.")
    language: str = Field(max_length=35, pattern=LANGUAGE_CODE)
    title: str = Field(min_length=1, max_length=MAX_TITLE)
    glossary: dict[str, str] = Field(default_factory=dict, description="Names and terms, translated once.")
    translated_by: PlannedBy | None = None
    panels: list[EditionPanel] = Field(default_factory=list)


class EditionStory(Story):
    """A story built from an edition: the original's story with the edition's text; `original` is the original's
    file, and `glossary` the edition's names."""

    _original: Path | None = PrivateAttr(None)
    _original_language: str = PrivateAttr("en")
    _glossary: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def original(self) -> Path | None:
        return self._original

    @property
    def glossary(self) -> dict[str, str]:
        return self._glossary


def original_of(story: Story) -> Path | None:
    """The original's file, for a story read from an edition; None for any other story."""
    return story.original if isinstance(story, EditionStory) else None


def display_name(story: Story, name: str) -> str:
    """How the page names character `name`: in an edition, as its glossary translates it."""
    return story.glossary.get(name, name) if isinstance(story, EditionStory) else name


def panel_source(panel: Any) -> str:
    """A short hash of what a panel of the original says (caption, narration, dialogue, chapter): an edition keeps
    it, so that `translate` knows which panels changed since."""
    said = {"caption": panel.caption, "narration": panel.narration, "chapter": panel.chapter,
            "dialogue": [[line.speaker, line.text] for line in panel.dialogue]}
    return hashlib.sha256(json.dumps(said, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def is_edition(data: Any) -> bool:
    return isinstance(data, dict) and "edition_of" in data


def text_only_problem(data: dict[str, Any]) -> tuple[str, tuple[str | int, ...]] | None:
    """The first field an edition may not hold (it holds text only), with its path."""
    for key in data:
        if key not in Edition.model_fields:
            return (f"an edition holds text only (title, language, glossary, panels' caption, narration and "
                    f"dialogue); {key} comes from the story it translates", (key,))
    panels = data.get("panels")
    for i, panel in enumerate(panels if isinstance(panels, list) else []):
        for key in panel if isinstance(panel, dict) else ():
            if key not in EditionPanel.model_fields:
                return (f"an edition holds text only (caption, narration, dialogue); {key} comes from the story it "
                        "translates", ("panels", i, key))
    return None


def apply_edition(original: Story, edition: Edition, original_path: Path, file: str | Path | None) -> EditionStory:
    """The original story told in the edition's language: its text replaced by the edition's, panel by panel."""
    have, need = len(edition.panels), len(original.panels)
    if have != need:
        if have < need:
            todo = f"add panel{'s' if need - have > 1 else ''} {_numbers(have + 1, need)}"
        else:
            todo = f"remove panel{'s' if have - need > 1 else ''} {_numbers(need + 1, have)}"
        raise StoryError(f"the edition has {have} panels and {original_path.name} has {need}: {todo} "
                         "(`storyboard translate` fills what is missing)", file=file, field="panels")
    panels = []
    for n, (panel, text) in enumerate(zip(original.panels, edition.panels)):
        if len(text.dialogue) != len(panel.dialogue):
            raise StoryError(f"{len(text.dialogue)} line(s), and panel {n + 1} of "
                             f"{original_path.name} has {len(panel.dialogue)}", file=file,
                             field=f"panels[{n}].dialogue")
        dialogue = [Line(speaker=line.speaker, text=line.text) for line in text.dialogue]
        panels.append(panel.model_copy(update={"caption": text.caption, "narration": text.narration,
                                               "dialogue": dialogue, "chapter": text.chapter or panel.chapter}))
    # The original's own validated values (its render keeps which fields were set, which decides defaults later),
    # with the edition's words.
    values = {name: getattr(original, name) for name in Story.model_fields}
    story = EditionStory.model_construct(original.model_fields_set, **{
        **values, "title": edition.title, "language": edition.language, "panels": panels})
    story._original, story._original_language = original_path, original.language
    story._glossary = dict(edition.glossary)
    return story


def _numbers(first: int, last: int) -> str:
    return str(first) if first == last else f"{first} to {last}"


def editions_of(story_path: str | Path, story: Story) -> list[tuple[str, Path]]:
    """The editions of the story built from `story_path` (`<stem>.<language>.yaml` files beside the original that
    name it in `edition_of`), as (language, path), the original first; [] when it has none."""
    from storyboard.story.reader import parse_yaml, read_text

    original = original_of(story)
    base = original if original is not None else Path(story_path)
    language = story._original_language if isinstance(story, EditionStory) else story.language
    found = []
    for other in sorted(base.parent.glob(f"{base.stem}.*{base.suffix}")):
        try:
            data = parse_yaml(read_text(other), other)
        except StoryError:
            continue
        if is_edition(data) and (other.parent / str(data["edition_of"])).resolve() == base.resolve() \
                and isinstance(data.get("language"), str):
            found.append((data["language"], other))
    return [(language, base), *found] if found else []
