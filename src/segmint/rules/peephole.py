"""The peephole pass over a rule program: pairs of VM instructions fused into one."""
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
