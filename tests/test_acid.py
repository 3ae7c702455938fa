"Tests of aced_lab.acid (selection math): scores, sub-batch size, top-k, Gumbel sampling, JEST joint selection."
import math
import pytest
import torch
import torch.nn.functional as F

from aced_lab.core import ConfigError
from aced_lab.losses import softmax_loss
from aced_lab.acid import (LOSSES, SELECTORS, SCORES, example_scores, joint_scores, n_keep, select, select_joint,
                           select_sample, select_topk)


def seeded(seed): return torch.Generator().manual_seed(seed)


# --- scores and sizes ---------------------------------------------------------------------------------------------
def test_example_scores():
    ll, rl = torch.tensor([3., 1., 2.]), torch.tensor([0.5, 1., 2.5])
    assert torch.equal(example_scores(ll, rl, "learnability"), ll - rl)
    assert torch.equal(example_scores(ll, rl, "hard_learner"), ll)
    assert torch.equal(example_scores(ll, rl, "easy_reference"), -rl)
    assert torch.equal(example_scores(ll, rl, "iid"), torch.zeros(3))
    assert torch.equal(example_scores(None, rl, "iid"), torch.zeros(3))
    with pytest.raises(ValueError, match="needs the learner loss"): example_scores(None, rl, "learnability")
    with pytest.raises(ConfigError, match="hard_learner"): example_scores(ll, rl, "hard-learner")
    assert list(SCORES) == ["learnability", "hard_learner", "easy_reference", "iid"]


@pytest.mark.parametrize("B,f,b", [(1280, 0.8, 256), (64, 0.8, 13), (10, 0.0, 10), (5, 0.95, 1), (7, 0.5, 4)])
def test_n_keep(B, f, b):
    assert n_keep(B, f) == b


@pytest.mark.parametrize("f", [1.0, 1.5, -0.01])
def test_n_keep_bad_ratio(f):
    with pytest.raises(ValueError, match="filter_ratio"): n_keep(100, f)


# --- per-example selection ------------------------------------------------------------------------------------------
def planted_losses(seed=0):
    "12 learnable (learner high, ref low), 12 mismatched (both high), 24 easy (both low), shuffled."
    g = seeded(seed)
    kind = torch.tensor([0] * 12 + [1] * 12 + [2] * 24)[torch.randperm(48, generator=g)]
    learner = torch.tensor([4.0, 4.0, 0.2])[kind] + 0.3 * torch.rand(48, generator=g)
    ref = torch.tensor([0.3, 4.5, 0.2])[kind] + 0.3 * torch.rand(48, generator=g)
    return learner, ref, kind


@pytest.mark.parametrize("seed", range(5))
def test_learnability_topk_never_picks_noise(seed):
    learner, ref, kind = planted_losses(seed)
    assert (kind[select_topk(example_scores(learner, ref), 12)] == 0).all()
    for b in (6, 12, 30, 36):
        assert (kind[select_topk(example_scores(learner, ref), b)] != 1).all()
    # hard-learner ranks the noise with the learnable pairs: half its top 24 is noise
    assert (kind[select_topk(example_scores(learner, ref, "hard_learner"), 24)] == 1).sum() == 12


def test_select_topk():
    s = torch.tensor([0.1, 3., -1., 2., 0.5])
    assert select_topk(s, 2).tolist() == [1, 3]
    assert select_topk(s, 5).dtype == torch.long
    with pytest.raises(ValueError, match="b=0"): select_topk(s, 0)
    with pytest.raises(ValueError, match="NaN"): select_topk(torch.tensor([0., math.inf]), 1)


def inclusion(scores, b, n=2000, **kw):
    counts = torch.zeros(len(scores))
    for i in range(n): counts[select_sample(scores, b, generator=seeded(i), **kw)] += 1
    return counts / n


def test_select_sample_basic():
    s = torch.linspace(0, 2.8, 8)
    idx = select_sample(s, 5, generator=seeded(0))
    assert idx.dtype == torch.long and len(idx) == 5 and len(idx.unique()) == 5
    assert torch.equal(select_sample(s, 5, generator=seeded(3)), select_sample(s, 5, generator=seeded(3)))
    assert not all(torch.equal(select_sample(s, 5, generator=seeded(0)), select_sample(s, 5, generator=seeded(i)))
                   for i in range(1, 6))
    assert torch.equal(select_sample(s, 3, temperature=0), select_topk(s, 3))
    assert len(select_sample(s, 8, generator=seeded(0)).unique()) == 8
    with pytest.raises(ValueError, match="temperature"): select_sample(s, 3, temperature=-1.)


