from __future__ import annotations

import pytest

from tiercel.storage.uri import (
    InvalidStorageURI,
    StorageURI,
    execution_prefix,
    input_uri,
    kv_uri,
    namespace_file_uri,
    slugify,
    state_uri,
    task_output_prefix,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("kestra:///a/b", "kestra:///a/b"),
        ("kestra:///a/./b//c/", "kestra:///a/b/c"),
        ("kestra:///a/x/../b", "kestra:///a/b"),
        ("/a/b", "kestra:///a/b"),
        ("kestra:///a%20b/c", "kestra:///a%20b/c"),
        ("kestra:///a\\b", "kestra:///a/b"),
        ("kestra:///", "kestra:///"),
        ("kestra:///caf%C3%A9", "kestra:///café"),
    ],
)
def test_canonical_form(raw: str, canonical: str) -> None:
    assert str(StorageURI.parse(raw)) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "kestra:///../../etc/passwd",
        "kestra:///a/../../etc/passwd",
        "kestra:///..%2F..%2Fetc/passwd",
        "kestra:///%2e%2e/%2e%2e/etc/passwd",
        "kestra:///%2E%2E/etc",
        "kestra:///%252e%252e/etc",
        "kestra:///a/..\\..\\..\\etc\\passwd",
        "kestra:///a/..\\../x",
        "kestra:///a%00b",
        "kestra:///a\x00b",
        "kestra://host/a",
        "file:///etc/passwd",
        "etc/passwd",
        "kestra:///a?x=1",
        "kestra:///" + "x" * 300,
        "kestra:///a%ff",
    ],
)
def test_refused(raw: str) -> None:
    with pytest.raises(InvalidStorageURI) as info:
        StorageURI.parse(raw)
    assert "/tmp" not in str(info.value)


def test_join_cannot_climb() -> None:
    base = StorageURI.parse("kestra:///a/b")
    assert str(base.join("c/d.txt")) == "kestra:///a/b/c/d.txt"
    with pytest.raises(InvalidStorageURI):
        base.join("../x")
    with pytest.raises(InvalidStorageURI):
        base.join("..\\x")


def test_is_under_is_segment_wise() -> None:
    prefix = StorageURI.parse("kestra:///a/b")
    assert StorageURI.parse("kestra:///a/b/c").is_under(prefix)
    assert StorageURI.parse("kestra:///a/b").is_under(prefix)
    assert not StorageURI.parse("kestra:///a/bc").is_under(prefix)


def test_layout() -> None:
    assert (
        str(execution_prefix("io.kestra.tests", "inputs", "E1"))
        == "kestra:///io/kestra/tests/inputs/executions/E1"
    )
    assert (
        str(task_output_prefix("io.kestra.tests", "myFlow", "E1", "my task", "TR1"))
        == "kestra:///io/kestra/tests/myflow/executions/E1/tasks/my-task/TR1"
    )
    assert (
        str(input_uri("io.kestra.tests", "inputs", "E1", "file", "C:\\Users\\me\\application-test.yml"))
        == "kestra:///io/kestra/tests/inputs/executions/E1/inputs/file/application-test.yml"
    )
    assert str(namespace_file_uri("company.team", "/a/b.sql")) == "kestra:///company/team/_files/a/b.sql"
    assert str(kv_uri("company.team", "my-key")) == "kestra:///company/team/_kv/my-key.json"
    assert str(state_uri("ns", None, "default", None)) == "kestra:///ns/states/default/default.json"
    assert str(state_uri("ns", "f", "s", "a")).startswith("kestra:///ns/f/states/s/")


@pytest.mark.parametrize("path", ["../x", "a/../../x", "..\\x", "a/.."])
def test_namespace_file_refuses_dot_dot(path: str) -> None:
    with pytest.raises(InvalidStorageURI):
        namespace_file_uri("ns", path)


@pytest.mark.parametrize("namespace", ["a..b", "a./b", "..", "a.\\b"])
def test_bad_namespaces(namespace: str) -> None:
    with pytest.raises(InvalidStorageURI):
        execution_prefix(namespace, "f", "e")


def test_slugify() -> None:
    assert slugify("Hello World_1") == "hello-world-1"
    assert slugify("-a.b-") == "a-b"
