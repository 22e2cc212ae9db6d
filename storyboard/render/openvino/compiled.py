"""The exported graphs as the pipeline's own modules: `pipe.unet` and `pipe.vae.decoder` are replaced by modules
that run OpenVINO, so diffusers' pipeline, schedulers and generators stay exactly as they are.

Each graph is compiled once per input shape (a panel size, with or without classifier-free guidance): a static
shape compiles to faster code than a dynamic one, and a story draws few sizes.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

#: `render.dtype` as OpenVINO's CPU plugin names its inference precision.
PRECISIONS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}


class Graph:
    """One exported graph, compiled for each set of input shapes it is called with."""

    def __init__(self, core: Any, path: Path, precision: str) -> None:
        self.core, self.path = core, path
        self.config = {"INFERENCE_PRECISION_HINT": PRECISIONS[precision], "PERFORMANCE_HINT": "LATENCY"}
        self.compiled: dict[tuple[Any, ...], Any] = {}

    def __call__(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        arrays = {name: value.detach().to("cpu", torch.float32).numpy() for name, value in inputs.items()}
        shapes = tuple((name, array.shape) for name, array in arrays.items())
        if shapes not in self.compiled:
            model = self.core.read_model(str(self.path))
            model.reshape({name: list(shape) for name, shape in shapes})
            self.compiled[shapes] = self.core.compile_model(model, "CPU", self.config)
        result = self.compiled[shapes](arrays)[0]
        return torch.from_numpy(np.array(result))


class _Module(torch.nn.Module):
    """A module without weights that the pipeline sees on the CPU in float32, as it would its own."""

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32


class CompiledUnet(_Module):
    """Stands in for the pipeline's UNet: its config, and a forward that runs the exported graph."""

    def __init__(self, graph: Graph, config: dict[str, Any]) -> None:
        from diffusers.configuration_utils import FrozenDict

        super().__init__()
        config = dict(config)
        features = config.pop("add_embedding_in_features", None)
        self.graph, self.config = graph, FrozenDict(config)
        if features is not None:  # SDXL pipelines read its size to check their time ids
            self.add_embedding = SimpleNamespace(linear_1=SimpleNamespace(in_features=features))

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor,
                timestep_cond: torch.Tensor | None = None, added_cond_kwargs: dict[str, Any] | None = None,
                return_dict: bool = True, **_: Any) -> Any:
        step = torch.as_tensor(timestep, dtype=torch.float32)
        inputs = {"sample": sample, "timestep": step.reshape(-1)[0].reshape(()),
                  "encoder_hidden_states": encoder_hidden_states}
        if added_cond_kwargs:
            inputs["text_embeds"], inputs["time_ids"] = added_cond_kwargs["text_embeds"], added_cond_kwargs["time_ids"]
        if timestep_cond is not None:
            inputs["timestep_cond"] = timestep_cond
        result = self.graph(inputs).to(sample.dtype)
        if return_dict:
            from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

            return UNet2DConditionOutput(sample=result)
        return (result,)


class CompiledDecoder(_Module):
    """Stands in for the autoencoder's decoder (the model's own or a tiny one)."""

    def __init__(self, graph: Graph) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, z: torch.Tensor, *_: Any, **__: Any) -> torch.Tensor:
        return self.graph({"latents": z}).to(z.dtype)
