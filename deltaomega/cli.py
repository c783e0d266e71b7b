"""The ``deltaomega`` command."""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from deltaomega import __version__
from deltaomega.config import Settings
from deltaomega.errors import DeltaOmegaError
from deltaomega.logs import configure_logging
from deltaomega.security.roles import Role, Tier

log = logging.getLogger("deltaomega")


def _cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega import localkafka

    if args.action == "resolve":
        print(f"kafka {settings.kafka_version} jars in {localkafka.resolve(settings)}")
        return 0
    if args.action == "start":
        print(localkafka.start(settings).describe())
        return 0
    if args.action == "stop":
        print(localkafka.stop(settings).describe())
        return 0
    status = localkafka.status(settings)
    print(status.describe())
    return 0 if status.running else 3


def _cmd_simulate(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.producer import SimulationConfig, run_simulation
    from deltaomega.topics import ensure_topics

    ensure_topics(settings)
    config = SimulationConfig(
        voices=args.voices,
        rate=args.rate,
        interaction_rate=args.interaction_rate
        if args.interaction_rate is not None
        else args.rate / 5,
        seed=args.seed,
        episodes=not args.no_episodes,
    )
    labels = args.labels.open("w") if args.labels else None
    summary = run_simulation(
        settings,
        config,
        args.duration,
        realtime=not args.fast,
        speed=args.speed,
        batch_size=args.batch_size,
        start_ms=args.start_ms,
        labels=labels,
        control=args.control,
    )
    if labels is not None:
        labels.close()
        print(f"wrote {summary.episodes} labelled episodes to {args.labels}")
    print(
        f"sent {summary.voice_events} voice events and {summary.interactions} interactions "
        f"({summary.delivered} records delivered, {summary.failed} failed)"
    )
    return 0 if summary.failed == 0 else 1


def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.service import run_service

    run_service(
        settings,
        worker=args.command in ("run", "worker"),
        api=args.command in ("run", "api"),
        simulate=getattr(args, "simulate", False),
        simulate_voices=getattr(args, "voices", 8),
        simulate_rate=getattr(args, "rate", 200.0),
        demo_keys=getattr(args, "demo_keys", False),
        control=args.command in ("run", "control"),
    )
    return 0


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.sinks.clickhouse import connect
    from deltaomega.sinks.migrate import apply_migrations
    from deltaomega.sinks.retention import apply_ttls

    database = settings.clickhouse_database

    def migrate(client: Any) -> list[str]:
        applied = apply_migrations(client, database)
        apply_ttls(client, database, settings)
        return applied

    applied = connect(settings).call(migrate)
    print(f"applied {len(applied)} migration(s) to {settings.clickhouse_database}: {applied}")
    return 0


def _cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    try:
        from deltaomega.models.train import TrainingConfig, train_all
    except ImportError as exc:  # torch lives in the `train` extra
        raise DeltaOmegaError(
            f"training needs the train extra (pip install 'deltaomega[train]'): {exc}"
        ) from exc
    from deltaomega.models.registry import ModelRegistry
    from deltaomega.models.report import metrics_table

    registry = ModelRegistry(settings.resolved_models_dir)
    out = args.out or registry.versions_dir
    version, manifests = train_all(TrainingConfig(seed=args.seed), out)
    print(metrics_table(manifests))
    print(f"wrote model version {version} to {out / version}")
    if args.activate:
        if out != registry.versions_dir:
            registry.install(out / version)
        registry.activate(version)
        print(f"activated {version}")
    return 0


def _cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.models.registry import ModelRegistry

    registry = ModelRegistry(settings.resolved_models_dir)
    registry.ensure_installed()
    if args.action == "list":
        active = registry.active()
        for version in registry.versions():
            marker = "*" if version == active else " "
            try:
                loaded = registry.load(version)
            except DeltaOmegaError as exc:
                print(f"{marker} {version}  UNUSABLE: {exc}")
                continue
            m = loaded.metrics()
            print(
                f"{marker} {version}  predictor MAE {m['voice_state_predictor'].get('mae', 0):.4f}"
                f"  conflict AUROC {m['conflict_predictor'].get('auroc', 0):.3f}"
                f"  emergence AUROC {m['emergence_detector'].get('auroc', 0):.3f}"
                f"  pattern accuracy {m['pattern_classifier'].get('accuracy', 0):.3f}"
            )
    elif args.action == "activate":
        if not args.version:
            raise DeltaOmegaError("models activate needs a VERSION (see `deltaomega models list`)")
        registry.activate(args.version)
        print(f"activated {args.version}")
    else:
        print(f"rolled back to {registry.rollback()}")
    return 0


def _positive_int(text: str) -> int:
    value = int(_number(int, text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(_number(int, text))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(_number(float, text))
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(_number(float, text))
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, got {text}")
    return value


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration_seconds(text: str) -> int:
    """``90s``, ``15m``, ``1h``, ``7d``: at least a second, at most 366 days."""
    match = re.fullmatch(r"([1-9][0-9]{0,6})([smhd])", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"must be a duration such as 90s, 15m, 1h or 7d, got {text!r}"
        )
    seconds = int(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds > 366 * 86400:
        raise argparse.ArgumentTypeError(f"must be at most 366d, got {text}")
    return seconds


def _subject(text: str) -> str:
    """The pipeline's id rule (1–256 characters, not blank, no control characters)."""
    from deltaomega.schemas.validation import id_problem

    problem = id_problem(text)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def _cmd_auth_token(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.security.tokens import issue_token

    print(issue_token(settings, args.sub, Role.parse(args.role), args.ttl, Tier.parse(args.tier)))
    return 0


def _cmd_auth_keys(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.security.audit import AuditTrail
    from deltaomega.security.keys import KeyLedger
    from deltaomega.topics import ensure_topics

    ensure_topics(settings)
    ledger = KeyLedger(settings)
    audit = AuditTrail(settings)
    if args.auth_command == "create-key":
        record, text = ledger.create(args.name, Role.parse(args.role), Tier.parse(args.tier))
        audit.record_cli("api_key.create", record.key_id, after=record.public())
        print(text)
        print(
            f"created key {record.key_id} ({record.name}, {record.role.label}, "
            f"{record.tier.value}); it is shown this once: store it now",
            file=sys.stderr,
        )
    elif args.auth_command == "revoke-key":
        record = ledger.revoke(args.key_id)
        audit.record_cli("api_key.revoke", record.key_id, after=record.public())
        print(f"revoked key {record.key_id} ({record.name}) at {_when(record.revoked_ms)}")
    else:
        keys = ledger.list()
        print(
            f"{'KEY ID':16}  {'NAME':20}  {'ROLE':8}  {'TIER':8}  {'CREATED':20}  "
            f"{'LAST USED':20}  REVOKED"
        )
        for k in keys:
            print(
                f"{k.key_id:16}  {k.name[:20]:20}  {k.role.label:8}  {k.tier.value:8}  "
                f"{_when(k.created_ms):20}  {_when(k.last_used_ms):20}  {_when(k.revoked_ms)}"
            )
    return 0


def _cmd_auth_account(args: argparse.Namespace, settings: Settings) -> int:
    """``create-account`` (the password from standard input, or asked for), ``disable-account``
    and ``list-accounts``: people who sign in to the console."""
    import getpass

    from deltaomega.security.audit import AuditTrail
    from deltaomega.security.keys import KeyFollower
    from deltaomega.security.people import People
    from deltaomega.topics import ensure_topics

    ensure_topics(settings)
    follower = KeyFollower(settings)
    follower.start()
    try:
        if not follower.wait_loaded(30):
            return _fail("the accounts could not be read from Kafka within 30 s")
        people = People(settings, follower)
        audit = AuditTrail(settings)
        if args.auth_command == "create-account":
            if sys.stdin.isatty():
                password = getpass.getpass(f"password for {args.name}: ")
            else:
                password = sys.stdin.readline().rstrip("\n")
            try:
                account = people.create_account(args.name, password, Role.parse(args.role))
            except ValueError as exc:
                return _fail(str(exc))
            audit.record_cli("account.create", args.name, after=account)
            print(f"created account {args.name} ({args.role})")
        elif args.auth_command == "disable-account":
            account = people.disable(args.name)
            audit.record_cli("account.disable", args.name, after=account)
            print(f"disabled account {args.name}; its sign-ins are ended")
        else:
            print(f"{'USERNAME':24}  {'ROLE':8}  {'CREATED':20}  DISABLED")
            for a in people.accounts():
                print(
                    f"{a['username']:24}  {a['role']:8}  {_when(a['created_ms']):20}  "
                    f"{_when(a['disabled_ms'])}"
                )
    finally:
        follower.stop()
    return 0


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _cmd_auth_routes(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.api.auth.access import routes_table
    from deltaomega.service import build_app

    # the table needs the routes only; no warning about the token secret
    logging.getLogger("deltaomega.security").setLevel(logging.ERROR)
    print(routes_table(build_app(settings, worker=False)))
    return 0


def _cmd_policies(args: argparse.Namespace, settings: Settings) -> int:
    from deltaomega.control.policies import load_policies

    path = args.file or settings.policies_file
    if path is None:
        print("no policies file (set DELTAOMEGA_POLICIES_FILE or pass --file)")
        return 0
    policies = load_policies(path)
    print(f"{path}: {len(policies)} policies")
    for p in policies:
        when = f"{p.when.rule} >= {p.when.severity} on {p.when.subject}"
        plan = p.propose
        mode = "automatic" if p.automatic else "needs approval"
        print(
            f"  {p.name}: {when} -> {plan.strategy.value} on {plan.targets} for "
            f"{plan.duration_minutes} min ({mode}; quiet {p.quiet_minutes:g} min)"
        )
    return 0


def _cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    """``alerts check`` lists the routing; ``alerts test`` sends one notification, once (no
    retries: the answer is what the channel said)."""
    import asyncio
    import time

    from deltaomega.alerting.notifications import sample_notification
    from deltaomega.alerting.routing import load_routing
    from deltaomega.alerting.senders import ChannelError, HttpClient, build_senders
    from deltaomega.alerting.web_push import follow_subscriptions

    path = args.file or settings.alert_routing_file
    routing = load_routing(path)
    if args.alerts_command == "check":
        print(f"{path or '(no routing file)'}: {len(routing.channels)} channels")
        for name, channel in routing.channels.items():
            print(f"  {name}: {channel.type}")
        for severity in ("CRITICAL", "WARNING", "INFO"):
            channels = ", ".join(routing.channels_for(severity)) or "console only"
            print(f"  {severity}: {channels}")
            for i, level in enumerate(routing.escalation(severity), start=1):
                after, names = level.after_minutes, ", ".join(level.channels)
                print(f"    escalation {i} after {after:g} min: {names}")
        return 0
    if args.channel not in routing.channels:
        known = ", ".join(sorted(routing.channels)) or "none"
        return _fail(f"no channel {args.channel!r} in {path or 'the routing'} (channels: {known})")

    one = {args.channel: routing.channels[args.channel]}
    subscriptions = follow_subscriptions(settings, one)
    if subscriptions is not None and not subscriptions.follower.wait_loaded(15):
        subscriptions.follower.stop()
        return _fail(f"{args.channel}: the push subscriptions could not be read from Kafka")

    async def send() -> int | None:
        client = HttpClient()
        try:
            sender = build_senders(one, routing.console_url, client, settings, subscriptions)
            notice = sample_notification(args.channel, int(time.time() * 1000))
            return await sender[args.channel].send(notice)
        finally:
            await client.close()

    try:
        status = asyncio.run(send())
    except ChannelError as exc:
        return _fail(f"{args.channel}: not delivered: {exc}")
    finally:
        if subscriptions is not None:
            subscriptions.follower.stop()
    if status is None:
        print(f"{args.channel}: nobody to deliver to (no device subscribed)")
        return 0
    print(f"{args.channel}: delivered (status {status})")
    return 0


def _key_id(text: str) -> str:
    if re.fullmatch(r"[0-9a-f]{16}", text) is None:
        raise argparse.ArgumentTypeError(
            f"must be a key id (16 hex digits, as list-keys shows), got {text!r}"
        )
    return text


def _number(kind: type[int] | type[float], text: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        name = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {name}, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deltaomega", description=__doc__)
    parser.add_argument("--version", action="version", version=f"deltaomega {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the local single-node Kafka (resolved by Maven)")
    kafka.add_argument("action", choices=["resolve", "start", "stop", "status"])
    kafka.set_defaults(func=_cmd_kafka)

    sim = sub.add_parser("simulate", help="publish simulated voice telemetry")
    sim.add_argument("--voices", type=_positive_int, default=8)
    sim.add_argument("--rate", type=_positive_float, default=200.0, help="voice events per second")
    sim.add_argument("--interaction-rate", type=_non_negative_float, default=None)
    sim.add_argument("--duration", type=_positive_float, default=60.0, help="simulated seconds")
    sim.add_argument("--seed", type=_non_negative_int, default=0)
    sim.add_argument(
        "--batch-size", type=_positive_int, default=1, help=">1 packs VoiceEventBatch records"
    )
    sim.add_argument("--fast", action="store_true", help="do not pace to the wall clock")
    sim.add_argument(
        "--speed",
        type=_positive_float,
        default=1.0,
        help="simulated seconds per wall-clock second when paced (fast-forward)",
    )
    sim.add_argument(
        "--start-ms", type=_non_negative_int, default=None, help="event time of the first tick"
    )
    sim.add_argument(
        "--labels", type=Path, default=None, help="write the episodes (JSON Lines) to this file"
    )
    sim.add_argument("--no-episodes", action="store_true", help="base dynamics only, no regimes")
    sim.add_argument(
        "--control",
        action="store_true",
        help="follow voice.parameters: operators' changes bend the simulated dynamics",
    )
    sim.set_defaults(func=_cmd_simulate)

    run = sub.add_parser("run", help="worker + API in one process (the embedded default)")
    run.add_argument("--simulate", action="store_true", help="also run the simulator")
    run.add_argument("--voices", type=_positive_int, default=8)
    run.add_argument("--rate", type=_positive_float, default=200.0)
    run.add_argument(
        "--demo-keys",
        action="store_true",
        help="create and print an admin and a viewer API key for this local run",
    )
    run.set_defaults(func=_cmd_run)
    for name, text in (
        ("worker", "stream worker only"),
        ("api", "API only"),
        ("control", "control plane only (Faust: parameter expiry)"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=_cmd_run)

    train = sub.add_parser("train", help="train, evaluate and export the four models (torch)")
    train.add_argument("--seed", type=_non_negative_int, default=7)
    train.add_argument("--out", type=Path, default=None, help="default: the model registry")
    train.add_argument("--activate", action="store_true", help="make the new version active")
    train.set_defaults(func=_cmd_train)

    models = sub.add_parser("models", help="the model registry: list, activate, rollback")
    models.add_argument("action", choices=["list", "activate", "rollback"])
    models.add_argument("version", nargs="?", default=None)
    models.set_defaults(func=_cmd_models)

    migrate = sub.add_parser("migrate", help="apply ClickHouse migrations")
    migrate.set_defaults(func=_cmd_migrate)

    auth = sub.add_parser("auth", help="identities for the API")
    auth_commands = auth.add_subparsers(dest="auth_command", required=True)
    token = auth_commands.add_parser(
        "token", help="print a token of this API's own (HS256, DELTAOMEGA_AUTH_SECRET)"
    )
    token.add_argument("--sub", required=True, type=_subject, help="who the token is for")
    token.add_argument("--role", required=True, choices=[r.label for r in Role])
    token.add_argument("--tier", choices=[t.value for t in Tier], default=Tier.STANDARD.value)
    token.add_argument("--ttl", type=_duration_seconds, default=3600, help="e.g. 15m, 1h, 7d")
    token.set_defaults(func=_cmd_auth_token)
    create = auth_commands.add_parser(
        "create-key", help="create an API key; the key is printed once, only its hash is kept"
    )
    create.add_argument("--name", required=True, type=_subject, help="what the key is for")
    create.add_argument("--role", required=True, choices=[r.label for r in Role])
    create.add_argument("--tier", choices=[t.value for t in Tier], default=Tier.STANDARD.value)
    create.set_defaults(func=_cmd_auth_keys)
    listing = auth_commands.add_parser("list-keys", help="every API key (never the key itself)")
    listing.set_defaults(func=_cmd_auth_keys)
    revoke = auth_commands.add_parser(
        "revoke-key", help="revoke an API key (every API process refuses it within seconds)"
    )
    revoke.add_argument("key_id", type=_key_id)
    revoke.set_defaults(func=_cmd_auth_keys)
    account = auth_commands.add_parser(
        "create-account",
        help="create a person's console account (password from standard input, or asked for)",
    )
    account.add_argument("--name", required=True, help="the username")
    account.add_argument("--role", required=True, choices=[r.label for r in Role])
    account.set_defaults(func=_cmd_auth_account)
    disable = auth_commands.add_parser(
        "disable-account", help="disable a console account and end its sign-ins"
    )
    disable.add_argument("--name", required=True)
    disable.set_defaults(func=_cmd_auth_account)
    people = auth_commands.add_parser("list-accounts", help="people's console accounts")
    people.set_defaults(func=_cmd_auth_account)
    routes = auth_commands.add_parser("routes", help="print the route x role table (Markdown)")
    routes.set_defaults(func=_cmd_auth_routes)

    alerts = sub.add_parser("alerts", help="alert routing: check it, send a test notification")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    check = alert_commands.add_parser("check", help="check and list the alert routing file")
    test = alert_commands.add_parser("test", help="send a test notification to one channel")
    test.add_argument("--channel", required=True, help="a channel of the routing file")
    for command in (check, test):
        command.add_argument("--file", type=Path, help="default: DELTAOMEGA_ALERT_ROUTING_FILE")
        command.set_defaults(func=_cmd_alerts)

    policies = sub.add_parser("policies", help="check and list the policies file")
    policies.add_argument("--file", type=Path, help="default: DELTAOMEGA_POLICIES_FILE")
    policies.set_defaults(func=_cmd_policies)
    return parser


#: Commands that run until stopped; the others do one thing and report how it went.
_SERVICES = ("run", "worker", "api", "control")


def _fail(message: str) -> int:
    """A failed command: one line on stderr, exit code 1."""
    line = " ".join(message.split())
    if len(line) > 500:
        line = line[:497] + "..."
    print(f"deltaomega: error: {line}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except PydanticValidationError as exc:
        first = exc.errors()[0]
        field = "DELTAOMEGA_" + "_".join(str(p) for p in first["loc"]).upper()
        return _fail(f"{field}: {first['msg']}")
    configure_logging(settings.log_level, settings.log_json)
    if args.command not in _SERVICES:
        # A one-shot command reports a service it cannot reach in its own error line.
        logging.getLogger("deltaomega.outages").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args, settings))
    except DeltaOmegaError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        return _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
    except Exception as exc:  # noqa: BLE001 - one line, not a traceback; details at DEBUG
        log.debug("unexpected error", exc_info=True)
        return _fail(
            f"unexpected {type(exc).__name__}: {exc} (set DELTAOMEGA_LOG_LEVEL=DEBUG for details)"
        )


if __name__ == "__main__":
    sys.exit(main())
