"""Load and validate vertebro's rule files.

This module is the only place that knows where ``patterns/`` is: the rule
folder ships inside the package as ``pipeline.patterns`` and is found through
:func:`patterns_dir`. Rule files are JSON in medspaCy's own shape
(``{"target_rules": [...]}``, ``{"context_rules": [...]}``,
``{"section_rules": [...]}``); each rule may also carry ``examples`` and
``counter_examples`` (run as tests) and a free-text ``comment``.

``patterns/manifest.toml`` lists which files each component loads. Its
``[concepts]`` table names sets of concepts, which a ConText rule's
``allowed_types`` and ``excluded_types`` and a section implication's
``concepts`` and ``except_concepts`` write as ``"@name"``; the loader puts the
set's concepts in its place, so a list many rules share is written once. Its
``[words]`` table names lists of words (the people of the family rules), which
a rule's regular expression writes as ``{@name}``. Extra rule folders
(``--patterns``) have the same layout and may use the shipped sets and lists;
a rule there with the same ``literal`` and ``category`` as a shipped rule
replaces it.

Every problem is reported as one string with a code, e.g.
``R003 target/fracture.json rule 4 ('compression fracture'): unknown key 'atributes'``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_CATEGORIES = frozenset({
    "FRACTURE", "OEDEMA", "RETROPULSION", "EPIDURAL_DISEASE", "INFECTION",
    "COAGULOPATHY", "ANTICOAGULANT", "MALIGNANCY", "PAIN", "OSTEOPOROSIS",
    "PRIOR_AUGMENTATION",
    # Matched so that the longest match wins over a real target, then dropped:
    # "epidural steroid injection" must not leave "epidural" behind.
    "IGNORE",
})

CONTEXT_CATEGORIES = frozenset({
    "NEGATED_EXISTENCE", "POSSIBLE_EXISTENCE", "HISTORICAL", "HYPOTHETICAL",
    "FAMILY", "PSEUDO", "TERMINATE",
    "ACUTE", "SUBACUTE", "CHRONIC", "HEALED", "INDETERMINATE_AGE", "NEW",
    "CORRECTED", "MED_HELD", "MED_CONTINUED", "AETIOLOGY",
})

SECTION_NAMES = frozenset({
    "indication", "history", "past_history", "family_history", "comparison",
    "technique", "findings", "impression", "medications", "past_medications", "labs",
    "assessment_plan", "plan", "patient_education", "differential", "software_output", "other",
})

#: Attributes a target rule may set on its spans.
TARGET_ATTRIBUTES = {
    "scope": {"local", "systemic"},
    "aetiology": {"osteoporotic", "malignant", "traumatic"},
    "acuity": {"acute", "subacute", "chronic", "healed", "indeterminate"},
    # where the phrase is: "vertebral" always a vertebra; "likely" unless another
    # bone is named next to it; "level" only with a linked vertebral level;
    # "height" a vertebra's unless a disc is named earlier in its phrase
    # ("L4-5: disc desiccation and mild height loss"); absent: needs a vertebral
    # word or level in its sentence, or a spine report
    "anatomy": {"vertebral", "likely", "level", "height"},
    "historical": {True, False},
    # the word itself says "absent": "afebrile", "apyrexial"
    "negated": {True},
    # the phrase is also a mention of this concept: "epidural abscess"
    "also": {"EPIDURAL_DISEASE", "INFECTION"},
}

#: Context categories that carry a value in ``metadata.value``.
CONTEXT_VALUES = {
    "CORRECTED": {"reversed", "held", "resolved", "treated"},
    "AETIOLOGY": {"osteoporotic", "malignant", "traumatic"},
}

DIRECTIONS = {"FORWARD", "BACKWARD", "BIDIRECTIONAL", "TERMINATE", "PSEUDO"}

#: Where a named concept set (``"@name"``) may stand for its concepts.
CONCEPT_LISTS = {"context": ("allowed_types", "excluded_types"), "implies": ("concepts", "except_concepts")}

COMMON_KEYS = {"literal", "category", "pattern", "examples", "counter_examples", "comment"}
ALLOWED_KEYS = {
    "target": COMMON_KEYS | {"attributes"},
    "context": COMMON_KEYS | {"direction", "allowed_types", "excluded_types",
                              "max_scope", "max_targets", "terminated_by", "metadata"},
    "sections": COMMON_KEYS,
}
TOP_KEYS = {"target": "target_rules", "context": "context_rules", "sections": "section_rules"}


class RuleError(ValueError):
    """One or more rule files are invalid; ``problems`` holds one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        summary = problems[0] if len(problems) == 1 else f"{len(problems)} problems, first: {problems[0]}"
        super().__init__(f"invalid rule files: {summary}")


