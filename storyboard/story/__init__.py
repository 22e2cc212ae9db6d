"""The story file.

    models     what a story is (pydantic): every field, its default and its checks
    film       film grammar: shots, aspect ratios, the animatic's settings, the boards in time
    reader     file → text → YAML → Story, hostile files refused cheaply, errors with file and line
    messages   a ValidationError as one line naming the field
    document   editing the file in place (`pick`, `plan`), keeping comments and formatting
"""

from storyboard.story.document import StoryDocument, dump_document, load_document, save_document, story_of
from storyboard.story.film import Animatic, Board, Shot, timeline
from storyboard.story.models import (
    DEFAULT_ANCHOR,
    DEFAULT_MODEL,
    MAX_BUBBLES,
    MAX_SEED,
    MAX_SIZE,
    MIN_SIZE,
    Character,
    FieldProblem,
    Layout,
    Line,
    Lora,
    Panel,
    PlannedBy,
    Render,
    Story,
    StoryDraft,
    StoryModel,
    Style,
)
from storyboard.story.reader import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_VALUES,
    load_story,
    parse_yaml,
    read_text,
    story_from_yaml,
)

__all__ = [
    "Animatic",
    "Board",
    "Shot",
    "timeline",
    "DEFAULT_ANCHOR",
    "DEFAULT_MODEL",
    "MAX_BUBBLES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_SEED",
    "MAX_SIZE",
    "MAX_VALUES",
    "MIN_SIZE",
    "Character",
    "FieldProblem",
    "Layout",
    "Line",
    "Lora",
    "Panel",
    "PlannedBy",
    "Render",
    "Story",
    "StoryDocument",
    "StoryDraft",
    "StoryModel",
    "Style",
    "dump_document",
    "load_document",
    "load_story",
    "parse_yaml",
    "read_text",
    "save_document",
    "story_from_yaml",
    "story_of",
]
