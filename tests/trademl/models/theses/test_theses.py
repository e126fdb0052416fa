"""The thesis model: shapes, probabilities, determinism and gradient flow through every head;
each teacher claim on a hand-made row; the schema naming the failing path and agreeing with
the batch rule; and on a market whose forward return depends on a known claim (short-term up
while long-term down), RFT raises the decision-sign Sharpe above SFT out of sample and passes
the gate — on noise it does not, and the gate refuses."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

torch = pytest.importorskip("torch")

from trademl.models.theses.evaluate import Folds, thesis_decision, walk_forward  # noqa: E402
from trademl.models.theses.model import DECISIONS, N_CLAIMS, N_SECTIONS, build_model  # noqa: E402
from trademl.models.theses.schema import (  # noqa: E402
    ThesisSchemaError,
    is_valid,
    thesis_document,
    valid_mask,
    validate,
)
from trademl.models.theses.teacher import (  # noqa: E402
    DEFAULT_RULES,
    check_rules,
    claim_teacher,
    decision_teacher,
    evidence_of,
    model_inputs,
    rule_features,
)
from trademl.models.theses.train import ThesisParams  # noqa: E402


def test_heads_shapes_probabilities_determinism_and_gradients():
    x = torch.randn(7, 5)
    a, b = build_model(5, seed=3), build_model(5, seed=3)
    out = a(x)
    assert out["structure_probs"].shape == (7, N_SECTIONS)
    assert out["claims_probs"].shape == (7, N_CLAIMS)
    assert out["decision_probs"].shape == (7, len(DECISIONS))
    for k in ("structure_probs", "claims_probs", "decision_probs"):
        assert ((out[k] >= 0) & (out[k] <= 1)).all()
    torch.testing.assert_close(out["decision_probs"].sum(-1), torch.ones(7))
    torch.testing.assert_close(a(x)["claims_logits"], b(x)["claims_logits"])
    s1 = a.sample(x, torch.Generator().manual_seed(0))
    s2 = b.sample(x, torch.Generator().manual_seed(0))
    assert torch.equal(s1["decision"], s2["decision"]) and torch.equal(s1["claims"], s2["claims"])
    assert s1["log_prob"].shape == (7,) and (s1["entropy"] > 0).all()
    torch.testing.assert_close(s1["log_prob"], a.log_prob(x, s1))
    s1["log_prob"].sum().backward()
    for head in (a.structure, a.claims, a.decision, a.encoder[0]):
        assert head.weight.grad is not None and head.weight.grad.abs().sum() > 0
    pred = a.predict(x)
    assert set(pred["decision"].tolist()) <= set(range(5))
    names = [r.name for r in DEFAULT_RULES]
    doc = a.generate_thesis(
        x[0],
        symbol="A",
        date="2024-01-02",
        claim_names=names,
        evidence={n: {"mom_5": 0.01} for n in names},
        model_version="1",
    )
    assert doc["decision"] == DECISIONS[int(pred["decision"][0])]
    assert is_valid(doc) == bool(
        valid_mask(pred["structure"][:1].numpy(), pred["claims"][:1].numpy())[0]
    )
    assert ((pred["expected_sign"] >= -1) & (pred["expected_sign"] <= 1)).all()


def two_names() -> pl.DataFrame:
    """A hand-made session: A short-term up, long-term down (divergence), volatile, deep in
    drawdown, liquid; B the opposite."""
    return pl.DataFrame(
        {
            "date": [dt.date(2024, 1, 2)] * 2,
            "symbol": ["A", "B"],
            "mom_126": [-0.10, 0.20],
            "mom_5": [0.03, -0.01],
            "rvol_20": [0.60, 0.20],
            "dd_252": [-0.40, -0.05],
            "dollar_vol_20": [9e6, 1e6],
        }
    )


def test_each_claim_on_a_hand_made_session():
    # two names: A short-term up, long-term down (divergence), volatile, liquid; B the opposite
    frame = two_names()
    names = [r.name for r in DEFAULT_RULES]
    got = dict(zip(names, claim_teacher(frame, DEFAULT_RULES).T.tolist(), strict=True))
    assert got == {
        "long_momentum_up": [0, 1],
        "long_momentum_down": [1, 0],
        "short_momentum_up": [1, 0],
        "short_momentum_down": [0, 1],
        "high_volatility": [1, 0],  # rank 1.0 > 0.8
        "deep_drawdown": [1, 0],  # rank 0.0 < 0.2
        "liquid": [1, 0],
        "divergence_short_up_long_down": [1, 0],
    }
    ev = evidence_of(frame.row(0, named=True), DEFAULT_RULES)
    assert ev["divergence_short_up_long_down"] == {"mom_5": 0.03, "mom_126": -0.10}
    with pytest.raises(ValueError, match="'pe_ratio', which the feature store does not compute"):
        check_rules(
            [
                *DEFAULT_RULES[:1],
                type(DEFAULT_RULES[0])(
                    "value", (type(DEFAULT_RULES[0].when[0])("pe_ratio", "<", 10.0),)
                ),
            ],
            rule_features(DEFAULT_RULES),
        )
    q = decision_teacher(np.array([0.05, -0.02, 0.01, 0.00, 0.03]), np.zeros(5))
    assert q.tolist() == [4, 0, 2, 1, 3]


def test_the_schema_names_the_failing_path_and_agrees_with_the_batch_rule():
    claim_names = [r.name for r in DEFAULT_RULES]
    evidence = {n: {"mom_5": 0.01} for n in claim_names}
    doc = thesis_document(
        symbol="A",
        date="2024-01-02",
        structure=[1, 1, 0, 0, 1, 1],
        claims=[1, 0, 0, 0, 0, 0, 0, 0],
        decision=4,
        confidence=0.7,
        claim_names=claim_names,
        evidence=evidence,
        model_version="3",
        holds={"long_momentum_up": True},
    )
    validate(doc)
    assert doc["claims"][0]["holds"] is True
    assert doc["decision"] == "strong_buy" and doc["claims"][0]["claim"] == "long_momentum_up"
    with pytest.raises(ThesisSchemaError) as err:
        validate({**doc, "confidence": 1.5})
    assert err.value.path == "$.confidence"
    with pytest.raises(ThesisSchemaError) as err:
        bad = [{"claim": "x", "holds": True, "evidence": {"mom_5": "high"}}]
        validate({**doc, "claims": bad})
    assert err.value.path == "$.claims[0].evidence.mom_5"
    with pytest.raises(ThesisSchemaError, match="sections"):
        validate({**doc, "sections": ["summary", "evidence"]})  # no decision section
    rng = np.random.default_rng(0)
    s = rng.integers(0, 2, (300, N_SECTIONS))
    c = rng.integers(0, 2, (300, N_CLAIMS)) * (rng.random((300, 1)) < 0.7)
    docs = [
        thesis_document(
            symbol="A",
            date="2024-01-02",
            structure=s[i],
            claims=c[i],
            decision=2,
            confidence=0.5,
            claim_names=claim_names,
            evidence=evidence,
            model_version="1",
        )
        for i in range(300)
    ]
    assert valid_mask(s, c).tolist() == [is_valid(d) for d in docs]
    assert 0.05 < valid_mask(s, c).mean() < 0.95


def market(signal: bool, sessions: int = 340, names: int = 40, seed: int = 0):
    """Features and forward returns; with `signal`, a name whose short-term momentum is up
    while its long-term momentum is down earns +3% over the horizon, everything else noise."""
    rng = np.random.default_rng(seed)
    days = np.repeat(np.arange(sessions), names)
    n = days.size
    frame = pl.DataFrame(
        {
            "date": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in days],
            "symbol": [f"S{i}" for i in np.tile(np.arange(names), sessions)],
            "mom_126": rng.normal(0, 0.2, n),
            "mom_5": rng.normal(0, 0.05, n),
            "rvol_20": rng.uniform(0.1, 0.6, n),
            "dd_252": -rng.uniform(0, 0.5, n),
            "dollar_vol_20": rng.lognormal(15, 1, n),
        }
    )
    div = (frame["mom_5"].to_numpy() > 0) & (frame["mom_126"].to_numpy() < 0)
    fwd = rng.normal(0, 0.03, n) + (0.03 * div if signal else 0.0)
    return frame, fwd


def _run(signal: bool):
    frame, fwd = market(signal)
    feats = rule_features(DEFAULT_RULES)
    x = model_inputs(frame, feats)
    dates = frame.get_column("date").to_numpy()
    claims = claim_teacher(frame, DEFAULT_RULES)
    params = ThesisParams(sft_epochs=8, rft_epochs=15, seed=0)
    folds = Folds(n_folds=3, train=160, test=60, horizon=5)
    return walk_forward(
        x,
        fwd,
        dates,
        np.ones((len(fwd), N_SECTIONS)),
        claims,
        decision_teacher(fwd, dates),
        params,
        folds,
    )


def test_rft_beats_sft_out_of_sample_where_a_claim_pays_and_is_refused_on_noise():
    wf = _run(signal=True)
    per_fold, summary = wf.folds, wf.summary
    assert per_fold.height == 3
    tested = np.isfinite(wf.oof_rft)
    assert tested.sum() == 3 * 60 * 40 and np.isfinite(wf.oof_sft).sum() == tested.sum()
    assert summary["rft_sharpe"] > summary["sft_sharpe"], summary
    assert summary["rft_validity"] >= 0.9
    assert thesis_decision(summary, margin=0.0, min_sharpe=0.5, min_validity=0.9).promote
    noise = _run(signal=False).summary
    refused = thesis_decision(noise, margin=0.0, min_sharpe=0.5, min_validity=0.9)
    assert not refused.promote, noise


def test_a_served_thesis_says_whether_each_asserted_claim_holds_on_its_features():
    """Whatever the (here untrained) claims head asserts, each claim's `holds` is its rule
    on that row — the hand-worked truth table of the two-name session above."""
    from trademl.models.theses.sleeve import ThesisScorer

    frame = two_names()
    feats = rule_features(DEFAULT_RULES)
    scorer = ThesisScorer(build_model(len(feats), seed=1), feats, DEFAULT_RULES)
    theses = scorer.theses(frame, "7")
    assert theses.get_column("valid").dtype == pl.Boolean and theses.height == 2
    truth = claim_teacher(frame, DEFAULT_RULES)
    names = [r.name for r in DEFAULT_RULES]
    seen = 0
    for i, doc in enumerate(theses.get_column("thesis")):
        parsed = json.loads(doc)
        assert parsed["model_version"] == "7" and parsed["symbol"] == ["A", "B"][i]
        for claim in parsed["claims"]:
            assert claim["holds"] == bool(truth[i, names.index(claim["claim"])])
            seen += 1
    assert seen > 0  # an untrained head asserts some claims
    scores = scorer.score(frame)
    assert scores.get_column("score").is_between(-1, 1).all()
