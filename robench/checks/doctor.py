"""Environment checks behind ``robench doctor`` (cheap: nothing heavy is imported)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass

from robench.resources.paths import nltk_data_dir
from robench.resources.wordnet import HOW_TO_GET_WORDNET, find_stopwords, find_wordnet


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    # required: what the default `robench evaluate` needs (WordNet, stopwords, torchattacks); a missing
    # required resource makes `robench doctor` exit MISSING_REQUIRED. Optional ones (CUDA, textattack, timm) never do.
    required: bool = False


MISSING_REQUIRED = 3  # doctor's exit code when a required resource is missing (2 stays "bad usage", 1 "a bug")


def _package(name: str, dist: str | None = None, how: str = "", required: bool = False) -> Check:
    if importlib.util.find_spec(name) is None:
        return Check(name, False, how or f"pip install {dist or name}", required)
    return Check(name, True, importlib.metadata.version(dist or name), required)


def textattack_import_check() -> Check:
    """Import textattack the way robench does (offline, downloads silenced): ~10 s."""
    from robench.errors import RobenchError
    from robench.resources.nltk_setup import import_textattack

    try:
        ta = import_textattack()
    except RobenchError as e:
        return Check("textattack import", False, str(e))
    except Exception as e:  # report, don't crash: this is a diagnostic
        return Check("textattack import", False, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    del ta
    return Check("textattack import", True, "imports offline, download attempts silenced")


def run_checks(import_textattack: bool = True) -> list[Check]:
    """Every check, in display order (``import_textattack=False`` skips the slow import)."""
    checks = []
    wn = find_wordnet(include_debian=False)
    if wn is not None:
        checks.append(Check("WordNet (NLTK)", True, str(wn), required=True))
    else:
        debian = find_wordnet()
        hint = "run `robench doctor --fix`" if debian is not None else HOW_TO_GET_WORDNET
        checks.append(Check("WordNet (NLTK)", False, f"not in NLTK's path; {hint}", required=True))
    sw = find_stopwords()
    checks.append(Check("stopwords (NLTK)", sw is not None, str(sw) if sw else "run `robench doctor --fix`", required=True))
    checks.append(Check("robench NLTK dir", nltk_data_dir().is_dir(), str(nltk_data_dir())))
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
    checks.append(Check("HF offline mode", True, "on (HF_HUB_OFFLINE=1)" if offline else
                        "off: hub names are tried online; set HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 when air-gapped"))
    import torch

    if torch.cuda.is_available():
        checks.append(Check("CUDA", True, f"{torch.cuda.device_count()} device(s): {torch.cuda.get_device_name(0)}"))
    else:
        checks.append(Check("CUDA", False, f"not available (torch {torch.__version__}); robench runs on CPU"))
    checks.append(_package("torchattacks", how="pip install --no-deps torchattacks==3.5.1", required=True))
    checks.append(_package("textattack", how="pip install textattack==0.3.11 (see scripts/setup.sh for the pins)"))
    if import_textattack and checks[-1].ok:
        checks.append(textattack_import_check())
    checks.append(_package("timm"))
    return checks


def missing_required(checks: list[Check]) -> list[Check]:
    """The required checks that failed (``robench doctor`` exits MISSING_REQUIRED when there are any)."""
    return [c for c in checks if c.required and not c.ok]
