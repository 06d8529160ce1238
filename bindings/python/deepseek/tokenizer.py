"""deepseek.Tokenizer: text <-> token ids (include/deepseek/tokenizer.h).

    tok = deepseek.Tokenizer("tokenizer.json")        # or a GGUF (vocab-only is fine), or a dir
    ids = tok.encode("Hello world")                    # [17464, 1843] with DeepSeek-LLM
    tok.decode(ids)                                     # 'Hello world'
    tok.bos, tok.eos, tok.n_vocab, tok.template         # e.g. 1, 2, 102400, 'deepseek3'

    with deepseek.Model("model.gguf") as m:
        m.tokenizer.encode("<｜User｜>hi", special=True)   # the model's own tokenizer

A tokenizer is immutable: every method may be called from several threads at once. A tokenizer
opened from a file is closed with :meth:`Tokenizer.close` (or ``with``, or garbage collection);
the one of a model (:attr:`deepseek.Model.tokenizer`) belongs to the model and becomes unusable
when the model is closed.
"""

from __future__ import annotations

import enum
import os
import threading
from ctypes import POINTER, byref, c_char_p, c_int, c_int32, c_size_t, c_uint32, create_string_buffer
from typing import Any, Iterable, List, Optional, Sequence, Union

from . import _lib
from .errors import StateError, Status, check

__all__ = ["Tokenizer", "TokenType"]

# ------------------------------------------------------------------------------------------
# C declarations (deepseek/tokenizer.h)
# ------------------------------------------------------------------------------------------

ds_tokenizer = _lib.opaque("ds_tokenizer")
ds_tokenizer_p = POINTER(ds_tokenizer)
ds_token_type = _lib.enum("ds_token_type")
_st = _lib.ds_status

DS_TOKENIZE_ADD_BOS = 1 << 0
DS_TOKENIZE_NO_BOS = 1 << 1
DS_TOKENIZE_SPECIAL = 1 << 2
DS_DETOKENIZE_SPECIAL = 1 << 0

ds_tokenizer_open = _lib.fn("ds_tokenizer_open", _st, POINTER(ds_tokenizer_p), c_char_p)
ds_tokenizer_close = _lib.fn("ds_tokenizer_close", None, ds_tokenizer_p)
ds_model_tokenizer = _lib.fn("ds_model_tokenizer", ds_tokenizer_p, _lib.ds_model_p)
ds_tokenizer_errmsg = _lib.fn("ds_tokenizer_errmsg", c_char_p, ds_tokenizer_p)
ds_tokenize = _lib.fn("ds_tokenize", _st, ds_tokenizer_p, c_char_p, c_size_t, c_uint32,
                      POINTER(c_int32), c_size_t, POINTER(c_size_t))
ds_token_to_piece = _lib.fn("ds_token_to_piece", _st, ds_tokenizer_p, c_int32, c_uint32,
                            c_char_p, c_size_t, POINTER(c_size_t))
ds_detokenize = _lib.fn("ds_detokenize", _st, ds_tokenizer_p, POINTER(c_int32), c_size_t,
                        c_uint32, c_char_p, c_size_t, POINTER(c_size_t))
ds_tokenizer_n_vocab = _lib.fn("ds_tokenizer_n_vocab", c_int32, ds_tokenizer_p)
ds_tokenizer_bos = _lib.fn("ds_tokenizer_bos", c_int32, ds_tokenizer_p)
ds_tokenizer_eos = _lib.fn("ds_tokenizer_eos", c_int32, ds_tokenizer_p)
ds_tokenizer_pad = _lib.fn("ds_tokenizer_pad", c_int32, ds_tokenizer_p)
ds_tokenizer_add_bos = _lib.fn("ds_tokenizer_add_bos", c_int, ds_tokenizer_p)
ds_tokenizer_token_id = _lib.fn("ds_tokenizer_token_id", _st, ds_tokenizer_p, c_char_p,
                                POINTER(c_int32))
