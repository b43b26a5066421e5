"""``moderncnn train``: its flags are generated from :class:`~moderncnn.run.config.TrainConfig`'s fields."""

from __future__ import annotations

import argparse

from moderncnn.cli.options import add_settings


def add_parsers(sub) -> None:
    from moderncnn.run.config import TrainConfig, describe_defaults

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
        "--recipe",
        metavar="[RECIPE:]BUDGET",
        help="start from a recipe's budget, e.g. fast (the bundled recipe for this network or dataset) or "
        "d2l-ch7:fast (options given here override it; see `moderncnn reproduce --list`)",
    )
    p.add_argument(
        "--resume", metavar="RUN", help="continue RUN from its checkpoints/last.ckpt (with --epochs N: to N epochs)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "lr-find",
        help="learning-rate range test: loss while the rate rises, and a suggested rate",
        description="Train for a few batches while the learning rate rises exponentially (Lightning's Tuner.lr_find), "
        "with the settings `train` would use; write the loss-vs-rate plot and its values (CSV), and print the "
        "suggested rate. The weights are not kept.",
    )
    p.add_argument("model", nargs="?", help="registry name (see `moderncnn models`)")
    p.set_defaults(settings=add_settings(p, TrainConfig))
    p.add_argument("--config", help="a config.yaml written by an earlier run (options given here override it)")
    p.add_argument("--recipe", metavar="[RECIPE:]BUDGET", help="start from a recipe's budget, as for train")
    p.add_argument("--min-lr", type=float, default=1e-6, help="lowest rate tried (default: 1e-6)")
    p.add_argument("--max-lr", type=float, default=1.0, help="highest rate tried (default: 1)")
    p.add_argument("--steps", type=int, default=100, help="training batches in the test (default: 100)")
    p.add_argument("--out", help="the plot's path (default: runs/lr-find/MODEL-DATASET.png; a CSV is written beside)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_lr_find)


def cmd_train(args: argparse.Namespace) -> int:
    from moderncnn.engine import train
    from moderncnn.errors import UsageError

    if args.resume:
        others = [name for name in args.settings if name != "epochs" and getattr(args, name) is not None]
        if args.model or args.config or args.recipe or others:
            raise UsageError(
                "--resume continues a run with its own config.yaml; give no MODEL, --config, --recipe or settings "
                "with it "
                "(only --epochs N, to continue it to N epochs)"
            )
        result = train(None, resume=args.resume, epochs=args.epochs, quiet=args.quiet)
    else:
        result = train(settings_from(args), quiet=args.quiet)
    if result.rank == 0:  # under DDP every process returns here; one report is enough
        print(result)
        print(f"run directory: {result.run_dir}")
    return 0


def settings_from(args: argparse.Namespace):
    """The run's settings from the command line: the network's defaults or ``--config``, under ``--recipe``'s
    budget when given, under the flags given."""
    from moderncnn.run.config import config_from

    overrides = {name: getattr(args, name) for name in args.settings}
    return config_from(args.model, args.config, recipe=args.recipe, **overrides)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from moderncnn.engine.lr_find import lr_find

    result = lr_find(
        settings_from(args), min_lr=args.min_lr, max_lr=args.max_lr, steps=args.steps, out=args.out, quiet=args.quiet
    )
    print(result)
    print(f"wrote {result.plot} and {result.table}")
    return 0
