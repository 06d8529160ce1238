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


# ------------------------------------------------------------------------------------------
# Real vocabularies, models with a real vocabulary, C struct layouts
# (test_tokenizer.py, test_chat.py, test_session.py)
# ------------------------------------------------------------------------------------------

def tokenizer_fixture(*parts):
    """Path of a file under shared/fixtures/tokenizers, or skip with a clear message."""
    p = os.path.join(shared_dir(), "fixtures", "tokenizers", *parts)
    if not os.path.exists(p):
        pytest.skip("shared fixture %s is absent (shared/ must sit beside the source tree, or "
                    "set DEEPSEEK_SHARED_DIR)" % p)
    return p


@pytest.fixture(scope="session")
def llm_vocab():
    """DeepSeek-LLM vocab-only GGUF (no chat template)."""
    return tokenizer_fixture("deepseek-llm", "ggml-vocab-deepseek-llm.gguf")


@pytest.fixture(scope="session")
def coder_vocab():
    """DeepSeek-Coder vocab-only GGUF."""
    return tokenizer_fixture("deepseek-coder", "ggml-vocab-deepseek-coder.gguf")


@pytest.fixture(scope="session")
def v3_tokenizer():
    """Directory of the DeepSeek-V3 tokenizer.json + tokenizer_config.json (V3 chat template)."""
    d = tokenizer_fixture("deepseek-v3")
    tokenizer_fixture("deepseek-v3", "tokenizer.json")
    return d


@pytest.fixture(scope="session")
def llm_model(tmp_path_factory, llm_vocab):
    """A seeded random tiny deepseek2 model carrying the real DeepSeek-LLM vocabulary
    (102400 tokens; no chat template: chat needs template='deepseek2')."""
    return _make_model(tmp_path_factory, "tiny-llm.gguf", "--preset", "tiny", "--seed", "11",
                       "--name", "py-tiny-llm", "--vocab-from", llm_vocab)


@pytest.fixture(scope="session")
def llm_model_other(tmp_path_factory, llm_vocab):
    """Same shape and vocabulary as llm_model, other weights (a different model)."""
    return _make_model(tmp_path_factory, "tiny-llm-2.gguf", "--preset", "tiny", "--seed", "12",
                       "--name", "py-tiny-llm-2", "--vocab-from", llm_vocab)


@pytest.fixture(scope="session")
def struct_layout(c_compiler, tmp_path_factory):
    """check(structs, header): compile a C program including deepseek/<header> and compare
    sizeof/alignment and every field's offset/size with the ctypes mirrors."""
    import ctypes
    from deepseek import _lib
    include = os.path.join(REPO_ROOT, "include")

    def version_dir(tmp):
        for d in (os.path.join(os.path.dirname(os.path.realpath(_lib.path)), "include"),
                  os.path.join(REPO_ROOT, "build", "include")):
            if os.path.isfile(os.path.join(d, "deepseek", "version.h")):
                return d
        d = tmp / "gen-include"
        (d / "deepseek").mkdir(parents=True)
        major, minor, patch = _lib.version_tuple()
        (d / "deepseek" / "version.h").write_text(
            "#define DS_VERSION_MAJOR %d\n#define DS_VERSION_MINOR %d\n#define DS_VERSION_PATCH "
            "%d\n#define DS_VERSION_NUMBER %d\n#define DS_VERSION_STRING \"%d.%d.%d\"\n"
            "#define DS_ABI_MAJOR %d\n" % (major, minor, patch, int(_lib.ds_version()), major,
                                            minor, patch, _lib.ABI_MAJOR))
        return str(d)

    def check(structs, header):
        tmp = tmp_path_factory.mktemp("layout")
        lines = ["#include <stdio.h>", "#include <stddef.h>",
                 '#include "deepseek/%s"' % header, "int main(void) {"]
        for s in structs:
            n = s.__name__
            lines.append('printf("%s sizeof %%zu %%zu\\n", sizeof(%s), _Alignof(%s));'
                         % (n, n, n))
            for f, _t in s._fields_:
                lines.append('printf("%s %s %%zu %%zu\\n", offsetof(%s, %s), '
                             'sizeof(((%s *)0)->%s));' % (n, f, n, f, n, f))
        lines += ["return 0;", "}"]
        src = tmp / "sizes.c"
        src.write_text("\n".join(lines) + "\n")
        exe = str(tmp / "sizes")
        r = subprocess.run([c_compiler, "-std=c11", "-I", include, "-I", version_dir(tmp),
                            str(src), "-o", exe], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        assert r.returncode == 0, r.stdout
        out = subprocess.run([exe], stdout=subprocess.PIPE, universal_newlines=True,
                             check=True).stdout
        c = {}
        for line in out.splitlines():
            name, field, a, b = line.split()
            c[(name, field)] = (int(a), int(b))
        for s in structs:
            n = s.__name__
            assert c[(n, "sizeof")] == (ctypes.sizeof(s), ctypes.alignment(s)), n
            for f, _t in s._fields_:
                desc = getattr(s, f)
                assert c[(n, f)] == (desc.offset, desc.size), "%s.%s" % (n, f)
    return check


def needs(*names):
    """Skip unless the loaded library exports every C function in `names` (for session.h
    functions that are being added: the skip message names what is missing)."""
    from deepseek import _lib
    missing = [n for n in names if not hasattr(_lib.lib, n)]
    if missing:
        pytest.skip("waiting for %s (not exported by %s)" % (", ".join(missing), _lib.path))
