"""Makes the crafted and damaged studies of the hostile-input check from the shared real files.

Each case is a study folder (or one file) made from six real CHAOS CT slices, damaged in one way a
CD, a USB stick or a hostile sender could damage it, with what opening it must give: a volume
(with the warning that says what is odd) or an error naming the file and the reason. The cases are
listed in OUT/cases.json; `app/tests/crafted_cases.rs` opens each with
`lumen inspect` in its own process and checks the outcome, the time and the peak memory.

    python make_cases.py SHARED_DATA OUT
"""

import copy
import gzip
import json
import os
import random
import shutil
import sys
import zlib
from pathlib import Path

import nibabel
import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

# six neighbouring slices: small enough for a quick case, enough for a volume and a gap
FIRST_SLICE, SLICES = 30, 6
MIDDLE = 2
# the stored values of these slices reach 2343 (HU 1343): masked to 12 bits they must stay so
HU_CEILING_12_BITS = 4095 - 1000


class Cases:
    def __init__(self, shared, out):
        self.out = out
        self.cases = []
        chaos = shared / "chaos_ct_liver" / "Data_3D" / "DICOM_anon"
        self.slices = [
            pydicom.dcmread(chaos / f"i{FIRST_SLICE + k:04},0000b.dcm") for k in range(SLICES)
        ]
        self.nifti_source = shared / "chaos_t2_mr" / "image_2.nii.gz"

    def folder(self, name):
        path = self.out / name
        path.mkdir(parents=True)
        return path

    def add(self, name, path, outcome, says=(), slices=None, max_value=None):
        """One case: `outcome` is "volume", "error" or "either" (damage whose right answer may
        be a smaller volume or an error); `says` are phrases the output must hold."""
        self.cases.append(
            {
                "name": name,
                "path": str(path.relative_to(self.out)),
                "outcome": outcome,
                "says": list(says),
                "slices": slices,
                "max_value": max_value,
            }
        )

    def series(self, name, damage=None, only=None, outcome="volume", says=(), slices=None,
               max_value=None, explicit=False):
        """The six slices, each passed through `damage` (all of them, or only slice `only`)."""
        path = self.folder(name)
        for k, dataset in enumerate(self.slices):
            dataset = copy.deepcopy(dataset)
            if damage is not None and (only is None or only == k):
                dataset = damage(dataset) or dataset
            write(dataset, path / f"slice{k}.dcm", explicit=explicit)
        self.add(name, path, outcome, says, slices, max_value)
        return path


def write(dataset, path, explicit=False):
    if explicit:
        dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=False)


def set_attr(keyword, value):
    def damage(d):
        if isinstance(value, str) and dictionary_VR(keyword) in ("DS", "IS", "US"):
            # a value pydicom would refuse to hold as a number, written as the text it is
            d[keyword] = DataElement(tag_for_keyword(keyword), "LO", value)
        else:
            setattr(d, keyword, value)
    return damage


def delete(keyword):
    def damage(d):
        delattr(d, keyword)
    return damage


def nested_sequences(path, dataset, depth):
    """`dataset` in explicit VR with a Referenced Series Sequence holding `depth` sequences, one
    in another, all of undefined length: too deep to build through pydicom, so spliced in as
    bytes before Patient's Name, where the tag order puts it."""
    undefined = (0xFFFFFFFF).to_bytes(4, "little")
    opening = b"\x08\x00\x15\x11SQ\x00\x00" + undefined + b"\xfe\xff\x00\xe0" + undefined
    closing = b"\xfe\xff\x0d\xe0" + bytes(4) + b"\xfe\xff\xdd\xe0" + bytes(4)
    write(copy.deepcopy(dataset), path, explicit=True)
    data = path.read_bytes()
    at = data.index(b"\x10\x00\x10\x00PN")
    path.write_bytes(data[:at] + opening * depth + closing * depth + data[at:])


def raw_bytes(dataset):
    from io import BytesIO
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    return buffer.getvalue()


def deflate_bomb(path, template, inflated_bytes):
    """A deflated explicit-VR file whose data set inflates to `inflated_bytes`: a multi-frame of
    zeros, declared as such, so its size is what its header says, yet the file is a few MB."""
    frame = template.Rows * template.Columns * 2
    frames = max(1, inflated_bytes // frame)
    d = copy.deepcopy(template)
    d.NumberOfFrames = frames
    del d.PixelData
    d.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    pixel_len = frames * frame
    # (7FE0,0010) OW, explicit VR: 2 reserved bytes and a 4-byte length
    element = b"\xe0\x7f\x10\x00OW\x00\x00" + pixel_len.to_bytes(4, "little")
    with open(path, "wb") as f:
        f.write(file_meta_bytes(d))
        f.write(squeeze.compress(explicit_vr_bytes(d) + element))
        zeros = bytes(1 << 24)
        left = pixel_len
        while left > 0:
            chunk = zeros[: min(left, len(zeros))]
            f.write(squeeze.compress(chunk))
            left -= len(chunk)
        f.write(squeeze.flush())


def file_meta_bytes(d):
    """The preamble and file meta group of `d`, as a file starts."""
    buffer = DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, d.file_meta, enforce_standard=True)
    return buffer.getvalue()


