"""Arguments -> calls, and the one error boundary: a line on stderr and an exit status.

No traceback reaches an admin: every error ends as ``error: <what to fix>``
on stderr, exit 2 for configuration and usage problems (the database URL and
its driver included), 1 for run-time failures. ``--log-level debug`` logs the
traceback of an unexpected one.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NoReturn

import click
from click.core import ParameterSource

from aggregator.config import Config, load_config, resolve_config_path
from aggregator.config.cache import load_config_cached
from aggregator.errors import ConfigError, ConfigProblem, StoreError

log = logging.getLogger("aggregator.cli")

CONFIG_HELP = (
    "config file (else $AGGREGATOR_CONFIG, /etc/aggregator/aggregator.toml, "
    "./config/aggregator.toml)"
)
config_option = click.option(
    "-c", "--config", "config_path", type=click.Path(), metavar="PATH", help=CONFIG_HELP
)
LOG_LEVELS = ("debug", "info", "warning", "error")

#: exit statuses of each command, for its --help and the man page
EXIT_STATUSES: dict[str, tuple[tuple[int, str], ...]] = {
    "run": ((0, "stopped cleanly (SIGTERM/SIGINT)"), (1, "a run-time failure")),
    "poll": ((0, "every source fine"), (1, "one or more sources failed (each reported)")),
    "build": ((0, "every output written"), (1, "an output or the database failed")),
    "serve": ((0, "stopped cleanly"), (1, "cannot listen")),
    "check-config": ((0, "valid"),),
    "sources": ((0, "table printed"), (1, "the database failed or its schema is not current")),
    "import-opml": ((0, "sources added, or nothing to add"), (1, "a run-time failure")),
    "export-opml": ((0, "OPML printed"),),
    "refetch": ((0, "every page read again"), (1, "one or more pages failed")),
    "rules test": ((0, "report printed; nothing changed"),),
    "explain": ((0, "the entry's versions printed"), (1, "no such entry, or no database")),
}
DEFAULT_EXIT = ((0, "done"), (1, "a run-time failure"))
CONFIG_EXIT = (2, "a configuration or usage error (check-config lists every problem)")
ENVIRONMENT = (
    ("AGGREGATOR_CONFIG", "the config file when -c is not given"),
    ("AGGREGATOR_LOG_LEVEL", "the log level when --log-level is not given"),
    ("JOURNAL_STREAM", "set by systemd: log lines carry journald priorities, no timestamps"),
)


def error(message: object) -> None:
    click.echo(f"error: {message}", err=True)


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line (a line per config problem); its exit status."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            error(problem)
        return 2
    if isinstance(exc, StoreError):
        error(exc)
        return 1
    if isinstance(exc, OSError) and exc.strerror:
        error(f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror)
        return 1
    log.debug("unexpected error", exc_info=exc)
    error(f"{type(exc).__name__}: {exc} (--log-level debug logs where it happened)")
    return 1


class Aggregator(click.Group):
    """The command group; its ``main`` is the error boundary of every command."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> NoReturn:
        complete_commands(self)
        extra["standalone_mode"] = False
        try:
            status = super().main(args, prog_name or "aggregator", **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            sys.exit(2)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "aggregator"
            error(f"{exc.format_message()} (see {where} --help)")
            sys.exit(2)
        except click.ClickException as exc:
            error(exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            error("interrupted")
            sys.exit(130)
        except Exception as exc:  # the boundary: anything else is one line too
            sys.exit(report(exc))
        sys.exit(status if isinstance(status, int) else 0)


def _set_log_level(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is None:
        return
    if value.lower() not in LOG_LEVELS:
        source = ctx.get_parameter_source(param.name or "")
        where = "AGGREGATOR_LOG_LEVEL" if source is ParameterSource.ENVIRONMENT else "--log-level"
        raise click.BadParameter(
            f"{value!r} is not a log level; use {', '.join(LOG_LEVELS)}", param_hint=where
        )
    from aggregator.logs import set_level

    set_level(value)


def _log_level_option() -> click.Option:
    return click.Option(
        ["--log-level"],
        metavar="LEVEL",
        envvar="AGGREGATOR_LOG_LEVEL",
        show_envvar=True,
        expose_value=False,
        is_eager=True,
        callback=_set_log_level,
        help="the least severe messages logged: debug, info (the default), warning or error",
    )


def exit_statuses(name: str) -> tuple[tuple[int, str], ...]:
    return (*EXIT_STATUSES.get(name, DEFAULT_EXIT), CONFIG_EXIT)


def complete_commands(group: click.Group, prefix: str = "") -> None:
    """Every command (also one added later) gets --log-level, and exit statuses and
    environment in its --help, so each help page stands alone."""
    for short, command in group.commands.items():
        name = f"{prefix}{short}"
        if isinstance(command, click.Group):
            complete_commands(command, f"{name} ")
        if not any(p.name == "log_level" for p in command.params):
            command.params.append(_log_level_option())
        if command.epilog is None:
            lines = ["\b", "Exit status:"]
            lines += [f"  {code}  {what}" for code, what in exit_statuses(name)]
            lines += ["", "\b", "Environment:"]
            lines += [f"  {var:<21} {what}" for var, what in ENVIRONMENT]
            command.epilog = "\n".join(lines)


def _print_versions(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from aggregator.versions import versions_text

    click.echo(versions_text())
    ctx.exit(0)


@contextmanager
def writing_outputs() -> Iterator[None]:
    """A file that cannot be written: name it and the settings that lead there (exit 1)."""
    try:
        yield
    except OSError as exc:
        if not exc.filename:
            raise
        raise click.ClickException(
            f"cannot write {exc.filename}: {exc.strerror} "
            "(check output_dir, and [posts] dir, in the config)"
        ) from exc


def _load(config_path: str | None) -> Config:
    """The config, with its database URL checked (a ConfigError otherwise: exit 2).

    From the cache of validated configs when no file it was read from has changed
    (config/cache.py); check-config and the daemon's reload always validate.
    """
    config = load_config_cached(resolve_config_path(config_path))
    problems = database_problems(config)
    if problems:
        raise ConfigError(problems)
    from aggregator.logs import set_format

    set_format(config.aggregator.log_format)
    return config


def database_problems(config: Config) -> list[ConfigProblem]:
    """A database URL that can never work (unreadable, unknown kind, driver missing)."""
    from aggregator.config.keylines import KeyLines
    from aggregator.store.engine import url_problem

    problem = url_problem(config.aggregator.database)
    if problem is None:
        return []
    line = KeyLines(config.path).find("aggregator.database")
    return [ConfigProblem(str(config.path), line, "aggregator.database", problem)]


@click.group(cls=Aggregator, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_versions,
    help="print the versions of aggregator, Python and the key libraries, and exit",
)
def main() -> None:
    """Feed aggregator: polls sources, merges items by infoCode, writes Atom feeds.

    Every command takes -c CONFIG and --log-level; `aggregator COMMAND --help`
    tells each one's options, exit statuses and environment.
    """
    from aggregator.logs import setup_logging

    setup_logging()


@main.command()
@config_option
def run(config_path: str | None) -> None:
    """The daemon: poll every source at its interval, write feeds, serve HTTP."""
    with settling():
        from aggregator.daemon import run_daemon

        config = _load(config_path)
    sys.exit(run_daemon(config.path, config))


@main.command()
@config_option
@click.option(
    "--source", "source_ids", multiple=True, metavar="ID", help="poll only this source (repeatable)"
)
def poll(config_path: str | None, source_ids: tuple[str, ...]) -> None:
    """Poll every (or the named) source once, store, write the feeds."""
    with settling():
        from aggregator import metrics
        from aggregator.poll import poll_once

        metrics.disable()  # one-shot: nothing scrapes it
        config = _load(config_path)
    unknown = [s for s in source_ids if config.source(s) is None]
    if unknown:
        raise click.UsageError(f"unknown source id: {', '.join(unknown)}")
    with writing_outputs():
        results = poll_once(config, source_ids or None, progress=sys.stderr.isatty())
    for result in results:
        click.echo(format_result(result))
    sys.exit(1 if any(r.status == "failed" for r in results) else 0)


@main.command()
@config_option
@click.option("--source", "source_id", required=True, metavar="ID", help="the fulltext source")
def refetch(config_path: str | None, source_id: str) -> None:
    """Fetch and extract again the full text of every stored item of one source."""
    from aggregator import metrics
    from aggregator.poll import refetch_once

    metrics.disable()  # one-shot: nothing scrapes it

    config = _load(config_path)
    source = config.source(source_id)
    if source is None:
        raise click.UsageError(f"unknown source id: {source_id}")
    if source.fulltext is None:
        raise click.UsageError(f'source {source_id} has no fulltext rule (fulltext = "auto")')
    try:
        done = refetch_once(config, source)
    except StoreError as exc:
        click.echo(f"database error: {exc}", err=True)
        sys.exit(1)
    for warning in done.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(
        f"{done.source_id} refetched {done.extracted} of {done.items} pages, "
        f"{done.updated} entries changed, {done.failed} failed"
    )
    sys.exit(1 if done.failed else 0)


@contextmanager
def settling() -> Iterator[None]:
    """Load what lives to the end (modules, config) with the collector off, then freeze it.

    ``gc.freeze()`` moves every object made so far out of the collected
    generations, so the collections a poll triggers stop walking the few
    hundred thousand objects SQLAlchemy, pydantic and friends made at import
    (0.4 s of a 2.5 s all-304 poll of 1,000 sources, issue 8). With the
    collector off until then, importing them triggers no collections either
    (issue 19: 3 % of the instructions of an all-304 poll of 100 sources);
    the little cyclic garbage an import leaves is frozen with the rest.
    """
    import gc

    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def format_result(result: object) -> str:
    from aggregator.model import PollStatus, UpdateResult

    assert isinstance(result, UpdateResult)
    if result.status == PollStatus.FAILED:
        return f"{result.source_id} failed {result.error_kind}: {result.error_message}"
    if result.status == PollStatus.UNCHANGED:
        return f"{result.source_id} unchanged"
    text = (
        f"{result.source_id} ok new={result.new} updated={result.updated} "
        f"unchanged={result.unchanged} skipped={result.skipped} dropped={result.dropped}"
    )
    if result.warnings:
        text += f" warnings={len(result.warnings)}"
    return text


@main.command()
@config_option
def build(config_path: str | None) -> None:
    """Rewrite every output from the store; polls nothing."""
    with settling():
        from aggregator import metrics
        from aggregator.outputs import write_outputs
        from aggregator.poll import open_store, reapply_rules

        metrics.disable()  # one-shot: nothing scrapes it
        config = _load(config_path)
    store = open_store(config)
    try:
        reapply_rules(config, store)
        with writing_outputs():
            written = write_outputs(config, store, None)
    finally:
        store.close()
    click.echo(f"wrote {written.written} files, {written.unchanged} unchanged")
    if written.failed:
        for failure in written.failed:
            click.echo(f"not written: {failure}", err=True)
        sys.exit(1)


@main.command()
@config_option
def serve(config_path: str | None) -> None:
    """HTTP only, no polling."""
    from aggregator.serve import serve_forever

    config = _load(config_path)
    sys.exit(serve_forever(config))


@main.command("check-config")
@config_option
@click.option(
    "--print",
    "print_config",
    is_flag=True,
    help="print the effective config as TOML (defaults filled in, includes merged in)",
)
def check_config(config_path: str | None, print_config: bool) -> None:
    """Validate the config and every included file."""
    try:
        path = resolve_config_path(config_path)
        config = load_config(path)
        problems = database_problems(config)
    except ConfigError as exc:
        problems = exc.problems
    if problems:
        for problem in problems:
            click.echo(str(problem))
        click.echo(f"{len(problems)} problem(s) found", err=True)
        sys.exit(2)
    summary = f"{path}: ok ({len(config.sources)} sources, {len(config.categories)} categories)"
    if print_config:
        from aggregator.config.dump import effective_toml

        click.echo(effective_toml(config), nl=False)
    click.echo(summary, err=print_config)  # stdout stays pure TOML under --print


@main.command()
@config_option
def sources(config_path: str | None) -> None:
    """A table of sources and their health."""
    from aggregator.status import print_sources_table

    config = _load(config_path)
    print_sources_table(config)


@main.command()
@config_option
@click.argument("id_or_link")
def explain(config_path: str | None, id_or_link: str) -> None:
    """The versions behind one entry, their sources, and the rule that merged them."""
    from aggregator.canonical import tracking
    from aggregator.explain import explanation
    from aggregator.store import Store

    config = _load(config_path)
    store = Store.open_readonly(config.aggregator.database)
    try:
        found = store.provenance(id_or_link, tracking(config.dedupe.tracking_params))
    finally:
        store.close()
    if found is None:
        error(f"no entry has the id, key or link {id_or_link!r}")
        sys.exit(1)
    for line in explanation(found):
        click.echo(line)


@main.group("rules")
def rules_group() -> None:
    """The [[rules]] of the config, tried on the stored items."""


@rules_group.command("test")
@config_option
@click.option("--rule", "rule_number", type=int, metavar="N", help="only rule N (1-based)")
@click.option("--source", "source_id", metavar="ID", help="only the items this source carries")
def rules_test(config_path: str | None, rule_number: int | None, source_id: str | None) -> None:
    """What each rule would do to the stored items (counts, examples); changes nothing."""
    from aggregator.rules_report import print_rules_report

    config = _load(config_path)
    if rule_number is not None and not 1 <= rule_number <= len(config.rules):
        raise click.BadParameter(
            f"there are {len(config.rules)} rules (numbered from 1 in config order)",
            param_hint="--rule",
        )
    if source_id is not None and config.source(source_id) is None:
        raise click.BadParameter(f"unknown source id {source_id!r}", param_hint="--source")
    try:
        print_rules_report(config, rule=rule_number, source=source_id)
    except StoreError as exc:
        click.echo(f"database error: {exc}", err=True)
        sys.exit(1)


@main.command("import-opml")
@click.argument("opml_file", type=click.Path(exists=True, dir_okay=False))
@config_option
@click.option("--category", metavar="ID", help="file every feed here (else by its OPML folder)")
@click.option(
    "--output",
    default="sources.d/imported.toml",
    show_default=True,
    help="included file to add the sources to (relative to the config's folder)",
)
def import_opml(opml_file: str, config_path: str | None, category: str | None, output: str) -> None:
    """Add the feeds of an OPML file as sources, in an included file."""
    from pathlib import Path

    from aggregator.opml_io import OpmlError, import_into, plan_import, read_opml

    if category is not None and not re.fullmatch(r"[a-z0-9_-]{1,100}", category):
        raise click.BadParameter("must match [a-z0-9_-]+", param_hint="--category")
    config = _load(config_path)
    path = config.path
    try:
        feeds = read_opml(Path(opml_file).read_bytes())
    except (OSError, OpmlError) as exc:
        error(f"{opml_file}: {exc}")
        sys.exit(2)
    plan = plan_import(feeds, config, category)
    for url, reason in plan.skipped:
        click.echo(f"skipped {url}: {reason}")
    if not plan.sources:
        click.echo(f"nothing to add ({len(feeds)} feeds in {opml_file})")
        return
    target = Path(output) if Path(output).is_absolute() else path.absolute().parent / output
    try:
        import_into(path, target, plan, Path(opml_file).name)
    except ConfigError as exc:
        for problem in exc.problems:
            error(problem)
        error(f"{target} left as it was")
        sys.exit(2)
    for cid, title in plan.categories:
        click.echo(f"declared category {cid} ({title})")
    for s in plan.sources:
        click.echo(f"added {s.id} {s.url} categories={','.join(s.categories)}")
    click.echo(
        f"{len(plan.sources)} sources added to {target}; "
        "reload the daemon to poll them (systemctl reload aggregator)"
    )


@main.command("export-opml")
@config_option
def export_opml(config_path: str | None) -> None:
    """Print every source as OPML 2.0, grouped by category."""
    from aggregator.opml_io import render_sources_opml

    click.echo(render_sources_opml(_load(config_path)).decode("utf-8"), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
