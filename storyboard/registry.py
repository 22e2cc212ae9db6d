"""Registries of backends by name (renderers, LLM providers): ``"module:attribute"`` strings, imported only when
one is chosen, so that a heavy SDK or torch loads only for the work that needs it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from storyboard.errors import StoryboardError


def load_registered(registry: Mapping[str, str], name: str, kind: str, error: type[StoryboardError]) -> Any:
    """The object registered as `name`, imported now; an unknown name raises `error` listing the known ones."""
    try:
        target = registry[name]
    except KeyError:
        raise error(f"unknown {kind} {name!r} (choose from: {', '.join(registry)})") from None
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
