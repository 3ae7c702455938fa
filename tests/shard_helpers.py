"Helpers the dataset tests share: a digest of a folder's shards, every sample of a split, a shard rewritten in place."
import hashlib, tarfile
from pathlib import Path
from braceexpand import braceexpand
from aced_lab.shards import read_samples


def member_digest(root) -> str:
    "sha256 over (name, bytes) of every member of every shard under root."
    h = hashlib.sha256()
    for p in sorted(Path(root).glob("*.tar")):
        with tarfile.open(p) as tf:
            for m in tf: h.update(m.name.encode()); h.update(tf.extractfile(m).read())
    return h.hexdigest()


def all_samples(man, split):
    "Every sample of a manifest's split, in shard order."
    return [s for p in braceexpand(man[split]) for s in read_samples(p)]


def rewrite_images(shard: Path):
    "Rewrite a shard in place with the same keys and captions and re-rendered (inverted) images."
    import io
    import numpy as np
    from PIL import Image
    members = []
    with tarfile.open(shard) as tf:
        for m in tf:
            data = tf.extractfile(m).read()
            if m.name.endswith(".png"):
                img = 255 - np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
                b = io.BytesIO(); Image.fromarray(img).save(b, format="PNG"); data = b.getvalue()
            members.append((m.name, data))
    with tarfile.open(shard, "w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name); ti.size = len(data); tf.addfile(ti, io.BytesIO(data))
