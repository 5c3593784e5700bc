"""Validate the shipped bundle (onnxruntime on encoder.onnx + decoder.onnx) with DESIGN.md §4.

Held-out data only: BTCV patients common.BTCV_VAL (never trained on) and the CHAOS CT liver series
(never trained on; its DICOM is windowed from HU with the bundle's CT rule from model.toml).

Per labelled slice and organ: the organ's largest 8-connected component (skipped when < --min-area
px at the original slice size), box = its tight bounding box (and a jittered variant, fixed seed),
prompt = the two box corners (labels 2, 3), decoder multimask outputs 1..3, keep the one with the
highest predicted IoU, logits at the original size (the decoder's orig_im_size), threshold 0.
Dice/IoU against that component (and, reported too, against the whole organ in the slice), averaged
per organ, then over organs. Single click: one positive click at the component's most interior
point (distance-transform maximum) plus the SAM padding point, best of outputs 1..3 by predicted IoU.
Click refinement (every organ): that click, then 2 correction clicks (click_session), Dice after each.

BTCV slices are rotated into DICOM display orientation first (prepare_data.btcv_display).
Preprocessing is the engine's: 8-bit slice -> 3 channels -> resize longest side to 256 (bilinear,
antialiased) -> (x - mean) / std -> zero pad. Writes results/eval.json.
"""
from __future__ import annotations

import argparse
import glob
import json
import time
import tomllib
from pathlib import Path

import numpy as np
from scipy import ndimage

from prepare_data import btcv_display
from common import BTCV_CLASSES, BTCV_VAL, BUNDLE, DATA, HERE, resized_shape, window_ct

EIGHT = np.ones((3, 3), bool)
CLICKS = 3  # clicks per simulated refinement session


class Bundle:
    def __init__(self, folder: Path, threads: int):
        import onnxruntime as ort

        self.cfg = tomllib.loads((folder / "model.toml").read_text())
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        prov = ["CPUExecutionProvider"]
        self.enc = ort.InferenceSession(str(folder / self.cfg["files"]["encoder"]["path"]), so, providers=prov)
        self.dec = ort.InferenceSession(str(folder / self.cfg["files"]["decoder"]["path"]), so, providers=prov)
        self.size = int(self.cfg["input_size"])
        self.mean = np.array(self.cfg["normalize"]["mean"], np.float32)
        self.std = np.array(self.cfg["normalize"]["std"], np.float32)
        emb = self.enc.get_outputs()[0].shape
        self.low = 4 * int(emb[2])

    def embed(self, u8: np.ndarray) -> np.ndarray:
        from PIL import Image

        h, w = u8.shape
        nh, nw = resized_shape(h, w, self.size)
        r = np.asarray(Image.fromarray(u8).resize((nw, nh), Image.BILINEAR)).astype(np.float32) \
            if (nh, nw) != (h, w) else u8.astype(np.float32)
        x = np.zeros((1, 3, self.size, self.size), np.float32)
        x[0, :, :nh, :nw] = (r[None] - self.mean[:, None, None]) / self.std[:, None, None]
        return self.enc.run(None, {"image": x})[0]

    def predict(self, emb, coords_xy: np.ndarray, labels: np.ndarray, hw, multimask: bool, mask_input=None):
        """(mask at the slice size, predicted IoU, low-res logits [1,1,4h,4w]) of the chosen output."""
        h, w = hw
        s = self.size / max(h, w)
        feeds = {
            "image_embeddings": emb,
            "point_coords": (coords_xy * s).astype(np.float32)[None],
            "point_labels": labels.astype(np.float32)[None],
            "mask_input": np.zeros((1, 1, self.low, self.low), np.float32) if mask_input is None else mask_input,
            "has_mask_input": np.full(1, 0.0 if mask_input is None else 1.0, np.float32),
            "orig_im_size": np.array([h, w], np.float32),
        }
        masks, iou, low = self.dec.run(None, feeds)
        k = 1 + int(np.argmax(iou[0, 1:])) if multimask else 0
        return masks[0, k] > 0, float(iou[0, k]), low[:, k:k + 1]


def dice_iou(pred: np.ndarray, gt: np.ndarray):
    inter = np.logical_and(pred, gt).sum()
    s = pred.sum() + gt.sum()
    union = s - inter
    return (2 * inter / s if s else 1.0), (inter / union if union else 1.0)