def explicit_vr_bytes(d):
    """The data set of `d` (without its file meta) in explicit VR little endian."""
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, d)
    return buffer.getvalue()


def zeros_nifti(path, template, shape, zero_bytes):
    """A gzipped NIfTI whose header (from `template`) declares `shape` of int16, followed by
    `zero_bytes` of zeros, streamed: a bomb of a few hundred kB."""
    header = template.copy()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header.binaryblock + b"\0" * 4)
        zeros = bytes(1 << 24)
        for _ in range(zero_bytes // len(zeros)):
            f.write(zeros)
    return path


def add_parser_cases(c):
    """Nesting that would overflow a parser's stack; walks that would not end; memory bombs."""
    for depth in (100, 1000, 2000, 20000):
        name = f"nested-sequences-{depth}"
        path = c.series(name, slices=SLICES - 1 if depth > 128 else SLICES,
                        says=["nested more than 128 deep"] if depth > 128 else [])
        nested_sequences(path / f"slice{MIDDLE}.dcm", c.slices[MIDDLE], depth)

    # --- endless walks and memory
    loops = c.series("links-back-to-the-folder", slices=SLICES)
    os.symlink(".", loops / "again")
    os.symlink(".", loops / "and-again")
    os.symlink("slice0.dcm", loops / "second-name.dcm")
    dangling = c.series("dangling-link", slices=SLICES)
    os.symlink("/nonexistent/slice.dcm", dangling / "gone.dcm")
    for name, inflated in (("deflate-bomb-1-gib", 1 << 30), ("deflate-bomb-2-gib", (2 << 30) - (8 << 20))):
        path = c.folder(name)
        deflate_bomb(path / "bomb.dcm", c.slices[0], inflated)
        c.add(name, path, "error", ["bomb.dcm", "implausible"])
    four = c.folder("deflate-bombs-four")
    for k in range(4):
        deflate_bomb(four / f"bomb{k}.dcm", c.slices[k], 1 << 30)
    c.add("deflate-bombs-four", four, "error", ["4 file(s) left out", "implausible"])


def add_value_cases(c):
    """Values and attributes that would give a silently wrong image, or none at all."""
    n_mid = SLICES - 1
    c.series("rows-half", set_attr("Rows", 256), outcome="error", says=["Rows"])
    c.series("columns-half", set_attr("Columns", 256), outcome="error", says=["Columns"])
    # one slice of another size is a part of its own, offered in the series browser
    c.series("rows-half-one-slice", set_attr("Rows", 256), only=MIDDLE, slices=SLICES - 1,
             says=["split into 2 parts because of image size"])
    for name, value in (("zero", "0"), ("1e38", "1e38"), ("nan", "NaN"), ("inf", "inf"),
                        ("text", "abc")):
        c.series(f"rescale-slope-{name}", set_attr("RescaleSlope", value), outcome="error",
                 says=["Rescale Slope"])
    c.series("rescale-slope-zero-one-slice", set_attr("RescaleSlope", "0"), only=MIDDLE,
             slices=SLICES - 1, says=[f"slice{MIDDLE}.dcm", "Rescale Slope"])
    c.series("rescale-intercept-text", set_attr("RescaleIntercept", "x"), outcome="error",
             says=["Rescale Intercept"])

    def overlay_bits(d):
        d.BitsStored, d.HighBit = 12, 11
        pixels = np.frombuffer(d.PixelData, dtype="<u2") | 0xF000
        d.PixelData = pixels.astype("<u2").tobytes()
    c.series("overlay-bits-above-bits-stored", overlay_bits, slices=SLICES,
             max_value=HU_CEILING_12_BITS)

    def skew(d):
        d.ImageOrientationPatient = [1, 0, 0, 0.2, 0.98, 0]
    c.series("skewed-orientation", skew, slices=SLICES, says=["°"])
    for name, value in (("1e6", [1e6, 1e6]), ("zero", [0, 0]), ("negative", [-0.7, -0.7])):
        c.series(f"pixel-spacing-{name}", set_attr("PixelSpacing", value), outcome="error",
                 says=["Pixel Spacing"])

    def far_slice(d):
        d.ImagePositionPatient = [-185, -98, 1e308]
    c.series("slice-at-z-1e308", far_slice, only=MIDDLE, slices=SLICES - 1,
             says=["Image Position"])
    dicomdir = c.series("slice-named-dicomdir", slices=SLICES)
    os.rename(dicomdir / "slice3.dcm", dicomdir / "DICOMDIR")

    def same_place(d):
        d.ImagePositionPatient = c.slices[1].ImagePositionPatient
    c.series("two-slices-in-one-place", same_place, only=MIDDLE, outcome="error",
             says=["duplicate slice positions"])

    gap = c.series("a-slice-missing", slices=n_mid, says=["missing"])
    os.remove(gap / f"slice{MIDDLE}.dcm")

    # --- attributes a slice cannot do without, and those it can
    for keyword in ("Rows", "Columns", "BitsAllocated", "BitsStored", "PixelRepresentation",
                    "SamplesPerPixel", "PhotometricInterpretation", "PixelData"):
        c.series(f"without-{keyword}", delete(keyword), outcome="error")
    for keyword, says in (("ImagePositionPatient", "no patient geometry"),
                          ("ImageOrientationPatient", "no patient geometry"),
                          ("PixelSpacing", "no Pixel Spacing"),
                          ("RescaleIntercept", "no Rescale Intercept"),
                          ("RescaleSlope", None), ("Modality", None), ("SeriesInstanceUID", None),
                          ("SOPInstanceUID", None), ("InstanceNumber", None),
                          ("WindowCenter", None)):
        c.series(f"without-{keyword}", delete(keyword), slices=SLICES,
                 says=[says] if says else [])

    # --- values out of any range
    for keyword, value, says in (("BitsAllocated", 7, "bits"), ("BitsAllocated", 64, "bits"),
                                 ("BitsAllocated", 0, "bits"), ("BitsStored", 0, "Bits Stored"),
                                 ("BitsStored", 17, "Bits Stored"), ("Rows", 0, "Rows"),
                                 ("Columns", 0, "Columns"), ("Rows", 65535, "65535"),
                                 ("SamplesPerPixel", 3, "samples"),
                                 ("SamplesPerPixel", 0, "samples"),
                                 ("PixelRepresentation", 7, "PixelRepresentation"),
                                 ("NumberOfFrames", 1000, "1000 frames"),
                                 ("NumberOfFrames", 0, "NumberOfFrames"),
                                 ("NumberOfFrames", -1, "NumberOfFrames")):
        c.series(f"{keyword}-{value}", set_attr(keyword, value), outcome="error", says=[says])
    c.series("palette-colour-grey-pixels", set_attr("PhotometricInterpretation", "PALETTE COLOR"),
             slices=SLICES, says=["palette"])
    c.series("ybr-grey-pixels", set_attr("PhotometricInterpretation", "YBR_FULL"),
             slices=SLICES, says=["YBR_FULL on one sample per pixel"])

    def unknown_syntax(d):
        d.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    c.series("unknown-transfer-syntax", unknown_syntax, outcome="error")

    def claimed_jpeg(d):
        d.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
        d.PixelData = encapsulate([d.PixelData])
    c.series("raw-pixels-claimed-as-jpeg", claimed_jpeg, outcome="error")

    def short_pixels(d):
        d.PixelData = d.PixelData[: len(d.PixelData) // 3]
    c.series("pixel-data-short", short_pixels, outcome="error", says=["damaged file"])


def add_cut_cases(c):
    """Files cut short or overwritten (the middle slice, then every slice); folders with nothing."""
    size = len(raw_bytes(c.slices[MIDDLE]))
    for cut in (0, 1, 127, 132, 140, 300, 1000, size // 2, size - 2):
        path = c.series(f"cut-at-{cut}", slices=SLICES - 1, says=[f"slice{MIDDLE}.dcm"])
        target = path / f"slice{MIDDLE}.dcm"
        target.write_bytes(target.read_bytes()[:cut])
    for cut in (0, 300, size // 2):
        path = c.series(f"every-slice-cut-at-{cut}", outcome="error")
        for f in path.iterdir():
            f.write_bytes(f.read_bytes()[:cut])

    rng = random.Random(20261203)
    header_end = size - len(c.slices[MIDDLE].PixelData)
    for k in range(40):
        path = c.series(f"bytes-flipped-{k:02}", outcome="either")
        target = path / f"slice{MIDDLE}.dcm"
        data = bytearray(target.read_bytes())
        for _ in range(1 + k % 8):
            # mostly the header, where a flip changes what is parsed
            at = rng.randrange(132, header_end if rng.random() < 0.9 else size)
            data[at] = rng.randrange(256)
        target.write_bytes(bytes(data))

    big = c.series("element-length-4-gib", slices=SLICES - 1, says=[f"slice{MIDDLE}.dcm"])
    data = bytearray((big / f"slice{MIDDLE}.dcm").read_bytes())
    at = data.index(b"\x08\x00\x60\x00") + 4  # (0008,0060) Modality, implicit VR: 4-byte length
    data[at:at + 4] = (0xFFFFFFF0).to_bytes(4, "little")
    (big / f"slice{MIDDLE}.dcm").write_bytes(bytes(data))

    # --- folders with nothing to open
    c.add("empty-folder", c.folder("empty-folder"), "error", ["no DICOM image series"])
    junk = c.folder("not-dicom")
    (junk / "notes.txt").write_text("not an image\n")
    (junk / "noise.dcm").write_bytes(random.Random(1).randbytes(70000))
    (junk / "empty.dcm").write_bytes(b"")
    c.add("not-dicom", junk, "error", ["no DICOM image series", "noise.dcm", "empty.dcm"])
    onnx = c.series("a-folder-named-like-a-slice", slices=SLICES)
    (onnx / "folder.dcm").mkdir()


def add_nifti_cases(c):
    """NIfTI volumes, as `lumen eval` and the file dialog read them."""
    source = nibabel.load(c.nifti_source)
    base = c.folder("nifti")
    good = base / "good.nii.gz"
    shutil.copy(c.nifti_source, good)
    c.add("nifti-good", good, "volume", slices=source.shape[2])
    cut = base / "truncated.nii.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    c.add("nifti-truncated", cut, "error", ["truncated.nii.gz"])
    # 1 GiB of zeros after a header declaring 64 GiB: the header alone must refuse it
    bomb = zeros_nifti(base / "declares-64-gib.nii.gz", source.header, (4096, 4096, 2048), 1 << 30)
    c.add("nifti-declares-64-gib", bomb, "error", ["declares-64-gib.nii.gz"])
    zeros_volume = zeros_nifti(base / "a-gib-of-zeros.nii.gz", source.header, (1024, 1024, 480),
                               1024 * 1024 * 480 * 2)
    c.add("nifti-a-gib-of-zeros", zeros_volume, "error", ["decompression bomb"])
    for name, edit, outcome, says in (
            ("dim-zero", lambda h: h["dim"].__setitem__(0, 0), "error", []),
            ("dim-negative", lambda h: h["dim"].__setitem__(1, -5), "error", []),
            ("datatype-unknown", lambda h: h.__setitem__("datatype", 999), "error", []),
            # the reader would size its buffer by bitpix / 8 as an unsigned number: 2^61 bytes
            ("bitpix-negative", lambda h: h.__setitem__("bitpix", -13107), "error",
             ["-13107 bits per voxel"]),
            ("pixdim-nan", lambda h: h["pixdim"].__setitem__(1, np.nan), "either", []),
            # the reader would take the data from byte 352 whatever vox_offset says
            ("vox-offset-huge", lambda h: h.__setitem__("vox_offset", 1e12), "error",
             ["vox_offset"]),
            ("vox-offset-shifted", lambda h: h.__setitem__("vox_offset", 480), "error",
             ["byte 480 (vox_offset)"])):
        header = source.header.copy()
        edit(header)
        path = base / f"{name}.nii"
        data = np.asanyarray(source.dataobj)
        path.write_bytes(header.binaryblock + b"\0" * 4 + data.tobytes(order="F"))
        c.add(f"nifti-{name}", path, outcome, says)
    # uncompressed and cut: the header alone tells it is short (the reader would reserve it all)
    whole = (base / "dim-zero.nii").read_bytes()
    cut_raw = base / "truncated.nii"
    header = source.header.copy()
    cut_raw.write_bytes((header.binaryblock + b"\0" * 4 + whole[352:])[: len(whole) // 3])
    c.add("nifti-truncated-uncompressed", cut_raw, "error", ["truncated.nii", "truncated: "])


def make(shared, out):
    c = Cases(shared, out)

    # the undamaged series: what every other case is measured against
    c.series("baseline", slices=SLICES)
    c.series("baseline-explicit-vr", explicit=True, slices=SLICES)

    add_parser_cases(c)
    add_value_cases(c)
    add_cut_cases(c)
    add_nifti_cases(c)
    (out / "cases.json").write_text(json.dumps(c.cases, indent=1))
    return c.cases


if __name__ == "__main__":
    shared, out = Path(sys.argv[1]), Path(sys.argv[2])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    cases = make(shared, out)
    print(f"{len(cases)} cases in {out}")
