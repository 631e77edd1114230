"""CLV models against their papers' published numbers, an independent implementation, and simulation.

Published data: /work/shared/data (cdnow/, donations/; see its README). The papers:
sBG - Fader & Hardie 2007; BG/NBD - Fader, Hardie & Lee 2005; Gamma-Gamma - Fader, Hardie & Lee 2005 /
Hardie note 025; BG/BB - Fader, Hardie & Shang 2010.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from journeymap.insights import BetaGeometricBetaBinomial, BetaGeometricNBD, GammaGamma, ShiftedBetaGeometric

# Fader & Hardie (2007), Table 1, years 0-7 (the calibration span of the paper's fits).
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]


def _read(path, names):
    data = np.genfromtxt(path, delimiter=",", names=True)
    return [data[n] for n in names]


@pytest.fixture(scope="module")
def cdnow(shared_data):
    """CDNOW 1/10 sample, 39-week calibration: x, t_x, T (weeks), zbar (mean repeat spend, $)."""
    x, t_x, T = _read(shared_data / "cdnow" / "cdnow_customers_summary.csv", ["frequency", "recency", "T"])
    x2, zbar = _read(shared_data / "cdnow" / "cdnow_customers_summary_with_transactions.csv", ["x", "zbar"])
    assert len(x) == 2357 and np.array_equal(x, x2)  # same customers, same order
    return {"x": x, "t_x": t_x, "T": T, "zbar": zbar}


@pytest.fixture(scope="module")
def bgnbd(cdnow):
    return BetaGeometricNBD().fit(cdnow["x"], cdnow["t_x"], cdnow["T"])


@pytest.fixture(scope="module")
def gamma_gamma(cdnow):
    return GammaGamma().fit(cdnow["x"], cdnow["zbar"])


@pytest.fixture(scope="module")
def donations(shared_data):
    x, t_x, n, w = _read(shared_data / "donations" / "donations.csv", ["frequency", "recency", "periods", "weights"])
    return x, t_x, n, w


# --- lazy package import ------------------------------------------------------------------------------

def test_insights_package_does_not_import_scipy_eagerly():
    # scipy may legitimately arrive with the parent package; what must not happen is insights pulling it in
    code = ("import sys, journeymap; pre = 'scipy' in sys.modules; import journeymap.insights as i;"
            "assert pre or 'scipy' not in sys.modules, 'eager scipy';"
            "clv = ['journeymap.insights.value'] + ['journeymap.insights.value.' + m for m in ('sbg', 'bgnbd', 'gamma_gamma', 'bgbb')];"
            "assert not any(m in sys.modules for m in clv), 'eager CLV import';"
            "i.ShiftedBetaGeometric; assert 'journeymap.insights.value.sbg' in sys.modules and 'scipy' in sys.modules;"
            "print(sorted(i.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ShiftedBetaGeometric" in out.stdout
    import journeymap.insights as insights

    with pytest.raises(AttributeError):
        insights.NoSuchModel  # noqa: B018


# --- sBG ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("counts, alpha, beta", [(HIGH_END, 0.668, 3.806), (REGULAR, 0.704, 1.182)])
def test_sbg_reproduces_fader_hardie_2007(counts, alpha, beta):
    m = ShiftedBetaGeometric().fit(counts)
    assert m.alpha_ == pytest.approx(alpha, abs=6e-4)
    assert m.beta_ == pytest.approx(beta, abs=6e-4)
    assert m.log_likelihood_ < 0
    # alpha < 1: the mean lifetime diverges (heavy right tail of loyal customers)
    assert m.expected_lifetime() == math.inf


@pytest.mark.parametrize("alpha, beta", [(0.7, 1.2), (0.67, 3.8), (1.5, 4.0)])
def test_sbg_recovers_simulated_parameters(alpha, beta):
    rng = np.random.default_rng(20070101)
    theta = rng.beta(alpha, beta, size=20_000)
    lifetime = rng.geometric(theta)  # periods active, >= 1: churn at the end of period `lifetime`
    counts = (lifetime[None, :] > np.arange(13)[:, None]).sum(axis=1)  # alive at end of periods 0..12
    m = ShiftedBetaGeometric().fit(counts)
    assert m.alpha_ == pytest.approx(alpha, rel=0.10)
    assert m.beta_ == pytest.approx(beta, rel=0.10)


@pytest.mark.parametrize("n", [10_000, 100_000])
def test_sbg_of_a_population_with_one_churn_probability_is_the_geometric_model(n):
    """Alive counts that follow one churn probability (3% a period), up to rounding: the likelihood has no
    finite maximum beyond rounding's bumps (it rises towards alpha, beta -> infinity at alpha / (alpha + beta) =
    0.03), and the search may run out of evaluations on that ridge (the 600-account demo's clv did). Either way
    the fit is the geometric model, fitted by its closed form: its churn probability, survival and likelihood."""
    counts = np.round(n * 0.97 ** np.arange(13)).astype(int)
    m = ShiftedBetaGeometric().fit(counts)
    churns, at_risk = counts[0] - counts[-1], counts[:-1].sum()  # each unit-period at risk churns or not
    p = churns / at_risk
    assert m.alpha_ / (m.alpha_ + m.beta_) == pytest.approx(p, rel=1e-3)
    assert m.alpha_ + m.beta_ > 1e3  # theta's spread is under 1% of its mean
    assert m.survival(np.arange(13)) == pytest.approx((1 - p) ** np.arange(13), rel=1e-3)
    assert m.log_likelihood_ == pytest.approx(churns * math.log(p) + (at_risk - churns) * math.log(1 - p), abs=1e-2)


def test_sbg_on_the_demos_cohorts_is_fitted_at_the_cap():
    """The 600-account demo's (seed 3) paying cohorts: their churn shows no heterogeneity, and an unbounded search
    ran out of evaluations on the ridge. The fit settles at the cap with the geometric model's likelihood, which
    no (alpha, beta) beats by more than betaln's rounding."""
    from journeymap.insights.value import sbg

    cohorts = [[3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2], [2] * 14 + [1], [10, 10, 10, 9, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6],
               [4] * 8 + [3] * 5, [6, 6, 6, 6, 6, 5, 5, 5, 5, 4, 3, 3], [12, 11, 11, 11, 11, 11, 10, 10, 10, 9, 9],
               [9] * 7 + [8] * 3, [11, 11] + [10] * 7, [6] * 5 + [5] * 3, [6, 6, 5, 5, 5, 4, 4], [12] + [11] * 5,
               [3] * 5, [8] * 4, [10] * 3, [4, 4], [9]]
    m = ShiftedBetaGeometric().fit_cohorts(cohorts)
    assert m.alpha_ + m.beta_ == pytest.approx(sbg.HOMOGENEOUS, rel=1e-6)
    counts = [np.array(c) for c in cohorts]
    churns = sum(int(c[0] - c[-1]) for c in counts)
    at_risk = sum(int(c[:-1].sum()) for c in counts)
    p = churns / at_risk
    assert m.alpha_ / (m.alpha_ + m.beta_) == pytest.approx(p, rel=1e-3)
    assert m.log_likelihood_ == pytest.approx(churns * math.log(p) + (at_risk - churns) * math.log(1 - p), abs=1e-3)


def _sbg(alpha: float, beta: float) -> ShiftedBetaGeometric:
    m = ShiftedBetaGeometric()
    m.alpha_, m.beta_ = alpha, beta
    return m


@settings(max_examples=50, deadline=None)
@given(st.floats(0.05, 20), st.floats(0.05, 20))
def test_sbg_survival_retention_identities(alpha, beta):
    m = _sbg(alpha, beta)
    t = np.arange(1, 30)
    s = m.survival(np.arange(0, 30))
    assert s[0] == pytest.approx(1.0)
    np.testing.assert_allclose(s[1:] / s[:-1], m.retention_rate(t), rtol=1e-9)
    np.testing.assert_allclose(s[:-1] - s[1:], m.churn_probability(t), rtol=1e-7, atol=1e-15)
    assert np.all(np.diff(m.retention_rate(t)) >= 0)  # heterogeneity: retention rises with tenure


def test_sbg_expected_lifetime_matches_sum_of_survival():
    m = _sbg(2.5, 4.0)
    assert m.expected_lifetime() == pytest.approx((2.5 + 4.0 - 1) / 1.5)
    assert m.expected_lifetime() == pytest.approx(m.survival(np.arange(0, 200_000)).sum(), rel=1e-3)
    # survivors of 3 periods: sum over k >= 0 of S(3 + k) / S(3)
    assert m.expected_remaining_lifetime(3) == pytest.approx(m.survival(np.arange(3, 200_000)).sum() / m.survival(3), rel=1e-3)
    # undiscounted DERL = remaining lifetime minus the period already paid for
    assert float(m.derl(0.0, 3)) == pytest.approx(m.expected_remaining_lifetime(3) - 1)


@pytest.mark.parametrize("alpha, beta, d, m", [(0.668, 3.806, 0.10, 0), (0.704, 1.182, 0.10, 4), (2.0, 1.0, 0.25, 2),
                                                (0.3, 0.5, 0.05, 10)])
def test_sbg_clv_closed_form_matches_truncated_sum(alpha, beta, d, m):
    model = _sbg(alpha, beta)
    k = np.arange(0, 5_000)
    discount = np.exp(-k * np.log1p(d))  # the next renewal's payment is undiscounted
    brute = np.sum(model.survival(m + 1 + k) / model.survival(m) * discount)
    assert float(model.derl(d, m)) == pytest.approx(brute, rel=1e-9)
    assert float(model.clv(50.0, margin=0.8, discount_rate=d, periods_survived=m)) == pytest.approx(40.0 * brute, rel=1e-9)


def test_sbg_clv_worked_example_high_end():
    m = ShiftedBetaGeometric().fit(HIGH_END)
    # vectorised over tenure; residual value grows with tenure because survivors are the loyal ones
    derl = m.derl(0.10, np.array([0, 1, 4, 7]))
    assert np.all(np.diff(derl) > 0)
    assert float(m.clv(100.0, discount_rate=0.10)) == pytest.approx(100 * float(derl[0]))


@pytest.mark.parametrize("counts, match", [
    ([1000, 1100, 900], "non-increasing"),
    ([0, 0, 0], "positive cohort size"),
    ([-5, -6], "positive cohort size"),
    ([1000], "at least two"),
    ([[1000, 900]], "at least two"),
    ([1000, 900.5], "whole numbers"),
    ([1000, np.nan], "whole numbers"),
    ([1000, 900, -1], "negative"),
    ([100, 100, 100], "no churn"),
])
def test_sbg_rejects_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match) as err:
        ShiftedBetaGeometric().fit(counts)
    assert "alive_counts" in str(err.value)


