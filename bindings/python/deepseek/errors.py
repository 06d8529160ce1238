"""Exceptions raised for libdeepseek status codes.

Every failing call raises a subclass of :class:`DeepSeekError` chosen by its ``ds_status``;
the exception carries the numeric status and the library's detailed message::

    try:
        deepseek.Model("missing.gguf")
    except deepseek.DeepSeekIOError as e:
        print(e.status, e.message)

Some classes also derive from the matching built-in exception (``DeepSeekIOError`` is an
``OSError``, ``OutOfMemoryError`` a ``MemoryError``, ``NotFoundError`` a ``LookupError``,
``InvalidArgumentError`` a ``ValueError``), so generic handlers work too.
"""

from __future__ import annotations

import enum
from typing import Callable, Dict, Optional, Type, Union

from . import _lib


class Status(enum.IntEnum):
    """ds_status values (ABI: they never change)."""
    OK = 0
    DONE = 1
    AGAIN = 2
    ERR_INVALID_ARG = -1
    ERR_IO = -2
    ERR_FORMAT = -3
    ERR_UNSUPPORTED = -4
    ERR_NO_MEMORY = -5
    ERR_CONTEXT_FULL = -6
    ERR_CANCELLED = -7
    ERR_BUFFER_TOO_SMALL = -8
    ERR_NOT_FOUND = -9
    ERR_STATE = -10
    ERR_MODEL_MISMATCH = -11
    ERR_INTERNAL = -12


class DeepSeekError(Exception):
    """A libdeepseek call failed.

    Attributes: ``status`` (int, a negative ds_status) and ``message`` (the library's detailed
    text: ds_last_error() of the failing thread, else the handle's message, else the short
    ds_status_string())."""

    #: the ds_status this class stands for (None on the base class)
    STATUS: Optional[int] = None

    def __init__(self, status: int, message: str = ""):
        self.status = int(status)
        self.message = message or _status_text(self.status)
        Exception.__init__(self, self.status, self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return "%s(%s, %r)" % (type(self).__name__, _status_name(self.status), self.message)

    # OSError (a base of DeepSeekIOError) builds its own args; keep pickling simple.
    def __reduce__(self):
        return (type(self), (self.status, self.message))


class InvalidArgumentError(DeepSeekError, ValueError):
    """DS_ERR_INVALID_ARG: an argument is NULL, out of range or inconsistent."""
    STATUS = Status.ERR_INVALID_ARG


class DeepSeekIOError(DeepSeekError, OSError):
    """DS_ERR_IO: a file could not be opened, read, mapped or written."""
    STATUS = Status.ERR_IO

    def __new__(cls, *args, **kwargs):
        # Bypass OSError's (errno, strerror) interpretation of the arguments: the status is not
        # an errno (errno, strerror and filename stay None).
        return OSError.__new__(cls)

    def __str__(self) -> str:
        return self.message


class FormatError(DeepSeekError):
    """DS_ERR_FORMAT: a file or buffer is malformed (truncated, corrupted, hostile)."""
    STATUS = Status.ERR_FORMAT


class UnsupportedError(DeepSeekError):
    """DS_ERR_UNSUPPORTED: well-formed but not supported (architecture, tensor type, version)."""
    STATUS = Status.ERR_UNSUPPORTED


class OutOfMemoryError(DeepSeekError, MemoryError):
    """DS_ERR_NO_MEMORY: an allocation failed or a memory budget would be exceeded."""
    STATUS = Status.ERR_NO_MEMORY


class ContextFullError(DeepSeekError):
    """DS_ERR_CONTEXT_FULL: the context (KV cache) has no room for more tokens."""
    STATUS = Status.ERR_CONTEXT_FULL


class CancelledError(DeepSeekError):
    """DS_ERR_CANCELLED: the operation was cancelled by the host."""
    STATUS = Status.ERR_CANCELLED


class BufferTooSmallError(DeepSeekError):
    """DS_ERR_BUFFER_TOO_SMALL: a caller buffer is too small (the bindings size buffers
    themselves, so this normally does not escape)."""
    STATUS = Status.ERR_BUFFER_TOO_SMALL


class NotFoundError(DeepSeekError, LookupError):
    """DS_ERR_NOT_FOUND: a key, tensor, token or file entry does not exist."""
    STATUS = Status.ERR_NOT_FOUND


class MetadataKeyError(NotFoundError, KeyError):
    """A metadata key does not exist: a NotFoundError that is also a KeyError, as the Mapping
    protocol of Model.metadata requires."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class StateError(DeepSeekError):
    """DS_ERR_STATE: the call is not valid in the object's current state (also raised by the
    bindings for a closed handle)."""
    STATUS = Status.ERR_STATE


class ModelMismatchError(DeepSeekError):
    """DS_ERR_MODEL_MISMATCH: data belongs to a different model (e.g. a saved session)."""
    STATUS = Status.ERR_MODEL_MISMATCH


class InternalError(DeepSeekError):
    """DS_ERR_INTERNAL: a bug in libdeepseek."""
    STATUS = Status.ERR_INTERNAL


#: ds_status -> exception class
EXCEPTIONS: Dict[int, Type[DeepSeekError]] = {
    int(c.STATUS): c for c in (
        InvalidArgumentError, DeepSeekIOError, FormatError, UnsupportedError, OutOfMemoryError,
        ContextFullError, CancelledError, BufferTooSmallError, NotFoundError, StateError,
        ModelMismatchError, InternalError)
}


def _status_name(status: int) -> str:
    try:
        return "DS_" + Status(status).name
    except ValueError:
        return str(status)


def _status_text(status: int) -> str:
    try:
        return _lib.status_string(status)
    except Exception:  # during interpreter shutdown
        return _status_name(status)


def exception_class(status: int) -> Type[DeepSeekError]:
    """The exception class for a (negative) ds_status; DeepSeekError for unknown codes."""
    return EXCEPTIONS.get(int(status), DeepSeekError)


def error(status: int, message: str = "") -> DeepSeekError:
    """An exception instance for `status` with `message`."""
    return exception_class(status)(status, message)


def check(status: int, handle_errmsg: Union[None, str, Callable[[], str]] = None) -> int:
    """Return `status` if it is not an error (>= 0: DS_OK, DS_DONE, DS_AGAIN); else raise.

    Call it right after the failing call, on the same thread: the message is ds_last_error(),
    which is per thread and valid only until the next libdeepseek call. `handle_errmsg` (a
    string, or a callable returning one, e.g. the handle's ds_model_errmsg) is used when the
    thread's message is empty; the short ds_status_string() is the last resort.
    """
    status = int(status)
    if status >= 0:
        return status
    message = _lib.last_error()
    if not message and handle_errmsg is not None:
        message = handle_errmsg() if callable(handle_errmsg) else handle_errmsg
    raise error(status, message)
