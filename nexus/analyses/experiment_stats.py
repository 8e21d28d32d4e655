"""Experiments' statistics: pure functions from per-variant sufficient statistics to lifts, intervals,
p-values, Bayesian and always-valid sequential answers, CUPED, sample-ratio checks, corrections, sample
sizes and the verdict sentence. No I/O: the experiment analysis computes the `Sample`s in ClickHouse.

Definitions (docs/metrics.md, "Experiments", says the same):
- A `Sample` holds, over the exposed persons of one variant, n, the sums of the per-person metric y and of
  y², and for CUPED the sums of the pre-exposure covariate x, of x² and of x·y. A conversion metric has
  y in {0, 1}. Variances are sample variances (n - 1).
- Absolute lift d = mean_t - mean_c; relative lift r = mean_t / mean_c - 1, its standard error by the
  delta method: se_r² = var_t / mean_c² + mean_t² var_c / mean_c⁴ (var_* the variances of the means).
  Both intervals at level 1 - alpha.
- Conversions: two-proportion z-test with the pooled rate under the null; the absolute interval is the
  unpooled Wald interval. Means: Welch's t-test and its interval with Welch–Satterthwaite degrees of
  freedom; the relative interval uses the normal quantile (large-sample delta method).
- Bayesian: conversions have independent Beta(1, 1) priors (uniform) and Beta-Binomial posteriors; the
  probability to beat control P(p_t > p_c) and the expected loss E[max(p_c - p_t, 0)] of shipping the
  treatment are computed exactly in closed form (Evan Miller's sum; the size-biased identity
  E[p_c 1{p_c > p_t}] = mean_c P(p_c' > p_t), p_c' ~ Beta(a_c + 1, b_c)) up to 50,000 conversions a
  variant, and by adaptive quadrature of the same posteriors beyond (no Monte Carlo). Means (and CUPED-adjusted
  conversions) use a normal approximation with a flat prior: D ~ N(d, se²), P(D > 0) = Φ(d / se),
  E[max(-D, 0)] = se φ(d / se) - d Φ(-d / se).
- Always-valid sequential inference: the normal-mixture mSPRT on the difference of means (Johari et al.
  2017), which is the asymptotic confidence sequence of Waudby-Smith et al. (2023), with mixing variance
  τ² = ρ² (s_c² + s_t²), ρ² = (2 ln(1/alpha) + ln(1 + 2 ln(1/alpha))) / n*, so the sequence is tightest
  when each variant has n* persons (the planned sample size). Λ = sqrt(V / (V + τ²))
  exp(τ² d² / (2 V (V + τ²))) with V = s_c²/n_c + s_t²/n_t; the p-value is min(1, 1/Λ) and the interval
  d ± sqrt(V (V + τ²) / τ² (2 ln(1/alpha) + ln((V + τ²) / V))). Each look's test is valid uniformly over
  time; over a history of looks the always-valid p-value is the running minimum (`running_minimum`).
- CUPED: theta = pooled within-variant cov(x, y) / var(x); each variant's adjusted mean is
  mean_y - theta (mean_x - grand mean_x) and its variance var_y - 2 theta cov(x, y) + theta² var(x);
  `variance_reduction` is the share of the variance of the difference removed.
- Sample-ratio mismatch: Pearson's chi-square of the exposed counts against the design's weights; it
  fails below p = 0.001 and then no verdict is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import msgspec
import numpy as np
from numpy.typing import ArrayLike
from scipy import integrate, optimize, special, stats

Kind = Literal["conversion", "mean"]
CorrectionMethod = Literal["holm", "bh"]

BETA_PRIOR = (1.0, 1.0)  # Beta(1, 1): uniform on the conversion rate; integers keep the closed form exact
SRM_THRESHOLD = 0.001
CLOSED_FORM_TERMS = 50_000  # once both variants have more conversions than this, quadrature is faster
DEFAULT_PLANNED_N = 10_000  # the sequential test's tuning when the caller has no planned sample size


class Sample(msgspec.Struct, frozen=True):
    """Sufficient statistics of a per-person metric over one variant's exposed persons: `n` persons,
    the sums of y and y², and of the pre-exposure covariate x, x² and x·y (zero without CUPED)."""

    n: int
    sum: float
    sum_squares: float
    pre_sum: float = 0.0
    pre_sum_squares: float = 0.0
    cross_sum: float = 0.0


class Interval(msgspec.Struct, frozen=True):
    low: float
    high: float


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """A treatment against the control on one metric. Means and lifts are CUPED-adjusted when `cuped`."""

    kind: Kind
    alpha: float
    control_n: int
    treatment_n: int
    control_mean: float
    treatment_mean: float
    absolute_lift: float
    absolute_interval: Interval
    relative_lift: float | None  # None when the control's mean is 0
    relative_interval: Interval | None
    test: Literal["z", "welch_t"]
    statistic: float | None  # None when the variants differ without any spread (p-values 0)
    degrees_of_freedom: float | None  # Welch's; None for the z-test
    p_value: float
    probability_to_beat: float
    expected_loss: float  # of shipping the treatment, in the metric's units
    bayesian_method: Literal["beta_binomial_exact", "normal_approximation"]
    sequential_p_value: float
    sequential_interval: Interval  # always-valid interval of the absolute lift
    sequential_planned_n: int
    cuped: bool
    cuped_theta: float | None
    variance_reduction: float | None  # share of the lift's variance that CUPED removed


class SrmCheck(msgspec.Struct, frozen=True, kw_only=True):
    observed: list[int]
    expected: list[float]
    statistic: float
    p_value: float
    threshold: float
    passed: bool


class _Moments(msgspec.Struct, frozen=True):
    """One variant's mean and sample variance of the per-person metric (adjusted under CUPED)."""

    n: int
    mean: float
    variance: float

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n


