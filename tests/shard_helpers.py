"Helpers the dataset tests share: a digest of a folder's shards, and every sample of a split."
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
