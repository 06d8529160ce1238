"""Run every example program (tests/examples/meson.build passes their paths in DS_EXAMPLE_*).

The model is a tiny random deepseek2 model carrying the real DeepSeek-LLM vocabulary (from
../shared/fixtures; skipped when absent), so prompts are real text. Its replies are noise, but
greedy decoding is deterministic: the same prompt must give the same text in minimal,
host_loop and the Python example, and the same reply in `ds chat`, chat-cpp and the Python
example's --chat.

Run by hand:  DS_EXAMPLE_MINIMAL=build/examples/minimal ... python3 -m pytest tests/examples
(DS_BUILD_ROOT=build finds all of them).
"""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("DS_SOURCE_ROOT") or os.path.normpath(os.path.join(HERE, "..", ".."))
SHARED = os.environ.get("DS_SHARED_DIR") or os.path.join(ROOT, "..", "shared")
VOCAB = os.path.join(SHARED, "fixtures", "tokenizers", "deepseek-llm",
                     "ggml-vocab-deepseek-llm.gguf")
BUILD = os.environ.get("DS_BUILD_ROOT") or os.path.join(ROOT, "build")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PROMPT = "Hello world, said the"
N = 8
TIMEOUT = 120


def program(env_name, rel):
    p = os.environ.get(env_name) or os.path.join(BUILD, "examples", rel)
    if not os.path.isfile(p):
        pytest.skip("%s is not built (%s unset and %s absent)" % (rel, env_name, p))
    return p


def run(args, stdin=None, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT, env=e)


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    if not os.path.isfile(VOCAB):
        pytest.skip("shared fixture %s is absent (shared/ must sit beside the source tree)"
                    % VOCAB)
    out = str(tmp_path_factory.mktemp("model") / "tiny-llm.gguf")
    r = run([PYTHON, os.path.join(ROOT, "tools", "make-test-model.py"), "-o", out, "--preset",
             "tiny", "--seed", "5", "--vocab-from", VOCAB])
    if r.returncode != 0:
        if "No module named 'numpy'" in r.stderr:
            pytest.skip("tools/make-test-model.py needs numpy")
        pytest.fail("make-test-model.py failed:\n" + r.stderr)
    return out


@pytest.fixture(scope="session")
def reference_text(model):
    """The greedy continuation of PROMPT, from minimal."""
    r = run([program("DS_EXAMPLE_MINIMAL", "minimal"), model, PROMPT, str(N)])
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---- minimal -----------------------------------------------------------------------------

def test_minimal(model, reference_text):
    assert reference_text.startswith(PROMPT) and reference_text.endswith("\n")
    assert len(reference_text) > len(PROMPT) + 1
    r = run([program("DS_EXAMPLE_MINIMAL", "minimal"), model, PROMPT, str(N)])
    assert r.stdout == reference_text                   # deterministic
    assert "[%d tokens, stopped: limit]" % N in r.stderr


def test_minimal_errors(tmp_path):
    exe = program("DS_EXAMPLE_MINIMAL", "minimal")
    r = run([exe])
    assert r.returncode == 2 and "usage" in r.stderr
    r = run([exe, str(tmp_path / "missing.gguf")])
    assert r.returncode == 1 and "missing.gguf" in r.stderr


def test_minimal_source_is_short():
    with open(os.path.join(ROOT, "examples", "minimal.c")) as f:
        assert len(f.readlines()) < 80


# ---- host_loop ---------------------------------------------------------------------------

