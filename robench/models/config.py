"""Typed architecture configuration shared by every robench model family.

A config is what a checkpoint card stores under ``architecture``: it must rebuild the exact module
whose weights sit in the ``.safetensors`` file, so every field that changes a parameter shape or
the forward computation lives here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robench.errors import RobenchError

# variant name -> (attention kind, residual kind); docs/models.md defines them.
VARIANTS: dict[str, tuple[str, str]] = {
    "sa": ("sa", "rc"),
    "bsa": ("bsa", "rc"),
    "grc": ("sa", "grc"),
    "bsa-grc": ("bsa", "grc"),
    "alibi": ("alibi", "rc"),
    "rope": ("rope", "rc"),
}
# relative-position SA baselines: not registered with timm (the paper's four variants are)
BASELINE_VARIANTS = ("alibi", "rope")
FAMILIES = ("vit", "text", "lm")


def arch_option(default: Any, help: str, choices: tuple | None = None, applies_to: str = "all") -> Any:
    """A design-choice field of :class:`ArchConfig`: settable by ``robench train --arch-arg`` and listed
    (default, choices, meaning) by ``robench models --json``; the field is the single source of both."""
    return field(default=default, metadata={"arch_option": {"help": help, "choices": choices, "applies_to": applies_to}})


def variant_parts(variant: str) -> tuple[str, str]:
    """Return ``(attention, residual)`` for a variant name, or raise a one-line error."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise RobenchError(
            f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}"
        ) from None


