"""simulate → features → train → evaluate on held-out runs → export ONNX → parity → manifests.

Deterministic for a seed: every run, permutation and initial weight comes from it, and
torch runs single-threaded with deterministic kernels. Three disjoint sets of simulated
runs: training, calibration (thresholds, the emergence ensemble's combiner) and test
(every number in the manifests).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from deltaomega.models import features
from deltaomega.models.dataset import RUN_START_MS, WINDOW_MS, Run, simulate_run
from deltaomega.models.evaluation import auroc, detection, threshold_at_fpr
from deltaomega.models.export import PARITY_TOLERANCE, export_onnx, parity_error, random_inputs
from deltaomega.models.nets import (
    ConflictPredictor,
    EmergenceDetector,
    PatternClassifier,
    VoiceStatePredictor,
)
from deltaomega.producer.episodes import REGIMES
from deltaomega.schemas.records import METRICS, STAT_NAMES

log = logging.getLogger(__name__)

#: False-positive rate (on calibration runs) at which detection delays are compared.
DETECTION_FPR = 0.05


@dataclass(frozen=True)
class TrainingConfig:
    seed: int = 7
    train_runs: int = 24
    calibration_runs: int = 4
    test_runs: int = 8
    minutes: float = 40.0
    min_voices: int = 6
    max_voices: int = 12
    predictor_epochs: int = 10
    conflict_epochs: int = 40
    emergence_epochs: int = 80
    pattern_epochs: int = 20
    learning_rate: float = 3e-3
    batch_size: int = 256


# ---------------------------------------------------------------- data


@dataclass
class Arrays:
    """Model inputs and targets from a set of runs."""

    history: np.ndarray  # predictor input
    next_mean: np.ndarray  # next window's metric means (raw)
    graphs: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]  # nodes, edges, mask, y
    system: np.ndarray
    onset: np.ndarray
    regime: np.ndarray
    matrices: np.ndarray
    complexity: np.ndarray
    runs: list[Run]


def _arrays(runs: list[Run]) -> Arrays:
    history, next_mean, graphs = [], [], []
    system, onset, regime, matrices, complexity = [], [], [], [], []
    mean_cols = [i * len(STAT_NAMES) for i in range(len(METRICS))]
    for run in runs:
        ticks, w = run.ticks, len(run.ticks)
        nodes, edges, y = [], [], []
        for t in range(w):
            past = ticks[max(0, t - features.SEQUENCE_WINDOWS + 1) : t + 1]
            if t + 1 < w:
                both = ticks[t].present & ticks[t + 1].present
                history.append(features.predictor_input(past)[both])
                next_mean.append(ticks[t + 1].stats[both][:, mean_cols])
            if t + features.CONFLICT_HORIZON < w:
                n_, e_, _ = features.conflict_input(ticks[max(0, t - 3) : t + 1])
                nodes.append(n_[0])
                edges.append(e_[0])
                y.append(run.conflict[t + 1 : t + 1 + features.CONFLICT_HORIZON].any(axis=0))
            system.append(features.system_vector(ticks[max(0, t - 3) : t + 1]))
            onset.append(run.emergence[t])
            regime.append(run.regime[t])
            matrices.append(
                features.pattern_input(ticks[max(0, t - features.PATTERN_WINDOWS + 1) : t + 1])
            )
            complexity.append(features.complexity(ticks[t]))
        run_nodes = np.stack(nodes)
        mask = np.ones(run_nodes.shape[:2], np.float32)
        graphs.append((run_nodes, np.stack(edges), mask, np.stack(y)))
    return Arrays(
        np.concatenate(history),
        np.concatenate(next_mean).astype(np.float32),
        graphs,
        np.stack(system),
        np.array(onset, dtype=bool),
        np.array(regime, dtype=np.int64),
        np.stack(matrices),
        np.array(complexity, dtype=np.float32),
        runs,
    )


def _simulate(seeds: list[int], config: TrainingConfig, label: str) -> list[Run]:
    rng = np.random.default_rng([config.seed, len(label)])
    voices = rng.integers(config.min_voices, config.max_voices + 1, len(seeds))
    return [
        simulate_run(seed, int(n), config.minutes)
        for seed, n in tqdm(
            list(zip(seeds, voices, strict=True)), desc=f"simulate {label}", unit="run"
        )
    ]


# ---------------------------------------------------------------- training helpers


def _batches(rows: int, size: int, generator: torch.Generator) -> Iterator[Tensor]:
    order = torch.randperm(rows, generator=generator)
    yield from order.split(size)


def _fit(
    model: nn.Module,
    params: Any,
    epochs: int,
    step_loss: Callable[[torch.Generator], Iterator[Tensor]],
    lr: float,
    generator: torch.Generator,
    desc: str,
) -> float:
    optimiser = torch.optim.Adam(params, lr=lr)
    model.train()
    last = float("nan")
    bar = tqdm(range(epochs), desc=desc, unit="epoch")
    for _ in bar:
        total, count = 0.0, 0
        for loss in step_loss(generator):
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
            count += 1
        last = total / max(1, count)
        bar.set_postfix(loss=f"{last:.4f}")
    model.eval()
    return last


def _t(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# ---------------------------------------------------------------- the four models


def train_predictor(
    data: Arrays, config: TrainingConfig, g: torch.Generator
) -> VoiceStatePredictor:
    model = VoiceStatePredictor()
    x, y = _t(data.history), _t(data.next_mean)
    nll = nn.GaussianNLLLoss()

    def losses(gen: torch.Generator) -> Iterator[Tensor]:
        for idx in _batches(len(x), config.batch_size, gen):
            mean, std = model(x[idx])
            yield nll(mean, y[idx], std**2)

    _fit(
        model,
        model.parameters(),
        config.predictor_epochs,
        losses,
        config.learning_rate,
        g,
        "train voice_state_predictor",
    )
    return model


def train_conflict(data: Arrays, config: TrainingConfig, g: torch.Generator) -> ConflictPredictor:
    model = ConflictPredictor()
    graphs = [(_t(n), _t(e), _t(m), torch.from_numpy(y)) for n, e, m, y in data.graphs]
    positives = sum(int(y.sum()) for *_, y in graphs)
    pairs = sum(int(y.numel()) - y.shape[0] * y.shape[1] for *_, y in graphs)
    weight = torch.tensor(min(50.0, (pairs - positives) / max(1, positives)))
    bce = nn.BCEWithLogitsLoss(pos_weight=weight, reduction="none")

    def losses(gen: torch.Generator) -> Iterator[Tensor]:
        for r in torch.randperm(len(graphs), generator=gen).tolist():
            nodes, edges, mask, y = graphs[r]
            off = 1.0 - torch.eye(nodes.shape[1])
            for idx in _batches(len(nodes), 64, gen):
                logits = model.pair_logits(nodes[idx], edges[idx], mask[idx])
                yield (bce(logits, y[idx].float()) * off).sum() / (off.sum() * len(idx))

    _fit(
        model,
        model.parameters(),
        config.conflict_epochs,
        losses,
        config.learning_rate,
        g,
        "train conflict_predictor",
    )
    return model


def train_emergence(
    data: Arrays, calibration: Arrays, config: TrainingConfig, g: torch.Generator
) -> EmergenceDetector:
    model = EmergenceDetector()
    x = _t(data.system)
    model.feature_mean.copy_(x.mean(dim=0))
    model.feature_std.copy_(x.std(dim=0).clamp_min(1e-3))
    calm = torch.from_numpy((data.regime == 0) & ~data.onset)
    z_calm = x[calm]
    ae_params = list(model.encoder.parameters()) + list(model.decoder.parameters())

    def ae_losses(gen: torch.Generator) -> Iterator[Tensor]:
        for idx in _batches(len(z_calm), 128, gen):
            error, _, _ = model.parts(z_calm[idx])
            yield error.mean()

    _fit(
        model,
        ae_params,
        config.emergence_epochs,
        ae_losses,
        config.learning_rate,
        g,
        "train emergence autoencoder",
    )
    onset = torch.from_numpy(data.onset).float()
    typed = torch.from_numpy(data.regime > 0)
    types = torch.from_numpy(np.maximum(data.regime - 1, 0))
    weight = torch.tensor(min(50.0, float((1 - onset).sum() / onset.sum().clamp_min(1))))
    bce = nn.BCEWithLogitsLoss(pos_weight=weight)
    ce = nn.CrossEntropyLoss()
    clf_params = (
        list(model.body.parameters())
        + list(model.onset.parameters())
        + list(model.type_head.parameters())
    )

    def clf_losses(gen: torch.Generator) -> Iterator[Tensor]:
        for idx in _batches(len(x), 128, gen):
            _, logit, type_logits = model.parts(x[idx])
            loss = bce(logit, onset[idx])
            keep = typed[idx]
            if keep.any():
                loss = loss + ce(type_logits[keep], types[idx][keep])
            yield loss

    _fit(
        model,
        clf_params,
        config.emergence_epochs,
        clf_losses,
        config.learning_rate,
        g,
        "train emergence classifier",
    )
    # The combiner: logistic regression on held-out calibration runs.
    with torch.no_grad():
        error, logit, _ = model.parts(_t(calibration.system))
    inputs = torch.stack([torch.log(error + 1e-6), logit], dim=1)
    target = torch.from_numpy(calibration.onset).float()
    weights = torch.zeros(3, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights], max_iter=200)

    def closure() -> Tensor:
        optimiser.zero_grad()
        loss = (
            nn.functional.binary_cross_entropy_with_logits(
                inputs @ weights[:2] + weights[2], target
            )
            + 1e-3 * (weights[:2] ** 2).sum()
        )
        loss.backward()
        return loss

    optimiser.step(closure)
    model.calibration.copy_(weights.detach())
    return model


def train_pattern(data: Arrays, config: TrainingConfig, g: torch.Generator) -> PatternClassifier:
    model = PatternClassifier()
    x, y, c = _t(data.matrices), torch.from_numpy(data.regime), _t(data.complexity)
    ce, mse = nn.CrossEntropyLoss(), nn.MSELoss()

    def losses(gen: torch.Generator) -> Iterator[Tensor]:
        for idx in _batches(len(x), 128, gen):
            _, logits, complexity = model.heads(x[idx])
            yield ce(logits, y[idx]) + mse(torch.sigmoid(complexity), c[idx])

    _fit(
        model,
        model.parameters(),
        config.pattern_epochs,
        losses,
        config.learning_rate,
        g,
        "train pattern_classifier",
    )
    with torch.no_grad():
        embedding = model.embedding(x)
        for k in range(len(REGIMES)):
            members = embedding[y == k]
            if len(members):
                centre = members.mean(dim=0)
                model.centroids[k] = centre
                model.spread[k] = ((members - centre) ** 2).sum(dim=1).sqrt().mean().clamp_min(1e-3)
    return model


# ---------------------------------------------------------------- evaluation


def _episode_delays(
    runs: list[Run], scores: list[np.ndarray], threshold: float, regime: str, pair: bool
) -> list[float | None]:
    """Seconds from each episode's start to the close of the first window scoring over threshold."""
    delays: list[float | None] = []
    for run, score in zip(runs, scores, strict=True):
        index = {v: i for i, v in enumerate(run.ticks[0].voice_ids)}
        for episode in run.episodes:
            if episode.regime != regime:
                continue
            first = (episode.start_ms - RUN_START_MS) // WINDOW_MS
            last = min(len(score) - 1, (episode.end_ms - 1 - RUN_START_MS) // WINDOW_MS)
            if first > last:
                continue
            if pair:
                a, b = (index[v] for v in episode.voices)
                trace = np.maximum(score[first : last + 1, a, b], score[first : last + 1, b, a])
            else:
                trace = score[first : last + 1]
            hits = np.flatnonzero(trace >= threshold)
            if len(hits) == 0:
                delays.append(None)
            else:
                closed = RUN_START_MS + (first + int(hits[0]) + 1) * WINDOW_MS
                delays.append((closed - episode.start_ms) / 1000)
    return delays


def evaluate_predictor(model: VoiceStatePredictor, train: Arrays, test: Arrays) -> dict[str, float]:
    mean_cols = [features.VOICE_FEATURES.index(f"{m}_mean") for m in METRICS]

    def persistence(data: Arrays) -> np.ndarray:
        last = data.history[:, -1, mean_cols]
        raw: np.ndarray = last * features.METRIC_HALF_RANGE + features.METRIC_CENTRE
        return raw

    sigma = (train.next_mean - persistence(train)).std(axis=0)
    with torch.no_grad():
        mean, std = (t.numpy() for t in model(_t(test.history)))
    base = persistence(test)
    y = test.next_mean
    z = features.INTERVAL_Z
    return {
        "mae": float(np.abs(mean - y).mean()),
        "persistence_mae": float(np.abs(base - y).mean()),
        "coverage_90": float((np.abs(mean - y) <= z * std).mean()),
        "persistence_coverage_90": float((np.abs(base - y) <= z * sigma).mean()),
        "samples": int(len(y)),
    }


def _conflict_scores(model: ConflictPredictor, data: Arrays) -> list[np.ndarray]:
    with torch.no_grad():
        return [model(_t(n), _t(e), _t(m)).numpy() for n, e, m, _ in data.graphs]


def _conflict_baseline(data: Arrays) -> list[np.ndarray]:
    out = []
    for _, edges, _, _ in data.graphs:
        antagonism = edges[..., : features.K][..., features.ANTAGONISTIC].sum(axis=-1)
        out.append(antagonism + antagonism.transpose(0, 2, 1))
    return out


def _pairs(scores: list[np.ndarray], data: Arrays) -> tuple[np.ndarray, np.ndarray]:
    values, labels = [], []
    for score, (_, _, _, y) in zip(scores, data.graphs, strict=True):
        off = ~np.eye(score.shape[1], dtype=bool)
        values.append(score[:, off].ravel())
        labels.append(y[:, off].ravel())
    return np.concatenate(values), np.concatenate(labels)


def evaluate_conflict(
    model: ConflictPredictor, calibration: Arrays, test: Arrays
) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, scorer in (
        ("model", lambda d: _conflict_scores(model, d)),
        ("baseline", _conflict_baseline),
    ):
        cal_scores, cal_labels = _pairs(scorer(calibration), calibration)
        threshold = threshold_at_fpr(cal_scores[~cal_labels], DETECTION_FPR)
        test_scores = scorer(test)
        values, labels = _pairs(test_scores, test)
        delays = detection(
            _episode_delays(test.runs, test_scores, threshold, "conflict", pair=True)
        )
        prefix = "" if name == "model" else "baseline_"
        out[f"{prefix}auroc"] = auroc(values, labels)
        out[f"{prefix}threshold"] = threshold
        out.update({f"{prefix}{k}": v for k, v in delays.as_dict().items()})
    return out


def _split(values: np.ndarray, data: Arrays) -> list[np.ndarray]:
    bounds = np.cumsum([len(r.ticks) for r in data.runs])[:-1]
    return np.split(values, bounds)


def evaluate_emergence(
    model: EmergenceDetector, calibration: Arrays, test: Arrays
) -> dict[str, float]:
    jaccard = features.SYSTEM_FEATURES.index("link_jaccard_1")
    out: dict[str, float] = {}

    def model_scores(d: Arrays) -> np.ndarray:
        with torch.no_grad():
            scores: np.ndarray = model(_t(d.system))[0].numpy().astype(np.float64)
        return scores

    def baseline_scores(d: Arrays) -> np.ndarray:
        return d.system[:, jaccard].astype(np.float64)

    for name, scorer in (("model", model_scores), ("baseline", baseline_scores)):
        cal = scorer(calibration)
        threshold = threshold_at_fpr(cal[~calibration.onset], DETECTION_FPR)
        scores = scorer(test)
        delays = detection(
            _episode_delays(test.runs, _split(scores, test), threshold, "emergence", pair=False)
        )
        prefix = "" if name == "model" else "baseline_"
        out[f"{prefix}auroc"] = auroc(scores, test.onset)
        out[f"{prefix}threshold"] = threshold
        out.update({f"{prefix}{k}": v for k, v in delays.as_dict().items()})
    with torch.no_grad():
        _, types, _ = model(_t(test.system))
    typed = test.regime > 0
    out["type_accuracy"] = float(
        (types.numpy().argmax(axis=1)[typed] == test.regime[typed] - 1).mean()
    )
    return out


def evaluate_pattern(model: PatternClassifier, train: Arrays, test: Arrays) -> dict[str, float]:
    with torch.no_grad():
        probabilities, complexity, _ = model(_t(test.matrices))
    predicted = probabilities.numpy().argmax(axis=1)
    majority = int(np.bincount(train.regime, minlength=len(REGIMES)).argmax())
    flat_train = train.matrices.reshape(len(train.matrices), -1)
    mu, sd = flat_train.mean(axis=0), flat_train.std(axis=0) + 1e-6
    z_train, z_test = (
        (flat_train - mu) / sd,
        (test.matrices.reshape(len(test.matrices), -1) - mu) / sd,
    )
    centroids = np.stack(
        [
            z_train[train.regime == k].mean(axis=0)
            if (train.regime == k).any()
            else np.full(z_train.shape[1], np.inf)
            for k in range(len(REGIMES))
        ]
    )
    nearest = ((z_test[:, None, :] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    return {
        "accuracy": float((predicted == test.regime).mean()),
        "majority_accuracy": float((test.regime == majority).mean()),
        "nearest_centroid_accuracy": float((nearest == test.regime).mean()),
        "complexity_mae": float(np.abs(complexity.numpy() - test.complexity).mean()),
        "samples": int(len(test.regime)),
    }


# ---------------------------------------------------------------- pipeline


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _real_inputs(name: str, data: Arrays) -> dict[str, np.ndarray]:
    """Inputs from a test run for the parity check (besides the random ones)."""
    if name == "voice_state_predictor":
        return {"history": data.history[:64]}
    if name == "conflict_predictor":
        nodes, edges, mask, _ = data.graphs[0]
        return {"nodes": nodes[:8], "edges": edges[:8], "mask": mask[:8]}
    if name == "emergence_detector":
        return {"system": data.system[:64]}
    return {"matrices": data.matrices[:64]}


def train_all(config: TrainingConfig, out_dir: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """Train, evaluate, export and write one model version under ``out_dir``."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    base = config.seed * 1000
    train_runs = _simulate([base + i for i in range(config.train_runs)], config, "training")
    cal_runs = _simulate(
        [base + 100 + i for i in range(config.calibration_runs)], config, "calibration"
    )
    test_runs = _simulate([base + 200 + i for i in range(config.test_runs)], config, "test")
    train, calibration, test = _arrays(train_runs), _arrays(cal_runs), _arrays(test_runs)
    g = torch.Generator().manual_seed(config.seed)

    models: dict[str, nn.Module] = {}
    metrics: dict[str, dict[str, float]] = {}
    models["voice_state_predictor"] = predictor = train_predictor(train, config, g)
    metrics["voice_state_predictor"] = evaluate_predictor(predictor, train, test)
    models["conflict_predictor"] = conflict = train_conflict(train, config, g)
    metrics["conflict_predictor"] = evaluate_conflict(conflict, calibration, test)
    models["emergence_detector"] = emergence = train_emergence(train, calibration, config, g)
    metrics["emergence_detector"] = evaluate_emergence(emergence, calibration, test)
    models["pattern_classifier"] = pattern = train_pattern(train, config, g)
    metrics["pattern_classifier"] = evaluate_pattern(pattern, train, test)

    blobs: dict[str, bytes] = {}
    staging = out_dir / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    parity: dict[str, float] = {}
    for name, model in models.items():
        blobs[name] = export_onnx(name, model, staging / f"{name}.onnx")
        parity[name] = max(
            parity_error(name, model, blobs[name], random_inputs(name, rng, rows=7)),
            parity_error(name, model, blobs[name], _real_inputs(name, test)),
        )
        if parity[name] >= PARITY_TOLERANCE:
            raise RuntimeError(f"{name}: onnxruntime differs from torch by {parity[name]:.2e}")
    digest = _sha256(b"".join(_sha256(blobs[n]).encode() for n in sorted(blobs)))
    version = f"s{config.seed}-{digest[:10]}"
    target = out_dir / version
    target.mkdir(parents=True, exist_ok=True)
    manifests: dict[str, dict[str, Any]] = {}
    for name in models:
        (staging / f"{name}.onnx").replace(target / f"{name}.onnx")
        manifests[name] = {
            "name": name,
            "version": version,
            "file": f"{name}.onnx",
            "sha256": _sha256(blobs[name]),
            "feature_spec_hash": features.spec_hash(name),
            "metrics": metrics[name],
            "parity_max_abs_error": parity[name],
            "training": asdict(config),
            "onnx_opset": 17,
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
        (target / f"{name}.json").write_text(
            json.dumps(manifests[name], indent=2, sort_keys=True) + "\n"
        )
    staging.rmdir()
    from deltaomega.models.report import metrics_table

    (target / "METRICS.md").write_text(
        f"# Model version {version}\n\nHeld-out simulated runs "
        f"({config.test_runs} runs of {config.minutes:g} minutes, seeds {base + 200}…).\n\n"
        + metrics_table(manifests)
        + "\n"
    )
    return version, manifests
