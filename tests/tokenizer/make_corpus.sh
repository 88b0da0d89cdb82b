#!/usr/bin/env bash
# Tokenizer test corpus from text Debian ships: package documentation (/usr/share/doc, .gz
# unpacked), manual pages in ~30 languages (roff source), C/C++ headers, Perl, Python and shell
# source, gettext catalogues of ~190 languages, glibc locale sources, Chinese and Russian
# fortunes, Unicode data (every emoji sequence of emoji-test.txt, words of every script), and
# synthetic nasty documents (whitespace runs, digit runs, contractions in every case, CRLF,
# special-token literals, long words, combining marks, control characters).
# Writes jsonl, one {"text": ...} per line, at least MBYTES MiB of UTF-8 text; document sizes
# log-uniform from 0 bytes to min(1 MiB, MBYTES/16), plus empty and whitespace-only documents.
# Deterministic for a given SEED and set of installed packages. Summary on stderr.
# UTF-8: files with a NUL byte are dropped; files that are not valid UTF-8 are decoded with
# errors='replace' (U+FFFD) when at most 0.5% of their characters are replaced, else dropped.
# usage: make_corpus.sh OUT.jsonl [MBYTES=64] [SEED=1]      (MBYTES=4 gives the CI slice)
# Needs root for apt-get when packages are missing (installs them once; no PyPI needed).
set -euo pipefail
OUT=${1:?usage: make_corpus.sh OUT.jsonl [MBYTES] [SEED]}
MBYTES=${2:-64}
SEED=${3:-1}
PY=/usr/bin/python3
PACKAGES="manpages manpages-dev manpages-ja manpages-zh manpages-ru manpages-de manpages-fr
  manpages-es manpages-pl manpages-it manpages-pt-br manpages-nl manpages-cs manpages-uk
  manpages-hu manpages-tr manpages-sv manpages-da manpages-fi manpages-ro manpages-el
  manpages-vi manpages-id manpages-sr manpages-mk manpages-nb debian-faq-ja debian-faq-ko
  debian-faq-zh-cn debian-faq-ru unicode-data iso-codes fortunes-zh fortunes-ru python3"
HERE=$(cd "$(dirname "$0")" && pwd)

missing=()
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "make_corpus: installing ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq >&2 || true
    # install only what this Debian release has (manpages-ko, for one, does not exist in 12)
    avail=()
    for p in "${missing[@]}"; do
      apt-cache show "$p" >/dev/null 2>&1 && avail+=("$p") || echo "make_corpus: no package $p, skipped" >&2
    done
    [ ${#avail[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${avail[@]}" >/dev/null ||
      echo "make_corpus: apt-get install failed; continuing with what is installed" >&2
  else
    echo "make_corpus: not root, continuing without ${missing[*]}" >&2
  fi
fi
mkdir -p "$(dirname "$OUT")"
exec "$PY" "$HERE/corpus_gen.py" "$OUT" "$MBYTES" "$SEED"
