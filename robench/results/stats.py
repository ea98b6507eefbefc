"""Confidence intervals and paired tests, from scipy (the tests check them against the formulas)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=None)
def normal_quantile(p: float) -> float:
    """The standard normal quantile (``normal_quantile(0.975)`` is the two-sided 95% z)."""
    from scipy.stats import norm  # scipy is imported where a statistic is needed: `robench --help` stays fast

    return float(norm.ppf(p))


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default); ``(0, 1)`` when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test on the discordant pairs ``b`` and ``c``: under H0 they are
    Binomial(b + c, 1/2). No discordant pair -> p = 1."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(min(b, c), b + c, 0.5).pvalue)


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic ``z``."""
    from scipy.stats import norm

    return float(2 * norm.sf(abs(z)))
