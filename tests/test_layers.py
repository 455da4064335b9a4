"""Imports run only downwards through the package's layers (parsed with `ast`, lazy imports included):

utils < data, features < nnet, evaluation < embeddings, postprocess < training < inference.

A subpackage may import itself and any lower layer; subpackages of one layer (data and features) do not
import each other. `evaluation` only needs `data`, so it sits below `training`, which scores with it.
A subpackage's command line (`__main__.py`) sits at least at the `training` layer without being part of
it, so `python -m desed_task.evaluation --postprocess` may apply post-processing but not import Lightning.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "desed_task"
LAYERS = {"utils": 0, "data": 1, "features": 1, "nnet": 2, "evaluation": 2, "embeddings": 3, "postprocess": 3,
          "training": 4, "inference": 5}


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import of `desed_task` in the file, relative ones resolved."""
    package = path.relative_to(root.parent).with_suffix("").parts
    package = package if path.name == "__init__.py" else package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.append((node.lineno, module))
    return [(line, module) for line, module in found if module.split(".")[0] == "desed_task"]


def layer_violations(path: Path, root: Path = PACKAGE) -> list[str]:
    """`file:line imports module` for each import of a higher layer or of another subpackage of the same layer."""
    own = path.relative_to(root).parts[0]
    if own not in LAYERS:
        return []
    layer = max(LAYERS[own], LAYERS["training"]) if path.name == "__main__.py" else LAYERS[own]
    errors = []
    for line, module in imported_modules(path, root):
        parts = module.split(".")
        target = parts[1] if len(parts) > 1 else ""
        if target != own and (target not in LAYERS or LAYERS[target] >= layer):
            errors.append(f"{path.relative_to(root.parent)}:{line} ({own}) imports {module}")
    return errors


def test_every_subpackage_has_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages <= set(LAYERS), f"give {sorted(subpackages - set(LAYERS))} a layer in LAYERS"


def test_imports_only_go_downwards():
    errors = [error for path in sorted(PACKAGE.rglob("*.py")) for error in layer_violations(path)]
    assert not errors, "upward or sideways imports:\n" + "\n".join(errors)


@pytest.mark.parametrize("source, expected", [
    ("from desed_task.training.run import main\n", ["(data) imports desed_task.training.run"]),
    ("import desed_task.features.mel\n", ["(data) imports desed_task.features.mel"]),
    ("def f():\n    from ..inference import detect\n", ["(data) imports desed_task.inference"]),
    ("from desed_task.utils.files import write_json\nfrom . import audio\n", []),
])
def test_the_check_catches_upward_sideways_and_lazy_relative_imports(tmp_path, source, expected):
    fake_package = tmp_path / "desed_task"
    (fake_package / "data").mkdir(parents=True)
    path = fake_package / "data" / "example.py"
    path.write_text(source)
    errors = layer_violations(path, fake_package)
    assert [error.split(" ", 1)[1] for error in errors] == expected


@pytest.mark.parametrize("source, expected", [
    ("from desed_task.postprocess import load_params\n", []),
    ("from desed_task.training.run import main\n", ["(data) imports desed_task.training.run"]),
])
def test_a_command_line_module_may_import_up_to_below_training(tmp_path, source, expected):
    fake_package = tmp_path / "desed_task"
    (fake_package / "data").mkdir(parents=True)
    path = fake_package / "data" / "__main__.py"
    path.write_text(source)
    assert [error.split(" ", 1)[1] for error in layer_violations(path, fake_package)] == expected