def _variance(n: int, total: float, total_squares: float) -> float:
    return max(total_squares - total * total / n, 0.0) / (n - 1)


def _covariance(sample: Sample) -> float:
    return (sample.cross_sum - sample.pre_sum * sample.sum / sample.n) / (sample.n - 1)


def _moments(sample: Sample) -> _Moments:
    return _Moments(sample.n, sample.sum / sample.n, _variance(sample.n, sample.sum, sample.sum_squares))


def cuped_theta(control: Sample, treatment: Sample) -> float:
    """theta = pooled within-variant covariance of (x, y) over pooled within-variant variance of x."""
    centred_cross = sum(s.cross_sum - s.pre_sum * s.sum / s.n for s in (control, treatment))
    centred_squares = sum(s.pre_sum_squares - s.pre_sum**2 / s.n for s in (control, treatment))
    return centred_cross / centred_squares if centred_squares > 0 else 0.0


def _adjusted(sample: Sample, theta: float, grand_pre_mean: float) -> _Moments:
    plain = _moments(sample)
    pre_variance = _variance(sample.n, sample.pre_sum, sample.pre_sum_squares)
    variance = plain.variance - 2 * theta * _covariance(sample) + theta**2 * pre_variance
    mean = plain.mean - theta * (sample.pre_sum / sample.n - grand_pre_mean)
    return _Moments(sample.n, mean, max(variance, 0.0))


def _check(sample: Sample, kind: Kind) -> None:
    if sample.n < 2:
        raise ValueError("a variant needs at least 2 persons")
    if kind == "conversion" and not (0 <= sample.sum <= sample.n and float(sample.sum).is_integer()):
        raise ValueError("conversions must be a whole number between 0 and n")


def _probability_beta_greater(a: float, b: float, c: float, d: float) -> float:
    """P(X > Y) for independent X ~ Beta(a, b), Y ~ Beta(c, d) with integer `a`, exactly (Evan Miller's
    closed form, summed in log space)."""
    i = np.arange(int(a), dtype=float)
    log_terms = special.betaln(c + i, b + d) - np.log(b + i) - special.betaln(1 + i, b) - special.betaln(c, d)
    return float(min(max(np.exp(special.logsumexp(log_terms)), 0.0), 1.0))


