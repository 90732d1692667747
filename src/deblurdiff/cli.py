"""The ``deblurdiff`` command: a thin dispatcher.

Each subcommand lives in ``deblurdiff.commands.<name>`` and defines ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily so that
``deblurdiff --help`` stays fast. ``main`` is the single error boundary of every command:
``errors.report`` prints user errors as one line (exit 2) and bugs with their traceback (exit 1).
"""
import argparse
import importlib
import sys

from .errors import report

COMMANDS = {
    "synth": "deblurdiff.commands.synth",
    "train": "deblurdiff.commands.train",
    "deblur": "deblurdiff.commands.deblur",
    "score": "deblurdiff.commands.score",
    "eval": "deblurdiff.commands.evaluate",
    "compare": "deblurdiff.commands.compare",
    "bench": "deblurdiff.commands.bench",
    "weights": "deblurdiff.commands.weights",
    "photos": "deblurdiff.commands.photos",
    "demo": "deblurdiff.commands.demo",
}


def _load(name):
    try:
        return importlib.import_module(COMMANDS[name])
    except ModuleNotFoundError as exc:
        if exc.name == COMMANDS[name]:
            return None
        raise


def build_parser(only=None) -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="deblurdiff", description="Motion deblurring with diffusion models.")
    parser.add_argument("--version", action="version", version=f"deblurdiff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            sub.add_parser(name)
            continue
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse printed its usage error (exit 2) or --help/--version (exit 0)
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args) or 0)
    except (Exception, KeyboardInterrupt) as exc:  # the one boundary: nothing reaches the terminal raw
        return report(exc, args.command)


if __name__ == "__main__":
    sys.exit(main())
