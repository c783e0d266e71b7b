"""The held-out metrics of a model version as a Markdown table, each beside its baseline."""

from __future__ import annotations

from typing import Any


def _gain(model: float, baseline: float, lower_is_better: bool) -> str:
    if baseline == 0:
        return "n/a"
    change = (baseline - model) / baseline if lower_is_better else (model - baseline) / baseline
    return f"{change:+.1%}"


def metrics_table(manifests: dict[str, dict[str, Any]]) -> str:
    p = manifests["voice_state_predictor"]["metrics"]
    c = manifests["conflict_predictor"]["metrics"]
    e = manifests["emergence_detector"]["metrics"]
    k = manifests["pattern_classifier"]["metrics"]
    rows = [
        (
            "voice_state_predictor",
            "MAE of next-window means (raw units)",
            p["mae"],
            "persistence",
            p["persistence_mae"],
            _gain(p["mae"], p["persistence_mae"], True),
        ),
        (
            "voice_state_predictor",
            "90 % interval coverage",
            p["coverage_90"],
            "persistence ± 1.645 σ",
            p["persistence_coverage_90"],
            f"{abs(p['coverage_90'] - 0.9):.3f} vs "
            f"{abs(p['persistence_coverage_90'] - 0.9):.3f} from 0.90",
        ),
        (
            "conflict_predictor",
            "AUROC, pairs, 3-window horizon",
            c["auroc"],
            "antagonistic strength ≥ t",
            c["baseline_auroc"],
            _gain(c["auroc"], c["baseline_auroc"], False),
        ),
        (
            "conflict_predictor",
            "conflicts detected at 5 % FPR",
            f"{c['detected']}/{c['episodes']}",
            "same",
            f"{c['baseline_detected']}/{c['baseline_episodes']}",
            "",
        ),
        (
            "conflict_predictor",
            "median delay after onset (s)",
            c["median_delay_s"],
            "same",
            c["baseline_median_delay_s"],
            f"{c['baseline_median_delay_s'] - c['median_delay_s']:+.1f} s sooner",
        ),
        (
            "emergence_detector",
            "AUROC, onset windows",
            e["auroc"],
            "link-set change (Jaccard) ≥ t",
            e["baseline_auroc"],
            _gain(e["auroc"], e["baseline_auroc"], False),
        ),
        (
            "emergence_detector",
            "onsets detected at 5 % FPR",
            f"{e['detected']}/{e['episodes']}",
            "same",
            f"{e['baseline_detected']}/{e['baseline_episodes']}",
            "",
        ),
        (
            "emergence_detector",
            "median delay after onset (s)",
            e["median_delay_s"],
            "same",
            e["baseline_median_delay_s"],
            f"{e['baseline_median_delay_s'] - e['median_delay_s']:+.1f} s sooner",
        ),
        (
            "pattern_classifier",
            "accuracy (8 regimes)",
            k["accuracy"],
            "majority class",
            k["majority_accuracy"],
            _gain(k["accuracy"], k["majority_accuracy"], False),
        ),
        (
            "pattern_classifier",
            "accuracy (8 regimes)",
            k["accuracy"],
            "nearest centroid",
            k["nearest_centroid_accuracy"],
            _gain(k["accuracy"], k["nearest_centroid_accuracy"], False),
        ),
    ]
    lines = [
        "| model | metric | model | baseline | baseline value | model vs baseline |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, metric, value, baseline, base_value, gain in rows:
        lines.append(
            f"| {name} | {metric} | {_fmt(value)} | {baseline} | {_fmt(base_value)} | {gain} |"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
