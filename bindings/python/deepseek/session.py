"""deepseek.Session: one sequence being processed by a model (include/deepseek/session.h).

    with deepseek.Model("model.gguf") as m, m.session(n_ctx=2048, temperature=0.7, seed=1) as s:
        for piece in s.generate("Once upon a time", max_tokens=64):
            print(piece, end="", flush=True)
        print("\\n[%s]" % s.finish_reason)           # 'eos', 'stop', 'length', ...

        s.reset()
        msgs = [{"role": "user", "content": "Why is the sky blue?"}]
        for kind, piece in s.chat(msgs, kinds=True):  # reasoning vs answer (R1 models)
            print(piece, end="")

The host owns the loop: :meth:`Session.feed` tokens or text, :meth:`Session.step` one token at a
time (then :meth:`Session.pieces` gives its text), read :meth:`Session.logits`,
:meth:`Session.rewind`, :meth:`Session.reset`, :meth:`Session.save` / :meth:`Session.load`.
:meth:`Session.generate` and :meth:`Session.chat` are iterators of text pieces built on those.

A session is used by one thread at a time, except :meth:`Session.cancel`, which may be called
from any thread to stop the feed, step or generation in progress. Sessions of one model may run
on different threads at once. Every failure raises the library's typed exception
(ContextFullError, CancelledError, InvalidArgumentError, ModelMismatchError, ...) carrying its
message.
"""

from __future__ import annotations

import enum
import os
import sys
import threading
import traceback
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char_p, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_uint32, c_uint64, c_void_p, create_string_buffer,
                    sizeof, string_at)
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from . import _lib
from .chat import (ChatTemplate, TextKind, _template_arg, detect, ds_text_kind,
                   format_tokens as _format_tokens)
from .errors import CancelledError, ContextFullError, StateError, Status, check
from .model import _enum_arg
from .tokenizer import (DS_TOKENIZE_ADD_BOS, DS_TOKENIZE_NO_BOS, DS_TOKENIZE_SPECIAL, _as_bytes,
                        _id_array)

__all__ = ["Session", "KVType", "ReasoningMode", "StopReason", "step_batch", "memory_needed",
           "stop_reason_name"]

# ------------------------------------------------------------------------------------------
# C declarations (deepseek/session.h)
# ------------------------------------------------------------------------------------------

ds_session = _lib.opaque("ds_session")
ds_session_p = POINTER(ds_session)
ds_reasoning_mode = _lib.enum("ds_reasoning_mode")
ds_stop_reason = _lib.enum("ds_stop_reason")
_st = _lib.ds_status

#: typedef int (*ds_abort_fn)(void *user_data);
ds_abort_fn = _lib.ds_abort_fn
#: typedef void (*ds_progress_fn)(void *user_data, uint64_t done, uint64_t total);
ds_progress_fn = _lib.ds_progress_fn


class ds_session_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_ctx", c_uint32),
        ("n_batch", c_uint32),
        ("kv_type", c_uint32),
        ("logits_all", c_uint32),
        ("n_threads", c_int32),
        ("seed", c_uint64),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("min_p", c_float),
        ("repeat_penalty", c_float),
        ("frequency_penalty", c_float),
        ("presence_penalty", c_float),
        ("penalty_last_n", c_int32),
        ("max_tokens", c_uint32),
        ("reasoning", c_uint32),
        ("render_special", c_uint32),
        ("ignore_eos", c_uint32),
        ("fit_context_to_budget", c_uint32),
        ("reserved0", c_uint32),
        ("memory_budget", c_uint64),
        ("abort_fn", ds_abort_fn),
        ("abort_user_data", c_void_p),
        ("progress_fn", ds_progress_fn),
        ("progress_user_data", c_void_p),
    ]


class ds_model_memory_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("mapped", c_uint32),
        ("weights", c_uint64),
        ("other", c_uint64),
    ]


_lib.register_type("ds_session_params", ds_session_params)
_lib.register_type("ds_model_memory_info", ds_model_memory_info)

_P = POINTER(ds_session_params)
_fn = _lib.fn

