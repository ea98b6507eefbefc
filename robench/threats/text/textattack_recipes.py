"""textattack's attack recipes as robench threats: ``pwws``, ``deepwordbug``, ``pruthi`` and
``textattack:RECIPE`` for any recipe name. Real ``textattack`` calls, run offline.

The model is queried through :class:`RobenchModelWrapper` (batched, on the model's device).
Recipes whose resources cannot be had offline fail with one line naming the resource.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from robench.errors import RobenchError
from robench.resources.nltk_setup import import_textattack, no_nltk_downloads, require_nltk_resources
from robench.threats.registry import Param, register_threat
from robench.threats.text.base import TextThreat, scored_outcome, text_probs

if TYPE_CHECKING:  # numpy and torch are imported where attacks run, so listing threats stays fast
    import torch

# recipe -> what it needs that robench cannot provide offline (measured without network access)
NEEDS_DOWNLOAD = {
    "textfooler": "counter-fitted word embeddings and the Universal Sentence Encoder",
    "alzantot": "counter-fitted embeddings and a Google language model",
    "faster-alzantot": "counter-fitted embeddings and a language model",
    "kuleshov": "counter-fitted embeddings, the Universal Sentence Encoder and GPT-2",
    "iga": "counter-fitted word embeddings",
    "pso": "HowNet synonyms",
    "bae": "a BERT masked language model from the hub and the Universal Sentence Encoder",
    "bert-attack": "a BERT masked language model from the hub",
    "clare": "a DistilRoBERTa masked language model from the hub and the Universal Sentence Encoder",
    "a2t": "counter-fitted embeddings and a sentence encoder",
    "checklist": "its name/location lexicons",
    "textbugger": "a data file missing from the textattack 0.3.11 wheel (glyph list) and the Universal Sentence Encoder",
    "morpheus": "the LemmInflect data and a hub model",
    "seq2sick": "a seq2seq model",
    "hotflip": "gradients of a word-embedding model (not supported by robench's wrapper)",
}

# recipes whose goal function is not classification (robust accuracy is undefined for them)
NOT_CLASSIFICATION = {"input-reduction": "InputReduction"}


def recipe_classes() -> dict[str, Any]:
    """textattack's recipe name -> class (``textattack attack --recipe`` names)."""
    ta = import_textattack()
    from textattack.attack_args import ATTACK_RECIPE_NAMES

    out = {}
    for name, path in ATTACK_RECIPE_NAMES.items():
        cls_name = path.rsplit(".", 1)[-1]
        out[name] = getattr(ta.attack_recipes, cls_name)
    return out


def make_wrapper(model: torch.nn.Module, batch_size: int) -> Any:
    """A textattack ``ModelWrapper`` around a robench text model (logits, batched)."""
    import numpy as np

    import_textattack()
    from textattack.models.wrappers import ModelWrapper

    class RobenchModelWrapper(ModelWrapper):
        def __init__(self) -> None:
            self.model = model

        def __call__(self, text_input_list):
            # probabilities (rows sum to 1) so textattack does not re-apply softmax differently
            return text_probs(model, list(text_input_list), batch_size).numpy().astype(np.float32)

    return RobenchModelWrapper()


