"""The verifier: may a cached answer be served for a question that is only *similar* to the cached one?

Cosine similarity alone is not safe: with all-MiniLM-L6-v2, "sort a list ascending" and
"sort a list descending" sit closer than most true paraphrases, and any single threshold that keeps wrong answers
at 1% of near-miss questions serves almost no paraphrases. So the semantic tier uses a permissive similarity
threshold and then asks this module, which refuses a candidate whenever the two questions differ in something
that changes the answer. A refusal is a miss (the provider is asked); a miss costs one call, a wrong answer costs
the user's trust, so every rule leans towards refusing.

How a pair is judged (``verify``):

1. **Gate.** ``similarity`` must reach ``DEFAULT_THRESHOLD``.
2. **Analysis** (``Lexicon.analyse``, cached per text). The text is normalised (NFKC; code identifiers such as
   ``useEffect`` split; ``n't`` -> ``not``; ``c++`` -> ``cpp``; one-letter flags kept apart, so ``-c`` is not
   the C language; date patterns such as ``dd/mm/yyyy`` kept whole and in order), split into words and matched
   longest phrase first against the word lists: *named things* (languages, tools, databases, formats, OSes,
   kinds of object...) with their category and what they imply (``pandas`` -> ``python``), synonyms
   (``folder`` -> ``directory``), opposite words, negations, numbers, task verbs and function words. Names are
   matched by their singular; other words by a light stemmer that only has to agree with itself.
3. **Rules**, each backed by a word list and each giving a human reason:

   - *named things* of one kind that differ ("different language: python vs javascript"); in strict kinds a
     narrower name too ("different container tool: docker-compose vs docker");
   - *opposite words* ("opposite words: ascending vs descending"), including un-/dis- prefixes;
   - *negation* on one side only ("negation: 'without' only in the question");
   - *numbers* and *versions* that differ ("different numbers: 3 vs 2", "different versions: python 2 vs
     python 3"; a number right after a name is its version), and *direction* ("string to int" vs "int to
     string", "copy to a server" vs "copy from a server");
   - *task verbs* that differ ("different action: publish vs install");
   - *what is left*: a name of an object, a number or a marked word ("descending") on one side only; a
     different subject; a question that adds a qualifier ("... per group"); "only" against a broader question.
     How a named thing counts here is set per category in the data: ``context`` (said on one side, it is
     background), ``implicit`` (often left unsaid, so adding it narrows nothing), ``background`` (the setting of
     a question, never its subject).
4. **Rewording.** A pair that passes every rule but is still worded differently (words no list explains) must
   reach the higher ``REWORDED_THRESHOLD``: the less the rules account for, the more the embedding must vouch.
   Such a refusal is marked ``gray_zone``, where an LLM judge could decide instead.

Word lists live in ``aicache/data/verifier/`` (``terms*.toml``, ``words*.toml``, ``opposites*.txt``; each file
says its shape) and are loaded once; ``load_lexicon(extra_dirs)`` adds user files of the same shapes. The
verifier is pure Python and runs on every semantic lookup: a pair takes well under a millisecond.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aicache.semantic import bounds
from aicache.semantic.lexicon import WORD, Analysis, Lexicon, load_lexicon

DEFAULT_THRESHOLD: float = 0.50
"""Cosine similarity a candidate must reach before the verifier is consulted at all."""

REWORDED_THRESHOLD: float = 0.70
"""Cosine similarity a pair that passes every rule but is worded differently must reach."""


@dataclass(frozen=True)
class Verdict:
    """The verifier's decision on one pair.

    ``reasons`` explains every refusal in words a user can read; an accepted pair has none. ``gray_zone`` is
    true when the only objection is that a differently worded pair fell short of ``REWORDED_THRESHOLD``: no
    rule found a difference, so a stronger judge (an LLM) could still accept it.
    """

    accepted: bool
    reasons: tuple[str, ...]
    similarity: float = 0.0
    threshold: float = DEFAULT_THRESHOLD
    gray_zone: bool = False


def verify(
    query: str,
    candidate: str,
    similarity: float,
    *,
    threshold: float | None = None,
    reworded_threshold: float | None = None,
    lexicon: Lexicon | None = None,
) -> Verdict:
    """Judge whether the answer cached for ``candidate`` may be served for ``query``.

    ``similarity`` is the cosine similarity of the two questions' embeddings; ``threshold`` and
    ``reworded_threshold`` override the module defaults; ``lexicon`` defaults to the shipped word lists.
    """
    limit = DEFAULT_THRESHOLD if threshold is None else threshold
    if similarity < limit:
        return Verdict(False, (f"similarity {similarity:.2f} below threshold {limit:.2f}",), similarity, limit)
    lex = lexicon or load_lexicon()
    ours, theirs = lex.analyse(query), lex.analyse(candidate)
    return verdict_of(ours, theirs, compare(ours, theirs, lex), similarity, limit, reworded_threshold)


def verdict_of(
    ours: Analysis,
    theirs: Analysis,
    reasons: list[str],
    similarity: float,
    limit: float,
    reworded_threshold: float | None = None,
) -> Verdict:
    """``verify``'s verdict from an analysed pair and its rules' ``reasons`` (``compare``), for a caller that
    has them already; ``similarity`` must have reached ``limit``."""
    if reasons:
        return Verdict(False, tuple(reasons), similarity, limit)
    reworded = max(limit, REWORDED_THRESHOLD if reworded_threshold is None else reworded_threshold)
    unexplained = ours.content ^ theirs.content
    if unexplained and similarity < reworded:
        words = _join(ours.surfaces.get(n) or theirs.surfaces.get(n, n) for n in unexplained)
        reason = f"similarity {similarity:.2f} below {reworded:.2f}, needed when the wording differs ({words})"
        return Verdict(False, (reason,), similarity, limit, gray_zone=True)
    return Verdict(True, (), similarity, limit)


def compare(query: Analysis, candidate: Analysis, lex: Lexicon) -> list[str]:
    """Every reason the two questions may need different answers; empty when no rule found one."""
    reasons = [
        *_named_things(query, candidate, lex),
        *_opposite_words(query, candidate, lex),
        *_negation(query, candidate),
        *_numbers(query, candidate),
        *_identifiers(query, candidate),
        *_different_versions(query, candidate),
        *_direction(query, candidate),
        *_different_action(query, candidate),
    ]
    # The general rule would restate the specific ones in vaguer words; it speaks only when they are silent.
    return reasons or _different_question(query, candidate, lex)


def differences(query: str, candidate: str, lexicon: Lexicon | None = None) -> list[str]:
    """Every rule that objects to serving ``candidate``'s answer for ``query`` (what ``aicache why`` shows beside
    a trained decision's score: the model weighed these, among its other features)."""
    lex = lexicon or load_lexicon()
    return compare(lex.analyse(query), lex.analyse(candidate), lex)


