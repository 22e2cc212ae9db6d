"""The OpenVINO renderer: diffusers' pipeline, schedulers and torch generators, with the UNet and the autoencoder's
decoder compiled by OpenVINO for the CPU.

The model (with the panels' LoRAs fused into it) is exported to OpenVINO IR once, into a cache keyed by what decides
the exported weights (`ir.export_key`), and compiled once per panel size. Everything else is diffusers' own code, so
a seed means what it means to `--renderer diffusers`.
"""

from storyboard.render.openvino.renderer import OpenVinoRenderer

__all__ = ["OpenVinoRenderer"]
