#!/usr/bin/python3
"""compare_logits.py GOT WANT --vocab V --rel TOL [--rows i,j,k]

GOT and WANT are float32 little-endian rows of V logits. Metric: max over rows of
max|got - want| / max|want| of that row. Prints it and the worst row; exits 1 above TOL (or
on NaN/inf, or a row count mismatch).
--rows picks rows of GOT (negative = from the end); WANT then holds either exactly those rows
in that order (a reference run with --positions) or as many rows as GOT.
"""
import argparse
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("got")
    ap.add_argument("want")
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--rel", type=float, required=True)
    ap.add_argument("--rows")
    a = ap.parse_args()
    V = a.vocab
    got = np.fromfile(a.got, "<f4")
    want = np.fromfile(a.want, "<f4")
    for name, x in (("got", got), ("want", want)):
        if x.size == 0 or x.size % V:
            print("compare: %s has %d floats, not a multiple of vocab %d" % (name, x.size, V))
            return 1
    got = got.reshape(-1, V).astype(np.float64)
    want = want.reshape(-1, V).astype(np.float64)
    labels = list(range(got.shape[0]))
    if a.rows:
        rows = [int(s) for s in a.rows.split(",")]
        rows = [r + got.shape[0] if r < 0 else r for r in rows]
        if any(not 0 <= r < got.shape[0] for r in rows):
            print("compare: --rows out of range for %d rows of got" % got.shape[0])
            return 1
        if want.shape[0] == got.shape[0]:
            want = want[rows]
        elif want.shape[0] != len(rows):
            print("compare: want has %d rows, --rows names %d" % (want.shape[0], len(rows)))
            return 1
        got = got[rows]
        labels = rows
    if got.shape != want.shape:
        print("compare: got %d rows, want %d" % (got.shape[0], want.shape[0]))
        return 1
    if not np.isfinite(got).all():
        bad = int(np.argmax(~np.isfinite(got).all(axis=1)))
        print("compare: non-finite logits in got row %d" % labels[bad])
        return 1
    rel = np.abs(got - want).max(axis=1) / np.maximum(np.abs(want).max(axis=1), 1e-30)
    w = int(np.argmax(rel))
    ok = rel[w] <= a.rel
    print("rel %.3g (worst row %d of %d, tol %g) %s" % (rel[w], labels[w], len(labels), a.rel,
                                                       "ok" if ok else "ABOVE TOLERANCE"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
