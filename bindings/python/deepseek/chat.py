"""Chat templates, streaming text decoding and reasoning splitting (include/deepseek/chat.h).

    from deepseek import chat
    msgs = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Why is the sky blue?"}]
    text = chat.format(tok, msgs)                  # the exact prompt text (template 'auto')
    ids = chat.format_tokens(tok, msgs, template="deepseek3")

    ts = chat.TextStream(tok)                      # ids -> text that never splits a character
    rs = chat.Reasoning(start_inside=True)         # '<think>…</think>' vs answer
    for id in generated_ids:
        for kind, piece in rs.push(ts.push(id)):
            print(kind.name, piece)
    for kind, piece in rs.push(ts.flush()) + rs.finish():
        print(kind.name, piece)

Every function that takes a tokenizer also accepts a deepseek.Model (its tokenizer is used).
Templates are named "auto", "deepseek2", "deepseek3", "deepseek-r1" (or ChatTemplate members).
Messages are dicts {"role": ..., "content": ...} (roles "system", "user", "assistant"), objects
with .role/.content, or (role, content) pairs.
"""

from __future__ import annotations

import enum
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_int, c_int32, c_size_t,
                    c_uint32, create_string_buffer, string_at)
from typing import Any, List, Optional, Sequence, Tuple, Union

from . import _lib
from .errors import StateError, Status, UnsupportedError, check
from .tokenizer import Tokenizer, _as_bytes, ds_tokenizer_p

__all__ = ["ChatTemplate", "TextKind", "TextStream", "Reasoning", "format", "format_tokens",
           "detect", "detect_name", "template_name"]

# ------------------------------------------------------------------------------------------
# C declarations (deepseek/chat.h)
# ------------------------------------------------------------------------------------------

ds_chat_template = _lib.enum("ds_chat_template")
ds_text_kind = _lib.enum("ds_text_kind")
_st = _lib.ds_status


class ds_chat_message(Structure):
    _fields_ = [("role", c_char_p), ("content", c_char_p)]


_lib.register_type("ds_chat_message", ds_chat_message)

ds_text_stream = _lib.opaque("ds_text_stream")
ds_text_stream_p = POINTER(ds_text_stream)
ds_reasoning = _lib.opaque("ds_reasoning")
ds_reasoning_p = POINTER(ds_reasoning)

DS_CHAT_LITERAL_CONTENT = 1 << 0
DS_TEXT_STREAM_RENDER_SPECIAL = 1 << 0
DS_REASONING_START_INSIDE = 1 << 0

ds_chat_template_name = _lib.fn("ds_chat_template_name", c_char_p, ds_chat_template)
ds_chat_detect = _lib.fn("ds_chat_detect", _st, ds_tokenizer_p, POINTER(ds_chat_template))
ds_chat_format = _lib.fn("ds_chat_format", _st, ds_tokenizer_p, ds_chat_template,
                         POINTER(ds_chat_message), c_size_t, c_int, c_char_p, c_size_t,
                         POINTER(c_size_t))
ds_chat_format_tokens = _lib.fn("ds_chat_format_tokens", _st, ds_tokenizer_p, ds_chat_template,
                                POINTER(ds_chat_message), c_size_t, c_int, c_uint32,
                                POINTER(c_int32), c_size_t, POINTER(c_size_t))
ds_text_stream_open = _lib.fn("ds_text_stream_open", _st, POINTER(ds_text_stream_p),
                              ds_tokenizer_p, c_uint32)
ds_text_stream_close = _lib.fn("ds_text_stream_close", None, ds_text_stream_p)
ds_text_stream_reset = _lib.fn("ds_text_stream_reset", None, ds_text_stream_p)
ds_text_stream_push = _lib.fn("ds_text_stream_push", _st, ds_text_stream_p, c_int32, c_char_p,
                              c_size_t, POINTER(c_size_t))
ds_text_stream_flush = _lib.fn("ds_text_stream_flush", _st, ds_text_stream_p, c_char_p,
                               c_size_t, POINTER(c_size_t))
