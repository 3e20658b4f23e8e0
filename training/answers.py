"""The cached answer of each training text that has one (RESULTS.md sections 14 and 15).

Helper sessions playing the LLM wrote an answer for each family's question (``answers/families.jsonl``, keyed
``FILE:ID``), for each a/b pair's stored question ``a`` and for each trap ``b`` (``answers/pairs.jsonl``, keyed by
the text), shown that question alone. A text *has* an answer when the answer is right for it: a family's question
and its paraphrases share the family's; a pair's ``a`` has its own, and its ``b`` shares it when ``same_answer``
and has its own otherwise. A family's near-miss has none (its right answer was never written), so a pair whose
cached text is one cannot be scored by a decision that reads the cached answer.
"""

from __future__ import annotations

from pathlib import Path

from training.pairs import DATA, INDEPENDENT, TESTS_DATA, read_jsonl

ANSWERS = DATA / "answers"


def family_files(data_dir: Path = DATA, tests_dir: Path = TESTS_DATA) -> list[Path]:
    return [
        tests_dir / "dev-pairs.jsonl",
        *sorted(data_dir.glob("topics-*.jsonl")),
        *sorted((data_dir / INDEPENDENT).glob("*-families.jsonl")),
    ]


def pair_files(data_dir: Path = DATA, tests_dir: Path = TESTS_DATA) -> list[Path]:
    return [
        tests_dir / "trap-pairs.jsonl",
        *sorted(data_dir.glob("pairs-*.jsonl")),
        *sorted((data_dir / INDEPENDENT).glob("*-pairs.jsonl")),
    ]


def text_answers(data_dir: Path = DATA, tests_dir: Path = TESTS_DATA) -> dict[str, str]:
    """Each text with an answer, and that answer (the first, when two files give one text two answers)."""
    out: dict[str, str] = {}
    by_family = {row["family"]: row["answer"] for row in read_jsonl(data_dir / "answers" / "families.jsonl")}
    for path in family_files(data_dir, tests_dir):
        for family in read_jsonl(path):
            answer = by_family.get(f"{path.name}:{family.get('id')}")
            if answer is None or "question" not in family:
                continue
            for text in (family["question"], *family.get("paraphrases", [])):
                out.setdefault(text, answer)
    pairs_file = data_dir / "answers" / "pairs.jsonl"
    by_question = {row["question"]: row["answer"] for row in read_jsonl(pairs_file)} if pairs_file.is_file() else {}
    for path in pair_files(data_dir, tests_dir):
        for row in read_jsonl(path):
            answer = by_question.get(row["a"])
            if answer is None:
                continue
            out.setdefault(row["a"], answer)
            own = answer if row.get("same_answer") else by_question.get(row["b"])
            if own is not None:
                out.setdefault(row["b"], own)
    return out
