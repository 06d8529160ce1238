"""deepseek.Session on a tiny random deepseek2 model carrying the real DeepSeek-LLM vocabulary:
feed/step/logits, generate() as an iterator, chat(), rewind/reset, save/load, cancel, sampler
settings, stop reasons, batch steps, memory, errors."""

import threading
import types

import pytest

import deepseek
from deepseek import Session, StopReason, TextKind
from deepseek import session as S

from conftest import needs

PROMPT = "Hello world, this is a test of"


@pytest.fixture(scope="module")
def model(llm_model):
    with deepseek.Model(llm_model) as m:
        yield m


@pytest.fixture
def sess(model):
    with model.session(n_ctx=256) as s:
        yield s


def _greedy_tokens(model, prompt, n, **params):
    with model.session(n_ctx=256, **params) as s:
        s.feed(prompt)
        return [s.step() for _ in range(n)]


# ---- structs, facts ----------------------------------------------------------------------

def test_struct_layouts(struct_layout):
    struct_layout([S.ds_session_params, S.ds_model_memory_info], "session.h")


def test_open_and_facts(model):
    s = Session(model, n_ctx=64)
    assert s.n_ctx == 64 and s.n_tokens == 0 and len(s) == 0 and s.tokens == []
    assert s.memory > 0
    assert s.params["n_ctx"] == 64
    assert s.tokenizer is model.tokenizer
    assert "0/64" in repr(s)
    with s:
        pass
    assert s.closed and "closed" in repr(s)
    s.close()
    with pytest.raises(deepseek.StateError):
        s.feed([1])


def test_bad_params(model):
    with pytest.raises(TypeError, match="unknown session parameter"):
        model.session(n_cxt=5)
    with pytest.raises(deepseek.InvalidArgumentError) as e:
        model.session(top_p=0.0)
    assert e.value.message
    with pytest.raises(ValueError):
        model.session(kv_type="f8")


def test_model_close_closes_sessions(llm_model):
    m = deepseek.Model(llm_model)
    s = m.session(n_ctx=32)
    m.close()
    assert s.closed
    with pytest.raises(deepseek.StateError):
        s.step()


def test_vocab_only_model_has_no_sessions(llm_vocab):
    with deepseek.Model(llm_vocab, vocab_only=True) as m:
        with pytest.raises(deepseek.UnsupportedError, match="vocab"):
            m.session()


# ---- feed, step, logits ------------------------------------------------------------------

def test_feed_text_and_bos(sess, model):
    tok = model.tokenizer
    n = sess.feed("Hello world")
    assert sess.tokens == [tok.bos, 17464, 1843] and n == 3
    assert sess.feed(" again") == len(tok.encode(" again", bos=False))
    assert sess.tokens[3:] == tok.encode(" again", bos=False)   # no second BOS
    sess.reset()
    sess.feed("Hello", bos=False)
    assert sess.tokens[0] != tok.bos
    sess.feed([tok.bos, 17464])                                   # ids as given
    assert sess.tokens[-2:] == [tok.bos, 17464]


def test_step_is_greedy_argmax(sess):
    sess.feed(PROMPT)
    for _ in range(4):
        lg = sess.logits()
        best = max(range(len(lg)), key=lambda i: (lg[i], -i))
        assert sess.step() == best
        assert sess.tokens[-1] == best


def test_logits_forms(model):
    with model.session(n_ctx=64, logits_all=True) as s:
        ids = s.tokenizer.encode(PROMPT)
        s.feed(ids)
        a = s.logits(numpy=True)
        m = s.logits(numpy=False)
        assert isinstance(m, memoryview) and len(m) == len(a) == model.info["n_vocab"]
        assert m.tolist()[:10] == pytest.approx(list(a[:10]))
        first = s.logits(0)
        assert list(first[:5]) != list(a[:5])
        assert list(s.logits(len(ids) - 1)[:5]) == list(a[:5])
        with pytest.raises(deepseek.InvalidArgumentError):
            s.logits(len(ids))


def test_deterministic(model):
    assert _greedy_tokens(model, PROMPT, 6) == _greedy_tokens(model, PROMPT, 6)


