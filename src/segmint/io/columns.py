"""Column views: one contiguous Arrow array seen as numpy arrays that kernels can read.

A :class:`ColumnView` never unpacks what Arrow packs. Numeric and temporal values are numpy
views on the Arrow buffers (zero-copy; read-only when the buffer is, as for memory-mapped
files); validity stays the Arrow bitmap (bit ``validity_offset + i`` is row ``i``); booleans
stay bit-packed the same way; strings are dictionary codes plus a dictionary.

Kinds and what ``values`` holds:

=============  =====================================================  ==========
kind           values                                                 copy?
=============  =====================================================  ==========
``numeric``    the values, the Arrow dtype (int8..uint64, float32/64)  never
``temporal``   int64 counts of ``unit`` (``s ms us ns`` or ``D``)       date32 only
``boolean``    packed bits, uint8; row i is bit ``values_offset + i``  never
``dictionary`` int32 codes into ``dictionary`` (a pyarrow string array) see below
=============  =====================================================  ==========

Dictionary codes are zero-copy when the Arrow data is already dictionary-encoded with int32
indices and the dictionary is the one the column started with; otherwise they are remapped
(one small gather) so that a code means the same string in every batch of one pass.
"""
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .._lazy import lazy_import
from ..errors import CorruptFileError, UnsupportedTypeError

ks = lazy_import("segmint.kernels.structure")  # on first use: see segmint._lazy
pc = lazy_import("pyarrow.compute")

NUMERIC, TEMPORAL, BOOLEAN, DICTIONARY = "numeric", "temporal", "boolean", "dictionary"


@dataclass(frozen=True, eq=False)
class ColumnView:
    """One column of one batch, as numpy arrays over the Arrow memory.

    Attributes
    ----------
    name : str
    kind : {'numeric', 'temporal', 'boolean', 'dictionary'}
    arrow_type : pyarrow.DataType
        The column's type in the source (before any dictionary encoding).
    values : numpy.ndarray
        See the module docstring: values, int64 time counts, packed bits or int32 codes.
    validity : numpy.ndarray of uint8 or None
        The Arrow validity bitmap (packed, least significant bit first), or None when the
        column has no nulls in this batch.
    validity_offset : int
        Bit position of row 0 in ``validity`` (0..7).
    null_count : int
    values_offset : int
        Bit position of row 0 in ``values`` for booleans; 0 for the other kinds.
    dictionary : pyarrow.Array or None
        The strings that codes point into (dictionary kind only).
    unit : str or None
        Time unit of temporal values: 's', 'ms', 'us', 'ns' or 'D' (days).
    tz : str or None
        Time zone of timestamps, when the column has one.
    """

    name: str
    kind: str
    arrow_type: pa.DataType
    values: np.ndarray
    length: int
    validity: np.ndarray | None = None
    validity_offset: int = 0
    null_count: int = 0
    values_offset: int = 0
    dictionary: pa.Array | None = None
    unit: str | None = None
    tz: str | None = None

    def __len__(self):
        return self.length

    def is_valid(self):
        """Unpacked validity: a bool array, True where the row is not null (a copy)."""
        if self.validity is None:
            return np.ones(self.length, dtype=bool)
        return unpack_bits(self.validity, self.validity_offset, self.length)

    def to_numpy(self):
        """The values as a plain numpy array (booleans unpacked; null slots hold arbitrary data)."""
        if self.kind == BOOLEAN:
            return unpack_bits(self.values, self.values_offset, self.length)
        return self.values

    def to_pylist(self):
        """Python values with None for nulls; slow, for inspection and tests."""
        valid = self.is_valid()
        if self.kind == DICTIONARY:
            strings = self.dictionary.to_pylist()
            return [strings[c] if v else None for c, v in zip(self.values.tolist(), valid)]
        return [x if v else None for x, v in zip(self.to_numpy().tolist(), valid)]


def read_only(a):
    """``a``, or a view of it, that cannot be written.

    Every array a column view hands to the kernels is read-only, whatever its source: Numba
    compiles a kernel once per combination of read-only and writable arguments, and an
    Arrow buffer is read-only when memory-mapped from a file and often writable in memory, so
    without this one rule a kernel warmed up on one kind of source would compile again, on a
    request, for the other.
    """
    if a.flags.writeable:
        a = a.view()
        a.flags.writeable = False
    return a


