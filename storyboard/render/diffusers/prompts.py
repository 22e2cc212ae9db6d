"""A panel's prompts as the model reads them: what of them is cut (said once, in our words), and an anchor's prompt
encoded for reference attention the way a panel's own prompt is (see `families` for the chunking)."""

from __future__ import annotations

import logging
from typing import Any

from storyboard.hub import quiet_libraries
from storyboard.render.diffusers.families import Cut, family_for
from storyboard.resolve import PanelJob

log = logging.getLogger("storyboard")


def report_cuts(job: PanelJob, cuts: list[Cut]) -> str:
    """Say once, in our words, which words the model never reads; return those of the prompt."""
    for cut in cuts:
        log.warning("panel %d: the %s is longer than the %d tokens %s reads; dropped: %r",
                    job.index, cut.label, cut.limit, job.model, cut.words)
    return next((cut.words for cut in cuts if cut.label == "prompt"), "")


def anchor_embeddings(pipe: Any, prompt: str) -> tuple[Any, Any]:
    """The conditional text embeddings of an anchor's prompt (and the pooled ones of pipelines that use them),
    encoded as the panel's own prompt is: in chunks when it is longer than CLIP's window."""
    import torch

    long = family_for(type(pipe).__name__).chunked(pipe, prompt, "")
    if long is not None:
        return long["prompt_embeds"], long.get("pooled_prompt_embeds")
    with torch.inference_mode(), quiet_libraries():
        out = pipe.encode_prompt(prompt=prompt, device=pipe._execution_device, num_images_per_prompt=1,
                                 do_classifier_free_guidance=False)
    return out[0], (out[2] if len(out) > 2 else None)
