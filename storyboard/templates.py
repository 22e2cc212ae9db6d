"""The one jinja2 environment every template is rendered with: the page, the live layer and the planner's prompts."""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2


def templates_dir() -> Path:
    """Templates ship inside the wheel as storyboard/templates; in a source checkout they sit at the top level."""
    packaged = Path(__file__).resolve().parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


@functools.cache
def environment(autoescape: bool = True) -> jinja2.Environment:
    """The templates' environment; without autoescaping for plain text such as the planner's prompts."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
