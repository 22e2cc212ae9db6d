"""The HTML page, rendered from `templates/page.html.j2` with autoescaping (captions are text, never markup)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2


def templates_dir() -> Path:
    """Templates ship inside the wheel as storyboard/templates; in a source checkout they sit at the top level."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent.parent / "templates"


@functools.cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def page_html(page: Any, self_contained: bool = False) -> str:
    return ""
