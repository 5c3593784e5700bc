"""Read ../shared/data and write the compact training set into .train/ (git-ignored).

1. Estimate the undocumented soft-tissue window of the pre-windowed BTCV slices by matching
   tissue anchors (fat peak, muscle peak, liver) with the HU of the CHAOS and TotalSegmentator CT.
   -> .train/window.json, .train/window_report.txt
2. Pack training slices (BTCV train patients, TotalSegmentator CT/MR, SAM-Med2D demo), resized to
   256 (longest side, bilinear antialiased) as uint8, with per-slice instance maps (one id per
   connected component of an organ, components < MIN_AREA px dropped) and an instance table.
   -> .train/train.npz, .train/val.npz (a small monitor subset of the held-out BTCV patients)

Held-out BTCV patients (common.BTCV_VAL) and CHAOS are never written to train.npz.
No patient data goes into the repository: .train/ is git-ignored scratch.
"""
from __future__ import annotations

import argparse
import glob
import json

import numpy as np
from scipy import ndimage

from common import (BTCV_VAL, DATA, INPUT_SIZE, MIN_AREA, TRAIN_DIR, percentile_mr, resize_label,
                    resize_longest, window_ct)

EIGHT = np.ones((3, 3), bool)
SOURCES = ["btcv", "ts_ct", "ts_mr", "demo"]


def smooth(h, k=5):
    return np.convolve(h, np.ones(k) / k, "same")


def peak(values: np.ndarray, lo: int, hi: int, offset: int, k: int = 5) -> int:
    """Mode of an integer-valued sample inside [lo, hi) after smoothing (histogram starts at offset)."""
    h = np.bincount((values.ravel().astype(np.int64) - offset).clip(0), minlength=hi - offset + 8)
    h = smooth(h[lo - offset: hi - offset].astype(float), k)
    return int(np.argmax(h)) + lo


def chaos_volume():
    import pydicom
    from PIL import Image

    fs = sorted(glob.glob(str(DATA / "chaos_ct_liver/Data_3D/DICOM_anon/*.dcm")))
    ds = [pydicom.dcmread(f) for f in fs]
    hu = np.stack([d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept)
                   for d in ds])
    gts = sorted(glob.glob(str(DATA / "chaos_ct_liver/Data_3D/Ground/*.png")))
    gt = np.stack([np.array(Image.open(g)) > 0 for g in gts])
    assert hu.shape == gt.shape, (hu.shape, gt.shape)
    return hu, gt


def btcv_display(vol: np.ndarray) -> np.ndarray:
    """BTCV npz (Z, 257, 257) -> display orientation (anterior up, patient right on image left)."""
    return np.ascontiguousarray(np.rot90(vol, 1, axes=(1, 2)))