def test_sbg_rejects_bad_arguments():
    m = ShiftedBetaGeometric().fit(HIGH_END)
    with pytest.raises(ValueError, match="discount_rate"):
        m.clv(10.0, discount_rate=-0.1)
    with pytest.raises(ValueError, match="periods_survived"):
        m.clv(10.0, periods_survived=-1)
    with pytest.raises(ValueError, match="t must be >= 1"):
        m.retention_rate(0)
    with pytest.raises(ValueError, match="value_per_period"):
        m.clv(np.inf)
    with pytest.raises(RuntimeError, match="not fitted"):
        ShiftedBetaGeometric().survival(1)


# --- BG/NBD -------------------------------------------------------------------------------------------

def test_bgnbd_reproduces_fader_hardie_lee_2005(bgnbd):
    published = {"r_": 0.243, "alpha_": 4.414, "a_": 0.793, "b_": 2.426}
    for name, value in published.items():
        assert getattr(bgnbd, name) == pytest.approx(value, rel=0.01), name
    assert bgnbd.log_likelihood_ == pytest.approx(-9582.4, abs=0.5)


def test_bgnbd_expected_purchases_match_hardie_spreadsheet(bgnbd):
    t = np.array([0.1429, 1, 3, 31.8571, 32, 78])
    published = np.array([0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576])
    # the spreadsheet's values carry its rounded parameters: the lifetimes test suite also checks to 3 decimals
    np.testing.assert_allclose(bgnbd.expected_purchases(t), published, atol=1e-3)
    assert float(bgnbd.expected_purchases(0)) == 0.0


