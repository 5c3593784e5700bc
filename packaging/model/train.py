"""Train the Lumen CT starter SAM from scratch on .train/train.npz (see prepare_data.py).

SAM-style interactive training, data, augmentation and prompt simulation all on the training device:
  * organ-balanced sampling of (slice, connected component) instances,
  * augmentation: flips, rotation, scale, translation, window (contrast/brightness) jitter, gamma, noise,
  * prompts: jittered boxes or positive clicks (+ extra pos/neg clicks), then `--rounds` correction
    rounds, each adding a click in the larger error region and feeding back the previous low-res mask,
  * loss 20*focal + dice (min over the 3 multimask outputs for a lone box/click, plus output 0)
    + MSE(IoU prediction, true IoU) on all outputs,
  * AdamW, linear warm-up + cosine decay over the step (or wall-clock) budget, bf16 autocast (CUDA, or a CPU with native bf16).

Checkpoints (model fp32 shards <= 12 MB, optimizer, step, random state) are written atomically to --out
every --ckpt-min minutes, when paused (--stop-after-minutes / --stop-after-steps, exit 75) and at the end.
The same command run again continues an unfinished run exactly where it stopped (with --steps the
result is the same as an uninterrupted run) and does nothing for a finished one. --resume starts a
new run from the weights of a finished one. On a CPU, --micro-batch keeps the memory in bounds.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common import INPUT_SIZE, MIN_AREA, MODEL_CFG, PIXEL_MEAN, PIXEL_STD, SEED, TRAIN_DIR, build_sam, read_shards

SOURCE_WEIGHT = {"btcv": 0.86, "ts_ct": 0.08, "ts_mr": 0.03, "demo": 0.03}
NSLOT = 6  # prompt token slots: box (2) / clicks, padded with label -1 (export.py appends 4 pads)


# ---------------------------------------------------------------- model pieces (batched)

def embed_prompts(pe_mod, coords, labels):
    """Batched SamOnnxModel._embed_points: coords [B,N,2] in the 256 frame, labels [B,N]."""
    coords = coords + 0.5
    coords = coords / INPUT_SIZE
    emb = pe_mod.pe_layer._pe_encoding(coords)
    lab = labels.unsqueeze(-1)
    emb = emb * (lab != -1)
    emb = emb + pe_mod.not_a_point_embed.weight * (lab == -1)
    for i in range(pe_mod.num_point_embeddings):
        emb = emb + pe_mod.point_embeddings[i].weight * (lab == i)
    return emb


def embed_masks(pe_mod, mask_input, has_mask):
    """Batched SamOnnxModel._embed_masks: mask_input [B,1,128,128], has_mask [B]."""
    h = has_mask.view(-1, 1, 1, 1).to(mask_input.dtype)
    return h * pe_mod.mask_downscaling(mask_input) + (1 - h) * pe_mod.no_mask_embed.weight.reshape(1, -1, 1, 1)


def decode(dec, emb, image_pe, sparse, dense):
    """MaskDecoder.predict_masks for a batch of (image embedding, prompt) pairs (one prompt each)."""
    b = emb.shape[0]
    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], 0)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], 1)
    src = emb + dense
    pos = image_pe.expand(b, -1, -1, -1)
    _, c, h, w = src.shape
    hs, src = dec.transformer(src, pos, tokens)
    iou_out = hs[:, 0]
    mask_out = hs[:, 1: 1 + dec.num_mask_tokens]
    src = src.transpose(1, 2).reshape(b, c, h, w)
    up = dec.output_upscaling(src)
    hyper = torch.stack([dec.output_hypernetworks_mlps[i](mask_out[:, i]) for i in range(dec.num_mask_tokens)], 1)
    bb, cc, hh, ww = up.shape
    masks = (hyper @ up.reshape(bb, cc, hh * ww)).reshape(bb, -1, hh, ww)
    iou = dec.iou_prediction_head(iou_out)
    return masks, iou


def run_decoder(sam, emb, coords, labels, mask_input, has_mask):
    pe = sam.prompt_encoder
    sparse = embed_prompts(pe, coords, labels)
    dense = embed_masks(pe, mask_input, has_mask)
    return decode(sam.mask_decoder, emb, pe.get_dense_pe(), sparse, dense)


# ---------------------------------------------------------------- data

class GpuData:
    def __init__(self, path: Path, device):
        d = np.load(path)
        self.image = torch.from_numpy(d["image"]).to(device)
        self.inst = torch.from_numpy(d["inst"]).to(device)
        self.hw = torch.from_numpy(d["hw"].astype(np.int64)).to(device)
        self.rows = torch.from_numpy(d["rows"].astype(np.int64)).to(device)
        self.sources = [str(s) for s in d["sources"]]
        rows = d["rows"]
        w = np.zeros(len(rows))
        for si, s in enumerate(self.sources):
            sel = rows[:, 2] == si
            if not sel.any():
                continue
            classes, counts = np.unique(rows[sel, 3], return_counts=True)
            cnt = dict(zip(classes, counts))
            per_class = SOURCE_WEIGHT.get(s, 0.0) / len(classes)
            w[sel] = [per_class / cnt[c] for c in rows[sel, 3]]
        self.weights = torch.from_numpy(w / w.sum()).to(device)
        yy = torch.arange(INPUT_SIZE, device=device)
        self.yy, self.xx = yy.view(1, -1, 1), yy.view(1, 1, -1)

    def base(self, idx):
        r = self.rows[idx]
        s, inst = r[:, 0], r[:, 1]
        img = self.image[s].float() / 255.0
        mask = (self.inst[s] == inst.view(-1, 1, 1).to(torch.uint8)).float()
        hw = self.hw[s]
        pad = ((self.yy >= hw[:, 0].view(-1, 1, 1)) | (self.xx >= hw[:, 1].view(-1, 1, 1))).float()
        return img, mask, pad, r


def normalize(u01, pad):
    """u01 [B,H,W] grey 0..1 -> engine input [B,3,S,S]; padded area = 0 after normalization."""
    x = u01.unsqueeze(1) * 255.0
    mean = torch.tensor(PIXEL_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(PIXEL_STD, device=x.device).view(1, 3, 1, 1)
    x = (x - mean) / std
    return x * (1 - pad.unsqueeze(1))


def augment(img, mask, pad, g: torch.Generator):
    b, dev = img.shape[0], img.device

    def U(lo, hi, n=b):
        return lo + (hi - lo) * torch.rand(n, device=dev, generator=g)

    geo = (torch.rand(b, device=dev, generator=g) < 0.85).float()
    ang = U(-math.pi / 9, math.pi / 9) * geo
    sc = torch.exp(U(math.log(0.75), math.log(1.3))) * geo + (1 - geo)
    tx, ty = U(-0.12, 0.12) * geo, U(-0.12, 0.12) * geo
    fx = torch.where(torch.rand(b, device=dev, generator=g) < 0.5, -1.0, 1.0)
    fy = torch.where(torch.rand(b, device=dev, generator=g) < 0.2, -1.0, 1.0)
    cos, sin = torch.cos(ang) / sc, torch.sin(ang) / sc
    theta = torch.stack([torch.stack([cos * fx, -sin * fy, tx], 1), torch.stack([sin * fx, cos * fy, ty], 1)], 1)
    grid = F.affine_grid(theta, (b, 1, INPUT_SIZE, INPUT_SIZE), align_corners=False)
    stack = torch.stack([img, mask, pad], 1)
    out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    img, mask, pad = out[:, 0], (out[:, 1] > 0.5).float(), (out[:, 2] > 0.5).float()
    # intensity: window jitter (shift/scale of the 8-bit window), gamma, noise
    a = U(-0.08, 0.08).view(-1, 1, 1)
    s = torch.exp(U(math.log(0.85), math.log(1.18))).view(-1, 1, 1)
    img = ((img - 0.5 - a) * s + 0.5).clamp(0, 1)
    gam = torch.where(torch.rand(b, device=dev, generator=g) < 0.3, torch.exp(U(-0.25, 0.25)), torch.ones(b, device=dev))
    img = img.clamp_min(1e-6) ** gam.view(-1, 1, 1)
    noise = (torch.rand(b, device=dev, generator=g) < 0.2).float().view(-1, 1, 1) * U(0, 0.03).view(-1, 1, 1)
    img = (img + noise * torch.randn(img.shape, device=dev, generator=g)).clamp(0, 1)
    return img, mask, pad


def bbox(mask):
    """Tight box [B,4] (x0,y0,x1,y1) in pixel-center coordinates of a [B,H,W] mask."""
    rows, cols = mask.amax(2) > 0, mask.amax(1) > 0
    ar = torch.arange(mask.shape[1], device=mask.device)
    big = mask.shape[1] + 1
    y0 = torch.where(rows, ar, big).amin(1)
    y1 = torch.where(rows, ar, -1).amax(1)
    x0 = torch.where(cols, ar, big).amin(1)
    x1 = torch.where(cols, ar, -1).amax(1)
    return torch.stack([x0, y0, x1, y1], 1).float()


def sample_point(region, g):
    """Uniform random pixel (x, y) inside each region [B,H,W]; (valid flag) if region empty."""
    b, h, w = region.shape
    score = torch.rand(region.shape, device=region.device, generator=g) * region + region * 1e-3
    flat = score.reshape(b, -1).argmax(1)
    ok = region.reshape(b, -1).amax(1) > 0
    return torch.stack([(flat % w).float(), (flat // w).float()], 1), ok


def focal_dice(logits, gt):
    """logits/gt [B,K,H,W] -> (20*focal + dice) [B,K], iou [B,K]."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, gt, reduction="none")
    pt = p * gt + (1 - p) * (1 - gt)
    alpha = 0.25 * gt + 0.75 * (1 - gt)
    focal = (alpha * ce * (1 - pt) ** 2).mean((2, 3))
    inter = (p * gt).sum((2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum((2, 3)) + gt.sum((2, 3)) + 1)
    hard = (logits > 0).float()
    hi = (hard * gt).sum((2, 3))
    iou = hi / (hard.sum((2, 3)) + gt.sum((2, 3)) - hi).clamp_min(1)
    return 20 * focal + dice, iou


def make_prompts(mask, g):
    """Initial prompts: coords [B,NSLOT,2], labels [B,NSLOT], n_used [B], kind (0 box, 1 click, 2 clicks)."""
    b, dev = mask.shape[0], mask.device
    coords = torch.zeros(b, NSLOT, 2, device=dev)
    labels = torch.full((b, NSLOT), -1.0, device=dev)
    u = torch.rand(b, device=dev, generator=g)
    kind = torch.where(u < 0.5, 0, torch.where(u < 0.8, 1, 2))
    box = bbox(mask)
    side = torch.stack([box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]], 1).repeat(1, 2) + 1
    jit = (torch.randn(b, 4, device=dev, generator=g) * 0.07 * side).clamp(-8, 8)
    jit = jit * (torch.rand(b, 1, device=dev, generator=g) < 0.75)
    box = (box + jit).clamp(0, INPUT_SIZE - 1)
    p1, _ = sample_point(mask, g)
    # second click: positive inside the mask, or negative in the (expanded) box outside it
    ex = bbox(mask)
    ex = torch.cat([ex[:, :2] - 10, ex[:, 2:] + 10], 1)
    xs = torch.arange(INPUT_SIZE, device=dev).view(1, 1, -1)
    ys = torch.arange(INPUT_SIZE, device=dev).view(1, -1, 1)
    inbox = (xs >= ex[:, 0].view(-1, 1, 1)) & (xs <= ex[:, 2].view(-1, 1, 1)) & \
        (ys >= ex[:, 1].view(-1, 1, 1)) & (ys <= ex[:, 3].view(-1, 1, 1))
    neg_region = inbox.float() * (1 - mask)
    pn, okn = sample_point(neg_region, g)
    pp, _ = sample_point(mask, g)
    second_neg = (torch.rand(b, device=dev, generator=g) < 0.5) & okn
    p2 = torch.where(second_neg.view(-1, 1), pn, pp)
    l2 = torch.where(second_neg, 0.0, 1.0)
    isbox = kind == 0
    coords[:, 0] = torch.where(isbox.view(-1, 1), box[:, :2], p1)
    coords[:, 1] = torch.where(isbox.view(-1, 1), box[:, 2:], p2)
    labels[:, 0] = torch.where(isbox, 2.0, 1.0)
    labels[:, 1] = torch.where(isbox, 3.0, torch.where(kind == 2, l2, -1.0))
    n_used = torch.where(kind == 1, 1, 2)
    return coords, labels, n_used, kind


