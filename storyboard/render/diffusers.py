"""The Stable Diffusion renderer, on Hugging Face diffusers.

`render.model` (or `--model`) names a hub id (read from the normal Hugging Face cache, so a downloaded model works
with `HF_HUB_OFFLINE=1`), a local diffusers folder, or a single `.safetensors` / `.ckpt` checkpoint. The pipeline
class comes from the model itself (SD 1.x/2.x, SDXL, Kolors...), is loaded once per build and only when a panel has
to be drawn. Each panel is drawn alone with its own `torch.Generator`, so its pixels depend only on its own inputs.

`identity()` must stay cheap: it never imports torch or diffusers and never touches the network. It fingerprints
the model from files on disk and decides the device class with a probe (see `probe_device`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyboard.errors import BuildError, ModelNotFound, RenderError
from storyboard.files import atomic_write_text, user_cache_dir
from storyboard.render import Reference, Rendered, StepCallback
from storyboard.render.families import Cut, Family, dropped_words, family_for
from storyboard.resolve import PanelJob
from storyboard.schedulers import LABELS_BY_CLASS, SCHEDULERS

__all__ = ["DiffusersRenderer", "dropped_words", "locate", "probe_device"]

VERSION = "1"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
LOW_VRAM_HINT = ("set cpu_offload: true, attention_slicing: true and vae_tiling: true under render: in the story "
                 "(or lower width/height)")

log = logging.getLogger("storyboard")


# --------------------------------------------------------------------------- where the model is


@dataclass(frozen=True)
class ModelSource:
    """What `render.model` names, found without torch and without the network."""

    name: str  # as the user wrote it
    kind: str  # "hub", "folder" or "file"
    path: Path | None = None  # folder or file; for "hub" the cached snapshot, if any
    revision: str | None = None  # hub: the commit of the cached snapshot


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, found the way huggingface_hub finds it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def cached_snapshot(repo_id: str, revision: str = "main") -> tuple[Path, str] | None:
    """The cached snapshot folder and commit of a hub repo, or None; reads the cache's files only."""
    repo = hub_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / revision
    try:
        commit = ref.read_text(encoding="utf-8").strip() if ref.is_file() else revision
    except OSError:
        return None
    snapshot = repo / "snapshots" / commit
    if not (snapshot / "model_index.json").is_file():
        return None
    return snapshot, commit


def locate(model: str) -> ModelSource:
    """Decide whether `model` is a checkpoint file, a diffusers folder or a hub id."""
    path = Path(model).expanduser()
    if path.is_file():
        return ModelSource(model, "file", path.resolve())
    if path.is_dir():
        return ModelSource(model, "folder", path.resolve())
    looks_local = (model.lower().endswith(CHECKPOINT_SUFFIXES) or path.is_absolute() or model.startswith((".", "~"))
                   or "\\" in model or not _HUB_ID.match(model))
    if looks_local:
        raise ModelNotFound(f"model {model!r} not found: no such file or folder ({path.resolve()}); "
                            f"{_fix_hint(None)}")
    cached = cached_snapshot(model)
    if cached:
        return ModelSource(model, "hub", cached[0], cached[1])
    return ModelSource(model, "hub")


def _fix_hint(repo_id: str | None) -> str:
    download = ""
    if repo_id:
        download = f"download it with `storyboard download {repo_id}`, "
    return f"{download}pass a local diffusers folder or .safetensors file with --model, or use --renderer draft"