@dataclass(frozen=True)
class RuleSet:
    """Every rule of every component, as plain dictionaries, plus provenance."""

    target: list[dict[str, Any]]
    context: list[dict[str, Any]]
    sections: list[dict[str, Any]]
    section_implies: dict[str, dict[str, Any]]
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256


def patterns_dir() -> Path:
    """The folder of shipped rule files (inside the installed package)."""
    return Path(str(importlib.resources.files("pipeline.patterns")))


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.toml"
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_pattern(kind: str, pattern: Any, where: str, problems: list[str]) -> None:
    if pattern is None:
        return
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as error:
            problems.append(f"R006 {where}: broken regular expression ({error})")
    elif isinstance(pattern, list):
        if not pattern or not all(isinstance(token, dict) for token in pattern):
            problems.append(f"R007 {where}: a token pattern must be a non-empty list of objects")
    else:
        problems.append(f"R007 {where}: pattern must be a string (regex), a list (token pattern) or absent")


def validate_rules(kind: str, rules: Any, name: str) -> list[str]:
    """Return the problems of one file's rule list (empty when valid)."""
    problems: list[str] = []
    if not isinstance(rules, list):
        return [f"R002 {name}: '{TOP_KEYS[kind]}' must be a list"]
    seen: dict[tuple, int] = {}  # (literal, category) names a rule: it must be unique
    for index, rule in enumerate(rules):
        literal = rule.get("literal") if isinstance(rule, dict) else None
        where = f"{name} rule {index} ({literal!r})"
        if not isinstance(rule, dict):
            problems.append(f"R002 {name} rule {index}: a rule must be an object")
            continue
        for key in sorted(set(rule) - ALLOWED_KEYS[kind]):
            problems.append(f"R003 {where}: unknown key {key!r}")
        if not isinstance(literal, str) or not literal.strip():
            problems.append(f"R004 {where}: 'literal' must be a non-empty string")
        category = rule.get("category")
        if kind == "target" and category not in TARGET_CATEGORIES:
            problems.append(f"R005 {where}: unknown category {category!r}")
        if kind == "context" and category not in CONTEXT_CATEGORIES:
            problems.append(f"R005 {where}: unknown category {category!r}")
        if kind == "sections" and category not in SECTION_NAMES:
            problems.append(f"R005 {where}: unknown section {category!r}")
        _check_pattern(kind, rule.get("pattern"), where, problems)
        if kind == "target":
            for attribute, value in (rule.get("attributes") or {}).items():
                allowed = TARGET_ATTRIBUTES.get(attribute)
                if allowed is None:
                    problems.append(f"R008 {where}: unknown attribute {attribute!r}")
                elif value not in allowed:
                    problems.append(f"R008 {where}: attribute {attribute}={value!r} not one of {sorted(map(str, allowed))}")
        if kind == "context":
            direction = rule.get("direction", "BIDIRECTIONAL")
            if direction not in DIRECTIONS:
                problems.append(f"R009 {where}: unknown direction {direction!r}")
            if category in CONTEXT_VALUES:
                value = (rule.get("metadata") or {}).get("value")
                if value not in CONTEXT_VALUES[category]:
                    problems.append(f"R010 {where}: {category} needs metadata.value in {sorted(CONTEXT_VALUES[category])}")
                # metadata.overrides: the value of the target rule's own attribute this stated one replaces
                overrides = (rule.get("metadata") or {}).get("overrides")
                if overrides is not None and overrides not in CONTEXT_VALUES[category]:
                    problems.append(f"R010 {where}: metadata.overrides {overrides!r} not in {sorted(CONTEXT_VALUES[category])}")
            # metadata.dated: a HISTORICAL rule whose match is a date, history only when the
            # date is long enough before the note's (attributes._recent_history)
            # metadata.course_over: a CORRECTED rule that ends a course ("completed", "finished",
            # "in remission"): an anticoagulant or a cancer it reaches is historical, not held or denied
            # metadata.list: the head of a list ("Consent discussed:", "risks include", "DDx"), whose
            # scope a cue of its category inside the list does not end
            for key, category_on, direction_on in (("dated", "HISTORICAL", None), ("course_over", "CORRECTED", None),
                                                   ("list", None, "FORWARD")):
                mark = (rule.get("metadata") or {}).get(key)
                if mark is not None and (mark is not True or category_on not in (None, category)
                                         or direction_on not in (None, direction)):
                    problems.append(f"R010 {where}: metadata.{key} must be true, on a "
                                    f"{category_on or direction_on} rule")
            for key in ("allowed_types", "excluded_types"):
                for target in rule.get(key) or []:
                    if target not in TARGET_CATEGORIES:
                        problems.append(f"R005 {where}: unknown category {target!r} in {key}")
        for key in ("examples", "counter_examples"):
            value = rule.get(key, [])
            if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
                problems.append(f"R011 {where}: {key!r} must be a list of strings")
        identity = (literal, category)
        if identity in seen:
            problems.append(f"R012 {where}: duplicate of rule {seen[identity]}")
        else:
            seen[identity] = index
    return problems


