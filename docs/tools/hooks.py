"""mkdocs hooks: the navigation, and the reference pages generated from the code at build time.

- The navigation is built from the files in ``docs/``: the guide pages in a reading order, then any other page a
  later change adds (``docs/*.md``), the tutorials in the chapter's order, and the reference. A new page needs no
  edit here to appear.
- A tutorial is its jupytext source ``docs/tutorials/NAME.py``; once ``make docs-execute`` has stored the executed
  ``NAME.ipynb`` beside it, the site shows that (with its outputs) instead.
- ``reference/models.md`` (the model zoo, and the trained weights when the package has ``list_weights``),
  ``reference/cli.md`` (every ``moderncnn`` command's ``--help``) and ``reference/api.md`` (mkdocstrings) are
  generated from the registry, the argparse parsers and the package's exports, so they cannot drift from the code.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

# The guide in reading order; pages not listed here follow it alphabetically.
GUIDE = ["index.md", "training.md", "reproduce.md", "speed.md", "inspect.md", "deploy.md", "serve.md",
         "reliability.md", "networks.md", "architecture.md"]  # fmt: skip
# The tutorials in the chapter's order (file stems in docs/tutorials/); others follow alphabetically.
TUTORIALS = ["alexnet", "vgg", "nin", "googlenet", "batch_norm", "resnet", "densenet", "uva_tutorial5",
             "airbench94", "trained_network"]  # fmt: skip
GENERATED = {"reference/api.md": "api_page", "reference/models.md": "models_page", "reference/cli.md": "cli_page"}

# The public API on the reference page: (heading, [objects]); a name the package exports lazily (moderncnn.X) is
# documented where it is defined, and one it does not export yet is left out.
API = [
    ("Networks", ["create_model", "list_models", "get_model_info", "summary"]),
    ("Training", ["moderncnn.run.config.TrainConfig", "moderncnn.run.config.make_config",
                  "moderncnn.run.config.config_from", "moderncnn.run.plan.resolve", "moderncnn.run.plan.Plan",
                  "moderncnn.engine.training.train", "moderncnn.engine.training.RunResult"]),
    ("A trained run", ["moderncnn.run.checkpoint.load_run", "moderncnn.run.checkpoint.RunInfo",
                       "moderncnn.run.preprocess.Preprocess"]),
    ("Using a trained network", ["predict", "moderncnn.deploy.export.export_module", "moderncnn.deploy.export.export"]),
    ("Trained weights", ["list_weights", "get_weights_info", "moderncnn.weights.table.WeightsInfo"]),
    ("Looking inside", ["moderncnn.inspect"]),
    ("Reproducing published results", ["moderncnn.run.recipes.load_recipe", "moderncnn.reproduce.run.reproduce",
                                       "moderncnn.reports.compare.compare"]),
]  # fmt: skip


def on_config(config):
    docs = Path(config["docs_dir"])
    pages = sorted(p.name for p in docs.glob("*.md"))
    guide = [name for name in GUIDE if name in pages] + [name for name in pages if name not in GUIDE]
    config["nav"] = [
        *guide,
        {"Tutorials": [{_tutorial_title(path): path.relative_to(docs).as_posix()} for path in tutorials(docs)]},
        {"Reference": list(GENERATED)},
    ]
    return config


def on_files(files: Files, config) -> Files:
    docs = Path(config["docs_dir"])
    for source in (docs / "tutorials").glob("*.py"):
        if source.with_suffix(".ipynb").exists():
            files.remove(files.get_file_from_path(source.relative_to(docs).as_posix()))
    for uri, builder in GENERATED.items():
        files.append(File.generated(config, uri, content=globals()[builder]()))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Links to a tutorial's source (``tutorials/NAME.py``) lead to its executed notebook where there is one."""
    docs = Path(config["docs_dir"])

    def target(match: re.Match) -> str:
        stem = match.group(1)
        executed = (docs / "tutorials" / f"{stem}.ipynb").exists()
        return f"tutorials/{stem}.ipynb)" if executed else match.group(0)

    return re.sub(r"tutorials/(\w+)\.py\)", target, markdown)


