#!/usr/bin/env python3
"""The default model, `assets/models/litemedsam-w8a8`: LiteMedSAM quantized to W8A8 without patient data.

    cargo build --release -p lumen-app --bin lumen
    python3 packaging/model/litemedsam/quantize.py            # about 5 min on 2 cores
    python3 packaging/model/litemedsam/quantize.py --restamp  # after measuring: accuracy only

Runs `lumen quantize` on the FP32 bundle `assets/models/litemedsam`, calibrating on the synthetic
set that bundle ships (images made from the model alone), and replaces the bundle's ONNX files and
`model.toml`. `lumen quantize` records the bits, the method, the calibration, the synthetic set's
hash and the self-check in `[precision]`; this script adds the command to `[provenance]` and the
accuracy measured by the model card's commands (`w8a8-accuracy.toml`) as `[accuracy]`;
`--restamp` does only that, on the bundle as it is. The model card (`MODEL_CARD.md`) is kept as it
is. Standard library only.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import tempfile
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[3]
TARGET = REPO / "assets" / "models" / "litemedsam-w8a8"
ACCURACY = pathlib.Path(__file__).with_name("w8a8-accuracy.toml")
BITS = ["-w", "8", "-a", "8"]
COMMAND = "lumen quantize --model assets/models/litemedsam " + " ".join(BITS)
RECIPE = f"packaging/model/litemedsam/quantize.py: {COMMAND} (its shipped synthetic set)"


def with_recipe(manifest_text: str, accuracy_text: str) -> str:
    """The manifest with the recipe under [provenance] and the measured [accuracy] table last,
    replacing any earlier stamp (`lumen quantize` writes the accuracy table empty)."""
    lines = manifest_text.splitlines()
    if "[accuracy]" in lines:
        lines = lines[: lines.index("[accuracy]")]
    lines = [line for line in lines if not line.startswith("quantization = ")]
    lines.insert(lines.index("[provenance]") + 1, f"quantization = {json.dumps(RECIPE)}")
    measured = tomllib.loads(accuracy_text).get("accuracy", {})
    accuracy = "\n".join(line for line in accuracy_text.splitlines() if not line.startswith("#"))
    text = "\n".join(lines).rstrip() + "\n\n" + (accuracy.strip() or "[accuracy]") + "\n"
    def rest(manifest: dict) -> dict:
        manifest.pop("accuracy", None)
        manifest["provenance"].pop("quantization", None)
        return manifest

    stamped = tomllib.loads(text)
    assert stamped.get("accuracy", {}) == measured
    assert rest(stamped) == rest(tomllib.loads(manifest_text)), "only the stamp may change"
    return text


def restamp(bundle: pathlib.Path) -> None:
    manifest = bundle / "model.toml"
    manifest.write_text(with_recipe(manifest.read_text(), ACCURACY.read_text()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lumen", type=pathlib.Path, default=REPO / "target/release/lumen")
    parser.add_argument("--threads", default="0", help="intra-op threads for lumen quantize")
    parser.add_argument("--restamp", action="store_true",
                        help="only write w8a8-accuracy.toml and the recipe into the bundle's model.toml")
    args = parser.parse_args()
    if args.restamp:
        restamp(TARGET)
        print(f"restamped {TARGET.relative_to(REPO) / 'model.toml'}")
        return
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=TARGET.parent) as tmp:
        made = pathlib.Path(tmp) / "bundle"
        run = [str(args.lumen), *COMMAND.split()[1:], "--threads", args.threads,
               "--out", str(made), "--json"]
        report = json.loads(subprocess.run(run, check=True, capture_output=True, text=True).stdout)
        print(f"self-check mask IoU {report['self_check_mask_iou']:.4f}, "
              f"encoder {report['encoder_bytes'] / 1e6:.2f} MB, {report['seconds']:.0f} s")
        restamp(made)
        TARGET.mkdir(exist_ok=True)
        for file in made.iterdir():
            shutil.copyfile(file, TARGET / file.name)
    print(f"wrote {TARGET.relative_to(REPO)}")


if __name__ == "__main__":
    main()
