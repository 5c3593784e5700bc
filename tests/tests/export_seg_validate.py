#!/usr/bin/env python3
"""That Lumen's DICOM SEG and NIfTI exports are read by other tools as Lumen wrote them: pydicom,
highdicom (voxel for voxel against the label map the SEG came from) and nibabel.

    python3 tests/tests/export_seg_validate.py OUT_DIR ../shared/data/totalsegmentator

OUT_DIR holds `organs.seg.dcm` and `organs.nii.gz`, the TotalSegmentator example's organs as Lumen
exported them; tests/tests/export_seg.rs writes them and runs this in a virtual environment made
from export_seg_validate-requirements.txt. Exits non-zero on any failed check.
"""
import glob
import os
import sys

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom

out_dir, ts_dir = sys.argv[1], sys.argv[2]
seg_path = os.path.join(out_dir, "organs.seg.dcm")

# 1. pydicom reads it and the pixel data unpacks to the declared frames
ds = pydicom.dcmread(seg_path)
assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", ds.SOPClassUID
assert ds.SegmentationType == "BINARY"
px = ds.pixel_array
assert px.shape == (int(ds.NumberOfFrames), ds.Rows, ds.Columns), px.shape
print(f"pydicom: {ds.NumberOfFrames} frames, {len(ds.SegmentSequence)} segments")

# 2. highdicom parses it as a Segmentation (checks the SEG IOD structure it relies on)
seg = hd.seg.segread(seg_path)
numbers = list(seg.segment_numbers)
print("highdicom: segments", numbers[:5], "…", [seg.get_segment_description(n).segment_label for n in numbers[:5]])
for n in numbers:
    d = seg.get_segment_description(n)
    assert d.segmented_property_category.scheme_designator == "SCT"
    assert d.algorithm_type.value == "SEMIAUTOMATIC"
    assert d.algorithm_identification is not None

# 3. the SEG lies on the source series: rebuild the label volume with highdicom and compare
#    with the TotalSegmentator label map on the same grid
src_files = sorted(glob.glob(os.path.join(ts_dir, "example_ct_dicom", "*")))
src = [pydicom.dcmread(f, stop_before_pixels=True) for f in src_files]
src.sort(key=lambda d: float(d.ImagePositionPatient[2]))
sop_uids = [d.file_meta.MediaStorageSOPInstanceUID for d in src]
# highdicom's own reading of the frames onto the source slices, one segment number per voxel
labels = seg.get_pixels_by_source_instance(
    source_sop_instance_uids=sop_uids, combine_segments=True, assert_missing_frames_are_empty=True
).astype(np.uint16)
assert labels.shape == (len(src), ds.Rows, ds.Columns), labels.shape
names = {int(s.SegmentNumber): s.SegmentLabel for s in ds.SegmentSequence}

# the NIfTI export: RAS with sform == qform (axis-aligned here), uint8, same labels
img = nib.load(os.path.join(out_dir, "organs.nii.gz"))
assert img.header["sform_code"] == 1 and img.header["qform_code"] == 1
assert np.allclose(img.get_sform(), img.get_qform(), atol=1e-4), (img.get_sform(), img.get_qform())
ref = nib.load(os.path.join(ts_dir, "example_seg_dicom.nii.gz"))
a = np.asarray(img.dataobj)
b = np.asarray(ref.dataobj)
# both on the same physical grid: map ours into the reference's voxel order
m = np.linalg.inv(ref.affine) @ img.affine
perm = np.round(m[:3, :3]).astype(int)
assert np.allclose(m[:3, :3], perm, atol=1e-3), m
ours_in_ref = np.zeros_like(b)
idx = np.indices(a.shape).reshape(3, -1)
dst = (perm @ idx + np.round(m[:3, 3]).astype(int)[:, None])
ours_in_ref[tuple(dst)] = a.reshape(-1)
assert (ours_in_ref == b).all(), "NIfTI export differs from the label map it came from"
print("nibabel: NIfTI label map equals example_seg_dicom.nii.gz voxel for voxel")

# SEG labels (segment numbers) vs the reference, via names
import csv
tsv = {int(r["id"]): r["name"] for r in csv.DictReader(open(os.path.join(ts_dir, "labels_total.tsv")), delimiter="\t")}
name_to_id = {v: k for k, v in tsv.items()}
seg_as_ids = np.zeros_like(labels)
for n, name in names.items():
    seg_as_ids[labels == n] = name_to_id[name]
# labels is [z][row][col] in DICOM order; map through ours (x=col, y=row, z) → reference
ours_xyz = np.transpose(seg_as_ids, (2, 1, 0))
ours_in_ref[tuple(dst)] = ours_xyz.reshape(-1)
assert (ours_in_ref == b).all(), "SEG content differs from the label map it came from"
print("SEG: every voxel matches example_seg_dicom.nii.gz")
print("OK")
