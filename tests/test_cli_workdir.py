"""Working-dir packing: .gitignore respected, deterministic digest, size limit."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import pytest

from minga.cli import workdir


def _tree(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def _names(pkg: workdir.Package) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(pkg.data)).namelist()


def test_gitignore_rules_nested_negation_and_dot_git(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            ".gitignore": "*.log\n!keep.log\nbuild/\n/data\n",
            "train.py": "print('hi')\n",
            "run.log": "noise",
            "keep.log": "kept",
            "build/out.bin": "x",
            "data/big.bin": "x",
            "src/data/small.txt": "anchored /data only ignores the top one",
            "src/.gitignore": "*.tmp\n!important.log\n",
            "src/a.tmp": "x",
            "src/b.py": "y",
            "src/important.log": "nested negation wins",
            ".git/HEAD": "ref: refs/heads/main\n",
            ".git/objects/ab": "z",
        },
    )
    names = _names(workdir.pack(root))
    assert names == sorted(
        [
            ".gitignore",
            "keep.log",
            "src/.gitignore",
            "src/b.py",
            "src/data/small.txt",
            "src/important.log",
            "train.py",
        ]
    )


def test_same_content_same_digest_regardless_of_mtime_and_creation_order(tmp_path: Path) -> None:
    files = {"b.py": "b", "a/x.py": "x", "a/y.py": "y", "c.txt": "c" * 1000}
    one = workdir.pack(_tree(tmp_path / "one", files))
    two = _tree(tmp_path / "two", dict(reversed(list(files.items()))))
    for path in two.rglob("*"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    again = workdir.pack(two)
    assert one.digest == again.digest
    assert one.data == again.data
    assert one.digest == "sha256:" + hashlib.sha256(one.data).hexdigest()
    assert one.files == 4


def test_changed_content_changes_digest(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.py": "1"})
    before = workdir.pack(root).digest
    (root / "a.py").write_text("2")
    assert workdir.pack(root).digest != before


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"run.sh": "#!/bin/sh\n", "lib.py": ""})
    (root / "run.sh").chmod(0o755)
    infos = {i.filename: i.external_attr >> 16 for i in zipfile.ZipFile(io.BytesIO(workdir.pack(root).data)).infolist()}
    assert infos["run.sh"] & 0o777 == 0o755
    assert infos["lib.py"] & 0o777 == 0o644


def test_size_limit_names_size_limit_and_largest_file(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"weights.bin": os.urandom(300_000), "a.py": "x"})
    with pytest.raises(workdir.PackageError) as info:
        workdir.pack(root, max_bytes=100_000)
    message = str(info.value)
    assert "over the 97.7 KiB limit" in message
    assert "largest file: weights.bin" in message
    assert "add big files to .gitignore" in message


def test_ignored_big_file_does_not_count(tmp_path: Path) -> None:
    root = _tree(tmp_path, {".gitignore": "*.bin\n", "weights.bin": os.urandom(300_000), "a.py": "x"})
    assert workdir.pack(root, max_bytes=100_000).files == 2


def test_limit_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(workdir.MAX_BYTES_ENV, raising=False)
    assert workdir.max_package_bytes() is None  # unset: the broker's limit binds
    monkeypatch.setenv(workdir.MAX_BYTES_ENV, "50MiB")
    assert workdir.max_package_bytes() == 50 * 1024 * 1024
    monkeypatch.setenv(workdir.MAX_BYTES_ENV, "1234")
    assert workdir.max_package_bytes() == 1234
    monkeypatch.setenv(workdir.MAX_BYTES_ENV, "lots")
    with pytest.raises(workdir.PackageError, match="MINGA_MAX_PACKAGE_BYTES"):
        workdir.max_package_bytes()


def test_hint_names_the_limit_that_binds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The advice names only a setting that lifts the binding limit: the local cap when it
    is the lower one, else the broker's own setting (raising the local cap would do nothing)."""
    monkeypatch.delenv(workdir.MAX_BYTES_ENV, raising=False)
    broker = workdir.effective_limit(1_000_000, "set with --max-package-bytes")
    assert broker.max_bytes == 1_000_000
    assert workdir.MAX_BYTES_ENV not in broker.advice and "--max-package-bytes" in broker.advice
    monkeypatch.setenv(workdir.MAX_BYTES_ENV, "5000000")  # above the broker's: the broker binds
    assert workdir.effective_limit(1_000_000, "x").max_bytes == 1_000_000
    assert workdir.MAX_BYTES_ENV not in workdir.effective_limit(1_000_000, "x").advice
    monkeypatch.setenv(workdir.MAX_BYTES_ENV, "1000")  # below: this machine's cap binds
    local = workdir.effective_limit(1_000_000, "x")
    assert local.max_bytes == 1000 and workdir.MAX_BYTES_ENV in local.advice
    monkeypatch.delenv(workdir.MAX_BYTES_ENV)
    assert workdir.effective_limit(None).max_bytes == workdir.DEFAULT_MAX_BYTES  # a broker that does not say


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(workdir.PackageError, match="not a directory"):
        workdir.pack(tmp_path / "missing")
