"""Engine I/O types edgetl can feed and read, and a clear refusal for those it cannot (BF16, FP8)."""

from enum import Enum

import numpy as np
import pytest

from edgetl.errors import ModelError
from edgetl.trt.runner import io_dtype


class FakeTrt:
    """tensorrt.DataType and tensorrt.nptype as TensorRT 10 ships them: no numpy type for BF16 / FP8."""

    class DataType(Enum):
        FLOAT, HALF, INT8, INT32, INT64, BOOL, UINT8, BF16, FP8 = range(9)

    @classmethod
    def nptype(cls, t):
        mapping = {cls.DataType.FLOAT: np.float32, cls.DataType.HALF: np.float16, cls.DataType.INT8: np.int8,
                   cls.DataType.INT32: np.int32, cls.DataType.INT64: np.int64, cls.DataType.BOOL: np.bool_,
                   cls.DataType.UINT8: np.uint8}
        if t in mapping:
            return mapping[t]
        raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")


def test_numpy_types_of_supported_io():
    assert io_dtype(FakeTrt, "pixel_values", True, FakeTrt.DataType.HALF) == np.float16
    assert io_dtype(FakeTrt, "input_ids", True, FakeTrt.DataType.INT64) == np.int64


@pytest.mark.parametrize("kind, mode", [("BF16", "output"), ("FP8", "input")])
def test_bf16_or_fp8_io_is_refused_with_what_to_change(kind, mode):
    with pytest.raises(ModelError, match=rf"the engine's {mode} 'logits' is {kind}") as err:
        io_dtype(FakeTrt, "logits", mode == "input", FakeTrt.DataType[kind])
    assert "float32 or float16 inputs and outputs" in err.value.hint