def test_step_errors(sess):
    with pytest.raises(deepseek.StateError) as e:
        sess.step()                          # nothing fed
    assert e.value.message
    with pytest.raises(deepseek.StateError):
        sess.logits()
    with pytest.raises(deepseek.InvalidArgumentError) as e:
        sess.feed([1, 2, 10 ** 6])
    assert "index 2" in e.value.message
    assert sess.n_tokens == 0                # nothing was fed
    with pytest.raises(TypeError):
        sess.feed([1.5])


def test_context_full(model):
    with model.session(n_ctx=16) as s:
        with pytest.raises(deepseek.ContextFullError) as e:
            s.feed(list(range(100, 120)))
        assert "16" in e.value.message and s.n_tokens == 0
        s.feed(list(range(100, 110)))
        out = list(s.generate(max_tokens=50))
        assert s.finish_reason == "context_full"
        assert s.n_tokens == 16 and len(s.last_tokens) == 6 and out


# ---- generate / chat ---------------------------------------------------------------------

def test_generate_is_an_iterator(sess, model):
    it = sess.generate(PROMPT, max_tokens=12)
    assert isinstance(it, types.GeneratorType) and iter(it) is it
    n_prompt = sess.n_tokens                 # the prompt is fed at once
    pieces = []
    for p in it:
        assert isinstance(p, str) and p
        pieces.append(p)
    assert sess.finish_reason == "length"
    assert len(sess.last_tokens) == 12
    assert sess.tokens[n_prompt:] == sess.last_tokens
    assert "".join(pieces) == model.tokenizer.decode(sess.last_tokens)
    assert sess.last_tokens == _greedy_tokens(model, PROMPT, 12)


def test_generate_kinds_and_interrupt(sess):
    it = sess.generate(PROMPT, max_tokens=20, kinds=True)
    k, text = next(it)
    assert k == TextKind.ANSWER and isinstance(text, str)
    it.close()                               # the consumer stops early
    assert sess.finish_reason == "interrupted"


def test_generate_continues(sess, model):
    full = _greedy_tokens(model, PROMPT, 10)
    list(sess.generate(PROMPT, max_tokens=4))
    assert sess.last_tokens == full[:4]
    assert sess.done
    list(sess.generate(max_tokens=6))        # a new generation after the stopped one
    assert sess.last_tokens == full[4:10]
    sess.rewind(0)
    list(sess.generate(max_tokens=2))
    assert sess.last_tokens == _greedy_tokens(model, PROMPT, 12)[10:]


def test_rewind(sess, model):
    list(sess.generate(PROMPT, max_tokens=8))
    gen = list(sess.last_tokens)
    n = sess.n_tokens
    sess.rewind(4)
    assert sess.n_tokens == n - 4 and sess.tokens[-1] == gen[3]
    assert not sess.has_logits()
    with pytest.raises(deepseek.StateError):
        sess.step()
    list(sess.generate(max_tokens=4))        # re-runs the last token, then continues
    assert sess.last_tokens == gen[4:]
    with pytest.raises(deepseek.InvalidArgumentError):
        sess.rewind(sess.n_tokens + 1)
    assert sess.n_tokens == n
    with pytest.raises(ValueError):
        sess.rewind(-1)


def test_reset(sess):
    sess.feed(PROMPT)
    sess.reset()
    assert sess.n_tokens == 0
    with pytest.raises(deepseek.StateError, match="empty"):
        sess.generate(max_tokens=2)


def test_chat(sess, model):
    msgs = [{"role": "user", "content": "Hi"}]
    reply = "".join(sess.chat(msgs, max_tokens=6, template="deepseek2"))
    assert sess.finish_reason in ("length", "eos")
    prompt = deepseek.chat.format_tokens(model, msgs, "deepseek2")
    assert sess.tokens[:len(prompt)] == prompt
    assert reply == model.tokenizer.decode(sess.last_tokens, special=False)
    # the next turn reuses the conversation so far: only the new part runs
    msgs += [{"role": "assistant", "content": reply}, {"role": "user", "content": "More"}]
    full = deepseek.chat.format_tokens(model, msgs, "deepseek2")
    list(sess.chat(msgs, max_tokens=3, template="deepseek2"))
    assert sess.tokens[:len(full)] == full
    ran = sess.sync(full)                    # already there: only the last token re-runs
    assert ran == 1


