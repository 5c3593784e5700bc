#!/usr/bin/env python3
"""The W8A8 bundles without patient data: `assets/models/litemedsam-w8a8` (the default model) and
`assets/models/litemedsam-fast-w8a8`.

    cargo build --release -p lumen-app --bin lumen
    python3 packaging/model/litemedsam/quantize.py            # about 5 min on 2 cores
    python3 packaging/model/litemedsam/quantize.py --restamp  # after measuring: accuracy only
    python3 packaging/model/litemedsam/quantize.py --model litemedsam-fast   # the same for the fast one

Runs `lumen quantize` on the FP32 bundle `assets/models/MODEL`, calibrating on the synthetic set
that bundle ships (images made from the model alone), and replaces the W8A8 bundle's ONNX files and
`model.toml`. `lumen quantize` records the bits, the method, the calibration, the synthetic set's
hash and the self-check in `[precision]`; this script adds the command to `[provenance]` and the
accuracy measured by the model card's commands (`ACCURACY[MODEL]`) as `[accuracy]`; `--restamp`
does only that, on the bundle as it is. The model card (`MODEL_CARD.md`) is kept as it is.
Standard library only.
"""

import argparse
import json
import pathlib
import shutil
import subprocess
import tempfile
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[3]
MODELS = REPO / "assets" / "models"
# the measured accuracy of each W8A8 bundle, by the FP32 bundle it is made from
ACCURACY = {"litemedsam": "w8a8-accuracy.toml", "litemedsam-fast": "fast-w8a8-accuracy.toml"}
BITS = ["-w", "8", "-a", "8"]


def command(model: str) -> str:
    return f"lumen quantize --model assets/models/{model} " + " ".join(BITS)


def with_recipe(manifest_text: str, accuracy_text: str, model: str = "litemedsam") -> str:
    """The manifest with the recipe under [provenance] and the measured [accuracy] table last,
    replacing any earlier stamp (`lumen quantize` writes the accuracy table empty)."""
    lines = manifest_text.splitlines()
    if "[accuracy]" in lines:
        lines = lines[: lines.index("[accuracy]")]
    lines = [line for line in lines if not line.startswith("quantization = ")]
    recipe = f"packaging/model/litemedsam/quantize.py: {command(model)} (its shipped synthetic set)"
    lines.insert(lines.index("[provenance]") + 1, f"quantization = {json.dumps(recipe)}")
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


def restamp(bundle: pathlib.Path, model: str) -> None:
    manifest = bundle / "model.toml"
    measured = pathlib.Path(__file__).with_name(ACCURACY[model])
    accuracy = measured.read_text() if measured.exists() else ""
    manifest.write_text(with_recipe(manifest.read_text(), accuracy, model))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lumen", type=pathlib.Path, default=REPO / "target/release/lumen")
    parser.add_argument("--threads", default="0", help="intra-op threads for lumen quantize")
    parser.add_argument("--model", choices=sorted(ACCURACY), default="litemedsam",
                        help="the FP32 bundle to quantize")
    parser.add_argument("--restamp", action="store_true",
                        help="only write the measured accuracy and the recipe into the bundle's model.toml")
    args = parser.parse_args()
    target = MODELS / f"{args.model}-w8a8"
    if args.restamp:
        restamp(target, args.model)
        print(f"restamped {target.relative_to(REPO) / 'model.toml'}")
        return
    with tempfile.TemporaryDirectory(prefix=".quantize-", dir=MODELS) as tmp:
        made = pathlib.Path(tmp) / "bundle"
        run = [str(args.lumen), *command(args.model).split()[1:], "--threads", args.threads,
               "--out", str(made), "--json"]
        report = json.loads(subprocess.run(run, check=True, capture_output=True, text=True).stdout)
        print(f"self-check mask IoU {report['self_check_mask_iou']:.4f}, "
              f"encoder {report['encoder_bytes'] / 1e6:.2f} MB, {report['seconds']:.0f} s")
        restamp(made, args.model)
        target.mkdir(exist_ok=True)
        for file in made.iterdir():
            shutil.copyfile(file, target / file.name)
    print(f"wrote {target.relative_to(REPO)}")


if __name__ == "__main__":
    main()