ds_reasoning_open = _lib.fn("ds_reasoning_open", _st, POINTER(ds_reasoning_p), c_uint32)
ds_reasoning_close = _lib.fn("ds_reasoning_close", None, ds_reasoning_p)
ds_reasoning_reset = _lib.fn("ds_reasoning_reset", None, ds_reasoning_p)
ds_reasoning_push = _lib.fn("ds_reasoning_push", _st, ds_reasoning_p, c_char_p, c_size_t)
ds_reasoning_finish = _lib.fn("ds_reasoning_finish", _st, ds_reasoning_p)
ds_reasoning_next = _lib.fn("ds_reasoning_next", _st, ds_reasoning_p, POINTER(ds_text_kind),
                            POINTER(POINTER(c_char)), POINTER(c_size_t))
ds_reasoning_kind = _lib.fn("ds_reasoning_kind", ds_text_kind, ds_reasoning_p)


# ------------------------------------------------------------------------------------------
# Templates
# ------------------------------------------------------------------------------------------

class ChatTemplate(enum.IntEnum):
    """ds_chat_template: the template families the library renders."""
    AUTO = 0
    DEEPSEEK2 = 1
    DEEPSEEK3 = 2
    DEEPSEEK_R1 = 3

    @property
    def label(self) -> str:
        """The library's name: "auto", "deepseek2", "deepseek3", "deepseek-r1"."""
        return template_name(self)


class TextKind(enum.IntEnum):
    """ds_text_kind: what a piece of generated text is."""
    ANSWER = 0
    REASONING = 1


def template_name(template: Union[int, str, ChatTemplate]) -> str:
    """ds_chat_template_name() of a template value ("deepseek-r1", ...)."""
    t = _template_arg(template)
    name = ds_chat_template_name(t)
    if name is None:
        raise ValueError("unknown chat template %r" % (template,))
    return _lib.decode(name)


def _template_arg(template: Union[int, str, ChatTemplate, None]) -> int:
    if template is None:
        return int(ChatTemplate.AUTO)
    if isinstance(template, str):
        key = template.strip().lower().replace("-", "_")
        for m in ChatTemplate:
            if m.name.lower() == key:
                return int(m)
        if key in ("r1", "deepseek_r1"):
            return int(ChatTemplate.DEEPSEEK_R1)
        raise ValueError("unknown chat template %r (use 'auto', 'deepseek2', 'deepseek3' or "
                         "'deepseek-r1')" % template)
    if isinstance(template, bool) or not isinstance(template, int):
        raise TypeError("template must be a str or ChatTemplate, not %s" % type(template).__name__)
    return int(template)


def _tokenizer(tok: Any) -> Tokenizer:
    """A Tokenizer from a Tokenizer or a Model."""
    if isinstance(tok, Tokenizer):
        return tok
    t = getattr(tok, "tokenizer", None)
    if isinstance(t, Tokenizer):
        return t
    raise TypeError("expected a deepseek.Tokenizer or deepseek.Model, not %s" % type(tok).__name__)


def detect(tokenizer: Any) -> ChatTemplate:
    """The template family of the tokenizer's stored chat template; UnsupportedError (with the
    library's explanation) when there is none or it is not a known DeepSeek family."""
    tok = _tokenizer(tokenizer)
    out = c_int(0)
    tok._check(ds_chat_detect(tok._h(), byref(out)))
    return ChatTemplate(out.value)


def detect_name(tokenizer: Any) -> Optional[str]:
    """Name of the detected template family, or None if detection fails."""
    try:
        return detect(tokenizer).label
    except UnsupportedError:
        return None