def _probability_greater(a: float, b: float, c: float, d: float) -> float:
    """P(X > Y) as above, summing over the smaller of the two integer alphas (the terms' count)."""
    return _probability_beta_greater(a, b, c, d) if a <= c else 1.0 - _probability_beta_greater(c, d, a, b)


def _posteriors(control: Sample, treatment: Sample) -> tuple[tuple[float, float], tuple[float, float]]:
    prior_a, prior_b = BETA_PRIOR
    return (
        (prior_a + control.sum, prior_b + control.n - control.sum),
        (prior_a + treatment.sum, prior_b + treatment.n - treatment.sum),
    )


def beta_binomial_closed_form(control: Sample, treatment: Sample) -> tuple[float, float]:
    """P(p_t > p_c) and E[max(p_c - p_t, 0)] under the Beta posteriors, in closed form: as many terms as
    the smaller posterior alpha."""
    (a_c, b_c), (a_t, b_t) = _posteriors(control, treatment)
    beat = _probability_greater(a_t, b_t, a_c, b_c)
    mean_c, mean_t = a_c / (a_c + b_c), a_t / (a_t + b_t)
    # E[max(p_c - p_t, 0)] = mean_c P(p_c' > p_t) - mean_t P(p_c > p_t'), primes size-biased (alpha + 1).
    loss = mean_c * _probability_greater(a_c + 1, b_c, a_t, b_t) - mean_t * _probability_greater(
        a_c, b_c, a_t + 1, b_t
    )
    return beat, max(loss, 0.0)


def beta_binomial_quadrature(control: Sample, treatment: Sample) -> tuple[float, float]:
    """The same two numbers by adaptive quadrature (within 1e-9 of the closed form up to 10⁶ persons, 3e-8
    at 10⁷): P(p_t > p_c) =
    ∫ f_c(s) S_t(s) ds and E[max(p_c - p_t, 0)] = ∫ F_t(s) S_c(s) ds, over where the posteriors live."""
    (a_c, b_c), (a_t, b_t) = _posteriors(control, treatment)
    posterior_c, posterior_t = stats.beta(a_c, b_c), stats.beta(a_t, b_t)
    low = min(float(posterior_c.ppf(1e-15)), float(posterior_t.ppf(1e-15)))
    high = max(float(posterior_c.isf(1e-15)), float(posterior_t.isf(1e-15)))
    # The integrands are narrow peaks in [0, 1]: the quantiles tell quad where to look.
    points = sorted(float(q) for p in (posterior_c, posterior_t) for q in p.ppf([1e-6, 0.5, 1 - 1e-6]))
    beat = integrate.quad(
        lambda x: posterior_c.pdf(x) * posterior_t.sf(x), low, high, points=points, epsabs=1e-13, limit=500
    )[0]
    loss = integrate.quad(
        lambda x: posterior_t.cdf(x) * posterior_c.sf(x), low, high, points=points, epsabs=1e-14, limit=500
    )[0]
    return min(max(beat, 0.0), 1.0), max(loss, 0.0)


def _beta_binomial(control: Sample, treatment: Sample) -> tuple[float, float]:
    """The closed form while its sums stay short (under ~30 ms), quadrature beyond (~50 ms at any size)."""
    (a_c, _), (a_t, _) = _posteriors(control, treatment)
    if min(a_c, a_t) <= CLOSED_FORM_TERMS:
        return beta_binomial_closed_form(control, treatment)
    return beta_binomial_quadrature(control, treatment)


def _normal_posterior(difference: float, standard_error: float) -> tuple[float, float]:
    if standard_error == 0:
        return float(difference > 0), max(-difference, 0.0)
    ratio = difference / standard_error
    beat = float(stats.norm.cdf(ratio))
    loss = standard_error * float(stats.norm.pdf(ratio)) - difference * float(stats.norm.cdf(-ratio))
    return beat, max(loss, 0.0)


