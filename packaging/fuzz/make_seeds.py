"""Writes the fuzz targets' seed inputs that Lumen owns into each `<crate>/fuzz/regressions/<target>/`.

Small files made from scratch (no patient or third-party image in them): DICOM slices in each
native transfer syntax, nested sequences, NIfTI volumes, an `.npz` shaped like the BTCV slices,
the repository's own `model.toml` files, and folder-tree recipes. The SEG and NIfTI label maps the
annotation targets start from are exported by Lumen itself:
`cargo test -p lumen-tests --test fuzz_regressions write_annotation_seeds -- --ignored`.
`packaging/fuzz/run.sh` adds the shared real files to a target's corpus when it fuzzes.

    target/python-seg-check/bin/python packaging/fuzz/make_seeds.py
"""

import gzip
import io
import shutil
from pathlib import Path

import nibabel
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, generate_uid)

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(20261203)


def folder(crate, target):
    path = ROOT / crate / "fuzz" / "regressions" / target
    path.mkdir(parents=True, exist_ok=True)
    return path


def ct_slice(z, syntax, size=16):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"slice{z}{syntax}"])
    meta.TransferSyntaxUID = syntax
    d = Dataset()
    d.file_meta = meta
    d.SOPClassUID, d.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    d.Modality = "CT"
    d.SeriesInstanceUID = generate_uid(entropy_srcs=["series"])
    d.StudyInstanceUID = generate_uid(entropy_srcs=["study"])
    d.InstanceNumber = z + 1
    d.ImagePositionPatient = [0, 0, 2.5 * z]
    d.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    d.PixelSpacing = [0.8, 0.8]
    d.Rows = d.Columns = size
    d.SamplesPerPixel, d.PhotometricInterpretation = 1, "MONOCHROME2"
    d.BitsAllocated, d.BitsStored, d.HighBit, d.PixelRepresentation = 16, 12, 11, 0
    d.RescaleIntercept, d.RescaleSlope = -1024, 1
    d.WindowCenter, d.WindowWidth = 40, 400
    d.PixelData = RNG.integers(0, 4096, (size, size), dtype="<u2").tobytes()
    buffer = io.BytesIO()
    d.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def dicom_seeds():
    out = folder("app/study", "read_dicom")
    for name, syntax in (("implicit", ImplicitVRLittleEndian),
                         ("explicit", ExplicitVRLittleEndian),
                         ("deflated", DeflatedExplicitVRLittleEndian)):
        (out / f"ct-16x16-{name}.dcm").write_bytes(ct_slice(0, syntax))
    whole = ct_slice(0, ExplicitVRLittleEndian)
    (out / "ct-16x16-cut.dcm").write_bytes(whole[: len(whole) * 2 // 3])
    # 200 undefined-length Referenced Series Sequences (0008,1115) in one another, spliced in
    # before Study Instance UID (0020,000D), where the tag order puts them
    undefined = (0xFFFFFFFF).to_bytes(4, "little")
    opening = b"\x08\x00\x15\x11SQ\x00\x00" + undefined + b"\xfe\xff\x00\xe0" + undefined
    closing = b"\xfe\xff\x0d\xe0" + bytes(4) + b"\xfe\xff\xdd\xe0" + bytes(4)
    at = whole.index(b"\x20\x00\x0d\x00UI")
    nested = whole[:at] + opening * 200 + closing * 200 + whole[at:]
    (out / "ct-16x16-nested-200.dcm").write_bytes(nested)


def tree_seeds():
    out = folder("app/study", "discover_tree")
    recipes = {
        "three-slices": bytes([2, 1, 2, 2, 2, 3]),
        "links-back": bytes([2, 1, 3, 0, 3, 1, 0, 5, 2, 9, 3, 4]),
        "nested-folders": bytes([0, 1, 0, 2, 0, 3, 2, 8, 4, 0, 2, 9, 3, 6]),
        "dicomdir-and-cut": bytes([2, 7, 1, 128, 1, 1, 2, 14]),
    }
    for name, recipe in recipes.items():
        (out / name).write_bytes(recipe)


def nifti_seeds():
    out = folder("app/study", "read_nifti")
    data = RNG.integers(-1024, 2000, (16, 16, 4), dtype=np.int16)
    image = nibabel.Nifti1Image(data, np.diag([0.8, 0.8, 2.5, 1]))
    nibabel.save(image, out / "ct-16x16x4.nii")
    nibabel.save(image, out / "ct-16x16x4.nii.gz")
    labels = nibabel.Nifti1Image((data > 500).astype(np.uint8), np.diag([0.8, 0.8, 2.5, 1]))
    with gzip.open(out / "labels-16x16x4.nii.gz", "wb") as f:
        f.write(labels.to_bytes())


def npz_seeds():
    out = folder("app/datasets", "read_npz")
    names = np.array(["background", "spleen", "right kidney", "liver"])
    np.savez_compressed(out / "btcv-like.npz",
                        image=RNG.integers(0, 255, (2, 16, 16), dtype=np.uint8),
                        label=RNG.integers(0, 4, (2, 16, 16), dtype=np.uint8),
                        spacing_xyz=np.array([0.8, 0.8, 2.5], dtype=np.float32),
                        class_names=names)
    np.savez(out / "stored.npz", values=np.arange(12, dtype=np.int64).reshape(3, 4))


def manifest_seeds():
    out = folder("engine", "read_manifest")
    for bundle in sorted((ROOT / "assets" / "models").iterdir()):
        if (bundle / "model.toml").is_file():
            shutil.copy(bundle / "model.toml", out / f"{bundle.name}.toml")


if __name__ == "__main__":
    dicom_seeds()
    tree_seeds()
    nifti_seeds()
    npz_seeds()
    manifest_seeds()