@dataclass(frozen=True)
class Names:
    """What the manifest names: concept sets (``"@name"``) and word lists (``{@name}``)."""

    concepts: dict[str, list[str]] = field(default_factory=dict)
    words: dict[str, str] = field(default_factory=dict)  # name -> "(?:a|b|c)"

    def updated(self, other: Names) -> Names:
        return Names({**self.concepts, **other.concepts}, {**self.words, **other.words})


#: A named word list inside a regular expression: ``{@relative}``.
WORD_LIST = re.compile(r"\{@([a-z_]+)\}")


def _names(manifest: dict[str, Any], where: str, problems: list[str]) -> Names:
    return Names(_concept_sets(manifest, where, problems), _word_lists(manifest, where, problems))


def _named_lists(manifest: dict[str, Any], key: str, where: str, problems: list[str]) -> dict[str, Any]:
    """The manifest's ``[key]`` table of named lists ({} and one R015 if it is not a table)."""
    table = manifest.get(key, {})
    if not isinstance(table, dict):
        problems.append(f"R015 {where} [{key}]: must be a table of named lists")
        return {}
    return table


def _concept_sets(manifest: dict[str, Any], where: str, problems: list[str]) -> dict[str, list[str]]:
    """The manifest's ``[concepts]`` table: set name -> concepts.

    A bad set is reported here once, and keeps only its known concepts, so that
    the rules naming it are not reported again.
    """
    table = _named_lists(manifest, "concepts", where, problems)
    sets = {}
    for name, concepts in table.items():
        if not isinstance(concepts, list) or not concepts:
            problems.append(f"R015 {where} [concepts] {name}: must be a non-empty list of concepts")
            concepts = []
        known = [concept for concept in concepts if isinstance(concept, str) and concept in TARGET_CATEGORIES]
        problems.extend(f"R005 {where} [concepts] {name}: unknown category {concept!r}"
                        for concept in concepts if concept not in known)
        sets[name] = known
    return sets


def _word_lists(manifest: dict[str, Any], where: str, problems: list[str]) -> dict[str, str]:
    """The manifest's ``[words]`` table: list name -> one non-capturing group of its alternatives.

    Each entry is a regular expression for lower-case text (rules run on it).
    A bad list is reported here once and stands for nothing (``(?!)``), so
    that the rules naming it are not reported again.
    """
    table = _named_lists(manifest, "words", where, problems)
    lists = {}
    for name, words in table.items():
        group = "(?!)"
        if not WORD_LIST.fullmatch("{@%s}" % name):
            problems.append(f"R015 {where} [words] {name!r}: a list's name is lower-case letters and '_'")
        elif not isinstance(words, list) or not words or not all(isinstance(word, str) and word for word in words):
            problems.append(f"R015 {where} [words] {name}: must be a non-empty list of regular expressions")
        else:
            try:
                group = "(?:" + "|".join(words) + ")"
                re.compile(group)
            except re.error as error:
                problems.append(f"R006 {where} [words] {name}: broken regular expression ({error})")
                group = "(?!)"
        lists[name] = group
    return lists


def _expand(items: Any, sets: dict[str, list[str]], where: str, problems: list[str]) -> Any:
    """``items`` with each ``"@name"`` replaced by the named set's concepts (in order, once each)."""
    if not isinstance(items, list):
        return items
    expanded: list[Any] = []
    for item in items:
        if isinstance(item, str) and item.startswith("@"):
            if item[1:] not in sets:
                problems.append(f"R005 {where}: unknown concept set {item!r} (the manifest's [concepts] "
                                f"names {', '.join(sorted(sets)) or 'none'})")
                continue
            expanded.extend(concept for concept in sets[item[1:]] if concept not in expanded)
        elif item not in expanded:
            expanded.append(item)
    return expanded


def _expand_words(pattern: str, words: dict[str, str], where: str, problems: list[str]) -> str:
    """``pattern`` with each ``{@name}`` replaced by the named word list's group."""
    def group(match: re.Match) -> str:
        if match[1] not in words:
            problems.append(f"R005 {where}: unknown word list {match[0]!r} (the manifest's [words] "
                            f"names {', '.join(sorted(words)) or 'none'})")
            return "(?!)"
        return words[match[1]]
    return WORD_LIST.sub(group, pattern)