def test_select_sample_distribution():
    s = torch.linspace(0, 2.8, 8)
    torch.testing.assert_close(inclusion(s, 1), torch.softmax(s, 0), atol=0.03, rtol=0)  # b = 1: exactly softmax
    f = inclusion(s, 3)
    assert abs(f.sum().item() - 3) < 1e-5 and (f.diff() > 0).all(), f  # ranks like the scores
    torch.testing.assert_close(inclusion(s, 3, temperature=1e4), torch.full((8,), 3 / 8), atol=0.05, rtol=0)
    # a lower temperature sharpens: the top example is included more often
    assert inclusion(s, 1, n=1000, temperature=0.5)[-1] > inclusion(s, 1, n=1000)[-1]


# --- joint selection ----------------------------------------------------------------------------------------------
def brute_sigmoid(xl, xr, S, i):
    def total(T):
        return sum(-F.logsigmoid((1. if a == c else -1.) * xl[a, c]) + F.logsigmoid((1. if a == c else -1.) * xr[a, c])
                   for a in T for c in T)
    return total(sorted(S + [i])) - (total(S) if S else 0.)


def brute_softmax(x, S, i):
    T = sorted(S + [i]) if S else list(range(len(x)))  # empty S: against the whole batch
    sub = x[T][:, T]; k = T.index(i)
    return 0.5 * (F.cross_entropy(sub[k:k + 1], torch.tensor([k])) + F.cross_entropy(sub.T[k:k + 1], torch.tensor([k])))


@pytest.mark.parametrize("S", [[], [1], [1, 4], [0, 2, 5], [0, 1, 2, 3, 4]])
def test_joint_scores_brute_force(S):
    g = seeded(len(S))
    xl, xr = 3 * torch.randn(6, 6, generator=g, dtype=torch.float64), 3 * torch.randn(6, 6, generator=g, dtype=torch.float64)
    m = torch.zeros(6, dtype=torch.bool); m[S] = True
    rest = [i for i in range(6) if i not in S]
    torch.testing.assert_close(joint_scores(xl, xr, m, "sigmoid")[rest],
                               torch.stack([brute_sigmoid(xl, xr, S, i) for i in rest]))
    torch.testing.assert_close(joint_scores(xl, xr, m, "softmax")[rest],
                               torch.stack([brute_softmax(xl, S, i) - brute_softmax(xr, S, i) for i in rest]))
    torch.testing.assert_close(joint_scores(xl, None, m, "softmax", "hard_learner")[rest],
                               torch.stack([brute_softmax(xl, S, i) for i in rest]))


def gumbel_topk_like_select(s, k, generator):
    "The draw select_joint makes each round (Gumbel-top-k at τ = 1)."
    e = torch.empty_like(s).exponential_(generator=generator)
    return torch.topk(s - e.clamp_min(torch.finfo(e.dtype).tiny).log(), k).indices


