"""Passes over a rule program: pairs of VM instructions fused into one, and the batch VM's
comparisons of columns with constants hoisted into per-column passes."""
import numpy as np

from ..kernels import rules as vm


def fuse(code):
    """Fuse ``CMPK t ...; B_AND d, t, x`` (or ``x, t``) into one ``CMPK_AND``.

    Safe because the register allocator frees ``t`` at the ``and`` that consumes it, so no
    later instruction reads it.

    Parameters
    ----------
    code : list of tuple
        Instructions ``(op, dst, a, b, c)`` as the code generator emitted them.

    Returns
    -------
    fused : list of tuple
        The new instructions.
    new_row : dict
        For each old row, its row in ``fused`` (lookup-table instructions are patched by row).
    """
    out = []
    new_row = {}
    i = 0
    while i < len(code):
        op = code[i]
        if i + 1 < len(code) and op[0] == vm.CMPK and code[i + 1][0] == vm.B_AND:
            nxt = code[i + 1]
            t = op[1]
            if nxt[2] == t and nxt[3] != t:
                other = nxt[3]
            elif nxt[3] == t and nxt[2] != t:
                other = nxt[2]
            else:
                other = None
            if other is not None:
                new_row[i] = new_row[i + 1] = len(out)
                # b carries both: constant index * 8 + comparison code
                out.append((vm.CMPK_AND, nxt[1], op[2], op[3] * 8 + op[4], other))
                i += 2
                continue
        new_row[i] = len(out)
        out.append(op)
        i += 1
    return out, new_row


def hoist_comparisons(code):
    """Comparisons of input columns with constants taken out of the batch program.

    The batch VM computes them beforehand, every comparison of one column in one pass over
    the column in its own dtype (``kernels.rules.column_planes``): each becomes a *plane*,
    and its instruction reads the plane instead (``CMPK`` -> ``CMP_PLANE``, ``CMPK_AND`` ->
    ``CMP_PLANE_AND``, with the plane in ``a`` and its column in ``b``: a plane holds the true
    rows, the false ones are the column's other valid rows). Rows keep their places, so
    lookup-table rows need no new numbers.
    The same comparison in several rules is one plane. (The one-record VM runs ``code`` as it is.)

    Parameters
    ----------
    code : (p, 5) int64 array
        The fused program.

    Returns
    -------
    batch_code : (p, 5) int64 array
    planes : (P, 3) int64 array
        Per plane ``(column, constant index, comparison code)``, grouped by column (in
        column order), so one column's planes are consecutive.
    """
    found = {}
    for row in code:
        op, a = int(row[0]), int(row[2])
        if op in (vm.CMPK, vm.CMPK_AND) and a < 0:
            k, c = (int(row[3]), int(row[4])) if op == vm.CMPK else (int(row[3]) >> 3, int(row[3]) & 7)
            found.setdefault((-a - 1, k, c), None)
    planes = sorted(found)  # by column first
    index = {key: p for p, key in enumerate(planes)}
    batch_code = np.array(code, dtype=np.int64).reshape(-1, 5)
    for row in batch_code:
        op, a = int(row[0]), int(row[2])
        if op == vm.CMPK and a < 0:
            row[:] = (vm.CMP_PLANE, row[1], index[(-a - 1, int(row[3]), int(row[4]))], -a - 1, 0)
        elif op == vm.CMPK_AND and a < 0:
            row[:] = (vm.CMP_PLANE_AND, row[1], index[(-a - 1, int(row[3]) >> 3, int(row[3]) & 7)], -a - 1, row[4])
    return batch_code, np.array(planes, dtype=np.int64).reshape(-1, 3)
