"""``moderncnn train``: its flags are generated from :class:`~moderncnn.engine.config.TrainConfig`'s fields."""

from __future__ import annotations

import argparse

from moderncnn.cli.options import add_settings


def add_parsers(sub) -> None:
    from moderncnn.engine.config import TrainConfig, describe_defaults

    p = sub.add_parser(
        "train",
        help="train a network and write a run directory",
        description="Train a network. Options left out take the network's defaults, listed below.",
        epilog="\n".join(describe_defaults()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", nargs="?", help="registry name (see `moderncnn models`)")
    p.set_defaults(settings=add_settings(p, TrainConfig))
    p.add_argument("--config", help="a config.yaml written by an earlier run (options given here override it)")
    p.add_argument(
        "--resume", metavar="RUN", help="continue RUN from its checkpoints/last.ckpt (with --epochs N: to N epochs)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from moderncnn.engine import config_from, train
    from moderncnn.errors import UsageError

    if args.resume:
        others = [name for name in args.settings if name != "epochs" and getattr(args, name) is not None]
        if args.model or args.config or others:
            raise UsageError(
                "--resume continues a run with its own config.yaml; give no MODEL, --config or settings with it "
                "(only --epochs N, to continue it to N epochs)"
            )
        result = train(None, resume=args.resume, epochs=args.epochs, quiet=args.quiet)
    else:
        overrides = {name: getattr(args, name) for name in args.settings}
        result = train(config_from(args.model, args.config, **overrides), quiet=args.quiet)
    if result.rank == 0:  # under DDP every process returns here; one report is enough
        print(result)
        print(f"run directory: {result.run_dir}")
    return 0
