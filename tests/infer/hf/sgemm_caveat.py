#!/usr/bin/python3
"""sgemm_caveat.py LONGCTX ISA

Prints why a prefill's bits may change with --prefill-chunk / --threads under kernel set ISA
(the isa= of longctx's --timings line), or nothing when they must not.

Only the scalar set multiplies the linear layers with OpenBLAS sgemm (infer_forward.c, LIN_SGEMM;
the AVX2 and AVX-512 sets use ik_gemm, whose bits never depend on the chunking). It does so in
fixed 64-row calls, which keeps a token's bits only if a row's bits do not depend on its position
within a call. OpenBLAS's Haswell and Zen kernels break that (34 of 63 positions of a 64-row call
differ from position 0, measured with 0.3.21); its Sandybridge kernels and those picked on the
AVX-512 machine keep it. The core is asked of the libopenblas that LONGCTX loads (ldd), so that
OPENBLAS_CORETYPE and the Debian alternative in use count as they do for longctx.
"""
import ctypes
import subprocess
import sys

POSITION_DEPENDENT = {"haswell", "zen"}


def corename(binary):
    out = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    path = "libopenblas.so.0"
    for line in out.splitlines():
        if "libopenblas" in line and "=>" in line:
            path = line.split("=>")[1].split()[0]
    lib = ctypes.CDLL(path)
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib.openblas_get_corename().decode()


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    if sys.argv[2] != "scalar":
        return
    core = corename(sys.argv[1])
    if core.lower() in POSITION_DEPENDENT:
        print("the scalar set's sgemm path on OpenBLAS's %s kernels, whose rows' bits depend on "
              "their position within a call (infer_forward.c): not chunk-independent" % core)


if __name__ == "__main__":
    main()
