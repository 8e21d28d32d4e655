"""The experiments' statistics against scipy and statsmodels on the same counts (to 1e-9 where the method is
the same), against numerical integration where the method is a closed form of our own, and in seeded,
vectorised simulations: daily peeking at A/A tests, power at the designed sample size, CUPED's interval
width, and a broken split tripping the sample-ratio check."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW, ttest_ind

from nexus.analyses import experiment_stats as es
from nexus.analyses.experiment_stats import Sample, compare

TOLERANCE = 1e-9


def sample_of(values: np.ndarray, pre: np.ndarray | None = None) -> Sample:
    """A variant's sufficient statistics, as the experiment analysis sums them in ClickHouse."""
    pre = np.zeros_like(values) if pre is None else pre
    return Sample(
        len(values), float(values.sum()), float((values**2).sum()),
        float(pre.sum()), float((pre**2).sum()), float((pre * values).sum()),
    )


def conversions(n: int, converted: int) -> Sample:
    return Sample(n, converted, converted)


@pytest.mark.parametrize(
    ("control", "treatment"),
    [((10_000, 1_000), (10_000, 1_100)), ((523, 31), (611, 52)), ((40_000, 2_000), (39_000, 1_870))],
)
def test_conversions_match_statsmodels(control: tuple[int, int], treatment: tuple[int, int]) -> None:
    result = compare(conversions(*control), conversions(*treatment), kind="conversion", alpha=0.05)

    statistic, p_value = proportions_ztest([treatment[1], control[1]], [treatment[0], control[0]])
    low, high = confint_proportions_2indep(
        treatment[1], treatment[0], control[1], control[0], method="wald", compare="diff", alpha=0.05
    )
    assert result.test == "z"
    assert result.statistic == pytest.approx(statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(p_value, abs=TOLERANCE)
    assert result.absolute_interval.low == pytest.approx(low, abs=TOLERANCE)
    assert result.absolute_interval.high == pytest.approx(high, abs=TOLERANCE)
    # The delta method written the other way: se(r) = (p_t / p_c) sqrt(cv_t² + cv_c²), cv = se(p) / p.
    p_c, p_t = control[1] / control[0], treatment[1] / treatment[0]
    cv_c = math.sqrt(p_c * (1 - p_c) / control[0]) / p_c
    cv_t = math.sqrt(p_t * (1 - p_t) / treatment[0]) / p_t
    half_width = stats.norm.ppf(0.975) * (p_t / p_c) * math.hypot(cv_c, cv_t)
    assert result.relative_lift == pytest.approx(p_t / p_c - 1, abs=TOLERANCE)
    assert result.relative_interval is not None
    assert result.relative_interval.low == pytest.approx(p_t / p_c - 1 - half_width, abs=TOLERANCE)
    assert result.relative_interval.high == pytest.approx(p_t / p_c - 1 + half_width, abs=TOLERANCE)


def test_means_match_welch_in_statsmodels() -> None:
    # Given revenue per person, skewed, with unequal variances and sizes
    generator = np.random.default_rng(7)
    control = generator.gamma(0.5, 20.0, size=3_000)
    treatment = generator.gamma(0.6, 22.0, size=2_400)

    result = compare(sample_of(control), sample_of(treatment), kind="mean", alpha=0.1)

    statistic, p_value, degrees = ttest_ind(treatment, control, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(alpha=0.1, usevar="unequal")
    assert result.test == "welch_t"
    assert result.statistic == pytest.approx(statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(p_value, abs=TOLERANCE)
    assert result.degrees_of_freedom == pytest.approx(degrees, rel=TOLERANCE)
    assert result.absolute_interval.low == pytest.approx(low, abs=TOLERANCE)
    assert result.absolute_interval.high == pytest.approx(high, abs=TOLERANCE)
    assert result.control_mean == pytest.approx(control.mean(), abs=TOLERANCE)
    assert result.treatment_mean == pytest.approx(treatment.mean(), abs=TOLERANCE)
    # The relative lift's delta-method interval, as the ratio times the root of the summed squared CVs
    ratio = treatment.mean() / control.mean()
    cv_c = control.std(ddof=1) / math.sqrt(3_000) / control.mean()
    cv_t = treatment.std(ddof=1) / math.sqrt(2_400) / treatment.mean()
    half_width = stats.norm.ppf(0.95) * ratio * math.hypot(cv_c, cv_t)
    assert result.relative_interval is not None
    assert result.relative_interval.low == pytest.approx(ratio - 1 - half_width, abs=TOLERANCE)
    assert result.relative_interval.high == pytest.approx(ratio - 1 + half_width, abs=TOLERANCE)


def test_beta_binomial_probability_and_loss_against_integration() -> None:
    # Given uniform priors: posteriors Beta(1 + conversions, 1 + failures)
    control_n, control_k, treatment_n, treatment_k = 4_000, 410, 4_100, 468
    result = compare(conversions(control_n, control_k), conversions(treatment_n, treatment_k), kind="conversion")
    posterior_c = stats.beta(1 + control_k, 1 + control_n - control_k)
    posterior_t = stats.beta(1 + treatment_k, 1 + treatment_n - treatment_k)

    # P(p_t > p_c) = ∫ f_c(s) (1 - F_t(s)) ds; E[max(p_c - p_t, 0)] = ∫ F_t(s) (1 - F_c(s)) ds
    breaks = [posterior_c.ppf(q) for q in (1e-12, 0.5, 1 - 1e-12)] + [posterior_t.ppf(q) for q in (1e-12, 0.5)]
    support = (min(breaks), max(posterior_c.ppf(1 - 1e-12), posterior_t.ppf(1 - 1e-12)))
    beat, _ = integrate.quad(lambda s: posterior_c.pdf(s) * posterior_t.sf(s), *support, points=breaks,
                             epsabs=1e-13, epsrel=1e-13, limit=500)
    loss, _ = integrate.quad(lambda s: posterior_t.cdf(s) * posterior_c.sf(s), *support, points=breaks,
                             epsabs=1e-14, epsrel=1e-12, limit=500)
    assert result.bayesian_method == "beta_binomial_exact"
    assert result.probability_to_beat == pytest.approx(beat, abs=TOLERANCE)
    assert result.expected_loss == pytest.approx(loss, abs=TOLERANCE, rel=1e-6)
    assert 0.9 < result.probability_to_beat < 0.99


def test_beta_binomial_is_symmetric_and_sums_over_either_alpha() -> None:
    # Swapping the arms turns P(t > c) into 1 - P(t > c); the closed form then sums over the other alpha.
    forward = compare(conversions(900, 40), conversions(950, 300), kind="conversion")
    backward = compare(conversions(950, 300), conversions(900, 40), kind="conversion")
    assert forward.probability_to_beat + backward.probability_to_beat == pytest.approx(1, abs=TOLERANCE)


def test_beta_binomial_closed_form_and_quadrature_agree_and_large_counts_use_quadrature() -> None:
    for n, converted in [(900, 40), (100_000, 10_000)]:
        control, treatment = conversions(n, converted), conversions(n, converted + 60)
        closed = es.beta_binomial_closed_form(control, treatment)
        assert es.beta_binomial_quadrature(control, treatment) == pytest.approx(closed, abs=TOLERANCE)
    # Given more conversions than the closed form sums quickly
    control, treatment = conversions(2_000_000, 200_000), conversions(2_000_000, 200_600)
    result = compare(control, treatment, kind="conversion")
    assert (result.probability_to_beat, result.expected_loss) == es.beta_binomial_quadrature(control, treatment)
    closed = es.beta_binomial_closed_form(control, treatment)
    assert (result.probability_to_beat, result.expected_loss) == pytest.approx(closed, abs=1e-8)
    # The normal approximation is close at this size, not equal: the posteriors are still slightly skewed
    error = math.sqrt(0.1 * 0.9 / 2_000_000 + 0.1003 * 0.8997 / 2_000_000)
    assert result.probability_to_beat == pytest.approx(stats.norm.cdf(0.0003 / error), abs=1e-3)


def test_normal_posterior_for_means() -> None:
    generator = np.random.default_rng(3)
    control, treatment = generator.normal(10, 3, 800), generator.normal(10.3, 3.5, 820)
    result = compare(sample_of(control), sample_of(treatment), kind="mean")

    difference = treatment.mean() - control.mean()
    error = math.sqrt(control.var(ddof=1) / 800 + treatment.var(ddof=1) / 820)
    posterior = stats.norm(difference, error)
    loss, _ = integrate.quad(lambda x: -x * posterior.pdf(x), -np.inf, 0, epsabs=1e-14)
    assert result.bayesian_method == "normal_approximation"
    assert result.probability_to_beat == pytest.approx(posterior.sf(0), abs=TOLERANCE)
    assert result.expected_loss == pytest.approx(loss, abs=TOLERANCE)


def test_sequential_p_value_is_the_mixture_likelihood_ratio_and_the_interval_the_confidence_sequence() -> None:
    # Given equal arms, the interval is Waudby-Smith et al.'s normal-mixture boundary written with n and σ̂
    n, alpha, planned = 5_000, 0.05, 20_000
    generator = np.random.default_rng(5)
    control, treatment = generator.normal(1, 2, n), generator.normal(1.08, 2.2, n)
    result = compare(sample_of(control), sample_of(treatment), kind="mean", alpha=alpha, planned_n=planned)

    unit_variance = control.var(ddof=1) + treatment.var(ddof=1)
    rho2 = (2 * math.log(1 / alpha) + math.log(1 + 2 * math.log(1 / alpha))) / planned
    half_width = math.sqrt(unit_variance) * math.sqrt(
        2 * (n * rho2 + 1) / (n**2 * rho2) * math.log(math.sqrt(n * rho2 + 1) / alpha)
    )
    difference = treatment.mean() - control.mean()
    assert result.sequential_interval.low == pytest.approx(difference - half_width, abs=TOLERANCE)
    assert result.sequential_interval.high == pytest.approx(difference + half_width, abs=TOLERANCE)
    # Λ = the N(0, V + τ²) marginal of the mixture over the N(0, V) null, at the observed difference
    variance, mixing = unit_variance / n, rho2 * unit_variance
    ratio = stats.norm.pdf(difference, scale=math.sqrt(variance + mixing)) / stats.norm.pdf(
        difference, scale=math.sqrt(variance)
    )
    assert result.sequential_p_value == pytest.approx(min(1.0, 1 / ratio), abs=TOLERANCE)
    # The p-value and the interval are one test: p < alpha exactly when 0 is outside the interval
    assert (result.sequential_p_value < alpha) == (result.sequential_interval.low > 0)
    assert result.sequential_interval.high - result.sequential_interval.low > (
        result.absolute_interval.high - result.absolute_interval.low
    )


def test_cuped_matches_welch_on_the_adjusted_values() -> None:
    # Given a pre-period value correlated with the metric, and an effect of 0.5
    generator = np.random.default_rng(11)
    pre_c, pre_t = generator.normal(20, 5, 2_000), generator.normal(20, 5, 2_100)
    control = 0.8 * pre_c + generator.normal(0, 3, 2_000)
    treatment = 0.8 * pre_t + 0.5 + generator.normal(0, 3, 2_100)

    result = compare(sample_of(control, pre_c), sample_of(treatment, pre_t), kind="mean", cuped=True)

    # theta from the within-variant centred values; y - theta (x - grand mean of x), person by person
    centred_pre = np.concatenate([pre_c - pre_c.mean(), pre_t - pre_t.mean()])
    centred_y = np.concatenate([control - control.mean(), treatment - treatment.mean()])
    theta = (centred_pre @ centred_y) / (centred_pre @ centred_pre)
    grand = np.concatenate([pre_c, pre_t]).mean()
    adjusted_c, adjusted_t = control - theta * (pre_c - grand), treatment - theta * (pre_t - grand)
    statistic, p_value, degrees = ttest_ind(adjusted_t, adjusted_c, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(adjusted_t), DescrStatsW(adjusted_c)).tconfint_diff(usevar="unequal")
    plain = adjusted_c.var(ddof=1) / 2_000 + adjusted_t.var(ddof=1) / 2_100
    unadjusted = control.var(ddof=1) / 2_000 + treatment.var(ddof=1) / 2_100
    assert result.cuped_theta == pytest.approx(theta, abs=TOLERANCE)
    assert result.control_mean == pytest.approx(adjusted_c.mean(), abs=TOLERANCE)
    assert result.treatment_mean == pytest.approx(adjusted_t.mean(), abs=TOLERANCE)
    assert result.statistic == pytest.approx(statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(p_value, abs=TOLERANCE)
    assert result.degrees_of_freedom == pytest.approx(degrees, rel=TOLERANCE)
    assert result.absolute_interval.low == pytest.approx(low, abs=TOLERANCE)
    assert result.absolute_interval.high == pytest.approx(high, abs=TOLERANCE)
    assert result.variance_reduction == pytest.approx(1 - plain / unadjusted, abs=TOLERANCE)


def test_cuped_narrows_the_interval_by_the_expected_factor() -> None:
    # Given y and its pre-period x with correlation rho = 0.7 in both arms, 20,000 persons each
    rho, n = 0.7, 20_000
    generator = np.random.default_rng(13)
    covariance = [[1.0, rho], [rho, 1.0]]
    pre_c, y_c = generator.multivariate_normal([0, 0], covariance, n).T
    pre_t, y_t = generator.multivariate_normal([0, 0.05], covariance, n).T

    plain = compare(sample_of(y_c, pre_c), sample_of(y_t, pre_t), kind="mean")
    adjusted = compare(sample_of(y_c, pre_c), sample_of(y_t, pre_t), kind="mean", cuped=True)

    def width(result: es.Comparison) -> float:
        return result.absolute_interval.high - result.absolute_interval.low

    # Then the width shrinks by sqrt(1 - rho²) = 0.714 and rho² = 49% of the variance is gone
    # (the sample correlation of 40,000 pairs is within ~0.005 of rho)
    assert width(adjusted) / width(plain) == pytest.approx(math.sqrt(1 - rho**2), abs=0.01)
    assert adjusted.variance_reduction == pytest.approx(rho**2, abs=0.01)
    assert plain.cuped_theta is None and plain.variance_reduction is None


def test_cuped_on_conversions_uses_a_normal_test_on_the_adjusted_rates() -> None:
    # Given buyers who bought before buy again more often
    generator = np.random.default_rng(17)
    pre_c, pre_t = generator.poisson(1, 5_000).astype(float), generator.poisson(1, 5_000).astype(float)
    converted_c = (generator.random(5_000) < 0.03 + 0.15 * np.minimum(pre_c, 3)).astype(float)
    converted_t = (generator.random(5_000) < 0.04 + 0.15 * np.minimum(pre_t, 3)).astype(float)

    result = compare(sample_of(converted_c, pre_c), sample_of(converted_t, pre_t), kind="conversion", cuped=True)

    theta = result.cuped_theta
    assert theta is not None
    grand = np.concatenate([pre_c, pre_t]).mean()
    adjusted_c, adjusted_t = converted_c - theta * (pre_c - grand), converted_t - theta * (pre_t - grand)
    error = math.sqrt(adjusted_c.var(ddof=1) / 5_000 + adjusted_t.var(ddof=1) / 5_000)
    statistic = (adjusted_t.mean() - adjusted_c.mean()) / error
    unadjusted = converted_c.var(ddof=1) / 5_000 + converted_t.var(ddof=1) / 5_000
    assert result.test == "z" and result.bayesian_method == "normal_approximation"
    assert result.statistic == pytest.approx(statistic, abs=TOLERANCE)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(statistic)), abs=TOLERANCE)
    assert result.probability_to_beat == pytest.approx(stats.norm.cdf(statistic), abs=TOLERANCE)
    assert result.variance_reduction == pytest.approx(1 - error**2 / unadjusted, abs=TOLERANCE)
    assert result.variance_reduction > 0.1


def test_srm_check_matches_scipy_and_trips_on_a_52_48_split() -> None:
    # Given a 50/50 design and 20,000 exposed persons split 52/48
    broken = es.srm_check([10_400, 9_600], [0.5, 0.5])
    statistic, p_value = stats.chisquare([10_400, 9_600], [10_000, 10_000])
    assert broken.statistic == pytest.approx(statistic, abs=TOLERANCE)
    assert broken.p_value == pytest.approx(p_value, abs=TOLERANCE)
    assert broken.statistic == pytest.approx(2 * 400**2 / 10_000, abs=TOLERANCE)
    assert not broken.passed
    # A fair split's chance imbalance passes, and weights need not sum to 1
    assert es.srm_check([10_060, 9_940], [1, 1]).passed
    three = es.srm_check([5_010, 2_490, 2_500], [2, 1, 1])
    assert three.expected == pytest.approx([5_000, 2_500, 2_500], abs=TOLERANCE)
    assert three.p_value == pytest.approx(stats.chi2.sf(0.02 + 0.04 + 0, 2), abs=TOLERANCE)
    assert three.passed


def test_a_52_48_split_gets_no_verdict() -> None:
    result = compare(conversions(10_400, 1_250), conversions(9_600, 960), kind="conversion")
    sentence = es.verdict(result, control="A", treatment="B", metric="purchase",
                          srm=es.srm_check([10_400, 9_600], [1, 1]), required_n=5_000)
    assert sentence.startswith("No verdict: sample ratio mismatch")
    assert "beats" not in sentence and "loses" not in sentence


@pytest.mark.parametrize(("method", "reference"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_adjusted_p_values_match_statsmodels(method: es.CorrectionMethod, reference: str) -> None:
    p_values = [0.001, 0.04, 0.03, 0.2, 0.0104, 0.04, 0.9]
    _, expected, _, _ = multipletests(p_values, method=reference)
    assert es.adjust_p_values(p_values, method) == pytest.approx(expected.tolist(), abs=TOLERANCE)
    assert es.adjust_p_values([], method) == []


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power", "relative"),
    [(0.1, 0.1, 0.05, 0.8, True), (0.03, 0.005, 0.05, 0.9, False), (0.5, -0.04, 0.01, 0.8, True)],
)
def test_conversion_sample_size_matches_statsmodels(
    baseline: float, mde: float, alpha: float, power: float, relative: bool
) -> None:
    target = baseline * (1 + mde) if relative else baseline + mde
    effect = proportion_effectsize(target, baseline)
    expected = NormalIndPower().solve_power(effect_size=abs(effect), alpha=alpha, power=power, ratio=1.0)
    size = es.sample_size(baseline, mde, alpha, power, kind="conversion", relative=relative)
    assert size == math.ceil(expected)


def test_mean_sample_size_matches_statsmodels() -> None:
    expected = NormalIndPower().solve_power(effect_size=2.0 / 40.0, alpha=0.05, power=0.8, ratio=1.0)
    assert es.sample_size(20.0, 0.1, 0.05, 0.8, kind="mean", sd=40.0) == math.ceil(expected)
    assert es.sample_size(20.0, 2.0, 0.05, 0.8, kind="mean", sd=40.0, relative=False) == math.ceil(expected)
    with pytest.raises(ValueError, match="sd"):
        es.sample_size(20.0, 0.1, kind="mean")


def daily_conversions(
    generator: np.random.Generator, experiments: int, days: int, per_day: int, rates: tuple[float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative conversions of control and treatment, shape (experiments, days), per_day persons an arm."""
    daily = generator.binomial(per_day, rates, size=(experiments, days, 2))
    cumulative = daily.cumsum(axis=1)
    return cumulative[..., 0], cumulative[..., 1]


def pooled_z_p_values(converted_c: np.ndarray, converted_t: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The fixed-horizon two-proportion z-test (equal arms of n), element-wise."""
    pooled = (converted_c + converted_t) / (2 * n)
    error = np.sqrt(pooled * (1 - pooled) * 2 / n)
    return 2 * stats.norm.sf(np.abs((converted_t - converted_c) / n) / error)


def sequential_p_values(converted_c: np.ndarray, converted_t: np.ndarray, n: np.ndarray, planned: int) -> np.ndarray:
    rate_c, rate_t = converted_c / n, converted_t / n
    unit_variance = rate_c * (1 - rate_c) + rate_t * (1 - rate_t)
    mixing = es.mixing_variance(1.0, 0.05, planned) * unit_variance
    return es.sequential_p_value(rate_t - rate_c, unit_variance / n, mixing)


def test_daily_peeking_at_a_a_tests_inflates_the_naive_test_but_not_the_sequential_one() -> None:
    # Given 1,000 A/A experiments at a 10% rate, 200 persons an arm a day, looked at every day for 30 days
    experiments, days, per_day, alpha = 1_000, 30, 200, 0.05
    generator = np.random.default_rng(2024)
    converted_c, converted_t = daily_conversions(generator, experiments, days, per_day, (0.1, 0.1))
    n = per_day * np.arange(1, days + 1)[np.newaxis, :]

    naive = pooled_z_p_values(converted_c, converted_t, n)
    sequential = sequential_p_values(converted_c, converted_t, n, planned=per_day * days)

    # The element-wise kernels are compare()'s own numbers
    for experiment, day in [(0, 0), (17, 9), (999, 29)]:
        single = compare(conversions(int(n[0, day]), int(converted_c[experiment, day])),
                         conversions(int(n[0, day]), int(converted_t[experiment, day])),
                         kind="conversion", planned_n=per_day * days)
        assert single.p_value == pytest.approx(naive[experiment, day], abs=TOLERANCE)
        assert single.sequential_p_value == pytest.approx(sequential[experiment, day], abs=TOLERANCE)
    # Then stopping at the first daily look with p < alpha: the naive test "finds" an effect in far more
    # than 5% of experiments without one, the always-valid test in at most 5% (one look: ~5% for both)
    naive_rate = float((naive.min(axis=1) < alpha).mean())
    sequential_rate = float((es.running_minimum(sequential)[:, -1] < alpha).mean())
    last_look_rate = float((naive[:, -1] < alpha).mean())
    print(f"A/A false positives with daily looks: naive {naive_rate:.3f}, sequential {sequential_rate:.3f}; "
          f"naive at the last look only {last_look_rate:.3f}")
    assert naive_rate > 0.15
    assert sequential_rate <= alpha
    assert abs(last_look_rate - alpha) < 3 * math.sqrt(alpha * (1 - alpha) / experiments)


def test_daily_peeking_at_a_a_tests_of_a_skewed_mean_keeps_the_sequential_test_valid() -> None:
    # Given revenue per person (90% spend nothing, the rest lognormal), 60 persons an arm a day, 30 days
    experiments, days, per_day, alpha = 1_000, 30, 60, 0.05
    generator = np.random.default_rng(8)
    shape = (experiments, days, 2, per_day)
    spent = np.where(generator.random(shape) < 0.1, generator.lognormal(3, 1, shape), 0.0)
    sums, squares = spent.sum(axis=3).cumsum(axis=1), (spent**2).sum(axis=3).cumsum(axis=1)
    n = per_day * np.arange(1, days + 1)[np.newaxis, :, np.newaxis]
    means, variances = sums / n, (squares - sums**2 / n) / (n - 1)
    n = n[..., 0]
    difference = means[..., 1] - means[..., 0]
    of_means = variances / n[..., np.newaxis]
    variance = of_means.sum(axis=2)
    degrees = variance**2 / ((of_means**2).sum(axis=2) / (n - 1))
    naive = 2 * stats.t.sf(np.abs(difference) / np.sqrt(variance), degrees)
    mixing = es.mixing_variance(1.0, alpha, per_day * days) * variances.sum(axis=2)
    sequential = es.sequential_p_value(difference, variance, mixing)

    for experiment, day in [(3, 0), (500, 29)]:
        single = compare(Sample(int(n[0, day]), sums[experiment, day, 0], squares[experiment, day, 0]),
                         Sample(int(n[0, day]), sums[experiment, day, 1], squares[experiment, day, 1]),
                         kind="mean", planned_n=per_day * days)
        assert single.p_value == pytest.approx(naive[experiment, day], abs=TOLERANCE)
        assert single.sequential_p_value == pytest.approx(sequential[experiment, day], abs=TOLERANCE)
    naive_rate = float((naive.min(axis=1) < alpha).mean())
    sequential_rate = float((sequential.min(axis=1) < alpha).mean())
    print(f"A/A skewed revenue, daily looks: Welch {naive_rate:.3f}, sequential {sequential_rate:.3f}")
    assert naive_rate > 0.15
    assert sequential_rate <= alpha


def test_power_at_the_designed_sample_size_matches_the_design() -> None:
    # Given a design of baseline 10%, +10% relative, alpha 5%, power 80% and 2,000 experiments run to it
    n = es.sample_size(0.1, 0.1, 0.05, 0.8, kind="conversion")
    experiments = 2_000
    generator = np.random.default_rng(99)
    converted_c = generator.binomial(n, 0.1, experiments)
    converted_t = generator.binomial(n, 0.11, experiments)

    p_values = pooled_z_p_values(converted_c, converted_t, np.full(experiments, n))

    single = compare(conversions(n, int(converted_c[0])), conversions(n, int(converted_t[0])), kind="conversion")
    assert single.p_value == pytest.approx(p_values[0], abs=TOLERANCE)
    power = float((p_values < 0.05).mean())
    assert abs(power - 0.8) < 3 * math.sqrt(0.8 * 0.2 / experiments)

    # The price of looking every day: the always-valid test, peeked at daily over 30 days up to the same n,
    # has stopped about half of them by then (the verdict waits for the fixed-horizon test until n is in)
    per_day = math.ceil(n / 30)
    converted_c, converted_t = daily_conversions(generator, experiments, 30, per_day, (0.1, 0.11))
    looks = per_day * np.arange(1, 31)[np.newaxis, :]
    stopped = float((sequential_p_values(converted_c, converted_t, looks, planned=n).min(axis=1) < 0.05).mean())
    print(f"designed n {n} per variant: power {power:.3f} (designed 0.800); always-valid, daily looks: {stopped:.3f}")
    assert 0.4 < stopped < power - 0.2


def test_verdict_sentences() -> None:
    fair = es.srm_check([20_000, 20_000], [1, 1])
    winner = compare(conversions(20_000, 2_000), conversions(20_000, 2_250), kind="conversion", planned_n=15_000)
    sentence = es.verdict(winner, control="A", treatment="B", metric="purchase", srm=fair, required_n=15_000)
    relative = winner.relative_interval
    assert relative is not None
    assert sentence == (
        f"B beats A on purchase: +12.5% (95% CI +{relative.low * 100:.1f}% to +{relative.high * 100:.1f}%), "
        f"p < 0.001, probability to beat control {winner.probability_to_beat * 100:.1f}%; "
        "SRM check passed; enough data"
    )
    # Below the planned size the always-valid test decides: here it does not yet
    early = compare(conversions(3_000, 300), conversions(3_000, 330), kind="conversion", planned_n=15_000)
    waiting = es.verdict(early, control="A", treatment="B", metric="purchase", srm=fair, required_n=15_000)
    assert "not enough data yet (3,000 of 15,000 persons per variant)" in waiting
    assert "always-valid p = " in waiting and "beats" not in waiting
    # A treatment that hurts loses; an adjusted p-value above alpha turns a win into no difference
    loser = compare(conversions(20_000, 2_250), conversions(20_000, 2_000), kind="conversion")
    assert es.verdict(loser, control="A", treatment="B", metric="m", srm=fair, required_n=100).startswith(
        "B loses to A on m: -11.1%"
    )
    adjusted = es.verdict(winner, control="A", treatment="B", metric="m", srm=fair, required_n=100,
                          adjusted_p_value=0.2)
    assert adjusted.startswith("No significant difference between B and A on m") and "p = 0.200" in adjusted
    # A strong effect stops early on the always-valid test
    strong = compare(conversions(3_000, 300), conversions(3_000, 450), kind="conversion", planned_n=15_000)
    stopped = es.verdict(strong, control="A", treatment="B", metric="m", srm=fair, required_n=15_000)
    assert stopped.startswith("B beats A on m: +50.0% (+5.00 pp, 95% always-valid CI +")
    assert stopped.endswith("stopped early on the always-valid test")


def test_without_any_spread_a_difference_is_certain_and_none_is_none() -> None:
    # Given every person of a variant with the same value
    differ = compare(Sample(10, 50, 250), Sample(10, 60, 360), kind="mean")
    assert (differ.statistic, differ.p_value, differ.sequential_p_value) == (None, 0.0, 0.0)  # no infinite t
    assert b'"statistic":null' in msgspec.json.encode(differ)
    assert es.verdict(differ, control="A", treatment="B", metric="m", srm=es.srm_check([10, 10], [1, 1]),
                      required_n=10).startswith("B beats A on m: +20.0%")
    same = compare(conversions(100, 0), conversions(100, 0), kind="conversion")
    assert (same.statistic, same.p_value, same.sequential_p_value, same.relative_lift) == (0.0, 1.0, 1.0, None)
    assert same.probability_to_beat == pytest.approx(0.5, abs=TOLERANCE)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        compare(conversions(1, 0), conversions(10, 1), kind="conversion")
    with pytest.raises(ValueError, match="between 0 and n"):
        compare(conversions(10, 11), conversions(10, 1), kind="conversion")
    with pytest.raises(ValueError, match="alpha"):
        compare(conversions(10, 1), conversions(10, 1), kind="conversion", alpha=1.5)
    with pytest.raises(ValueError, match="one entry per variant"):
        es.srm_check([10, 10], [1.0])
