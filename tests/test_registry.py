"""``research.registry.Registry``: names in, entries out, clear errors both ways."""

from __future__ import annotations

import pytest

from research.registry import Registry


def test_register_get_and_list():
    reg: Registry[type] = Registry("widget", name_attr="kind")

    @reg.register("b")
    class B:
        pass

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and A.kind == "a" and B.kind == "b"
    assert reg.names() == ["a", "b"] and "a" in reg and "c" not in reg and len(reg) == 2
    assert reg.unregister("b") is B and reg.names() == ["a"]


def test_unknown_names_list_the_valid_ones():
    reg: Registry = Registry("placement method")
    reg.register("greedy")(len)
    with pytest.raises(ValueError, match=r"unknown placement method 'anneal'; expected one of "
                                         r"\['greedy'\]"):
        reg.get("anneal")
    with pytest.raises(ValueError, match=r"unknown placement method \['greedy'\]"):
        reg.get(["greedy"])  # a YAML list is not a name


def test_a_taken_name_is_refused_unless_it_is_the_same_definition():
    reg: Registry = Registry("widget")

    def f():
        pass

    reg.register("f")(f)
    reg.register("f")(f)  # the same function again (a reloaded module): fine

    def g():
        pass

    with pytest.raises(ValueError, match=r"widget 'f' is already registered by .*\.f"):
        reg.register("f")(g)
    assert reg.get("f") is f
