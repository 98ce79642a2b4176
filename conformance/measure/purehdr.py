"""An HdrHistogram in plain Python, for machines without the `hdrhistogram` package.

hdrhistogram (HdrHistogram_py) needs its C extension `pyhdrh` to encode and decode, and the package
index has no wheel of it for Linux on ARM: an edge gateway would need a C compiler to install us.
There, `conformance.measure.hdr` uses this class instead. It is a port of the parts of
HdrHistogram_py 0.10 that the harness uses (Apache License 2.0, (c) Cisco Systems and the
HdrHistogram authors; the algorithms are Gil Tene's HdrHistogram), kept to the same bucket layout,
the same percentile rule, the same quirks (min after adding into an empty histogram) and the same V2
wire format (zig-zag LEB128 counts, zlib, base64), so that a results.json measured on one machine
gives the same figures and verdicts wherever it is read or verified. tests/measure/test_purehdr.py
holds the two implementations to that on random data, both ways through the encoding.
"""

from __future__ import annotations

import base64
import math
import struct
import sys
import zlib
from typing import Any

V2_ENCODING_COOKIE_BASE = 0x1C849303
V2_COMPRESSION_COOKIE_BASE = 0x1C849304
V2_WORD_SIZE = 9  # a V2 cookie says "up to 9 bytes a count" (LEB128)
_EXTERNAL_HEADER = struct.Struct(">II")  # cookie, length of the compressed payload
_PAYLOAD_HEADER = struct.Struct(">IIIIQQd")  # cookie, payload_len, normalizing_index_offset,
#                                               significant_figures, lowest, highest, conversion ratio
MAX_COUNTS_SIZE = 4 * 1024 * 1024


def _cookie_base(cookie: int) -> int:
    return cookie & ~0xF0


def _bucket_count(value: int, sub_bucket_count: int, unit_magnitude: int) -> int:
    smallest_untrackable_value = sub_bucket_count << unit_magnitude
    buckets_needed = 1
    while smallest_untrackable_value <= value:
        if smallest_untrackable_value > sys.maxsize // 2:
            return buckets_needed + 1
        smallest_untrackable_value <<= 1
        buckets_needed += 1
    return buckets_needed