def mixing_variance(unit_variance: float, alpha: float, planned_n: int) -> float:
    """The mSPRT's mixing variance τ² = ρ² (s_c² + s_t²) (`unit_variance` is s_c² + s_t²), with ρ² making
    the confidence sequence tightest at `planned_n` persons per variant."""
    log_term = 2 * math.log(1 / alpha)
    return (log_term + math.log(1 + log_term)) / planned_n * unit_variance


def sequential_p_value(difference: ArrayLike, variance: ArrayLike, mixing: ArrayLike) -> np.ndarray:
    """min(1, 1/Λ) of the normal-mixture likelihood ratio for an estimated difference with `variance`
    (element-wise, so a simulation can run thousands of looks at once)."""
    difference, variance, mixing = (np.asarray(a, dtype=float) for a in (difference, variance, mixing))
    total = variance + mixing
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = 0.5 * np.log(variance / total) + mixing * difference**2 / (2 * variance * total)
    p_value = np.minimum(np.exp(-np.nan_to_num(log_ratio, nan=0.0)), 1.0)
    # Without any spread, a difference is certain (as the fixed-horizon tests take it) and no difference is none.
    return np.where(variance > 0, p_value, np.where(difference != 0, 0.0, 1.0))


def sequential_half_width(variance: ArrayLike, mixing: ArrayLike, alpha: float) -> np.ndarray:
    """Half-width of the always-valid interval: the differences θ whose Λ(θ) stays below 1/alpha."""
    variance, mixing = np.asarray(variance, dtype=float), np.asarray(mixing, dtype=float)
    total = variance + mixing
    with np.errstate(divide="ignore", invalid="ignore"):
        squared = variance * total / mixing * (2 * math.log(1 / alpha) + np.log(total / variance))
    return np.sqrt(np.nan_to_num(squared, nan=0.0))


def _standardised(difference: float, standard_error: float) -> float | None:
    """difference / standard_error; 0 for no difference without any spread, None (no finite statistic) for a
    difference without any spread."""
    if standard_error > 0:
        return difference / standard_error
    return None if difference else 0.0


def _two_sided_p(statistic: float | None, tail: Callable[[float], float]) -> float:
    """2 tail(|statistic|); 0 without a statistic: a difference without any spread is certain, as
    `sequential_p_value` takes it."""
    return 0.0 if statistic is None else float(2 * tail(abs(statistic)))


def running_minimum(p_values: ArrayLike) -> np.ndarray:
    """The always-valid p-value after each look (along the last axis): the smallest sequential p-value so
    far."""
    return np.minimum.accumulate(np.asarray(p_values, dtype=float), axis=-1)


def _around(centre: float, half_width: float) -> Interval:
    return Interval(centre - half_width, centre + half_width)


class _Test(msgspec.Struct, frozen=True):
    name: Literal["z", "welch_t"]
    statistic: float | None
    degrees_of_freedom: float | None
    p_value: float
    interval: Interval


def _two_proportion_z(control: Sample, treatment: Sample, difference: float, error: float, alpha: float) -> _Test:
    """z with the pooled rate under the null; the interval is the unpooled Wald interval (`error`)."""
    pooled = (control.sum + treatment.sum) / (control.n + treatment.n)
    pooled_error = math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    statistic = _standardised(difference, pooled_error)
    p_value = _two_sided_p(statistic, stats.norm.sf)
    return _Test("z", statistic, None, p_value, _around(difference, float(stats.norm.isf(alpha / 2)) * error))


def _wald_z(difference: float, error: float, alpha: float) -> _Test:
    statistic = _standardised(difference, error)
    p_value = _two_sided_p(statistic, stats.norm.sf)
    return _Test("z", statistic, None, p_value, _around(difference, float(stats.norm.isf(alpha / 2)) * error))