def _not_cached(repo_id: str) -> ModelNotFound:
    return ModelNotFound(f"model {repo_id!r} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                         f"HF_HUB_OFFLINE=1 forbids downloading it; {_fix_hint(repo_id)}")


def download(model: str) -> Path:
    """Fetch the files a diffusers pipeline needs from the hub into its cache; return the snapshot folder.

    `DiffusionPipeline.download` takes only what `from_pretrained` will read (one set of weights, no single-file
    checkpoints or other variants), a fraction of what the whole repository holds.
    """
    source = locate(model)
    if source.kind != "hub":
        raise ModelNotFound(f"model {model!r} is a local {source.kind}; there is nothing to download")
    if hub_offline():
        raise ModelNotFound(f"cannot download {model!r}: HF_HUB_OFFLINE=1 forbids it; unset it and try again")
    diffusers = _import_diffusers()
    logger = logging.getLogger("diffusers")
    level = logger.level
    logger.setLevel(logging.ERROR)  # its "Couldn't connect to the Hub" would precede our one line
    try:
        return Path(diffusers.DiffusionPipeline.download(model))
    except Exception as exc:
        names, root = _causes(exc)
        if names & {"GatedRepoError", "RepositoryNotFoundError"}:
            raise _load_error(source, exc) from None
        raise ModelNotFound(f"cannot download {model!r} from the Hugging Face hub ({type(root).__name__}: "
                            f"{_first_line(root)}); check the network connection and the model id") from None
    finally:
        logger.setLevel(level)


# --------------------------------------------------------------------------- cheap fingerprints


_folder_hashes: dict[tuple[Path, tuple[tuple[str, int, int], ...]], str] = {}
_file_hashes: dict[tuple[str, int, int], str] = {}


def _folder_files(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative name, size, mtime) of every file in a model folder, hidden ones left out: cheap, no reading."""
    found = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        stat = path.stat()
        found.append((rel.as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(found)


def folder_fingerprint(folder: Path) -> str:
    """sha256 over a diffusers folder: the contents of its *.json configs, and the names, sizes and modification
    times of every other file (weights, tokenizer files).

    Remembered by the folder's file list with sizes and times, so a folder saved again in place (a fine-tune
    written over the old weights, an edited config) gets a new fingerprint in a process that runs for hours.
    """
    files = _folder_files(folder)
    if (folder, files) in _folder_hashes:
        return _folder_hashes[folder, files]
    digest = hashlib.sha256()
    for rel, size, mtime_ns in files:
        digest.update(rel.encode() + b"\0")
        if rel.endswith(".json"):
            digest.update((folder / rel).read_bytes())
        else:
            digest.update(f"{size}:{mtime_ns}".encode())
        digest.update(b"\0")
    if len(_folder_hashes) > 64:
        _folder_hashes.clear()
    _folder_hashes[folder, files] = digest.hexdigest()
    return _folder_hashes[folder, files]


def model_stamp(model: str) -> tuple[Any, ...]:
    """What changes when the model `model` names changes on disk, read cheaply (stat calls, the hub's ref file):
    part of the memo key of identities, so a long-running process never keeps a stale one."""
    path = Path(model).expanduser()
    try:
        if path.is_file():
            stat = path.stat()
            return ("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if path.is_dir():
            return ("folder", str(path.resolve()), _folder_files(path))
    except OSError:
        return ("gone", model)
    return ("hub", cached_snapshot(model) if _HUB_ID.match(model) else None)


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint file, remembered by path, size and mtime in `<user cache>/storyboard/hashes.json`
    (several GB take seconds to hash; the second build should not)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _file_hashes:
        return _file_hashes[key]
    store = user_cache_dir() / "hashes.json"
    try:
        known = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    entry = known.get(str(path)) if isinstance(known, dict) else None
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        sha = str(entry.get("sha256"))
    else:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        known = known if isinstance(known, dict) else {}
        known[str(path)] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha}
        try:
            atomic_write_text(store, json.dumps(known, indent=1, sort_keys=True))
        except BuildError:
            pass  # an unwritable cache only costs the next build a re-hash
    _file_hashes[key] = sha
    return sha


def model_identity(source: ModelSource) -> dict[str, Any]:
    if source.kind == "file":
        sha = file_sha256(source.path)
        # `model_hash` is the A1111 "AutoV2" short hash, as shown by civitai and in A1111 PNG parameters.
        return {"model": source.name, "sha256": sha, "model_hash": sha[:10]}
    if source.kind == "folder":
        return {"model": source.name, "folder_sha256": folder_fingerprint(source.path)}
    return {"model": source.name, "revision": source.revision}


def probe_device(setting: str = "auto") -> str:
    """The device class ("cuda", "mps" or "cpu") `setting` resolves to, decided without importing torch.

    `auto` means CUDA when an NVIDIA (or ROCm) driver is present and the installed torch was built for it
    (read from torch/version.py), else Apple MPS on Apple silicon, else the CPU.
    """
    if setting != "auto":
        return setting.split(":")[0]
    torch_spec = importlib.util.find_spec("torch")
    build = ""
    if torch_spec and torch_spec.submodule_search_locations:
        try:
            build = (Path(list(torch_spec.submodule_search_locations)[0]) / "version.py").read_text("utf-8")
        except OSError:
            build = ""
    gpu_build = re.search(r"^(cuda|hip)\b.*=\s*['\"]", build, re.M) is not None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    driver = (Path("/proc/driver/nvidia/version").exists() or Path("/dev/kfd").exists()
              or (sys.platform == "win32" and shutil.which("nvidia-smi") is not None))
    if gpu_build and driver and visible not in ("", "-1"):
        return "cuda"
    if sys.platform == "darwin" and os.uname().machine == "arm64":
        return "mps"
    return "cpu"


def resolve_dtype(setting: str, device: str) -> str:
    if setting != "auto":
        return setting
    return "float32" if device == "cpu" else "float16"


def _sampler_label(scheduler: str, source: ModelSource | None) -> str:
    spec = SCHEDULERS[scheduler]
    if spec.cls is not None or source is None or source.path is None or source.kind == "file":
        return spec.label
    try:
        config = json.loads((source.path / "scheduler" / "scheduler_config.json").read_text("utf-8"))
        return LABELS_BY_CLASS.get(config.get("_class_name", ""), spec.label)
    except (OSError, ValueError, AttributeError):
        return spec.label


# --------------------------------------------------------------------------- the renderer


class DiffusersRenderer:
    """Draws panels with a diffusers text-to-image pipeline."""

    name = "diffusers"
    reads_references = True

    def __init__(self) -> None:
        self.pipeline: Any = None
        self.loads = 0  # how many times a model was loaded; once per build at most
        self._loaded_for: tuple[Any, ...] | None = None
        self._schedulers: dict[str, Any] = {}
        self._adapters: dict[Path, str] = {}  # LoRA file -> adapter name in the loaded pipeline
        self._identities: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._device: Any = None
        self._adapter: Any = None  # the IP-Adapter loaded into the pipeline, if any
        self._prepared_anchors: dict[Any, dict[str, Any]] = {}  # for the render call under way
        self._recorded_steps: Any = None

    # ------------------------------------------------------------------ identity (cheap)

    def identity(self, job: PanelJob) -> dict[str, Any]:
        options, runtime = dict(job.options), dict(job.runtime)
        config = options.get("config")
        # Keyed by the files as they are now: a folder saved again, a new hub snapshot, another checkpoint, LoRA or
        # IP-Adapter file under the same name gives a new identity in a session that keeps this renderer for hours.
        extra_files = [spec["path"] for spec in options.get("loras") or []] + [options.get("ip_adapter") or ""]
        memo = (job.model, json.dumps(job.options, sort_keys=True, default=str), job.runtime,
                model_stamp(job.model), config and model_stamp(config),
                tuple(model_stamp(name) for name in extra_files if name))
        if memo not in self._identities:
            if len(self._identities) > 256:
                self._identities.clear()
            scheduler = options.get("scheduler", "default")
            device = probe_device(runtime.get("device", "auto"))
            # A model that cannot be found cannot be identified: raise, so that the build reuses the panels it
            # drew from it before (their keys are in the last manifest) and reports it only if one must be drawn.
            source = locate(job.model)
            if source.kind == "hub" and source.path is None:
                if hub_offline():
                    raise _not_cached(source.name)
                # A build of a hub model not yet downloaded must fetch it anyway; fetching it now lets the key name
                # the commit the panels are drawn with, so the next build reuses them instead of drawing them again.
                download(source.name)
                source = locate(job.model)
            config_source = _locate_config(config) if config and source.kind == "file" else None
            scheduler = effective_scheduler(job, family_for(_pipeline_class_name(config_source or source)))
            identity: dict[str, Any] = {
                "renderer": self.name,
                "version": VERSION,
                "diffusers": _package_version("diffusers"),
                "torch": _package_version("torch"),
                **model_identity(source),
                "scheduler": scheduler,
                "sampler": _sampler_label(scheduler, source),
                "device": device,
                "dtype": resolve_dtype(runtime.get("dtype", "auto"), device),
            }
            if config_source is not None:
                identity["config"] = model_identity(config_source)
            if options.get("loras"):
                identity["loras"] = [{"sha256": file_sha256(lora_file(spec)), "weight": spec["weight"]}
                                     for spec in options["loras"]]
            if options.get("consistency") == "ip_adapter":
                from storyboard.render.ip_adapter import adapter_identity

                identity["ip_adapter"] = adapter_identity(options["ip_adapter"])
            self._identities[memo] = identity
        return self._identities[memo]

    # ------------------------------------------------------------------ drawing

    def render(self, jobs: Sequence[PanelJob], on_step: StepCallback | None = None,
               references: Mapping[str, Reference] | None = None) -> Iterator[Rendered]:
        if not jobs:
            return
        source = locate(jobs[0].model)
        config = dict(jobs[0].options).get("config")
        expected = _pipeline_class_name(_locate_config(config) if config and source.kind == "file" else source)
        for job in jobs:  # problems the story can fix, before the (slow) model load
            _check_scheduler(job, family_for(expected), expected)
            for spec in dict(job.options).get("loras", []):
                lora_file(spec)
        from storyboard.render.reference import RecordedSteps

        self._prepared_anchors, self._recorded_steps = {}, RecordedSteps()
        try:
            pipe = self._load(jobs[0])
            loaded = type(pipe).__name__
            family = family_for(loaded)
            for job in jobs:
                _check_scheduler(job, family, loaded)
            _check_sizes(pipe, jobs)
            for note in family.notes(pipe, list(jobs)):
                log.warning("%s", note)
            for job in jobs:
                yield self._draw(pipe, job, on_step, [references[name] for name in job.references]
                                 if references else [])
        except Exception as exc:
            if _is_out_of_memory(exc):
                raise RenderError(f"out of GPU memory ({_first_line(exc)}); {LOW_VRAM_HINT}") from None
            raise

    def _draw(self, pipe: Any, job: PanelJob, on_step: StepCallback | None,
              references: Sequence[Reference] = ()) -> Rendered:
        import torch

        family = family_for(type(pipe).__name__)
        self._use_scheduler(pipe, effective_scheduler(job, family))
        self._use_loras(pipe, job)
        generator_device = "cpu" if self._device.type == "mps" else self._device
        generator = torch.Generator(device=generator_device).manual_seed(job.seed)
        accepted = _call_parameters(pipe)
        text, cuts = family.text_args(pipe, job)
        args: dict[str, Any] = {
            **text, "width": job.width, "height": job.height, "num_inference_steps": job.steps,
            "guidance_scale": job.guidance, "generator": generator, "num_images_per_prompt": 1, "output_type": "pil",
        }
        lost = _report_cuts(job, cuts)
        if on_step is not None:
            if "callback_on_step_end" in accepted:
                def step_end(p: Any, i: int, t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                    on_step(job, i + 1, getattr(p, "num_timesteps", None) or job.steps)
                    return kwargs

                args["callback_on_step_end"] = step_end
            elif "callback" in accepted:
                args["callback"] = lambda i, t, latents: on_step(job, i + 1, job.steps)
                args["callback_steps"] = 1
        reading, extra = self._consistency(pipe, job, references, generator_device)
        args.update(extra)
        with torch.inference_mode(), _quiet_libraries(), reading:
            output = pipe(**{k: v for k, v in args.items() if k in accepted})
        info: dict[str, Any] = {"dropped_words": lost} if lost else {}
        flags = getattr(output, "nsfw_content_detected", None)
        if flags and flags[0]:
            info["nsfw"] = True
        return Rendered(job, output.images[0], info)

    def _use_loras(self, pipe: Any, job: PanelJob) -> None:
        """Activate exactly the LoRAs `job` lists, at its weights; each file is loaded once per pipeline."""
        weights: dict[str, float] = {}
        for spec in dict(job.options).get("loras", []):
            path = lora_file(spec)
            if path not in self._adapters:
                self._adapters[path] = self._load_lora(pipe, path, spec, job.model)
            name = self._adapters[path]
            weights[name] = weights.get(name, 0.0) + float(spec["weight"])
        if not self._adapters:
            return
        with _quiet_libraries():
            if weights:
                pipe.enable_lora()
                pipe.set_adapters(list(weights), list(weights.values()))
            else:
                pipe.disable_lora()

    def _load_lora(self, pipe: Any, path: Path, spec: dict[str, Any], model: str) -> str:
        shown = spec["path"] + (f" ({spec['weight_name']})" if spec.get("weight_name") else "")
        if not hasattr(pipe, "load_lora_weights"):
            raise RenderError(f"LoRA {shown!r}: {type(pipe).__name__} ({model!r}) cannot load LoRAs")
        if importlib.util.find_spec("peft") is None:
            raise RenderError("LoRAs need the peft package: pip install peft")
        name = f"lora{len(self._adapters) + 1}"
        try:
            with _quiet_libraries():
                pipe.load_lora_weights(str(path), adapter_name=name)
        except Exception as exc:
            if "size mismatch" in str(exc):
                raise RenderError(f"LoRA {shown!r} does not fit {model!r}: its layers have other sizes than the "
                                  f"model's (a LoRA for another model family?)") from None
            raise RenderError(f"LoRA {shown!r} does not fit {model!r} ({type(exc).__name__}: "
                              f"{_first_line(exc)[:300]})") from None
        loaded = {n for names in pipe.get_list_adapters().values() for n in names}
        if name not in loaded:
            raise RenderError(f"LoRA {shown!r} does not fit {model!r}: none of its weights names a layer of "
                              f"{type(pipe).__name__} (a LoRA for another model family?)")
        return name

    def _consistency(self, pipe: Any, job: PanelJob, references: Sequence[Reference],
                     generator_device: Any) -> tuple[contextlib.AbstractContextManager[None], dict[str, Any]]:
        """What makes the panel read its anchors while it is drawn: a context to draw in, and extra pipeline
        arguments. A panel that reads none is drawn exactly as without anchors."""
        options = dict(job.options)
        mode = options.get("consistency", "none") if references else "none"
        strength = float(options.get("consistency_strength", 0.5))
        if mode == "reference":
            from storyboard.render.reference import ReferenceReader

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
        from storyboard.render.ip_adapter import LoadedAdapter

        if self._adapter is None or self._adapter.spec != spec:
            if self._adapter is not None:
                pipe.unload_ip_adapter()
            self._adapter = None
            self._adapter = LoadedAdapter(pipe, spec)
        return self._adapter

    # ------------------------------------------------------------------ loading (once)

    def _load(self, job: PanelJob) -> Any:
        options, runtime = dict(job.options), dict(job.runtime)
        identity = self.identity(job)
        model = {k: v for k, v in identity.items() if k in ("model", "sha256", "folder_sha256", "revision", "config")}
        wanted = (json.dumps(model, sort_keys=True), options.get("config"), options.get("safety_checker", True),
                  options.get("attention_slicing", False), options.get("vae_tiling", False), job.runtime)
        if self.pipeline is not None and self._loaded_for == wanted:
            return self.pipeline
        self.unload()  # another model (or the same one saved again): free the old one before loading the new
        source = locate(job.model)
        if source.kind == "hub" and source.path is None and hub_offline():
            raise _not_cached(source.name)
        if runtime.get("cpu_offload") and importlib.util.find_spec("accelerate") is None:
            raise RenderError("cpu_offload needs the accelerate package: pip install accelerate")

        import torch

        device = self._torch_device(runtime.get("device", "auto"))
        dtype = getattr(torch, resolve_dtype(runtime.get("dtype", "auto"), device.type))
        with _quiet_libraries():
            if source.kind == "file":
                pipe = _load_single_file(source, options.get("config"), dtype, options.get("safety_checker", True))
            else:
                pipe = _load_pretrained(source, dtype, options.get("safety_checker", True))
            if runtime.get("cpu_offload") and device.type != "cpu":
                pipe.enable_model_cpu_offload(device=device)
            else:
                pipe.to(device)
        if options.get("attention_slicing"):
            pipe.enable_attention_slicing()
        vae = getattr(pipe, "vae", None)
        if options.get("vae_tiling") and hasattr(vae, "enable_tiling"):
            vae.enable_tiling()
        if runtime.get("vae_slicing") and hasattr(vae, "enable_slicing"):
            vae.enable_slicing()
        pipe.set_progress_bar_config(disable=True)
        self.pipeline, self._loaded_for, self._device, self._adapter = pipe, wanted, device, None
        self._schedulers = {"default": pipe.scheduler}
        self._adapters = {}
        self.loads += 1
        return pipe

    def unload(self) -> None:
        """Let go of the loaded pipeline and give its memory back (GPU memory included)."""
        if self.pipeline is None:
            return
        device = self._device
        self.pipeline, self._loaded_for, self._schedulers, self._adapter = None, None, {}, None
        import gc

        gc.collect()
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.empty_cache()

    def _torch_device(self, setting: str) -> Any:
        import torch

        wanted = probe_device(setting)
        available = {"cpu": True, "cuda": torch.cuda.is_available(),
                     "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()}
        if not available.get(wanted, False):
            where = "render.device" if setting != "auto" else "render.device: auto"
            raise RenderError(f"{where} asks for {wanted}, but this torch {torch.__version__} cannot use it; "
                              f"install a torch build for your GPU or set render.device: cpu in the story")
        return torch.device(setting if setting not in ("auto",) else wanted)

    def _use_scheduler(self, pipe: Any, name: str) -> None:
        if name not in self._schedulers:
            import diffusers

            spec = SCHEDULERS[name]
            cls = getattr(diffusers, spec.cls)
            with _quiet_libraries():
                self._schedulers[name] = cls.from_config(self._schedulers["default"].config, **spec.config)
        pipe.scheduler = self._schedulers[name]


def _package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def effective_scheduler(job: PanelJob, family: Family) -> str:
    """The scheduler `job` is drawn with: the story's, except that a flow-matching model whose story left the
    (DDPM-family) default alone keeps its own."""
    name = dict(job.options).get("scheduler", "default")
    if family.flow_matching and not dict(job.runtime).get("scheduler_chosen", True) \
            and not SCHEDULERS[name].flow_matching:
        return "default"
    return name


def _check_scheduler(job: PanelJob, family: Family, pipeline_class: str) -> None:
    name = effective_scheduler(job, family)
    if pipeline_class:  # unknown before loading a bare checkpoint file; checked again once it is loaded
        family.check_scheduler(name, pipeline_class)
    spec = SCHEDULERS[name]
    if spec.needs and importlib.util.find_spec(spec.needs) is None:
        raise RenderError(f"scheduler {name!r} needs the {spec.needs} package: pip install {spec.needs}")


def _pipeline_class_name(source: ModelSource) -> str:
    """The pipeline class a folder or cached hub model names, read from its model_index.json ('' if unknown)."""
    if source.path is None or source.kind == "file":
        return ""
    return str(_read_model_index(source.path).get("_class_name", ""))


def _report_cuts(job: PanelJob, cuts: list[Cut]) -> str:
    """Say once, in our words, which words the model never reads; return those of the prompt."""
    for cut in cuts:
        log.warning("panel %d: the %s is longer than the %d tokens %s reads; dropped: %r",
                    job.index, cut.label, cut.limit, job.model, cut.words)
    return next((cut.words for cut in cuts if cut.label == "prompt"), "")


def lora_file(spec: dict[str, Any]) -> Path:
    """The local file of a LoRA: the file named, the weights file in a folder, or the hub file in the cache
    (downloaded first unless HF_HUB_OFFLINE=1). Never imports torch."""
    name, weight_name = spec["path"], spec.get("weight_name")
    shown = name + (f" ({weight_name})" if weight_name else "")
    path = Path(name).expanduser()
    if path.is_dir():
        path = path / (weight_name or "pytorch_lora_weights.safetensors")
    if path.is_file():
        return path.resolve()
    looks_local = (name.lower().endswith(CHECKPOINT_SUFFIXES) or path.is_absolute() or name.startswith((".", "~"))
                   or "\\" in name or not _HUB_ID.match(name) or "/" not in name)
    if looks_local:
        raise ModelNotFound(f"LoRA {shown!r} not found: no such file ({path.resolve()})")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, weight_name or "pytorch_lora_weights.safetensors"))
    except Exception as exc:
        names, root = _causes(exc)
        if hub_offline() or "LocalEntryNotFoundError" in names:
            raise ModelNotFound(f"LoRA {shown!r} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                                f"HF_HUB_OFFLINE=1 forbids downloading it; download it with `hf download {name}` "
                                f"or give a local .safetensors file") from None
        raise ModelNotFound(f"cannot download LoRA {shown!r} from the Hugging Face hub ({type(root).__name__}: "
                            f"{_first_line(root)}); check the id and weight_name") from None


def _check_sizes(pipe: Any, jobs: Sequence[PanelJob]) -> None:
    """Refuse sizes the model cannot draw before the first panel, not in the middle of the build."""
    multiple = family_for(type(pipe).__name__).size_multiple(pipe)
    for job in jobs:
        for label, value in (("width", job.width), ("height", job.height)):
            if value % multiple:
                lower, upper = value - value % multiple, value - value % multiple + multiple
                raise RenderError(f"render.{label} {value} does not suit {job.model!r}: it draws sizes that are "
                                  f"multiples of {multiple} (try {lower} or {upper})")


def _call_parameters(pipe: Any) -> set[str]:
    return set(inspect.signature(pipe.__call__).parameters)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _is_out_of_memory(exc: BaseException) -> bool:
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class _quiet_libraries:
    """Silence library chatter (missing torchvision, CLIP truncation, progress bars, deprecations) while loading
    and drawing: what the user should hear, storyboard says itself, once, in its own words."""

    def __enter__(self) -> None:
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.simplefilter("ignore")
        # Even their errors: a failure that matters is raised, and storyboard reports it as one line.
        self.loggers = [logging.getLogger(n) for n in ("transformers", "diffusers", "peft")]
        self.levels = [lg.level for lg in self.loggers]
        for lg in self.loggers:
            lg.setLevel(logging.CRITICAL)
        try:
            from diffusers.utils import logging as dlog
            from transformers.utils import logging as tlog

            self.restore = (dlog.get_verbosity(), tlog.get_verbosity())
            dlog.set_verbosity(logging.CRITICAL)
            tlog.set_verbosity(logging.CRITICAL)
            dlog.disable_progress_bar()
            tlog.disable_progress_bar()
        except ImportError:
            self.restore = None

    def __exit__(self, *exc: object) -> None:
        for lg, level in zip(self.loggers, self.levels):
            lg.setLevel(level)
        if self.restore:
            from diffusers.utils import logging as dlog
            from transformers.utils import logging as tlog

            dlog.set_verbosity(self.restore[0])
            tlog.set_verbosity(self.restore[1])
            dlog.enable_progress_bar()
            tlog.enable_progress_bar()
        self.warnings.__exit__(*exc)


def _import_diffusers() -> Any:
    import diffusers

    return diffusers


def _read_model_index(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _pipeline_kwargs(cls: Any, index: dict[str, Any], safety_checker: bool) -> dict[str, Any]:
    """Turn off a shipped safety checker only if the pipeline class has one to turn off."""
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if not safety_checker and "safety_checker" in params and (index.get("safety_checker") or [None])[0]:
        kwargs["safety_checker"] = None
        kwargs["feature_extractor"] = None
        if "requires_safety_checker" in params:
            kwargs["requires_safety_checker"] = False
    return kwargs


def _pipeline_class(diffusers: Any, index: dict[str, Any]) -> Any:
    return getattr(diffusers, str(index.get("_class_name", "")), None) or diffusers.DiffusionPipeline


def _load_pretrained(source: ModelSource, dtype: Any, safety_checker: bool) -> Any:
    diffusers = _import_diffusers()
    if source.path is not None:
        index = _read_model_index(source.path)
        cls = _pipeline_class(diffusers, index)
        target = str(source.path)
        if source.kind == "folder" and not index:
            raise ModelNotFound(f"model {source.name!r} is a folder without model_index.json, so not a diffusers "
                                f"pipeline; {_fix_hint(None)}")
    else:
        cls, index, target = diffusers.DiffusionPipeline, {}, source.name
    try:
        return cls.from_pretrained(target, torch_dtype=dtype, local_files_only=source.path is not None or hub_offline(),
                                   **_pipeline_kwargs(cls, index, safety_checker))
    except Exception as exc:
        raise _load_error(source, exc) from None


def _locate_config(config: str) -> ModelSource:
    source = locate(config)
    if source.kind == "file":
        raise ModelNotFound(f"render.config {config!r} is a file; it must be a diffusers folder or hub id")
    return source


def _load_single_file(source: ModelSource, config: str | None, dtype: Any, safety_checker: bool) -> Any:
    diffusers = _import_diffusers()
    example = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    if config is None:
        from diffusers.loaders.single_file_utils import fetch_diffusers_config, load_single_file_checkpoint

        try:
            guessed = fetch_diffusers_config(load_single_file_checkpoint(str(source.path)))
        except Exception as exc:
            raise RenderError(f"cannot read checkpoint {source.name!r}: {_first_line(exc)}") from None
        config = guessed["pretrained_model_name_or_path"]
        example = config
    config_source = _locate_config(config)
    if config_source.path is None and hub_offline():
        raise ModelNotFound(
            f"checkpoint {source.name!r} needs the configs of {config!r}, which are not in the Hugging Face cache "
            f"and HF_HUB_OFFLINE=1 forbids downloading them; set render.config in the story to a local diffusers "
            f"folder or a cached hub id (e.g. after `hf download {example} --include '*.json' '*.txt'`), "
            f"or use --renderer draft")
    index = _read_model_index(config_source.path) if config_source.path else {}
    cls = _pipeline_class(diffusers, index) if index else diffusers.StableDiffusionPipeline
    if "XL" in str(config) and not index:
        cls = diffusers.StableDiffusionXLPipeline
    if not hasattr(cls, "from_single_file"):
        raise RenderError(f"{cls.__name__} (from {config!r}) cannot load single-file checkpoints; "
                          f"use a diffusers folder or hub id as render.model")
    kwargs = _pipeline_kwargs(cls, index, safety_checker) if index else {}
    try:
        return cls.from_single_file(str(source.path), config=str(config_source.path or config), torch_dtype=dtype,
                                    local_files_only=config_source.path is not None or hub_offline(), **kwargs)
    except Exception as exc:
        raise _load_error(source, exc) from None


def _causes(exc: BaseException) -> tuple[set[str], BaseException]:
    """The type names along `exc`'s chain of causes, and the deepest cause (the one worth showing)."""
    names: set[str] = set()
    chain: BaseException | None = exc
    root = exc
    while chain is not None and len(names) < 20:
        names.add(type(chain).__name__)
        root = chain
        chain = chain.__cause__ or chain.__context__
    return names, root


def _load_error(source: ModelSource, exc: BaseException) -> RenderError:
    if _is_out_of_memory(exc):
        return RenderError(f"out of GPU memory while loading {source.name!r}; {LOW_VRAM_HINT}")
    names, root = _causes(exc)
    hint = _fix_hint(source.name if source.kind == "hub" else None)
    if "GatedRepoError" in names:
        return ModelNotFound(f"model {source.name!r} is gated: accept its licence at "
                             f"https://huggingface.co/{source.name} and log in with `hf auth login`; or {hint}")
    if "RepositoryNotFoundError" in names:
        return ModelNotFound(f"model {source.name!r} was not found on the Hugging Face hub; {hint}")
    if source.kind == "hub" and source.path is None:
        return ModelNotFound(f"model {source.name!r} is not in the Hugging Face cache ({hub_cache_dir()}) and "
                             f"downloading it failed ({type(root).__name__}: {_first_line(root)}); {hint}")
    return ModelNotFound(f"cannot load model {source.name!r} ({type(exc).__name__}: {_first_line(exc)}); {hint}")


def anchor_embeddings(pipe: Any, prompt: str) -> tuple[Any, Any]:
    """The conditional text embeddings of an anchor's prompt (and the pooled ones of pipelines that use them),
    encoded as the panel's own prompt is: in chunks when it is longer than CLIP's window."""
    import torch

    long = family_for(type(pipe).__name__).chunked(pipe, prompt, "")
    if long is not None:
        return long["prompt_embeds"], long.get("pooled_prompt_embeds")
    with torch.inference_mode(), _quiet_libraries():
        out = pipe.encode_prompt(prompt=prompt, device=pipe._execution_device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=False)
    return out[0], (out[2] if len(out) > 2 else None)