_NO_BITS = read_only(np.zeros(0, dtype=np.uint8))


def validity_bits(view):
    """``(validity bitmap, bit offset)`` of a column view, as the kernels take them: an empty
    bitmap when every value is valid."""
    if view.validity is None:
        return _NO_BITS, 0
    return view.validity, view.validity_offset


def kernel_numbers(view):
    """A numeric or boolean view's values as the kernels take them: float32 and float64 as they
    are, other numbers widened to float64, booleans unpacked to 0/1 (so a kernel compiles two
    specialisations, not one per integer type)."""
    if view.kind == BOOLEAN:
        return read_only(unpack_bits(view.values, view.values_offset, view.length).astype(np.float64))
    if view.values.dtype in (np.float32, np.float64):
        return view.values
    return read_only(view.values.astype(np.float64))


def unpack_bits(bitmap, offset, length):
    """Bits ``offset .. offset+length`` of an Arrow (LSB-first) bitmap as a bool array."""
    if length == 0:
        return np.zeros(0, dtype=bool)
    bits = np.unpackbits(bitmap, count=offset + length, bitorder="little")
    return bits[offset:].view(bool)


def _bitmap_view(buf, offset, length):
    """The bytes of ``buf`` covering bits ``offset .. offset+length``, and the bit offset in them."""
    first = offset // 8
    last = (offset + length + 7) // 8
    data = read_only(np.frombuffer(buf, dtype=np.uint8, count=last))
    return data[first:last], offset % 8


def _values_view(buf, dtype, offset, length):
    if length == 0 or buf is None:
        return read_only(np.zeros(0, dtype=dtype))
    return read_only(np.frombuffer(buf, dtype=dtype, count=offset + length)[offset:])


def check_supported(name, arrow_type):
    """Raise :class:`UnsupportedTypeError` unless segmint can view a column of this type."""
    if column_kind(arrow_type) is None:
        raise UnsupportedTypeError(
            f"column {name!r} has type {arrow_type}, which segmint does not read; supported are "
            "integers, float32/float64, booleans, strings (plain or dictionary-encoded), dates, "
            "timestamps and durations. Cast it (e.g. with pyarrow.compute.cast) or leave it out."
        )


def column_kind(t):
    """The :class:`ColumnView` kind for an Arrow type, or None when it is unsupported."""
    if pa.types.is_integer(t) or pa.types.is_float32(t) or pa.types.is_float64(t):
        return NUMERIC
    if pa.types.is_boolean(t):
        return BOOLEAN
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t):
        return TEMPORAL
    if _is_string(t):
        return DICTIONARY
    if pa.types.is_dictionary(t):
        if _is_string(t.value_type):
            return DICTIONARY
        return column_kind(t.value_type)  # dictionary of numbers: decoded
    return None


def _is_string(t):
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def view_of(name, array, unifier=None):
    """A :class:`ColumnView` of one contiguous pyarrow array.

    Parameters
    ----------
    name : str
    array : pyarrow.Array
        Any supported type (see :func:`column_kind`); may be a slice (non-zero offset).
    unifier : DictionaryUnifier, optional
        Keeps string codes consistent across the batches of one pass; a fresh one is used
        when None.
    """
    t = array.type
    kind = column_kind(t)
    if kind is None:
        check_supported(name, t)
    if pa.types.is_dictionary(t) and kind != DICTIONARY:
        array = array.dictionary_decode()
        t = array.type
    if kind == DICTIONARY:
        if unifier is None:
            unifier = DictionaryUnifier()
        codes_array, dictionary = unifier.unify(array)
        return _make_view(name, DICTIONARY, array.type, codes_array, np.int32, dictionary=dictionary)
    if kind == BOOLEAN:
        validity, voff = _validity(array)
        bits, boff = _bitmap_view(array.buffers()[1], array.offset, len(array)) if len(array) else (
            _NO_BITS, 0)
        return ColumnView(name, BOOLEAN, t, bits, len(array), validity, voff, array.null_count, boff)
    if kind == TEMPORAL:
        unit = "D" if pa.types.is_date32(t) else ("ms" if pa.types.is_date64(t) else t.unit)
        tz = getattr(t, "tz", None)
        if pa.types.is_date32(t):
            # int32 days widened to int64 (one small copy) so kernels see one time dtype
            raw = _values_view(array.buffers()[1], np.int32, array.offset, len(array))
            validity, voff = _validity(array)
            return ColumnView(name, TEMPORAL, t, read_only(raw.astype(np.int64)), len(array), validity, voff,
                              array.null_count, unit=unit, tz=tz)
        return _make_view(name, TEMPORAL, t, array, np.int64, unit=unit, tz=tz)
    return _make_view(name, NUMERIC, t, array, np.dtype(t.to_pandas_dtype()))


