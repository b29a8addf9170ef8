"""Packs a `facegender split` folder into one .npz of JPEGs small enough to travel to a GPU machine.

    python3 experiments/ceiling/pack.py data/split64 .gpu/split64.npz   # .gpu/ is git-ignored

Each crop is re-encoded as JPEG at quality 90 (about 2.2 KB for a 64 px crop against 7 KB as PNG),
so the whole 24,000-crop split fits in the 64 MiB a device call may carry. The re-encoding loses a
little detail; a model trained on it is, if anything, handicapped.
"""

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

PARTS = ("train", "val", "test")


def main(split: Path, out: Path, quality: int = 90) -> None:
    if out.exists():
        sys.exit(f"{out} exists; not overwriting it")
    classes = sorted(p.name for p in (split / "train").iterdir() if p.is_dir())
    blobs, names, labels, parts = [], [], [], []
    for k, part in enumerate(PARTS):
        for c, cls in enumerate(classes):
            for path in sorted((split / part / cls).glob("*.png")):
                buf = io.BytesIO()
                Image.open(path).convert("RGB").save(buf, "JPEG", quality=quality)
                blobs.append(np.frombuffer(buf.getvalue(), np.uint8))
                names.append(f"{part}/{cls}/{path.name}")
                labels.append(c)
                parts.append(k)
    ends = np.cumsum([len(b) for b in blobs])
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez(
        tmp,
        jpeg=np.concatenate(blobs),
        ends=ends,
        names=np.array(names),
        labels=np.array(labels, np.int8),
        parts=np.array(parts, np.int8),
        classes=np.array(classes),
    )
    tmp.rename(out)
    print(f"{len(names)} crops, classes {classes} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
