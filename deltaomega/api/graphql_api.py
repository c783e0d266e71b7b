"""GraphQL at ``/graphql`` (strawberry): the seed's types, queries, mutations and
subscriptions over the same reads, actions, permission checks and feed tails as REST.

Every field checks the caller's role against what REST asks for the same data (a denial is
an error with ``extensions.code = FORBIDDEN`` for that field); mutations go through
:mod:`deltaomega.api.actions` (the same checks and audit rows as REST) and spend the
caller's write budget. Queries deeper than 8 levels, longer than 2,000 tokens or with more
than 15 aliases are refused before they run. A voice's parameters load for every voice of a
query in one read (a DataLoader).

What the seed names and the system does not compute is left out and said so here:
``SystemPrediction`` has no ``SYSTEM_EVOLUTION`` predictions (no model forecasts the
system's own evolution; the emergence model detects it as it happens).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import strawberry
from graphql import GraphQLError
from pydantic import ValidationError as PydanticValidationError
from starlette.requests import HTTPConnection
from strawberry.dataloader import DataLoader
from strawberry.extensions import (
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
)
from strawberry.fastapi import GraphQLRouter
from strawberry.scalars import JSON
from strawberry.types import Info

from deltaomega.api import actions
from deltaomega.api.deps import ApiContext
from deltaomega.api.feed_hub import FeedRecord
from deltaomega.api.matrix import build_matrix
from deltaomega.api.models import OrchestrationRequest, ParameterChangeRequest
from deltaomega.api.outlook import system_outlook
from deltaomega.api.params import millis
from deltaomega.api.pattern_analysis import analyse_range
from deltaomega.control.parameters import effective
from deltaomega.control.strategies import Strategy as StrategyName
from deltaomega.errors import (
    DeltaOmegaError,
    ServiceUnavailableError,
    TooManySubscribersError,
    ValidationError,
)
from deltaomega.schemas.records import ALERT, METRICS, PATTERN, PREDICTION, VOICE_STATE
from deltaomega.security.gatekeeper import RateLimitedError
from deltaomega.security.rate_limits import RouteClass
from deltaomega.security.roles import Role
from deltaomega.security.tokens import Principal

MAX_DEPTH = 8
_DEFAULT_RANGE_MS = 3_600_000


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


# -- context and checks --------------------------------------------------------------------


def _connection(info: Info) -> HTTPConnection:
    connection: HTTPConnection = info.context["request"]
    return connection


def _ctx(info: Info) -> ApiContext:
    context: ApiContext = _connection(info).app.state.context
    return context


def _allow(info: Info, role: Role) -> Principal:
    """The caller, when their role is at least ``role``; a FORBIDDEN error otherwise."""
    principal: Principal = _connection(info).state.principal
    if principal.role < role:
        raise GraphQLError(
            f"needs the {role.label} role or above; {principal.subject} is a "
            f"{principal.role.label}",
            extensions={"code": "FORBIDDEN", "status": 403},
        )
    return principal


def _refused(exc: Exception) -> GraphQLError:
    """An error of ours as a GraphQL error with the REST status it would have had."""
    if isinstance(exc, ValidationError):
        return GraphQLError(
            str(exc), extensions={"code": "BAD_USER_INPUT", "status": 422, "field": exc.field}
        )
    if isinstance(exc, PydanticValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        return GraphQLError(
            f"{field}: {first['msg']}",
            extensions={"code": "BAD_USER_INPUT", "status": 422, "field": field},
        )
    if isinstance(exc, RateLimitedError):
        return GraphQLError(
            str(exc),
            extensions={
                "code": "RATE_LIMITED",
                "status": 429,
                "retryAfter": exc.verdict.retry_after,
            },
        )
    if isinstance(exc, TooManySubscribersError):
        status = 429 if exc.per_principal else 503
        return GraphQLError(str(exc), extensions={"code": "TOO_MANY_SUBSCRIBERS", "status": status})
    if isinstance(exc, ServiceUnavailableError):
        return GraphQLError(
            f"{exc.service} is unavailable; try again later",
            extensions={"code": "UNAVAILABLE", "status": 503, "service": exc.service},
        )
    return GraphQLError("the server could not answer", extensions={"code": "INTERNAL"})


# -- types ---------------------------------------------------------------------------------


@strawberry.type(description="A metric over one window: mean, min, max and last value.")
class MetricStats:
    mean: float
    min: float
    max: float
    last: float


@strawberry.type(description="A voice's parameters now (what changes have left them).")
class VoiceParameters:
    sensitivity: float
    activation_threshold: float
    influence_weight: float
    context_modifiers: JSON


@strawberry.type(description="A voice's state over one closed window.")
class VoiceState:
    voice_id: str
    window_start: datetime
    window_end: datetime
    count: int
    temperature: MetricStats
    activation: MetricStats
    stress: MetricStats = strawberry.field(description="Stress metrics of the window.")
    influence: MetricStats = strawberry.field(description="Influence metrics of the window.")

    @strawberry.field(
        description="The voice's interactions over the last hour, both ways (one read for "
        "all voices of a query)."
    )
    async def interactions(self, info: Info) -> list[VoiceInteraction]:
        _allow(info, Role.VIEWER)
        pairs: list[dict[str, Any]] = await info.context["interactions"].load(self.voice_id)
        return [VoiceInteraction(**p) for p in pairs]

    @strawberry.field(description="The voice's parameters now (one read for all voices).")
    async def parameters(self, info: Info) -> VoiceParameters:
        _allow(info, Role.VIEWER)
        rows = await info.context["parameters"].load(self.voice_id)
        values = effective(rows)[0]
        return VoiceParameters(**values)

    @classmethod
    def of(cls, row: dict[str, Any]) -> VoiceState:
        stats = {
            m: MetricStats(**{s: row[f"{m}_{s}"] for s in ("mean", "min", "max", "last")})
            for m in METRICS
        }
        return cls(
            voice_id=row["voice_id"],
            window_start=_at(row["window_start"]),
            window_end=_at(row["window_end"]),
            count=row["count"],
            **stats,
        )


@strawberry.type(description="Summed interaction strength of a pair over a time range.")
class VoiceInteraction:
    source: str
    target: str
    strength: float
    harmony: float = strawberry.field(
        description="(supportive − antagonistic) / total strength, −1 to 1."
    )
    conflict: float = strawberry.field(description="Antagonistic / total strength, 0 to 1.")

    @strawberry.field(description="The source's latest window (one read for all of them).")
    async def source_voice(self, info: Info) -> VoiceState | None:
        row = await info.context["latest"].load(self.source)
        return VoiceState.of(row) if row else None

    @strawberry.field(description="The target's latest window (one read for all of them).")
    async def target_voice(self, info: Info) -> VoiceState | None:
        row = await info.context["latest"].load(self.target)
        return VoiceState.of(row) if row else None


@strawberry.type(description="Harmony and conflict of the whole system over a time range.")
class CollectiveDynamics:
    start: datetime
    end: datetime
    voices: list[str]
    harmony: float | None
    conflict: float | None
    interactions: list[VoiceInteraction]


@strawberry.type(description="The pattern the classifier saw in one window.")
class PolyphonicPattern:
    pattern_id: str
    pattern: str
    window_start: datetime
    confidence: float
    complexity: float
    novelty: float = strawberry.field(
        description="How unlike the recent windows this one is (what the seed calls impact)."
    )
    model_version: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> PolyphonicPattern:
        return cls(
            pattern_id=f"{row['pattern']}@{row['window_start']}",
            pattern=row["pattern"],
            window_start=_at(row["window_start"]),
            confidence=row["confidence"],
            complexity=row["complexity"],
            novelty=row["novelty"],
            model_version=row["model_version"],
        )


@strawberry.type(description="The active model version's view of a chosen range.")
class PatternAnalysis:
    model_version: str
    windows: list[PolyphonicPattern] = strawberry.field(description="Oldest first.")
    pattern_counts: JSON = strawberry.field(description="Windows per class.")
    emergent_windows: int = strawberry.field(
        description="Windows where the emergence detector is at or over its alert threshold."
    )


@strawberry.enum(description="What a prediction is about.")
class PredictionType(Enum):
    STATE_CHANGE = "STATE_CHANGE"
    PATTERN_EMERGENCE = "PATTERN_EMERGENCE"
    CONFLICT_ESCALATION = "CONFLICT_ESCALATION"
    SYSTEM_EVOLUTION = strawberry.enum_value(
        "SYSTEM_EVOLUTION", description="Not computed: no model forecasts it (see the schema)."
    )


@strawberry.type(description="A model's prediction for the coming windows.")
class SystemPrediction:
    type: PredictionType
    subject: str = strawberry.field(description="A voice, 'source->target', or 'system'.")
    window_start: datetime = strawberry.field(description="The window it was made at.")
    horizon_windows: int
    value: float = strawberry.field(
        description="STATE_CHANGE: predicted stress; the others: a probability."
    )
    detail: JSON
    model_version: str


@strawberry.type(description="An alert raised by a rule over the model outputs.")
class SystemAlert:
    alert_id: str
    severity: str
    rule: str
    subject: str
    message: str
    value: float
    threshold: float
    recommended_actions: list[str]
    window_start: datetime


@strawberry.type(description="A next-window prediction for one voice.")
class VoicePrediction:
    voice_id: str
    window_start: datetime
    target_window_start: datetime
    predicted: JSON = strawberry.field(description="Each metric: pred, std, low, high.")
    risk: float
    model_version: str


@strawberry.input
class TimeRange:
    start: datetime | None = None
    end: datetime | None = None


@strawberry.input
class VoiceFilter:
    voice_ids: list[str] | None = None
    min_stress: float | None = strawberry.field(
        default=None, description="Only voices whose last window's mean stress is at least this."
    )


@strawberry.input
class ParametersInput:
    sensitivity: float | None = None
    activation_threshold: float | None = None
    influence_weight: float | None = None
    context_modifiers: JSON | None = None


@strawberry.enum
class Strategy(Enum):
    DIRECT = "direct"
    ADAPTIVE = "adaptive"
    EMERGENCY = "emergency"
    EVOLUTION = "evolution"


@strawberry.input
class OrchestrationInput:
    target_voices: list[str]
    duration: int = strawberry.field(description="Minutes it stays active once approved.")
    rationale: str
    sensitivity: float | None = None
    activation_threshold: float | None = None
    influence_weight: float | None = None
    scale: float | None = None
    step: float | None = None


@strawberry.type
class ParameterChangeResult:
    change_id: str
    voice_id: str
    status: str
    expires_at: datetime | None


@strawberry.type
class OrchestrationResult:
    orchestration_id: str
    status: str


def _range(given: TimeRange | None) -> tuple[int, int | None]:
    start = millis(given.start) if given else None
    end = millis(given.end) if given else None
    if start is not None and end is not None and start >= end:
        raise _refused(ValidationError("timeRange.start", "must be earlier than 'end'"))
    if start is None:
        start = (end if end is not None else int(datetime.now(UTC).timestamp() * 1000)) - (
            _DEFAULT_RANGE_MS
        )
    return start, end


# -- root types ----------------------------------------------------------------------------


@strawberry.type
class Query:
    @strawberry.field(description="A voice's latest window (viewer+).")
    async def voice(self, info: Info, id: str) -> VoiceState | None:
        _allow(info, Role.VIEWER)
        row = await _ctx(info).queries.latest_state(id)
        return VoiceState.of(row) if row else None

    @strawberry.field(description="Every voice's latest window, filtered (viewer+).")
    async def voices(self, info: Info, filter: VoiceFilter | None = None) -> list[VoiceState]:
        _allow(info, Role.VIEWER)
        rows = await _ctx(info).queries.latest_states()
        if filter and filter.voice_ids is not None:
            rows = [r for r in rows if r["voice_id"] in filter.voice_ids]
        if filter and filter.min_stress is not None:
            rows = [r for r in rows if r["stress_mean"] >= filter.min_stress]
        return [VoiceState.of(r) for r in rows]

    @strawberry.field(description="Patterns per window in a time range (analyst+).")
    async def polyphonic_patterns(
        self, info: Info, time_range: TimeRange | None = None, limit: int = 500
    ) -> list[PolyphonicPattern]:
        _allow(info, Role.ANALYST)
        start, end = _range(time_range)
        rows = await _ctx(info).queries.patterns(start, end, min(max(limit, 1), 10_000))
        return [PolyphonicPattern.of(r) for r in rows]

    @strawberry.field(
        description="The newest predictions whose horizon is within `horizon` windows "
        "(analyst+): STATE_CHANGE per voice, CONFLICT_ESCALATION per pair, "
        "PATTERN_EMERGENCE for the system."
    )
    async def system_predictions(self, info: Info, horizon: int = 3) -> list[SystemPrediction]:
        _allow(info, Role.ANALYST)
        found = await system_outlook(_ctx(info).queries)
        out: list[SystemPrediction] = []
        if horizon >= 1:
            out += [
                SystemPrediction(
                    type=PredictionType.STATE_CHANGE,
                    subject=p["voice_id"],
                    window_start=_at(p["window_start"]),
                    horizon_windows=1,
                    value=p["stress_pred"],
                    detail=JSON({m: p[f"{m}_pred"] for m in METRICS} | {"risk": p["risk"]}),
                    model_version=p["model_version"],
                )
                for p in found.states
            ]
        out += [
            SystemPrediction(
                type=PredictionType.CONFLICT_ESCALATION,
                subject=f"{c['source']}->{c['target']}",
                window_start=_at(c["window_start"]),
                horizon_windows=c["horizon_windows"],
                value=c["probability"],
                detail=JSON({}),
                model_version=c["model_version"],
            )
            for c in found.conflicts
            if c["horizon_windows"] <= horizon
        ]
        e = found.emergence
        if e is not None and horizon >= 1:
            out.append(
                SystemPrediction(
                    type=PredictionType.PATTERN_EMERGENCE,
                    subject="system",
                    window_start=_at(e["window_start"]),
                    horizon_windows=1,
                    value=e["probability"],
                    detail=JSON({"type": e["type"], "detected": e["detected"]}),
                    model_version=e["model_version"],
                )
            )
        return out

    @strawberry.field(description="Harmony, conflict and each pair over a time range (viewer+).")
    async def collective_dynamics(
        self, info: Info, time_range: TimeRange | None = None
    ) -> CollectiveDynamics:
        _allow(info, Role.VIEWER)
        start, end = _range(time_range)
        rows = await _ctx(info).queries.interaction_totals_between(start, end)
        matrix = build_matrix(rows)
        return CollectiveDynamics(
            start=_at(start),
            end=_at(end) if end is not None else datetime.now(UTC),
            voices=matrix.voices,
            harmony=matrix.harmony,
            conflict=matrix.conflict,
            interactions=[VoiceInteraction(**p) for p in matrix.pairs],
        )


async def _spend(
    info: Info, principal: Principal, route_class: RouteClass = RouteClass.WRITE
) -> None:
    connection = _connection(info)
    client = connection.client.host if connection.client else "unknown"
    try:
        await _ctx(info).gatekeeper.spend(principal, route_class, client)
    except RateLimitedError as exc:
        raise _refused(exc) from exc


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Change a voice's parameters, as REST does (operator+).")
    async def update_voice_parameters(
        self,
        info: Info,
        voice_id: str,
        parameters: ParametersInput,
        rationale: str,
        expected_duration: int | None = None,
        monitoring_enabled: bool = True,
    ) -> ParameterChangeResult:
        principal = _allow(info, Role.OPERATOR)
        await _spend(info, principal)
        values = {k: v for k, v in vars(parameters).items() if v is not None}
        try:
            body = ParameterChangeRequest.model_validate(
                {
                    "parameters": values,
                    "rationale": rationale,
                    "expected_duration": expected_duration,
                    "monitoring_enabled": monitoring_enabled,
                }
            )
            done = await actions.change_parameters(_ctx(info), _connection(info), voice_id, body)
        except (PydanticValidationError, DeltaOmegaError) as exc:
            raise _refused(exc) from exc
        return ParameterChangeResult(
            change_id=done.change_id,
            voice_id=done.voice_id,
            status=done.status,
            expires_at=done.expires_at,
        )

    @strawberry.mutation(description="Propose an orchestration, as REST does (operator+).")
    async def trigger_orchestration(
        self, info: Info, strategy: Strategy, input: OrchestrationInput
    ) -> OrchestrationResult:
        principal = _allow(info, Role.OPERATOR)
        await _spend(info, principal)
        targets = ("sensitivity", "activation_threshold", "influence_weight")
        try:
            body = OrchestrationRequest.model_validate(
                {
                    "target_voices": input.target_voices,
                    "duration": input.duration,
                    "rationale": input.rationale,
                    "parameters": {
                        k: getattr(input, k) for k in targets if getattr(input, k) is not None
                    },
                    "strategy_parameters": {
                        k: getattr(input, k)
                        for k in ("scale", "step")
                        if getattr(input, k) is not None
                    },
                }
            )
            done = await actions.propose_orchestration(
                _ctx(info), _connection(info), StrategyName(strategy.value), body
            )
        except (PydanticValidationError, DeltaOmegaError) as exc:
            raise _refused(exc) from exc
        return OrchestrationResult(orchestration_id=done.orchestration_id, status=done.status)

    @strawberry.mutation(
        description="Classify patterns and detect emergence over a range with the active "
        "model version, as POST /api/v1/patterns/analyze does (analyst+)."
    )
    async def request_pattern_analysis(self, info: Info, time_range: TimeRange) -> PatternAnalysis:
        principal = _allow(info, Role.ANALYST)
        await _spend(info, principal, RouteClass.MONITOR)
        start, end = _range(time_range)
        try:
            result = await analyse_range(_ctx(info), start, end if end is not None else _now_ms())
        except DeltaOmegaError as exc:
            raise _refused(exc) from exc
        return PatternAnalysis(
            model_version=result.model_version,
            windows=[PolyphonicPattern.of(w.pattern) for w in result.windows],
            pattern_counts=JSON(result.pattern_counts()),
            emergent_windows=sum(w.emergence["detected"] for w in result.windows),
        )


async def _follow(
    info: Info, topic: str, schema: str, keep: Any
) -> AsyncGenerator[FeedRecord, None]:
    """Records of ``topic`` from now on, from the process's shared tail."""
    principal = _allow(info, Role.VIEWER)
    ctx = _ctx(info)
    try:
        subscriber = await ctx.feeds.subscribe(
            topic,
            principal.subject,
            lambda r: r.schema == schema and keep(r.record),
            None,
            "cursor",
        )
    except DeltaOmegaError as exc:
        raise _refused(exc) from exc
    try:
        async for batch in subscriber.deliveries():
            for record, _ in batch:
                yield record
        if subscriber.dropped is not None:
            raise GraphQLError(subscriber.dropped, extensions={"code": "DROPPED"})
    finally:
        subscriber.close()


