"""`gradtrace gallery`: builds through tracer.gallery, reports like the other commands, --check, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import invoke
from tests.test_gallery_build import ERROR, FAILING, SQUARE, make_gallery

pytestmark = pytest.mark.graphviz


def test_build_reports_topics_and_files(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE, "02-error.py": ERROR})
    result = invoke("gallery", "--source", folder)
    assert result.exit_code == 0, result.output
    assert "Small <cases>  2        3" in result.stdout
    assert f"wrote {folder / 'index.html'}: 2 entries, 3 passes, " in result.stdout
    assert (folder / "out/01-small/02-error/pass1.svg").is_file()


def test_json_and_quiet(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE})
    out = tmp_path / "site"
    result = invoke("gallery", "--source", folder, "-o", out, "--json")
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["command"] == "gallery" and document["folder"] == str(out)
    assert document["entries"] == [{"id": "01-small/01-square", "title": "Squares at two points <b>", "passes": 2}]
    assert "index.html" in document["files"] and document["errors"] == []
    quiet = invoke("gallery", "--source", folder, "-o", out, "-q")
    assert quiet.exit_code == 0 and quiet.stdout == ""


def test_check(tmp_path: Path) -> None:
    folder = make_gallery(tmp_path, {"01-square.py": SQUARE})
    assert invoke("gallery", "--source", folder).exit_code == 0
    assert invoke("gallery", "--source", folder, "--check").exit_code == 0
    (folder / "out/01-small/01-square/pass1.dot").write_text("digraph {}", encoding="utf-8")
    result = invoke("gallery", "--source", folder, "--check")
    assert result.exit_code == 1
    assert "is stale: out/01-small/01-square/pass1.dot differs" in result.stderr
    assert "Run `./dev gallery`" in result.stderr


def test_errors_are_one_clear_message(tmp_path: Path) -> None:
    result = invoke("gallery", "--source", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {str(tmp_path)!r} is not a gallery folder")
    folder = make_gallery(tmp_path, {"01-failing.py": FAILING})
    result = invoke("gallery", "--source", folder)
    assert result.exit_code == 1
    assert "Error: gallery entry 01-small/01-failing failed:" in result.stderr
    assert "Traceback" not in result.stderr
    (folder / "cases/01-small/01-failing.py").unlink()
    (folder / "cases/01-small/01-square.py").write_text(SQUARE.lstrip(), encoding="utf-8")
    (folder / "index.html").write_text("mine", encoding="utf-8")
    result = invoke("gallery", "--source", folder)
    assert result.exit_code == 1 and "pass force=True (--force)" in result.stderr
    assert invoke("gallery", "--source", folder, "--force").exit_code == 0
