"""Building stories: `build` one, `build_many` with a shared renderer, `variants` of one panel.

    orchestrate   build, top to bottom: load → resolve → key → draw what is missing → publish → compose → manifest
    options       what a build is asked to do (`Target`, `Drawing`, `BuildOptions`)
    keys          content keys (`panel_key`), anchors first
    draw          each distinct key drawn once, through the workers, into every cache that needs it
    record        the provenance record in each PNG
    publish       cached images to their files, pages composed when their key changed
    manifest      manifest.json
    story_build   one story's build: prepare, (draw), finish
    batch         several stories at once
    variants      candidate seeds for one panel

The package is named so that ``storyboard.build`` stays the function.
"""

from storyboard.building.batch import BatchResult, StoryOutcome, build_many
from storyboard.building.keys import panel_key, picture_key
from storyboard.building.options import BuildOptions, Drawing, Target
from storyboard.building.orchestrate import build, build_locked
from storyboard.building.progress import BuildProgress
from storyboard.building.results import BuildResult, PanelResult
from storyboard.building.variants import MAX_VARIANTS, VariantsResult, candidate_seeds, variants, variants_locked

__all__ = [
    "MAX_VARIANTS",
    "BatchResult",
    "BuildOptions",
    "BuildProgress",
    "BuildResult",
    "Drawing",
    "PanelResult",
    "StoryOutcome",
    "Target",
    "VariantsResult",
    "build",
    "build_locked",
    "build_many",
    "candidate_seeds",
    "panel_key",
    "picture_key",
    "variants",
    "variants_locked",
]
