"Per-example losses: equivalence with open_clip's ClipLoss/SigLipLoss, KD properties, bad shapes."
import math
import pytest, torch
import torch.nn.functional as F
import open_clip
from aced_lab.losses import (pair_logits, softmax_loss, sigmoid_pair_loss, sigmoid_loss, contrastive_loss,
                             softmax_kd_loss, kd_loss)

def feats(b, d=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, d, generator=g), dim=-1), F.normalize(torch.randn(b, d, generator=g), dim=-1)

@pytest.mark.parametrize("b", [1, 2, 7, 64])
@pytest.mark.parametrize("scale", [1.0, 14.3, 100.0])
def test_softmax_matches_open_clip(b, scale):
    img, txt = feats(b, seed=b)
    scale = torch.tensor(scale)
    ref = open_clip.ClipLoss()(img, txt, scale)
    logits = pair_logits(img, txt, scale)
    assert torch.allclose(softmax_loss(logits), ref, atol=1e-6, rtol=1e-6)
    per = softmax_loss(logits, reduction="none")
    assert per.shape == (b,)
    assert torch.allclose(per.mean(), ref, atol=1e-6, rtol=1e-6)
    out = {"image_features": img, "text_features": txt, "logit_scale": scale}
    assert torch.allclose(contrastive_loss(out, "clip")["contrastive_loss"], ref, atol=1e-6, rtol=1e-6)

@pytest.mark.parametrize("b", [1, 2, 7, 64])
@pytest.mark.parametrize("scale,bias", [(10.0, -10.0), (1.0, 0.0), (30.0, 2.5)])
def test_sigmoid_matches_open_clip(b, scale, bias):
    img, txt = feats(b, seed=100 + b)
    scale, bias = torch.tensor(scale), torch.tensor(bias)
    ref = open_clip.loss.SigLipLoss()(img, txt, scale, bias)
    logits = pair_logits(img, txt, scale, bias)
    assert torch.allclose(sigmoid_loss(logits), ref, atol=1e-6, rtol=1e-6)
    per = sigmoid_loss(logits, reduction="none")
    assert per.shape == (b,)
    assert torch.allclose(per.sum() / b, ref, atol=1e-6, rtol=1e-6)
    assert torch.allclose(sigmoid_pair_loss(logits).sum() / b, ref, atol=1e-5, rtol=1e-6)
    out = {"image_features": img, "text_features": txt, "logit_scale": scale, "logit_bias": bias}
    assert torch.allclose(contrastive_loss(out, "siglip")["contrastive_loss"], ref, atol=1e-6, rtol=1e-6)
    assert contrastive_loss(out, "siglip", "none")["contrastive_loss"].shape == (b,)

def test_gradients_match_open_clip():
    img, txt = feats(9, seed=3)
    for kind, ref_fn, args in [("clip", open_clip.ClipLoss(), ()), ("siglip", open_clip.loss.SigLipLoss(), (torch.tensor(-5.),))]:
        a = img.clone().requires_grad_(); b = img.clone().requires_grad_()
        ref_fn(a, txt, torch.tensor(12.), *args).backward()
        out = {"image_features": b, "text_features": txt, "logit_scale": torch.tensor(12.),
               "logit_bias": args[0] if args else None}
        contrastive_loss(out, kind)["contrastive_loss"].backward()
        assert torch.allclose(a.grad, b.grad, atol=1e-6), kind

def test_sigmoid_decomposes_over_pairs():
    img, txt = feats(10, seed=5)
    logits = pair_logits(img, txt, 10., -10.)
    pair = sigmoid_pair_loss(logits)
    idx = torch.tensor([1, 4, 7])
    assert torch.allclose(sigmoid_loss(logits[idx][:, idx], "sum"), pair[idx][:, idx].sum(), atol=1e-5)

def test_bf16_logits_are_computed_in_fp32():
    img, txt = feats(8, seed=6)
    logits = pair_logits(img, txt, 10.)
    for fn in (softmax_loss, sigmoid_loss):
        v = fn(logits.bfloat16())
        assert v.dtype == torch.float32
        assert torch.allclose(v, fn(logits), atol=0.05)

# ---------------------------------------------------------------- KD

def _kd_by_hand(s, t, T):
    n = len(s)
    def sm(v): e = [math.exp(x / T) for x in v]; return [x / sum(e) for x in e]
    def kl(ps, pt): return sum(b * math.log(b / a) for a, b in zip(ps, pt))
    rows = [kl(sm(s[i]), sm(t[i])) for i in range(n)]
    cols = [kl(sm([s[j][i] for j in range(n)]), sm([t[j][i] for j in range(n)])) for i in range(n)]
    return [0.5 * (r + c) * T**2 for r, c in zip(rows, cols)]