def estimate_window():
    import nibabel as nib

    lines = []
    btcv = sorted(glob.glob(str(DATA / "btcv_abdomen_ct/*.npz")))
    fat_u8, mus_u8, organ_u8 = [], [], {1: [], 2: [], 3: [], 6: [], 8: []}
    for f in btcv:
        d = np.load(f)
        im, lb = d["image"], d["label"]
        body = im[im > 0]
        fat_u8.append(peak(body, 1, 70, 0))
        mus_u8.append(peak(body, 80, 140, 0))
        for c in organ_u8:
            if (lb == c).any():
                organ_u8[c].append(float(np.median(im[lb == c])))
    fat_b, mus_b = float(np.median(fat_u8)), float(np.median(mus_u8))
    org_b = {c: float(np.median(v)) for c, v in organ_u8.items()}

    hu, gt = chaos_volume()
    hu_i = np.rint(hu).astype(np.int64)
    fat_c = peak(hu_i[(hu_i > -300) & (hu_i < 300)], -150, -40, -1100, 9)
    mus_c = peak(hu_i[(hu_i > -300) & (hu_i < 300)], 20, 90, -1100, 9)
    liver_c = float(np.median(hu[gt]))
    ts = nib.load(str(DATA / "totalsegmentator/example_ct_sm.nii.gz")).get_fdata()
    seg = np.asarray(nib.load(str(DATA / "totalsegmentator/example_seg.nii.gz")).dataobj).astype(int)
    ts_i = np.rint(ts).astype(np.int64)
    fat_t = peak(ts_i[(ts_i > -300) & (ts_i < 300)], -150, -40, -1100, 9)
    # TotalSegmentator ids checked against labels_total.tsv: 1 spleen, 2 kidney_right, 3 kidney_left,
    # 5 liver, 52 aorta
    ts_org = {n: float(np.median(ts[seg == i])) for i, n in
              [(1, "spleen"), (2, "kidney_right"), (3, "kidney_left"), (5, "liver"), (52, "aorta")]}

    fat_hu = (fat_c + fat_t) / 2.0
    anchors = [("fat (BTCV body-histogram peak / CHAOS+TS fat peak)", fat_hu, fat_b),
               ("muscle (BTCV peak 80-140 / CHAOS contrast-CT peak 20-90 HU)", float(mus_c), mus_b),
               ("liver (BTCV median of patient medians / CHAOS liver median)", liver_c, org_b[6])]
    x = np.array([a[1] for a in anchors])
    y = np.array([a[2] for a in anchors])
    a, b = np.polyfit(x, y, 1)
    width = 255.0 / a
    lo = -b / a
    center = lo + width / 2
    center_r, width_r = float(5 * round(center / 5)), float(5 * round(width / 5))

    lines.append("BTCV window estimate (least-squares fit of u8 = (HU - lo)/width*255 over anchors)")
    for n, h, u in anchors:
        lines.append(f"  {n}: HU {h:.1f} <-> u8 {u:.1f}")
    lines.append(f"  BTCV fat peaks per patient (u8): {fat_u8}")
    lines.append(f"  BTCV muscle peaks per patient (u8): {mus_u8}")
    lines.append(f"  CHAOS fat peak {fat_c} HU, muscle peak {mus_c} HU, liver median {liver_c:.1f} HU")
    lines.append(f"  TotalSegmentator (non-contrast) fat peak {fat_t} HU, organ medians HU {ts_org}")
    lines.append(f"  fit: lo={lo:.1f} HU width={width:.1f} HU center={center:.1f} HU"
                 f" -> rounded center={center_r} width={width_r}")
    names = {1: "spleen", 2: "right_kidney", 3: "left_kidney", 6: "liver", 8: "aorta"}
    lo_r = center_r - width_r / 2
    for c, u in org_b.items():
        lines.append(f"  BTCV {names[c]} median u8 {u:.0f} -> {lo_r + u / 255 * width_r:.0f} HU under the rule")
    report = "\n".join(lines)
    print(report)
    TRAIN_DIR.mkdir(parents=True, exist_ok=True)
    (TRAIN_DIR / "window.json").write_text(json.dumps(
        {"center": center_r, "width": width_r, "fit_center": center, "fit_width": width}, indent=1))
    (TRAIN_DIR / "window_report.txt").write_text(report + "\n")
    return center_r, width_r


class Packer:
    def __init__(self):
        self.imgs, self.insts, self.hw, self.rows = [], [], [], []

    def add(self, img_u8: np.ndarray, label: np.ndarray, source: str, class_offset: int = 0):
        """img_u8 (H,W) uint8, label (H,W) int class map; resized to longest side 256, padded."""
        r = resize_longest(img_u8)
        lab = resize_label(label.astype(np.int32)) if label.max() < 2**31 else None
        h, w = r.shape
        inst = np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)
        rows = []
        n = 0
        for c in np.unique(lab):
            if c == 0:
                continue
            cc, k = ndimage.label(lab == c, EIGHT)
            if k == 0:
                continue
            areas = ndimage.sum(np.ones_like(cc), cc, index=np.arange(1, k + 1))
            for j, a in enumerate(areas, 1):
                if a < MIN_AREA or n >= 255:
                    continue
                n += 1
                inst[:h, :w][cc == j] = n
                rows.append((n, SOURCES.index(source), int(c) + class_offset, int(a)))
        if not rows:
            return
        i = len(self.imgs)
        img = np.zeros((INPUT_SIZE, INPUT_SIZE), np.uint8)
        img[:h, :w] = r
        self.imgs.append(img)
        self.insts.append(inst)
        self.hw.append((h, w))
        self.rows.extend((i,) + rr for rr in rows)

    def save(self, path):
        rows = np.array(self.rows, np.int32).reshape(-1, 5)
        np.savez_compressed(path, image=np.stack(self.imgs), inst=np.stack(self.insts),
                            hw=np.array(self.hw, np.int16), rows=rows,
                            row_fields=np.array(["slice", "inst", "source", "class", "area"]),
                            sources=np.array(SOURCES))
        print(f"{path}: {len(self.imgs)} slices, {len(rows)} instances")


