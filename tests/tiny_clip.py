"""Tiny, randomly initialised image-embedding models built from configs, for offline tests of `storyboard check`.

`build_tiny_clip` saves a CLIPModel with its tokenizer (the byte-level vocabulary of `tiny_pipeline`, so each
character is one token) and a CLIPImageProcessor; `build_tiny_dinov2` saves an image-only DINOv2. Both load back
through `from_pretrained` exactly as a downloaded model does.

    python tests/tiny_clip.py OUT_FOLDER [--dinov2]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_pipeline import MAX_TOKENS, write_tokenizer_files

IMAGE_SIZE = 32


def build_tiny_clip(out: str | Path) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    out = Path(out)
    with tempfile.TemporaryDirectory() as words:
        vocab_size = write_tokenizer_files(Path(words))
        tokenizer = CLIPTokenizer.from_pretrained(words, model_max_length=MAX_TOKENS)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=IMAGE_SIZE, patch_size=8),
        projection_dim=32,
    )
    CLIPModel(config).save_pretrained(out)
    images = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(out)
    return out


def build_tiny_dinov2(out: str | Path) -> Path:
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    out = Path(out)
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=2,
                             image_size=IMAGE_SIZE, patch_size=8)).save_pretrained(out)
    BitImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                      do_convert_rgb=True).save_pretrained(out)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    target = next((a for a in args if not a.startswith("--")), None)
    if target is None:
        sys.exit(__doc__)
    print(build_tiny_dinov2(target) if "--dinov2" in args else build_tiny_clip(target))
