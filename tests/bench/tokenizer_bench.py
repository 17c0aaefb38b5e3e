#!/usr/bin/env python3
"""tokenizer_bench.py - Tollgate's tokenizer against npm gpt-tokenizer, one core each.

Builds a corpus from text every Debian machine has (no download):
  english  the licence texts in /usr/share/common-licenses (English prose)
  code     this repository's C, header and Python sources
  cjk      the Chinese, Japanese and Korean translations in /usr/share/locale/*/*.mo
  emoji    English sentences with emoji (single code points, skin tones, ZWJ families, flags)
  mixed    all four, interleaved by paragraph
then, for o200k_base and cl100k_base, times build/bin/tokenize-bench (C) and
tests/bench/tokenizer_js/bench.mjs (gpt-tokenizer 4.0.0, installed here with `npm ci` for the
benchmark only) over each file for --seconds of CPU time, checks both count the same tokens,
and prints MB/s and tokens/s. gpt-tokenizer is timed as shipped (its merge cache warm across
passes) and cold (cache cleared before each pass, as Tollgate keeps no cache).

Target (issue 6): >= 15 MB/s on one core for English prose.

Usage: python3 tests/bench/tokenizer_bench.py [--seconds 3] [--bin build/bin] [--keep DIR]
"""

import argparse
import gettext
import glob
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
JS_DIR = REPO / "tests" / "bench" / "tokenizer_js"
TARGET_MB_S = 15.0

EMOJI = ["\U0001F600", "\U0001F680", "\U0001F44D\U0001F3FD", "\u2764\ufe0f", "\U0001F389",
         "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466", "\U0001F1EF\U0001F1F5",
         "\U0001F9D1\U0001F3FF\u200D\U0001F4BB", "\u2705", "\U0001F525", "\U0001F914",
         "\U0001F3F3\ufe0f\u200D\U0001F308"]


def english_text():
    parts = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path) and not os.path.islink(path):
            parts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
    if not parts:
        sys.exit("no /usr/share/common-licenses texts: cannot build the English corpus")
    return "\n\n".join(parts)


def code_text():
    parts = []
    for pattern in ("**/*.c", "**/*.h", "**/*.py"):
        for path in sorted(REPO.glob(pattern)):
            rel = path.relative_to(REPO).parts
            if rel[0].startswith("build") or "node_modules" in rel:
                continue
            parts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(parts)


def cjk_text():
    seen, parts = set(), []
    for lang in ("zh_CN", "zh_TW", "ja", "ko"):
        for mo in sorted(glob.glob("/usr/share/locale/%s/LC_MESSAGES/*.mo" % lang)):
            try:
                with open(mo, "rb") as f:
                    catalog = gettext.GNUTranslations(f)._catalog
            except Exception:  # a damaged or unusual catalogue: skip it
                continue
            for key, value in catalog.items():
                if key and isinstance(value, str) and value not in seen and \
                        any(ord(ch) > 0x2E80 for ch in value):
                    seen.add(value)
                    parts.append(value)
    if not parts:
        sys.exit("no CJK translations under /usr/share/locale: cannot build the CJK corpus")
    return "\n".join(parts)


def emoji_text(english):
    rng = random.Random(6)
    words = english.split()[:40000]
    out = []
    for i, w in enumerate(words):
        out.append(w)
        if rng.random() < 0.15:
            out.append(rng.choice(EMOJI) * rng.randint(1, 3))
        if i % 17 == 16:
            out.append("\n")
    return " ".join(out)


def mixed_text(texts):
    paras = [t.split("\n\n") for t in texts]
    out = []
    for i in range(max(len(p) for p in paras)):
        for p in paras:
            if i < len(p):
                out.append(p[i])
    return "\n\n".join(out)


def build_corpus(out):
    english = english_text()
    corpus = {"english": english, "code": code_text(), "cjk": cjk_text(),
              "emoji": emoji_text(english)}
    corpus["mixed"] = mixed_text(list(corpus.values()))
    files = {}
    for name, text in corpus.items():
        files[name] = out / (name + ".txt")
        files[name].write_text(text, encoding="utf-8")
    return files


def run_lines(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("%s failed (%d):\n%s" % (" ".join(map(str, cmd)), p.returncode, p.stderr))
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def pin(cmd):
    """One core for the run (the second core keeps the rest of the machine off it)."""
    return (["taskset", "-c", "1"] + cmd) if shutil.which("taskset") and os.cpu_count() > 1 \
        else cmd


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per file and tool")
    ap.add_argument("--bin", default=str(REPO / "build" / "bin"))
    ap.add_argument("--keep", help="write the corpus here (kept) instead of a temp dir")
    args = ap.parse_args()
    bench = Path(args.bin) / "tokenize-bench"
    if not bench.exists():
        sys.exit("%s not found: build first (cmake --build build)" % bench)
    if not (JS_DIR / "node_modules" / "gpt-tokenizer").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS_DIR, check=True)
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tg-tokbench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        files = build_corpus(tmp)
        names = list(files)
        paths = [str(files[n]) for n in names]
        rows, ok = [], True
        for enc in ("o200k_base", "cl100k_base"):
            ours = run_lines(pin([str(bench), enc, str(args.seconds)] + paths))
            warm = run_lines(pin(["node", str(JS_DIR / "bench.mjs"), enc, str(args.seconds),
                                  "0"] + paths))
            cold = run_lines(pin(["node", str(JS_DIR / "bench.mjs"), enc, str(args.seconds),
                                  "1"] + paths))
            for name, o, w, c in zip(names, ours, warm, cold):
                same = o["tokens"] == w["tokens"] == c["tokens"]
                ok &= same
                rows.append((name, enc, o, w, c, same))
        print("\n%-8s %-12s %9s %9s | %-19s | %-19s | %-19s | %s" % (
            "corpus", "encoding", "bytes", "tokens", "Tollgate MB/s tok/s",
            "gpt-tok warm", "gpt-tok cold", "same count"))
        for name, enc, o, w, c, same in rows:
            print("%-8s %-12s %9d %9d | %6.2f %12.0f | %6.2f %12.0f | %6.2f %12.0f | %s" % (
                name, enc, o["bytes"], o["tokens"], o["mb_per_s"], o["tokens_per_s"],
                w["mb_per_s"], w["tokens_per_s"], c["mb_per_s"], c["tokens_per_s"],
                "yes" if same else "NO (%d vs %d)" % (o["tokens"], w["tokens"])))
        english = [r for r in rows if r[0] == "english"]
        for name, enc, o, *_ in english:
            print("target: English prose %s %.2f MB/s >= %.0f MB/s: %s" % (
                enc, o["mb_per_s"], TARGET_MB_S, "PASS" if o["mb_per_s"] >= TARGET_MB_S
                else "MISS"))
        if not ok:
            sys.exit("token counts differ from gpt-tokenizer's")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