def test_bgnbd_conditional_expectation_and_p_alive(bgnbd):
    # customer ID 1: x=2, t_x=30.43, T=38.86 -> E[Y(39)] = 1.226 (Hardie's spreadsheet)
    assert float(bgnbd.conditional_expected_purchases(39, 2, 30.43, 38.86)) == pytest.approx(1.226, abs=1e-3)
    assert float(bgnbd.probability_alive(0, 0, 38.86)) == 1.0  # no repeat purchase: cannot have dropped out
    p = bgnbd.probability_alive(np.array([1, 5, 50, 400]), np.array([1, 5, 10, 10]), np.array([39, 39, 39, 39]))
    assert np.all((p > 0) & (p < 1)) and np.all(np.isfinite(p))
    assert float(bgnbd.probability_alive(5, 38, 39)) > float(bgnbd.probability_alive(5, 10, 39))  # recent = alive


def test_bgnbd_rejects_bad_input():
    with pytest.raises(ValueError, match="recency must not exceed T"):
        BetaGeometricNBD().fit([1, 2], [5, 50], [10, 10])
    with pytest.raises(ValueError, match="frequency must be whole"):
        BetaGeometricNBD().fit([1.5], [1], [2])
    with pytest.raises(ValueError, match="T must be >= 0"):
        BetaGeometricNBD().fit([1], [1], [-2])
    with pytest.raises(ValueError, match="recency must be 0 where frequency is 0"):
        BetaGeometricNBD().fit([0], [1], [2])
    with pytest.raises(ValueError, match="matching shapes"):
        BetaGeometricNBD().fit([0, 1], [0, 1, 2], [2, 2, 2, 2])


