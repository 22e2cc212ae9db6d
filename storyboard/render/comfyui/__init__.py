"""`--renderer comfyui`: the user's own ComfyUI graph as a renderer, through ComfyUI's HTTP and websocket API.

    graph       the graph in API format: read and checked, the built-in txt2img graph, a job's values filled in
    nodetypes   the server's node types (/object_info): a graph checked against them before anything is queued
    samplers    render.scheduler as ComfyUI's sampler and scheduler
    wire        HTTP requests and the websocket
    renderer    `ComfyUIRenderer`: anchors uploaded, prompts queued and followed, pictures fetched
"""

from storyboard.render.comfyui.renderer import ComfyUIRenderer

__all__ = ["ComfyUIRenderer"]
