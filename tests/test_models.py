"open_clip model layer: shipped configs, the pretrained-tag path offline, checkpoint loading."
import os, subprocess, sys
import pytest, torch
from aced_lab.models import create, save_weights, load_weights, SHIPPED_MODELS, inference_flops

def test_shipped_models_build_and_encode():
    for name in SHIPPED_MODELS:
        b = create(name)
        out = b.model(torch.zeros(2, 3, b.image_size, b.image_size), b.tokenizer(["a red circle", "a blue square"]))
        assert out["image_features"].shape == out["text_features"].shape
        assert torch.allclose(out["text_features"].norm(dim=-1), torch.ones(2), atol=1e-5)

def test_pretrained_tag_offline_gives_clear_error():
    # the real download path of open_clip, with the hub forced offline so the failure is immediate
    code = ("from aced_lab.models import create\n"
            "try:\n    create('ViT-B-32', pretrained='laion2b_s34b_b79k')\n"
            "except RuntimeError as e:\n    print('ERR', e)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert "ERR could not fetch pretrained weights ViT-B-32/laion2b_s34b_b79k" in res.stdout, res.stderr[-3000:]
    assert "local path" in res.stdout

def test_unknown_tag_lists_known_tags():
    with pytest.raises(ValueError, match="laion2b_s34b_b79k"):
        create("ViT-B-32", pretrained="not_a_tag")

def test_checkpoint_roundtrip_safetensors_and_torch(tmp_path):
    a = create("ACED-Tiny-32").model
    p = save_weights(a, tmp_path / "w.safetensors")
    b = create("ACED-Tiny-32", pretrained=p).model
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    # DDP-prefixed torch checkpoint (weights_only-safe) also loads
    torch.save({"state_dict": {"module." + k: v for k, v in a.state_dict().items()}}, tmp_path / "ddp.pt")
    c = create("ACED-Tiny-32").model
    load_weights(c, tmp_path / "ddp.pt")
    assert torch.equal(c.text_projection, a.text_projection)
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_weights(c, tmp_path / "nope.pt")

def test_flops_scale_with_model():
    tiny, teacher = (inference_flops(create(n).model) for n in ("ACED-Tiny-32", "ACED-Teacher-32"))
    assert teacher["image_gflops"] > tiny["image_gflops"] > 0
    assert teacher["text_gflops"] > tiny["text_gflops"] > 0
