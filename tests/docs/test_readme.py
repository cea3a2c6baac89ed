"""The README's Python snippets run as written, and the files it points to exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_python_snippets_run(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "the README has no Python snippet"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})


def test_linked_files_exist():
    links = re.findall(r"\]\(((?:docs|samples|models)/[^)#]+)\)", README)
    assert links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing
