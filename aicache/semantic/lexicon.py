"""The word lists as the verifier's rules read them, and a question analysed into concepts.

``Lexicon.analyse`` normalises a question (NFKC; code identifiers split; ``n't`` -> ``not``; ``c++`` -> ``cpp``;
one-letter flags kept apart; date patterns kept whole) and matches it, longest phrase first, against the word
lists in ``aicache/data/verifier/``: named things with their category and what they imply, synonyms, opposite
words, negations, numbers, task verbs and function words. The built tables are cached in a pickle keyed by the
data files, the package version and a hash of this module's code, so an upgrade never reuses stale tables.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aicache.normalize import visible

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "verifier"

# Concept kinds: what a word or phrase of a question means to the rules.
TERM, WORD, NUMBER, VERSION, NEGATION, STOP = "term", "word", "number", "version", "negation", "stop"
DATE_FORMAT_CATEGORY = "date-format"

_WORD_RE = re.compile(r"[a-z0-9]+")
_LOWER_CAMEL = re.compile(r"\b([a-z]{2,})([A-Z][A-Za-z]*)")
_LONG_PASCAL = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+){2,}\b")
_CAMEL_STEP = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SHORT_FLAG = re.compile(r"(?<![\w-])-([A-Za-z])\b")
_FLAG_WORD = re.compile(r"^opt[a-z]$")
_DATE_PART = r"(?:yyyy|yy|mm|dd|hh|ss|mmm|hh24)"
_DATE_FORMAT = re.compile(rf"\b{_DATE_PART}(?:[-/.: ]{_DATE_PART})+\b")
_CONTRACTION = re.compile(r"\b(\w+)n['’]t\b")
_IRREGULAR_NOT = {"can": "can", "won": "will", "shan": "shall", "ain": "is"}
_NUMBER_WITH_UNIT = re.compile(r"^(\d+)([a-z]+)$")
_NAME_WITH_VERSION = re.compile(r"^([a-z]+)(\d+)$")
_VERSION_PREFIX = re.compile(r"^v(\d+)$")
_ORDINAL_SUFFIXES = frozenset({"st", "nd", "rd", "th"})
_TOWARDS = frozenset({"to", "into", "as", "onto"})
_SYMMETRIC = frozenset({"and", "or", "vs", "versus", "between"})  # "a and b" says "b and a" too
_ARTICLES = frozenset({"a", "an", "the", "my", "your", "our", "their", "its", "this", "that", "some"})


# ---------------------------------------------------------------------------------------------------------
# Analysis: a question as the rules see it


@dataclass(frozen=True)
class Concept:
    """What a word or phrase of a question means: its kind, a canonical name, and the text it came from."""

    kind: str
    name: str
    surface: str
    category: str = ""


@dataclass(frozen=True)
class Category:
    """A kind of named thing (language, database, ...), configured in ``terms*.toml``.

    ``strict``: a narrower name refuses even though both questions name one ("typescript" vs "javascript").
    ``context``: a name said by one question only is background ("in python"), not a different question.
    ``implicit``: questions often leave it unsaid, so adding it does not narrow a question.
    ``background``: the setting of a question (its language, its runtime), never what it is about.
    """

    name: str
    label: str
    strict: bool
    context: bool = False
    implicit: bool = False
    background: bool = False


@dataclass(frozen=True)
class Analysis:
    """A question broken into the parts the rules compare."""

    text: str
    concepts: tuple[Concept, ...]
    terms: Mapping[str, frozenset[str]]  # category -> canonical names written in the question
    closure: Mapping[str, frozenset[str]]  # category -> those names plus everything they imply
    numbers: frozenset[str]
    versions: Mapping[str, str]  # named thing -> its version, when a number follows its name ("python 3")
    negations: tuple[str, ...]
    actions: Mapping[str, str]  # task verbs: canonical name -> how the question wrote it
    exclusive: str  # the word that makes the question exclusive ("only"), or ""
    directions: frozenset[tuple[str, str]]  # (from, to) pairs of named things: "string to int"
    roles: Mapping[str, str]  # word -> "to" or "from" when a preposition points at it: "copy to a server"
    content: frozenset[str]  # names of the concepts that carry meaning (named things, words, numbers)
    hard: frozenset[str]  # content that changes an answer when only one question has it
    surfaces: Mapping[str, str] = field(default_factory=dict)  # content name -> how the question wrote it
    ordered: tuple[str, ...] = ()  # the content names in the order the question says them
    symmetric: bool = False  # an "and", "or", "vs" or "between" makes the order of its words free


@dataclass(frozen=True)
class _Tables:
    """What a ``Lexicon`` is built from; see ``_Builder``."""

    categories: dict[str, Category]
    implies: dict[str, frozenset[str]]
    category_of: dict[str, str]
    exact: dict[tuple[str, ...], Concept]
    singular: dict[tuple[str, ...], Concept]  # named things, by their singular words
    stemmed: dict[tuple[str, ...], Concept]  # every other word, by stems
    contextual: dict[str, tuple[Concept, frozenset[str]]]
    imperatives: dict[str, Concept]
    spellings: list[tuple[re.Pattern[str], str]]
    opposites: list[tuple[frozenset[str], frozenset[str]]]
    prefixes: tuple[str, ...]
    light: frozenset[str]
    actions: frozenset[str]
    exclusive: frozenset[str]  # "only", "just": the question asks for this and nothing more
    marked: frozenset[str]  # the other side of a pair with a default ("descending"): saying it changes the answer


class Lexicon:
    """All word lists, merged from the shipped data directory and any extra directories."""

    def __init__(self, tables: _Tables) -> None:
        self.tables = tables
        self.categories = tables.categories
        self.opposites = tables.opposites
        self.prefixes = tables.prefixes
        self.longest = max((len(key) for key in tables.exact), default=1)
        self.analyse = functools.lru_cache(maxsize=8192)(self._analyse)

    def words(self, text: str) -> list[str]:
        words: list[str] = []
        for token in _WORD_RE.findall(_normalise(text, self.tables.spellings)):
            words.extend(self._split_token(token))
        return words

    def _split_token(self, token: str) -> list[str]:
        """Split "python3" into a name and a version, "2nd" and "10px" into a number and a unit."""
        if (token,) in self.tables.exact or token.isdigit():
            return [token]
        if match := _VERSION_PREFIX.match(token):
            return [match.group(1)]
        if match := _NUMBER_WITH_UNIT.match(token):
            unit = match.group(2)
            return [match.group(1)] if unit in _ORDINAL_SUFFIXES else [match.group(1), unit]
        match = _NAME_WITH_VERSION.match(token)
        if match and (match.group(1),) in self.tables.exact:
            return [match.group(1), match.group(2)]
        return [token]

    def _lookup(self, words: list[str], i: int) -> tuple[Concept, int] | None:
        """The longest phrase starting at word ``i``: as written, then singular (names), then stemmed."""
        for size in range(min(self.longest, len(words) - i), 0, -1):
            span = words[i : i + size]
            found = (
                self.tables.exact.get(tuple(span))
                or self.tables.singular.get(tuple(singular(w) for w in span))
                or self.tables.stemmed.get(tuple(stem(w) for w in span))
            )
            if found is not None:
                return found, size
        return None

    def concepts(self, text: str) -> list[Concept]:
        words = self.words(text)
        concepts: list[Concept] = []
        i = 0
        while i < len(words):
            found = self._lookup(words, i)
            if found is not None:
                concept, size = found
                surface = " ".join(words[i : i + size])
                concepts.append(Concept(concept.kind, concept.name, surface, concept.category))
                i += size
                continue
            word = words[i]
            if word.startswith("datefmt"):
                concepts.append(Concept(TERM, word[len("datefmt") :], word, DATE_FORMAT_CATEGORY))
            elif word.isdigit():
                concepts.append(Concept(NUMBER, str(int(word)) if len(word) < 12 else word, word))
            else:
                concepts.append(Concept(WORD, stem(word), word))
            i += 1
        return self._imperative(_versions(concepts))

    def _imperative(self, concepts: list[Concept]) -> list[Concept]:
        # "list all running processes": a word that opens a question is a verb, not the data type.
        first = next((i for i, c in enumerate(concepts) if c.kind != STOP), None)
        if first is not None and (verb := self.tables.imperatives.get(concepts[first].surface)) is not None:
            concepts[first] = Concept(verb.kind, verb.name, concepts[first].surface)
        return concepts

    def _closure(self, concepts: Iterable[Concept]) -> dict[str, set[str]]:
        closure: dict[str, set[str]] = {}
        for concept in concepts:
            if concept.kind == TERM:
                for name in self.implied(concept.name):
                    closure.setdefault(self.tables.category_of.get(name, concept.category), set()).add(name)
        return closure

    def _in_context(self, concepts: list[Concept]) -> list[Concept]:
        """Resolve words such as "image" that name a thing only next to another name ("docker")."""
        named = set().union(*self._closure(concepts).values()) if concepts else set()
        resolved = []
        for concept in concepts:
            meaning = self.tables.contextual.get(concept.surface) if concept.kind in (WORD, TERM) else None
            if meaning is not None and named & meaning[1]:
                concept = Concept(TERM, meaning[0].name, concept.surface, meaning[0].category)
            resolved.append(concept)
        return resolved

    def _analyse(self, text: str) -> Analysis:
        everything = self._in_context(self.concepts(text))
        concepts = tuple(c for c in everything if c.kind != STOP)
        terms: dict[str, set[str]] = {}
        for concept in concepts:
            if concept.kind == TERM:
                terms.setdefault(concept.category, set()).add(concept.name)
        closure = self._closure(concepts)
        content = [
            c
            for c in concepts
            if c.kind in (WORD, NUMBER)
            and c.name not in self.tables.light
            and c.surface not in self.tables.exclusive
            and not _FLAG_WORD.match(c.surface)  # "-D", "-r": how, not what
        ]
        # Named things count with everything they imply, so "kubectl" meets "kubernetes secret".
        named = {name for names in closure.values() for name in names} - self.tables.light
        meaning = frozenset(c.name for c in content) | named
        return Analysis(
            text=text,
            concepts=concepts,
            terms={k: frozenset(v) for k, v in terms.items()},
            closure={k: frozenset(v) for k, v in closure.items()},
            numbers=frozenset(c.name for c in concepts if c.kind == NUMBER),
            versions={c.category: c.name for c in concepts if c.kind == VERSION},
            negations=tuple(c.surface for c in concepts if c.kind == NEGATION),
            actions={c.name: c.surface for c in concepts if c.kind == WORD and c.name in self.tables.actions},
            exclusive=next((c.surface for c in everything if c.surface in self.tables.exclusive), ""),
            directions=_directions(everything),
            roles=_roles(everything),
            content=meaning,
            hard=frozenset(self._hard(concepts, closure)),
            surfaces={**{n: n for n in named}, **{c.name: c.surface for c in concepts if c.kind == TERM}}
            | {c.name: c.surface for c in content},
            ordered=tuple(c.name for c in concepts if c.name in meaning),
            symmetric=any(c.surface.lower() in _SYMMETRIC for c in everything),
        )

    def _hard(self, concepts: Iterable[Concept], closure: Mapping[str, set[str]]) -> Iterable[str]:
        """Numbers, marked words ("descending") and names of objects ("line", "email"), but not context."""
        for c in concepts:
            if c.kind == NUMBER or (c.kind == WORD and c.name in self.tables.marked):
                yield c.name
        for category, names in closure.items():
            if not self.categories[category].context:
                yield from names

    def implied(self, name: str) -> frozenset[str]:
        """``name`` and every name it implies, transitively (pandas -> python)."""
        seen = {name}
        todo = [name]
        while todo:
            for parent in self.tables.implies.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return frozenset(seen)


def _versions(concepts: list[Concept]) -> list[Concept]:
    """A number right after a name is its version: "python 3", "postgres 14", "python 3.11" (3, then 11)."""
    out: list[Concept] = []
    for concept in concepts:
        previous = out[-1] if out else None
        if concept.kind == NUMBER and previous is not None and previous.kind in (TERM, VERSION):
            owner = previous.name if previous.kind == TERM else previous.category
            version = concept.name if previous.kind == TERM else f"{previous.name}.{concept.name}"
            if previous.kind == VERSION:
                out.pop()
            out.append(Concept(VERSION, version, concept.surface, owner))  # category holds the owner's name
            continue
        out.append(concept)
    return out


def _roles(concepts: list[Concept]) -> dict[str, str]:
    """Which words a "to" or a "from" points at, across articles: "from a remote server" -> remote, server."""
    roles: dict[str, str] = {}
    pointing = ""
    for concept in concepts:
        if concept.kind == STOP:
            if concept.name in _TOWARDS or concept.name == "from":
                pointing = "from" if concept.name == "from" else "to"
            elif concept.name not in _ARTICLES:
                pointing = ""
            continue
        if pointing:
            roles.setdefault(concept.name, pointing)
    return roles


def _directions(concepts: list[Concept]) -> frozenset[tuple[str, str]]:
    """(source, target) for every "X to Y", "X into Y" and "Y from X": between the nearest named things on
    each side ("convert a string in python to an int"), and between the words right next to the preposition
    ("redirect stderr to stdout", "merge develop into main"), which need not be names anyone listed."""
    pairs = set()
    for i, concept in enumerate(concepts):
        if concept.kind != STOP or concept.name not in _TOWARDS | {"from"}:
            continue
        named_before = next((c.name for c in reversed(concepts[:i]) if c.kind == TERM), None)
        named_after = next((c.name for c in concepts[i + 1 :] if c.kind == TERM), None)
        for before, after in ((named_before, named_after), (_next_to(concepts, i, -1), _next_to(concepts, i, 1))):
            if before and after and before != after:
                pairs.add((after, before) if concept.name == "from" else (before, after))
    return frozenset(pairs)


def _next_to(concepts: list[Concept], i: int, step: int) -> str | None:
    """The word or name next to ``concepts[i]`` on one side, across articles; None if another word is there."""
    j = i + step
    while 0 <= j < len(concepts) and concepts[j].kind == STOP and concepts[j].name in _ARTICLES:
        j += step
    if 0 <= j < len(concepts) and concepts[j].kind in (TERM, WORD):
        return concepts[j].name
    return None


# ---------------------------------------------------------------------------------------------------------
# Words: normalisation and stemming


def stem(word: str) -> str:
    """A light suffix stripper. It need not be linguistically right, only the same on both sides."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) >= 6:
        word = _undouble(word[:-3])
    elif word.endswith("ed") and len(word) >= 5:
        word = _undouble(word[:-2])
    elif word.endswith("ion") and len(word) >= 7:
        word = word[:-3]  # "validation" meets "validate", "connection" meets "connect"
    if word.endswith("e") and len(word) >= 4:
        word = word[:-1]
    return word


