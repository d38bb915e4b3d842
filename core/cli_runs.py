"""``netbuilder runs PROJECT``: the recorded runs of a project file as a table (``core.run_history``):
id, start, status, epochs, best validation accuracy, time, and the settings that differ between them."""
from __future__ import annotations

import sys

from netbuilder.core.cli_common import EXIT_ERROR, EXIT_OK, error, resolve_project


def add_parser(commands) -> None:
    runs = commands.add_parser(
        "runs", help="list the recorded runs of a project",
        description="List the runs recorded next to a project file (in <project name>.runs/, one folder per run; "
                    "'netbuilder train' and the window record every run of a saved project): when each started, "
                    "how it ended, its epochs, best validation accuracy and time, and the settings that differ "
                    "between the runs. A folder that cannot be read is skipped with a note on stderr.")
    runs.add_argument("project", metavar="PROJECT", help="project file (.json)")
    runs.set_defaults(run=run)


def run(args) -> int:
    from netbuilder.core.run_history import list_runs, runs_folder

    found = resolve_project(args.project)
    if found is None:
        return EXIT_ERROR
    path, bundled = found
    if bundled:
        error(f"{args.project} is a bundled example, whose runs are not recorded; save a copy of it as a project "
              "file of your own (File > Save As… in the window) and train that")
        return EXIT_ERROR
    runs, notes = list_runs(path)
    for note in notes:
        print(f"netbuilder: note: {note}", file=sys.stderr, flush=True)
    if not runs:
        print(f"no runs recorded in {runs_folder(path)} yet (netbuilder train {args.project} records one)", flush=True)
        return EXIT_OK
    print(format_table(runs), flush=True)
    return EXIT_OK


def format_table(runs) -> str:
    """The runs, one a line, under a header; the differing settings in columns of their own."""
    from netbuilder.core.run_history import duration_text, setting_text, settings_diff

    diff = settings_diff(runs)
    header = ["id", "when", "status", "epochs", "best val acc", "time", *diff]
    rows = [header]
    for i, r in enumerate(runs):
        best = "—" if r.best_val_accuracy is None else f"{100 * r.best_val_accuracy:.1f}% (epoch {r.best_epoch})"
        epochs = str(len(r.epochs)) if not r.start_epoch else f"{r.start_epoch + 1}-{r.start_epoch + len(r.epochs)}"
        rows.append([r.id, r.when, r.status, epochs, best, duration_text(r.seconds),
                     *(_clip(setting_text(values[i]), 40) for values in diff.values())])
    widths = [max(len(row[j]) for row in rows) for j in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