@pytest.mark.parametrize("T", [0.5, 1.0, 2.0, 4.0])
def test_kd_matches_hand_loop(T):
    g = torch.Generator().manual_seed(int(T * 10))
    s, t = torch.randn(3, 3, generator=g) * 2, torch.randn(3, 3, generator=g) * 2
    got = softmax_kd_loss(s, t, T, reduction="none")
    want = torch.tensor(_kd_by_hand(s.tolist(), t.tolist(), T))
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)
    assert torch.allclose(softmax_kd_loss(s, t, T), want.mean(), atol=1e-5, rtol=1e-4)
    assert torch.allclose(softmax_kd_loss(s, t, T, reduction="sum"), want.sum(), atol=1e-5, rtol=1e-4)

def test_kd_zero_when_equal_positive_otherwise():
    img, txt = feats(6, seed=7)
    l = pair_logits(img, txt, 20.)
    assert softmax_kd_loss(l, l).abs() < 1e-6
    assert softmax_kd_loss(l, l + 3.0).abs() < 1e-5  # a constant shift leaves every softmax unchanged
    other = pair_logits(*feats(6, seed=8), 20.)
    per = softmax_kd_loss(other, l, reduction="none")
    assert (per > 0).all()
    assert torch.allclose(per.mean(), softmax_kd_loss(other, l), atol=1e-7)

def test_kd_gradient_flows_to_student_only():
    s_img, s_txt = (x.requires_grad_() for x in feats(5, 16, seed=9))
    t_img, t_txt = (x.requires_grad_() for x in feats(5, 48, seed=10))
    s = {"image_features": s_img, "text_features": s_txt, "logit_scale": torch.tensor(10.)}
    t = {"image_features": t_img, "text_features": t_txt, "logit_scale": torch.tensor(100., requires_grad=True)}
    kd_loss(s, t, temperature=2.0)["kd_loss"].backward()
    assert s_img.grad.abs().sum() > 0 and s_txt.grad.abs().sum() > 0
    assert t_img.grad is None and t_txt.grad is None and t["logit_scale"].grad is None

def test_kd_loss_uses_each_scale_and_weight():
    s_img, s_txt = feats(5, 16, seed=11); t_img, t_txt = feats(5, 48, seed=12)
    s = {"image_features": s_img, "text_features": s_txt, "logit_scale": torch.tensor(10.)}
    t = {"image_features": t_img, "text_features": t_txt, "logit_scale": torch.tensor(100.)}
    want = 0.3 * softmax_kd_loss(10. * s_img @ s_txt.T, 100. * t_img @ t_txt.T, 2.0)
    got = kd_loss(s, t, temperature=2.0, weight=0.3)
    assert list(got) == ["kd_loss"]
    assert torch.allclose(got["kd_loss"], want, atol=1e-6)
    assert kd_loss(s, t, reduction="none")["kd_loss"].shape == (5,)
    assert kd_loss(t, t)["kd_loss"].abs() < 1e-6

# ---------------------------------------------------------------- bad input

def test_bad_shapes_raise_clear_errors():
    img, txt = feats(4)
    with pytest.raises(ValueError, match=r"same shape.*\(4, 32\) and \(3, 32\)"):
        pair_logits(img, txt[:3], 10.)
    with pytest.raises(ValueError, match=r"same shape.*\(4, 32\) and \(4, 16\)"):
        pair_logits(img, txt[:, :16], 10.)
    with pytest.raises(ValueError, match="must both be"):
        pair_logits(img[0], txt[0], 10.)
    for fn in (softmax_loss, sigmoid_loss, sigmoid_pair_loss):
        with pytest.raises(ValueError, match=r"square .*got shape \(4, 3\)"):
            fn(torch.zeros(4, 3))
        with pytest.raises(ValueError, match="square"):
            fn(torch.zeros(4))
        with pytest.raises(ValueError, match="square"):
            fn(torch.zeros(0, 0))
    with pytest.raises(ValueError, match="student_logits must be a square"):
        softmax_kd_loss(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"same shape.*\(4, 4\) and \(3, 3\)"):
        softmax_kd_loss(torch.zeros(4, 4), torch.zeros(3, 3))
    with pytest.raises(ValueError, match="temperature"):
        softmax_kd_loss(torch.zeros(3, 3), torch.zeros(3, 3), temperature=0.)

def test_bad_options_raise_clear_errors():
    img, txt = feats(4)
    out = {"image_features": img, "text_features": txt, "logit_scale": torch.tensor(10.)}
    with pytest.raises(ValueError, match="reduction='avg'"):
        softmax_loss(pair_logits(img, txt, 10.), reduction="avg")
    with pytest.raises(ValueError, match="Did you mean 'siglip'"):
        contrastive_loss(out, kind="sigmoid")
    with pytest.raises(ValueError, match="logit_bias"):
        contrastive_loss(out, kind="siglip")
