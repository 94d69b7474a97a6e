"""atlas-assistant: the command line, one small function per stage of the pipeline."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .settings import SettingsError, load_settings


class UserError(Exception):
    """A problem the user can fix (missing index, bad file); printed as one line."""


def cmd_validate(args, settings) -> int:
    """parse: check corpus files and report every problem."""
    from .parse import load_corpus

    load = load_corpus(args.paths or settings.corpus)
    for problem in load.problems:
        print(problem)
    errors = len(load.errors)
    print(f"{load.files} files read: {len(load.studies)} valid studies, {errors} errors, "
          f"{len(load.problems) - errors} warnings")
    return 1 if errors else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="atlas-assistant",
        description="Cited answers from ME/CFS study entries that keep what studies show apart "
                    "from what they do not prove. Not medical advice.")
    parser.add_argument("--config", type=Path, help="TOML settings file (default: atlas.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    validate = sub.add_parser("validate", help="check corpus files; exit 1 on any error")
    validate.add_argument("paths", nargs="*", type=Path, help="files or folders (default: corpus/)")
    validate.set_defaults(run=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    overrides = {k: getattr(args, k, None) for k in ("index_dir", "mode", "top_k")}
    try:
        settings = load_settings(overrides, args.config)
        return args.run(args, settings)
    except (SettingsError, UserError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # end users never see a traceback
        if os.environ.get("ATLAS_DEBUG"):
            raise
        print(f"error: {type(err).__name__}: {err} (set ATLAS_DEBUG=1 for details)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
