"""All Numba code of theorylab (array in, array out; no validation, no objects).

Public modules above this package validate their inputs and own state; they
call these kernels with contiguous arrays of one floating dtype.
"""