def tutorials(docs: Path) -> list[Path]:
    """Each tutorial's page: the executed notebook where there is one, else the jupytext source."""
    sources = [p for p in (docs / "tutorials").glob("*.py") if not p.name.startswith("_")]
    rank = {name: i for i, name in enumerate(TUTORIALS)}
    sources.sort(key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    return [p.with_suffix(".ipynb") if p.with_suffix(".ipynb").exists() else p for p in sources]


def _tutorial_title(path: Path) -> str:
    source = path.with_suffix(".py")
    for line in source.read_text().splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return source.stem


def api_page() -> str:
    import moderncnn

    lines = [
        "# Python API",
        "",
        "The public API of `moderncnn`, generated from the docstrings. `import moderncnn as mc` exposes the names",
        "without a module path; the others are imported from the module each heading names.",
        "",
    ]
    for heading, names in API:
        objects = []
        for name in names:
            if "." in name:
                objects.append(name)
            elif name in moderncnn._EXPORTS:
                objects.append(f"{moderncnn._EXPORTS[name]}.{name}")
        if objects:
            lines += [f"## {heading}", ""]
            for path in objects:
                lines += [f"::: {path}", "    options:", "      heading_level: 3", ""]
    return "\n".join(lines)


def models_page() -> str:
    import moderncnn as mc
    from moderncnn.summarize import model_table

    lines = ["# Model zoo", "",
             "Every registered network, generated from the registry when the site is built (`mc.list_models()`;",
             "`moderncnn models` prints the same table). Parameters and FLOPs are for 10 classes and one image at",
             "the network's default input; a multiply-add counts as two FLOPs.", "",
             "The weights column names our trained weights for the network (`weights:NETWORK-DATASET`, below).", "",
             "| name | family | variant | input | params | GFLOPs | weights | source |",
             "|---|---|---|---|--:|--:|---|---|"]  # fmt: skip
    trained = {}
    for name in getattr(mc, "list_weights", list)():
        info = mc.get_weights_info(name)
        trained.setdefault(info.network, []).append(f"`{name}`")
    for row in model_table():
        shape = "x".join(str(d) for d in row["input_shape"][1:])
        lines.append(
            f"| `{row['name']}` | {row['family']} | {row['variant']} | {shape} | {row['params']:,} | "
            f"{row['flops'] / 1e9:.3f} | {', '.join(trained.get(row['name'], []))} | {row['source']} |"
        )
    lines += ["", "## Trained weights", ""]
    if hasattr(mc, "list_weights") or "list_weights" in getattr(mc, "_EXPORTS", {}):
        lines += weights_table([mc.get_weights_info(name) for name in mc.list_weights()])
    else:
        lines.append("This version of moderncnn ships no trained weights yet.")
    return "\n".join(lines) + "\n"


def weights_table(weights) -> list[str]:
    """A markdown table of whatever records ``list_weights()`` returns (dataclasses, dicts or named tuples)."""
    rows = []
    for entry in weights:
        if dataclasses.is_dataclass(entry):
            entry = dataclasses.asdict(entry)
        elif hasattr(entry, "_asdict"):
            entry = entry._asdict()
        elif not isinstance(entry, dict):
            entry = {"name": str(entry)}
        rows.append({k: v for k, v in entry.items() if isinstance(v, (str, int, float)) or v is None})
    if not rows:
        return ["No trained weights are registered."]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [
        "Generated from `mc.list_weights()`.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [_cell(row.get(c)) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def cli_page() -> str:
    from moderncnn.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; the page is the same on every machine
    parser = build_parser()
    lines = ["# Command line", "", "Every `moderncnn` command's `--help`, generated from the argparse parsers when the",
             "site is built.", ""]  # fmt: skip
    lines += _help_sections(parser, "moderncnn", level=2)
    return "\n".join(lines)


def _help_sections(parser: argparse.ArgumentParser, name: str, level: int) -> list[str]:
    lines = [f"{'#' * level} `{name}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                lines += _help_sections(sub, f"{name} {sub_name}", min(level + (name != "moderncnn"), 4))
    return lines