def largest_cc(m: np.ndarray):
    cc, n = ndimage.label(m, EIGHT)
    if n == 0:
        return None
    areas = np.bincount(cc.ravel())[1:]
    return cc == (1 + int(np.argmax(areas)))


def box_of(m: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(m)
    return np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], np.float32)


def jitter_box(box: np.ndarray, hw, rng) -> np.ndarray:
    """SAM-style noisy box: each coordinate moves by N(0, 0.05 * side), at most 5% of the image."""
    side = np.maximum(box[1] - box[0], 1.0)
    lim = 0.05 * max(hw)
    d = np.clip(rng.normal(0, 0.05, (2, 2)) * side, -lim, lim)
    b = box + d
    b[0] = np.clip(b[0], 0, [hw[1] - 1, hw[0] - 1])
    b[1] = np.clip(b[1], b[0], [hw[1] - 1, hw[0] - 1])
    return b.astype(np.float32)


def interior_point(m: np.ndarray) -> np.ndarray:
    dt = ndimage.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(np.argmax(dt), dt.shape)
    return np.array([[x, y]], np.float32)


def click_session(bundle, emb, comp, hw, n_clicks):
    """A user refining with clicks: one positive click at the most interior point, then each further
    click at the most interior point of the larger error region (missed: positive; spurious:
    negative), with the previous low-res mask as input, as the app does. Dice after each click."""
    pts, labs, low, dices = np.zeros((0, 2), np.float32), [], None, []
    pred = np.zeros_like(comp)  # nothing yet: the first click lands at the organ's interior point
    for n in range(n_clicks):
        missed, spurious = comp & ~pred, pred & ~comp
        if not missed.any() and not spurious.any():
            dices.append(dices[-1])
            continue
        positive = missed.sum() >= spurious.sum()
        pts = np.concatenate([pts, interior_point(missed if positive else spurious)])
        labs.append(1.0 if positive else 0.0)
        # clicks alone end with SAM's padding point; one click is ambiguous (multimask)
        pred, _, low = bundle.predict(emb, np.concatenate([pts, np.zeros((1, 2), np.float32)]),
                                      np.array(labs + [-1.0]), hw, n == 0, mask_input=low)
        dices.append(dice_iou(pred, comp)[0])
    return dices


class Acc:
    def __init__(self):
        self.d = {}

    def add(self, key, v):
        self.d.setdefault(key, []).append(float(v))

    def mean(self, key):
        v = self.d.get(key, [])
        return float(np.mean(v)) if v else float("nan")


