"""Editing a story file in place: its round-trip YAML (comments, order, quoting kept) and how the file was written
(indentation, line endings, byte-order mark), so that saving it back changes only what was edited."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyboard.story.models import Story
from storyboard.story.reader import decode, parse_yaml, read_bytes, story_from_yaml


@dataclass
class Formatting:
    """How a YAML file is written: (mapping, sequence, offset) indentation, line endings, and a byte-order mark."""

    indent: tuple[int, int, int] = (2, 4, 2)
    newline: str = "\n"
    bom: bool = False


@dataclass
class StoryDocument:
    """A story file read for editing: `data` is ruamel's round-trip mapping, to edit in place; `story` is the story
    validated when the file was read (a `StoryDraft` if panels were optional)."""

    data: Any
    story: Story
    formatting: Formatting = field(default_factory=Formatting)

    def dump(self) -> str:
        """The document as YAML text, written the way the file was."""
        return dump_yaml(self.data, self.formatting)


def load_document(path: str | Path, *, require_panels: bool = True) -> StoryDocument:
    """The story file at `path`, for edits that keep comments, order, quoting and indentation.

    The file is validated first (see `story_from_yaml`), so callers only ever edit a valid story. Pass the result to
    `save_document`.
    """
    return document_from_bytes(read_bytes(path), path, require_panels=require_panels)


def document_from_bytes(data: bytes, path: str | Path, *, require_panels: bool = True) -> StoryDocument:
    """`load_document` of the file's bytes, read already."""
    text = decode(data, path)
    story = story_from_yaml(text, file=path, require_panels=require_panels)
    # ruamel round-trips CRLF text badly (blank lines lost, "\r" kept in comments) and writes "\n" and no BOM:
    # it edits the "\n" text, and a rewrite restores the file's own line endings and BOM.
    parsed = parse_yaml(text.replace("\r\n", "\n"), path)
    formatting = Formatting(_guess_indent(text), "\r\n" if "\r\n" in text else "\n", data.startswith(b"\xef\xbb\xbf"))
    return StoryDocument(parsed, story, formatting)


def story_of(document: StoryDocument) -> Story:
    """The story `load_document` validated when it read `document`."""
    return document.story


def dump_document(document: StoryDocument) -> str:
    return document.dump()


def dump_yaml(data: Any, formatting: Formatting) -> str:
    """`data` (ruamel round-trip values) as YAML text with `formatting`; long prompts are never re-wrapped."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.width = 1_000_000
    yaml.preserve_quotes = True
    mapping, sequence, offset = formatting.indent
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    buffer = io.StringIO()
    yaml.dump(data, buffer)
    text = buffer.getvalue()
    if formatting.newline == "\r\n":
        text = text.replace("\n", "\r\n")
    return ("\ufeff" if formatting.bom else "") + text


def save_document(path: str | Path, document: StoryDocument) -> Story:
    """Validate `document` as a story and write it to `path` atomically; return the validated Story."""
    from storyboard.files import atomic_write_text

    text = document.dump()
    story = story_from_yaml(text, file=path)
    atomic_write_text(path, text)
    return story


def _guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, offset) indentation as written in `text`, so a rewrite keeps the user's layout."""
    mapping, offset = None, None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for parent, child in zip(lines, lines[1:]):
        if not parent.rstrip().endswith(":") or parent.lstrip().startswith("- "):
            continue
        step = (len(child) - len(child.lstrip())) - (len(parent) - len(parent.lstrip()))
        if child.lstrip().startswith("- "):
            offset = step if offset is None and step >= 0 else offset
        elif step > 0 and mapping is None:
            mapping = step
    mapping = mapping or 2
    offset = 2 if offset is None else offset
    return mapping, offset + 2, offset