ds_session_default_params = _fn("ds_session_default_params", _st, _P, c_size_t)
ds_session_open = _fn("ds_session_open", _st, POINTER(ds_session_p), _lib.ds_model_p, _P)
ds_session_close = _fn("ds_session_close", None, ds_session_p)
ds_session_errmsg = _fn("ds_session_errmsg", c_char_p, ds_session_p)
ds_session_feed = _fn("ds_session_feed", _st, ds_session_p, POINTER(c_int32), c_size_t)
ds_session_logits = _fn("ds_session_logits", _st, ds_session_p, c_int64,
                        POINTER(POINTER(c_float)), POINTER(c_size_t))
ds_session_step = _fn("ds_session_step", _st, ds_session_p, POINTER(c_int32))
ds_session_n_tokens = _fn("ds_session_n_tokens", c_size_t, ds_session_p)
ds_session_tokens = _fn("ds_session_tokens", _st, ds_session_p, POINTER(POINTER(c_int32)),
                        POINTER(c_size_t))
ds_session_rewind = _fn("ds_session_rewind", _st, ds_session_p, c_size_t)
ds_session_reset = _fn("ds_session_reset", _st, ds_session_p)
ds_session_memory = _fn("ds_session_memory", c_uint64, ds_session_p)
ds_session_memory_needed = _fn("ds_session_memory_needed", _st, _lib.ds_model_p, _P,
                               POINTER(c_uint64))
ds_session_n_ctx = _fn("ds_session_n_ctx", c_uint32, ds_session_p)
ds_session_feed_text = _fn("ds_session_feed_text", _st, ds_session_p, c_char_p, c_size_t,
                           c_uint32)
ds_session_step_batch = _fn("ds_session_step_batch", _st, POINTER(ds_session_p), c_size_t,
                            POINTER(c_int32), POINTER(_st))
ds_session_stop_reason = _fn("ds_session_stop_reason", ds_stop_reason, ds_session_p)
ds_stop_reason_name = _fn("ds_stop_reason_name", c_char_p, ds_stop_reason)
ds_session_n_generated = _fn("ds_session_n_generated", c_uint32, ds_session_p)
ds_session_text = _fn("ds_session_text", _st, ds_session_p, POINTER(ds_text_kind),
                      POINTER(c_char_p), POINTER(c_size_t))
ds_session_cancel = _fn("ds_session_cancel", None, ds_session_p)
ds_session_set_sampling = _fn("ds_session_set_sampling", _st, ds_session_p, _P)
ds_session_set_seed = _fn("ds_session_set_seed", _st, ds_session_p, c_uint64)
ds_session_set_logit_bias = _fn("ds_session_set_logit_bias", _st, ds_session_p, c_int32,
                                c_float)
ds_session_clear_logit_bias = _fn("ds_session_clear_logit_bias", _st, ds_session_p)
ds_session_set_stop_strings = _fn("ds_session_set_stop_strings", _st, ds_session_p,
                                  POINTER(c_char_p), c_size_t)
ds_session_save_size = _fn("ds_session_save_size", _st, ds_session_p, POINTER(c_size_t))
ds_session_save_buffer = _fn("ds_session_save_buffer", _st, ds_session_p, c_void_p, c_size_t,
                             POINTER(c_size_t))
ds_session_load_buffer = _fn("ds_session_load_buffer", _st, ds_session_p, c_void_p, c_size_t)
ds_session_save = _fn("ds_session_save", _st, ds_session_p, c_char_p)
ds_session_load = _fn("ds_session_load", _st, ds_session_p, c_char_p)
ds_model_memory = _fn("ds_model_memory", _st, _lib.ds_model_p, POINTER(ds_model_memory_info))


# ------------------------------------------------------------------------------------------
# Enums
# ------------------------------------------------------------------------------------------

class KVType(enum.IntEnum):
    """ds_kv_type: element type of the KV cache."""
    F32 = 0
    F16 = 1
    BF16 = 2


class ReasoningMode(enum.IntEnum):
    """ds_reasoning_mode: how generated text is split into reasoning and answer."""
    AUTO = 0   # on when the model's chat template is DeepSeek-R1
    OFF = 1
    ON = 2


class StopReason(enum.IntEnum):
    """ds_stop_reason: why the current generation stopped."""
    NONE = 0     # not stopped
    EOS = 1      # an end-of-generation token was sampled (reported, not appended)
    STRING = 2   # a stop string appeared in the generated text
    LIMIT = 3    # max_tokens tokens were generated

    @property
    def label(self) -> str:
        """The library's name: "none", "eos", "stop-string", "limit"."""
        return stop_reason_name(self)


