"""protobuf failing to allocate a model's bytes is memory running out (exit 1), not an internal error."""

from __future__ import annotations

import pytest
from google.protobuf.message import EncodeError

from archdsl.lower import model_file


class _Unwritable:
    def SerializeToString(self, deterministic=False):  # noqa: N802 - protobuf's name
        raise EncodeError("Failed to serialize proto")


def test_a_failed_serialization_is_out_of_memory():
    with pytest.raises(MemoryError):
        model_file._serialized(_Unwritable())
