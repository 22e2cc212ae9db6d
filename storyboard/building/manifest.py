"""manifest.json: what a build made, for people and programs (and for the next build of the same folder)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from storyboard import __version__
from storyboard.output import BOOK_PDF, INDEX_HTML, PAGE_PDF, PAGE_PNG, OutputFolder, book_page_file

if TYPE_CHECKING:
    from storyboard.building.results import BuildResult


def manifest(result: BuildResult, story_path: str) -> dict[str, Any]:
    return {
        "storyboard": __version__,
        "story": str(story_path),
        "title": result.story.title,
        **({"planned_by": result.story.planned_by.model_dump()} if result.story.planned_by else {}),
        "renderer": result.renderer,
        "page": _page_entry(result),
        "panels": [
            {
                "index": p.job.index,
                "file": p.job.file,
                "prompt": p.job.prompt,
                "negative_prompt": p.job.negative_prompt,
                "seed": p.job.seed,
                "width": p.job.width,
                "height": p.job.height,
                "model": p.job.model,
                "steps": p.job.steps,
                "guidance": p.job.guidance,
                "caption": p.job.caption,
                "characters": list(p.job.characters),
                "key": p.key,
                "rendered": p.rendered,
                "page": p.page,
                "identity": p.identity,
                **({"references": p.references} if p.references else {}),
                **({"info": p.info} if p.info else {}),
            }
            for p in result.panels
        ],
        "characters": [
            {
                "name": c.job.character,
                "file": c.job.file,
                "key": c.key,
                "seed": c.job.seed,
                "prompt": c.job.prompt,
                "rendered": c.rendered,
                **({"image": result.story.characters[c.job.character].image} if c.job.image else {}),
            }
            for c in result.characters
        ],
    }


def manifest_bytes(result: BuildResult, story_path: str) -> bytes:
    return (json.dumps(manifest(result, story_path), ensure_ascii=False, indent=2) + "\n").encode()


def _page_entry(result: BuildResult) -> dict[str, Any]:
    layout = result.story.layout
    if not result.pages:
        return {"png": PAGE_PNG, "pdf": PAGE_PDF, "html": INDEX_HTML,
                **layout.model_dump(include={"columns", "direction", "page"}), "key": result.page_key}
    return {"pdf": BOOK_PDF, "html": INDEX_HTML,
            **layout.model_dump(include={"columns", "rows", "direction", "page"}), "key": result.page_key,
            "pages": [{"number": page.number, "png": book_page_file(page.number), "panels": list(page.panels),
                       **({"chapter": page.chapter} if page.chapter else {}), "key": key}
                      for page, key in result.pages]}


def previous_manifest(out: OutputFolder) -> dict[str, Any]:
    """The manifest the last build of `out` wrote; {} if there is none, or it is not one storyboard wrote."""
    try:
        data = json.loads(out.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def previous_identities(previous: dict[str, Any], renderer: str) -> list[dict[str, Any]]:
    """The renderer identities the last build recorded, for when the model cannot be identified now."""
    panels = previous.get("panels") if previous.get("renderer") == renderer else None
    found: list[dict[str, Any]] = []
    for panel in panels if isinstance(panels, list) else []:
        identity = panel.get("identity") if isinstance(panel, dict) else None
        if isinstance(identity, dict) and identity not in found:
            found.append(identity)
    return found


def previous_page_keys(previous: dict[str, Any]) -> tuple[str | None, dict[Any, Any]]:
    """The page key the last build recorded, and its book pages' keys by page number."""
    before = previous.get("page") if isinstance(previous.get("page"), dict) else {}
    pages = {entry.get("number"): entry.get("key") for entry in before.get("pages") or [] if isinstance(entry, dict)}
    return before.get("key"), pages
