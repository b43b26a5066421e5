"""Execute the tutorials (jupytext ``py:percent`` sources in docs/tutorials/) and store them with their outputs.

    python docs/tools/execute.py [NAME ...]          # `make docs-execute`: every tutorial (or those named), full size
    MODERNCNN_DOCS_SMOKE=1 python docs/tools/execute.py --check   # the smoke budget; nothing stored (as CI does)

Each tutorial runs in a fresh Jupyter kernel (nbclient) with docs/tutorials/ as its working folder; a cell that
raises stops it and the command fails. The executed notebook is written beside its source (``NAME.ipynb``), where
the site picks it up. A tutorial that needs a feature this version lacks says so in its header
(``# requires: model airbench94``, ``recipe airbench`` or ``api list_weights``) and is skipped with that reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
STREAM_LIMIT = 4000  # characters of printed output kept per cell output in a stored notebook


def sources(names: list[str] | None = None) -> list[Path]:
    """The tutorials' sources (all, or those whose stem is in ``names``)."""
    found = sorted(p for p in TUTORIALS.glob("*.py") if not p.name.startswith("_"))
    if names:
        unknown = sorted(set(names) - {p.stem for p in found})
        if unknown:
            raise SystemExit(f"unknown tutorial(s) {', '.join(unknown)}; valid: {', '.join(p.stem for p in found)}")
        found = [p for p in found if p.stem in names]
    return found


def missing_feature(source: Path) -> str | None:
    """Why ``source`` cannot run with this version of moderncnn (a feature it requires is absent), else None."""
    import moderncnn as mc
    from moderncnn.reproduce import list_recipes

    for line in source.read_text().splitlines():
        if not line.startswith("# requires: "):
            continue
        kind, _, name = line.removeprefix("# requires: ").strip().partition(" ")
        if kind == "model" and name not in mc.list_models():
            return f"{source.stem} needs the network {name!r}, which this version of moderncnn does not register"
        if kind == "api" and name not in mc._EXPORTS:
            return f"{source.stem} needs moderncnn.{name}, which this version of moderncnn does not have"
        if kind == "weights" and name not in getattr(mc, "list_weights", list)():
            return f"{source.stem} needs the published weights {name!r}, which this version of moderncnn does not ship"
        if kind == "recipe" and name not in {recipe.name for recipe in list_recipes()}:
            return f"{source.stem} needs the bundled recipe {name!r}, which this version of moderncnn does not have"
    return None


def execute(source: Path, out: Path | None = None, timeout: int | None = None):
    """Run ``source`` in a fresh kernel; write the executed notebook to ``out`` when given. Raises on any error."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(source)
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(source.parent)}}
    )
    client.execute()
    if out is not None:
        import nbformat

        nbformat.write(trim_streams(notebook), str(out))
    return notebook


def trim_streams(notebook, limit: int = STREAM_LIMIT):
    """Keep each printed stream's last ``limit`` characters: the stored page shows results, not whole logs."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and len(output.get("text", "")) > limit:
                output["text"] = f"[... {len(output['text']) - limit} characters cut ...]\n" + output["text"][-limit:]
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="tutorial stems (default: all)")
    parser.add_argument("--check", action="store_true", help="execute without storing the notebooks")
    args = parser.parse_args(argv)
    failed = []
    for source in sources(args.names):
        reason = missing_feature(source)
        if reason:
            print(f"skipped {source.stem}: {reason}", flush=True)
            continue
        start = time.time()
        print(f"executing {source.stem} ...", flush=True)
        try:
            execute(source, None if args.check else source.with_suffix(".ipynb"))
        except Exception as err:  # one failing tutorial must not stop the others; the exit code reports it
            failed.append(source.stem)
            print(f"FAILED {source.stem}: {str(err)[-2000:]}", flush=True)
            continue
        print(f"done {source.stem} in {time.time() - start:.0f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