def stop_reason_name(reason: int) -> str:
    """ds_stop_reason_name()."""
    name = ds_stop_reason_name(int(reason))
    if name is None:
        raise ValueError("unknown stop reason %r" % (reason,))
    return _lib.decode(name)


#: Session.finish_reason values for each way generate()/chat() can end.
_FINISH = {StopReason.EOS: "eos", StopReason.STRING: "stop", StopReason.LIMIT: "length"}

try:  # numpy is optional
    import numpy as _np  # type: ignore
except ImportError:  # pragma: no cover - depends on the machine
    _np = None


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------

#: keyword -> field of ds_session_params that set_sampling() changes
SAMPLING_FIELDS = ("seed", "temperature", "top_k", "top_p", "min_p", "repeat_penalty",
                   "frequency_penalty", "presence_penalty", "penalty_last_n", "max_tokens",
                   "ignore_eos")
#: every keyword of Session() / Model.session()
PARAM_FIELDS = ("n_ctx", "n_batch", "kv_type", "logits_all", "n_threads") + SAMPLING_FIELDS + (
    "reasoning", "render_special", "fit_context_to_budget", "memory_budget")
_BOOL_FIELDS = {"logits_all", "ignore_eos", "render_special", "fit_context_to_budget"}
_FLOAT_FIELDS = {"temperature", "top_p", "min_p", "repeat_penalty", "frequency_penalty",
                 "presence_penalty"}


def _fill(p: ds_session_params, kw: Dict[str, Any], allowed: Sequence[str]) -> None:
    for name, v in kw.items():
        if name not in allowed:
            raise TypeError("unknown session parameter %r (known: %s)"
                            % (name, ", ".join(allowed)))
        if v is None:
            continue
        if name == "kv_type":
            v = _enum_arg(KVType, v, "kv_type")
        elif name == "reasoning":
            if v is True or v is False:
                v = ReasoningMode.ON if v else ReasoningMode.OFF
            v = _enum_arg(ReasoningMode, v, "reasoning")
        elif name in _BOOL_FIELDS:
            v = 1 if v else 0
        elif name in _FLOAT_FIELDS:
            v = float(v)
        else:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError("%s must be an int, not %s" % (name, type(v).__name__))
            if v < 0 and name not in ("penalty_last_n",):
                raise ValueError("%s must be >= 0" % name)
        setattr(p, name, v)


def _params(kw: Dict[str, Any], allowed: Sequence[str] = PARAM_FIELDS) -> ds_session_params:
    p = ds_session_params()
    check(ds_session_default_params(byref(p), sizeof(p)))
    _fill(p, kw, allowed)
    return p


def memory_needed(model, **params) -> int:
    """Bytes a session with these parameters would allocate (ds_session_memory_needed)."""
    p = _params(params)
    n = c_uint64(0)
    model._check(ds_session_memory_needed(model._h(), byref(p), byref(n)))
    return int(n.value)


def model_memory(model) -> Dict[str, Any]:
    """ds_model_memory(): {'mapped': bool, 'weights': bytes, 'other': bytes}."""
    info = ds_model_memory_info()
    info.struct_size = sizeof(info)
    model._check(ds_model_memory(model._h(), byref(info)))
    return {"mapped": bool(info.mapped), "weights": int(info.weights), "other": int(info.other)}


def _report_callback_error(what: str) -> None:
    sys.stderr.write("deepseek: exception in the %s callback (ignored):\n" % what)
    traceback.print_exc()


# ------------------------------------------------------------------------------------------
# Session
# ------------------------------------------------------------------------------------------