class HdrHistogram:
    """The subset of hdrh.histogram.HdrHistogram the harness uses, with the same results."""

    def __init__(self, lowest_trackable_value: int, highest_trackable_value: int, significant_figures: int,
                 word_size: int = 8, b64_wrap: bool = True):
        if significant_figures < 1 or significant_figures > 5:
            raise ValueError("Invalid significant_figures")
        self.lowest_trackable_value = lowest_trackable_value
        self.highest_trackable_value = highest_trackable_value
        self.significant_figures = significant_figures
        self.unit_magnitude = int(math.floor(math.log(lowest_trackable_value) / math.log(2)))
        largest_value_single_unit_res = 2 * math.pow(10, significant_figures)
        subb_count_mag = int(math.ceil(math.log(largest_value_single_unit_res) / math.log(2)))
        self.sub_bucket_half_count_magnitude = subb_count_mag - 1 if subb_count_mag > 1 else 0
        self.sub_bucket_count = int(math.pow(2, self.sub_bucket_half_count_magnitude + 1))
        self.sub_bucket_half_count = self.sub_bucket_count // 2
        self.sub_bucket_mask = (self.sub_bucket_count - 1) << self.unit_magnitude
        self.bucket_count = _bucket_count(highest_trackable_value, self.sub_bucket_count, self.unit_magnitude)
        self.counts_len = (self.bucket_count + 1) * (self.sub_bucket_count // 2)
        self.word_size = word_size
        self.b64_wrap = b64_wrap
        self.int_to_double_conversion_ratio = 1.0
        self.min_value = sys.maxsize
        self.max_value = 0
        self.total_count = 0
        self.counts = [0] * self.counts_len
        self.start_time_stamp_msec = 0
        self.end_time_stamp_msec = 0

    # -- layout ------------------------------------------------------------------------------------
    def _get_bucket_index(self, value: int) -> int:
        pow2ceiling = (int(value) | self.sub_bucket_mask).bit_length()  # 64 - clz
        return int(pow2ceiling - self.unit_magnitude - (self.sub_bucket_half_count_magnitude + 1))

    def _get_sub_bucket_index(self, value: int, bucket_index: int) -> int:
        return int(value) >> (bucket_index + self.unit_magnitude)

    def _counts_index(self, bucket_index: int, sub_bucket_index: int) -> int:
        bucket_base_index = (bucket_index + 1) << self.sub_bucket_half_count_magnitude
        return bucket_base_index + sub_bucket_index - self.sub_bucket_half_count

    def get_counts_array_index(self, value: int) -> int:
        if value < 0:
            raise ValueError("Histogram recorded value cannot be negative.")
        bucket_index = self._get_bucket_index(value)
        return self._counts_index(bucket_index, self._get_sub_bucket_index(value, bucket_index))

    def get_value_from_sub_bucket(self, bucket_index: int, sub_bucket_index: int) -> int:
        return sub_bucket_index << (bucket_index + self.unit_magnitude)

    def get_value_from_index(self, index: int) -> int:
        bucket_index = (index >> self.sub_bucket_half_count_magnitude) - 1
        sub_bucket_index = (index & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        if bucket_index < 0:
            sub_bucket_index -= self.sub_bucket_half_count
            bucket_index = 0
        return self.get_value_from_sub_bucket(bucket_index, sub_bucket_index)

    def get_lowest_equivalent_value(self, value: int) -> int:
        bucket_index = self._get_bucket_index(value)
        return self.get_value_from_sub_bucket(bucket_index, self._get_sub_bucket_index(value, bucket_index))

    def get_highest_equivalent_value(self, value: int) -> int:
        bucket_index = self._get_bucket_index(value)
        sub_bucket_index = self._get_sub_bucket_index(value, bucket_index)
        lowest = self.get_value_from_sub_bucket(bucket_index, sub_bucket_index)
        if sub_bucket_index >= self.sub_bucket_count:
            bucket_index += 1
        return lowest + (1 << (self.unit_magnitude + bucket_index)) - 1

    # -- recording ---------------------------------------------------------------------------------
    def record_value(self, value: int, count: int = 1) -> bool:
        if value < 0:
            return False
        index = self.get_counts_array_index(value)
        if index < 0 or self.counts_len <= index:
            return False
        self.counts[index] += count
        self.total_count += count
        self.min_value = min(self.min_value, value)
        self.max_value = max(self.max_value, value)
        return True

    def add(self, other: Any) -> None:
        highest_recordable = self.get_highest_equivalent_value(self.get_value_from_index(self.counts_len - 1))
        if highest_recordable < other.get_max_value():
            raise IndexError(f"The other histogram includes values that do not fit {highest_recordable} < "
                             f"{other.get_max_value()}")
        same = (self.bucket_count, self.sub_bucket_count, self.unit_magnitude, self.word_size) == \
            (other.bucket_count, other.sub_bucket_count, other.unit_magnitude, other.word_size)
        if same:
            theirs = other.counts
            for index in range(self.counts_len):
                if theirs[index]:
                    self.counts[index] += theirs[index]
            self.total_count += other.get_total_count()
            self.max_value = max(self.max_value, other.get_max_value())
            # hdrh's own rule, kept: after adding into an empty histogram the minimum reads 0
            self.min_value = min(self.get_min_value(), other.get_min_value())
        else:
            for index in range(other.counts_len):
                count = other.get_count_at_index(index)
                if count > 0:
                    self.record_value(other.get_value_from_index(index), count)
        self.start_time_stamp_msec = min(self.start_time_stamp_msec, other.start_time_stamp_msec)
        self.end_time_stamp_msec = max(self.end_time_stamp_msec, other.end_time_stamp_msec)

    # -- reading -----------------------------------------------------------------------------------
    def get_total_count(self) -> int:
        return self.total_count

    def get_count_at_index(self, index: int) -> int:
        if index >= self.counts_len:
            raise IndexError()
        return self.counts[index]

    def get_target_count_at_percentile(self, percentile: float) -> int:
        requested = min(percentile, 100.0)
        return max(int((requested * self.total_count / 100) + 0.5), 1)

    def get_value_at_percentile(self, percentile: float) -> int:
        count_at_percentile = self.get_target_count_at_percentile(percentile)
        total = 0
        for index in range(self.counts_len):
            total += self.counts[index]
            if total >= count_at_percentile:
                value = self.get_value_from_index(index)
                if percentile:
                    return self.get_highest_equivalent_value(value)
                return self.get_lowest_equivalent_value(value)
        return 0

    def get_percentile_to_value_dict(self, percentile_list: list[float]) -> dict[float, int]:
        result: dict[float, int] = {}
        wanted = sorted(set(percentile_list))
        total, position, count_at_percentile = 0, 0, 0
        percentile = 0.0
        for index in range(self.counts_len):
            total += self.counts[index]
            while True:
                if not count_at_percentile:
                    if position == len(wanted):
                        return result
                    percentile = wanted[position]
                    position += 1
                    if percentile > 100:
                        return result
                    count_at_percentile = self.get_target_count_at_percentile(percentile)
                if total >= count_at_percentile:
                    value = self.get_value_from_index(index)
                    result[percentile] = (self.get_highest_equivalent_value(value) if percentile
                                          else self.get_lowest_equivalent_value(value))
                    count_at_percentile = 0
                else:
                    break
        return result

    def get_max_value(self) -> int:
        return 0 if self.max_value == 0 else self.get_highest_equivalent_value(self.max_value)

    def get_min_value(self) -> int:
        if self.counts[0] > 0 or self.total_count == 0:
            return 0
        if self.min_value == sys.maxsize:
            return sys.maxsize
        return self.get_lowest_equivalent_value(self.min_value)

    def _median_equivalent_value(self, value: int) -> int:
        low = self.get_lowest_equivalent_value(value)
        return low + ((self.get_highest_equivalent_value(value) - low + 1) >> 1)

    def get_mean_value(self) -> float:
        if not self.total_count:
            return 0.0
        total = sum(c * self._median_equivalent_value(self.get_value_from_index(i))
                    for i, c in enumerate(self.counts) if c)
        return float(total) / self.total_count

    def get_stddev(self) -> float:
        if not self.total_count:
            return 0.0
        mean = self.get_mean_value()
        dev = sum(((self._median_equivalent_value(self.get_value_from_index(i)) * 1.0) - mean) ** 2 * c
                  for i, c in enumerate(self.counts) if c)
        return math.sqrt(dev / self.total_count)

    # -- the V2 wire format ------------------------------------------------------------------------
    def encode(self) -> bytes:
        relevant = self.get_counts_array_index(self.max_value) + 1 if self.total_count else 0
        varints = bytearray()
        index = 0
        while index < relevant:
            value = self.counts[index]
            index += 1
            if value == 0:
                zeros = 1
                while index < relevant and self.counts[index] == 0:
                    zeros += 1
                    index += 1
                _put_varint(varints, -zeros)
            else:
                _put_varint(varints, value)
        header = _PAYLOAD_HEADER.pack(V2_ENCODING_COOKIE_BASE | 0x10, len(varints), 0, self.significant_figures,
                                      self.lowest_trackable_value, self.highest_trackable_value, 1.0)
        compressed = zlib.compress(header + bytes(varints))
        if not self.b64_wrap:
            return compressed
        return base64.b64encode(_EXTERNAL_HEADER.pack(V2_COMPRESSION_COOKIE_BASE | 0x10, len(compressed)) + compressed)

    @staticmethod
    def decode(encoded: str | bytes, b64_wrap: bool = True) -> HdrHistogram:
        if b64_wrap:
            raw = base64.b64decode(encoded)
            if len(raw) < _EXTERNAL_HEADER.size:
                raise ValueError("Base64 decoded message too short")
            cookie, length = _EXTERNAL_HEADER.unpack_from(raw)
            if _cookie_base(cookie) != V2_COMPRESSION_COOKIE_BASE:
                raise ValueError(f"not an HdrHistogram V2 compressed encoding (cookie {cookie:x})")
            if length != len(raw) - _EXTERNAL_HEADER.size:
                raise ValueError(f"Decoded length={length} buffer length={len(raw) - _EXTERNAL_HEADER.size}")
            compressed = raw[_EXTERNAL_HEADER.size:]
        else:
            compressed = encoded if isinstance(encoded, bytes) else encoded.encode("ascii")
        data = zlib.decompress(compressed)
        if len(data) < _PAYLOAD_HEADER.size or len(data) - _PAYLOAD_HEADER.size > MAX_COUNTS_SIZE:
            raise ValueError(f"Invalid size: {len(data)}")
        cookie, payload_len, _offset, figures, lowest, highest, ratio = _PAYLOAD_HEADER.unpack_from(data)
        if _cookie_base(cookie) != V2_ENCODING_COOKIE_BASE:
            raise ValueError(f"Invalid cookie: {cookie:x}")
        histogram = HdrHistogram(lowest, highest, figures)
        histogram.int_to_double_conversion_ratio = ratio
        total, low_index, high_index, index = 0, -1, -1, 0
        end = _PAYLOAD_HEADER.size + min(payload_len, len(data) - _PAYLOAD_HEADER.size)
        position = _PAYLOAD_HEADER.size
        while position < end and index < histogram.counts_len:
            value, position = _get_varint(data, position)
            if value < 0:
                index += -value
                continue
            histogram.counts[index] = value
            if value:
                total += value
                high_index = index
                if low_index < 0:
                    low_index = index
            index += 1
        if total:
            histogram.max_value = histogram.get_highest_equivalent_value(histogram.get_value_from_index(high_index))
            histogram.min_value = histogram.get_value_from_index(low_index)
            histogram.total_count = total
        return histogram

    def decode_and_add(self, encoded: str | bytes) -> None:
        self.add(HdrHistogram.decode(encoded, self.b64_wrap))


def _put_varint(out: bytearray, value: int) -> None:
    """ZigZag, then LEB128 of at most 9 bytes (the ninth holds 8 bits): HdrHistogram's V2 count encoding."""
    u = (value << 1) if value >= 0 else ((-value) << 1) - 1
    for _ in range(8):
        byte = u & 0x7F
        u >>= 7
        if not u:
            out.append(byte)
            return
        out.append(byte | 0x80)
    out.append(u & 0xFF)


def _get_varint(data: bytes, position: int) -> tuple[int, int]:
    u, shift = 0, 0
    for _ in range(8):
        if position >= len(data):
            raise ValueError("truncated HdrHistogram counts")
        byte = data[position]
        position += 1
        u |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (u >> 1) ^ -(u & 1), position
        shift += 7
    if position >= len(data):
        raise ValueError("truncated HdrHistogram counts")
    u |= data[position] << shift
    return (u >> 1) ^ -(u & 1), position + 1
