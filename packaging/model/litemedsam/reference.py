#!/usr/bin/env python3
"""LiteMedSAM's official preprocessing (bowang-lab/MedSAM, LiteMedSAM inference script), as the
reference that Lumen's Rust preprocessing is tested against and that convert.py feeds PyTorch.

    reference.py preprocess HEIGHT WIDTH IN.u8 OUT.f32

reads a grey 8-bit slice (raw bytes, row-major) and writes the encoder input [1,3,256,256]
(raw little-endian float32): grey copied to 3 channels; longest side resized to 256 with
cv2.INTER_AREA, new size int(x·s + 0.5); min-max normalization to [0, 1] after resizing;
zeros padded bottom/right. Needs numpy and opencv-python-headless (requirements.txt).
"""
import pathlib
import sys

import cv2
import numpy as np

SIZE = 256
DATA = pathlib.Path(__file__).resolve().parents[4] / "shared" / "data"


def resize_longest_side(image, target=SIZE):
    old_h, old_w = image.shape[:2]
    scale = target * 1.0 / max(old_h, old_w)
    new_h, new_w = old_h * scale, old_w * scale
    new_w, new_h = int(new_w + 0.5), int(new_h + 0.5)
    return cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)


def pad_image(image, target=SIZE):
    h, w = image.shape[:2]
    return np.pad(image, ((0, target - h), (0, target - w), (0, 0)))


def encoder_input(grey):
    """[1,3,256,256] float32 and the resized size, from a 2-D uint8 slice."""
    img_3c = np.repeat(grey[:, :, None], 3, axis=-1)
    img_256 = resize_longest_side(img_3c)
    new_h, new_w = img_256.shape[:2]
    norm = (img_256 - img_256.min()) / np.clip(img_256.max() - img_256.min(), a_min=1e-8, a_max=None)
    padded = pad_image(norm)
    return np.ascontiguousarray(padded.transpose(2, 0, 1)[None].astype(np.float32)), (new_h, new_w)


def window(values, center=40.0, width=400.0):
    low, high = center - width / 2, center + width / 2
    return (np.clip((values - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)


def mr_grey(values):
    """An MR slice in 8 bits by the app's MR rule: its 0.5-99.5 percentiles of non-zero values."""
    nonzero = values[values > 0]
    low, high = np.percentile(nonzero, [0.5, 99.5]) if nonzero.size else (0.0, 1.0)
    return (np.clip((values - low) / max(high - low, 1e-6), 0, 1) * 255).round().astype(np.uint8)


def box_of(mask):
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())]


def sample_slices():
    """Real slices with a liver box: CHAOS CT (512², a 2× reduction), BTCV (257², a fractional
    one) and CHAOS T2 MR (256², none)."""
    import nibabel as nib
    import pydicom
    from PIL import Image

    out = []
    chaos = DATA / "chaos_ct_liver" / "Data_3D"
    files = sorted((chaos / "DICOM_anon").iterdir())
    masks = sorted((chaos / "Ground").iterdir())
    z = len(files) // 2
    ds = pydicom.dcmread(files[z])
    hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    out.append(("chaos_ct_liver z%d" % z, window(hu), box_of(np.array(Image.open(masks[z])) > 0)))

    btcv = np.load(DATA / "btcv_abdomen_ct" / "sabs_case00.npz")
    labels = btcv["label"]
    z = int(np.argmax((labels == 6).sum(axis=(1, 2))))
    out.append(("btcv case00 z%d" % z, btcv["image"][z].astype(np.uint8), box_of(labels[z] == 6)))

    image = nib.load(DATA / "chaos_t2_mr" / "image_1.nii.gz").get_fdata()
    label = nib.load(DATA / "chaos_t2_mr" / "label_1.nii.gz").get_fdata()
    z = int(np.argmax((label == 1).sum(axis=(0, 1))))
    out.append(("chaos_t2_mr patient 1 z%d" % z, mr_grey(image[:, :, z]), box_of(label[:, :, z] == 1)))
    return out


def main():
    if len(sys.argv) != 6 or sys.argv[1] != "preprocess":
        sys.exit(__doc__)
    height, width = int(sys.argv[2]), int(sys.argv[3])
    grey = np.fromfile(sys.argv[4], dtype=np.uint8).reshape(height, width)
    x, _ = encoder_input(grey)
    x.astype("<f4").tofile(sys.argv[5])


if __name__ == "__main__":
    main()
