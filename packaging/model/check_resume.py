"""Check that a paused and continued training run ends with exactly the weights of an uninterrupted one.

    python3 check_resume.py        # needs .train/train.npz (prepare_data.py); about a minute on a CPU

Runs train.py on the CPU with one thread (multi-threaded CPU reductions are not bit-reproducible
even between two uninterrupted runs), a few steps each: once straight through, once paused after
two steps (exit 75) and continued by the same command. Exit status 0 when the weights are identical.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from common import TRAIN_DIR, read_shards

HERE = Path(__file__).resolve().parent


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        # no val.npz: the monitor evaluation would only cost time here
        shutil.copy(TRAIN_DIR / "train.npz", data / "train.npz")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        base = [sys.executable, str(HERE / "train.py"), "--device", "cpu", "--data", str(data), "--steps", "4",
                "--batch", "4", "--micro-batch", "2", "--warmup", "2"]

        def run(out: str, *extra: str) -> int:
            return subprocess.run(base + ["--out", str(Path(tmp) / out), *extra], env=env,
                                  stdout=subprocess.DEVNULL).returncode

        assert run("straight") == 0
        assert run("paused", "--stop-after-steps", "2") == 75, "the pause should exit with 75"
        assert run("paused") == 0
        a, b = read_shards(Path(tmp) / "straight"), read_shards(Path(tmp) / "paused")
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        print(f"{len(a)} tensors, max abs difference {diff:g}: {'identical' if same else 'DIFFERENT'}")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