def _validity(array):
    if array.null_count == 0 or array.buffers()[0] is None:
        return None, 0
    return _bitmap_view(array.buffers()[0], array.offset, len(array))


def _make_view(name, kind, arrow_type, array, dtype, **extra):
    validity, voff = _validity(array)
    values = _values_view(array.buffers()[1], dtype, array.offset, len(array))
    return ColumnView(name, kind, arrow_type, values, len(array), validity, voff, array.null_count,
                      **extra)


class DictionaryUnifier:
    """Gives a string column one stable set of codes across the batches of one pass.

    The first dictionary seen becomes the global one; strings met later are appended, so a
    code never changes meaning within a pass, and a pass over the same data in the same order
    gives the same codes. Batches whose dictionary is the global one (an Arrow IPC file, a
    table encoded once) keep their int32 codes zero-copy.
    """

    def __init__(self):
        self._dictionary = pa.array([], type=pa.string())
        self._last_batch_dictionary = None
        self._last_mapping = None

    @property
    def dictionary(self):
        """The global dictionary so far (a pyarrow string array)."""
        return self._dictionary

    def unify(self, array):
        """Return ``(int32 indices array, global dictionary)`` for a string or dictionary array."""
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        if array.dictionary.null_count:
            # a null inside the dictionary: re-encode so nulls live in the validity bitmap
            array = pc.dictionary_encode(array.dictionary_decode())
        batch_dictionary = array.dictionary
        indices = array.indices
        if indices.type != pa.int32():
            indices = indices.cast(pa.int32())
        if (self._last_batch_dictionary is not None
                and (batch_dictionary is self._last_batch_dictionary
                     or batch_dictionary.equals(self._last_batch_dictionary))):
            mapping = self._last_mapping
        else:
            _check_utf8(batch_dictionary)
            mapping = self._mapping_for(batch_dictionary)
            self._last_batch_dictionary, self._last_mapping = batch_dictionary, mapping
        if mapping is not None:
            codes = _values_view(indices.buffers()[1], np.int32, indices.offset, len(indices))
            # null slots may hold any index: clip keeps the gather in bounds
            remapped = np.take(mapping, codes, mode="clip")
            mask = None if indices.null_count == 0 else ~_valid_mask(indices)
            indices = pa.array(remapped, mask=mask)
        return indices, self._dictionary

    def _mapping_for(self, batch_dictionary):
        """int32 array mapping batch codes to global codes, or None when they are the same.

        Vectorised in Arrow (a hash lookup of the batch's strings in the global dictionary),
        so a dictionary of millions of customer ids costs milliseconds, not a Python loop."""
        batch_dictionary = batch_dictionary.cast(pa.string()) if batch_dictionary.type != pa.string() \
            else batch_dictionary
        n_old = len(self._dictionary)
        if batch_dictionary.equals(self._dictionary[:len(batch_dictionary)]):
            return None  # the global dictionary extends this one: same codes
        if n_old == 0 and pc.count_distinct(batch_dictionary, mode="all").as_py() == len(batch_dictionary):
            self._dictionary = batch_dictionary
            return None
        found = pc.index_in(batch_dictionary, value_set=self._dictionary)
        missing = found.is_null()
        n_new = pc.sum(missing).as_py() or 0
        mapping = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
        if n_new:
            # unique(): a dictionary may repeat a string; the global one never does
            new = pc.unique(batch_dictionary.filter(missing))
            self._dictionary = pa.concat_arrays([self._dictionary, new])
            at = mapping < 0
            mapping[at] = n_old + pc.index_in(batch_dictionary.filter(missing), value_set=new) \
                .to_numpy(zero_copy_only=False).astype(np.int32)
        if np.array_equal(mapping, np.arange(len(mapping), dtype=np.int32)):
            return None
        return mapping


def _valid_mask(array):
    if array.null_count == 0:
        return np.ones(len(array), dtype=bool)
    validity, off = _bitmap_view(array.buffers()[0], array.offset, len(array))
    return unpack_bits(validity, off, len(array))