def test_chat_errors(sess):
    msgs = [{"role": "user", "content": "Hi"}]
    with pytest.raises(deepseek.UnsupportedError, match="template"):
        sess.chat(msgs)                      # this vocabulary has no chat template
    with pytest.raises(deepseek.UnsupportedError):
        sess.chat(msgs, template="deepseek3")
    with pytest.raises(deepseek.InvalidArgumentError):
        sess.chat([{"role": "bot", "content": "x"}], template="deepseek2")
    with model_session(sess.model, n_ctx=8) as small:
        with pytest.raises(deepseek.ContextFullError):
            small.chat([{"role": "user", "content": "a long message " * 5}],
                       template="deepseek2")


def model_session(model, **kw):
    return model.session(**kw)


def test_reasoning_modes(model):
    prompt = "Question: why?<think>\n"
    with model.session(n_ctx=128, reasoning="on") as s:
        segs = list(s.generate(prompt, max_tokens=6, kinds=True))
        assert segs and all(k == TextKind.REASONING for k, _ in segs)
        assert list(s.generate(prompt, max_tokens=6, hide_reasoning=True)) == []
    with model.session(n_ctx=128, reasoning="off") as s:
        segs = list(s.generate(prompt, max_tokens=6, kinds=True))
        assert segs and all(k == TextKind.ANSWER for k, _ in segs)


# ---- stop reasons, text pieces, sampler settings -----------------------------------------

def test_stop_limit_and_pieces(model):
    needs("ds_session_stop_reason", "ds_session_text", "ds_session_n_generated",
          "ds_stop_reason_name")
    with model.session(n_ctx=128, max_tokens=3) as s:
        s.feed(PROMPT)
        assert s.stop_reason == StopReason.NONE and not s.done
        toks, text = [], []
        while not s.done:
            toks.append(s.step())
            text += s.pieces()
        assert s.stop_reason == StopReason.LIMIT and s.n_generated == 3
        assert StopReason.LIMIT.label == "limit" and S.stop_reason_name(0) == "none"
        assert "".join(text) == model.tokenizer.decode(toks)
        assert s.step() == -1                # already stopped: nothing sampled
        assert s.pieces() == []
        s.feed(" more")                      # a new generation
        assert not s.done and s.n_generated == 0


def test_stop_eos_via_logit_bias(model):
    needs("ds_session_set_logit_bias", "ds_session_stop_reason", "ds_session_text")
    eos = model.tokenizer.eos
    with model.session(n_ctx=64) as s:
        s.set_logit_bias(eos, 1000.0)
        s.feed(PROMPT)
        n = s.n_tokens
        assert list(s.generate(max_tokens=5)) == []
        assert s.finish_reason == "eos" and s.stop_reason == StopReason.EOS
        assert s.last_tokens == [eos] and s.n_tokens == n      # reported, not appended
        s.clear_logit_bias()
        s.feed(PROMPT)
        list(s.generate(max_tokens=2))
        assert s.finish_reason == "length"
        with pytest.raises(deepseek.InvalidArgumentError):
            s.set_logit_bias(10 ** 7, 1.0)


def test_logit_bias_ban(model):
    needs("ds_session_set_logit_bias")
    first = _greedy_tokens(model, PROMPT, 1)[0]
    with model.session(n_ctx=64, logit_bias={first: float("-inf")}) as s:
        s.feed(PROMPT)
        assert s.step() != first


def test_stop_strings(model):
    needs("ds_session_set_stop_strings", "ds_session_text")
    with model.session(n_ctx=128) as s:
        full = "".join(s.generate(PROMPT, max_tokens=12))
        assert len(full) > 6
        stop = full[3:6]
        s.reset()
        text = "".join(s.generate(PROMPT, max_tokens=12, stop=[stop]))
        assert s.finish_reason == "stop" and s.stop_reason == StopReason.STRING
        assert stop not in text and full.startswith(text)
        assert s.stop_strings == []          # restored after the generation
        with pytest.raises(deepseek.InvalidArgumentError):
            s.set_stop_strings([""])
    with model.session(n_ctx=64, stop=["xyz", "\n\n"]) as t:
        assert t.stop_strings == ["xyz", "\n\n"]
        t.set_stop_strings([])
        assert t.stop_strings == []