def train_step(sam, data, batch, args, g, step_rounds):
    dev = data.image.device
    idx = torch.multinomial(data.weights, batch, replacement=True, generator=g)
    img, mask, pad, _ = data.base(idx)
    img, mask, pad = augment(img, mask, pad, g)
    valid = (mask.sum((1, 2)) >= MIN_AREA).float()
    x = normalize(img, pad)
    coords, labels, n_used, kind = make_prompts(mask, g)
    gt = mask.unsqueeze(1)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
        emb = sam.image_encoder(x)
    mask_in = torch.zeros(batch, 1, INPUT_SIZE // 2, INPUT_SIZE // 2, device=dev)
    has = torch.zeros(batch, device=dev)
    total, stats = 0.0, {}
    ar = torch.arange(batch, device=dev)
    for r in range(step_rounds):
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            low, iou_pred = run_decoder(sam, emb, coords, labels, mask_in, has)
        low, iou_pred = low.float(), iou_pred.float()
        up = F.interpolate(low, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        lm, iou = focal_dice(up, gt.expand_as(up))
        single = (r == 0) & (kind != 2)  # lone box or lone click: ambiguous -> multimask
        lmin, kmin = lm[:, 1:].min(1)
        loss_mask = torch.where(single, lmin + lm[:, 0], lm[:, 0])
        loss_iou = ((iou_pred - iou.detach()) ** 2).mean(1)
        loss = ((loss_mask + loss_iou) * valid).sum() / valid.sum().clamp_min(1)
        total = total + loss
        cur = torch.where(single.view(-1, 1, 1), up[ar, 1 + iou_pred[:, 1:].argmax(1)], up[:, 0])
        with torch.no_grad():
            pr = (cur > 0).float()
            inter = (pr * mask).sum((1, 2))
            d = (2 * inter / (pr.sum((1, 2)) + mask.sum((1, 2))).clamp_min(1))
            stats[f"dice_r{r}"] = float((d * valid).sum() / valid.sum().clamp_min(1))
        if r + 1 < step_rounds:
            with torch.no_grad():
                fn, fp = mask * (1 - pr), pr * (1 - mask)
                pos = fn.sum((1, 2)) >= fp.sum((1, 2))
                pt, ok = sample_point(torch.where(pos.view(-1, 1, 1), fn, fp), g)
                slot = n_used.clamp(max=NSLOT - 1)
                coords = coords.clone()
                labels = labels.clone()
                coords[ar, slot] = torch.where(ok.view(-1, 1), pt, coords[ar, slot])
                labels[ar, slot] = torch.where(ok, pos.float(), labels[ar, slot])
                n_used = n_used + ok.long()
                kind = torch.full_like(kind, 2)
                lowsel = torch.where(single.view(-1, 1, 1), low[ar, 1 + iou_pred[:, 1:].argmax(1)], low[:, 0])
                mask_in = lowsel.unsqueeze(1).detach()
                has = torch.ones(batch, device=dev)
    stats["loss"] = float(total.detach())
    return total, stats


# ---------------------------------------------------------------- monitor evaluation (box prompt, §4)

@torch.no_grad()
def monitor(sam, path: Path, device, bf16=True):
    d = np.load(path)
    image = torch.from_numpy(d["image"]).to(device)
    inst = torch.from_numpy(d["inst"]).to(device)
    hw = torch.from_numpy(d["hw"].astype(np.int64)).to(device)
    rows = torch.from_numpy(d["rows"].astype(np.int64)).to(device)
    sam.eval()
    dices = []
    for i in range(0, len(rows), 256):
        r = rows[i:i + 256]
        s = r[:, 0]
        img = image[s].float() / 255.0
        yy = torch.arange(INPUT_SIZE, device=device)
        pad = ((yy.view(1, -1, 1) >= hw[s, 0].view(-1, 1, 1)) | (yy.view(1, 1, -1) >= hw[s, 1].view(-1, 1, 1))).float()
        mask = (inst[s] == r[:, 1].view(-1, 1, 1).to(torch.uint8)).float()
        x = normalize(img, pad)
        b = len(r)
        # box + padding tokens, as the exported decoder sees it (export.PAD_TOKENS)
        coords = torch.zeros(b, NSLOT, 2, device=device)
        box = bbox(mask)
        coords[:, 0], coords[:, 1] = box[:, :2], box[:, 2:]
        labels = torch.tensor([[2.0, 3.0] + [-1.0] * (NSLOT - 2)], device=device).expand(b, -1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            emb = sam.image_encoder(x)
            low, iou = run_decoder(sam, emb, coords, labels, torch.zeros(b, 1, 128, 128, device=device),
                                   torch.zeros(b, device=device))
        low, iou = low.float(), iou.float()
        up = F.interpolate(low, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        best = up[torch.arange(b, device=device), 1 + iou[:, 1:].argmax(1)] > 0
        inter = (best * mask).sum((1, 2))
        dices.append((2 * inter / (best.sum((1, 2)) + mask.sum((1, 2)))).cpu())
    sam.train()
    dice = torch.cat(dices).numpy()
    cls = d["rows"][:, 3]
    per = {int(c): float(dice[cls == c].mean()) for c in np.unique(cls)}
    return float(np.mean(list(per.values()))), per


# ---------------------------------------------------------------- checkpoints

# The arguments that define a run's schedule and data: a folder's checkpoint is continued only by a
# command with the same values (anything else would silently train a different recipe).
SCHEDULE_KEYS = ("train_file", "steps", "minutes", "batch", "micro_batch", "lr", "min_lr_frac", "wd",
                 "warmup", "rounds", "seed", "resume")
EXIT_PAUSED = 75  # EX_TEMPFAIL: stopped by --stop-after-*, run the same command again to continue


def schedule_of(args) -> dict:
    return {k: str(getattr(args, k)) for k in SCHEDULE_KEYS}


def save_ckpt(out: Path, sam, opt, step, extra, state=None, log=None, shard_mb=12):
    """Write the checkpoint into a fresh sibling folder, then swap it in, so that a crash or a kill
    mid-write leaves the previous checkpoint intact (`ckpt_folder` finds it again)."""
    tmp, prev = out.with_name(out.name + ".tmp"), out.with_name(out.name + ".prev")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sd = {k: v.detach().float().cpu() for k, v in sam.state_dict().items()}
    shards, cur, size = [], {}, 0
    for k, v in sd.items():
        nb = v.numel() * 4
        if cur and size + nb > shard_mb * 2**20:
            shards.append(cur)
            cur, size = {}, 0
        cur[k] = v
        size += nb
    shards.append(cur)
    for i, sh in enumerate(shards):
        torch.save(sh, tmp / f"model_{i}.pt")
    if opt is not None:
        torch.save(opt.state_dict(), tmp / "optim.pt")
    if state is not None:
        torch.save(state, tmp / "state.pt")
    if log is not None:
        (tmp / "log.json").write_text(json.dumps(log))
    (tmp / "ckpt.json").write_text(json.dumps(dict(step=step, cfg=MODEL_CFG, **extra), indent=1))
    if out.exists():
        shutil.rmtree(prev, ignore_errors=True)
        os.replace(out, prev)
    os.replace(tmp, out)
    shutil.rmtree(prev, ignore_errors=True)


def ckpt_folder(out: Path) -> Path | None:
    """The complete checkpoint behind `out`: `out` itself, or `out.prev` if a save was cut off
    between its two renames."""
    for cand in (out, out.with_name(out.name + ".prev")):
        if (cand / "ckpt.json").exists():
            return cand
    return None


def load_weights(folder: Path, sam):
    sam.load_state_dict(read_shards(folder))
    return json.loads((folder / "ckpt.json").read_text()) if (folder / "ckpt.json").exists() else {}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=TRAIN_DIR)
    ap.add_argument("--train-file", default="train.npz")
    ap.add_argument("--out", type=Path, default=TRAIN_DIR / "ckpt",
                    help="checkpoint folder; if it holds an unfinished run of the same schedule, it is continued")
    ap.add_argument("--resume", type=Path, default=None,
                    help="start this run from the weights (and optimizer state) of a finished earlier run")
    ap.add_argument("--steps", type=int, default=0, help="step budget: the schedule, reproducible on any hardware")
    ap.add_argument("--minutes", type=float, default=0.0,
                    help="wall-clock budget instead of --steps (how the shipped weights were trained)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=0,
                    help="accumulate gradients over micro-batches of this size (CPU memory; 0: whole batch)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--min-lr-frac", type=float, default=0.02)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--warmup", type=int, default=250)
    ap.add_argument("--rounds", type=int, default=3, help="decoder passes per sample (1 + corrections)")
    ap.add_argument("--ckpt-min", type=float, default=3.0)
    ap.add_argument("--monitor-steps", type=int, default=500,
                    help="evaluate on val.npz every this many steps (in steps: on a CPU it costs minutes)")
    ap.add_argument("--stop-after-minutes", type=float, default=0.0,
                    help="pause after this much wall-clock time in this process (checkpoint, exit 75); "
                         "running the same command again continues")
    ap.add_argument("--stop-after-steps", type=int, default=0,
                    help="pause once the run has reached this step (checkpoint, exit 75)")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if (args.steps > 0) == (args.minutes > 0):
        ap.error("give exactly one budget: --steps N (reproducible) or --minutes M (wall clock)")
    args.micro = min(args.micro_batch or args.batch, args.batch)
    if args.batch % args.micro:
        ap.error("--batch must be a multiple of --micro-batch")
    return args


def make_optimizer(sam, args):
    """AdamW; no weight decay on norms, biases, positional and token embeddings."""
    decay, no_decay = [], []
    for n, p in sam.named_parameters():
        (no_decay if p.ndim <= 1 or "pos" in n or "embed" in n or "token" in n else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": args.wd},
                              {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.999))


class Run:
    """This run's progress: its step, time trained, log and the earlier run it started from;
    continued from its own checkpoint, started from `--resume`'s weights, or new."""

    def __init__(self, args, sam, opt, g, dev):
        self.args, self.sam, self.opt, self.g = args, sam, opt, g
        self.step, self.elapsed_before, self.log, self.prev = 0, 0.0, [], {}
        self.finished = False
        own = ckpt_folder(args.out)
        if own is not None:
            self.continue_from(own, dev)
        elif args.resume:
            self.start_from(args.resume, dev)
        self.start_step = int(self.prev.get("step", 0))
        self.t0 = time.time()

    def continue_from(self, own, dev):
        meta = json.loads((own / "ckpt.json").read_text())
        if meta.get("schedule") != schedule_of(self.args):
            raise SystemExit(f"{self.args.out} holds a checkpoint of another schedule ({meta.get('schedule')}); "
                             "choose another --out or delete it")
        if meta.get("finished"):
            print(f"{self.args.out}: this run is already finished (step {meta['step']}); nothing to do")
            self.finished = True
            return
        load_weights(own, self.sam)
        self.opt.load_state_dict(torch.load(own / "optim.pt", map_location=dev))
        state = torch.load(own / "state.pt", map_location="cpu", weights_only=False)
        self.step, self.elapsed_before = state["step"], state["elapsed"]
        self.g.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.log = json.loads((own / "log.json").read_text()) if (own / "log.json").exists() else []
        self.prev = meta.get("init", {})
        print(f"continuing {self.args.out} at step {self.step} of this run ({self.elapsed_before:.0f}s trained)")

    def start_from(self, earlier, dev):
        init = ckpt_folder(earlier)
        if init is None:
            raise SystemExit(f"--resume {earlier}: no checkpoint there")
        self.prev = load_weights(init, self.sam)
        if (init / "optim.pt").exists():
            try:
                self.opt.load_state_dict(torch.load(init / "optim.pt", map_location=dev))
                print("resumed optimizer state")
            except Exception as e:  # noqa: BLE001
                print(f"optimizer state not resumed: {e}")
        print(f"resumed weights from {earlier} at step {self.prev.get('step', 0)}")

    def elapsed(self):
        return self.elapsed_before + time.time() - self.t0

    def frac(self):
        return self.step / self.args.steps if self.args.steps else self.elapsed() / (self.args.minutes * 60)

    def checkpoint(self, finished, extra=None):
        args, prev = self.args, self.prev
        bare = self.sam._orig_mod if hasattr(self.sam, "_orig_mod") else self.sam
        meta = {"schedule": schedule_of(args), "finished": finished, "args": {k: str(v) for k, v in vars(args).items()},
                "init": {k: prev[k] for k in ("step", "train_seconds", "prev_train_seconds") if k in prev},
                "train_seconds": self.elapsed(), "steps_this_run": self.step,
                "samples_this_run": self.step * args.batch,
                "prev_train_seconds": prev.get("train_seconds", 0) + prev.get("prev_train_seconds", 0),
                "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda")
                else f"cpu ({torch.get_num_threads()} threads)",
                "precision": "bf16 autocast" if args.bf16 else "fp32"}
        meta.update(extra or {})
        state = {"step": self.step, "elapsed": self.elapsed(), "generator": self.g.get_state(),
                 "torch_rng": torch.get_rng_state()}
        save_ckpt(args.out, bare, self.opt, self.start_step + self.step, meta, state, self.log)

    def should_pause(self, started):
        args = self.args
        return bool((args.stop_after_minutes and time.time() - started > args.stop_after_minutes * 60)
                    or (args.stop_after_steps and self.step >= args.stop_after_steps))


def train(run, data, val_path, dev):
    args, sam, opt = run.args, run.sam, run.opt
    run.t0 = last_ck = started = time.time()  # the clock of this process's training, data loaded
    while run.frac() < 1.0:
        if run.should_pause(started):
            run.checkpoint(False)
            print(f"paused at step {run.step} of this run -> {args.out}; run the same command again to continue",
                  flush=True)
            raise SystemExit(EXIT_PAUSED)
        warm = min(1.0, (run.step + 1) / args.warmup)
        cosine = 0.5 * (1 + math.cos(math.pi * run.frac()))
        lr = args.lr * warm * (args.min_lr_frac + (1 - args.min_lr_frac) * cosine)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=True)
        parts = args.batch // args.micro
        for _ in range(parts):
            loss, st = train_step(sam, data, args.micro, args, run.g, args.rounds)
            (loss / parts).backward()
        gn = torch.nn.utils.clip_grad_norm_(sam.parameters(), 1.0)
        opt.step()
        run.step += 1
        if run.step % 50 == 0 or run.step == 1:
            st.update(step=run.start_step + run.step, lr=lr, gnorm=float(gn), t=round(run.elapsed(), 1))
            run.log.append(st)
            print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in st.items()}), flush=True)
        now = time.time()
        if val_path.exists() and run.step % args.monitor_steps == 0:
            m, per = monitor(sam, val_path, dev, args.bf16)
            print(f"monitor step {run.start_step + run.step}: val box dice {m:.4f} {per}", flush=True)
        if now - last_ck > args.ckpt_min * 60:
            run.checkpoint(False)
            last_ck = now


