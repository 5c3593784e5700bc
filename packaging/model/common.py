"""Shared definitions of the Lumen CT starter recipe: model config, preprocessing, intensity rules.

Everything that must agree between training, export, evaluation and the Rust engine lives here.
"""
from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DATA = Path(os.environ.get("LUMEN_DATA", REPO.parent / "shared" / "data"))
TRAIN_DIR = Path(os.environ.get("LUMEN_TRAIN_DIR", REPO / ".train"))
BUNDLE = REPO / "assets" / "models" / "ct-starter"

SEED = 20261126
INPUT_SIZE = 256
PIXEL_MEAN = [123.675, 116.28, 103.53]
PIXEL_STD = [58.395, 57.12, 57.375]

# Small SAM: ViT image encoder with patch 8 -> 32x32 embedding grid, 128x128 low-res masks.
MODEL_CFG = dict(
    img_size=INPUT_SIZE,
    patch_size=8,
    embed_dim=128,
    depth=8,
    num_heads=4,
    window_size=8,
    global_attn_indexes=(3, 7),
    mlp_ratio=4.0,
    out_chans=256,
    prompt_embed_dim=256,
)

# Patient-level split. These BTCV patients are never trained on.
BTCV_VAL = ["sabs_case00", "sabs_case06", "sabs_case12", "sabs_case18"]
BTCV_CLASSES = [
    "spleen", "right_kidney", "left_kidney", "gallbladder", "esophagus", "liver", "stomach",
    "aorta", "inferior_vena_cava", "portal_and_splenic_vein", "pancreas",
    "right_adrenal_gland", "left_adrenal_gland",
]
MIN_AREA = 20  # px at 256x256: smaller components are not used as training targets


def read_shards(folder: Path) -> dict:
    """The state dict of a checkpoint folder (train.py writes it in shards of at most 12 MB)."""
    import torch

    sd = {}
    for p in sorted(folder.glob("model_*.pt")):
        sd.update(torch.load(p, map_location="cpu"))
    return sd


def build_sam(cfg: dict = MODEL_CFG):
    """The network, built from the official segment-anything components."""
    import torch
    from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                           TwoWayTransformer)

    emb = cfg["img_size"] // cfg["patch_size"]
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=cfg["depth"],
            embed_dim=cfg["embed_dim"],
            img_size=cfg["img_size"],
            mlp_ratio=cfg["mlp_ratio"],
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=cfg["num_heads"],
            patch_size=cfg["patch_size"],
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(cfg["global_attn_indexes"]),
            window_size=cfg["window_size"],
            out_chans=cfg["out_chans"],
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg["prompt_embed_dim"],
            image_embedding_size=(emb, emb),
            input_image_size=(cfg["img_size"], cfg["img_size"]),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=cfg["prompt_embed_dim"], mlp_dim=2048, num_heads=8),
            transformer_dim=cfg["prompt_embed_dim"],
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=PIXEL_MEAN,
        pixel_std=PIXEL_STD,
    )
    return sam


# ---------------------------------------------------------------- intensity rules

def load_window() -> tuple[float, float]:
    w = json.loads((TRAIN_DIR / "window.json").read_text())
    return float(w["center"]), float(w["width"])


def window_ct(hu: np.ndarray, center: float, width: float) -> np.ndarray:
    """u8 = clip((HU - (center - width/2)) / width * 255, 0, 255), rounded."""
    lo = center - width / 2.0
    return np.clip(np.rint((hu.astype(np.float32) - lo) / width * 255.0), 0, 255).astype(np.uint8)


def percentile_mr(img: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    a, b = np.percentile(img.astype(np.float32), [low, high])
    if b <= a:
        b = a + 1.0
    return np.clip(np.rint((img.astype(np.float32) - a) / (b - a) * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- engine-side preprocessing

def resized_shape(h: int, w: int, size: int = INPUT_SIZE) -> tuple[int, int]:
    """Longest side scaled to `size`, halves rounded up as the engine and the decoder graph do
    (Python's round() would round them to even: 301 next to 512 gives 150, the engine 151)."""
    s = size / max(h, w)
    return max(1, int(h * s + 0.5)), max(1, int(w * s + 0.5))


def resize_longest(img_u8: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """Grey uint8 slice -> longest side `size`, bilinear with antialiasing (PIL), no padding."""
    from PIL import Image

    h, w = img_u8.shape
    nh, nw = resized_shape(h, w, size)
    if (nh, nw) == (h, w):
        return img_u8.copy()
    return np.asarray(Image.fromarray(img_u8).resize((nw, nh), Image.BILINEAR))


def resize_label(lab: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    from PIL import Image

    h, w = lab.shape
    nh, nw = resized_shape(h, w, size)
    if (nh, nw) == (h, w):
        return lab.copy()
    return np.asarray(Image.fromarray(lab).resize((nw, nh), Image.NEAREST))


def preprocess(img_u8: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The engine's preprocessing: -> float32 [1,3,S,S], normalized, zero-padded bottom/right."""
    r = resize_longest(img_u8, size).astype(np.float32)
    out = np.zeros((1, 3, size, size), np.float32)
    for c in range(3):
        out[0, c, : r.shape[0], : r.shape[1]] = (r - PIXEL_MEAN[c]) / PIXEL_STD[c]
    return out