def test_host_loop(model, reference_text):
    r = run([program("DS_EXAMPLE_HOST_LOOP", "host_loop"), "-m", model, "-p", PROMPT, "-n",
             str(N), "--budget-ms", "0.5", "--work-ms", "0.4", "--chunk", "2"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == reference_text                   # same text, spread over frames
    frames = [line for line in r.stderr.splitlines() if line.startswith("frame ")]
    assert len(frames) >= 2     # a 0.5 ms budget cannot hold the whole generation
    assert "prefill chunks" in frames[0] and "tokens;" in frames[0]
    assert "%d tokens in %d frames" % (N, len(frames)) in r.stderr
    assert "stopped: limit" in r.stderr


def test_host_loop_frame_limit_and_usage(model):
    exe = program("DS_EXAMPLE_HOST_LOOP", "host_loop")
    r = run([exe, "-m", model, "-p", PROMPT, "-n", "50", "--frames", "3", "--work-ms", "0"])
    assert r.returncode == 0, r.stderr
    assert len([x for x in r.stderr.splitlines() if x.startswith("frame ")]) == 3
    r = run([exe])
    assert r.returncode == 2 and "usage" in r.stderr


# ---- the C++ wrapper ---------------------------------------------------------------------

def test_chat_cpp(model):
    exe = os.environ.get("DS_EXAMPLE_CHAT_CPP") or os.path.join(BUILD, "examples", "chat-cpp")
    if not os.path.isfile(exe):
        pytest.skip("chat-cpp is not built (no C++ compiler?)")
    r = run([exe, model, "--template", "deepseek2", "-n", str(N)], stdin="Hello\nHi\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert len(lines) == 3 and lines[2] == "" and lines[0] and lines[1]
    ds = run([program("DS_EXAMPLE_DS", "ds"), "chat", "-m", model, "--template", "deepseek2",
              "-n", str(N)], stdin="Hello\nHi\n")
    assert ds.stdout == r.stdout                        # the same conversation as ds chat
    # errors arrive as deepseek::Error with the library's message
    r = run([exe, model, "-n", "4"], stdin="Hello\n")
    assert r.returncode == 1 and "chat template" in r.stderr


# ---- ds chat -----------------------------------------------------------------------------

def ds_chat(model, stdin, *extra):
    return run([program("DS_EXAMPLE_DS", "ds"), "chat", "-m", model, "--template", "deepseek2",
                "-n", str(N)] + list(extra), stdin=stdin)


def test_ds_chat_pipe(model):
    r = ds_chat(model, "Hello\n/reset\nHi\n")
    assert r.returncode == 0, r.stderr
    replies = r.stdout.split("\n")
    assert len(replies) == 3 and replies[2] == "" and replies[0] and replies[1]
    assert "\033[" not in r.stdout and "> " not in r.stdout   # no prompt, no colours on a pipe
    assert "[conversation reset]" in r.stderr
    fresh = ds_chat(model, "Hi\n")
    assert fresh.stdout == replies[1] + "\n"            # /reset really starts over


def test_ds_chat_keeps_the_conversation(model):
    two = ds_chat(model, "Hello\nHi\n").stdout.split("\n")
    one = ds_chat(model, "Hi\n").stdout.split("\n")
    assert two[1] != one[0]                             # the second turn sees the first


def test_ds_chat_save_load(model, tmp_path):
    f = str(tmp_path / "conv.dss")
    r = ds_chat(model, "Hello\n/save %s\n" % f)
    assert r.returncode == 0 and os.path.isfile(f), r.stderr
    assert "[saved" in r.stderr
    later = ds_chat(model, "/load %s\nMore\n" % f)      # another process continues it
    assert later.returncode == 0 and "[loaded" in later.stderr, later.stderr
    g = str(tmp_path / "conv2.dss")
    same = ds_chat(model, "Hello\n/save %s\n/reset\nOther\n/load %s\nMore\n" % (g, g))
    assert same.returncode == 0, same.stderr
    assert same.stdout.split("\n")[2] == later.stdout.split("\n")[0]
    bad = ds_chat(model, "/load %s\nHi\n" % (tmp_path / "missing.dss"))
    assert bad.returncode == 0 and "/load" in bad.stderr and bad.stdout.strip()


def test_ds_chat_options_and_errors(model):
    r = ds_chat(model, "Hello\n", "--temp", "0.8", "--top-p", "0.9", "--seed", "7",
                "--hide-reasoning", "--system", "Be brief.")
    assert r.returncode == 0 and r.stdout.strip(), r.stderr
    exe = program("DS_EXAMPLE_DS", "ds")
    r = run([exe, "chat", "-m", model], stdin="Hello\n")   # this vocabulary has no template
    assert r.returncode == 14 and "--template" in r.stderr
    r = run([exe, "chat", "-m", model, "--template", "chatml"], stdin="")
    assert r.returncode == 1
    r = run([exe, "chat"], stdin="")
    assert r.returncode == 1 and "usage" in r.stderr
    r = run([exe, "chat", "--help"])
    assert r.returncode == 0 and "/save" in r.stdout
    r = run([exe, "--help"])
    assert "chat" in r.stdout
    r = ds_chat(model, "/nonsense\n/help\n/quit\nnot sent\n")
    assert r.returncode == 0 and r.stdout == "" and "unknown command" in r.stderr


def test_ds_chat_context_full(model):
    r = ds_chat(model, "a long message that does not fit\n" * 1 + "Hi\n", "-c", "12")
    assert r.returncode == 0, r.stderr
    assert "does not fit" in r.stderr or "context is full" in r.stderr


# ---- Python ------------------------------------------------------------------------------

def python_example(*args):
    env = {"PYTHONPATH": os.path.join(ROOT, "bindings", "python")}
    return run([PYTHON, os.path.join(ROOT, "examples", "python", "generate.py")] + list(args),
               env=env)


def test_python_generate(model, reference_text):
    if "DEEPSEEK_LIBRARY" not in os.environ:
        pytest.skip("DEEPSEEK_LIBRARY is not set")
    if os.environ.get("DS_SANITIZER_BUILD"):
        pytest.skip("sanitizer build: the library cannot be loaded into an uninstrumented python")
    r = python_example(model, "-p", PROMPT, "-n", str(N))
    assert r.returncode == 0, r.stderr
    assert r.stdout == reference_text
    assert "finished: length" in r.stderr


def test_python_chat(model):
    if "DEEPSEEK_LIBRARY" not in os.environ:
        pytest.skip("DEEPSEEK_LIBRARY is not set")
    if os.environ.get("DS_SANITIZER_BUILD"):
        pytest.skip("sanitizer build: the library cannot be loaded into an uninstrumented python")
    r = python_example(model, "-p", "Hello", "-n", str(N), "--chat", "--template", "deepseek2")
    assert r.returncode == 0, r.stderr
    ds = ds_chat(model, "Hello\n")
    assert r.stdout == ds.stdout
    r = python_example(model, "--chat")                 # no template: the library says so
    assert r.returncode == 1 and "chat template" in r.stderr


def test_python_default_model():
    """Without a model argument the shipped demo model is used, or the example says it is
    missing."""
    if "DEEPSEEK_LIBRARY" not in os.environ:
        pytest.skip("DEEPSEEK_LIBRARY is not set")
    if os.environ.get("DS_SANITIZER_BUILD"):
        pytest.skip("sanitizer build: the library cannot be loaded into an uninstrumented python")
    demo = os.path.join(ROOT, "models", "demo", "deepseek-v3-demo-q8_0.gguf")
    r = python_example("-n", "4")
    if os.path.isfile(demo):
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() and "[4 tokens" in r.stderr
    else:
        assert r.returncode == 2 and "no model" in r.stderr
