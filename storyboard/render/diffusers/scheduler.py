"""The scheduler a panel is drawn with (`render.scheduler`, see `storyboard.schedulers`), checked against the model
family before the model is loaded, and switched on the loaded pipeline per panel."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from storyboard.errors import RenderError
from storyboard.hub import quiet_libraries
from storyboard.render.diffusers.families import Family
from storyboard.render.diffusers.locate import ModelSource
from storyboard.resolve import PanelJob
from storyboard.schedulers import LABELS_BY_CLASS, SCHEDULERS


def effective_scheduler(job: PanelJob, family: Family) -> str:
    """The scheduler `job` is drawn with: the story's, except that a flow-matching model whose story left the
    (DDPM-family) default alone keeps its own."""
    name = dict(job.options).get("scheduler", "default")
    if family.flow_matching and not dict(job.runtime).get("scheduler_chosen", True) \
            and not SCHEDULERS[name].flow_matching:
        return "default"
    return name


def check_scheduler(job: PanelJob, family: Family, pipeline_class: str) -> None:
    """Refuse a scheduler that does not fit the family, or whose package is missing, before loading anything."""
    name = effective_scheduler(job, family)
    if pipeline_class:  # unknown before loading a bare checkpoint file; checked again once it is loaded
        family.check_scheduler(name, pipeline_class)
    spec = SCHEDULERS[name]
    if spec.needs and importlib.util.find_spec(spec.needs) is None:
        raise RenderError(f"scheduler {name!r} needs the {spec.needs} package: pip install {spec.needs}")


def sampler_label(scheduler: str, source: ModelSource | None) -> str:
    """The A1111-style sampler name of `scheduler`; for "default", that of the scheduler the model ships."""
    spec = SCHEDULERS[scheduler]
    if spec.cls is not None or source is None or source.path is None or source.kind == "file":
        return spec.label
    try:
        config = json.loads((source.path / "scheduler" / "scheduler_config.json").read_text("utf-8"))
        return LABELS_BY_CLASS.get(config.get("_class_name", ""), spec.label)
    except (OSError, ValueError, AttributeError):
        return spec.label


class Schedulers:
    """The schedulers of one loaded pipeline, each made once from the config of the one the model ships."""

    def __init__(self, pipe: Any) -> None:
        self.made: dict[str, Any] = {"default": pipe.scheduler}

    def use(self, pipe: Any, name: str) -> None:
        if name not in self.made:
            import diffusers

            spec = SCHEDULERS[name]
            cls = getattr(diffusers, spec.cls)
            with quiet_libraries():
                self.made[name] = cls.from_config(self.made["default"].config, **spec.config)
        pipe.scheduler = self.made[name]
