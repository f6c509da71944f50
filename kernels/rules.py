"""The rule-engine virtual machine: one compiled interpreter for every rule set.

A rule set is compiled (in ``segmint.rules.codegen``) into a *program*: rows of
``(op, dst, a, b, c)`` int64 instructions plus float64 constants and uint8 lookup tables.
The interpreter runs the program over sub-blocks of ``SUB`` rows, each instruction a tight
loop the compiler vectorises, so a new rule set is data: nothing is compiled for it.

Values:

- numbers (and dates/timestamps/durations as microseconds) are float64 with a validity byte;
- booleans follow SQL's three-valued logic encoded ``0 = false, 1 = null, 2 = true``, so that
  Kleene ``and`` is ``min``, ``or`` is ``max`` and ``not`` is ``2 - x``.

Operands: a value ``>= 0`` is a temporary register, ``-(j + 1)`` is input column ``j``
(numeric columns for numeric operands, boolean columns for boolean operands).
"""
import numpy as np

from .settings import EXACT, kernel

SUB = 4096

# numeric results (dst is a numeric temporary)
N_ADD, N_SUB, N_MUL, N_DIV = 1, 2, 3, 4
N_NEG, N_ABS, N_FLOOR = 5, 6, 7
N_ADDK, N_SUBK, N_KSUB, N_MULK, N_DIVK, N_KDIV = 8, 9, 10, 11, 12, 13
N_COALESCE, N_CONST, N_NULL = 14, 15, 16
# boolean results (dst is a boolean temporary)
CMP, CMPK = 20, 21            # c = comparison code
CMPK_AND = 22                 # b = 8 * constant + comparison code, c = boolean operand to 'and' with
B_AND, B_OR, B_NOT = 30, 31, 32
B_ISNULL, N_ISNULL = 33, 34   # is null of a boolean / numeric operand
B_CONST, B_COALESCE, B_EQ, LUT, LUT64 = 35, 36, 37, 38, 39
# sinks
SINK_WATERFALL, SINK_MULTI = 40, 41

EQ, NE, LT, LE, GT, GE = 0, 1, 2, 3, 4, 5


@kernel(fastmath=set(EXACT))
def load_numeric(values, bits, bit_offset, scale, out_v, out_m, need_mask):
    """Numbers of any dtype to float64 (times ``scale``) and validity bytes.

    Parameters
    ----------
    values : (n,) any numeric dtype, IN
    bits : Arrow validity bitmap (uint8), IN; empty when every row is valid
    bit_offset : int, bit of row 0 in ``bits``
    scale : float, multiplier (time units to microseconds; 1 for plain numbers)
    out_v : (n,) float64, OUT
    out_m : (n,) uint8, OUT: 1 valid, 0 null (left untouched when ``need_mask`` is False
        and every row is valid: comparisons with constants then never read it)
    need_mask : bool
    """
    n = values.shape[0]
    if scale == 1.0:
        for i in range(n):
            out_v[i] = values[i]
    else:
        for i in range(n):
            out_v[i] = values[i] * scale
    if need_mask or bits.shape[0] != 0:
        _unpack_validity(bits, bit_offset, n, out_m)


@kernel(fastmath=set(EXACT))
def _unpack_validity(bits, bit_offset, n, out_m):
    """Validity bitmap to bytes (1 valid, 0 null); all 1 when ``bits`` is empty."""
    if bits.shape[0] == 0:
        for i in range(n):
            out_m[i] = 1
        return
    if bit_offset & 7 == 0:  # aligned: a byte at a time
        first = bit_offset >> 3
        full = n >> 3
        for j in range(full):
            byte = bits[first + j]
            for b in range(8):
                out_m[8 * j + b] = (byte >> b) & 1
        for i in range(full * 8, n):
            k = bit_offset + i
            out_m[i] = (bits[k >> 3] >> (k & 7)) & 1
        return
    for i in range(n):
        k = bit_offset + i
        out_m[i] = (bits[k >> 3] >> (k & 7)) & 1


