"""The provenance record a build writes into each PNG it draws or publishes (the ``storyboard`` text chunk)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL.PngImagePlugin import PngInfo

from storyboard import __version__
from storyboard.provenance import PARAMETERS, STORYBOARD, a1111_parameters
from storyboard.resolve import KeyedJob
from storyboard.story import Story


@dataclass
class Recorder:
    """Where images are drawn for: the story, its file, the ``--out`` and ``--model`` given, and whether they are
    candidates of `storyboard variants`."""

    story: Story
    story_path: str
    out: str | None  # the --out given, when it is not the default folder
    model: str | None  # the --model given
    variant: bool = False

    def record(self, keyed: KeyedJob, renderer: str, info: Mapping[str, Any] | None = None,
               version: str = __version__) -> dict[str, Any]:
        job = keyed.job
        where = {"character": job.character} if job.is_anchor else {"panel": job.index}
        return {
            "storyboard": version,
            "key": keyed.key,
            "renderer": renderer,
            "identity": keyed.identity,
            "job": job.to_dict(),
            "story": {"title": self.story.title, "file": self.story_path, **where,
                      "panels": len(self.story.panels)},
            "build": {"out": self.out, "model": self.model},
            "variant": self.variant,
            **({"references": dict(keyed.references)} if keyed.references else {}),
            **({"info": info} if info else {}),
        }

    def text(self, keyed: KeyedJob, renderer: str, info: Mapping[str, Any] | None = None,
             version: str = __version__) -> str:
        # ASCII keeps the chunk a plain tEXt chunk, so rewriting an unchanged record gives identical bytes.
        return json.dumps(self.record(keyed, renderer, info, version), sort_keys=True, ensure_ascii=True,
                          separators=(",", ":"))

    def pnginfo(self, keyed: KeyedJob, renderer: str, info: Mapping[str, Any] | None = None, *,
                parameters: bool = True) -> PngInfo:
        """The text chunks of a freshly drawn image: A1111's ``parameters`` (not for a user's own picture) and
        the record."""
        pnginfo = PngInfo()
        if parameters:
            pnginfo.add_text(PARAMETERS, a1111_parameters(keyed.job, dict(keyed.identity), renderer))
        pnginfo.add_text(STORYBOARD, self.text(keyed, renderer, info))
        return pnginfo
