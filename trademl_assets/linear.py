"""The linear sleeve: ridge (or elastic net) on the same features and CPCV layout as the
equities sleeves — the strong baseline at low signal-to-noise."""

from trademl.models.equities.pipeline import CPCV_SCALARS
from trademl.models.linear.promotion import decide
from trademl_assets.equities import (
    GATE_TEXT,
    SCORE_INS,
    TRAIN_INS,
    cpcv_train,
    load_bundle,
    score_features,
    sleeve_features,
)
from trademl_assets.sleeves import SleeveSpec

SPEC = SleeveSpec(
    name="linear",
    kind="alpha",
    group="linear",
    ins=TRAIN_INS,
    train=cpcv_train(
        "linear",
        n_trials=lambda s: len(s.linear.alphas),
        grid=lambda s: {
            "alpha": list(s.linear.alphas),
            "l1_ratio": [s.linear.l1_ratio],
            "clip": [s.linear.clip],
        },
        features=lambda s: sleeve_features(s, s.linear.features, "linear.features"),
    ),
    decide=lambda m, champ, s: decide(m, champ, s.linear.promotion),
    min_shadow=lambda s: s.linear.promotion.min_shadow_sessions,
    gate_description=GATE_TEXT,
    load=load_bundle,
    description="Ridge / elastic net on the standardized features as of the session, every "
    "penalty in linear.alphas tried on the equities CPCV layout; registered as `linear`.",
    row_metrics=CPCV_SCALARS,
    kinds=frozenset({"sklearn", "onnx", "mlflow"}),
    score_ins=SCORE_INS,
    score=score_features,
)