@kernel(fastmath=set(EXACT))
def load_bool(bits, bit_offset, vbits, vbit_offset, n, out):
    """Arrow booleans (bit-packed, with validity) to three-valued bytes (0 false, 1 null, 2 true).

    Parameters
    ----------
    bits : uint8 bitmap of the values, IN
    bit_offset : int
    vbits : uint8 validity bitmap, IN; empty when every row is valid
    vbit_offset : int
    n : int, rows
    out : (n,) uint8, OUT
    """
    _unpack_validity(bits, bit_offset, n, out)  # the values as 0/1, a byte at a time if aligned
    for i in range(n):
        out[i] = out[i] * 2
    if vbits.shape[0] != 0:
        if vbit_offset & 7 == 0:
            first = vbit_offset >> 3
            full = n >> 3
            for j in range(full):
                byte = vbits[first + j]
                for b in range(8):
                    i = 8 * j + b
                    out[i] = out[i] if (byte >> b) & 1 else 1
            for i in range(full * 8, n):
                k = vbit_offset + i
                if ((vbits[k >> 3] >> (k & 7)) & 1) == 0:
                    out[i] = 1
        else:
            for i in range(n):
                k = vbit_offset + i
                if ((vbits[k >> 3] >> (k & 7)) & 1) == 0:
                    out[i] = 1


@kernel(fastmath=set(EXACT))
def load_codes(codes, vbits, vbit_offset, null_index, out):
    """Dictionary codes to lookup-table indices: the code, or ``null_index`` for null rows.

    Parameters
    ----------
    codes : (n,) int32, IN
    vbits : uint8 validity bitmap, IN; empty when every row is valid
    vbit_offset : int
    null_index : int, the table entry that holds the result for null
    out : (n,) int32, OUT
    """
    n = codes.shape[0]
    for i in range(n):
        out[i] = codes[i]
    if vbits.shape[0] != 0:
        for i in range(n):
            k = vbit_offset + i
            if ((vbits[k >> 3] >> (k & 7)) & 1) == 0:
                out[i] = null_index


@kernel(fastmath=set(EXACT))
def _store_true(x, out, m):
    """out[i] = 1 where the three-valued x[i] is true (2), else 0 (OUT out, m entries)."""
    for i in range(m):
        out[i] = np.uint8(x[i] == 2)