def _welch_t(control: _Moments, treatment: _Moments, difference: float, alpha: float) -> _Test:
    v_c, v_t = control.variance_of_mean, treatment.variance_of_mean
    if v_c + v_t > 0:
        degrees = (v_c + v_t) ** 2 / (v_c**2 / (control.n - 1) + v_t**2 / (treatment.n - 1))
    else:
        degrees = float(control.n + treatment.n - 2)
    error = math.sqrt(v_c + v_t)
    statistic = _standardised(difference, error)
    p_value = _two_sided_p(statistic, lambda t: stats.t.sf(t, degrees))
    half_width = float(stats.t.isf(alpha / 2, degrees)) * error
    return _Test("welch_t", statistic, degrees, p_value, _around(difference, half_width))


def _relative(control: _Moments, treatment: _Moments, alpha: float) -> tuple[float | None, Interval | None]:
    """mean_t / mean_c - 1 and its delta-method interval (None when the control's mean is 0)."""
    if control.mean == 0:
        return None, None
    relative = treatment.mean / control.mean - 1
    error = math.sqrt(
        treatment.variance_of_mean / control.mean**2
        + treatment.mean**2 * control.variance_of_mean / control.mean**4
    )
    return relative, _around(relative, float(stats.norm.isf(alpha / 2)) * error)


