"""Python bindings for libdeepseek (pure ctypes).

    import deepseek
    with deepseek.Model("model.gguf") as m:
        print(m.info["architecture"], m.metadata["general.name"], len(m.tensors))
        ids = m.tokenizer.encode("Hello world")               # deepseek.Tokenizer
        with m.session(temperature=0.7, seed=1) as s:          # deepseek.Session
            for piece in s.generate("Once upon a time", max_tokens=64):
                print(piece, end="", flush=True)
            for piece in s.chat([{"role": "user", "content": "Hi!"}]):
                print(piece, end="")

Modules: deepseek.model (Model), deepseek.tokenizer (Tokenizer), deepseek.chat (chat templates,
TextStream, Reasoning), deepseek.session (Session, step_batch), deepseek.errors (exceptions).

The shared library is found through $DEEPSEEK_LIBRARY, $DEEPSEEK_BUILD_DIR, the source tree's
build/ directory or the system (see deepseek._lib). Importing fails with ImportError when the
library is missing or its major version differs from the bindings'.
"""

from ._lib import BINDINGS_VERSION as _BV
from .errors import (BufferTooSmallError, CancelledError, ContextFullError, DeepSeekError,
                     DeepSeekIOError, FormatError, InternalError, InvalidArgumentError,
                     MetadataKeyError, ModelMismatchError, NotFoundError, OutOfMemoryError,
                     StateError, Status, UnsupportedError, check)
from .model import (Gating, LoadMode, LogLevel, Metadata, MetaType, Model, Precision,
                    RopeScaling, version, version_string)
from .tokenizer import Tokenizer, TokenType
from .chat import ChatTemplate, Reasoning, TextKind, TextStream
from .session import KVType, ReasoningMode, Session, StopReason, step_batch
from . import chat

#: version of these bindings (the C API version they were written for)
__version__ = "%d.%d.%d" % _BV

__all__ = [
    "Model", "Metadata", "version", "version_string",
    "LoadMode", "Precision", "LogLevel", "MetaType", "Gating", "RopeScaling", "Status",
    "DeepSeekError", "InvalidArgumentError", "DeepSeekIOError", "FormatError",
    "UnsupportedError", "OutOfMemoryError", "ContextFullError", "CancelledError",
    "BufferTooSmallError", "NotFoundError", "MetadataKeyError", "StateError",
    "ModelMismatchError", "InternalError", "check",
    "Tokenizer", "TokenType", "ChatTemplate", "TextKind", "TextStream", "Reasoning", "chat",
    "Session", "KVType", "ReasoningMode", "StopReason", "step_batch",
]