@strawberry.type
class Subscription:
    @strawberry.subscription(description="A voice's windows as they close (viewer+).")
    async def voice_state_changes(
        self, info: Info, voice_id: str | None = None
    ) -> AsyncGenerator[VoiceState, None]:
        topic = _ctx(info).topics.voice_states
        keep = lambda r: voice_id is None or r["voice_id"] == voice_id  # noqa: E731
        async for record in _follow(info, topic, VOICE_STATE, keep):
            yield VoiceState.of(record.record)

    @strawberry.subscription(description="Patterns as windows are classified (viewer+).")
    async def polyphonic_pattern_emergences(
        self, info: Info
    ) -> AsyncGenerator[PolyphonicPattern, None]:
        topic = _ctx(info).topics.patterns
        async for record in _follow(info, topic, PATTERN, lambda r: True):
            yield PolyphonicPattern.of(record.record)

    @strawberry.subscription(description="Alerts as they are raised (viewer+).")
    async def system_alerts(
        self, info: Info, severities: list[str] | None = None
    ) -> AsyncGenerator[SystemAlert, None]:
        topic = _ctx(info).topics.alerts
        wanted = {s.upper() for s in severities} if severities else None
        keep = lambda r: wanted is None or r["severity"] in wanted  # noqa: E731
        async for record in _follow(info, topic, ALERT, keep):
            r = record.record
            yield SystemAlert(
                alert_id=r["alert_id"],
                severity=r["severity"],
                rule=r["rule"],
                subject=r["subject"],
                message=r["message"],
                value=r["value"],
                threshold=r["threshold"],
                recommended_actions=list(r["recommended_actions"]),
                window_start=_at(r["window_start"]),
            )

    @strawberry.subscription(description="Next-window predictions as they are made (viewer+).")
    async def prediction_updates(
        self, info: Info, voice_id: str | None = None
    ) -> AsyncGenerator[VoicePrediction, None]:
        topic = _ctx(info).topics.predictions
        keep = lambda r: voice_id is None or r["voice_id"] == voice_id  # noqa: E731
        async for record in _follow(info, topic, PREDICTION, keep):
            r = record.record
            yield VoicePrediction(
                voice_id=r["voice_id"],
                window_start=_at(r["window_start"]),
                target_window_start=_at(r["target_window_start"]),
                predicted=JSON(
                    {m: {s: r[f"{m}_{s}"] for s in ("pred", "std", "low", "high")} for m in METRICS}
                ),
                risk=r["risk"],
                model_version=r["model_version"],
            )