def _expand_names(kind: str, rules: Any, names: Names, name: str, problems: list[str]) -> Any:
    """A copy of one file's rules with their concept sets and word lists expanded (what medspaCy is given)."""
    if not isinstance(rules, list):
        return rules
    result = []
    for index, rule in enumerate(rules):
        if isinstance(rule, dict):
            where = f"{name} rule {index} ({rule.get('literal')!r})"
            if kind in CONCEPT_LISTS and any(isinstance(rule.get(key), list) for key in CONCEPT_LISTS[kind]):
                rule = {**rule, **{key: _expand(rule[key], names.concepts, where, problems)
                                   for key in CONCEPT_LISTS[kind] if key in rule}}
            if isinstance(rule.get("pattern"), str) and "{@" in rule["pattern"]:
                rule = {**rule, "pattern": _expand_words(rule["pattern"], names.words, where, problems)}
        result.append(rule)
    return result


def _load_folder(folder: Path, problems: list[str], *, require_manifest: bool, names: Names = Names()):
    """Read one rule folder: {kind: [(file name, rules)]}, section implications, hashes, names.

    ``names`` are the concept sets and word lists the folder may use besides
    its own (the shipped ones).
    """
    loaded: dict[str, list[tuple[str, list[dict]]]] = {kind: [] for kind in TOP_KEYS}
    implies: dict[str, dict] = {}
    hashes: dict[str, str] = {}
    shipped = folder == patterns_dir()
    if (folder / "manifest.toml").exists():
        manifest_path = folder / "manifest.toml"
        try:
            manifest = read_manifest(folder)
        except tomllib.TOMLDecodeError as error:
            problems.append(f"R001 {manifest_path}: not valid TOML ({error})")
            return loaded, implies, hashes, names
        # the manifest says what the rules mean too (concept sets, word lists, section implications)
        hashes["manifest.toml" if shipped else str(manifest_path)] = _sha256(manifest_path)
        names = names.updated(_names(manifest, "manifest.toml", problems))
        listed = {kind: manifest.get(kind, {}).get("files", []) for kind in TOP_KEYS}
        implies = {section: _expand_implication(section, implied, names.concepts, problems)
                   for section, implied in manifest.get("sections", {}).get("implies", {}).items()}
    elif require_manifest:
        problems.append(f"R001 {folder}: no manifest.toml")
        return loaded, implies, hashes, names
    else:
        listed = {kind: sorted(str(p.relative_to(folder)) for p in (folder / kind).glob("*.json"))
                  for kind in TOP_KEYS}
    for kind, files in listed.items():
        for name in files:
            path = folder / name
            if not path.exists():
                problems.append(f"R001 {name}: listed in manifest.toml but missing")
                continue
            hashes[name if shipped else str(path)] = _sha256(path)
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                problems.append(f"R001 {name}: not valid JSON ({error})")
                continue
            unknown = set(data) - {TOP_KEYS[kind], "comment"} if isinstance(data, dict) else {"?"}
            if unknown or TOP_KEYS[kind] not in data:
                problems.append(f"R002 {name}: expected an object with the key {TOP_KEYS[kind]!r}")
                continue
            rules = _expand_names(kind, data[TOP_KEYS[kind]], names, name, problems)
            problems.extend(validate_rules(kind, rules, name))
            problems.extend(_same_names(rules, name, loaded[kind]))
            loaded[kind].append((name, rules))
    return loaded, implies, hashes, names


def _same_names(rules: Any, name: str, earlier: list[tuple[str, list]]) -> list[str]:
    """R012 across the files of one folder: a rule named as one of an earlier file's.

    The later rule would replace the earlier one silently (as an extra folder's
    rule replaces a shipped one on purpose).
    """
    named = {(rule.get("literal"), rule.get("category")): other_name for other_name, other in earlier
             for rule in other if isinstance(rule, dict)}
    return [f"R012 {name} rule {index} ({rule.get('literal')!r}): same literal and category as a rule of "
            f"{named[(rule.get('literal'), rule.get('category'))]}"
            for index, rule in enumerate(rules if isinstance(rules, list) else [])
            if isinstance(rule, dict) and (rule.get("literal"), rule.get("category")) in named]


