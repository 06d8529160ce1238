"""Python bindings for libdeepseek (pure ctypes).

    import deepseek
    with deepseek.Model("model.gguf") as m:
        print(m.info["architecture"], m.metadata["general.name"], len(m.tensors))

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

#: version of these bindings (the C API version they were written for)
__version__ = "%d.%d.%d" % _BV

__all__ = [
    "Model", "Metadata", "version", "version_string",
    "LoadMode", "Precision", "LogLevel", "MetaType", "Gating", "RopeScaling", "Status",
    "DeepSeekError", "InvalidArgumentError", "DeepSeekIOError", "FormatError",
    "UnsupportedError", "OutOfMemoryError", "ContextFullError", "CancelledError",
    "BufferTooSmallError", "NotFoundError", "MetadataKeyError", "StateError",
    "ModelMismatchError", "InternalError", "check",
]