class Session:
    """A sequence being processed by a model: its KV cache, tokens, last logits, sampler and
    text decoder.

    ``Session(model, **params)`` — or ``model.session(**params)``; unspecified parameters keep
    the library's defaults:

    - n_ctx (0: min(training context, 4096)), n_batch (prefill chunk, the granularity of
      cancel(); 256), kv_type ('f32', 'f16', 'bf16'), logits_all (keep the logits of every
      token of the last feed), n_threads (0: the model's);
    - sampler: seed, temperature (0 = greedy), top_k, top_p, min_p, repeat_penalty,
      frequency_penalty, presence_penalty, penalty_last_n (window; -1 = whole session),
      max_tokens (per generation; 0 = no limit), ignore_eos — changeable later with
      :meth:`set_sampling`;
    - reasoning ('auto': on for DeepSeek-R1 templates, 'on', 'off'), render_special (control
      tokens appear in the text);
    - memory_budget (bytes; 0 = none) and fit_context_to_budget (lower n_ctx to fit instead of
      failing with OutOfMemoryError);
    - abort: a callable ``() -> bool`` polled during feeds and steps (True cancels: the call
      raises CancelledError); progress: a callable ``(done, total)`` after each prefill chunk;
    - stop: stop strings (see :meth:`set_stop_strings`); logit_bias: {token: bias}.

    The model must stay open while the session is; closing the model closes its sessions.
    """

    def __init__(self, model, *, abort: Optional[Callable[[], Any]] = None,
                 progress: Optional[Callable[[int, int], Any]] = None,
                 stop: Optional[Sequence[str]] = None,
                 logit_bias: Optional[Dict[int, float]] = None, **params):
        self._handle = None
        self._model = model
        self._lock = threading.Lock()
        self._callbacks: list = []
        #: why the last generate()/chat() ended: 'eos', 'stop', 'length', 'context_full',
        #: 'cancelled' or 'interrupted' (the consumer stopped iterating); None before any.
        self.finish_reason: Optional[str] = None
        #: the token ids sampled by the last generate()/chat() (an EOS included)
        self.last_tokens: List[int] = []
        p = _params(params)
        if abort is not None:
            if not callable(abort):
                raise TypeError("abort must be a callable () -> bool")

            def abort_tramp(_ud, _f=abort):
                try:
                    return 1 if _f() else 0
                except BaseException:
                    _report_callback_error("abort")
                    return 1
            cb = ds_abort_fn(abort_tramp)
            self._callbacks.append(cb)
            p.abort_fn = cb
        if progress is not None:
            if not callable(progress):
                raise TypeError("progress must be a callable (done, total)")

            def progress_tramp(_ud, done, total, _f=progress):
                try:
                    _f(int(done), int(total))
                except BaseException:
                    _report_callback_error("progress")
            cb2 = ds_progress_fn(progress_tramp)
            self._callbacks.append(cb2)
            p.progress_fn = cb2
        self._params = p
        self._sampling = {k: getattr(p, k) for k in SAMPLING_FIELDS}
        self._stop: List[str] = []
        h = ds_session_p()
        check(ds_session_open(byref(h), model._h(), byref(p)))
        self._handle = h
        model._register_dependent(self)
        try:
            if stop:
                self.set_stop_strings(stop)
            if logit_bias:
                for t, b in logit_bias.items():
                    self.set_logit_bias(t, b)
        except BaseException:
            self.close()
            raise

    # ---- handle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self):
        h = self._handle
        if h is None:
            raise StateError(Status.ERR_STATE, "the session is closed")
        return h

    @property
    def _as_parameter_(self):
        return self._h()

    def _errmsg(self) -> str:
        h = self._handle
        return _lib.decode(ds_session_errmsg(h)) if h is not None else ""

    def _check(self, status: int) -> int:
        return check(status, self._errmsg)

    def close(self) -> None:
        """Close the session and free its memory. Safe to call more than once."""
        with self._lock:
            h, self._handle = self._handle, None
            if h is not None:
                ds_session_close(h)

    def __enter__(self) -> "Session":
        self._h()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            if getattr(self, "_handle", None) is not None:
                self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        if self._handle is None:
            return "<deepseek.Session (closed)>"
        return "<deepseek.Session %d/%d tokens>" % (self.n_tokens, self.n_ctx)

    # ---- facts -----------------------------------------------------------------------

    @property
    def model(self):
        return self._model

    @property
    def tokenizer(self):
        """The model's tokenizer (UnsupportedError if it has none)."""
        return self._model.tokenizer

    @property
    def params(self) -> Dict[str, Any]:
        """The parameters the session was opened with (sampler fields: as last set through
        this object; after load() the file's settings are in force instead)."""
        p = self._params
        d = {name: getattr(p, name) for name, _t in p._fields_
             if name in PARAM_FIELDS}
        d.update(self._sampling)
        return d

    @property
    def n_ctx(self) -> int:
        """Context length in tokens (after fit_context_to_budget)."""
        return int(ds_session_n_ctx(self._h()))

    @property
    def n_tokens(self) -> int:
        """Tokens in the session (its position)."""
        return int(ds_session_n_tokens(self._h()))

    def __len__(self) -> int:
        return self.n_tokens

    @property
    def tokens(self) -> List[int]:
        """A copy of the tokens in the session."""
        ptr = POINTER(c_int32)()
        n = c_size_t(0)
        self._check(ds_session_tokens(self._h(), byref(ptr), byref(n)))
        return ptr[:n.value] if n.value else []

    @property
    def n_generated(self) -> int:
        """Tokens generated in the current generation (since the last feed/rewind/reset/load)."""
        return int(ds_session_n_generated(self._h()))

    @property
    def stop_reason(self) -> StopReason:
        """Why the current generation stopped (StopReason.NONE while it runs)."""
        v = int(ds_session_stop_reason(self._h()))
        try:
            return StopReason(v)
        except ValueError:
            return v  # type: ignore[return-value]

    @property
    def done(self) -> bool:
        """True once the current generation has stopped (step() samples nothing more until the
        next feed, rewind, reset or load)."""
        return self.stop_reason != StopReason.NONE

    @property
    def memory(self) -> int:
        """Bytes the session allocated (KV cache, scratch, logits, tokens, sampler)."""
        return int(ds_session_memory(self._h()))

    @staticmethod
    def memory_needed(model, **params) -> int:
        """Bytes a session with these parameters would allocate (no session is opened)."""
        return memory_needed(model, **params)

    # ---- the loop --------------------------------------------------------------------

    def feed(self, tokens: Union[str, bytes, Sequence[int]], *, special: bool = False,
             bos: Optional[bool] = None) -> int:
        """Append tokens (a sequence of ids) or text, and run them through the model; starts a
        new generation. Returns the number of tokens appended.

        For text (tokenized with the model's tokenizer): special matches control tokens
        written in it ("<｜User｜>"); bos True/False forces BOS on/off, None adds it per the
        model's setting only when the session is empty.
        ContextFullError / InvalidArgumentError leave the session unchanged; CancelledError
        keeps the chunks completed before the cancellation."""
        h = self._h()
        before = self.n_tokens
        if isinstance(tokens, (str, bytes, bytearray, memoryview)):
            data = _as_bytes(tokens)
            flags = DS_TOKENIZE_SPECIAL if special else 0
            if bos is True:
                flags |= DS_TOKENIZE_ADD_BOS
            elif bos is False:
                flags |= DS_TOKENIZE_NO_BOS
            self._check(ds_session_feed_text(h, data, len(data), flags))
            return self.n_tokens - before
        ids = tokens
        arr = _id_array(ids)
        self._check(ds_session_feed(h, arr, len(arr)))
        return self.n_tokens - before

    def step(self) -> int:
        """Sample the next token, append it, run it and decode its text (:meth:`pieces`);
        return it. When the generation stops (:attr:`done`; :attr:`stop_reason` says why) the
        returned token is the EOS (sampled but NOT appended) for StopReason.EOS, the appended
        token for STRING/LIMIT, or -1 when it had already stopped (nothing sampled).
        StateError: nothing fed (or after rewind/reset); ContextFullError: no room;
        CancelledError: nothing appended, stepping again gives the same token."""
        t = c_int32(-1)
        self._check(ds_session_step(self._h(), byref(t)))
        return int(t.value)

    def pieces(self, kinds: bool = False) -> List[Any]:
        """The text of the last step (or the rest of a stopped generation), as str pieces, or
        (TextKind, str) pairs with kinds=True. Taken once: a second call returns []."""
        h = self._h()
        out: List[Any] = []
        kind = c_int(0)
        ptr = c_char_p()
        n = c_size_t(0)
        while True:
            st = self._check(ds_session_text(h, byref(kind), byref(ptr), byref(n)))
            if st != Status.OK:
                return out
            text = string_at(ptr, n.value).decode("utf-8", "replace")
            out.append((TextKind(kind.value), text) if kinds else text)

    def logits(self, index: int = -1, numpy: Optional[bool] = None):
        """A copy of the model's logits for a token of the last feed/step (-1: the last; with
        logits_all, 0 .. n-1 of the last feed's rows). A numpy float32 array when numpy is
        available (numpy=None) or requested (numpy=True); else a float memoryview (indexable,
        len(), .tolist()). StateError when nothing was fed since the last rewind/reset."""
        ptr = POINTER(c_float)()
        n = c_size_t(0)
        self._check(ds_session_logits(self._h(), index, byref(ptr), byref(n)))
        raw = string_at(ptr, n.value * 4)
        use_np = (_np is not None) if numpy is None else bool(numpy)
        if use_np:
            if _np is None:
                raise ImportError("numpy is not installed")
            return _np.frombuffer(raw, dtype=_np.float32).copy()
        return memoryview(bytearray(raw)).cast("f")

    def has_logits(self) -> bool:
        """True if step() can sample (something was fed since the last rewind/reset)."""
        ptr = POINTER(c_float)()
        return ds_session_logits(self._h(), -1, byref(ptr), None) == Status.OK

    def rewind(self, n: int) -> None:
        """Drop the last n tokens; starts a new generation. The logits are not readable until
        the next feed (generate() and chat() re-run the last token themselves)."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("n must be an int")
        if n < 0:
            raise ValueError("n must be >= 0")
        self._check(ds_session_rewind(self._h(), n))

    def reset(self) -> None:
        """Drop every token and reseed the sampler (bias, stop strings and settings stay)."""
        self._check(ds_session_reset(self._h()))

    def cancel(self) -> None:
        """Request cancellation of the feed or step in progress on another thread (or, if none
        is running, of the next one): it raises CancelledError, and generate()/chat() end with
        finish_reason 'cancelled'. May be called from any thread at any time."""
        h = self._handle
        if h is not None:
            ds_session_cancel(h)

    # ---- sampler settings ------------------------------------------------------------

    def set_sampling(self, **kw) -> None:
        """Change sampler settings (seed, temperature, top_k, top_p, min_p, repeat_penalty,
        frequency_penalty, presence_penalty, penalty_last_n, max_tokens, ignore_eos); the others
        keep the values last set through this object. The RNG is not reseeded (see set_seed).
        InvalidArgumentError (nothing changes) for a value out of range."""
        merged = dict(self._sampling)
        merged.update({k: v for k, v in kw.items() if v is not None})
        p = _params(merged, SAMPLING_FIELDS)
        self._check(ds_session_set_sampling(self._h(), byref(p)))
        self._sampling = {k: getattr(p, k) for k in SAMPLING_FIELDS}

    def set_seed(self, seed: int) -> None:
        """Reseed the RNG now (and for later resets)."""
        self._check(ds_session_set_seed(self._h(), seed))
        self._sampling["seed"] = seed

    def set_logit_bias(self, token: int, bias: float) -> None:
        """Add `bias` to the logit of `token` before sampling (replacing an earlier bias; 0
        removes it; float('-inf') bans the token)."""
        self._check(ds_session_set_logit_bias(self._h(), token, float(bias)))

    def clear_logit_bias(self) -> None:
        """Remove every logit bias."""
        self._check(ds_session_clear_logit_bias(self._h()))

    def set_stop_strings(self, strings: Iterable[Union[str, bytes]]) -> None:
        """Stop a generation when its text contains one of `strings` (replacing the previous
        ones; [] clears them). The text from the stop string on is never returned."""
        if isinstance(strings, (str, bytes)):
            strings = [strings]
        enc = [_as_bytes(s, "stop string") for s in strings]
        arr = (c_char_p * max(len(enc), 1))(*enc)
        self._check(ds_session_set_stop_strings(self._h(), arr, len(enc)))
        self._stop = [e.decode("utf-8", "replace") for e in enc]

    @property
    def stop_strings(self) -> List[str]:
        """The stop strings last set through this object."""
        return list(self._stop)

    # ---- save and restore ------------------------------------------------------------

    def save(self, path: Union[str, bytes, "os.PathLike[Any]"]) -> None:
        """Save the whole session (tokens, KV cache, last logits, sampler and RNG state, bias,
        stop strings, generation state) to a file (written atomically)."""
        self._check(ds_session_save(self._h(), os.fsencode(path)))

    def load(self, path: Union[str, bytes, "os.PathLike[Any]"]) -> None:
        """Restore a session saved by save(). ModelMismatchError (another model), FormatError
        (truncated/corrupted), ContextFullError (more tokens than n_ctx), DeepSeekIOError leave
        the session unchanged. The sampler settings come from the file (the library has no
        getter for them: params and later set_sampling() calls start from the values last set
        through this object)."""
        self._check(ds_session_load(self._h(), os.fsencode(path)))

    def save_size(self) -> int:
        """Upper bound of the bytes save_bytes() needs now."""
        n = c_size_t(0)
        self._check(ds_session_save_size(self._h(), byref(n)))
        return int(n.value)

    def save_bytes(self) -> bytes:
        """The saved session as bytes (the same format as save())."""
        cap = self.save_size()
        n = c_size_t(0)
        while True:
            buf = create_string_buffer(max(cap, 1))
            st = ds_session_save_buffer(self._h(), buf, cap, byref(n))
            if st == Status.OK:
                return buf.raw[:n.value]
            if st != Status.ERR_BUFFER_TOO_SMALL or n.value <= cap:
                self._check(st)
            cap = int(n.value)

    def load_bytes(self, data: Union[bytes, bytearray, memoryview]) -> None:
        """Restore a session from save_bytes() output (errors as load())."""
        b = bytes(data)
        self._check(ds_session_load_buffer(self._h(), b, len(b)))

    # ---- generation ------------------------------------------------------------------

    def _ensure_logits(self) -> None:
        """Make step() possible after a rewind: re-run the last token."""
        if self.has_logits():
            return
        toks = self.tokens
        if not toks:
            raise StateError(Status.ERR_STATE, "the session is empty: give a prompt")
        self.rewind(1)
        self.feed(toks[-1:])

    def sync(self, tokens: Sequence[int]) -> int:
        """Make the session hold exactly `tokens`, reusing the longest common prefix with what
        it holds (only the rest is run; the last token always runs, to give fresh logits and a
        new generation). Returns the number of tokens run."""
        want = list(tokens)
        if not want:
            raise ValueError("sync() needs at least one token")
        have = self.tokens
        k = 0
        m = min(len(have), len(want))
        while k < m and have[k] == want[k]:
            k += 1
        if k == len(want):
            k -= 1
        if len(have) > k:
            self.rewind(len(have) - k)
        self.feed(want[k:])
        return len(want) - k

    def generate(self, prompt: Union[None, str, bytes, Sequence[int]] = None,
                 max_tokens: Optional[int] = None, *, kinds: bool = False,
                 hide_reasoning: bool = False, special: bool = False,
                 bos: Optional[bool] = None, stop: Optional[Sequence[str]] = None,
                 **sampling) -> Iterator[Any]:
        """Generate: an ITERATOR of text pieces (str, never ending inside a character).

        - prompt: text or token ids appended to what the session holds and fed first (None:
          continue from the session's last token — after a stopped generation or a rewind a new
          generation starts there; call reset() first for a fresh start);
        - max_tokens and any sampler setting (temperature=, top_p=, seed= ..., see
          set_sampling; seed= also reseeds the RNG): used while this iterator runs, then
          restored (max_tokens counts the tokens since the last feed);
        - stop: stop strings for this generation only;
        - kinds: yield (TextKind, str) pairs (reasoning vs answer, per the session's reasoning
          mode) instead of str; hide_reasoning: drop the reasoning pieces;
        - special/bos: as feed() for a text prompt.

        Feeding happens at once (errors raise here); the steps run as the iterator is consumed.
        When it ends, :attr:`finish_reason` is 'eos', 'stop', 'length', 'context_full' or
        'cancelled' ('interrupted' if the consumer stopped early), and :attr:`last_tokens` holds
        the sampled ids. Other errors raise from the iterator.
        """
        self._h()
        overrides = self._overrides(max_tokens, sampling, stop)   # checked before any change
        if prompt is not None:
            self.feed(prompt, special=special, bos=bos)
        else:
            if self.done:
                self.rewind(0)   # a new generation continues after the stopped one
            self._ensure_logits()
        self.finish_reason = None
        self.last_tokens = []
        return self._loop(kinds, hide_reasoning, *overrides)

    def _overrides(self, max_tokens, sampling, stop):
        """Check per-generation settings (raising as set_sampling/set_stop_strings would, with
        nothing changed); they are applied when the iteration starts and restored after it."""
        if max_tokens is not None:
            if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
                raise ValueError("max_tokens must be an int >= 0")
            sampling = dict(sampling, max_tokens=max_tokens)
        sampling = {k: v for k, v in sampling.items() if v is not None}
        if sampling:
            old = dict(self._sampling)
            self.set_sampling(**sampling)
            self.set_sampling(**old)
        if stop is not None:
            if isinstance(stop, (str, bytes)):
                stop = [stop]
            old_stop = list(self._stop)
            self.set_stop_strings(stop)
            self.set_stop_strings(old_stop)
        return sampling, stop

    def _loop(self, kinds, hide_reasoning, sampling, stop):
        reason = "interrupted"
        restore_sampling = restore_stop = None
        try:
            if sampling:
                restore_sampling = dict(self._sampling)
                self.set_sampling(**sampling)
                if "seed" in sampling:
                    self.set_seed(sampling["seed"])   # reseed now
            if stop is not None:
                restore_stop = list(self._stop)
                self.set_stop_strings(stop)
            while True:
                tok = c_int32(-1)
                try:
                    st = self._check(ds_session_step(self._h(), byref(tok)))
                except ContextFullError:
                    reason = "context_full"
                    break
                except CancelledError:
                    reason = "cancelled"
                    break
                if tok.value >= 0:
                    self.last_tokens.append(int(tok.value))
                for piece in self.pieces(kinds=True):
                    if hide_reasoning and piece[0] == TextKind.REASONING:
                        continue
                    yield piece if kinds else piece[1]
                if st == Status.DONE:
                    reason = _FINISH.get(self.stop_reason, "stop")
                    break
        finally:
            self.finish_reason = reason
            if self._handle is not None:
                if restore_sampling is not None:
                    self.set_sampling(**restore_sampling)  # (the RNG is not reseeded)
                if restore_stop is not None:
                    self.set_stop_strings(restore_stop)

    def chat(self, messages: Sequence[Any], max_tokens: Optional[int] = None, *,
             template: Union[str, int] = "auto", kinds: bool = False,
             hide_reasoning: bool = False, literal_content: bool = False,
             stop: Optional[Sequence[str]] = None, **sampling) -> Iterator[Any]:
        """Answer a conversation: an ITERATOR of text pieces (or (TextKind, str) with kinds=True).

        messages: the usual list of {"role": "system"|"user"|"assistant", "content": str}. It is
        rendered with the chat template ('auto': the model's own; or 'deepseek2', 'deepseek3',
        'deepseek-r1') and the session is brought to exactly those tokens, reusing the common
        prefix with what it holds — so a multi-turn chat that appends the reply and the next
        user message to `messages` only runs the new part. literal_content: special-token text
        inside messages stays plain text. Other arguments as generate().
        """
        tok = self.tokenizer
        t = _template_arg(template)
        if t == ChatTemplate.AUTO:
            t = detect(tok)
        ids = _format_tokens(tok, messages, t, True, literal_content)
        if len(ids) >= self.n_ctx:
            raise ContextFullError(Status.ERR_CONTEXT_FULL,
                                   "the conversation (%d tokens) does not fit the context of %d "
                                   "tokens" % (len(ids), self.n_ctx))
        overrides = self._overrides(max_tokens, sampling, stop)
        self.sync(ids)
        self.finish_reason = None
        self.last_tokens = []
        return self._loop(kinds, hide_reasoning, *overrides)


def step_batch(sessions: Sequence[Session]) -> List[Tuple[int, int]]:
    """One step for each of several sessions of the same model with ONE forward pass (the
    weights are read once). Returns, per session, (token, status) as Session.step would give
    them: status is Status.OK, Status.DONE, or a negative error status (StateError,
    ContextFullError cases: that session did not run). Raises for errors of the whole call
    (InvalidArgumentError: sessions repeated or of different models; CancelledError: no
    session advanced). Take each session's text with its pieces()."""
    n = len(sessions)
    if n == 0:
        raise ValueError("step_batch needs at least one session")
    arr = (ds_session_p * n)(*[s._h() for s in sessions])
    toks = (c_int32 * n)()
    res = (c_int * n)()
    check(ds_session_step_batch(arr, n, toks, res))
    out = []
    for i in range(n):
        try:
            stv = Status(res[i])
        except ValueError:
            stv = res[i]
        out.append((int(toks[i]), stv))
    return out