@kernel(fastmath=set(EXACT))
def run_program(prog, consts, luts, lut_masks, col_v, col_m, col_nn, col_b, col_i, n, n_num, n_bool,
                assign, default, member, matched, unknown):
    """Run a compiled rule program over ``n`` rows.

    Parameters
    ----------
    prog : (p, 5) int64, IN: instructions ``(op, dst, a, b, c)``
    consts : (q,) float64, IN
    luts : (r,) uint8, IN: concatenated three-valued lookup tables of string predicates
    lut_masks : (2 t,) uint64, IN: small tables (<= 64 entries) as (true bits, null bits) pairs
    col_v, col_m : (cn, n) float64 / uint8, IN: numeric columns and their validity
    col_nn : (cn,) uint8, IN: 1 where a numeric column has no null in these rows (faster loops)
    col_b : (cb, n) uint8, IN: boolean columns, three-valued
    col_i : (ci, n) int32, IN: string columns as lookup-table indices
    n : int, rows
    n_num, n_bool : int, temporaries the program uses
    assign : (n,) int16, INOUT: waterfall result, -1 until a segment matches (empty for multi)
    default : int, the waterfall label of rows no segment matched (written at the end)
    member : (s, n) uint8, OUT for multi when not empty: 1 where the segment's rule is true
    matched, unknown : (s,) int64, INOUT: per segment, rows counted true / null
    """
    nv = np.empty((max(n_num, 1), SUB), np.float64)
    nm = np.empty((max(n_num, 1), SUB), np.uint8)
    bv = np.empty((max(n_bool, 1), SUB), np.uint8)
    has_member = member.shape[0] > 0
    for s in range(0, n, SUB):
        m = min(SUB, n - s)
        for p in range(prog.shape[0]):
            op = prog[p, 0]
            dst = prog[p, 1]
            a = prog[p, 2]
            b = prog[p, 3]
            c = prog[p, 4]
            if op < 20:
                _numeric_op(op, dst, a, b, consts, col_v, col_m, nv, nm, s, m)
            elif op < 40:
                _bool_op(op, dst, a, b, c, consts, luts, lut_masks, col_v, col_m, col_nn, col_b, col_i,
                         nv, nm, bv, s, m)
            elif op == SINK_WATERFALL:
                x = bv[a] if a >= 0 else col_b[-a - 1, s:s + m]
                hit = 0
                unk = 0
                target = assign[s:s + m]
                for i in range(m):  # branch-free: random data would mispredict every branch
                    current = target[i]
                    free = current < 0
                    take = free & (x[i] == 2)
                    hit += take
                    unk += free & (x[i] == 1)
                    target[i] = dst if take else current
                matched[dst] += hit
                unknown[dst] += unk
            else:  # SINK_MULTI
                x = bv[a] if a >= 0 else col_b[-a - 1, s:s + m]
                hit = 0
                unk = 0
                for i in range(m):
                    hit += x[i] == 2
                    unk += x[i] == 1
                matched[dst] += hit
                unknown[dst] += unk
                if has_member:
                    _store_true(x, member[dst, s:s + m], m)
    for i in range(assign.shape[0]):
        if assign[i] < 0:
            assign[i] = default


@kernel(fastmath=set(EXACT))
def _cmp_const_no_nulls(xv, k, c, out, m):
    """``out = 2 if xv op k else 0`` for a column without nulls (no validity to read)."""
    if c == EQ:
        for i in range(m):
            out[i] = (xv[i] == k) * 2
    elif c == NE:
        for i in range(m):
            out[i] = (xv[i] != k) * 2
    elif c == LT:
        for i in range(m):
            out[i] = (xv[i] < k) * 2
    elif c == LE:
        for i in range(m):
            out[i] = (xv[i] <= k) * 2
    elif c == GT:
        for i in range(m):
            out[i] = (xv[i] > k) * 2
    else:
        for i in range(m):
            out[i] = (xv[i] >= k) * 2


@kernel(fastmath=set(EXACT))
def _cmp_const_and(xv, xm, no_nulls, k, c, y, out, m):
    """``out = min(xv op k, y)`` in three-valued logic (null where xm is 0 unless y is false)."""
    if no_nulls:
        if c == EQ:
            for i in range(m):
                out[i] = min((xv[i] == k) * 2, y[i])
        elif c == NE:
            for i in range(m):
                out[i] = min((xv[i] != k) * 2, y[i])
        elif c == LT:
            for i in range(m):
                out[i] = min((xv[i] < k) * 2, y[i])
        elif c == LE:
            for i in range(m):
                out[i] = min((xv[i] <= k) * 2, y[i])
        elif c == GT:
            for i in range(m):
                out[i] = min((xv[i] > k) * 2, y[i])
        else:
            for i in range(m):
                out[i] = min((xv[i] >= k) * 2, y[i])
        return
    if c == EQ:
        for i in range(m):
            out[i] = min(1 if xm[i] == 0 else (xv[i] == k) * 2, y[i])
    elif c == NE:
        for i in range(m):
            out[i] = min(1 if xm[i] == 0 else (xv[i] != k) * 2, y[i])
    elif c == LT:
        for i in range(m):
            out[i] = min(1 if xm[i] == 0 else (xv[i] < k) * 2, y[i])
    elif c == LE:
        for i in range(m):
            out[i] = min(1 if xm[i] == 0 else (xv[i] <= k) * 2, y[i])
    elif c == GT:
        for i in range(m):
            out[i] = min(1 if xm[i] == 0 else (xv[i] > k) * 2, y[i])
    else:
        for i in range(m):
            out[i] = min(1 if xm[i] == 0 else (xv[i] >= k) * 2, y[i])