# --- Gamma-Gamma --------------------------------------------------------------------------------------

def test_gamma_gamma_reproduces_fader_hardie_lee(gamma_gamma, cdnow):
    assert gamma_gamma.n_customers_ == 946 == int((cdnow["x"] > 0).sum())
    assert gamma_gamma.p_ == pytest.approx(6.25, rel=0.01)
    assert gamma_gamma.q_ == pytest.approx(3.74, rel=0.01)
    assert gamma_gamma.gamma_ == pytest.approx(15.44, rel=0.01)
    # Hardie note 025 / lifetimes docs: E[Z | x, zbar] for the first ten customers
    published = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    got = gamma_gamma.conditional_expected_average_profit(cdnow["x"][:10], cdnow["zbar"][:10])
    np.testing.assert_allclose(got, published, atol=0.011)


def test_gamma_gamma_independence_assumption_holds_loosely(cdnow):
    repeat = cdnow["x"] > 0
    corr = np.corrcoef(cdnow["x"][repeat], cdnow["zbar"][repeat])[0, 1]
    assert corr == pytest.approx(0.11, abs=0.01)  # the paper reports 0.11: weak enough to assume independence


def test_gamma_gamma_rejects_bad_input():
    with pytest.raises(ValueError, match="no customer with a repeat purchase"):
        GammaGamma().fit([0, 0], [0, 0])
    with pytest.raises(ValueError, match="monetary_value must be > 0"):
        GammaGamma().fit([1, 2], [0, 3])
    with pytest.raises(ValueError, match="monetary_value must be finite"):
        GammaGamma().fit([1, 2], [-1, 3])
    with pytest.raises(ValueError, match="frequency must be whole"):
        GammaGamma().fit([1.5, 2], [1, 3])


def test_clv_is_discounted_sum_of_monthly_purchases_times_profit(gamma_gamma, bgnbd, cdnow):
    x, t_x, T, z = (cdnow[k][:20] for k in ("x", "t_x", "T", "zbar"))
    clv = gamma_gamma.customer_lifetime_value(bgnbd, x, t_x, T, z, time=12, discount_rate=0.01, freq="W")
    profit = gamma_gamma.conditional_expected_average_profit(x, z)
    expected = sum(
        profit * (bgnbd.conditional_expected_purchases(4.345 * i, x, t_x, T)
                  - bgnbd.conditional_expected_purchases(4.345 * (i - 1), x, t_x, T)) / 1.01 ** i
        for i in range(1, 13)
    )
    np.testing.assert_allclose(clv, expected, rtol=1e-12)
    undiscounted = gamma_gamma.customer_lifetime_value(bgnbd, x, t_x, T, z, time=12, discount_rate=0.0)
    np.testing.assert_allclose(undiscounted, profit * bgnbd.conditional_expected_purchases(12 * 4.345, x, t_x, T))
    assert np.all(clv < undiscounted)
    with pytest.raises(ValueError, match="freq"):
        gamma_gamma.customer_lifetime_value(bgnbd, x, t_x, T, z, freq="Y")
    with pytest.raises(ValueError, match="time"):
        gamma_gamma.customer_lifetime_value(bgnbd, x, t_x, T, z, time=0)


