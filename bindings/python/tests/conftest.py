"""Fixtures of the Python binding tests.

Run from the source tree:
    DEEPSEEK_LIBRARY=build/libdeepseek.so.0 PYTHONPATH=bindings/python \
        /usr/bin/python3 -m pytest bindings/python/tests

Without PYTHONPATH the package next to this directory is used; without DEEPSEEK_LIBRARY the
library is looked for as deepseek._lib documents ($DEEPSEEK_BUILD_DIR, build/, the system).
"""

import os
import shutil
import subprocess
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
BINDINGS_DIR = os.path.dirname(TESTS_DIR)
REPO_ROOT = os.path.normpath(os.path.join(BINDINGS_DIR, "..", ".."))

if BINDINGS_DIR not in sys.path:
    sys.path.insert(0, BINDINGS_DIR)


def shared_dir():
    """The project's shared/ directory (beside the source tree), or $DEEPSEEK_SHARED_DIR."""
    return os.environ.get("DEEPSEEK_SHARED_DIR") or os.path.normpath(
        os.path.join(REPO_ROOT, "..", "shared"))


@pytest.fixture(scope="session")
def repo_root():
    return REPO_ROOT


@pytest.fixture(scope="session")
def vocab_gguf():
    """A vocab-only GGUF of architecture 'llama' (DeepSeek-LLM tokenizer) from shared/."""
    p = os.path.join(shared_dir(), "fixtures", "tokenizers", "deepseek-llm",
                     "ggml-vocab-deepseek-llm.gguf")
    if not os.path.isfile(p):
        pytest.skip("shared fixture %s is absent (shared/ must sit beside the source tree, or "
                    "set DEEPSEEK_SHARED_DIR)" % p)
    return p


def _make_model(tmp_path_factory, name, *args):
    tool = os.path.join(REPO_ROOT, "tools", "make-test-model.py")
    if not os.path.isfile(tool):
        pytest.skip("tools/make-test-model.py is absent: cannot make a deepseek2 test model")
    out = str(tmp_path_factory.mktemp("models") / name)
    r = subprocess.run([sys.executable, tool, "-o", out] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        if "No module named 'numpy'" in r.stdout:
            pytest.skip("tools/make-test-model.py needs numpy (apt-get install python3-numpy)")
        pytest.fail("tools/make-test-model.py %s failed:\n%s" % (" ".join(args), r.stdout))
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """A seeded random deepseek2 GGUF (preset tiny, f32 weights, split MLA tensors)."""
    return _make_model(tmp_path_factory, "tiny.gguf", "--preset", "tiny", "--type", "f32",
                       "--name", "py-tiny", "--seed", "7")


@pytest.fixture(scope="session")
def garbage_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("bad") / "garbage.gguf"
    p.write_bytes(b"this is not a GGUF file at all\n" * 40)
    return str(p)


@pytest.fixture(scope="session")
def c_compiler():
    """The system C compiler ($CC, cc, gcc or clang), or skip."""
    for c in [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if c and shutil.which(c):
            return shutil.which(c)
    pytest.skip("no C compiler found ($CC, cc, gcc, clang): cannot measure the C structs")
