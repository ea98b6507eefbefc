"""docs/ against the code: the paths it names exist, its tables list what the code defines, and
the package cites nothing a user of the repository cannot read."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from robench.checkpoint.card import Card
from robench.models.config import ArchConfig, VARIANTS
from robench.results.records import Record
from robench.results.schema import COLUMNS
from robench.threats.listing import threats_json
from robench.threats.spec import format_number

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
DOC_FILES = sorted(DOCS.glob("*.md"))
TOP = ("robench", "attacks", "models", "results", "docs", "tests", "benchmarks", "scripts")
# a repository path: starts at a top-level folder, lower-case (NAME / DIR placeholders end it)
PATH_RE = re.compile(r"(?<![\w./-])((?:%s)/[a-z0-9_./*-]*)" % "|".join(TOP))
LINK_RE = re.compile(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)")


def repo_paths(text: str) -> list[str]:
    return sorted({m.rstrip(".,") for m in PATH_RE.findall(text)})


def missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not (any(REPO.glob(p)) if "*" in p else (REPO / p).exists())]


def section(text: str, heading: str) -> str:
    """The body of ``## heading`` (up to the next heading of that level)."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(text: str) -> list[list[str]]:
    """Cells of the first Markdown table in ``text``, header and separator dropped."""
    lines = text.splitlines()
    cut = next(i for i, ln in enumerate(lines) if ln.startswith("|") and set(ln) <= set("|-: "))
    rows = []
    for ln in lines[cut + 1 :]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return rows


def first_column(text: str) -> list[str]:
    return [r[0].strip("`") for r in table_rows(text)]


def read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def test_architecture_names_the_layout_and_every_path_in_it_exists():
    text = read("architecture.md")
    paths = repo_paths(text)
    # the four "where is" questions of issue 17 and the three registries are answered with a file
    for must in ("robench/threats/image/fgsm.py", "robench/report/tables.py", "robench/models/attention.py",
                 "robench/models/registry.py", "robench/threats/registry.py", "robench/data/registry.py"):
        assert must in paths
    assert len(paths) >= 30, paths  # the extraction found the table, not just a few words
    assert missing(paths) == [], "docs/architecture.md names paths that are not in the repository"


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_paths_and_links_in_docs_exist(doc):
    text = doc.read_text(encoding="utf-8")
    assert missing(repo_paths(text)) == []
    links = LINK_RE.findall(text)
    assert [link for link in links if not (doc.parent / link).exists()] == []


def test_readme_links_every_docs_file():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    linked = {link for link in LINK_RE.findall(readme) if link.startswith("docs/")}
    assert linked == {f"docs/{p.name}" for p in DOC_FILES}


def test_nothing_in_the_package_cites_files_outside_the_repository():
    """DESIGN.md and ENVIRONMENT.md sat beside the repository, never in it; ../shared is a
    development machine's data folder. A user reading robench/ meets none of them."""
    bad = re.compile(r"DESIGN\.md|\bDESIGN\b|ENVIRONMENT\.md|\.\./shared|/work/")
    hits = []
    for path in sorted((REPO / "robench").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            for k, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                if bad.search(line):
                    hits.append(f"{path.relative_to(REPO)}:{k}: {line.strip()}")
    assert hits == []


def test_result_schema_lists_every_column_in_csv_order():
    assert first_column(section(read("result-schema.md"), "Row columns")) == COLUMNS


def test_result_schema_lists_every_record_field_in_order():
    text = section(read("result-schema.md"), "Records: `--out DIR/MODEL__THREAT.jsonl`")
    assert first_column(text) == [f.name for f in fields(Record)]


def test_checkpoint_card_lists_the_top_level_fields_a_card_has():
    card = Card.read(REPO / "models" / "digits-vit-sa.json")
    assert first_column(section(read("checkpoint-card.md"), "Top-level fields")) == list(card.to_dict())


def test_every_arch_config_field_is_documented():
    text = section(read("models.md"), "Configuration") + section(read("checkpoint-card.md"), "`architecture`")
    named = set(re.findall(r"`(\w+)`", text))
    assert [f.name for f in fields(ArchConfig) if f.name not in named] == []


def test_models_doc_variant_table_matches_the_code():
    rows = table_rows(read("models.md"))
    kind = lambda a: "bsa" if "Bilateral" in a else "alibi" if "ALiBi" in a else "rope" if "RoPE" in a else "sa"
    doc = {r[3].strip("`"): (kind(r[1]), "grc" if "Generalized" in r[2] else "rc") for r in rows}
    assert doc == VARIANTS


def test_threat_table_matches_the_registry():
    """Every registered threat, with its modality, unit and defaults as ``robench threats --json``
    reports them (the norm parameter is the unit of apgd, square and autoattack)."""
    rows = {r[0].strip("`"): r for r in table_rows(section(read("threat-spec.md"), "Threats"))}
    listed = threats_json()["threats"]
    assert sorted(rows) == sorted(t["name"] for t in listed)
    for t in listed:
        _, modality, unit, params, code = rows[t["name"]]
        assert modality == t["modality"], t["name"]
        assert unit == ("the `norm` parameter" if t["unit_follows"] == "norm" else f"`{t['unit']}`"), t["name"]
        expected = [f"`{p['name']}={p['derived_default'] or format_number(p['default'])}`" for p in t["params"]]
        assert params.split(", ") == expected, t["name"]
        assert (REPO / code.strip("`")).is_file()
