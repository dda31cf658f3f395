"""Every public function and method of the package has a numpydoc docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import exgsrc


def _public_callables():
    for info in pkgutil.walk_packages(exgsrc.__path__, "exgsrc."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue  # private modules
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                yield f"{info.name}.{name}", obj
            elif inspect.isclass(obj):
                yield f"{info.name}.{name}", obj
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and inspect.isfunction(member):
                        yield f"{info.name}.{name}.{attr}", member


def test_public_api_has_numpydoc_docstrings():
    found = list(_public_callables())
    assert len(found) > 150  # the walk really covered the package
    problems = []
    for qualname, obj in found:
        doc = inspect.getdoc(obj) or ""
        if not doc.strip():
            problems.append(f"{qualname}: no docstring")
        elif inspect.isfunction(obj):
            params = [p for p in inspect.signature(obj).parameters if p not in ("self", "cls")]
            if params and "Parameters\n----------" not in doc:
                problems.append(f"{qualname}: no 'Parameters' section for {params}")
    assert not problems, "\n".join(problems)
