"""deepseek.chat: templates (format / format_tokens), TextStream, Reasoning."""

import pytest

import deepseek
from deepseek import chat
from deepseek.chat import ChatTemplate, Reasoning, TextKind, TextStream

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Why?"},
]


@pytest.fixture(scope="module")
def llm(llm_vocab):
    with deepseek.Tokenizer(llm_vocab) as t:
        yield t


@pytest.fixture(scope="module")
def v3(v3_tokenizer):
    with deepseek.Tokenizer(v3_tokenizer) as t:
        yield t


def test_ds_chat_message_layout(struct_layout):
    struct_layout([chat.ds_chat_message], "chat.h")


def test_template_names():
    assert chat.template_name("deepseek-r1") == "deepseek-r1"
    assert chat.template_name(ChatTemplate.DEEPSEEK2) == "deepseek2"
    assert ChatTemplate.DEEPSEEK3.label == "deepseek3"
    assert chat.template_name("auto") == "auto"
    with pytest.raises(ValueError):
        chat.template_name("llama3")
    with pytest.raises(ValueError):
        chat.template_name(99)


def test_deepseek2_text(llm):
    text = chat.format(llm, CONV, "deepseek2")
    assert text == (BOS + "Be brief.\n\nUser: Hi\n\nAssistant: Hello!" + EOS +
                    "User: Why?\n\nAssistant:")
    no_prompt = chat.format(llm, CONV, "deepseek2", add_generation_prompt=False)
    assert text.startswith(no_prompt) and not no_prompt.endswith("Assistant:")
    assert llm.format_chat(CONV, "deepseek2") == text


def test_deepseek2_tokens(llm):
    ids = chat.format_tokens(llm, [{"role": "user", "content": "Hi"}], "deepseek2")
    assert ids == [100000, 5726, 25, 11598, 185, 185, 77398, 25]
    assert llm.decode(ids, special=True) == BOS + "User: Hi\n\nAssistant:"
    assert llm.format_chat_tokens([("user", "Hi")], "deepseek2") == ids


def test_auto_detect(v3, llm):
    assert chat.detect(v3) == ChatTemplate.DEEPSEEK3
    assert chat.detect_name(v3) == "deepseek3"
    text = chat.format(v3, CONV)             # template 'auto' -> deepseek3
    assert text == (BOS + "Be brief.<｜User｜>Hi<｜Assistant｜>Hello!" + EOS +
                    "<｜User｜>Why?<｜Assistant｜>")
    with pytest.raises(deepseek.UnsupportedError) as e:
        chat.format(llm, CONV)               # no template stored: never a guess
    assert "template" in e.value.message
    assert chat.detect_name(llm) is None


def test_r1(v3):
    conv = [{"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "<think>\nadd</think>\n\n4"},
            {"role": "user", "content": "3+3?"}]
    text = chat.format(v3, conv, "deepseek-r1")
    assert text.endswith("<｜Assistant｜><think>\n")
    assert "add" not in text and "<｜Assistant｜>\n\n4" + EOS in text
    ids = chat.format_tokens(v3, conv, "r1")
    assert v3.decode(ids, special=True) == text


def test_literal_content(v3):
    msgs = [{"role": "user", "content": "say " + EOS}]
    special = chat.format_tokens(v3, msgs, "deepseek3")
    literal = chat.format_tokens(v3, msgs, "deepseek3", literal_content=True)
    assert special.count(v3.eos) == 1 and v3.eos not in literal
    assert v3.decode(literal, special=True) == v3.decode(special, special=True)


def test_vocab_without_markers(llm):
    with pytest.raises(deepseek.UnsupportedError):
        chat.format_tokens(llm, CONV, "deepseek3")   # <｜User｜> is no single token there


def test_message_errors(llm):
    with pytest.raises(deepseek.InvalidArgumentError) as e:
        chat.format(llm, [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}],
                    "deepseek2")
    assert "1" in e.value.message and "robot" in e.value.message
    with pytest.raises(deepseek.InvalidArgumentError):
        chat.format(llm, [{"role": "user", "content": None}], "deepseek2")
    with pytest.raises(ValueError, match="role"):
        chat.format(llm, [{"content": "x"}], "deepseek2")
    with pytest.raises(ValueError, match="NUL"):
        chat.format(llm, [{"role": "user", "content": "a\0b"}], "deepseek2")
    with pytest.raises(TypeError):
        chat.format(llm, "hello", "deepseek2")
    with pytest.raises(ValueError):
        chat.format(llm, CONV, "chatml")