def _expand_implication(section: str, implied: Any, sets: dict[str, list[str]], problems: list[str]) -> Any:
    if not isinstance(implied, dict):
        return implied
    where = f"manifest.toml [sections.implies.{section}]"
    implied = {**implied, **{key: _expand(implied[key], sets, where, problems)
                             for key in CONCEPT_LISTS["implies"] if key in implied}}
    for key in CONCEPT_LISTS["implies"]:
        for concept in implied.get(key) or []:
            if concept not in TARGET_CATEGORIES:
                problems.append(f"R005 {where}: unknown category {concept!r} in {key}")
    return implied


def unlisted_files(folder: Path) -> list[str]:
    """Rule files present in ``folder`` but not listed in its manifest."""
    manifest = read_manifest(folder)
    listed = {name for kind in TOP_KEYS for name in manifest.get(kind, {}).get("files", [])}
    present = {str(p.relative_to(folder)) for kind in TOP_KEYS for p in (folder / kind).glob("*.json")}
    return sorted(present - listed)


def load_rules(extra: list[str | Path] = ()) -> RuleSet:
    """Load the shipped rules plus any extra folders; raise :class:`RuleError` if any is invalid."""
    problems: list[str] = []
    merged: dict[str, dict[tuple, dict]] = {kind: {} for kind in TOP_KEYS}
    implies: dict[str, dict] = {}
    files: dict[str, str] = {}
    shipped = Names()
    for index, folder in enumerate([patterns_dir(), *map(Path, extra)]):
        if not folder.is_dir():
            problems.append(f"R001 {folder}: not a folder")
            continue
        loaded, folder_implies, hashes, names = _load_folder(folder, problems, require_manifest=index == 0,
                                                             names=shipped)
        if index == 0:
            shipped = names
        implies.update(folder_implies)
        files.update(hashes)
        for kind, per_file in loaded.items():
            for _name, rules in per_file:
                for rule in rules:
                    if isinstance(rule, dict):
                        # a rule of an extra folder replaces the shipped rule of the same name
                        merged[kind][(rule.get("literal"), rule.get("category"))] = rule
    if problems:
        raise RuleError(problems)
    return RuleSet(
        target=list(merged["target"].values()),
        context=list(merged["context"].values()),
        sections=list(merged["sections"].values()),
        section_implies=implies,
        files=files,
    )


def check_rules(folder: str | Path | None = None) -> list[str]:
    """Validate a rule folder (default: the shipped one); return the problems."""
    problems: list[str] = []
    path = Path(folder) if folder else patterns_dir()
    if not path.is_dir():
        return [f"R001 {path}: not a folder"]
    shipped = Names()
    if folder is not None and path != patterns_dir():
        # an extra folder may use the shipped concept sets and word lists
        shipped = _names(read_manifest(patterns_dir()), "manifest.toml", [])
    loaded, *_ = _load_folder(path, problems, require_manifest=folder is None, names=shipped)
    problems.extend(_same_words(loaded["context"]))
    if (path / "manifest.toml").exists():
        problems.extend(f"R013 {name}: present but not listed in manifest.toml" for name in unlisted_files(path))
    return problems


def _same_words(files: list[tuple[str, list]]) -> list[str]:
    """R014: two ConText rules of different categories that match the same words for a target.

    ConText keeps one of two modifiers on the same tokens, and which one depends
    on the order of the rule ids: adding an unrelated rule can flip it ("withheld"
    as both CORRECTED and MED_HELD once made an anticoagulant's status depend on it).
    """
    problems = []
    first: dict[tuple[str, str], list[tuple[str, dict]]] = {}
    for name, rules in files:
        for rule in rules:
            if not isinstance(rule, dict):
                continue
            pattern = rule.get("pattern")
            words = (("regex", pattern) if isinstance(pattern, str)
                     else ("tokens", json.dumps(pattern, sort_keys=True)) if pattern is not None
                     else ("literal", str(rule.get("literal", "")).strip().lower()))
            for other_name, other in first.get(words, []):
                if other.get("category") != rule.get("category") and _share_targets(rule, other):
                    problems.append(
                        f"R014 {name} rule {rule.get('literal')!r} ({rule.get('category')}) matches the same words as "
                        f"{other_name} rule {other.get('literal')!r} ({other.get('category')}) for the same targets: "
                        f"ConText keeps only one of the two, whichever the rule order puts first")
            first.setdefault(words, []).append((name, rule))
    return problems


def _share_targets(rule: dict, other: dict) -> bool:
    allowed = [set(r["allowed_types"]) if r.get("allowed_types") else None for r in (rule, other)]
    if allowed[0] is None or allowed[1] is None:
        return True
    return bool(allowed[0] & allowed[1])


def medspacy_arguments(rule: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments medspaCy's rule classes accept (our extras removed)."""
    return {key: value for key, value in rule.items()
            if key not in {"examples", "counter_examples", "comment"}}