def exact_differences(query: str, candidate: str, lexicon: Lexicon | None = None) -> list[str]:
    """The rules that are exact, not judgement: different numbers, versions or identifiers (error codes, hashes),
    and one number bounded on opposite sides ("under $150,000" vs "over $150,000").

    A learned decision can miss "E0382" vs "E0384" (one character); these rules cannot, so they stay as vetoes
    in front of it. Every other rule here rests on word lists, which do not generalise to words no list names.
    """
    lex = lexicon or load_lexicon()
    ours, theirs = lex.analyse(query), lex.analyse(candidate)
    rules = [*_numbers(ours, theirs), *_identifiers(ours, theirs), *_different_versions(ours, theirs)]
    return rules + _opposite_bounds(query, candidate)


def _opposite_bounds(query: str, candidate: str) -> list[str]:
    """One number bounded on opposite sides: "income under $150,000" vs "income over $150,000" (``bounds``)."""
    ours, theirs = bounds.bounds(query), bounds.bounds(candidate)
    side = {bounds.ABOVE: "above", bounds.BELOW: "below"}
    return [
        f"opposite bounds: {side[ours[n]]} {n} in the question, {side[theirs[n]]} {n} in the cached question"
        for n in bounds.opposite_bounds(query, candidate)
    ]


# ---------------------------------------------------------------------------------------------------------
# The rules


