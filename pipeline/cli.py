"""vertebro's command line: a thin layer over the library.

Options are parsed here, the library does the work, and library exceptions
become one-line messages (exit code 2) a researcher understands. Tracebacks
only with ``--verbose``. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import gc
import logging
import sys

import click

from . import DEFAULT_BATCH_SIZE, __version__

logger = logging.getLogger("pipeline")

class Failure(click.ClickException):
    exit_code = 2


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("pipeline").setLevel(level)
    # medspaCy's own loggers are noisy at DEBUG; keep them at WARNING
    for name in ("medspacy", "PyRuSH"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _fail(error: BaseException, verbose: bool) -> None:
    if verbose:
        raise error
    raise Failure(str(error).splitlines()[0] if str(error) else type(error).__name__) from None


def common_options(function):
    function = click.option("--quiet", "-q", is_flag=True, help="Only warnings and errors.")(function)
    function = click.option("--verbose", "-v", is_flag=True, help="Debug logging and full tracebacks.")(function)
    return function


def input_options(function):
    options = [
        click.option("--format", "fmt", type=click.Choice(["csv", "tsv", "jsonl", "parquet", "txt", "sql"]),
                     help="Input format (default: from the file extension)."),
        click.option("--id-col", default="note_id", show_default=True, help="Column with the note id."),
        click.option("--person-col", default="person_id", show_default=True, help="Column with the patient id."),
        click.option("--date-col", default="note_date", show_default=True, help="Column with the note date."),
        click.option("--title-col", default="note_title", show_default=True, help="Column with the note title."),
        click.option("--text-col", default="note_text", show_default=True, help="Column with the note text."),
        click.option("--table", help="SQL: table to read (default: note)."),
        click.option("--query", help="SQL: a query to read instead of a table."),
        click.option("--mapping", type=click.Path(exists=True, dir_okay=False),
                     help="Folder of .txt files: CSV with note_id,person_id[,note_date,note_title]."),
        click.option("--since", help="Only notes dated on or after this date (YYYY-MM-DD)."),
        click.option("--until", help="Only notes dated on or before this date (YYYY-MM-DD)."),
        click.option("--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1),
                     help="Notes per batch (a checkpoint is written after each batch)."),
        click.option("--patterns", multiple=True, type=click.Path(exists=True, file_okay=False),
                     help="Extra or overriding rule folder (repeatable)."),
        click.option("--workers", type=click.IntRange(1),
                     help="Worker processes [default: 1; --engine dask: one per CPU]."),
        click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                     help="Run batches locally or on a Dask cluster."),
        click.option("--scheduler", help="Dask scheduler address (tcp://host:8786); default a LocalCluster."),
        click.option("--partitions", type=click.IntRange(1),
                     help="Dask: patient groups for the screening stage [default: 2 per worker]."),
        click.option("--read-on", type=click.Choice(["workers", "client"]), default="workers", show_default=True,
                     help="Dask: who reads Parquet, JSON Lines and SQL tables (CSV: always the client)."),
        click.option("--partition-column",
                     help="Dask, SQL table: numeric column to split into id ranges [default: the id column]."),
        click.option("--resume", is_flag=True, help="Continue an interrupted run in the same OUTDIR."),
        click.option("--output", "-o", "outdir", required=True, type=click.Path(file_okay=False),
                     help="Output folder."),
        click.argument("inputs", nargs=-1, required=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _open_inputs(inputs, fmt, id_col, person_col, date_col, title_col, text_col, table, query,
                 mapping, since, until, batch_size):
    from .io.readers import ColumnMap, open_source
    columns = ColumnMap(id=id_col, person=person_col, date=date_col, title=title_col, text=text_col)
    return [open_source(spec, format=fmt, columns=columns, batch_size=batch_size, table=table,
                        query=query, mapping=mapping, since=since, until=until)
            for spec in inputs]


def _run(command, inputs, outdir, quiet, verbose, config=None, excel=False, **options):
    _setup_logging(quiet, verbose)
    from .io.readers import InputError
    from .nlp.rules import RuleError
    from .run import RunError, run_job
    patterns = options.pop("patterns")
    workers = options.pop("workers")
    engine = options.pop("engine")
    scheduler = options.pop("scheduler")
    partitions = options.pop("partitions")
    read_on = options.pop("read_on")
    partition_column = options.pop("partition_column")
    if workers is None and engine == "local":
        workers = 1
    resume = options.pop("resume")
    all_mentions = options.pop("all_mentions", False)
    try:
        sources = _open_inputs(inputs, **options)
        show = sys.stderr.isatty() and not quiet
        with click.progressbar(length=0, label="notes", file=sys.stderr, show_pos=True,
                               hidden=not show) as bar:
            result = run_job(sources, outdir, command=command, patterns=patterns, config_path=config,
                             workers=workers, resume=resume, excel=excel, engine=engine,
                             scheduler=scheduler, partitions=partitions, progress=bar.update,
                             read_on=read_on, partition_column=partition_column,
                             all_mentions=all_mentions)
    except (InputError, RuleError, RunError, ValueError, FileNotFoundError, OSError) as error:
        _fail(error, verbose)
    except ImportError as error:
        _fail(error, verbose)
    counts = result.manifest["counts"]
    summary = ", ".join(f"{k} {v}" for k, v in counts["status"].items())
    logger.info("%d notes (%s) -> %s", counts["notes"], summary, outdir)
    if command == "screen":
        tiers = ", ".join(f"{k} {v}" for k, v in counts["tier"].items())
        logger.info("%d patients: %s", counts["patients"], tiers)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="vertebro")
def main():
    """vertebro: screen clinical notes and radiology reports for vertebroplasty review.

    Reads note exports, extracts vertebral fractures, marrow oedema,
    retropulsion, epidural disease, infection and coagulopathy with medspaCy
    rules, and sorts every patient into a screening tier.

    \b
    Example:
      vertebro screen notes.csv -o reports/run1
      vertebro explain "Acute L1 compression fracture with marrow oedema."
    """


@main.command()
@input_options
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="TOML config (thresholds, weights).")
@click.option("--excel", is_flag=True, help="Also write report.xlsx.")
@click.option("--all-mentions", is_flag=True,
              help="Extract every mention of every note (slower). By default a note whose only "
                   "terms are infection, coagulation, anticoagulant, pain, osteoporosis or "
                   "prior-augmentation terms is processed only when its patient has a fracture; "
                   "patients.csv is the same either way.")
@common_options
def screen(inputs, outdir, quiet, verbose, config, excel, all_mentions, **options):
    """Extract, screen and report: the main job.

    Writes patients.csv/.parquet, notes.csv, mentions.parquet/.csv,
    report.html and manifest.json into OUTDIR.

    INPUT is a CSV/TSV, JSON Lines or Parquet file, a folder of .txt files,
    a SQLAlchemy URL (sqlite:///notes.db, postgresql://user@host/db), or - for
    CSV on standard input.

    \b
    Example:
      vertebro screen notes.csv -o reports/run1
      vertebro screen export.parquet -o out --workers 2 --config strict.toml --excel
      vertebro screen postgresql://me@db/omop -o out --since 2024-01-01
      vertebro screen notes/ --mapping people.csv -o out
      vertebro screen export.parquet -o out --engine dask --scheduler tcp://sched:8786
    """
    _run("screen", inputs, outdir, quiet, verbose, config=config, excel=excel,
         all_mentions=all_mentions, **options)


@main.command()
@input_options
@common_options
def extract(inputs, outdir, quiet, verbose, **options):
    """Extract mentions only: notes.csv, mentions.parquet/.csv and manifest.json.

    No screening, no report; `vertebro score OUTDIR` can score it later.

    INPUT is a CSV/TSV, JSON Lines or Parquet file, a folder of .txt files,
    a SQLAlchemy URL (sqlite:///notes.db, postgresql://user@host/db), or - for
    CSV on standard input.

    \b
    Example:
      vertebro extract notes.jsonl -o out/extract
      vertebro score out/extract
    """
    _run("extract", inputs, outdir, quiet, verbose, **options)


@main.command()
@click.argument("outdir", type=click.Path(exists=True, file_okay=False))
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="TOML config (thresholds, weights).")
@click.option("--excel", is_flag=True, help="Also write report.xlsx.")
@common_options
def score(outdir, config, excel, quiet, verbose):
    """Re-score the saved mentions of a run folder, without re-reading the notes.

    Rewrites patients.csv/.parquet, report.html and manifest.json.

    \b
    Example:
      vertebro score reports/run1 --config strict.toml
    """
    _setup_logging(quiet, verbose)
    from .run import RunError, rescore
    try:
        result = rescore(outdir, config_path=config, excel=excel)
    except (RunError, ValueError, FileNotFoundError, OSError) as error:
        _fail(error, verbose)
    logger.info("%d patients re-scored into %s", len(result.patients), outdir)


@main.command()
@click.argument("gold", type=click.Path(exists=True))
@click.option("--output", "-o", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--patterns", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Extra or overriding rule folder (repeatable).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False), help="TOML config for the patient tiers.")
@common_options
def evaluate(gold, outdir, patterns, config, quiet, verbose):
    """Precision, recall and F1 against an annotated corpus.

    GOLD is a corpus folder (notes.jsonl, gold_mentions.jsonl and optionally
    gold_patients.csv, as in corpora/dev/). Writes mention-level P/R/F1 per
    concept (strict and overlapping spans), attribute accuracy, note flags,
    patient tiers and flags, as CSV and a Markdown summary.

    \b
    Example:
      vertebro evaluate corpora/dev -o reports/dev-eval
    """
    _setup_logging(quiet, verbose)
    try:
        from .evaluation.corpus import evaluate_corpus
        summary = evaluate_corpus(gold, outdir, patterns=patterns, config_path=config)
    except ImportError:
        raise Failure("corpus evaluation is not part of this build yet (issue: extraction)") from None
    except (ValueError, FileNotFoundError, OSError) as error:
        _fail(error, verbose)
    click.echo(summary)


@main.command("evaluate-context")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", "outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--patterns", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Extra or overriding rule folder (repeatable).")
@common_options
def evaluate_context(file, outdir, patterns, quiet, verbose):
    """The ConText layer on the NegEx/ConText test-set format.

    FILE is tab-separated with one header line: line number, condition,
    sentence, negation, temporality, experiencer. Writes
    OUTDIR/predictions.csv and OUTDIR/metrics.json.

    \b
    Example:
      vertebro evaluate-context negex_testset.tsv -o reports/negex
    """
    _setup_logging(quiet, verbose)
    try:
        from .evaluation.negex import evaluate_context as run
        summary = run(file, outdir, patterns=patterns)
    except (ValueError, FileNotFoundError, OSError) as error:
        _fail(error, verbose)
    click.echo(summary)


@main.command()
@click.argument("text")
@click.option("--title", default="", help="Note title (e.g. 'MRI LUMBAR SPINE').")
@click.option("--patterns", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="Extra or overriding rule folder (repeatable).")
@common_options
def explain(text, title, patterns, quiet, verbose):
    """Show the mentions found in one text, with their attributes, levels and sections.

    \b
    Example:
      vertebro explain "IMPRESSION: Acute L1 compression fracture. No retropulsion."
    """
    _setup_logging(quiet, verbose)
    from .nlp.pipeline import Extractor
    from .nlp.rules import RuleError
    try:
        mentions = Extractor(patterns=list(patterns)).mentions(text, title)
    except RuleError as error:
        _fail(error, verbose)
    if not mentions:
        click.echo("no mentions")
        return
    header = ["concept", "text", "start", "end", "section", "levels", "attributes"]
    rows = []
    for m in mentions:
        flags = [name for name in ("negated", "uncertain", "historical", "hypothetical", "family", "new") if m[name]]
        extra = [f"{name}={m[name]}" for name in ("acuity", "aetiology", "scope", "lab", "unit",
                                                   "corrected", "med_status") if m[name]]
        if m["value"] is not None:
            extra.append(f"value={m['value']:g}")
        rows.append([m["concept"], m["lexical_variant"].replace("\n", " "), str(m["start"]), str(m["end"]),
                     m["section"], ";".join(m["levels"]), " ".join(flags + extra) or "affirmed"])
    widths = [max(len(str(row[i])) for row in rows + [header]) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths]] + rows:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


@main.group()
def rules():
    """Work with rule files.

    \b
    Example:
      vertebro rules check
      vertebro rules check my_rules/
    """


@rules.command("check")
@click.argument("folder", required=False, type=click.Path(exists=True, file_okay=False))
@common_options
def rules_check(folder, quiet, verbose):
    """Validate rule files and run their examples.

    Checks unknown keys and categories, duplicates and broken regular
    expressions, then runs every rule's `examples` (must match) and
    `counter_examples` (must not). FOLDER defaults to the shipped rules.

    \b
    Example:
      vertebro rules check
      vertebro rules check site_rules/
    """
    _setup_logging(quiet, verbose)
    from .nlp.rule_examples import check_examples
    from .nlp.rules import check_rules
    problems = check_rules(folder)
    if not problems:
        problems = check_examples([folder] if folder else [])
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise Failure(f"{len(problems)} problem(s) in the rule files")
    click.echo("rule files OK")


def entry() -> None:
    """The ``vertebro`` command: :func:`main`, then a quick exit.

    The interpreter's last garbage collections at exit, over what spaCy,
    medspaCy and pandas hold, took 0.3-0.4 s of every run whatever its size.
    By then every output is written and closed, so ``gc.freeze()`` leaves
    those objects to the operating system; atexit handlers (logging's flush)
    still run. Not in :func:`main`: a process that goes on (a test, a notebook
    calling the library) keeps collecting as usual.
    """
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    entry()