@kernel(fastmath=set(EXACT))
def _numeric_op(op, dst, a, b, consts, col_v, col_m, nv, nm, s, m):
    ov = nv[dst]
    om = nm[dst]
    if op == N_CONST:
        k = consts[a]
        for i in range(m):
            ov[i] = k
            om[i] = 1
        return
    if op == N_NULL:
        for i in range(m):
            ov[i] = 0.0
            om[i] = 0
        return
    xv = nv[a] if a >= 0 else col_v[-a - 1, s:s + m]
    xm = nm[a] if a >= 0 else col_m[-a - 1, s:s + m]
    if op == N_NEG:
        for i in range(m):
            ov[i] = -xv[i]
            om[i] = xm[i]
    elif op == N_ABS:
        for i in range(m):
            ov[i] = abs(xv[i])
            om[i] = xm[i]
    elif op == N_FLOOR:
        for i in range(m):
            ov[i] = np.floor(xv[i])
            om[i] = xm[i]
    elif op >= N_ADDK and op <= N_KDIV:
        k = consts[b]
        if op == N_ADDK:
            for i in range(m):
                ov[i] = xv[i] + k
                om[i] = xm[i]
        elif op == N_SUBK:
            for i in range(m):
                ov[i] = xv[i] - k
                om[i] = xm[i]
        elif op == N_KSUB:
            for i in range(m):
                ov[i] = k - xv[i]
                om[i] = xm[i]
        elif op == N_MULK:
            for i in range(m):
                ov[i] = xv[i] * k
                om[i] = xm[i]
        elif op == N_DIVK:
            if k == 0.0:
                for i in range(m):
                    ov[i] = 0.0
                    om[i] = 0
            else:
                for i in range(m):
                    ov[i] = xv[i] / k
                    om[i] = xm[i]
        else:  # N_KDIV
            for i in range(m):
                zero = xv[i] == 0.0
                ov[i] = 0.0 if zero else k / xv[i]
                om[i] = 0 if zero else xm[i]
    else:
        yv = nv[b] if b >= 0 else col_v[-b - 1, s:s + m]
        ym = nm[b] if b >= 0 else col_m[-b - 1, s:s + m]
        if op == N_ADD:
            for i in range(m):
                ov[i] = xv[i] + yv[i]
                om[i] = xm[i] & ym[i]
        elif op == N_SUB:
            for i in range(m):
                ov[i] = xv[i] - yv[i]
                om[i] = xm[i] & ym[i]
        elif op == N_MUL:
            for i in range(m):
                ov[i] = xv[i] * yv[i]
                om[i] = xm[i] & ym[i]
        elif op == N_DIV:
            for i in range(m):
                zero = yv[i] == 0.0
                ov[i] = 0.0 if zero else xv[i] / yv[i]
                om[i] = 0 if zero else xm[i] & ym[i]
        else:  # N_COALESCE
            for i in range(m):
                use_x = xm[i] == 1
                ov[i] = xv[i] if use_x else yv[i]
                om[i] = 1 if use_x else ym[i]