def test_sampling(model):
    needs("ds_session_set_sampling", "ds_session_set_seed", "ds_session_text")
    with model.session(n_ctx=256) as s:
        def run(**kw):
            s.reset()
            list(s.generate(PROMPT, max_tokens=8, **kw))
            return list(s.last_tokens)
        a = run(temperature=1.5, seed=5)
        b = run(temperature=1.5, seed=5)
        greedy = run()
        assert a == b                        # same seed, same tokens
        assert a != greedy
        assert s.params["temperature"] == 0.0   # restored after the generation
        with pytest.raises(deepseek.InvalidArgumentError):
            s.generate(PROMPT, temperature=-1.0)
        n = s.n_tokens
        with pytest.raises(TypeError):
            s.generate(PROMPT, temprature=1.0)
        assert s.n_tokens == n                  # nothing fed for a bad argument
        unused = s.generate(PROMPT, max_tokens=2, temperature=1.2)
        del unused                              # never iterated: nothing changed
        assert s.params["temperature"] == 0.0 and s.params["max_tokens"] == 0
        s.set_sampling(temperature=1.5, top_k=40, top_p=0.9, min_p=0.01, repeat_penalty=1.1)
        assert s.params["top_k"] == 40
        with pytest.raises(deepseek.InvalidArgumentError):
            s.set_sampling(top_p=2.0)
        assert s.params["top_p"] == pytest.approx(0.9)   # nothing changed
        s.set_seed(5)
        s.feed(PROMPT)
        s.step()


# ---- save / load -------------------------------------------------------------------------

def test_save_load_round_trip(model, tmp_path):
    needs("ds_session_save", "ds_session_load")
    path = str(tmp_path / "s.dss")
    with model.session(n_ctx=128, temperature=0.9, top_p=0.95, seed=3) as s:
        s.feed(PROMPT)
        for _ in range(5):
            s.step()
        s.save(path)
        saved_tokens = s.tokens
        uninterrupted = [s.step() for _ in range(8)]
        assert len(set(uninterrupted)) > 1
    with model.session(n_ctx=64) as t:       # another n_ctx, default sampler
        t.load(path)
        assert t.tokens == saved_tokens
        assert [t.step() for _ in range(8)] == uninterrupted


def test_save_load_bytes(model):
    needs("ds_session_save_buffer", "ds_session_load_buffer", "ds_session_save_size")
    with model.session(n_ctx=64) as s:
        s.feed(PROMPT)
        blob = s.save_bytes()
        assert 0 < len(blob) <= s.save_size()
        after = [s.step() for _ in range(4)]
        s.load_bytes(blob)
        assert [s.step() for _ in range(4)] == after
        n = s.n_tokens
        with pytest.raises(deepseek.FormatError):
            s.load_bytes(b"not a saved session" * 10)
        assert s.n_tokens == n                           # unchanged