ds_tokenizer_token_text = _lib.fn("ds_tokenizer_token_text", c_char_p, ds_tokenizer_p, c_int32)
ds_tokenizer_token_type = _lib.fn("ds_tokenizer_token_type", ds_token_type, ds_tokenizer_p,
                                  c_int32)
ds_tokenizer_is_special = _lib.fn("ds_tokenizer_is_special", c_int, ds_tokenizer_p, c_int32)
ds_tokenizer_is_eog = _lib.fn("ds_tokenizer_is_eog", c_int, ds_tokenizer_p, c_int32)
ds_tokenizer_pre_name = _lib.fn("ds_tokenizer_pre_name", c_char_p, ds_tokenizer_p)
ds_tokenizer_chat_template = _lib.fn("ds_tokenizer_chat_template", c_char_p, ds_tokenizer_p)


class TokenType(enum.IntEnum):
    """ds_token_type: the kind of a token id (GGUF tokenizer.ggml.token_type values)."""
    UNDEFINED = 0
    NORMAL = 1
    UNKNOWN = 2
    CONTROL = 3
    USER_DEFINED = 4
    UNUSED = 5
    BYTE = 6


def _as_bytes(text: Union[str, bytes, bytearray, memoryview], what: str = "text") -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8", "surrogatepass")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError("%s must be str or bytes, not %s" % (what, type(text).__name__))


def _id_array(ids: Iterable[int]):
    """A ctypes int32 array of `ids` (any iterable of ints, e.g. a list or a numpy array)."""
    seq = list(ids) if not isinstance(ids, (list, tuple)) else ids
    arr = (c_int32 * len(seq))()
    for i, t in enumerate(seq):
        if isinstance(t, bool) or not hasattr(t, "__index__"):
            raise TypeError("token ids must be ints, not %s" % type(t).__name__)
        v = t.__index__()
        if not -2 ** 31 <= v < 2 ** 31:
            raise OverflowError("token id %d at index %d does not fit in int32" % (v, i))
        arr[i] = v
    return arr


