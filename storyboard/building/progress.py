"""What a build tells whoever watches it: the CLI's progress bar, the live page's events, a Session's cancel."""

from __future__ import annotations

from storyboard.resolve import PanelJob


class BuildProgress:
    """Receives build events; the CLI shows them as a progress bar or plain lines. The default ignores them.

    Jobs are panels and character anchors (`PanelJob.label` names either).
    """

    def start(self, jobs: list[PanelJob], to_render: list[PanelJob], renderer: str) -> None: ...

    def drawing_on(self, job: PanelJob, worker: str) -> None:
        """`worker` ("local", or a Ray worker's name) began drawing `job`; `panel_started` follows."""

    def panel_started(self, job: PanelJob) -> None: ...

    def step(self, job: PanelJob, step: int, total: int) -> None: ...

    def panel_done(self, job: PanelJob) -> None: ...

    def cached(self, job: PanelJob, key: str) -> None:
        """`job`'s image was just saved in the cache under `key` (a live page can show it at once)."""

    def composing(self) -> None: ...