def eval_slice(bundle, u8, label_map, classes, acc, prefix, rng, min_area, click_classes=()):
    emb = bundle.embed(u8)
    hw = u8.shape
    for cid, cname in classes.items():
        organ = label_map == cid
        if not organ.any():
            continue
        comp = largest_cc(organ)
        if comp.sum() < min_area:
            continue
        box = box_of(comp)
        lab = np.array([2, 3])
        pred, _, _ = bundle.predict(emb, box, lab, hw, True)
        d, i = dice_iou(pred, comp)
        acc.add(f"{prefix}/{cname}/dice", d)
        acc.add(f"{prefix}/{cname}/iou", i)
        acc.add(f"{prefix}/{cname}/dice_whole_organ", dice_iou(pred, organ)[0])
        predj, _, _ = bundle.predict(emb, jitter_box(box, hw, rng), lab, hw, True)
        acc.add(f"{prefix}/{cname}/dice_jitter", dice_iou(predj, comp)[0])
        for n, dc in enumerate(click_session(bundle, emb, comp, hw, CLICKS), 1):
            acc.add(f"{prefix}/{cname}/dice_clicks{n}", dc)
            if n == 1 and cid in click_classes:
                acc.add(f"{prefix}/{cname}/dice_click", dc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=BUNDLE)
    ap.add_argument("--min-area", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-slices", type=int, default=0, help="debug: limit slices per patient")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "eval.json")
    args = ap.parse_args()
    t0 = time.time()
    bundle = Bundle(args.bundle, args.threads)
    rng = np.random.default_rng(0)
    acc = Acc()
    classes = {i + 1: n for i, n in enumerate(BTCV_CLASSES)}
    n_slices = {}
    for name in BTCV_VAL:
        d = np.load(DATA / "btcv_abdomen_ct" / f"{name}.npz")
        # stored rotated by 90 degrees; evaluate in DICOM display orientation, as the engine sees CT
        im, lb = btcv_display(d["image"]), btcv_display(d["label"])
        keep = np.nonzero(lb.reshape(lb.shape[0], -1).max(1) > 0)[0]
        if args.max_slices:
            keep = keep[:: max(1, len(keep) // args.max_slices)]
        n_slices[name] = int(len(keep))
        for k in keep:
            eval_slice(bundle, im[k], lb[k], classes, acc, "btcv", rng, args.min_area, click_classes=(6,))
        print(f"{name}: {len(keep)} slices, {time.time() - t0:.0f}s", flush=True)
    # CHAOS CT liver, windowed from HU with the bundle's rule
    import pydicom
    from PIL import Image

    ct = bundle.cfg["intensity"]["ct"]
    fs = sorted(glob.glob(str(DATA / "chaos_ct_liver/Data_3D/DICOM_anon/*.dcm")))
    gts = sorted(glob.glob(str(DATA / "chaos_ct_liver/Data_3D/Ground/*.png")))
    assert len(fs) == len(gts)
    n_chaos = 0
    for f, gp in zip(fs, gts):
        gt = np.array(Image.open(gp)) > 0
        if not gt.any():
            continue
        if args.max_slices and n_chaos >= args.max_slices:
            break
        ds = pydicom.dcmread(f)
        hu = ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        u8 = window_ct(hu, float(ct["center"]), float(ct["width"]))
        eval_slice(bundle, u8, gt.astype(np.uint8), {1: "liver"}, acc, "chaos", rng, args.min_area,
                   click_classes=(1,))
        n_chaos += 1
    n_slices["chaos"] = n_chaos
    print(f"chaos: {n_chaos} slices, {time.time() - t0:.0f}s", flush=True)

    per = {}
    for cname in BTCV_CLASSES:
        per[cname] = {m: acc.mean(f"btcv/{cname}/{m}") for m in
                      ["dice", "iou", "dice_jitter", "dice_whole_organ"] + [f"dice_clicks{n}" for n in range(1, CLICKS + 1)]}
        per[cname]["n"] = len(acc.d.get(f"btcv/{cname}/dice", []))
    mean = lambda m: float(np.nanmean([per[c][m] for c in BTCV_CLASSES]))  # noqa: E731
    summary = {
        "btcv_mean_dice": mean("dice"),
        "btcv_mean_iou": mean("iou"),
        "btcv_mean_dice_jittered_box": mean("dice_jitter"),
        "btcv_mean_dice_vs_whole_organ": mean("dice_whole_organ"),
    }
    for n in range(1, CLICKS + 1):
        summary[f"btcv_mean_dice_{n}_clicks"] = mean(f"dice_clicks{n}")
    for c in BTCV_CLASSES:
        summary[f"btcv_{c}_dice"] = per[c]["dice"]
    summary.update({
        "chaos_liver_dice": acc.mean("chaos/liver/dice"),
        "chaos_liver_dice_jittered_box": acc.mean("chaos/liver/dice_jitter"),
        "chaos_liver_dice_vs_whole_organ": acc.mean("chaos/liver/dice_whole_organ"),
        "liver_single_click_dice": float(np.mean(acc.d["btcv/liver/dice_click"] + acc.d["chaos/liver/dice_click"])),
        "btcv_liver_single_click_dice": acc.mean("btcv/liver/dice_click"),
        "chaos_liver_single_click_dice": acc.mean("chaos/liver/dice_click"),
    })
    for n in range(1, CLICKS + 1):
        summary[f"chaos_liver_dice_{n}_clicks"] = acc.mean(f"chaos/liver/dice_clicks{n}")
    out = {"summary": summary, "per_organ": per, "slices": n_slices, "min_area_px": args.min_area,
           "bundle_sha256": {k: v["sha256"] for k, v in bundle.cfg["files"].items()},
           "seconds": time.time() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    for k, v in summary.items():
        print(f"{k:40s} {v:.4f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