def nifti_slices(path_img, path_seg):
    import nibabel as nib

    im = nib.as_closest_canonical(nib.load(str(path_img)))
    sg = nib.as_closest_canonical(nib.load(str(path_seg)))
    a = im.get_fdata()
    s = np.asarray(sg.dataobj).astype(np.int32)
    assert a.shape == s.shape, (path_img, a.shape, s.shape)
    for k in range(a.shape[2]):
        # RAS canonical -> display: rows anterior->posterior, cols patient right->left
        yield np.rot90(a[:, :, k]), np.rot90(s[:, :, k])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--val-every", type=int, default=4, help="monitor subset: every n-th held-out slice")
    ap.add_argument("--btcv-every", type=int, default=1, help="keep every n-th labelled BTCV training slice")
    ap.add_argument("--out-name", default="train.npz")
    ap.add_argument("--btcv-as-stored", action="store_true",
                    help="keep BTCV slices rotated as stored (only to reproduce runs 1-2 of the shipped weights)")
    args = ap.parse_args()
    center, width = estimate_window()

    tr, va = Packer(), Packer()
    for f in sorted(glob.glob(str(DATA / "btcv_abdomen_ct/*.npz"))):
        name = f.split("/")[-1][:-4]
        d = np.load(f)
        # the npz slices are stored rotated by 90 degrees (liver at the top, spine on the left):
        # np.rot90 puts them in DICOM display orientation (anterior up, patient right on the left),
        # which is what the engine feeds the model.
        im, lb = btcv_display(d["image"]), btcv_display(d["label"])
        if args.btcv_as_stored:
            im, lb = d["image"], d["label"]
        keep = np.nonzero(lb.reshape(lb.shape[0], -1).max(1) > 0)[0]
        if name in BTCV_VAL:
            for k in keep[:: args.val_every]:
                va.add(im[k], lb[k], "btcv")
        else:
            for k in keep[:: args.btcv_every]:
                tr.add(im[k], lb[k], "btcv")
    n_btcv = len(tr.imgs)
    # TotalSegmentator CT (labels by the TotalSegmentator model; ids offset by 100 to keep them apart)
    ts = DATA / "totalsegmentator"
    for img, seg in nifti_slices(ts / "example_ct_sm.nii.gz", ts / "example_seg.nii.gz"):
        tr.add(window_ct(img, center, width), seg, "ts_ct", 100)
    try:  # the 20-slice DICOM series (JPEG 2000) with its label map
        import nibabel as nib
        import pydicom

        fs = sorted(glob.glob(str(ts / "example_ct_dicom/*")))
        ds = sorted((pydicom.dcmread(f) for f in fs), key=lambda d: float(d.ImagePositionPatient[2]))
        vol = [d.pixel_array.astype(np.float32) * float(d.RescaleSlope) + float(d.RescaleIntercept) for d in ds]
        seg = np.asarray(nib.load(str(ts / "example_seg_dicom.nii.gz")).dataobj).astype(np.int32)
        n_before = len(tr.imgs)
        for k, hu in enumerate(vol):
            # the label NIfTI is LPS-flipped (affine diag -1, +1): (i, j) -> rows flipped after
            # transposing; checked by the liver (93 HU, sd 22) and aorta (151 HU) medians.
            s = seg[:, :, k].T[::-1]
            tr.add(window_ct(hu, center, width), s, "ts_ct", 100)
        print(f"TotalSegmentator DICOM series: {len(tr.imgs) - n_before} slices")
    except Exception as e:  # noqa: BLE001 - optional source
        print(f"skipping TotalSegmentator DICOM series: {e}")
    for img, seg in nifti_slices(ts / "example_mr_sm.nii.gz", ts / "example_seg_mr.nii.gz"):
        tr.add(percentile_mr(img), seg, "ts_mr", 300)
    # SAM-Med2D demo slices (already 8-bit)
    from PIL import Image

    demo = DATA / "sam_med2d_demo/data_demo"
    for p in sorted(glob.glob(str(demo / "images/*.png"))):
        stem = p.split("/")[-1][:-4]
        img = np.asarray(Image.open(p).convert("L"))
        lab = np.zeros(img.shape, np.int32)
        for j, m in enumerate(sorted(glob.glob(str(demo / f"masks/{stem}_*.png"))), 1):
            mm = np.asarray(Image.open(m).convert("L")) > 127
            if mm.shape == img.shape:
                lab[mm] = j
        tr.add(img, lab, "demo", 500)
    print(f"BTCV train slices {n_btcv}, other {len(tr.imgs) - n_btcv}")
    tr.save(TRAIN_DIR / args.out_name)
    va.save(TRAIN_DIR / "val.npz")


if __name__ == "__main__":
    main()