def _unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


schema = strawberry.Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        # an error that is not one of ours says nothing of the server's insides
        lambda: MaskErrors(should_mask_error=_unexpected),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=2000),
        lambda: MaxAliasesLimiter(max_alias_count=15),
    ],
)


async def _context(request: HTTPConnection) -> dict[str, Any]:
    ctx: ApiContext = request.app.state.context

    async def load(voice_ids: list[str]) -> list[list[dict[str, Any]]]:
        found = await ctx.queries.parameter_changes_of(voice_ids, actions.FOLD_LIMIT)
        return [found.get(v, []) for v in voice_ids]

    async def latest(voice_ids: list[str]) -> list[dict[str, Any] | None]:
        rows = {r["voice_id"]: r for r in await ctx.queries.latest_states()}
        return [rows.get(v) for v in voice_ids]

    async def interactions(voice_ids: list[str]) -> list[list[dict[str, Any]]]:
        since = int(datetime.now(UTC).timestamp() * 1000) - _DEFAULT_RANGE_MS
        pairs = build_matrix(await ctx.queries.interaction_totals_between(since, None)).pairs
        return [[p for p in pairs if v in (p["source"], p["target"])] for v in voice_ids]

    return {
        "parameters": DataLoader(load_fn=load),
        "latest": DataLoader(load_fn=latest),
        "interactions": DataLoader(load_fn=interactions),
    }


def graphql_router() -> GraphQLRouter[Any, Any]:
    """``/graphql``: POST and GET queries, graphql-transport-ws subscriptions."""
    router: GraphQLRouter[Any, Any] = GraphQLRouter(
        schema,
        path="/graphql",
        context_getter=_context,
        include_in_schema=False,
        graphql_ide=None,  # its page loads scripts from a CDN; the console has its own
    )
    return router