def singular(word: str) -> str:
    """Plural to singular only: names are matched this way, so "expression" never becomes "express"."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "ches", "shes", "xes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _undouble(word: str) -> str:
    # "running" -> "runn" -> "run", but "install" keeps its double l.
    if len(word) >= 3 and word[-1] == word[-2] and word[-1] not in "lsz":
        return word[:-1]
    return word


def _split_camel(text: str) -> str:
    # lowerCamel identifiers are code ("useEffect", "randomUUID"), and so are long PascalCase ones
    # ("UnhandledPromiseRejectionWarning"); short PascalCase words are usually names ("JavaScript", "GitHub")
    # and stay whole, as do one-letter prefixes ("iOS", "jQuery").
    text = _LONG_PASCAL.sub(lambda m: _CAMEL_STEP.sub(" ", m.group(0)), text)
    return _LOWER_CAMEL.sub(lambda m: m.group(1) + " " + _CAMEL_STEP.sub(" ", m.group(2)), text)


def _normalise(text: str, spellings: Iterable[tuple[re.Pattern[str], str]]) -> str:
    """Invisible characters dropped (as for the exact key), NFKC, code identifiers split, "n't" -> "not",
    one-letter flags kept apart ("-c" is not C)."""
    text = _split_camel(unicodedata.normalize("NFKC", visible(text)))
    text = _expand_contractions(_SHORT_FLAG.sub(lambda m: f" opt{m.group(1)} ", text)).casefold()
    # "dd/mm/yyyy" and "yyyy-mm-dd" have the same letters: keep each pattern whole, in its order.
    text = _DATE_FORMAT.sub(lambda m: " datefmt" + re.sub(r"[^a-z0-9]", "", m.group(0)) + " ", text)
    for pattern, replacement in spellings:
        text = pattern.sub(replacement, text)
    return text


def _expand_contractions(text: str) -> str:
    return _CONTRACTION.sub(lambda m: _IRREGULAR_NOT.get(m.group(1), m.group(1)) + " not", text)


# ---------------------------------------------------------------------------------------------------------
# Loading the word lists


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib

    with path.open("rb") as handle:
        return tomllib.load(handle)


def _lines(path: Path) -> Iterable[str]:
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            yield line


class _Builder:
    """Reads word lists from several directories, then builds the tables a ``Lexicon`` needs.

    Precedence when one phrase appears in several lists: named things win over everything, then negations and
    numbers, then function words, then synonyms and opposite words (which never take a named thing's place).
    """

    def __init__(self) -> None:
        self.term_files: list[dict[str, Any]] = []
        self.word_files: list[dict[str, Any]] = []
        self.opposite_lines: list[str] = []

    def load_dir(self, directory: Path) -> None:
        self.term_files.extend(_read_toml(path) for path in sorted(directory.glob("terms*.toml")))
        self.word_files.extend(_read_toml(path) for path in sorted(directory.glob("words*.toml")))
        for path in sorted(directory.glob("opposites*.txt")):
            self.opposite_lines.extend(_lines(path))

    def build(self) -> Lexicon:
        spellings = [
            (re.compile(r"(?<![\w.+#-])" + re.escape(written) + r"(?![\w+#])"), f" {replacement} ")
            for table in self.word_files
            for written, replacement in table.get("spellings", {}).items()
        ]
        self.tables = _Tables(
            categories={},
            implies={},
            category_of={},
            exact={},
            singular={},
            stemmed={},
            contextual={},
            imperatives={},
            spellings=spellings,
            opposites=[],
            prefixes=tuple(sorted({p for t in self.word_files for p in t.get("opposite_prefixes", [])})),
            light=frozenset(stem(w) for t in self.word_files for w in t.get("light", [])),
            actions=frozenset(),
            exclusive=frozenset(w for t in self.word_files for w in t.get("exclusive", [])),
            marked=frozenset(),
        )
        self._add_grammar()
        self._add_terms()
        self._add_synonyms()
        self._add_opposites()
        actions = {c.name for t in self.word_files for w in t.get("actions", []) if (c := self._action(w))}
        self.tables = dataclasses.replace(self.tables, actions=frozenset(actions))
        for table in self.word_files:
            for word, verb in table.get("imperatives", {}).items():
                self.tables.imperatives[word] = self._existing(verb) or Concept(WORD, stem(verb), verb)
        return Lexicon(self.tables)

    def _words_of(self, text: str) -> tuple[str, ...]:
        return tuple(_WORD_RE.findall(_normalise(text, self.tables.spellings)))

    def _existing(self, text: str) -> Concept | None:
        words = self._words_of(text)
        return (
            self.tables.exact.get(words)
            or self.tables.singular.get(tuple(singular(w) for w in words))
            or self.tables.stemmed.get(tuple(stem(w) for w in words))
        )

    def _add(self, text: str, concept: Concept, *, replace: bool) -> None:
        words = self._words_of(text)
        if not words:
            return
        # Names are matched by their singular only; everything else by stems, which merge more freely.
        loose, key = (
            (self.tables.singular, tuple(singular(w) for w in words))
            if concept.kind == TERM
            else (self.tables.stemmed, tuple(stem(w) for w in words))
        )
        for table, k in ((self.tables.exact, words), (loose, key)):
            if replace or k not in table:
                table[k] = concept

    def _add_grammar(self) -> None:
        for table in self.word_files:
            for word in table.get("function_words", []):
                self._add(word, Concept(STOP, word, word), replace=True)
        for table in self.word_files:
            for word in table.get("negations", []):
                self._add(word, Concept(NEGATION, word, word), replace=True)
            for word, value in table.get("numbers", {}).items():
                self._add(word, Concept(NUMBER, str(value), word), replace=True)

    def _add_terms(self) -> None:
        tables = self.tables
        for data in self.term_files:
            for parent_of, parents in data.get("implies", {}).items():
                tables.implies[parent_of] = tables.implies.get(parent_of, frozenset()) | frozenset(parents)
            for cat_name, table in data.items():
                if cat_name in ("implies", "contextual"):
                    continue
                category = Category(
                    cat_name,
                    table.get("label", cat_name),
                    strict=bool(table.get("strict", False)),
                    context=bool(table.get("context", False)),
                    implicit=bool(table.get("implicit", False)),
                    background=bool(table.get("background", False)),
                )
                tables.categories[cat_name] = category
                for canonical, aliases in table.get("terms", {}).items():
                    tables.category_of[canonical] = cat_name
                    for alias in [canonical, *aliases]:
                        self._add(alias, Concept(TERM, canonical, alias, cat_name), replace=True)
        for data in self.term_files:
            for rule in data.get("contextual", []):
                means = rule["means"]
                concept = Concept(TERM, means, means, tables.category_of[means])
                for word in rule["words"]:
                    tables.contextual[word] = (concept, frozenset(rule["when"]))

    def _add_synonyms(self) -> None:
        for table in self.word_files:
            for canonical, aliases in table.get("synonyms", {}).items():
                concept = Concept(WORD, stem(canonical), canonical)
                for alias in [canonical, *aliases]:
                    existing = self._existing(alias)
                    self._add(alias, concept, replace=existing is None or existing.kind == STOP)

    def _add_opposites(self) -> None:
        # Each side of a pair is also a synonym group: "asc" and "ascending" are one word to every rule.
        marked: set[str] = set()
        for line in self.opposite_lines:
            left, _, right = line.partition("<>")
            default = [side.strip().startswith("~") for side in (left, right)]
            sides = [[w.strip(" ~") for w in side.split("|") if w.strip(" ~")] for side in (left, right)]
            if all(sides):
                names = [self._opposite_side(side) for side in sides]
                self.tables.opposites.append((names[0], names[1]))
                if any(default):
                    marked.update(*(n for n, is_default in zip(names, default, strict=True) if not is_default))
        self.tables = dataclasses.replace(self.tables, marked=frozenset(marked))

    def _action(self, word: str) -> Concept:
        existing = self._existing(word)
        return existing if existing is not None else Concept(WORD, stem(word), word)

    def _opposite_side(self, words: list[str]) -> frozenset[str]:
        first = self._existing(words[0])
        concept = first if first is not None and first.kind in (TERM, WORD) else None
        concept = concept or Concept(WORD, " ".join(stem(w) for w in self._words_of(words[0])), words[0])
        names = set()
        for word in words:
            existing = self._existing(word)
            if existing is not None and existing.kind in (TERM, WORD, NUMBER):
                names.add(existing.name)
            elif existing is None or existing.kind == STOP:
                self._add(word, concept, replace=True)
                names.add(concept.name)
        return frozenset(names)


@functools.lru_cache(maxsize=8)
def load_lexicon(extra_dirs: tuple[Path, ...] = ()) -> Lexicon:
    """The shipped word lists plus any ``terms*.toml``, ``words*.toml`` and ``opposites*.txt`` in ``extra_dirs``."""
    directories = (DATA_DIR, *extra_dirs)
    cached = _cache_file(directories)
    tables = _read_cache(cached) if cached is not None else None
    if tables is None:
        builder = _Builder()
        for directory in directories:
            builder.load_dir(directory)
        tables = builder.build().tables
        if cached is not None:
            _write_cache(cached, tables)
    return Lexicon(tables)


# Parsing the word lists with tomllib takes ~110 ms, a quarter of a semantic hit; unpickling the built tables
# takes ~15 ms. The cache lives in the user's private data directory (0700), keyed by the name, size and mtime of
# every source file, so an edited word list is parsed again, and by the code that builds and holds the tables
# (``_code_stamp``), so a new version of that code never reads tables an older one built.


def _code_stamp(source: Path = Path(__file__)) -> str:
    """The package version and a hash of this module's source, where every table is built (``stem``,
    ``singular``, ``_Builder``) and defined (``_Tables``): no version number to remember to bump. Reading and
    hashing the file costs a fraction of a millisecond, far less than unpickling."""
    import hashlib

    from aicache import __version__

    return f"{__version__}:{hashlib.sha256(source.read_bytes()).hexdigest()}"


def _cache_file(directories: tuple[Path, ...]) -> Path | None:
    import hashlib

    from aicache import paths

    try:
        stamp = hashlib.sha256(_code_stamp().encode())
    except OSError:
        return None  # the source cannot be read (a stripped install): build the tables, cache nothing
    for directory in directories:
        for source in sorted(directory.glob("*")) if directory.is_dir() else ():
            info = source.stat()
            stamp.update(f"{source}:{info.st_size}:{info.st_mtime_ns};".encode())
    try:
        return paths.data_dir() / "cache" / f"lexicon-{stamp.hexdigest()[:20]}.pickle"
    except OSError:
        return None


def _read_cache(path: Path) -> _Tables | None:
    import pickle

    try:
        tables = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError):
        return None  # missing, partial or from another version of this module: rebuild
    return tables if isinstance(tables, _Tables) else None


def _write_cache(path: Path, tables: _Tables) -> None:
    import pickle

    from aicache import files, paths

    try:
        paths.ensure_private_dir(path.parent)
        for stale in path.parent.glob("lexicon-*.pickle"):
            stale.unlink(missing_ok=True)
        files.write_atomic(path, pickle.dumps(tables, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:
        pass  # a read-only or full data directory only costs the next run the parse
