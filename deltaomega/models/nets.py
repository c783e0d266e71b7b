"""The four networks, small enough for a CPU tick and built from ops ONNX exports cleanly.

Each module takes exactly the arrays :mod:`deltaomega.models.features` builds and returns
what serving publishes (raw units, probabilities), so the exported graph needs no
Python around it: scaling, calibration and centroids live in buffers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from deltaomega.models.features import EDGE_CHANNELS as K
from deltaomega.models.features import (
    EMERGENCE_TYPES,
    METRIC_CENTRE,
    METRIC_HALF_RANGE,
    PATTERN_CHANNELS,
    PATTERN_WINDOWS,
    SEQUENCE_WINDOWS,
    SYSTEM_FEATURES,
    VOICE_FEATURES,
)
from deltaomega.producer.episodes import REGIMES
from deltaomega.schemas.records import METRICS

#: Columns of VOICE_FEATURES holding each metric's scaled window mean.
MEAN_COLUMNS = [VOICE_FEATURES.index(f"{m}_mean") for m in METRICS]
NV = len(VOICE_FEATURES)
NM = len(METRICS)


class VoiceStatePredictor(nn.Module):
    """LSTM for local dynamics, a Transformer encoder over its states for longer context.

    Predicts the change of each metric's window mean from the last window, and a log
    variance; outputs are mean and standard deviation in raw metric units.
    """

    centre: Tensor
    half_range: Tensor
    mean_columns: Tensor

    def __init__(self, hidden: int = 32, heads: int = 2) -> None:
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Linear(NV, hidden)
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.position = nn.Parameter(torch.zeros(1, SEQUENCE_WINDOWS, hidden))
        self.head = nn.Linear(2 * hidden, 2 * NM)
        self.register_buffer("centre", torch.tensor(METRIC_CENTRE, dtype=torch.float32))
        self.register_buffer("half_range", torch.tensor(METRIC_HALF_RANGE, dtype=torch.float32))
        self.register_buffer("mean_columns", torch.tensor(MEAN_COLUMNS, dtype=torch.long))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        z = torch.relu(self.inp(x))
        h0 = torch.zeros_like(z[:, 0, :]).unsqueeze(0)
        seq, _ = self.lstm(z, (h0, h0))
        context = self.encoder(seq + self.position).mean(dim=1)
        out = self.head(torch.cat([seq[:, -1], context], dim=1))
        last = torch.index_select(x[:, -1], 1, self.mean_columns)
        mean = (last + out[:, :NM]) * self.half_range + self.centre
        std = torch.exp(0.5 * torch.clamp(out[:, NM:], -14.0, 4.0)) * self.half_range
        return mean, std


class ConflictPredictor(nn.Module):
    """Dense message passing over the interaction graph, then a score per ordered pair.

    Messages flow along and against each edge, weighted by its strength per kind and
    normalised by degree, so the same weights serve small and large systems.
    """

    def __init__(self, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(NV, hidden)
        self.self_lin = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers))
        self.in_lin = nn.ModuleList(nn.Linear(K * hidden, hidden) for _ in range(layers))
        self.out_lin = nn.ModuleList(nn.Linear(K * hidden, hidden) for _ in range(layers))
        self.pair_source = nn.Linear(hidden, hidden)
        self.pair_target = nn.Linear(hidden, hidden, bias=False)
        self.pair_edge = nn.Linear(2 * K, hidden, bias=False)
        self.pair_out = nn.Linear(hidden, 1)

    def pair_logits(self, nodes: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
        b, n = nodes.shape[0], nodes.shape[1]
        m = mask.unsqueeze(-1)
        h = torch.relu(self.embed(nodes)) * m
        deg_in = edges.abs().sum(dim=(1, 3)).unsqueeze(-1) + 1.0
        deg_out = edges.abs().sum(dim=(2, 3)).unsqueeze(-1) + 1.0
        for self_lin, in_lin, out_lin in zip(self.self_lin, self.in_lin, self.out_lin, strict=True):
            incoming = torch.einsum("bjik,bjh->bikh", edges, h).reshape(b, n, -1) / deg_in
            outgoing = torch.einsum("bijk,bjh->bikh", edges, h).reshape(b, n, -1) / deg_out
            h = torch.relu(self_lin(h) + in_lin(incoming) + out_lin(outgoing)) * m
        pair_edges = torch.cat([edges, edges.transpose(1, 2)], dim=-1)
        z = (
            self.pair_source(h).unsqueeze(2)
            + self.pair_target(h).unsqueeze(1)
            + self.pair_edge(pair_edges)
        )
        logits: Tensor = self.pair_out(torch.relu(z)).squeeze(-1)
        return logits

    def forward(self, nodes: Tensor, edges: Tensor, mask: Tensor) -> Tensor:
        n = nodes.shape[1]
        valid = mask.unsqueeze(2) * mask.unsqueeze(1)
        valid = valid * (1.0 - torch.eye(n, dtype=nodes.dtype).unsqueeze(0))
        return torch.sigmoid(self.pair_logits(nodes, edges, mask)) * valid


class EmergenceDetector(nn.Module):
    """Autoencoder (trained on calm windows) + supervised onset classifier, calibrated.

    The autoencoder flags what normal operation does not explain, the classifier what
    onsets looked like; a logistic layer fitted on held-out runs combines the two into
    one probability. A second head names the most likely regime type.
    """

    feature_mean: Tensor
    feature_std: Tensor
    calibration: Tensor

    def __init__(self, hidden: int = 32, code: int = 6) -> None:
        super().__init__()
        nf = len(SYSTEM_FEATURES)
        self.encoder = nn.Sequential(nn.Linear(nf, 16), nn.Tanh(), nn.Linear(16, code), nn.Tanh())
        self.decoder = nn.Sequential(nn.Linear(code, 16), nn.Tanh(), nn.Linear(16, nf))
        self.body = nn.Sequential(
            nn.Linear(nf, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.onset = nn.Linear(hidden, 1)
        self.type_head = nn.Linear(hidden, len(EMERGENCE_TYPES))
        self.register_buffer("feature_mean", torch.zeros(nf))
        self.register_buffer("feature_std", torch.ones(nf))
        #: log(reconstruction error), classifier logit, bias.
        self.register_buffer("calibration", torch.tensor([0.0, 1.0, 0.0]))

    def parts(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z = (x - self.feature_mean) / self.feature_std
        error = ((self.decoder(self.encoder(z)) - z) ** 2).mean(dim=1)
        features = self.body(z)
        return error, self.onset(features).squeeze(-1), self.type_head(features)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        error, logit, type_logits = self.parts(x)
        w = self.calibration
        probability = torch.sigmoid(w[0] * torch.log(error + 1e-6) + w[1] * logit + w[2])
        return probability, torch.softmax(type_logits, dim=1), error


class PatternClassifier(nn.Module):
    """A small CNN over the recent interaction matrices.

    Outputs the pattern class, a complexity score and novelty: the distance of the
    embedding to the nearest class centroid, in units of that class's spread.
    """

    centroids: Tensor
    spread: Tensor

    def __init__(self, channels: int = 32, embedding: int = 32) -> None:
        super().__init__()
        c_in = PATTERN_WINDOWS * len(PATTERN_CHANNELS)
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),
        )
        self.embed = nn.Linear(2 * channels, embedding)
        self.classes = nn.Linear(embedding, len(REGIMES))
        self.complexity = nn.Linear(embedding, 1)
        self.register_buffer("centroids", torch.zeros(len(REGIMES), embedding))
        self.register_buffer("spread", torch.ones(len(REGIMES)))

    def embedding(self, x: Tensor) -> Tensor:
        f = self.conv(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return torch.relu(self.embed(pooled))

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e = self.embedding(x)
        return e, self.classes(e), self.complexity(e).squeeze(-1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        e, logits, complexity = self.heads(x)
        distance = ((e.unsqueeze(1) - self.centroids.unsqueeze(0)) ** 2).sum(dim=2).sqrt()
        novelty = (distance / self.spread).amin(dim=1)
        return torch.softmax(logits, dim=1), torch.sigmoid(complexity), novelty


def build(name: str) -> nn.Module:
    nets: dict[str, type[nn.Module]] = {
        "voice_state_predictor": VoiceStatePredictor,
        "conflict_predictor": ConflictPredictor,
        "emergence_detector": EmergenceDetector,
        "pattern_classifier": PatternClassifier,
    }
    return nets[name]()