@kernel(fastmath=set(EXACT))
def _bool_op(op, dst, a, b, c, consts, luts, lut_masks, col_v, col_m, col_nn, col_b, col_i, nv, nm,
             bv, s, m):
    out = bv[dst]
    if op == CMPK_AND:  # a comparison with a constant, 'and'-ed with another condition in one pass
        y = bv[c] if c >= 0 else col_b[-c - 1, s:s + m]
        xv = nv[a] if a >= 0 else col_v[-a - 1, s:s + m]
        xm = nm[a] if a >= 0 else col_m[-a - 1, s:s + m]
        no_nulls = a < 0 and col_nn[-a - 1] == 1
        _cmp_const_and(xv, xm, no_nulls, consts[b >> 3], b & 7, y, out, m)
        return
    if op == CMP or op == CMPK:
        xv = nv[a] if a >= 0 else col_v[-a - 1, s:s + m]
        xm = nm[a] if a >= 0 else col_m[-a - 1, s:s + m]
        if op == CMPK and a < 0 and col_nn[-a - 1] == 1:
            _cmp_const_no_nulls(xv, consts[b], c, out, m)
            return
        if op == CMPK:
            k = consts[b]
            if c == EQ:
                for i in range(m):
                    out[i] = 1 if xm[i] == 0 else (2 if xv[i] == k else 0)
            elif c == NE:
                for i in range(m):
                    out[i] = 1 if xm[i] == 0 else (2 if xv[i] != k else 0)
            elif c == LT:
                for i in range(m):
                    out[i] = 1 if xm[i] == 0 else (2 if xv[i] < k else 0)
            elif c == LE:
                for i in range(m):
                    out[i] = 1 if xm[i] == 0 else (2 if xv[i] <= k else 0)
            elif c == GT:
                for i in range(m):
                    out[i] = 1 if xm[i] == 0 else (2 if xv[i] > k else 0)
            else:
                for i in range(m):
                    out[i] = 1 if xm[i] == 0 else (2 if xv[i] >= k else 0)
            return
        yv = nv[b] if b >= 0 else col_v[-b - 1, s:s + m]
        ym = nm[b] if b >= 0 else col_m[-b - 1, s:s + m]
        for i in range(m):
            x = xv[i]
            y = yv[i]
            if c == EQ:
                r = x == y
            elif c == NE:
                r = x != y
            elif c == LT:
                r = x < y
            elif c == LE:
                r = x <= y
            elif c == GT:
                r = x > y
            else:
                r = x >= y
            out[i] = 1 if (xm[i] & ym[i]) == 0 else (2 if r else 0)
        return
    if op == B_CONST:
        for i in range(m):
            out[i] = a
        return
    if op == N_ISNULL:
        xm = nm[a] if a >= 0 else col_m[-a - 1, s:s + m]
        for i in range(m):
            out[i] = 2 if xm[i] == 0 else 0
        return
    if op == LUT:
        idx = col_i[a, s:s + m]
        for i in range(m):
            out[i] = luts[b + idx[i]]
        return
    if op == LUT64:  # a shift per row vectorises; a table gather does not
        idx = col_i[a, s:s + m]
        true_bits = lut_masks[2 * b]
        null_bits = lut_masks[2 * b + 1]
        for i in range(m):
            sh = np.uint64(idx[i])
            out[i] = ((true_bits >> sh) & np.uint64(1)) * np.uint64(2) + ((null_bits >> sh) & np.uint64(1))
        return
    x = bv[a] if a >= 0 else col_b[-a - 1, s:s + m]
    if op == B_NOT:
        for i in range(m):
            out[i] = 2 - x[i]
        return
    if op == B_ISNULL:
        for i in range(m):
            out[i] = 2 if x[i] == 1 else 0
        return
    y = bv[b] if b >= 0 else col_b[-b - 1, s:s + m]
    if op == B_AND:
        for i in range(m):
            out[i] = min(x[i], y[i])
    elif op == B_OR:
        for i in range(m):
            out[i] = max(x[i], y[i])
    elif op == B_COALESCE:
        for i in range(m):
            out[i] = y[i] if x[i] == 1 else x[i]
    else:  # B_EQ: Kleene equality of two booleans
        for i in range(m):
            out[i] = 1 if (x[i] == 1 or y[i] == 1) else (2 if x[i] == y[i] else 0)