class TextAttackRecipeThreat(TextThreat):
    """Runs a textattack recipe example by example through ``Attack.attack``."""

    recipe: str

    def recipe_name(self) -> str:
        return self.recipe

    def check_available(self) -> None:
        """Refuse, before any model work, a recipe robench cannot run here (downloads, a goal that is not
        classification, textattack or WordNet missing); ``perturb`` would find out after the clean pass."""
        import importlib.util

        name = self.recipe_name()
        if name in NEEDS_DOWNLOAD:
            raise RobenchError(
                f"textattack recipe {name!r} needs {NEEDS_DOWNLOAD[name]}, which robench cannot provide: it runs textattack "
                "offline and fetches nothing; use pwws, pwws-fast, deepwordbug or pruthi, or run the recipe with textattack's "
                "own CLI (`textattack attack --recipe ...`) on a machine with network access"
            )
        if name in NOT_CLASSIFICATION:
            raise RobenchError(f"textattack recipe {name!r} has goal {NOT_CLASSIFICATION[name]}, not a classification attack; "
                               "robust accuracy is undefined for it")
        if importlib.util.find_spec("textattack") is None:
            raise RobenchError(f"threat {self.spec!r} runs textattack, which is not installed; "
                               "install it: pip install textattack==0.3.11 (or run scripts/setup.sh)")
        require_nltk_resources()

    def warm_up(self) -> None:
        """textattack's import (~10 s) and WordNet's index, before the clock starts."""
        from robench.threats.text.synonyms import wordnet_synonyms

        recipe_classes()
        wordnet_synonyms("good")

    def perturb(self, model, batch):
        import numpy as np
        import torch

        name = self.recipe_name()
        self.check_available()
        classes = recipe_classes()
        if name not in classes:
            raise RobenchError(f"unknown textattack recipe {name!r}; recipes: {', '.join(sorted(classes))}")
        from textattack.attack_results import FailedAttackResult, SkippedAttackResult, SuccessfulAttackResult

        wrapper = make_wrapper(model, self.batch_size)
        with no_nltk_downloads():
            try:
                attack = classes[name].build(wrapper)
            except (OSError, LookupError, ValueError, RuntimeError) as e:  # missing data files / hub
                raise RobenchError(f"textattack recipe {name!r} could not be built offline ({str(e).splitlines()[0][:200]})") from None
        goal = type(attack.goal_function).__name__
        if goal not in ("UntargetedClassification", "TargetedClassification"):
            raise RobenchError(
                f"textattack recipe {name!r} has goal {goal}, not a classification attack; robust accuracy is undefined for it"
            )
        if self.query_budget:
            attack.goal_function.query_budget = self.query_budget
        adv, queries = [], []
        for text, label, seed in zip(batch.inputs, batch.labels.tolist(), batch.example_seeds):
            # textattack's random transformations (deepwordbug, pruthi) use the global RNGs
            random.seed(seed)
            np.random.seed(seed % 2**32)
            torch.manual_seed(seed)
            with no_nltk_downloads():
                result = attack.attack(text, int(label))
            if not isinstance(result, (SuccessfulAttackResult, FailedAttackResult, SkippedAttackResult)):
                raise RobenchError(f"textattack recipe {name!r} returned {type(result).__name__}; robench needs success/failure results")
            if isinstance(result, SkippedAttackResult):
                raise RobenchError(f"textattack skipped an example robench classified correctly; the wrapper disagrees with the model ({name})")
            adv.append(result.perturbed_result.attacked_text.text if isinstance(result, SuccessfulAttackResult) else text)
            queries.append(float(result.perturbed_result.num_queries))
        return scored_outcome(model, adv, torch.tensor(queries), batch_size=self.batch_size)


_BUDGET = Param("query_budget", "int", 0, "max model queries per example (0 = unlimited)", "queries", low=0, high=10**9)
_BATCH = Param("batch_size", "int", 128, "texts per forward pass of the wrapper", low=1, high=10**6)


@register_threat
class PWWS(TextAttackRecipeThreat):
    name = "pwws"
    recipe = "pwws"
    summary = "textattack's PWWSRen2019: WordNet synonym swaps ranked by weighted saliency"
    params = (_BUDGET, _BATCH)


@register_threat
class DeepWordBug(TextAttackRecipeThreat):
    name = "deepwordbug"
    recipe = "deepwordbug"
    summary = "textattack's DeepWordBugGao2018: character edits on the most important words"
    params = (_BUDGET, _BATCH)


@register_threat
class Pruthi(TextAttackRecipeThreat):
    name = "pruthi"
    recipe = "pruthi"
    summary = "textattack's Pruthi2019: keyboard-typo character edits"
    params = (_BUDGET, _BATCH)


# textattack 0.3.11's recipe names (textattack.attack_args.ATTACK_RECIPE_NAMES), listed here so a
# spec is validated without importing textattack (which takes ~10 s).
RECIPES = (
    "a2t", "alzantot", "bad-characters", "bae", "bert-attack", "checklist", "clare", "deepwordbug",
    "faster-alzantot", "hotflip", "iga", "input-reduction", "kuleshov", "leap", "morpheus", "pruthi",
    "pso", "pwws", "seq2sick", "textbugger", "textfooler",
)


@register_threat
class TextAttackRecipe(TextAttackRecipeThreat):
    name = "textattack"
    positional = "recipe"
    summary = "any textattack recipe by name: textattack:NAME (or textattack:recipe=NAME)"
    params = (Param("recipe", "choice", "pwws", "textattack recipe name", choices=RECIPES), _BUDGET, _BATCH)

    def recipe_name(self) -> str:
        return self.recipe

    @classmethod
    def listing_notes(cls) -> list[str]:
        """What ``robench threats`` adds: the recipes refused before any work, and why."""
        return [f"refused before any work (they need downloads robench does not make): {', '.join(sorted(NEEDS_DOWNLOAD))}; "
                f"not classification attacks: {', '.join(NOT_CLASSIFICATION)}"]
