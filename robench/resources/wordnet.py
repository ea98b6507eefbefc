"""Find WordNet 3.0 and NLTK's stopwords offline, and provision them without the NLTK downloader.

Search order for WordNet: robench's NLTK data dir, NLTK's usual data dirs (``$NLTK_DATA``,
``~/nltk_data``, ``<prefix>/nltk_data``, ``/usr/share/nltk_data``, ...), as a folder or as the
``wordnet.zip`` that ``nltk.download`` writes, then Debian's ``/usr/share/wordnet``. NLTK itself is
not imported here (it costs seconds).
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from robench.errors import RobenchError
from robench.resources.paths import nltk_data_dir
from robench.resources.stopwords import NLTK_ENGLISH_STOPWORDS

DEBIAN_WORDNET = Path("/usr/share/wordnet")
HOW_TO_GET_WORDNET = (
    "install it with `apt-get install -y wordnet-base wordnet-sense-index` and run `robench doctor --fix`, "
    "or online: python -c \"import nltk; nltk.download('wordnet')\""
)

# The standard WordNet 3.0 lexicographer-file table (Debian ships no `lexnames` file; NLTK needs it).
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]
_POS_NUMBER = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


def lexnames_text() -> str:
    """The 45-row ``lexnames`` file: ``NN<TAB>lexname<TAB>pos-number``."""
    return "".join(f"{i:02d}\t{name}\t{_POS_NUMBER[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def nltk_search_dirs() -> list[Path]:
    """NLTK data roots in the order robench looks at them."""
    dirs = [nltk_data_dir()]
    dirs += [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    dirs.append(Path.home() / "nltk_data")
    for prefix in (sys.prefix, sys.base_prefix):
        dirs += [Path(prefix) / "nltk_data", Path(prefix) / "share" / "nltk_data", Path(prefix) / "lib" / "nltk_data"]
    dirs += [Path(p) for p in ("/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data")]
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


@dataclass(frozen=True)
class WordNetSource:
    """A readable WordNet: a directory of data files, or a zip with a ``wordnet/`` folder."""

    path: Path

    def read(self, name: str) -> bytes:
        if self.path.suffix == ".zip":
            with zipfile.ZipFile(self.path) as z:
                return z.read(f"wordnet/{name}")
        return (self.path / name).read_bytes()

    def __str__(self) -> str:
        return str(self.path)


def find_wordnet(include_debian: bool = True) -> WordNetSource | None:
    """The first WordNet 3.0 found (see module docstring), or None."""
    for root in nltk_search_dirs():
        folder = root / "corpora" / "wordnet"
        if (folder / "data.noun").is_file():
            return WordNetSource(folder)
        archive = root / "corpora" / "wordnet.zip"
        if archive.is_file():
            return WordNetSource(archive)
    if include_debian and (DEBIAN_WORDNET / "data.noun").is_file():
        return WordNetSource(DEBIAN_WORDNET)
    return None


def require_wordnet() -> WordNetSource:
    src = find_wordnet()
    if src is None:
        raise RobenchError(f"WordNet 3.0 not found; {HOW_TO_GET_WORDNET}")
    return src


def find_stopwords() -> Path | None:
    for root in nltk_search_dirs():
        f = root / "corpora" / "stopwords" / "english"
        if f.is_file():
            return f
        if (root / "corpora" / "stopwords.zip").is_file():
            return root / "corpora" / "stopwords.zip"
    return None


def provision(dest: Path | None = None) -> list[str]:
    """Make WordNet and English stopwords readable by NLTK under ``dest`` (robench's NLTK dir).

    WordNet is copied (NLTK refuses symlinks leaving its root) from Debian's packages, and the
    ``lexnames`` file they lack is generated. Returns a list of what was done.
    """
    dest = dest or nltk_data_dir()
    done = []
    wn_dir = dest / "corpora" / "wordnet"
    if not (wn_dir / "data.noun").is_file() or not (wn_dir / "lexnames").is_file():
        if not (DEBIAN_WORDNET / "data.noun").is_file():
            raise RobenchError(f"cannot provision WordNet: {DEBIAN_WORDNET} is missing; {HOW_TO_GET_WORDNET}")
        if not (DEBIAN_WORDNET / "index.sense").is_file():
            raise RobenchError(
                f"cannot provision WordNet: {DEBIAN_WORDNET}/index.sense is missing; "
                "install it with `apt-get install -y wordnet-sense-index`"
            )
        tmp = wn_dir.with_name("wordnet.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in sorted(DEBIAN_WORDNET.iterdir()):
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)
        (tmp / "lexnames").write_text(lexnames_text())
        shutil.rmtree(wn_dir, ignore_errors=True)
        tmp.rename(wn_dir)
        done.append(f"copied WordNet 3.0 from {DEBIAN_WORDNET} to {wn_dir} (with a generated lexnames)")
    sw = dest / "corpora" / "stopwords" / "english"
    if not sw.is_file():
        sw.parent.mkdir(parents=True, exist_ok=True)
        sw.write_text("\n".join(NLTK_ENGLISH_STOPWORDS) + "\n")
        done.append(f"wrote NLTK's English stopword list ({len(NLTK_ENGLISH_STOPWORDS)} words) to {sw}")
    return done