def test_load_errors(model, llm_model_other, tmp_path):
    needs("ds_session_save", "ds_session_load")
    path = str(tmp_path / "a.dss")
    with model.session(n_ctx=64) as s:
        s.feed(PROMPT)
        s.save(path)
    with deepseek.Model(llm_model_other) as other, other.session(n_ctx=64) as o:
        o.feed("x")
        with pytest.raises(deepseek.ModelMismatchError) as e:
            o.load(path)
        assert e.value.message
        assert o.n_tokens == 2                       # unchanged
    data = open(path, "rb").read()
    bad = tmp_path / "bad.dss"
    bad.write_bytes(data[:len(data) // 2])
    with model.session(n_ctx=64) as s:
        with pytest.raises(deepseek.FormatError):
            s.load(str(bad))
        with pytest.raises(deepseek.DeepSeekIOError):
            s.load(str(tmp_path / "missing.dss"))
        with pytest.raises(deepseek.DeepSeekIOError):
            s.save(str(tmp_path / "no-such-dir" / "x.dss"))
    with model.session(n_ctx=4) as tiny:
        with pytest.raises(deepseek.ContextFullError):
            tiny.load(path)


# ---- cancel, callbacks -------------------------------------------------------------------

def test_cancel(model):
    needs("ds_session_cancel")
    with model.session(n_ctx=128) as s:
        s.feed(PROMPT)
        expected = _greedy_tokens(model, PROMPT, 1)[0]
        s.cancel()                           # nothing running: the next call is cancelled
        n = s.n_tokens
        with pytest.raises(deepseek.CancelledError):
            s.step()
        assert s.n_tokens == n
        assert s.step() == expected          # stepping again gives the same token
        out = []
        for i, piece in enumerate(s.generate(max_tokens=50)):
            out.append(piece)
            if i == 2:
                s.cancel()
        assert s.finish_reason == "cancelled" and len(s.last_tokens) == 3


def test_cancel_from_another_thread(model):
    needs("ds_session_cancel")
    with model.session(n_ctx=512, n_batch=8) as s:
        started = threading.Event()

        def progress(done, total):
            started.set()
        s2 = model.session(n_ctx=512, n_batch=8, progress=progress)
        t = threading.Thread(target=lambda: (started.wait(30), s2.cancel()))
        t.start()
        try:
            s2.feed(list(range(1000, 1400)))
        except deepseek.CancelledError:
            assert s2.n_tokens % 8 == 0 and s2.n_tokens < 400
        t.join()
        s2.close()
        s.feed([1])


def test_abort_and_progress_callbacks(model):
    needs("ds_session_feed_text")            # callbacks arrived with the extended session API
    calls = []
    with model.session(n_ctx=128, n_batch=4, progress=lambda d, t: calls.append((d, t))) as s:
        s.feed(list(range(1000, 1010)))
        assert calls[-1] == (10, 10) and len(calls) == 3
    with model.session(n_ctx=128, abort=lambda: True) as s:
        with pytest.raises(deepseek.CancelledError):
            s.feed([1, 2, 3])
    with pytest.raises(TypeError):
        model.session(abort=5)


# ---- batch step, memory ------------------------------------------------------------------

def test_step_batch(model):
    needs("ds_session_step_batch")
    prompts = [PROMPT, "Another prompt", "x"]
    expect = [_greedy_tokens(model, p, 3) for p in prompts]
    ss = [model.session(n_ctx=64) for _ in prompts]
    try:
        for s, p in zip(ss, prompts):
            s.feed(p)
        got = [[], [], []]
        for _ in range(3):
            for i, (tok, st) in enumerate(deepseek.step_batch(ss)):
                assert st == deepseek.Status.OK
                got[i].append(tok)
        assert got == expect
        with pytest.raises(deepseek.InvalidArgumentError):
            deepseek.step_batch([ss[0], ss[0]])
        fresh = model.session(n_ctx=64)
        res = deepseek.step_batch([ss[0], fresh])
        assert res[1][1] == deepseek.Status.ERR_STATE and res[0][1] == deepseek.Status.OK
        fresh.close()
    finally:
        for s in ss:
            s.close()


def test_memory(model):
    needs("ds_session_memory_needed", "ds_model_memory", "ds_session_n_ctx")
    need = Session.memory_needed(model, n_ctx=256)
    with model.session(n_ctx=256) as s:
        assert 0.9 * need <= s.memory <= need   # (the estimate may round up)
    budget = (Session.memory_needed(model, n_ctx=64) + need) // 2
    with pytest.raises(deepseek.OutOfMemoryError) as e:
        model.session(n_ctx=256, memory_budget=budget)
    assert "budget" in e.value.message
    with model.session(n_ctx=256, memory_budget=budget, fit_context_to_budget=True) as s:
        assert 64 < s.n_ctx < 256 and s.memory <= budget
    mem = model.memory
    assert mem["weights"] > 0 and mem["mapped"] is True
