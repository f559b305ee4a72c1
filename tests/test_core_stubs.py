"""The typing stubs of the compiled core (python/bptt/_core.pyi) against the module itself: the
same functions and classes, each with the same arguments in the same order."""

import ast
import inspect
import re
from pathlib import Path

import pytest

from bptt import _core

STUBS = ast.parse((Path(__file__).parents[1] / "python/bptt/_core.pyi").read_text())


def stub_arguments(function: ast.FunctionDef) -> list[str]:
    return [argument.arg for argument in function.args.args if argument.arg != "self"]


def module_arguments(obj) -> list[str]:
    """The argument names of pybind11's signature line(s) in the docstring: the first one."""
    line = inspect.getdoc(obj).splitlines()[0]
    inside = re.match(r"[\w.]+\((.*)\)( -> .*)?$", line)
    assert inside, line
    names = [part.split(":")[0].strip() for part in re.split(r",(?![^\[]*\])", inside[1])]
    return [name for name in names if name and name != "self"]


FUNCTIONS = [node for node in STUBS.body if isinstance(node, ast.FunctionDef)]
CLASSES = [node for node in STUBS.body if isinstance(node, ast.ClassDef)]


@pytest.mark.parametrize("stub", FUNCTIONS, ids=lambda node: node.name)
def test_each_stubbed_function_has_the_modules_arguments(stub):
    assert stub_arguments(stub) == module_arguments(getattr(_core, stub.name))


@pytest.mark.parametrize("stub", CLASSES, ids=lambda node: node.name)
def test_each_stubbed_class_has_the_modules_methods(stub):
    cls = getattr(_core, stub.name)
    for method in (node for node in stub.body if isinstance(node, ast.FunctionDef)):
        assert stub_arguments(method) == module_arguments(getattr(cls, method.name)), method.name


def test_every_public_name_of_the_module_is_stubbed():
    stubbed = {node.name for node in FUNCTIONS + CLASSES}
    public = {name for name in dir(_core) if not name.startswith("_")}
    assert public - stubbed <= {"OutputBlock"}, public - stubbed
