"""Validate seed-corpus JSON Lines files and print their counts.

    python tools/validate_seed.py classifiers/seed/de.jsonl classifiers/seed/independent/de.jsonl

Files under an ``independent`` folder must use split ``independent``; others ``train``/``test``.
Pairs (``"pair"``) must have exactly two members, in one split, one positive and one negative;
``--reverse-pairs ID,ID`` names pairs whose members may both be positive or both negative.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

LABELS = {"incitement", "recruitment", "instruction", "threat"}
NEGATIVE_CATEGORIES = {"news", "court", "research", "counter_speech", "policy", "idiom", "game",
                       "manual", "recruiting_ad", "history", "fiction", "everyday"}
KEYS = ["id", "text", "labels", "lang", "category", "split"]
MAX_CHARS = 300


def validate(path: Path, reverse_pairs: set[str]) -> list[str]:
    errors: list[str] = []
    independent = path.parent.name == "independent"
    lang = path.stem
    id_pattern = re.compile(rf"^{re.escape(lang)}-i\d{{3}}$" if independent
                            else rf"^{re.escape(lang)}-\d{{4}}$")
    allowed_splits = {"independent"} if independent else {"train", "test"}
    ids, texts = set(), set()
    pairs: dict[str, list[dict]] = defaultdict(list)
    label_count, category_count, split_count = Counter(), Counter(), Counter()
    cat_split, label_split = Counter(), Counter()
    rows = []
    raw = path.read_bytes().decode("utf-8")
    for number, line in enumerate(raw.splitlines(), 1):
        where = f"{path}:{number}"
        if "\\u" in line:
            errors.append(f"{where}: \\u escape (write with ensure_ascii=False)")
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{where}: not JSON: {exc}")
            continue
        keys = list(row)
        expected = KEYS + (["pair"] if "pair" in row else [])
        if keys != expected:
            errors.append(f"{where}: keys {keys}, expected {expected}")
            continue
        rows.append(row)
        if not id_pattern.match(row["id"]):
            errors.append(f"{where}: id {row['id']!r} does not match {id_pattern.pattern}")
        if row["id"] in ids:
            errors.append(f"{where}: duplicate id {row['id']}")
        ids.add(row["id"])
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            errors.append(f"{where}: empty text")
        elif len(text) >= MAX_CHARS:
            errors.append(f"{where}: text has {len(text)} characters (limit {MAX_CHARS - 1})")
        if text in texts:
            errors.append(f"{where}: duplicate text")
        texts.add(text)
        labels = row["labels"]
        if not isinstance(labels, list) or set(labels) - LABELS or len(set(labels)) != len(labels):
            errors.append(f"{where}: bad labels {labels}")
        if row["lang"] != lang:
            errors.append(f"{where}: lang {row['lang']!r}, expected {lang!r}")
        category = row["category"]
        if labels and category != "propaganda":
            errors.append(f"{where}: positive with category {category!r}")
        if not labels and category not in NEGATIVE_CATEGORIES:
            errors.append(f"{where}: negative with category {category!r}")
        if row["split"] not in allowed_splits:
            errors.append(f"{where}: split {row['split']!r} not in {sorted(allowed_splits)}")
        if "pair" in row:
            pairs[row["pair"]].append(row)
        for label in labels:
            label_count[label] += 1
            label_split[(label, row["split"])] += 1
        category_count[category] += 1
        cat_split[(category, row["split"])] += 1
        split_count[row["split"]] += 1

    pair_pattern = re.compile(rf"^{re.escape(lang)}-p\d{{2,3}}$")
    for pair, members in sorted(pairs.items()):
        if not pair_pattern.match(pair):
            errors.append(f"{path}: pair id {pair!r} does not match {pair_pattern.pattern}")
        if len(members) != 2:
            errors.append(f"{path}: pair {pair} has {len(members)} members")
            continue
        if members[0]["split"] != members[1]["split"]:
            errors.append(f"{path}: pair {pair} spans splits")
        positives = sum(bool(m["labels"]) for m in members)
        if positives != 1 and pair not in reverse_pairs:
            errors.append(f"{path}: pair {pair} has {positives} positives (expected 1)")

    positives = sum(1 for r in rows if r["labels"])
    hard = sum(1 for r in rows if not r["labels"] and r["category"] != "everyday")
    everyday = category_count["everyday"]
    multi = sum(1 for r in rows if len(r["labels"]) > 1)
    if hard < positives:
        errors.append(f"{path}: {hard} hard negatives < {positives} positives")

    print(f"== {path}: {len(rows)} lines, {positives} positives ({multi} with two labels), "
          f"{hard} hard negatives, {everyday} everyday")
    splits = sorted(split_count)
    print("  splits: " + ", ".join(f"{s} {split_count[s]}" for s in splits))
    print("  labels: " + ", ".join(
        f"{label} {label_count[label]} (" + "/".join(str(label_split[(label, s)]) for s in splits) + ")"
        for label in sorted(LABELS)))
    print("  categories: " + ", ".join(
        f"{c} {category_count[c]} (" + "/".join(str(cat_split[(c, s)]) for s in splits) + ")"
        for c in sorted(category_count)))
    if pairs:
        pair_splits = Counter(m[0]["split"] for m in pairs.values())
        print(f"  pairs: {len(pairs)} ({sum(len(m) for m in pairs.values())} lines; "
              + ", ".join(f"{s} {n}" for s, n in sorted(pair_splits.items())) + ")")
    print(f"  (counts in parentheses per split: {'/'.join(splits)})")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path)
    parser.add_argument("--reverse-pairs", default="", help="comma-separated pair ids")
    args = parser.parse_args(argv)
    reverse = {p for p in args.reverse_pairs.split(",") if p}
    errors = []
    for path in args.paths:
        errors += validate(path, reverse)
    for error in errors:
        print("ERROR", error, file=sys.stderr)
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