# --- cross-check against an independent implementation -----------------------------------------------
# lifelines (the installed dev oracle) has no BG/NBD or Gamma-Gamma fitter: those live in its sister package
# `lifetimes` (same author). These numbers are lifetimes 0.11.3's own fit on the same files (numpy 1.26,
# scipy 1.13, pandas 2.1, run in a separate environment), frozen here so the check runs without it.
LIFETIMES_BGNBD = {"r_": 0.2425929282798216, "alpha_": 4.4135322652718125, "a_": 0.7928859664406493, "b_": 2.42575238262571}
LIFETIMES_GG = {"p_": 6.248802496079201, "q_": 3.74458846092242, "gamma_": 15.447748064915702}
LIFETIMES_BGBB = {"alpha_": 1.2035223936080652, "beta_": 0.7497163581757728, "gamma_": 0.6567181695499307,
                  "delta_": 2.7834419828874655}
LIFETIMES_CLV_FIRST5 = [36.27849576, 4.63746633, 8.34409312, 8.34409312, 8.34409312]  # time=12, 1%/month, freq="W"


def test_fits_match_lifetimes_reference_values(bgnbd, gamma_gamma, donations, cdnow):
    bgbb = BetaGeometricBetaBinomial().fit(*donations)
    for model, reference in ((bgnbd, LIFETIMES_BGNBD), (gamma_gamma, LIFETIMES_GG), (bgbb, LIFETIMES_BGBB)):
        for name, value in reference.items():
            assert getattr(model, name) == pytest.approx(value, rel=1e-4), (model, name)
    x, t_x, T, z = (cdnow[k][:5] for k in ("x", "t_x", "T", "zbar"))
    clv = gamma_gamma.customer_lifetime_value(bgnbd, x, t_x, T, z, time=12, discount_rate=0.01, freq="W")
    np.testing.assert_allclose(clv, LIFETIMES_CLV_FIRST5, rtol=1e-4)


# --- BG/BB --------------------------------------------------------------------------------------------

def test_bgbb_reproduces_fader_hardie_shang_2010(donations):
    x, t_x, n, w = donations
    assert w.sum() == 11_104
    m = BetaGeometricBetaBinomial().fit(x, t_x, n, weights=w)
    published = {"alpha_": 1.204, "beta_": 0.750, "gamma_": 0.657, "delta_": 2.783}
    for name, value in published.items():
        assert getattr(m, name) == pytest.approx(value, rel=0.01), name
    assert m.log_likelihood_ == pytest.approx(-33225.58, abs=0.05)
    # Table 6: P(alive in 2002) after 6 opportunities (1996-2001)
    p = m.probability_alive([0, 2, 6], [0, 4, 6], 6)
    np.testing.assert_allclose(p, [0.11, 0.59, 0.93], atol=0.005)
    assert float(m.probability_alive(6, 6, 6, m_periods_in_future=0)) == pytest.approx(1.0)  # just transacted


def test_bgbb_weights_equal_repeated_rows(donations):
    x, t_x, n, w = donations
    small = np.maximum(1, (w // 200)).astype(int)  # ~60 customers: expanded rows stay cheap
    weighted = BetaGeometricBetaBinomial().fit(x, t_x, n, weights=small)
    expanded = BetaGeometricBetaBinomial().fit(np.repeat(x, small), np.repeat(t_x, small), np.repeat(n, small))
    assert weighted.log_likelihood_ == pytest.approx(expanded.log_likelihood_, rel=1e-9)
    assert weighted.alpha_ == pytest.approx(expanded.alpha_, rel=1e-3)


def test_bgbb_rejects_bad_input():
    with pytest.raises(ValueError, match="frequency <= recency <= n_periods"):
        BetaGeometricBetaBinomial().fit([3], [2], [6])
    with pytest.raises(ValueError, match="recency must be 0 exactly where frequency is 0"):
        BetaGeometricBetaBinomial().fit([0], [2], [6])
    with pytest.raises(ValueError, match="n_periods must be whole"):
        BetaGeometricBetaBinomial().fit([1], [1], [6.5])
    with pytest.raises(ValueError, match="weights"):
        BetaGeometricBetaBinomial().fit([1, 0], [1, 0], [6, 6], weights=[-1, 2])