# ---------------------------------------------------------------------------- layout checks
class LayoutError(CorruptFileError):
    """Damaged Arrow layout. Its message says what is damaged; the reader that catches it
    adds the file and the column (see ``io.source``)."""


def check_layout(array, known_dictionary=None):
    """Check what Arrow compute functions and kernels trust, before they read ``array``.

    ``RecordBatch.validate()`` (cheap) checks buffer sizes and the first and last offsets;
    it does not check the offsets in between nor dictionary indices, and a file can damage
    both. This checks them for string, binary and dictionary arrays (other types have
    nothing more to check) at about 1 ms per million rows. UTF-8 is checked later, on the
    distinct strings only, when a view meets a new dictionary (``validate(full=True)`` on
    every row would cost about 10 times more).

    Parameters
    ----------
    array : pyarrow.Array
        One column of a record batch that passed ``validate()``.
    known_dictionary : pyarrow.Array, optional
        A dictionary already checked, still referenced by the caller (so its memory cannot be
        reused): when ``array`` has the very same dictionary buffers it is not checked again
        (the batches of an IPC file share one dictionary).

    Returns
    -------
    pyarrow.Array
        ``array``, or a copy whose null slots hold index 0 when a dictionary array's null
        slots held indices out of range (Arrow leaves null slots undefined; our kernels
        read them).

    Raises
    ------
    LayoutError
        Offsets out of order or out of the data, or a valid index outside the dictionary.
    """
    t = array.type
    if pa.types.is_dictionary(t):
        dictionary = array.dictionary
        if known_dictionary is None or _buffers_key(known_dictionary) != _buffers_key(dictionary):
            _check_offsets(dictionary, "its dictionary")
        return _checked_indices(array, len(dictionary))
    _check_offsets(array, "it")
    return array


def _check_utf8(strings):
    """Refuse strings that are not UTF-8 (rules and ``to_pylist`` decode the dictionary).

    Only dictionaries are checked, when a view meets a new one: their distinct values cost
    far less than every row, and the dictionary is all that is ever decoded."""
    try:
        strings.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise LayoutError(f"it holds a string that is not valid UTF-8 ({exc})") from None


def _buffers_key(array):
    return (len(array), array.offset) + tuple(b.address if b is not None else 0 for b in array.buffers())


def _check_offsets(array, what):
    t = array.type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        try:  # views point into variadic buffers: Arrow's full check is the one there is
            array.validate(full=True)
        except pa.ArrowInvalid as exc:
            raise LayoutError(f"{what} has damaged string views ({exc})") from None
        return
    if pa.types.is_string(t) or pa.types.is_binary(t):
        dtype = np.int32
    elif pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        dtype = np.int64
    else:
        return
    if len(array) == 0:
        return
    buffers = array.buffers()
    offsets = read_only(np.frombuffer(buffers[1], dtype=dtype, count=array.offset + len(array) + 1)[array.offset:])
    data_size = buffers[2].size if buffers[2] is not None else 0
    bad = ks.first_bad_offset(offsets, data_size)
    if bad >= 0:
        raise LayoutError(
            f"{what} has damaged string offsets: offset {bad} is {int(offsets[bad])}, after "
            f"{int(offsets[bad - 1]) if bad else 0}, in {data_size} bytes of data")


def _checked_indices(array, size):
    indices = array.indices
    if len(indices) == 0:
        return array
    raw = _values_view(indices.buffers()[1], np.dtype(indices.type.to_pandas_dtype()),
                       indices.offset, len(indices))
    if raw.min() >= 0 and raw.max() < size:  # the common case: one pass, nulls included
        return array
    low, high = pc.min_max(indices).values()  # valid slots only
    if low.is_valid and (low.as_py() < 0 or high.as_py() >= size):
        wrong = low.as_py() if low.as_py() < 0 else high.as_py()
        raise LayoutError(f"it holds dictionary index {wrong}, outside its dictionary of {size} values")
    # only null slots point outside: give them index 0 so no reader follows them
    cleaned = np.where(_valid_mask(indices), raw, 0).astype(raw.dtype)
    fixed = pa.array(cleaned, type=indices.type, mask=~_valid_mask(indices))
    return pa.DictionaryArray.from_arrays(fixed, array.dictionary, ordered=array.type.ordered)