# -- one record ---------------------------------------------------------------------------------
# The same program, one customer at a time: scalars instead of sub-blocks, no lookup tables (the
# caller evaluates a record's string predicates in Python and passes their three-valued
# results), and a waterfall stops at the first segment that takes the record. The most frequent
# instructions (comparisons with a constant, sinks) are tested first: measured on 20 rules
# (87 instructions), a 2-D program with the batch VM's order of tests took 2.6 us a call, this
# 0.9 us. Registers are written before they are read (the code generator's allocation).

@kernel(fastmath=set(EXACT))
def _compare_scalar(x, y, c):
    """``x c y`` for one pair of float64 (c a comparison code): 2 when true, else 0."""
    if c == EQ:
        r = x == y
    elif c == NE:
        r = x != y
    elif c == LT:
        r = x < y
    elif c == LE:
        r = x <= y
    elif c == GT:
        r = x > y
    else:
        r = x >= y
    return np.uint8(2) if r else np.uint8(0)


@kernel(fastmath=set(EXACT))
def _constant(consts, i, as_of_us, as_of_day_us):
    """Constant ``i`` of a program, slots 0 and 1 being the evaluation instant (the code
    generator reads them only through N_CONST and the as_of subtractions; comparisons never)."""
    if i == 0:
        return as_of_us
    if i == 1:
        return as_of_day_us
    return consts[i]


