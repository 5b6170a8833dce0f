"""The wheel carries the rule files, the report templates and the pre-filter's table (found without the source tree)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_patterns_config_and_templates(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True)
    wheel = next(tmp_path.glob("vertebro-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    manifest_files = ["pipeline/patterns/manifest.toml", "pipeline/default_config.toml",
                      "pipeline/report/templates/report.html", "pipeline/prefilter_analyses.json"]
    for name in manifest_files:
        assert name in names, name
    rule_files = {name for name in names if name.startswith("pipeline/patterns/") and name.endswith(".json")}
    shipped = {f"pipeline/patterns/{path.relative_to(REPO / 'patterns')}" for path in (REPO / "patterns").rglob("*.json")}
    assert rule_files == shipped