def compare(
    control: Sample,
    treatment: Sample,
    *,
    kind: Kind,
    alpha: float = 0.05,
    cuped: bool = False,
    planned_n: int | None = None,
) -> Comparison:
    """The treatment against the control (module docstring: every statistic's definition). `planned_n`
    (persons per variant) tunes the sequential test and must be fixed before the data are seen. With
    `cuped`, every statistic is computed on the adjusted means and variances, and a conversion's test and
    posterior become normal ones (the adjusted metric is no longer 0/1)."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must lie between 0 and 1")
    _check(control, kind)
    _check(treatment, kind)
    theta: float | None = None
    reduction: float | None = None
    plain_c, plain_t = _moments(control), _moments(treatment)
    if cuped:
        theta = cuped_theta(control, treatment)
        grand_pre_mean = (control.pre_sum + treatment.pre_sum) / (control.n + treatment.n)
        moments_c = _adjusted(control, theta, grand_pre_mean)
        moments_t = _adjusted(treatment, theta, grand_pre_mean)
        plain_variance = plain_c.variance_of_mean + plain_t.variance_of_mean
        adjusted_variance = moments_c.variance_of_mean + moments_t.variance_of_mean
        reduction = 1 - adjusted_variance / plain_variance if plain_variance > 0 else 0.0
    elif kind == "conversion":
        # A rate's variance is p(1 - p), as the Wald interval uses it (not the sample variance's n - 1).
        moments_c = _Moments(control.n, plain_c.mean, plain_c.mean * (1 - plain_c.mean))
        moments_t = _Moments(treatment.n, plain_t.mean, plain_t.mean * (1 - plain_t.mean))
    else:
        moments_c, moments_t = plain_c, plain_t
    difference = moments_t.mean - moments_c.mean
    variance_of_difference = moments_c.variance_of_mean + moments_t.variance_of_mean
    exact_conversion = kind == "conversion" and not cuped
    if exact_conversion:
        test = _two_proportion_z(control, treatment, difference, math.sqrt(variance_of_difference), alpha)
        beat, loss = _beta_binomial(control, treatment)
    else:
        if kind == "conversion":
            test = _wald_z(difference, math.sqrt(variance_of_difference), alpha)
        else:
            test = _welch_t(moments_c, moments_t, difference, alpha)
        beat, loss = _normal_posterior(difference, math.sqrt(variance_of_difference))
    relative, relative_interval = _relative(moments_c, moments_t, alpha)
    planned = planned_n or DEFAULT_PLANNED_N
    mixing = mixing_variance(moments_c.variance + moments_t.variance, alpha, planned)
    sequential_p = float(sequential_p_value(difference, variance_of_difference, mixing))
    half_width = float(sequential_half_width(variance_of_difference, mixing, alpha))
    return Comparison(
        kind=kind,
        alpha=alpha,
        control_n=control.n,
        treatment_n=treatment.n,
        control_mean=moments_c.mean,
        treatment_mean=moments_t.mean,
        absolute_lift=difference,
        absolute_interval=test.interval,
        relative_lift=relative,
        relative_interval=relative_interval,
        test=test.name,
        statistic=test.statistic,
        degrees_of_freedom=test.degrees_of_freedom,
        p_value=test.p_value,
        probability_to_beat=beat,
        expected_loss=loss,
        bayesian_method="beta_binomial_exact" if exact_conversion else "normal_approximation",
        sequential_p_value=sequential_p,
        sequential_interval=_around(difference, half_width),
        sequential_planned_n=planned,
        cuped=cuped,
        cuped_theta=theta,
        variance_reduction=reduction,
    )


def srm_check(observed: list[int], weights: list[float], threshold: float = SRM_THRESHOLD) -> SrmCheck:
    """Pearson's chi-square of the exposed persons per variant against the design's weights."""
    if len(observed) != len(weights) or len(observed) < 2:
        raise ValueError("observed and weights need one entry per variant, at least two")
    total = sum(observed)
    shares = np.asarray(weights, dtype=float) / sum(weights)
    expected = (shares * total).tolist()
    if total == 0:
        return SrmCheck(
            observed=list(observed), expected=expected, statistic=0.0, p_value=1.0, threshold=threshold,
            passed=True,
        )
    result = stats.chisquare(observed, expected)
    p_value = float(result.pvalue)
    return SrmCheck(
        observed=list(observed),
        expected=expected,
        statistic=float(result.statistic),
        p_value=p_value,
        threshold=threshold,
        passed=p_value >= threshold,
    )


def adjust_p_values(p_values: list[float], method: CorrectionMethod) -> list[float]:
    """Holm's step-down (family-wise error) or Benjamini–Hochberg (false discovery rate) adjusted p-values,
    in the order given."""
    if not p_values:
        return []
    values = np.asarray(p_values, dtype=float)
    if method == "bh":
        return stats.false_discovery_control(values, method="bh").tolist()
    order = np.argsort(values, kind="stable")
    count = len(values)
    stepped = np.maximum.accumulate((count - np.arange(count)) * values[order])
    adjusted = np.empty(count)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted.tolist()


def _two_sided_power(effect: float, n: float, alpha: float) -> float:
    """Power of the two-sided z-test of two groups of `n` with standardised effect `effect`."""
    critical = stats.norm.isf(alpha / 2)
    shift = abs(effect) * math.sqrt(n / 2)
    return float(stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift))


def sample_size(
    baseline: float,
    mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    kind: Kind,
    sd: float | None = None,
    relative: bool = True,
) -> int:
    """Persons per variant (equal split) for a two-sided test at `alpha` to detect `mde` (a share of the
    baseline when `relative`, else in the metric's units) with `power`. Conversions use Cohen's h
    (2 asin √p₂ - 2 asin √p₁), means Cohen's d = mde / sd; n solves the normal power equation with both
    tails (statsmodels' NormalIndPower), rounded up."""
    if mde == 0:
        raise ValueError("the minimum detectable effect must not be 0")
    target = baseline * (1 + mde) if relative else baseline + mde
    if kind == "conversion":
        if not (0 < baseline < 1 and 0 < target < 1):
            raise ValueError("conversion rates must lie strictly between 0 and 1")
        effect = 2 * math.asin(math.sqrt(target)) - 2 * math.asin(math.sqrt(baseline))
    else:
        if sd is None or sd <= 0:
            raise ValueError("a mean metric needs its standard deviation sd > 0")
        effect = (target - baseline) / sd
    upper = 2.0
    while _two_sided_power(effect, upper, alpha) < power:
        upper *= 2
    exact = optimize.brentq(lambda n: _two_sided_power(effect, n, alpha) - power, 1e-9, upper, xtol=1e-12)
    return math.ceil(exact)


def _percent(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _p_text(label: str, p_value: float) -> str:
    return f"{label} < 0.001" if p_value < 0.001 else f"{label} = {p_value:.3f}"


def _lift_text(comparison: Comparison, sequential: bool) -> str:
    """The relative lift with the fixed-horizon interval; before the planned sample size, the always-valid
    interval of the absolute lift instead (the only interval valid under early looks)."""
    level = f"{(1 - comparison.alpha) * 100:.0f}%"
    if sequential:
        interval, name = comparison.sequential_interval, f"{level} always-valid CI"
    else:
        interval, name = comparison.absolute_interval, f"{level} CI"
    if comparison.kind == "conversion":
        absolute = f"{comparison.absolute_lift * 100:+.2f} pp"
        bounds = f"{interval.low * 100:+.2f} pp to {interval.high * 100:+.2f} pp"
    else:
        absolute = f"{comparison.absolute_lift:+.4g}"
        bounds = f"{interval.low:+.4g} to {interval.high:+.4g}"
    if comparison.relative_lift is None:
        return f"{absolute} ({name} {bounds})"
    if sequential or comparison.relative_interval is None:
        return f"{_percent(comparison.relative_lift)} ({absolute}, {name} {bounds})"
    relative = comparison.relative_interval
    bounds = f"{_percent(relative.low)} to {_percent(relative.high)}"
    return f"{_percent(comparison.relative_lift)} ({name} {bounds})"


def deciding_p_value(
    comparison: Comparison,
    required_n: int | None,
    adjusted_p_value: float | None = None,
    adjusted_sequential_p_value: float | None = None,
) -> tuple[float, bool]:
    """The p-value the verdict rests on and whether both variants reached `required_n` persons: the
    fixed-horizon one then, the always-valid one before (each adjusted when given)."""
    enough = required_n is not None and min(comparison.control_n, comparison.treatment_n) >= required_n
    if enough:
        return (comparison.p_value if adjusted_p_value is None else adjusted_p_value), True
    sequential = comparison.sequential_p_value if adjusted_sequential_p_value is None else adjusted_sequential_p_value
    return sequential, False


def verdict(
    comparison: Comparison,
    *,
    control: str,
    treatment: str,
    metric: str,
    srm: SrmCheck,
    required_n: int | None,
    adjusted_p_value: float | None = None,
    adjusted_sequential_p_value: float | None = None,
) -> str:
    """One sentence a team can act on. No verdict when the SRM check fails. The fixed-horizon test decides
    once both variants reached `required_n` persons; before that only the always-valid sequential test may
    call a winner, and otherwise the sentence says "not enough data yet". The adjusted p-values (Holm or BH
    across variants and metrics, `adjust_p_values`) replace the raw ones when given."""
    if not srm.passed:
        return (
            f"No verdict: sample ratio mismatch (chi-square p = {srm.p_value:.2g} < {srm.threshold:g}); "
            "assignment or exposure logging is broken, fix it before reading these results."
        )
    smaller_n = min(comparison.control_n, comparison.treatment_n)
    p_value, enough = deciding_p_value(comparison, required_n, adjusted_p_value, adjusted_sequential_p_value)
    p_text = _p_text("p" if enough else "always-valid p", p_value)
    details = (
        f"{_lift_text(comparison, sequential=not enough)}, {p_text}, "
        f"probability to beat control {comparison.probability_to_beat * 100:.1f}%"
    )
    if p_value < comparison.alpha:
        direction = "beats" if comparison.absolute_lift > 0 else "loses to"
        data_note = "enough data" if enough else "stopped early on the always-valid test"
        return f"{treatment} {direction} {control} on {metric}: {details}; SRM check passed; {data_note}"
    if enough:
        return (
            f"No significant difference between {treatment} and {control} on {metric}: {details}; "
            "SRM check passed; enough data"
        )
    progress = f" ({smaller_n:,} of {required_n:,} persons per variant)" if required_n else ""
    return f"{treatment} vs {control} on {metric}: not enough data yet{progress}: {details}; SRM check passed"