@kernel(fastmath=set(EXACT))
def run_record(prog, consts, as_of_us, as_of_day_us, num_v, states, member):
    """Run a compiled rule program over one record.

    Parameters
    ----------
    prog : (5 + 5 p,) int64, IN: a header ``(n_values, lut_base, n_num, n_bool, 0)``, then the
        program's ``(op, dst, a, b, c)`` rows, flattened (one index per field is cheaper than
        a 2-D index here, and every argument costs the dispatcher time); lookup-table
        instructions hold the place of their result among the string predicates in ``b``
    consts : (q,) float64, IN; slots ``0`` and ``1`` stand for ``as_of_us`` and ``as_of_day_us``
    as_of_us, as_of_day_us : float, the evaluation instant and its midnight UTC, microseconds
    num_v : (cn,) float64 (any 1-D buffer: the caller passes an ``array.array``), IN: the
        record's numeric columns
    states : (cn + cb + t,) uint8 (any 1-D buffer: the caller passes ``bytes``), IN: the
        numeric columns' validity (1 valid, 0 null), then three-valued booleans: the boolean
        columns, then from ``lut_base`` on the value of each string predicate for this record
    (header) n_values : cn, where the three-valued part of ``states`` starts;
        lut_base : index of string predicate 0 among the three-valued ``states``;
        n_num, n_bool : temporaries the program uses
    member : (s,) uint8, OUT in multi mode: 1 where the segment's rule is true (empty for a waterfall)

    Returns
    -------
    int
        Waterfall: the index of the first segment whose rule is true, -1 when none is (the
        instructions of later segments are not run). Multi mode: -1.
    """
    n_values = prog[0]
    lut_base = prog[1]
    n_num = prog[2]
    n_bool = prog[3]
    nv = np.empty(max(n_num, 1), np.float64)
    nm = np.empty(max(n_num, 1), np.uint8)
    bv = np.empty(max(n_bool, 1), np.uint8)
    n = prog.shape[0]
    for q in range(5, n, 5):
        op = prog[q]
        dst = prog[q + 1]
        a = prog[q + 2]
        b = prog[q + 3]
        c = prog[q + 4]
        if op == CMPK_AND or op == CMPK:
            xm = nm[a] if a >= 0 else states[-a - 1]
            if op == CMPK_AND:
                y = bv[c] if c >= 0 else states[n_values - c - 1]
                if xm == 0:
                    bv[dst] = min(np.uint8(1), y)
                else:
                    x = nv[a] if a >= 0 else num_v[-a - 1]
                    bv[dst] = min(_compare_scalar(x, consts[b >> 3], b & 7), y)
            else:
                if xm == 0:
                    bv[dst] = 1
                else:
                    x = nv[a] if a >= 0 else num_v[-a - 1]
                    bv[dst] = _compare_scalar(x, consts[b], c)
        elif op == SINK_WATERFALL:
            if (bv[a] if a >= 0 else states[n_values - a - 1]) == 2:
                return dst
        elif op < 20:
            if op == N_CONST:
                nv[dst] = _constant(consts, a, as_of_us, as_of_day_us)
                nm[dst] = 1
                continue
            if op == N_NULL:
                nv[dst] = 0.0
                nm[dst] = 0
                continue
            x = nv[a] if a >= 0 else num_v[-a - 1]
            xm = nm[a] if a >= 0 else states[-a - 1]
            r = x
            rm = xm
            if op == N_NEG:
                r = -x
            elif op == N_ABS:
                r = abs(x)
            elif op == N_FLOOR:
                r = np.floor(x)
            elif op >= N_ADDK and op <= N_KDIV:
                kb = _constant(consts, b, as_of_us, as_of_day_us)
                if op == N_ADDK:
                    r = x + kb
                elif op == N_SUBK:
                    r = x - kb
                elif op == N_KSUB:
                    r = kb - x
                elif op == N_MULK:
                    r = x * kb
                elif op == N_DIVK:
                    if kb == 0.0:
                        r, rm = 0.0, np.uint8(0)
                    else:
                        r = x / kb
                else:  # N_KDIV
                    if x == 0.0:
                        r, rm = 0.0, np.uint8(0)
                    else:
                        r = kb / x
            else:
                y = nv[b] if b >= 0 else num_v[-b - 1]
                ym = nm[b] if b >= 0 else states[-b - 1]
                rm = xm & ym
                if op == N_ADD:
                    r = x + y
                elif op == N_SUB:
                    r = x - y
                elif op == N_MUL:
                    r = x * y
                elif op == N_DIV:
                    if y == 0.0:
                        r, rm = 0.0, np.uint8(0)
                    else:
                        r = x / y
                else:  # N_COALESCE
                    if xm == 1:
                        r, rm = x, np.uint8(1)
                    else:
                        r, rm = y, ym
            nv[dst] = r
            nm[dst] = rm
        elif op == LUT or op == LUT64:
            bv[dst] = states[n_values + lut_base + b]
        elif op == SINK_MULTI:
            member[dst] = np.uint8((bv[a] if a >= 0 else states[n_values - a - 1]) == 2)
        elif op == CMP:
            xm = nm[a] if a >= 0 else states[-a - 1]
            ym = nm[b] if b >= 0 else states[-b - 1]
            if (xm & ym) == 0:
                bv[dst] = 1
            else:
                bv[dst] = _compare_scalar(nv[a] if a >= 0 else num_v[-a - 1], nv[b] if b >= 0 else num_v[-b - 1], c)
        elif op == B_CONST:
            bv[dst] = a
        elif op == N_ISNULL:
            xm = nm[a] if a >= 0 else states[-a - 1]
            bv[dst] = 2 if xm == 0 else 0
        else:
            x3 = bv[a] if a >= 0 else states[n_values - a - 1]
            if op == B_NOT:
                bv[dst] = 2 - x3
            elif op == B_ISNULL:
                bv[dst] = 2 if x3 == 1 else 0
            else:
                y3 = bv[b] if b >= 0 else states[n_values - b - 1]
                if op == B_AND:
                    bv[dst] = min(x3, y3)
                elif op == B_OR:
                    bv[dst] = max(x3, y3)
                elif op == B_COALESCE:
                    bv[dst] = y3 if x3 == 1 else x3
                elif x3 == 1 or y3 == 1:
                    bv[dst] = 1
                else:
                    bv[dst] = 2 if x3 == y3 else 0
    return -1
