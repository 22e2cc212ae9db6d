"""The Stable Diffusion renderer, on Hugging Face diffusers.

Three steps, each with its own cost: `prepare` fetches from the hub what the jobs need (once per build, before
keying), `identity` fingerprints the model from files on disk (for every panel, so it never imports torch nor touches
the network), and `render` loads the pipeline once per build, only when a panel has to be drawn. Each panel is drawn
alone with its own `torch.Generator`, so its pixels depend only on its own inputs.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from storyboard.errors import RenderError
from storyboard.hub import first_line, quiet_libraries
from storyboard.render import Reference, Rendered, StepCallback
from storyboard.render.diffusers.downloads import Downloads
from storyboard.render.diffusers.families import family_for
from storyboard.render.diffusers.identity import identity_memo, identity_of
from storyboard.render.diffusers.load import LOW_VRAM_HINT, is_out_of_memory, open_pipeline
from storyboard.render.diffusers.locate import locate, locate_config, pipeline_class_name
from storyboard.render.diffusers.loras import LoadedLoras, lora_file
from storyboard.render.diffusers.prompts import anchor_embeddings, report_cuts
from storyboard.render.diffusers.scheduler import Schedulers, check_scheduler, effective_scheduler
from storyboard.resolve import PanelJob

log = logging.getLogger("storyboard")

#: What of a job's identity names the weights a loaded pipeline holds.
LOADED_FROM = ("model", "sha256", "folder_sha256", "revision", "config", "vae", "dtype")


class DiffusersRenderer:
    """Draws panels with a diffusers text-to-image pipeline."""

    name = "diffusers"
    reads_references = True

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.loads = 0  # how many times a model was loaded; once per build at most
        self._loaded_for: tuple[Any, ...] | None = None
        self._device: Any = None
        self._schedulers: Schedulers | None = None
        self._loras: LoadedLoras | None = None
        self._adapter: Any = None  # the IP-Adapter loaded into the pipeline, if any
        self._identities: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._downloads = Downloads()
        self._prepared_anchors: dict[Any, dict[str, Any]] = {}  # for the render call under way
        self._recorded_steps: Any = None

    def prepare(self, jobs: Sequence[PanelJob]) -> None:
        """Download the hub models, configs, LoRAs and IP-Adapter weights `jobs` name that the Hugging Face cache
        lacks (nothing with HF_HUB_OFFLINE=1). A download that fails raises nothing here: `identity` and `render`
        raise it for the jobs that need it, so the build may still reuse the panels it drew before."""
        self._downloads.fetch(jobs)

    def identity(self, job: PanelJob) -> dict[str, Any]:
        self._downloads.raise_failed(job)
        memo = identity_memo(job)
        if memo not in self._identities:
            if len(self._identities) > 256:
                self._identities.clear()
            self._identities[memo] = identity_of(job, self.name)
        return self._identities[memo]

    # ------------------------------------------------------------------ drawing

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        """Draw `jobs`. What they need from the hub is fetched first if the cache lacks it: a worker on another
        machine (Ray) has its own cache, and was not prepared by the build."""
        if not jobs:
            return
        self.prepare(jobs)
        _check_before_loading(jobs)
        from storyboard.render.diffusers.reference import RecordedSteps

        self._prepared_anchors, self._recorded_steps = {}, RecordedSteps()
        try:
            pipe = self._load(jobs[0])
            _check_loaded(pipe, jobs)
            for job in jobs:
                yield self._draw(pipe, job, on_step, [references[name] for name in job.references]
                                 if references else [])
        except Exception as exc:
            if is_out_of_memory(exc):
                raise RenderError(f"out of GPU memory ({first_line(exc)}); {LOW_VRAM_HINT}") from None
            raise

    def _draw(self, pipe: Any, job: PanelJob, on_step: StepCallback | None,
              references: Sequence[Reference] = ()) -> Rendered:
        import torch

        family = family_for(type(pipe).__name__)
        self._schedulers.use(pipe, effective_scheduler(job, family))
        self._loras.use(job)
        generator_device = "cpu" if self._device.type == "mps" else self._device
        generator = torch.Generator(device=generator_device).manual_seed(job.seed)
        accepted = set(inspect.signature(pipe.__call__).parameters)
        text, cuts = family.text_args(pipe, job)
        args: dict[str, Any] = {
            **text, "width": job.width, "height": job.height, "num_inference_steps": job.steps,
            "guidance_scale": job.guidance, "generator": generator, "num_images_per_prompt": 1, "output_type": "pil",
            **_step_arguments(job, on_step, accepted),
        }
        lost = report_cuts(job, cuts)
        reading, extra = self._consistency(pipe, job, references, generator_device)
        args.update(extra)
        with torch.inference_mode(), quiet_libraries(), reading:
            output = pipe(**{k: v for k, v in args.items() if k in accepted})
        info: dict[str, Any] = {"dropped_words": lost} if lost else {}
        flags = getattr(output, "nsfw_content_detected", None)
        if flags and flags[0]:
            info["nsfw"] = True
        return Rendered(job, output.images[0], info)

    def _consistency(self, pipe: Any, job: PanelJob, references: Sequence[Reference],
                     generator_device: Any) -> tuple[contextlib.AbstractContextManager[None], dict[str, Any]]:
        """What makes the panel read its anchors while it is drawn: a context to draw in, and extra pipeline
        arguments. A panel that reads none is drawn exactly as without anchors."""
        options = dict(job.options)
        mode = options.get("consistency", "none") if references else "none"
        strength = float(options.get("consistency_strength", 0.5))
        if mode == "reference":
            from storyboard.render.diffusers.reference import ReferenceReader

            reader = ReferenceReader(pipe, references, strength, lambda prompt: anchor_embeddings(pipe, prompt),
                                     generator_device, self._prepared_anchors, self._recorded_steps,
                                     weights=json.dumps(options.get("loras") or [], sort_keys=True))
            return reader.reading(), {}
        if mode == "ip_adapter":
            return self._adapter_for(pipe, options["ip_adapter"]).reading([r.image for r in references], strength)
        if self._adapter is not None:
            return self._adapter.detached(), {}
        return contextlib.nullcontext(), {}

    def _adapter_for(self, pipe: Any, spec: str) -> Any:
        from storyboard.render.diffusers.ip_adapter import LoadedAdapter

        if self._adapter is None or self._adapter.spec != spec:
            if self._adapter is not None:
                pipe.unload_ip_adapter()
            self._adapter = None
            self._adapter = LoadedAdapter(pipe, spec)
        return self._adapter

    # ------------------------------------------------------------------ loading (once)

    def _load(self, job: PanelJob) -> Any:
        """The pipeline for `job`: the one loaded already when it holds the same weights with the same settings."""
        options = dict(job.options)
        identity = self.identity(job)  # also raises, before anything is loaded, for a model that is not there
        model = {k: v for k, v in identity.items() if k in LOADED_FROM}
        wanted = (json.dumps(model, sort_keys=True), options.get("config"), options.get("safety_checker", True),
                  options.get("attention_slicing", False), options.get("vae_tiling", False), job.runtime)
        if self.pipeline is not None and self._loaded_for == wanted:
            return self.pipeline
        self.unload()  # another model (or the same one saved again): free the old one before loading the new
        pipe, device = open_pipeline(job, locate(job.model))
        self.pipeline, self._loaded_for, self._device, self._adapter = pipe, wanted, device, None
        self._schedulers, self._loras = Schedulers(pipe), LoadedLoras(pipe)
        self.loads += 1
        return pipe

    def unload(self) -> None:
        """Let go of the loaded pipeline and give its memory back (GPU memory included)."""
        if self.pipeline is None:
            return
        device = self._device
        self.pipeline, self._loaded_for, self._adapter = None, None, None
        self._schedulers, self._loras = None, None
        import gc

        gc.collect()
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()


def _check_before_loading(jobs: Sequence[PanelJob]) -> None:
    """Problems the story can fix, found before the (slow) model load."""
    source = locate(jobs[0].model)
    config = dict(jobs[0].options).get("config")
    expected = pipeline_class_name(locate_config(config) if config and source.kind == "file" else source)
    for job in jobs:
        check_scheduler(job, family_for(expected), expected)
        for spec in dict(job.options).get("loras", []):
            lora_file(spec)


def _check_loaded(pipe: Any, jobs: Sequence[PanelJob]) -> None:
    """What can be checked only once the pipeline is loaded: the scheduler against its class, the sizes it can
    draw; and what the user should hear once about how this family reads the story."""
    loaded = type(pipe).__name__
    family = family_for(loaded)
    for job in jobs:
        check_scheduler(job, family, loaded)
    multiple = family.size_multiple(pipe)
    for job in jobs:
        for label, value in (("width", job.width), ("height", job.height)):
            if value % multiple:
                lower, upper = value - value % multiple, value - value % multiple + multiple
                raise RenderError(f"render.{label} {value} does not suit {job.model!r}: it draws sizes that are "
                                  f"multiples of {multiple} (try {lower} or {upper})")
    for note in family.notes(pipe, list(jobs)):
        log.warning("%s", note)


def _step_arguments(job: PanelJob, on_step: StepCallback | None, accepted: set[str]) -> dict[str, Any]:
    """The pipeline arguments that report each denoising step to `on_step`, in whichever way the pipeline takes."""
    if on_step is None:
        return {}
    if "callback_on_step_end" in accepted:
        def step_end(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            on_step(job, i + 1, getattr(p, "num_timesteps", None) or job.steps)
            return kwargs

        return {"callback_on_step_end": step_end}
    if "callback" in accepted:
        return {"callback": lambda i, t, latents: on_step(job, i + 1, job.steps), "callback_steps": 1}
    return {}