def main():
    args = parse_args()
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if dev.type == "cpu" and not torch.cpu._is_avx512_bf16_supported():
        args.bf16 = False  # emulated bf16 would be slower than fp32
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    g = torch.Generator(device=dev)
    g.manual_seed(args.seed)

    sam = build_sam().to(dev)
    opt = make_optimizer(sam, args)
    run = Run(args, sam, opt, g, dev)
    if run.finished:
        return
    print(f"params {sum(p.numel() for p in sam.parameters()) / 1e6:.2f} M", flush=True)
    if args.compile:
        sam.image_encoder = torch.compile(sam.image_encoder)

    data = GpuData(args.data / args.train_file, dev)
    val_path = args.data / "val.npz"
    print(f"train instances {len(data.rows)}, slices {len(data.image)}", flush=True)
    sam.train()
    train(run, data, val_path, dev)
    if hasattr(sam.image_encoder, "_orig_mod"):
        sam.image_encoder = sam.image_encoder._orig_mod
    extra = {}
    if val_path.exists():
        m, per = monitor(sam, val_path, dev, args.bf16)
        extra = {"monitor_val_box_dice": m, "monitor_val_per_class": per}
        print(f"final monitor: val box dice {m:.4f} {per}", flush=True)
    run.checkpoint(True, extra)
    print(f"done: {run.step} steps in {run.elapsed():.0f}s -> {args.out}", flush=True)


if __name__ == "__main__":
    main()