def _messages(messages: Sequence[Any]):
    """(ctypes array of ds_chat_message, list keeping the bytes alive)."""
    if isinstance(messages, (str, bytes)) or not hasattr(messages, "__len__"):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    keep = []
    arr = (ds_chat_message * max(len(messages), 1))()
    for i, m in enumerate(messages):
        if isinstance(m, dict):
            if "role" not in m or "content" not in m:
                raise ValueError("message %d must have 'role' and 'content' keys" % i)
            role, content = m["role"], m["content"]
        elif isinstance(m, (tuple, list)) and len(m) == 2:
            role, content = m
        elif hasattr(m, "role") and hasattr(m, "content"):
            role, content = m.role, m.content
        else:
            raise TypeError("message %d is not a {'role', 'content'} dict" % i)
        fields = []
        for what, v in (("role", role), ("content", content)):
            if v is None:
                fields.append(None)  # the library refuses it, naming the message index
                continue
            b = _as_bytes(v, "message %d %s" % (i, what))
            if b"\0" in b:
                raise ValueError("message %d: %s contains a NUL character" % (i, what))
            keep.append(b)
            fields.append(b)
        arr[i].role, arr[i].content = fields
    return arr, keep


def format(tokenizer: Any, messages: Sequence[Any], template: Union[str, int] = "auto",
           add_generation_prompt: bool = True) -> str:
    """The prompt text of a conversation, exactly as the official template renders it
    (ds_chat_format). With add_generation_prompt the text ends with the assistant prompt.
    UnsupportedError when template='auto' and the model's template is unknown or absent."""
    tok = _tokenizer(tokenizer)
    arr, _keep = _messages(messages)
    t = _template_arg(template)
    n = c_size_t(0)
    cap = 256 + sum(len(b) for b in _keep) * 2
    while True:
        buf = create_string_buffer(cap)
        st = ds_chat_format(tok._h(), t, arr, len(messages), 1 if add_generation_prompt else 0,
                            buf, cap, byref(n))
        if st == Status.OK:
            return buf.raw[:n.value].decode("utf-8", "replace")
        if st != Status.ERR_BUFFER_TOO_SMALL or n.value + 1 <= cap:
            tok._check(st)
        cap = int(n.value) + 1


def format_tokens(tokenizer: Any, messages: Sequence[Any], template: Union[str, int] = "auto",
                  add_generation_prompt: bool = True, literal_content: bool = False) -> List[int]:
    """The prompt token ids of a conversation (ds_chat_format_tokens: special tokens matched,
    no extra BOS). literal_content: special-token text inside message contents stays text."""
    tok = _tokenizer(tokenizer)
    arr, _keep = _messages(messages)
    t = _template_arg(template)
    flags = DS_CHAT_LITERAL_CONTENT if literal_content else 0
    n = c_size_t(0)
    cap = 64 + sum(len(b) for b in _keep)
    while True:
        buf = (c_int32 * cap)()
        st = ds_chat_format_tokens(tok._h(), t, arr, len(messages),
                                   1 if add_generation_prompt else 0, flags, buf, cap, byref(n))
        if st == Status.OK:
            return buf[:n.value]
        if st != Status.ERR_BUFFER_TOO_SMALL or n.value <= cap:
            tok._check(st)
        cap = int(n.value)


# ------------------------------------------------------------------------------------------
# Streaming decoder
# ------------------------------------------------------------------------------------------