def _side(in_query: bool) -> str:
    return "the question" if in_query else "the cached question"


def _named_things(query: Analysis, candidate: Analysis, lex: Lexicon) -> list[str]:
    """Both questions name something of one kind, and not the same thing (python vs javascript).

    In a strict kind, a more specific name on one side also refuses ("typescript" vs "javascript",
    "docker compose" vs "docker"); an unrelated extra name ("javascript and css" vs "css") is left to the
    general rule.
    """
    reasons = []
    for name in sorted(set(query.closure) & set(candidate.closure)):
        ours, theirs = query.closure[name], candidate.closure[name]
        extra_ours, extra_theirs = ours - theirs, theirs - ours
        category = lex.categories[name]
        narrower = any(lex.implied(n) & theirs for n in extra_ours) or any(lex.implied(n) & ours for n in extra_theirs)
        if (extra_ours and extra_theirs) or (narrower and category.strict):
            shown_ours = query.terms.get(name) or ours
            shown_theirs = candidate.terms.get(name) or theirs
            reasons.append(f"different {category.label}: {_join(shown_ours)} vs {_join(shown_theirs)}")
    return reasons


def _join(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _opposite_words(query: Analysis, candidate: Analysis, lex: Lexicon) -> list[str]:
    """One question says "ascending" where the other says "descending"."""
    ours = {c.name: c.surface for c in query.concepts}
    theirs = {c.name: c.surface for c in candidate.concepts}
    only_ours, only_theirs = ours.keys() - theirs.keys(), theirs.keys() - ours.keys()
    reasons = []
    for left, right in lex.opposites:
        for a, b in ((left, right), (right, left)):
            hit_ours, hit_theirs = only_ours & a, only_theirs & b
            if hit_ours and hit_theirs and not (ours.keys() & b) and not (theirs.keys() & a):
                word_ours, word_theirs = ours[min(hit_ours)], theirs[min(hit_theirs)]
                reasons.append(f"opposite words: {word_ours} vs {word_theirs}")
    reasons.extend(_prefixed_opposites(query, candidate, lex))
    return sorted(set(reasons))


def _prefixed_opposites(query: Analysis, candidate: Analysis, lex: Lexicon) -> list[str]:
    # "uninstall" vs "install", "unmount" vs "mount": a prefix that negates the word it is glued to.
    reasons = []
    for first, second in ((query, candidate), (candidate, query)):
        words_first = {c.name: c.surface for c in first.concepts if c.kind == WORD}
        words_second = {c.name: c.surface for c in second.concepts if c.kind == WORD}
        for name in words_first.keys() - words_second.keys():
            for prefix in lex.prefixes:
                base = name[len(prefix) :]
                if name.startswith(prefix) and base in words_second and base not in words_first:
                    pair = (words_first[name], words_second[base])
                    shown = pair if first is query else pair[::-1]
                    reasons.append(f"opposite words: {shown[0]} vs {shown[1]}")
    return reasons


def _negation(query: Analysis, candidate: Analysis) -> list[str]:
    """Only one question is negated: "... without deleting them" asks for something else."""
    if bool(query.negations) == bool(candidate.negations):
        return []
    words = query.negations or candidate.negations
    return [f"negation: '{words[0]}' only in {_side(bool(query.negations))}"]


def _numbers(query: Analysis, candidate: Analysis) -> list[str]:
    """Each question has a number the other lacks: "python 2" vs "python 3", "size 10" vs "size 20"."""
    ours, theirs = query.numbers - candidate.numbers, candidate.numbers - query.numbers
    if ours and theirs:
        return [f"different numbers: {_join(ours)} vs {_join(theirs)}"]
    return []


def _identifiers(query: Analysis, candidate: Analysis) -> list[str]:
    """Each question has a code the other lacks: error E1234 vs E5678, commit a1b2c3d vs 9f8e7d6, two UUIDs.

    An identifier is a word that mixes letters and digits and is not a known name (those are canonical, like
    ``python`` for "python3"); embeddings see two codes as near-identical, but they name different things.
    """
    ours, theirs = _codes(query) - _codes(candidate), _codes(candidate) - _codes(query)
    if ours and theirs:
        return [
            f"different identifiers: {_join(query.surfaces.get(c, c) for c in ours)} vs "
            f"{_join(candidate.surfaces.get(c, c) for c in theirs)}"
        ]
    return []


def _codes(analysis: Analysis) -> set[str]:
    return {
        name
        for name in analysis.content - analysis.numbers
        if any(c.isdigit() for c in name) and any(c.isalpha() for c in name)
    }


def _different_versions(query: Analysis, candidate: Analysis) -> list[str]:
    """The same thing in two versions: "python 2" vs "python 3". A version on one side only is detail."""
    return [
        f"different versions: {name} {query.versions[name]} vs {name} {candidate.versions[name]}"
        for name in sorted(query.versions.keys() & candidate.versions.keys())
        if query.versions[name] != candidate.versions[name]
    ]


def _direction(query: Analysis, candidate: Analysis) -> list[str]:
    """The same things in the opposite direction: "int to string" vs "string to int", "to a server" vs "from"."""
    reasons = []
    for source, target in sorted(query.directions):
        if (target, source) in candidate.directions and (source, target) not in candidate.directions:
            ours, theirs = query.surfaces.get(source, source), query.surfaces.get(target, target)
            reasons.append(f"opposite direction: {ours} to {theirs} vs {theirs} to {ours}")
    if reasons:
        return reasons
    for name in sorted(query.roles.keys() & candidate.roles.keys()):
        if query.roles[name] != candidate.roles[name] and name in query.content:
            word = query.surfaces.get(name, name)
            return [f"opposite direction: {query.roles[name]} {word} vs {candidate.roles[name]} {word}"]
    return []


def _different_action(query: Analysis, candidate: Analysis) -> list[str]:
    """Each question names a task the other does not: "publish a package" vs "install a package"."""
    ours = {k: v for k, v in query.actions.items() if k not in candidate.actions}
    theirs = {k: v for k, v in candidate.actions.items() if k not in query.actions}
    if not ours or not theirs:
        return []
    return [f"different action: {_join(ours.values())} vs {_join(theirs.values())}"]


def _different_question(query: Analysis, candidate: Analysis, lex: Lexicon) -> list[str]:
    """What is left once named things, synonyms and function words are accounted for.

    Rewording is fine ("loop through" vs "iterate over" that no list knows), but not a word that changes the
    answer on one side only (a name, a number, a task, a marked word such as "descending"), nor a question
    that says everything the cached one says and then more ("... per group").
    """
    ours, theirs = query.content - candidate.content, candidate.content - query.content
    # A number in the question only is often an example ("[[1,2],[3]]"); one in the cached question only
    # is what its answer was written for.
    hard_ours = {n for n in ours & query.hard if not n.isdigit()}
    hard_theirs = theirs & candidate.hard
    reasons = []
    if hard_ours:
        reasons.append(f"only in the question: {_words(hard_ours, query)}")
    if hard_theirs:
        reasons.append(f"only in the cached question: {_words(hard_theirs, candidate)}")
    # Background said on one side only ("... in go") is not a different subject; a library or a tool is.
    named_ours = {n for n in _named(ours, query) if not _in_kind(n, query, lex, "background")}
    named_theirs = {n for n in _named(theirs, candidate) if not _in_kind(n, candidate, lex, "background")}
    if not reasons and ((named_ours and theirs) or (named_theirs and ours)):
        reasons.append(f"different subject: {_words(ours, query)} vs {_words(theirs, candidate)}")
    if not reasons:
        reasons.extend([*_one_word_replaced(query, candidate), *_roles_swapped(query, candidate)])
    # Naming the task when the cached question named none, or saying what is usually left unsaid ("... in
    # python"), is rewording; adding anything else narrows the question.
    unsaid = {n for n in ours if _in_kind(n, query, lex, "implicit")}
    tasks = set(query.actions) if not candidate.actions else set()
    qualifiers = ours - unsaid - tasks - _kinds_of_shared_names(ours, query, candidate, lex)
    if not reasons and qualifiers and not theirs:
        reasons.append(f"the question adds: {_words(qualifiers, query)}")
    if not reasons and theirs and query.exclusive:
        reasons.append(f"the question says '{query.exclusive}', the cached one also: {_words(theirs, candidate)}")
    return reasons


def _one_word_replaced(query: Analysis, candidate: Analysis) -> list[str]:
    """The same question with one word put in another's place, everything else in the same order: "why is the
    sky blue" vs "why is the ocean blue", "can dogs eat chocolate" vs "can cats ...". Rewordings change more
    than one word, and synonyms the word lists know never get here (they share a name). Measured: allowing two
    words refused 5 of 159 held-out paraphrases."""
    ours, theirs = query.ordered, candidate.ordered
    if len(ours) != len(theirs) or len(ours) < 2:
        return []
    replaced = [(a, b) for a, b in zip(ours, theirs, strict=True) if a != b]
    if len(replaced) != 1:
        return []
    word, other = replaced[0]
    if word in query.actions or other in candidate.actions:
        return []  # naming the task in other words is rewording; two different tasks are _different_action's
    return [f"one word replaced: {query.surfaces.get(word, word)} vs {candidate.surfaces.get(other, other)}"]


def _roles_swapped(query: Analysis, candidate: Analysis) -> list[str]:
    """The same words with two of them trading places: "tom hit jerry" vs "jerry hit tom". Only plain words:
    a paraphrase often moves a name ("sort a dictionary by value in python" vs "sort a python dictionary by
    value") or a task, and judging those by position refused 7 of 159 held-out paraphrases; and not when an
    "and", "or" or "vs" makes the order free ("a list and a tuple")."""
    ours, theirs = query.ordered, candidate.ordered
    if ours == theirs or sorted(ours) != sorted(theirs):
        return []
    moved = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    if len(moved) != 2:
        return []
    plain = {c.name for c in query.concepts if c.kind == WORD} - set(query.actions)
    if not all(ours[i] in plain for i in moved) or query.symmetric or candidate.symmetric:
        return []
    return [f"roles swapped: {_words([ours[i] for i in moved], query)}"]


def _kinds_of_shared_names(words: Iterable[str], query: Analysis, candidate: Analysis, lex: Lexicon) -> set[str]:
    """Of ``words``, those that only say what kind of thing a name both questions use is: "the vim editor",
    "a mysql database"."""
    kinds = {
        lex.categories[category].label
        for category, names in query.closure.items()
        if names & candidate.closure.get(category, frozenset())
    }
    return {word for word in words if query.surfaces.get(word, word) in kinds}


def _in_kind(name: str, analysis: Analysis, lex: Lexicon, flag: str) -> bool:
    """Whether ``name`` is a named thing of a category with ``flag`` set ("implicit", "background")."""
    return any(name in group and getattr(lex.categories[cat], flag) for cat, group in analysis.closure.items())


def _named(names: Iterable[str], analysis: Analysis) -> set[str]:
    """The names among ``names`` that are named things (or implied by one)."""
    return {n for n in names if any(n in group for group in analysis.closure.values())}


def _words(names: Iterable[str], analysis: Analysis) -> str:
    return ", ".join(sorted(analysis.surfaces.get(name, name) for name in names))