def joint_slow(xl, xr, b, n_chunks, loss, score, generator):
    "select_joint, written as a loop over rounds with the direct masked score."
    n = min(n_chunks, b); sizes = [b // n + (k < b % n) for k in range(n)]
    chosen, out = torch.zeros(len(xl), dtype=torch.bool), []
    for c in sizes:
        s = joint_scores(xl, xr, chosen, loss, score).masked_fill(chosen, -math.inf)
        idx = gumbel_topk_like_select(s, c, generator); chosen[idx] = True; out.append(idx)
    return torch.cat(out)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("score", list(SCORES))
def test_select_joint_matches_direct_form(loss, score):
    g = seeded(1)
    xl, xr = 2 * torch.randn(40, 40, generator=g, dtype=torch.float64), 2 * torch.randn(40, 40, generator=g, dtype=torch.float64)
    for b, n_chunks in ((13, 4), (16, 16), (7, 1)):
        idx = select_joint(xl, xr, b, n_chunks, loss, score, generator=seeded(b))
        assert idx.dtype == torch.long and len(idx) == b and len(idx.unique()) == b
        assert torch.equal(idx, joint_slow(xl, xr, b, n_chunks, loss, score, seeded(b)))


@pytest.mark.parametrize("loss", LOSSES)
def test_select_joint_determinism_and_edges(loss):
    g = seeded(2)
    xl, xr = torch.randn(50, 50, generator=g), torch.randn(50, 50, generator=g)
    a = select_joint(xl, xr, 10, 16, loss, generator=seeded(4))
    assert torch.equal(a, select_joint(xl, xr, 10, 16, loss, generator=seeded(4)))
    assert not torch.equal(a, select_joint(xl, xr, 10, 16, loss, generator=seeded(5)))
    assert len(select_joint(xl, xr, 10, 16, loss, generator=seeded(4)).unique()) == 10  # n_chunks > b
    assert sorted(select_joint(xl, xr, 50, 16, loss, generator=seeded(4)).tolist()) == list(range(50))  # b = B
    assert torch.equal(select_joint(xl.half(), xr.half(), 5, 2, loss, generator=seeded(4)),  # low precision upcast
                       select_joint(xl.half().float(), xr.half().float(), 5, 2, loss, generator=seeded(4)))
    nt = torch.get_num_threads(); select_joint(xl, xr, 5, 2, loss); assert torch.get_num_threads() == nt  # restored
    xg = xl.clone(); xg[3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"): select_joint(xg, xr, 5, 2, loss)
    with pytest.raises(ValueError, match="needs ref_logits"): select_joint(xl, None, 5, 2, loss)
    with pytest.raises(ValueError, match="square"): select_joint(xl[:, :4], xr[:, :4], 2, 2, loss)
    with pytest.raises(ValueError, match="n_chunks"): select_joint(xl, xr, 5, 0, loss)


def test_one_chunk_is_per_example_sampling():
    g = seeded(3)
    xl, xr = torch.randn(30, 30, generator=g), torch.randn(30, 30, generator=g)
    self_terms = F.softplus(-xl.diagonal()) - F.softplus(-xr.diagonal())  # sigmoid learnability of i alone
    for seed in range(5):
        assert torch.equal(select_joint(xl, xr, 9, 1, "sigmoid", generator=seeded(seed)),
                           select_sample(self_terms, 9, generator=seeded(seed)))
        # softmax: a one-example batch has loss 0, so the first round scores each pair against the whole super-batch
        per_example = softmax_loss(xl, reduction="none") - softmax_loss(xr, reduction="none")
        assert torch.equal(select_joint(xl, xr, 9, 1, "softmax", generator=seeded(seed)),
                           select_sample(per_example, 9, generator=seeded(seed)))


def planted_logits(loss, seed=0, B=64):
    "16 learnable (learner positive low, reference high), 24 noisy (both low), 24 easy (both high); shared negatives."
    g = seeded(seed)
    kind = torch.tensor([0] * 16 + [1] * 24 + [2] * 24)[torch.randperm(B, generator=g)]
    off = torch.randn(B, B, generator=g) + (-6. if loss == "sigmoid" else 0.)
    xl, xr = off.clone(), off.clone()
    xl.diagonal().copy_(torch.tensor([-6., -6., 6.])[kind]); xr.diagonal().copy_(torch.tensor([6., -6., 6.])[kind])
    return xl, xr, kind


def noisy_rate(loss, score, seeds=range(15), b=12, n_chunks=6):
    hits = 0.
    for seed in seeds:
        xl, xr, kind = planted_logits(loss, seed)
        hits += (kind[select_joint(xl, xr, b, n_chunks, loss, score, generator=seeded(seed))] == 1).float().mean().item()
    return hits / len(seeds)


@pytest.mark.parametrize("loss", LOSSES)
def test_joint_learnability_avoids_noise(loss):
    assert noisy_rate(loss, "learnability") < 0.1  # against a 37.5% share in the super-batch
    assert noisy_rate(loss, "hard_learner") > 0.3
    assert noisy_rate(loss, "learnability", n_chunks=1 if loss == "sigmoid" else 6) < 0.1


def test_select_dispatcher():
    s = torch.tensor([0.1, 3., -1., 2., 0.5])
    assert list(SELECTORS) == ["topk", "sample", "joint"]
    assert select("topk", 2, s).tolist() == [1, 3]
    assert torch.equal(select("sample", 3, s, generator=seeded(0)), select_sample(s, 3, generator=seeded(0)))
    xl, xr, _ = planted_logits("softmax")
    assert torch.equal(select("joint", 8, learner_logits=xl, ref_logits=xr, n_chunks=4, loss="softmax", generator=seeded(0)),
                       select_joint(xl, xr, 8, 4, "softmax", generator=seeded(0)))
    with pytest.raises(ConfigError, match="Did you mean 'joint'"): select("jont", 2, s)
    with pytest.raises(ValueError, match="needs per-example `scores`"): select("topk", 2)
    assert torch.equal(select("sample", 3, s, n_chunks=3, generator=seeded(0)),  # context a selector does not read is ignored
                       select_sample(s, 3, generator=seeded(0)))
