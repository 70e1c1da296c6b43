"""aggregator(1), written from the same text as ``--help`` (click's own records).

``python -m aggregator.manpage > docs/aggregator.1`` remakes it; a test keeps
the committed page equal to this output, so the two never drift apart.
"""

from __future__ import annotations

import inspect

import click

from aggregator import HOMEPAGE, __version__
from aggregator.cli import ENVIRONMENT, complete_commands, exit_statuses, main

FILES = (
    (
        "/etc/aggregator/aggregator.toml",
        "the config file, unless -c or $AGGREGATOR_CONFIG names one",
    ),
    ("./config/aggregator.toml", "the config file when /etc/aggregator has none"),
)


def roff(text: str) -> str:
    """Plain text as roff: backslashes and leading dots or quotes made literal."""
    lines = []
    for line in text.replace("\\", "\\e").replace("-", "\\-").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _paragraphs(text: str) -> list[str]:
    blocks = [b.strip() for b in inspect.cleandoc(text).split("\n\n")]
    return [" ".join(b.split()) for b in blocks if b]


def _commands(
    group: click.Group, parent: click.Context, prefix: str = ""
) -> list[tuple[str, click.Command, click.Context]]:
    """Every command that runs, by its full name (``rules test``), with its context."""
    found = []
    for short in sorted(group.commands):
        command = group.commands[short]
        ctx = click.Context(command, info_name=short, parent=parent)
        if isinstance(command, click.Group):
            found += _commands(command, ctx, f"{prefix}{short} ")
        else:
            found.append((f"{prefix}{short}", command, ctx))
    return found


def render(group: click.Group = main) -> str:
    complete_commands(group)
    root = click.Context(group, info_name="aggregator", help_option_names=["-h", "--help"])
    commands = _commands(group, root)
    out = [
        '.TH AGGREGATOR 1 "" "aggregator ' + __version__ + '" "User Commands"',
        ".SH NAME",
        "aggregator \\- " + roff(_paragraphs(group.help or "")[0]),
        ".SH SYNOPSIS",
    ]
    for name, command, ctx in commands:
        usage = " ".join(command.collect_usage_pieces(ctx))
        out += [".B aggregator " + roff(name), roff(usage), ".br"]
    out += [".B aggregator \\-\\-version", ".SH DESCRIPTION"]
    for paragraph in _paragraphs(group.help or "")[1:]:
        out += [roff(paragraph), ".PP"]
    out.append(".SH COMMANDS")
    for name, command, ctx in commands:
        out += [".SS " + roff(f"aggregator {name}")]
        for paragraph in _paragraphs(command.help or ""):
            out += [roff(paragraph), ".PP"]
        for param in command.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            opts, help_text = record
            out += [".TP", ".B " + roff(opts), roff(help_text)]
        out += [".PP", "Exit status:", ".RS"]
        for code, what in exit_statuses(name):
            out += [f".IP {code} 4", roff(what)]
        out.append(".RE")
    out += [".SH EXIT STATUS"]
    out += [
        "0 on success; 1 for a run\\-time failure (a source, the database, a file that "
        "cannot be written); 2 for a configuration or usage error. Errors are one line "
        "on standard error, starting with error:.",
        ".SH ENVIRONMENT",
    ]
    for var, what in ENVIRONMENT:
        out += [".TP", ".B " + var, roff(what)]
    out.append(".SH FILES")
    for path, what in FILES:
        out += [".TP", ".I " + roff(path), roff(what)]
    out += [".SH SEE ALSO", roff(f"README.md of the source tree; {HOMEPAGE}")]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    print(render(), end="")