@dataclass
class ArchConfig:
    """Architecture of one robench Transformer classifier.

    ``family`` selects the input stem (``vit``: patch embedding of an image; ``text``: token
    embedding; ``lm``: causal language model, ``max_length`` is its context, ``num_classes`` unused), ``variant`` the attention/residual pair. Image-only and text-only fields are ignored
    by the other family but kept so that one schema describes every checkpoint.
    """

    family: str
    variant: str = "sa"
    num_classes: int = 10
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    # Design choices (docs/models.md); every default is robench's original definition, so a card
    # without these keys rebuilds the same model.
    pos_embed: bool | None = arch_option(
        None, "additive position embedding: null = the variant's default (sa, grc: yes; bsa, bsa-grc, alibi, "
        "rope: no); true/false forces it on/off", (None, True, False))
    bsa_range: str = arch_option("gauss", "BSA range (content) kernel: gauss = -||q_i-k_j||^2/h_y, dot = "
                                 "(2/h_y) q_i.k_j (the key-norm term dropped; q.k/sqrt(d_head) at the default h_y)",
                                 ("gauss", "dot"), "bsa")
    bsa_spatial: bool = arch_option(True, "BSA spatial kernel -||p_i-p_j||^2/h_p on (true) or off (false; no h_p)",
                                    (True, False), "bsa")
    bsa_bandwidths: str = arch_option("learned", "BSA bandwidths h_y, h_p: learned per head, or fixed at their "
                                      "initial values", ("learned", "fixed"), "bsa")
    bsa_hy_init: float | None = arch_option(None, "initial h_y (> 0); null = 2 sqrt(d_head)", None, "bsa")
    bsa_hp_init: float | None = arch_option(None, "initial h_p (> 0); null = the mean ||p_i-p_j||^2 over the "
                                            "position tokens", None, "bsa")
    # GRC: t_l = sigmoid(tau_l) is initialised to this value.
    grc_init: float = arch_option(0.1, "GRC: initial t (in (0, 1))", None, "grc")
    grc_t: str = arch_option("layer", "GRC t: one learnable scalar per layer, one learnable value per channel, "
                             "or fixed at grc_init", ("layer", "channel", "fixed"), "grc")
    grc_sublayers: str = arch_option("attn", "GRC boosts the attention sub-layer only, or attention and MLP "
                                     "(each with its own t)", ("attn", "attn+mlp"), "grc")
    grc_y0: str = arch_option("embed", "GRC's Y_0: the embeddings (the first block's input) or the first "
                              "layer's values W_V LN_1(Y_0) (NeuTRENO-style)", ("embed", "values"), "grc")
    # image stem
    img_size: int = 8
    patch_size: int = 2
    in_chans: int = 1
    # text stem
    vocab_size: int = 0
    max_length: int = 64
    pad_id: int = 0
    text_pos_embedding: str = "learned"  # "learned" | "sinusoidal" (ignored by BSA variants)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise RobenchError(f"unknown model family {self.family!r}; choose one of: {', '.join(FAMILIES)}")
        variant_parts(self.variant)
        if self.embed_dim % self.num_heads:
            raise RobenchError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}"
            )
        if self.family == "vit" and self.img_size % self.patch_size:
            raise RobenchError(
                f"img_size={self.img_size} is not divisible by patch_size={self.patch_size}"
            )
        if self.family == "text" and self.vocab_size < 4:
            raise RobenchError("a text model needs vocab_size >= 4 (pad, unk, cls and one word)")
        if self.family == "lm" and (self.vocab_size < 3 or self.max_length < 1):
            raise RobenchError("a language model needs vocab_size >= 3 (unk, eos and one word) and max_length >= 1")
        if self.text_pos_embedding not in ("learned", "sinusoidal"):
            raise RobenchError("text_pos_embedding must be 'learned' or 'sinusoidal'")
        if not 0.0 < self.grc_init < 1.0:
            raise RobenchError(f"grc_init must be in (0, 1), got {self.grc_init}")
        check_options(self.variant, {f.name: getattr(self, f.name) for f in option_fields()})
        if self.attention == "rope" and (self.embed_dim // self.num_heads) % 2:
            raise RobenchError(f"RoPE needs an even head width; embed_dim/num_heads = {self.embed_dim // self.num_heads}")

    @property
    def uses_pos_embed(self) -> bool:
        """Whether the model adds a position embedding to its tokens (``pos_embed``, else the variant's default)."""
        return self.attention == "sa" if self.pos_embed is None else self.pos_embed

    def attn_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`~robench.models.attention.Attention` for BSA's options."""
        if self.attention != "bsa":
            return {}
        return {"range_kernel": self.bsa_range, "spatial": self.bsa_spatial,
                "learn_bandwidths": self.bsa_bandwidths == "learned", "hy_init": self.bsa_hy_init}

    def grc_options(self):
        """:class:`~robench.models.block.GRCOptions` of this config."""
        from robench.models.block import GRCOptions

        return GRCOptions(t=self.grc_t, sublayers=self.grc_sublayers, y0=self.grc_y0)

    def hp_init(self, default: float) -> float:
        """Initial ``h_p``: ``bsa_hp_init`` if set, else the family's ``default``."""
        return default if self.bsa_hp_init is None else float(self.bsa_hp_init)

    @property
    def attention(self) -> str:
        return variant_parts(self.variant)[0]

    @property
    def residual(self) -> str:
        return variant_parts(self.variant)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with the derived attention/residual kinds spelled out for readers."""
        d = dataclasses.asdict(self)
        d["attention"] = self.attention
        d["residual"] = self.residual
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchConfig":
        """Rebuild from a card; unknown keys are an error (a card from a newer robench)."""
        d = dict(d)
        d.pop("attention", None)
        d.pop("residual", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RobenchError(
                f"checkpoint card has unknown architecture keys {unknown}; upgrade robench or fix the card"
            )
        if "family" not in d:
            raise RobenchError("checkpoint card's architecture has no 'family'")
        return cls(**d)


def option_fields() -> list[dataclasses.Field]:
    """The design-choice fields of :class:`ArchConfig` (declared with :func:`arch_option`)."""
    return [f for f in dataclasses.fields(ArchConfig) if "arch_option" in f.metadata]


def arch_options_json() -> list[dict[str, Any]]:
    """Every design option with its default, allowed values, the variants it applies to and its meaning."""
    out = []
    for f in option_fields():
        meta = f.metadata["arch_option"]
        out.append({"name": f.name, "default": f.default, "choices": list(meta["choices"]) if meta["choices"] else None,
                    "applies_to": meta["applies_to"], "help": meta["help"]})
    return out


def check_options(variant: str, opts: dict[str, Any]) -> None:
    """One-line error for an unknown option, a value outside its choices, or a BSA/GRC option set to a
    non-default value on a variant without BSA/GRC (it would be silently ignored)."""
    attention, residual = variant_parts(variant)
    fields = {f.name: f for f in option_fields()}
    for key, value in opts.items():
        if key not in fields:
            raise RobenchError(f"unknown architecture option {key!r}; choose from: {', '.join(fields)}")
        f, meta = fields[key], fields[key].metadata["arch_option"]
        if meta["choices"] is not None and not any(value is c or (type(value) is type(c) and value == c)
                                                   for c in meta["choices"]):
            shown = ", ".join("null" if c is None else str(c).lower() if isinstance(c, bool) else str(c)
                              for c in meta["choices"])
            raise RobenchError(f"architecture option {key}={value!r} is not one of: {shown}")
        if key in ("bsa_hy_init", "bsa_hp_init") and value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise RobenchError(f"architecture option {key} must be a number > 0, got {value!r}")
        if key == "grc_init" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RobenchError(f"architecture option grc_init must be a number in (0, 1), got {value!r}")
        applies = meta["applies_to"]
        kind = attention if applies == "bsa" else residual
        if applies != "all" and kind != applies and value != f.default and key != "grc_init":
            raise RobenchError(f"architecture option {key} is for {applies.upper()} variants, not --variant {variant}")


def parse_arch_args(items: list[str]) -> dict[str, Any]:
    """``key=value`` strings (``--arch-arg``) -> typed options: true/false, null, numbers, else strings;
    never evaluated as code. Keys and values are checked by :func:`check_options` against the variant."""
    fields = {f.name for f in option_fields()}
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        key, v = key.strip(), value.strip()
        if not eq or not key:
            raise RobenchError(f"--arch-arg {item!r}: expected key=value (e.g. bsa_range=dot)")
        if key not in fields:
            raise RobenchError(f"--arch-arg {key}: unknown architecture option; choose from: {', '.join(sorted(fields))}")
        if v.lower() in ("true", "false"):
            out[key] = v.lower() == "true"
        elif v.lower() in ("null", "none"):
            out[key] = None
        else:
            try:
                out[key] = float(v) if key in ("grc_init", "bsa_hy_init", "bsa_hp_init") else v
            except ValueError:
                raise RobenchError(f"--arch-arg {key}={v}: expected a number") from None
    return out