class Tokenizer:
    """A DeepSeek byte-level BPE tokenizer.

    ``Tokenizer(path)`` opens a GGUF file (a vocab-only GGUF is enough), a Hugging Face
    ``tokenizer.json`` (its sibling ``tokenizer_config.json`` supplies BOS/EOS and the chat
    template) or a directory holding one. Failures raise the library's typed exceptions
    (DeepSeekIOError, FormatError, UnsupportedError, ...). The tokenizer of an open model is
    :attr:`deepseek.Model.tokenizer`.
    """

    def __init__(self, path: Union[str, bytes, "os.PathLike[Any]"]):
        self._handle = None
        self._owned = True
        self._model = None
        self._lock = threading.Lock()
        self.path: Optional[str] = os.fsdecode(os.fspath(path))
        h = ds_tokenizer_p()
        check(ds_tokenizer_open(byref(h), os.fsencode(path)))
        self._handle = h

    @classmethod
    def _of_model(cls, model) -> "Tokenizer":
        """The (borrowed) tokenizer of an open deepseek.Model; UnsupportedError if it has none."""
        h = ds_model_tokenizer(model._h())
        if not h:
            from .errors import UnsupportedError
            raise UnsupportedError(Status.ERR_UNSUPPORTED, "the model %r has no (supported) "
                                   "tokenizer" % model.path)
        self = cls.__new__(cls)
        self._handle = h
        self._owned = False
        self._model = model
        self._lock = threading.Lock()
        self.path = model.path
        model._register_dependent(self)
        return self

    # ---- handle ----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._handle is None

    def _h(self):
        h = self._handle
        if h is None:
            what = "the model of this tokenizer is closed" if self._model is not None \
                else "the tokenizer is closed"
            raise StateError(Status.ERR_STATE, what)
        return h

    @property
    def _as_parameter_(self):
        """Lets a Tokenizer be passed where the C API takes a (const) ds_tokenizer *."""
        return self._h()

    def _errmsg(self) -> str:
        h = self._handle
        return _lib.decode(ds_tokenizer_errmsg(h)) if h is not None else ""

    def _check(self, status: int) -> int:
        return check(status, self._errmsg)

    def close(self) -> None:
        """Close the tokenizer (for a model's tokenizer: just forget the handle; the model owns
        it). Safe to call more than once."""
        with self._lock:
            h, self._handle = self._handle, None
            if h is not None and self._owned:
                ds_tokenizer_close(h)

    def __enter__(self) -> "Tokenizer":
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
            return "<deepseek.Tokenizer %r (closed)>" % self.path
        return "<deepseek.Tokenizer %r: %s, %d tokens>" % (self.path, self.pre_name, self.n_vocab)

    def __len__(self) -> int:
        return self.n_vocab

    # ---- text <-> ids ----------------------------------------------------------------

    def encode(self, text: Union[str, bytes], special: bool = False,
               bos: Optional[bool] = None) -> List[int]:
        """Token ids of `text` (str, or bytes: invalid UTF-8 is tokenized losslessly).

        special: recognise control tokens written in the text (e.g. "<｜User｜>");
        bos: True adds BOS, False never does, None follows the tokenizer's add_bos setting.
        """
        h = self._h()
        data = _as_bytes(text)
        flags = DS_TOKENIZE_SPECIAL if special else 0
        if bos is True:
            flags |= DS_TOKENIZE_ADD_BOS
        elif bos is False:
            flags |= DS_TOKENIZE_NO_BOS
        elif bos is not None:
            raise TypeError("bos must be True, False or None")
        cap = len(data) + 2
        n = c_size_t(0)
        while True:
            buf = (c_int32 * cap)()
            st = ds_tokenize(h, data, len(data), flags, buf, cap, byref(n))
            if st == Status.OK:
                return buf[:n.value]
            if st != Status.ERR_BUFFER_TOO_SMALL or n.value <= cap:
                self._check(st)
            cap = int(n.value)

    def decode_bytes(self, ids: Iterable[int], special: bool = False) -> bytes:
        """The raw bytes of `ids` (concatenated pieces; may be invalid UTF-8 for partial ids)."""
        h = self._h()
        arr = _id_array(ids)
        flags = DS_DETOKENIZE_SPECIAL if special else 0
        cap = 8 * len(arr) + 16
        n = c_size_t(0)
        while True:
            buf = create_string_buffer(cap)
            st = ds_detokenize(h, arr, len(arr), flags, buf, cap, byref(n))
            if st == Status.OK:
                return buf.raw[:n.value]
            if st != Status.ERR_BUFFER_TOO_SMALL or n.value < cap:
                self._check(st)
            cap = int(n.value) + 1

    def decode(self, ids: Iterable[int], special: bool = False, errors: str = "replace") -> str:
        """The text of `ids`. special: render control tokens (BOS, EOS, chat markers) as their
        text instead of nothing. Invalid UTF-8 is handled per `errors` (U+FFFD by default)."""
        return self.decode_bytes(ids, special).decode("utf-8", errors)

    def token_to_piece(self, token: int, special: bool = False) -> bytes:
        """The raw bytes of one token (need not be valid UTF-8 on its own: a character may be
        split over tokens; use deepseek.TextStream for streaming text)."""
        h = self._h()
        flags = DS_DETOKENIZE_SPECIAL if special else 0
        n = c_size_t(0)
        cap = 64
        while True:
            buf = create_string_buffer(cap)
            st = ds_token_to_piece(h, token, flags, buf, cap, byref(n))
            if st == Status.OK:
                return buf.raw[:n.value]
            if st != Status.ERR_BUFFER_TOO_SMALL or n.value < cap:
                self._check(st)
            cap = int(n.value) + 1

    # ---- vocabulary ------------------------------------------------------------------

    @property
    def n_vocab(self) -> int:
        """Number of token ids (ids are 0 .. n_vocab-1)."""
        return int(ds_tokenizer_n_vocab(self._h()))

    @staticmethod
    def _opt(v: int) -> Optional[int]:
        return None if v < 0 else int(v)

    @property
    def bos(self) -> Optional[int]:
        """Beginning-of-sequence id, or None."""
        return self._opt(ds_tokenizer_bos(self._h()))

    @property
    def eos(self) -> Optional[int]:
        """End-of-sequence id, or None."""
        return self._opt(ds_tokenizer_eos(self._h()))

    @property
    def pad(self) -> Optional[int]:
        """Padding id, or None."""
        return self._opt(ds_tokenizer_pad(self._h()))

    @property
    def add_bos(self) -> bool:
        """True if encode(bos=None) prepends BOS."""
        return bool(ds_tokenizer_add_bos(self._h()))

    @property
    def pre_name(self) -> str:
        """Pre-tokenizer name ("deepseek-llm", "deepseek-v3", "qwen2", ...)."""
        return _lib.decode(ds_tokenizer_pre_name(self._h()))

    @property
    def chat_template(self) -> Optional[str]:
        """The raw chat template text stored with the vocabulary, or None."""
        t = ds_tokenizer_chat_template(self._h())
        return None if t is None else _lib.decode(t)

    @property
    def template(self) -> Optional[str]:
        """Name of the chat template family the library recognises in :attr:`chat_template`
        ("deepseek2", "deepseek3" or "deepseek-r1"), or None if there is no template or it is
        not supported (deepseek.chat.format then needs an explicit template)."""
        from . import chat
        return chat.detect_name(self)

    def token_id(self, text: Union[str, bytes]) -> int:
        """Id of the token whose stored text is exactly `text` ("Ġworld", "<｜User｜>");
        NotFoundError if there is none."""
        i = c_int32()
        self._check(ds_tokenizer_token_id(self._h(), _as_bytes(text), byref(i)))
        return int(i.value)

    def token_text(self, token: int) -> str:
        """Stored text of a token (byte-level encoded for normal tokens); InvalidArgumentError
        if the id is out of range."""
        t = ds_tokenizer_token_text(self._h(), token)
        if t is None:
            from .errors import InvalidArgumentError
            raise InvalidArgumentError(Status.ERR_INVALID_ARG, "token id %d is not in [0, %d)"
                                       % (token, self.n_vocab))
        return _lib.decode(t)

    def token_type(self, token: int) -> TokenType:
        """Kind of a token (TokenType.UNDEFINED if the id is out of range)."""
        v = int(ds_tokenizer_token_type(self._h(), token))
        try:
            return TokenType(v)
        except ValueError:
            return v  # type: ignore[return-value]

    def is_special(self, token: int) -> bool:
        """True for control/unused tokens (they render as nothing unless special=True)."""
        return bool(ds_tokenizer_is_special(self._h(), token))

    def is_eog(self, token: int) -> bool:
        """True if generation should stop at this token (EOS, EOT, ...)."""
        return bool(ds_tokenizer_is_eog(self._h(), token))

    # ---- chat (see deepseek.chat) ----------------------------------------------------

    def format_chat(self, messages: Sequence[Any], template="auto",
                    add_generation_prompt: bool = True) -> str:
        """deepseek.chat.format(self, messages, ...): the prompt text of a conversation."""
        from . import chat
        return chat.format(self, messages, template, add_generation_prompt)

    def format_chat_tokens(self, messages: Sequence[Any], template="auto",
                           add_generation_prompt: bool = True,
                           literal_content: bool = False) -> List[int]:
        """deepseek.chat.format_tokens(self, messages, ...): the prompt ids of a conversation."""
        from . import chat
        return chat.format_tokens(self, messages, template, add_generation_prompt,
                                  literal_content)
