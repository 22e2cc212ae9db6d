"""Edits to a story file made for the user, written back with comments, quoting and layout kept, and never over a
change the user saved meanwhile (see `storyboard.story.edits`)."""

from __future__ import annotations

from pathlib import Path

from storyboard.errors import StoryError
from storyboard.resolve import check_panel_number, resolve
from storyboard.story import MAX_SEED, StoryDocument
from storyboard.story.edits import edit_story


def pick_seed(path: str | Path, panel: int, seed: int) -> int:
    """Set panel `panel`'s (1-based) ``seed:`` to `seed` in the story file; return the seed it used before.

    Only that panel's ``seed:`` line changes (or appears, after the panel's last field); the rest of the file
    is kept byte for byte. Pinning the seed on the panel also keeps the picture when panels are later added
    or reordered.
    """
    def change(document: StoryDocument) -> int:
        story = document.story
        check_panel_number(panel, len(story.panels), path)
        if not 0 <= seed <= MAX_SEED:
            raise StoryError(f"must be between 0 and {MAX_SEED} (got {seed})", file=path,
                             field=f"panels[{panel - 1}].seed")
        before = resolve(story)[panel - 1].seed
        panels = document.data["panels"]
        twins = [i + 1 for i, other in enumerate(panels) if other is panels[panel - 1] and i != panel - 1]
        if twins:
            raise StoryError(f"panels {min(panel, twins[0])} and {max(panel, twins[0])} are one YAML mapping (an "
                             f"anchor and its alias), so a seed set on one would change both; write panel {panel} "
                             "out in full first",
                             file=path, line=panels.lc.item(panel - 1)[0] + 1, field=f"panels[{panel - 1}]")
        panels[panel - 1]["seed"] = seed
        return before

    return edit_story(path, change)
