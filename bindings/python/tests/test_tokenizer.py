"""deepseek.Tokenizer against the real vocabularies in shared/fixtures/tokenizers (skipped when
absent) and the tokenizer of a model file."""

import threading

import pytest

import deepseek
from deepseek import Tokenizer, TokenType

from conftest import tokenizer_fixture

SEP = "\n__ggml_vocab_test__\n"


def _cases(gguf):
    """(text, ids) pairs of the llama.cpp vocab test files next to a vocab GGUF."""
    inp = open(gguf + ".inp", encoding="utf-8").read().split(SEP)
    out = open(gguf + ".out", encoding="utf-8").read().split("\n")
    return [(t, [int(x) for x in o.split()]) for t, o in zip(inp, out)]


@pytest.fixture(scope="module")
def llm(llm_vocab):
    with Tokenizer(llm_vocab) as t:
        yield t


@pytest.fixture(scope="module")
def v3(v3_tokenizer):
    with Tokenizer(v3_tokenizer) as t:
        yield t


# ---- known ids -------------------------------------------------------------------------

def test_llm_known_ids(llm):
    assert llm.encode("Hello world", bos=False) == [17464, 1843]
    assert llm.encode(" Hello world", bos=False) == [37727, 1843]
    assert llm.encode("Hello, world!", bos=False) == [17464, 11, 1843, 0]
    assert llm.bos == 100000 and llm.eos == 100001
    assert llm.n_vocab == len(llm) == 102400
    assert llm.add_bos is True
    assert llm.encode("Hello world") == [100000, 17464, 1843]   # bos=None: the model's setting
    assert llm.encode("Hello world", bos=True) == [100000, 17464, 1843]
    assert llm.pre_name == "deepseek-llm"


def test_v3_known_ids(v3):
    assert v3.encode("Hello world", bos=False) == [19923, 2058]
    assert v3.encode("The quick brown fox jumps over the lazy dog.", bos=False) == [
        671, 4787, 13769, 46012, 54994, 1060, 270, 41638, 6397, 16]
    assert v3.bos == 0 and v3.eos == 1
    assert v3.encode("Hello world")[0] == v3.bos
    assert v3.pre_name == "deepseek-v3"


@pytest.mark.parametrize("name", ["deepseek-llm", "deepseek-coder"])
def test_llama_cpp_vocab_cases(name):
    gguf = tokenizer_fixture(name, "ggml-vocab-%s.gguf" % name)
    tokenizer_fixture(name, "ggml-vocab-%s.gguf.out" % name)
    with Tokenizer(gguf) as tok:
        cases = _cases(gguf)
        assert len(cases) > 20
        for text, ids in cases:
            assert tok.encode(text, bos=False) == ids, repr(text)
            assert tok.decode(ids) == text


# ---- specials, pieces, round trips -----------------------------------------------------

def test_special_tokens(v3):
    user = v3.token_id("<｜User｜>")
    assert v3.encode("<｜User｜>hi", special=True, bos=False)[0] == user
    plain = v3.encode("<｜User｜>hi", bos=False)
    assert user not in plain
    assert v3.decode(plain) == "<｜User｜>hi"
    assert v3.decode([v3.bos, user]) == ""                      # control tokens hidden
    assert v3.decode([v3.bos, user], special=True) == "<｜begin▁of▁sentence｜><｜User｜>"
    assert v3.token_type(user) == TokenType.CONTROL
    assert v3.is_special(user) and not v3.is_special(19923)
    assert v3.is_eog(v3.eos) and not v3.is_eog(19923)
    assert v3.token_to_piece(user) == b""
    assert v3.token_to_piece(user, special=True) == "<｜User｜>".encode()


def test_pieces_and_text(llm):
    assert llm.token_to_piece(1843) == b" world"
    assert llm.token_text(1843) == "Ġworld"
    assert llm.token_id("Ġworld") == 1843
    assert llm.token_type(1843) == TokenType.NORMAL
    assert llm.token_type(10 ** 7) == TokenType.UNDEFINED
    with pytest.raises(deepseek.NotFoundError):
        llm.token_id("no such token text \u2603\u2603")
    with pytest.raises(deepseek.InvalidArgumentError):
        llm.token_text(-1)
    with pytest.raises(deepseek.InvalidArgumentError):
        llm.token_to_piece(llm.n_vocab)


@pytest.mark.parametrize("text", ["", "a", "Führer 🦙 нещо", "x" * 5000, "  \n\t tabs"])
def test_round_trip(llm, v3, text):
    for tok in (llm, v3):
        assert tok.decode(tok.encode(text, bos=False)) == text


def test_bytes_are_lossless(v3):
    raw = b"ok \xff\xfe broken \xe2\x82 utf-8"
    ids = v3.encode(raw, bos=False)
    assert v3.decode_bytes(ids) == raw
    assert "\ufffd" in v3.decode(ids)


def test_decode_errors(llm):
    with pytest.raises(deepseek.InvalidArgumentError) as e:
        llm.decode([1, 2, llm.n_vocab + 5])
    assert "2" in e.value.message            # the message names the bad index
    with pytest.raises(TypeError):
        llm.decode(["a"])
    with pytest.raises(TypeError):
        llm.encode(12)
    with pytest.raises(TypeError):
        llm.encode("x", bos="yes")


def test_template_names(llm, v3):
    assert llm.chat_template is None and llm.template is None
    assert "<｜Assistant｜>" in v3.chat_template
    assert v3.template == "deepseek3"


def test_open_errors(tmp_path, garbage_file):
    with pytest.raises(deepseek.DeepSeekIOError) as e:
        Tokenizer(str(tmp_path / "missing.gguf"))
    assert "missing.gguf" in e.value.message
    with pytest.raises(deepseek.DeepSeekError) as e:
        Tokenizer(garbage_file)
    assert e.value.status < 0 and e.value.message


def test_close_and_threads(llm_vocab):
    tok = Tokenizer(llm_vocab)
    results = []

    def work():
        results.append(tok.encode("Hello world " * 50, bos=False))
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r == results[0] for r in results)
    tok.close()
    tok.close()
    assert tok.closed
    with pytest.raises(deepseek.StateError):
        tok.encode("x")


def test_model_tokenizer(llm_model):
    m = deepseek.Model(llm_model)
    tok = m.tokenizer
    assert tok is m.tokenizer
    assert tok.encode("Hello world", bos=False) == [17464, 1843]
    assert tok.n_vocab == m.info["n_vocab"]
    m.close()
    assert tok.closed                        # the model owns it
    with pytest.raises(deepseek.StateError, match="model"):
        tok.encode("x")


def test_model_without_tokenizer(tiny_model):
    with deepseek.Model(tiny_model) as m:
        with pytest.raises(deepseek.UnsupportedError, match="tokenizer"):
            m.tokenizer
        with pytest.raises(deepseek.UnsupportedError):
            deepseek.chat.format(m, [{"role": "user", "content": "x"}], "deepseek2")
    with pytest.raises(TypeError):
        deepseek.chat.format("not a tokenizer", [])


def test_vocab_only_model_tokenizer(llm_vocab):
    with deepseek.Model(llm_vocab, vocab_only=True) as m:
        assert m.tokenizer.encode("Hello world", bos=False) == [17464, 1843]