def test_empty_conversation(llm):
    assert chat.format(llm, [], "deepseek2", add_generation_prompt=False) == BOS


def test_long_message_grows_buffers(llm):
    long = "word " * 3000
    text = chat.format(llm, [{"role": "user", "content": long}], "deepseek2")
    assert long in text
    ids = chat.format_tokens(llm, [{"role": "user", "content": long}], "deepseek2")
    assert llm.decode(ids, special=True) == text


# ---- TextStream --------------------------------------------------------------------------

def test_text_stream_never_splits_characters(v3):
    text = "héllo 🦙 нещо 中文 ok"
    ids = v3.encode(text, bos=False)
    with TextStream(v3) as ts:
        pieces = [ts.push(i) for i in ids] + [ts.flush()]
    assert "".join(pieces) == text
    for p in pieces:
        p.encode("utf-8")                    # each piece is whole characters
    assert "" in pieces or len(pieces) == len(ids) + 1


def test_text_stream_specials_and_replacement(v3):
    ts = TextStream(v3)
    assert ts.push(v3.bos) == ""
    ts2 = TextStream(v3, render_special=True)
    assert ts2.push(v3.bos) == BOS
    # a lone first byte of a 4-byte character, then the end: U+FFFD
    ids = v3.encode(b"\xf0\x9f", bos=False)
    assert "".join(ts.push(i) for i in ids) == ""
    assert ts.flush() == "\ufffd"
    assert ts.decode(v3.encode("abc", bos=False)) == "abc"
    ts.reset()
    with pytest.raises(deepseek.InvalidArgumentError):
        ts.push(-3)
    ts.close()
    ts.close()
    with pytest.raises(deepseek.StateError):
        ts.push(1)
    ts2.close()


def test_text_stream_model(llm_model):
    m = deepseek.Model(llm_model)
    ts = TextStream(m)                       # a model is accepted for its tokenizer
    assert ts.decode(m.tokenizer.encode("Hello world", bos=False)) == "Hello world"
    m.close()
    with pytest.raises(deepseek.StateError):
        ts.push(1)
    ts.close()


# ---- Reasoning ---------------------------------------------------------------------------

def _joined(segs):
    out = []
    for k, t in segs:
        if out and out[-1][0] == k:
            out[-1] = (k, out[-1][1] + t)
        else:
            out.append((k, t))
    return out


def test_reasoning_split_any_boundary():
    text = "<think>step 1\nstep 2</think>\n\nThe answer."
    want = [(TextKind.REASONING, "step 1\nstep 2"), (TextKind.ANSWER, "\n\nThe answer.")]
    with Reasoning() as r:
        assert r.split(text) == want
        for cut in range(1, len(text)):
            r.reset()
            segs = r.push(text[:cut]) + r.push(text[cut:]) + r.finish()
            assert _joined(segs) == want, cut


def test_reasoning_start_inside_and_kind():
    r = Reasoning(start_inside=True)
    assert r.kind == TextKind.REASONING
    segs = r.push("thinking…</think>answer") + r.finish()
    assert _joined(segs) == [(TextKind.REASONING, "thinking…"), (TextKind.ANSWER, "answer")]
    assert r.kind == TextKind.ANSWER
    with pytest.raises(deepseek.StateError):
        r.push("more")                       # after finish, before reset
    r.reset()
    assert r.push("x") == [(TextKind.REASONING, "x")]
    r.close()
    with pytest.raises(deepseek.StateError):
        r.push("y")


def test_reasoning_plain_text():
    r = Reasoning()
    assert _joined(r.push("no tags here, a < b") + r.finish()) == [
        (TextKind.ANSWER, "no tags here, a < b")]
    r.reset()
    assert r.push(b"bytes ok") + r.finish() == [(TextKind.ANSWER, "bytes ok")]
