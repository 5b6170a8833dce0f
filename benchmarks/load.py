"""Load test: screen a generated export of N notes (default 1,000,000) end to end.

Generates the mixed export of ``benchmarks/corpus.py`` in chunks straight to
a CSV file (never all in memory), then runs ``vertebro screen`` on it in a
subprocess and reports wall time, notes per second and the peak RSS of the
run (the child's ``ru_maxrss``), which must stay under 1 GiB.

    python benchmarks/load.py                    # 1,000,000 notes, --workers 2
    python benchmarks/load.py --notes 200000 --workers 1 --keep /tmp/load
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from corpus import mixed_export  # noqa: E402

from pipeline import DEFAULT_BATCH_SIZE  # noqa: E402

CHUNK = 50_000


def write_export(path: Path, notes: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = None
        for index, start in enumerate(range(0, notes, CHUNK)):
            frame = mixed_export(min(CHUNK, notes - start), seed=1000 + index)
            frame["note_id"] = [f"{start + i}" for i in range(len(frame))]
            frame["person_id"] = [f"p{(start + i) // 8}" for i in range(len(frame))]
            if writer is None:
                writer = csv.writer(handle)
                writer.writerow(frame.columns)
            writer.writerows(frame.itertuples(index=False, name=None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"notes per batch (default {DEFAULT_BATCH_SIZE}, the CLI's)")
    parser.add_argument("--keep", type=Path, help="folder for the export and the run (default: a temporary one)")
    args = parser.parse_args()

    folder = args.keep or Path(tempfile.mkdtemp(prefix="vertebro-load-"))
    folder.mkdir(parents=True, exist_ok=True)
    export = folder / "export.csv"
    started = time.perf_counter()
    write_export(export, args.notes)
    print(f"generated {args.notes:,} notes ({export.stat().st_size / 2**20:,.0f} MiB) "
          f"in {time.perf_counter() - started:.0f} s")

    out = folder / "run"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipeline.cli", "screen", str(export), "-o", str(out), "-q",
                    "--workers", str(args.workers), "--batch-size", str(args.batch_size)], check=True)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"screened {manifest['counts']['notes']:,} notes of {manifest['counts']['patients']:,} patients "
          f"in {seconds:,.0f} s ({manifest['counts']['notes'] / seconds:,.0f} notes/s) "
          f"with --workers {args.workers}; peak RSS {peak:,.0f} MiB")
    print("status:", manifest["counts"]["status"])
    print("tiers:", manifest["counts"]["tier"])
    print("timings:", manifest["timings"])


if __name__ == "__main__":
    main()