class TextStream:
    """Token ids, one at a time, to UTF-8 text that never ends inside a character.

    ``TextStream(tokenizer, render_special=False)``; :meth:`push` returns the text completed by
    a token ("" while a character is unfinished), :meth:`flush` ends the text (an unfinished
    character becomes U+FFFD). Invalid bytes become U+FFFD, so the concatenated output equals
    ``tokenizer.decode(ids)``. Not for use by two threads at once.
    """

    def __init__(self, tokenizer: Any, render_special: bool = False):
        self._handle = None
        self._tok = _tokenizer(tokenizer)  # keeps the tokenizer (and its model) alive
        h = ds_text_stream_p()
        check(ds_text_stream_open(byref(h), self._tok._h(),
                                  DS_TEXT_STREAM_RENDER_SPECIAL if render_special else 0))
        self._handle = h
        self._cap = 256
        self._buf = create_string_buffer(self._cap)

    def _h(self):
        if self._handle is None:
            raise StateError(Status.ERR_STATE, "the text stream is closed")
        self._tok._h()  # the tokenizer (or its model) must still be open
        return self._handle

    def _call(self, f, *args) -> str:
        n = c_size_t(0)
        while True:
            st = f(*args, self._buf, self._cap, byref(n))
            if st == Status.OK:
                return self._buf.raw[:n.value].decode("utf-8", "replace")
            if st != Status.ERR_BUFFER_TOO_SMALL or n.value < self._cap:
                check(st)
            self._cap = int(n.value) + 1
            self._buf = create_string_buffer(self._cap)

    def push(self, token: int) -> str:
        """The text completed by one more token."""
        return self._call(ds_text_stream_push, self._h(), token)

    def flush(self) -> str:
        """End the text: a held-back unfinished character becomes U+FFFD. The stream may then
        be reused for a new text."""
        return self._call(ds_text_stream_flush, self._h())

    def reset(self) -> None:
        """Forget held-back bytes (start a new text)."""
        ds_text_stream_reset(self._h())

    def decode(self, ids: Sequence[int]) -> str:
        """Push every id and flush: the whole text of `ids`."""
        return "".join(self.push(t) for t in ids) + self.flush()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        h, self._handle = self._handle, None
        if h is not None:
            ds_text_stream_close(h)

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


# ------------------------------------------------------------------------------------------
# Reasoning splitter
# ------------------------------------------------------------------------------------------

Segment = Tuple[TextKind, str]


class Reasoning:
    """Splits streamed text into reasoning (``<think>…</think>``) and answer.

    ``Reasoning(start_inside=False)``: start_inside=True when the prompt already ended with
    "<think>\\n" (the deepseek-r1 generation prompt). :meth:`push` text in any split and get the
    classified segments decided so far as (TextKind, str) pairs; :meth:`finish` at the end
    returns the rest. A tag split across pushes is recognised. Not for two threads at once.
    """

    def __init__(self, start_inside: bool = False):
        self._handle = None
        h = ds_reasoning_p()
        check(ds_reasoning_open(byref(h), DS_REASONING_START_INSIDE if start_inside else 0))
        self._handle = h
        self.start_inside = bool(start_inside)

    def _h(self):
        if self._handle is None:
            raise StateError(Status.ERR_STATE, "the reasoning splitter is closed")
        return self._handle

    def _drain(self) -> List[Segment]:
        h = self._h()
        out: List[Segment] = []
        kind = c_int(0)
        ptr = POINTER(c_char)()
        n = c_size_t(0)
        while True:
            st = check(ds_reasoning_next(h, byref(kind), byref(ptr), byref(n)))
            if st != Status.OK:
                return out
            text = string_at(ptr, n.value).decode("utf-8", "replace")
            k = TextKind(kind.value)
            if out and out[-1][0] == k:
                out[-1] = (k, out[-1][1] + text)
            else:
                out.append((k, text))

    def push(self, text: Union[str, bytes]) -> List[Segment]:
        """Append text; return the segments decided so far (possibly none)."""
        data = _as_bytes(text)
        check(ds_reasoning_push(self._h(), data, len(data)))
        return self._drain()

    def finish(self) -> List[Segment]:
        """Mark the end of the text and return every remaining segment."""
        check(ds_reasoning_finish(self._h()))
        return self._drain()

    def split(self, text: Union[str, bytes]) -> List[Segment]:
        """Classify a whole text at once (reset, push, finish)."""
        self.reset()
        return self.push(text) + self.finish()

    def reset(self) -> None:
        """Start a new text with the flags given at construction."""
        ds_reasoning_reset(self._h())

    @property
    def kind(self) -> TextKind:
        """Kind of the text currently being received."""
        return TextKind(int(ds_reasoning_kind(self._h())))

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        h, self._handle = self._handle, None
        if h is not None:
            ds_reasoning_close(h)

    def __enter__(self) -> "Reasoning":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
