#!/usr/bin/env python3
"""Teach LiteMedSAM's prompt encoder and mask decoder to follow clicks (its image encoder frozen).

LiteMedSAM was trained on boxes only. This recipe fine-tunes the prompt encoder and mask decoder
with SAM's interactive simulation on embeddings computed once by the bundled, frozen encoder:

    F=packaging/model/litemedsam/finetune.py
    for s in litemedsam augmented chaos-mr; do .venv-model/bin/python $F embed --set $s; done
    .venv-model/bin/python $F train --run ckpt-v3 --steps 500
    .venv-model/bin/python $F export --run ckpt-v3   # -> click_decoder.onnx

* Data (`SETS`, each embedded once by `embed --set`, fp16 under `.train/litemedsam-clicks/SET/`,
  through LiteMedSAM's own preprocessing `reference.encoder_input`): `litemedsam`, the BTCV
  training patients (every patient but the four held out, `HELD_OUT`; every 2nd labelled slice, in
  display orientation) in LiteMedSAM's CT window (WL 40 / WW 400, the app's, through the HU of
  BTCV's estimated window), with the held-out patients' every 4th labelled slice for the monitor
  only; `augmented`, the same training slices in a random window, gamma and zoom (`augmented`);
  `chaos-mr`, every labelled slice of the CHAOS T2 MR patients in `MR_TRAIN`, by the app's MR
  rule (the other 8 are held out for `lumen eval --cases`); `btcv`, BTCV in its own window (the earlier
  runs'). CHAOS CT and the TotalSegmentator example are never seen: they measure generality. The
  shipped decoder is run `ckpt-v3` (sets litemedsam, augmented, chaos-mr); the one before it
  (`ckpt-two-windows`, btcv and litemedsam) gave one click on the CHAOS CT liver 0.60, the first
  (`ckpt`, btcv only) 0.34.
* Sessions: a jittered box (0-5 px per side) or a first click, then one or two correction clicks,
  each fed the previous low-res mask, as the app does. The first click is the point of the organ
  farthest from its border (`lumen eval`'s rule) or a random pixel of it; a correction click goes to
  the larger error region, at its most interior point or at random.
* Loss: 20·focal + Dice against the organ (the multimask candidate the engine would choose for a
  lone click: min over outputs 1..3, plus output 0), MSE of the IoU head; for boxes, plus a
  distillation term toward the original decoder's box logits (the guard on box accuracy).
* Checkpoints every few minutes; `LUMEN_TRAIN_SESSION_MIN` pauses with exit 75; the same command
  continues. `export` writes the decoder through convert.py's official `SamOnnxModel` export.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import pathlib
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import convert  # noqa: E402  (network, decoder export)
import pausing  # noqa: E402  (checkpoints, pause and continue)
import reference  # noqa: E402  (the official preprocessing)
from train import bbox, focal_dice, run_decoder  # noqa: E402  (starter recipe's SAM pieces)

REPO = HERE.parents[2]
DATA = pathlib.Path(os.environ.get("LUMEN_DATA", REPO.parent / "shared" / "data"))
WORK = pathlib.Path(os.environ.get("LUMEN_TRAIN_DIR", REPO / ".train")) / "litemedsam-clicks"
BUNDLE = REPO / "assets" / "models" / "litemedsam"
HELD_OUT = ["sabs_case00", "sabs_case06", "sabs_case12", "sabs_case18"]
SIZE = 256
MIN_AREA = 20
# BTCV's own soft-tissue window, as the starter recipe estimated it (packaging/model/README.md)
BTCV_WINDOW = (115.0, 475.0)
# CHAOS T2 MR: half the patients train; the other half (2, 5, 10, 15, 20, 22, 32, 34) stay held
# out, for `lumen eval --cases`
MR_TRAIN = [1, 3, 8, 13, 19, 21, 31, 33]
MR_LABEL_OFFSET = 100
# the embedded sets: BTCV in its own window, in LiteMedSAM's CT window, augmented, CHAOS T2 MR
SETS = ["btcv", "litemedsam", "augmented", "chaos-mr"]


def store_dir(name):
    """Where the embeddings of one embedded set live."""
    return WORK / name


def in_litemedsam_window(grey, center=40.0, width=400.0):
    """A BTCV slice in LiteMedSAM's CT window (WL 40 / WW 400, as the app gives it real CT), through
    the HU that BTCV's window stands for; what lies outside BTCV's window stays clipped."""
    btcv_center, btcv_width = BTCV_WINDOW
    hu = grey.astype(np.float32) / 255.0 * btcv_width + (btcv_center - btcv_width / 2)
    return reference.window(hu, center, width)


def augmented(grey, label, rng):
    """A BTCV slice as another scanner and another reader might show it: a CT window drawn around
    LiteMedSAM's (WL 10-90, WW 250-550), a gamma of 0.75-1.35, and a zoom of 1-1.3x (a random
    crop resized back: organs as large as a finer field of view shows them)."""
    import cv2

    image = in_litemedsam_window(grey, rng.uniform(10, 90), rng.uniform(250, 550))
    image = (255 * (image / 255.0) ** rng.uniform(0.75, 1.35)).round().astype(np.uint8)
    h, w = image.shape
    zoom = rng.uniform(1.0, 1.3)
    ch, cw = int(round(h / zoom)), int(round(w / zoom))
    y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    image = cv2.resize(image[y:y + ch, x:x + cw], (w, h), interpolation=cv2.INTER_LINEAR)
    label = cv2.resize(label[y:y + ch, x:x + cw].astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    return image, label


# ---------------------------------------------------------------- embed: the frozen encoder, once

def slices(every_train=2, every_val=4):
    """(split, case, z, grey u8 in display orientation, labels) of the BTCV patients."""
    for path in sorted((DATA / "btcv_abdomen_ct").glob("sabs_case*.npz")):
        case = path.stem
        split = "val" if case in HELD_OUT else "train"
        d = np.load(path)
        image = np.rot90(d["image"], 1, axes=(1, 2))
        label = np.rot90(d["label"], 1, axes=(1, 2))
        labelled = [z for z in range(len(label)) if label[z].any()]
        for z in labelled[:: every_val if split == "val" else every_train]:
            yield split, case, z, np.ascontiguousarray(image[z]).astype(np.uint8), np.ascontiguousarray(label[z])


def mr_slices(patients=MR_TRAIN):
    """(split, case, z, grey u8, labels) of every labelled slice of the CHAOS T2 MR training
    patients, in display orientation (LAS: column = i, row = reversed j) and 8-bit by the app's MR
    rule (the slice's 0.5-99.5 percentiles of its non-zero values). Labels are offset by
    `MR_LABEL_OFFSET` so that MR organs are balanced apart from BTCV's."""
    import nibabel as nib

    for n in patients:
        image = np.asarray(nib.load(DATA / "chaos_t2_mr" / f"image_{n}.nii.gz").dataobj, np.float32)
        label = np.asarray(nib.load(DATA / "chaos_t2_mr" / f"label_{n}.nii.gz").dataobj).astype(np.uint8)
        for z in range(image.shape[2]):
            lab = label[:, ::-1, z].T
            if not lab.any():
                continue
            grey = reference.mr_grey(image[:, ::-1, z].T)
            offset = np.where(lab > 0, MR_LABEL_OFFSET, 0).astype(np.uint8)
            yield "train", f"chaos_mr_{n}", z, np.ascontiguousarray(grey), np.ascontiguousarray(lab + offset)


def embedded_items(name, seed):
    """The (split, case, z, grey, labels) of one embedded set (see `SETS`)."""
    if name == "btcv":
        return list(slices())
    if name == "litemedsam":
        return [(s, c, z, in_litemedsam_window(g), lab) for s, c, z, g, lab in slices()]
    if name == "augmented":
        out = []
        for i, (s, c, z, g, lab) in enumerate(slices()):
            if s == "train":
                out.append((s, c, z) + augmented(g, lab, np.random.default_rng([seed, i])))
        return out
    return list(mr_slices())


def label_frame(label):
    """A label map in the model's 256 frame: nearest resize of the longest side, zeros padded."""
    import cv2

    h, w = label.shape
    s = SIZE / max(h, w)
    nh, nw = int(h * s + 0.5), int(w * s + 0.5)
    small = cv2.resize(label.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    out = np.zeros((SIZE, SIZE), np.uint8)
    out[:nh, :nw] = small
    return out


def embed(args):
    import onnxruntime as ort

    work = store_dir(args.set)
    work.mkdir(parents=True, exist_ok=True)
    items = embedded_items(args.set, args.seed)
    n = len(items)
    emb_path, meta_path = work / "embeddings.f16", work / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta is None or meta["n"] != n:
        meta = {"n": n, "done": 0, "encoder_sha256": convert.sha256(BUNDLE / "encoder.onnx"),
                "items": [[s, c, z] for s, c, z, _, _ in items]}
        np.memmap(emb_path, np.float16, "w+", shape=(n, 256, 64, 64)).flush()
    elif meta["encoder_sha256"] != convert.sha256(BUNDLE / "encoder.onnx"):
        sys.exit(f"{work}: embeddings of another encoder; delete the folder to start again")
    np.save(work / "labels.npy", np.stack([label_frame(lab) for *_, lab in items]))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    enc = ort.InferenceSession(str(BUNDLE / "encoder.onnx"), opts, providers=["CPUExecutionProvider"])
    store = np.memmap(emb_path, np.float16, "r+", shape=(n, 256, 64, 64))
    start, first = time.time(), meta["done"]
    for i in range(first, n):
        x, _ = reference.encoder_input(items[i][3])
        store[i] = enc.run(None, {"image": x})[0][0].astype(np.float16)
        if (i + 1) % 25 == 0 or i + 1 == n:
            store.flush()
            meta["done"] = i + 1
            tmp = meta_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, meta_path)
            rate = (time.time() - start) / (i + 1 - first)
            print(f"embedded {i + 1}/{n} ({rate:.2f} s each)", flush=True)
    print(f"{n} embeddings in {emb_path}")


# ---------------------------------------------------------------- the data set of (slice, organ)

class Embedded:
    """The (slice, organ) targets of `split`, with their embeddings, from every embedded set in
    `sets` (BTCV's sets hold the same slices, so each adds the same targets once more)."""

    def __init__(self, split, sets):
        embeddings, labels, self.items = [], [], []
        for name in sets:
            work = store_dir(name)
            meta = json.loads((work / "meta.json").read_text())
            if meta["done"] != meta["n"]:
                sys.exit(f"{work}: embeddings incomplete ({meta['done']}/{meta['n']}); run `embed` again")
            store = np.memmap(work / "embeddings.f16", np.float16, "r", shape=(meta["n"], 256, 64, 64))
            keep = [i for i, item in enumerate(meta["items"]) if item[0] == split]
            embeddings.append(torch.from_numpy(np.asarray(store[keep])))
            labels.append(np.load(work / "labels.npy")[keep])
            self.items += [meta["items"][i] + [name] for i in keep]
        self.embeddings = torch.cat(embeddings)
        self.labels = np.concatenate(labels)
        # (slice, organ label): the organ's largest component is the target, as in lumen eval
        self.targets = []
        for s, lab in enumerate(self.labels):
            for organ in np.unique(lab[lab > 0]):
                if largest_component(lab == organ).sum() >= MIN_AREA:
                    self.targets.append((s, int(organ)))
        organs = np.array([o for _, o in self.targets])
        counts = {o: (organs == o).sum() for o in np.unique(organs)}
        weights = np.array([1.0 / counts[o] for o in organs])  # every organ equally often
        self.weights = torch.from_numpy(weights / weights.sum())

    def batch(self, idx):
        s = [self.targets[i][0] for i in idx]
        masks = np.stack([largest_component(self.labels[si] == self.targets[i][1]) for si, i in zip(s, idx)])
        return self.embeddings[s].float(), torch.from_numpy(masks.astype(np.float32))


def largest_component(mask):
    from scipy import ndimage

    comps, n = ndimage.label(mask, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros_like(mask, bool)
    sizes = np.bincount(comps.ravel())[1:]
    return comps == 1 + int(np.argmax(sizes))


def interior_point(region):
    """The pixel of `region` farthest from its border (the image edge counts as border), first in
    raster order on ties: `lumen eval`'s click rule. (x, y), max distance."""
    from scipy import ndimage

    if not region.any():
        return None, 0.0
    dist = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    flat = int(np.argmax(dist))
    return (float(flat % region.shape[1]), float(flat // region.shape[1])), float(dist.flat[flat])


def next_click(pred, gt, rng, interior):
    """The correction click for each sample: in the larger error region (by its most interior
    distance), positive in a missed part, negative in a false one. Returns points [B,2], labels [B]."""
    points, labels = [], []
    for p, g in zip(pred, gt):
        fn, fp = g & ~p, p & ~g
        (pf, df), (pp, dp) = interior_point(fn), interior_point(fp)
        positive = df >= dp
        region = fn if positive else fp
        if not region.any():
            points.append((0.0, 0.0))
            labels.append(-1.0)  # nothing to correct: a padding token
            continue
        if interior:
            point = pf if positive else pp
        else:
            ys, xs = np.nonzero(region)
            k = rng.integers(len(xs))
            point = (float(xs[k]), float(ys[k]))
        points.append(point)
        labels.append(1.0 if positive else 0.0)
    return torch.tensor(points), torch.tensor(labels)


# ---------------------------------------------------------------- one interactive session per sample

def jittered_box(masks, rng):
    box = bbox(masks)
    jitter = torch.from_numpy(rng.integers(-5, 6, size=box.shape)).float()
    return (box + jitter).clamp(0, SIZE - 1)


def session(net, teacher, emb, masks, rng, rounds, distill):
    """Loss and per-round Dice of one batch: all samples start with a box, or all with a click."""
    b = emb.shape[0]
    gt = masks.unsqueeze(1)
    ar = torch.arange(b)
    box_start = rng.random() < 0.4
    if box_start:
        coords = jittered_box(masks, rng).view(b, 2, 2)
        labels = torch.tensor([[2.0, 3.0]]).expand(b, -1)
    else:
        point, label = next_click(np.zeros(masks.shape, bool), masks.numpy() > 0, rng, rng.random() < 0.5)
        coords, labels = point.view(b, 1, 2), label.view(b, 1)
    mask_in = torch.zeros(b, 1, SIZE, SIZE)
    has = torch.zeros(b)
    total, dice = 0.0, []
    for r in range(rounds):
        # points without a box end with one padding token, as the engine sends them
        pad = (not box_start)
        c = torch.cat([coords, torch.zeros(b, 1, 2)], 1) if pad else coords
        l = torch.cat([labels, -torch.ones(b, 1)], 1) if pad else labels
        low, iou_pred = run_decoder(net, emb, c, l, mask_in, has)
        lm, iou = focal_dice(low, gt.expand_as(low))
        ambiguous = r == 0 and not box_start  # a lone click: the engine picks among outputs 1..3
        box_single = r == 0 and box_start  # a lone box: LiteMedSAM's manifest takes output 0
        loss_mask = lm[:, 1:].min(1)[0] + lm[:, 0] if ambiguous else lm[:, 0]
        loss = (loss_mask + ((iou_pred - iou.detach()) ** 2).mean(1)).mean()
        if box_single and distill > 0:
            with torch.no_grad():
                ref, _ = run_decoder(teacher, emb, c, l, mask_in, has)
            loss = loss + distill * F.binary_cross_entropy_with_logits(low[:, 0], torch.sigmoid(ref[:, 0]))
        total = total + loss
        chosen = 1 + iou_pred[:, 1:].argmax(1) if ambiguous else torch.zeros(b, dtype=torch.long)
        cur = low[ar, chosen].detach()
        pred = (cur > 0).numpy()
        inter = (pred & (masks.numpy() > 0)).sum((1, 2))
        dice.append(float(np.mean(2 * inter / np.maximum(pred.sum((1, 2)) + masks.numpy().sum((1, 2)), 1))))
        if r + 1 < rounds:
            pt, lab = next_click(pred, masks.numpy() > 0, rng, rng.random() < 0.5)
            coords = torch.cat([coords, pt.view(b, 1, 2)], 1)
            labels = torch.cat([labels, lab.view(b, 1)], 1)
            mask_in, has = cur.unsqueeze(1), torch.ones(b)
    return total, dice


@torch.no_grad()
def monitor(net, data, rounds=3, limit=160):
    """Box Dice and 1..rounds-click Dice (interior clicks, the eval rule) on the held-out patients."""
    net.eval()
    rng = np.random.default_rng(0)
    picks = np.linspace(0, len(data.targets) - 1, min(limit, len(data.targets))).astype(int)
    per_organ = {}
    for start in range(0, len(picks), 16):
        idx = picks[start:start + 16]
        emb, masks = data.batch(idx)
        gt = masks.numpy() > 0
        b = len(idx)
        corners = bbox(masks).view(b, 2, 2)
        low, _ = run_decoder(net, emb, corners, torch.tensor([[2.0, 3.0]]).expand(b, -1),
                             torch.zeros(b, 1, SIZE, SIZE), torch.zeros(b))
        scores = [dice_of(low[:, 0] > 0, gt)]
        coords, labels = torch.zeros(b, 0, 2), torch.zeros(b, 0)
        mask_in, has, pred = torch.zeros(b, 1, SIZE, SIZE), torch.zeros(b), np.zeros(gt.shape, bool)
        for r in range(rounds):
            pt, lab = next_click(pred, gt, rng, True)
            coords = torch.cat([coords, pt.view(b, 1, 2)], 1)
            labels = torch.cat([labels, lab.view(b, 1)], 1)
            low, iou = run_decoder(net, emb, torch.cat([coords, torch.zeros(b, 1, 2)], 1),
                                   torch.cat([labels, -torch.ones(b, 1)], 1), mask_in, has)
            chosen = 1 + iou[:, 1:].argmax(1) if r == 0 else torch.zeros(b, dtype=torch.long)
            cur = low[torch.arange(b), chosen]
            pred = (cur > 0).numpy()
            scores.append(dice_of(cur > 0, gt))
            mask_in, has = cur.unsqueeze(1), torch.ones(b)
        for k, i in enumerate(idx):
            per_organ.setdefault(data.targets[i][1], []).append([s[k] for s in scores])
    net.train()
    means = np.array([np.mean(v, 0) for v in per_organ.values()])  # organ means, then their mean
    return means.mean(0)


def dice_of(pred, gt):
    pred = pred.numpy() if torch.is_tensor(pred) else pred
    inter = (pred & gt).sum((1, 2))
    return 2 * inter / np.maximum(pred.sum((1, 2)) + gt.sum((1, 2)), 1)


# ---------------------------------------------------------------- train

def trainable(net):
    return list(net.prompt_encoder.parameters()) + list(net.mask_decoder.parameters())


def save(folder, net, opt, state):
    parts = {"prompt_encoder": net.prompt_encoder.state_dict(), "mask_decoder": net.mask_decoder.state_dict()}
    pausing.save_swapped(folder, {"parts": parts, "optimizer": opt.state_dict(), "state": state})


def load_parts(net, parts):
    net.prompt_encoder.load_state_dict(parts["prompt_encoder"])
    net.mask_decoder.load_state_dict(parts["mask_decoder"])


def train(args):
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net = convert.load_network()
    teacher = copy.deepcopy(net)
    for p in net.image_encoder.parameters():
        p.requires_grad_(False)
    data, val = Embedded("train", args.sets), Embedded("val", ["litemedsam"])
    opt = torch.optim.AdamW(trainable(net), lr=args.lr, weight_decay=0.01)
    folder = WORK / args.run
    state = {"step": 0, "log": [], "schedule": {"steps": args.steps, "lr": args.lr, "batch": args.batch,
                                                "distill": args.distill, "seed": args.seed}}
    state["schedule"]["sets"] = list(args.sets)
    if (folder / "ckpt.pt").exists():
        saved = torch.load(folder / "ckpt.pt", weights_only=False)
        if saved["state"]["schedule"] != state["schedule"]:
            sys.exit(f"{folder} holds a run of another schedule {saved['state']['schedule']}")
        load_parts(net, saved["parts"])
        opt.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"continuing at step {state['step']} of {args.steps}")
    else:
        before = monitor(teacher, val)
        state["log"].append({"step": 0, "val": before.tolist()})
        print("before: box %.4f, clicks %s" % (before[0], np.round(before[1:], 4)), flush=True)
    rng = np.random.default_rng([args.seed, state["step"]])
    paused = pausing.Pausing(lambda: save(folder, net, opt, state))
    start = time.time()
    first_step = state["step"]
    while state["step"] < args.steps:
        step = state["step"]
        lr = args.lr * min(1.0, (step + 1) / 50) * 0.5 * (1 + np.cos(np.pi * step / args.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.multinomial(data.weights, args.batch, replacement=True).numpy()
        emb, masks = data.batch(idx)
        loss, dice = session(net, teacher, emb, masks, rng, rng.integers(2, 4), args.distill)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable(net), 1.0)
        opt.step()
        state["step"] = step + 1
        if state["step"] % 10 == 0:
            print(f"step {state['step']} loss {float(loss.detach()):.3f} dice/round {np.round(dice, 3)} "
                  f"({(time.time() - start) / (state['step'] - first_step):.1f} s a step)", flush=True)
        if state["step"] % args.monitor_every == 0 or state["step"] == args.steps:
            v = monitor(net, val)
            state["log"].append({"step": state["step"], "val": v.tolist()})
            print("step %d held out: box %.4f, clicks %s" % (state["step"], v[0], np.round(v[1:], 4)), flush=True)
        if paused.after_step(state["step"], args.steps):
            # a continued run seeds from the step it starts at: so does this one at every checkpoint
            rng = np.random.default_rng([args.seed, state["step"]])
    (folder / "log.json").write_text(json.dumps(state["log"], indent=1))
    print("done")


def export(args):
    """The fine-tuned decoder as the bundle's `click_decoder.onnx` (LiteMedSAM's own stays the
    box decoder: box Dice stays exactly as before), and model.toml with it."""
    saved = torch.load(WORK / args.run / "ckpt.pt", weights_only=False)
    if saved["state"]["step"] != saved["state"]["schedule"]["steps"]:
        sys.exit("the fine-tune has not finished; run `train` again")
    net = convert.load_network()
    load_parts(net, saved["parts"])
    convert.export_decoder(net, args.out / "click_decoder.onnx")
    slices = reference.sample_slices()
    # the box decoder and the encoder against PyTorch, as convert.py checks them
    diffs = convert.compare(convert.load_network(), args.out / "encoder.onnx", args.out / "decoder.onnx", slices)
    schedule, log = saved["state"]["schedule"], saved["state"]["log"]
    sets = ", ".join(schedule["sets"])
    note = (f"finetune.py: LiteMedSAM's prompt encoder and mask decoder fine-tuned for clicks, image encoder "
            f"frozen; {schedule['steps']} steps of {schedule['batch']} interactive sessions (embedded sets: "
            f"{sets}), lr {schedule['lr']}, "
            f"box distillation weight {schedule['distill']}, seed {schedule['seed']}; BTCV patients other than "
            f"{', '.join(HELD_OUT)}, CHAOS T2 MR patients {', '.join(map(str, MR_TRAIN))}; held-out BTCV monitor (box, 1, 2, 3 clicks; best multimask output for one click) "
            f"{np.round(log[0]['val'], 4).tolist()} before, {np.round(log[-1]['val'], 4).tolist()} after")
    convert.write_manifest(args.out, diffs, slices, note)
    print(f"wrote {args.out / 'click_decoder.onnx'} and model.toml")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=["embed", "train", "export"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", choices=SETS, default="litemedsam",
                        help="embed: BTCV in its own window, in LiteMedSAM's CT window, augmented, "
                             "or the CHAOS T2 MR training patients")
    parser.add_argument("--sets", nargs="+", default=["litemedsam", "augmented", "chaos-mr"], choices=SETS,
                        help="train: the embedded sets to train on")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--distill", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--monitor-every", type=int, default=125)
    parser.add_argument("--out", type=pathlib.Path, default=BUNDLE)
    parser.add_argument("--run", default="ckpt",
                        help="train, export: the run's checkpoint folder under the work folder "
                             "(`ckpt`: the shipped click decoder's run)")
    args = parser.parse_args()
    {"embed": embed, "train": train, "export": export}[args.stage](args)


if __name__ == "__main__":
    main()
