"""Binary encoding of arrays for the front end (float16, uint8 + scale, deflate) and buffer packing."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from interpwidgets.widgets.encoding import float16_array, pack_buffers, uint8_array
from interpwidgets.widgets.testing import decode_array


def test_float16_round_trip_keeps_nan_and_shape():
    values = torch.tensor([[0.5, -1.25, float("nan")], [3.0, 1e-3, -7.5]])
    wire = float16_array(values)
    assert wire["dtype"] == "float16" and wire["shape"] == [2, 3] and len(wire["data"]) == 12
    decoded = decode_array(wire)
    assert np.isnan(decoded[0, 2])
    np.testing.assert_allclose(np.nan_to_num(decoded), np.nan_to_num(values.numpy()), rtol=1e-3)


def test_float16_scales_values_beyond_its_range():
    values = np.array([1e6, -3e5, 2.0], dtype=np.float32)
    wire = float16_array(values)
    assert wire["scale"] > 1 and np.log2(wire["scale"]).is_integer()
    np.testing.assert_allclose(decode_array(wire), values, rtol=2e-3, atol=wire["scale"])


@pytest.mark.parametrize("compress", [False, True])
def test_uint8_round_trip_within_half_a_step(compress):
    rng = np.random.default_rng(0)
    values = rng.random((4, 50)).astype(np.float32) * 3
    wire = uint8_array(values, compress=compress)
    assert wire["compression"] == ("deflate" if compress else None)
    raw = zlib.decompress(wire["data"]) if compress else wire["data"]
    assert len(raw) == values.size
    assert np.abs(decode_array(wire) - values).max() <= wire["scale"] / 2 + 1e-6


def test_uint8_handles_negative_values_and_constant_arrays():
    signed = np.array([-2.0, 0.0, 1.0], dtype=np.float32)
    wire = uint8_array(signed)
    assert wire["offset"] == -2.0
    np.testing.assert_allclose(decode_array(wire), signed, atol=wire["scale"] / 2)
    np.testing.assert_array_equal(decode_array(uint8_array(np.zeros(5))), np.zeros(5))


def test_uint8_rejects_non_finite_values():
    with pytest.raises(ValueError, match="finite"):
        uint8_array(np.array([0.1, np.inf]))


def test_pack_buffers_moves_bytes_out_in_order():
    payload = {"a": b"xy", "nested": [{"b": bytearray(b"z")}, 3], "text": "keep"}
    packed, buffers = pack_buffers(payload)
    assert packed == {"a": {"$buffer": 0}, "nested": [{"b": {"$buffer": 1}}, 3], "text": "keep"}
    assert buffers == [b"xy", b"z"]
