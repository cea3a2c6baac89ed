"""The one-way import structure and the unit-size limits (ppl_edge.structure), on this tree and on
small trees that break each rule."""

from __future__ import annotations

from pathlib import Path

from ppl_edge import structure

ROOT = Path(__file__).resolve().parents[2]


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for folder in ("ppl_edge", "train", "convert", "runtime"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").touch()
    return tmp_path


def test_this_tree_keeps_the_layers():
    findings = structure.check_layers(ROOT)
    assert findings == [], "\n".join(map(str, findings))
    modules = dict(structure.iter_modules(ROOT))
    assert "ppl_edge.train.loop" in modules and "ppl_edge.runtime.estimator" in modules
    assert "ppl_edge.manifest" in modules and "ppl_edge.convert.onnx_export" in modules


def test_a_part_importing_another_part_is_found(tmp_path):
    root = _tree(tmp_path, {
        "runtime/demo.py": "def f():\n    from ppl_edge.train.data import synthetic\n",
        "convert/verify.py": "from ppl_edge.runtime import manifest\n",
        "train/ok.py": "from ppl_edge.train import loop\nfrom ppl_edge.manifest import Manifest\n",
        "train/loop.py": "",
    })  # fmt: skip
    found = sorted(f.message for f in structure.check_layers(root))
    assert len(found) == 2
    assert "ppl_edge.convert.verify (ppl_edge.convert) imports ppl_edge.runtime" in found[0]
    assert "ppl_edge.runtime.demo (ppl_edge.runtime) imports ppl_edge.train" in found[1]


def test_the_ground_floor_importing_upwards_is_found(tmp_path):
    root = _tree(tmp_path, {
        "ppl_edge/manifest.py": "from ppl_edge.convert.manifest import build_manifest\n",
        "ppl_edge/cli/verb.py": "from ppl_edge.train import loop\nfrom ppl_edge import runtime\n",
        "ppl_edge/skeleton.py": "from . import errors\nfrom .cli import verb\n",
        "ppl_edge/errors.py": "",
    })  # fmt: skip
    found = [f.message for f in structure.check_layers(root)]
    assert len(found) == 2  # the CLI may import every part
    assert any("ppl_edge.manifest (ground) imports ppl_edge.convert.manifest" in m for m in found)
    assert any("ppl_edge.skeleton (ground) imports ppl_edge.cli" in m for m in found)


def test_long_modules_and_functions_are_reported(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(12))
    root = _tree(tmp_path, {"train/big.py": "def long():\n" + body + "\n" + "\n" * 30})
    found = structure.check_sizes(root, max_module=40, max_function=10)
    assert [f.message for f in found] == [
        "module has 43 lines (limit 40)",
        "function long has 13 lines (limit 10)",
    ]
    assert structure.check_sizes(root, max_module=50, max_function=13) == []
