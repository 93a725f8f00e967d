"""The registry of claims the book tests, and the rule that turns verdicts into a claim's status.

Ids follow the project's specification (C1-C9 from the paper, B1-B6 beyond it) with the paper's statements split
where one id holds two statements (C1 signal and noise, C3 sufficiency and necessity, C5 by regime), plus the
paper's figures, the printed rate and the model's definitions.

A verdict has one of three roles: ``"paper"`` (it tests a statement of the paper), ``"derived"`` (it tests this
book's derivation, e.g. a constant the paper leaves out) and ``"finite-size"`` (it quantifies a departure from an
asymptotic statement against the book's own finite-size prediction). A claim's status is one of :data:`STATUSES`;
:func:`claim_status` decides it from the claim's verdicts and the chapters' stated judgements:

* no verdict: **not yet tested**;
* every verdict passed: **holds**, or **holds asymptotically** when some verdicts are finite-size diagnostics (the
  statement is about ``d -> infinity`` and the departure at the sizes run here is the predicted one);
* otherwise the chapters must state a judgement, consistent with the verdicts: **holds** needs every verdict to
  pass; **holds asymptotically** needs no failed ``paper`` verdict and at least one finite-size verdict (a failed
  finite-size or derived verdict is then a departure the book does not yet explain, which the judgement's reason
  must say); **holds with a constant-level correction** needs a passing ``derived`` verdict (the corrected
  constant); **the paper's statement needs correction** needs a failed ``paper`` verdict and a passing
  ``derived`` one (the corrected statement); **refuted** needs a failed ``paper`` verdict.
When chapters judge one claim differently, the most severe judgement (in the order of :data:`STATUSES`, last =
most severe) is the claim's status.
"""

from __future__ import annotations

__all__ = ["CLAIMS", "ROLES", "STATUSES", "claim_status", "check_claim", "check_role"]

CLAIMS = {
    "Model": "§2, Eqs. 2.1-2.5: the model as the paper defines it (lift, weights, layers, label law).",
    "C1 (signal)": "E C_hat = sqrt(2) sum_i lambda_i a_i a_i^T for g = id (Stein's lemma): the spikes are the "
                   "directions.",
    "C1 (noise)": "C_hat - E C_hat behaves like a GOE matrix with operator norm of order sqrt(D/n).",
    "C2": "Eq. 2.10: direction i becomes visible once n exceeds n_i = d^q i^(2 gamma) / Z_gamma^2.",
    "C3 sufficiency": "Theorem 3.1: for n = omega(n_k), |<u_k, A_k>| = 1 - O(n_k / n).",
    "C3 necessity": "Theorem 3.1: for n = Theta(n_k d^(-delta)), delta > 0, u_k does not recover A_k.",
    "C4": "Corollary 3.1: m_n = (Z_gamma^2 n / D)^(1/(2 gamma)) directions are recovered, capped at d1.",
    "C5 (gamma > 1/2)": "Theorem 3.2: MSE ~ (n / d^q)^(-beta), beta = 1 - 1/(2 gamma), on d^q << n << "
                        "d^(q + 2 gamma eps).",
    "C5 (gamma < 1/2)": "Theorem 3.2: MSE ~ 1 - (n / (d1 d^q))^(1/(2 gamma) - 1) on d^q << n << d^q d1: no power "
                        "law in n.",
    "C6": "Threshold exponents: alpha_k = q + eps (gamma = 0), q + eps (1 - 2 gamma + 2 gamma s) (gamma < 1/2), "
          "q + 2 gamma eps s (gamma > 1/2), k = d1^s.",
    "C7": "g = tanh gives the same picture (order, thresholds, error); the bottleneck is the first layer.",
    "C8": "A rotation-invariant kernel method needs n = omega(d^(2q)); Algorithm 1 about d^q times the "
          "power-law factor.",
    "C9": "At finite d the sharp thresholds are smoothed; the transitions sharpen as d grows.",
    "Eq3.2": "The first-order resolvent expansion of u_k beats gap-based (Davis-Kahan) bounds, because power-law "
             "gaps shrink faster than the spikes.",
    "B1": "Constant-level BBP prediction (GE, g = id): n_i* = D / (2 lambda_i^2), outliers at rho_i + "
          "sigma^2 / rho_i, 1 - cos^2 theta_i ~ (1 + 4 lambda_i^2) n_i* / n.",
    "B2": "Full MSE curve sum_i lambda_i^2 [1 - (1 - n_i*/n)_+^2]; late regime D (d1 + 4) / n.",
    "B3": "gamma = 1/2: n_i* ~ (D/2) i ln d1 and MSE ~ 1 - ln m(n) / ln d1.",
    "B4": "q = 3: the same laws with D = binom(d + 2, 3).",
    "B5": "For weak features the plain linear-in-y spectral matrix is asymptotically the optimal preprocessing.",
    "B6": "The real (Hermite) model at finite d: E C_hat has a deterministic non-spike part, shrinking like 1/d, "
          "that hides weak directions at any n.",
    "Fig1": "The paper's Fig. 1: the model and the spectrum of C_hat.",
    "Fig2": "The paper's Fig. 2: the MSE drop and the overlap rise coincide, and sharpen as d grows.",
    "Fig3": "The paper's Fig. 3: gamma = 0 is one cliff; larger gamma stretches it.",
    "Fig4": "The paper's Fig. 4: the directions switch on in order; 1 - cos theta_i ~ 1/n; the count follows m(n).",
    "Fig5": "The paper's Fig. 5: g = tanh gives the picture of Fig. 2.",
    "Rate": "The printed rate n^(-1 + 1/(2 gamma)) omits the d^q scale: the error is a function of n / d^q.",
}
"""Canonical claim id -> the statement tested (paraphrased; SPEC.md has the sources)."""

ROLES = ("paper", "derived", "finite-size")

STATUSES = ("not yet tested", "holds", "holds asymptotically", "holds with a constant-level correction",
            "the paper's statement needs correction", "refuted")
"""Claim statuses, in increasing severity (the last entries are findings against the paper's text)."""


def check_claim(claim) -> str:
    if claim not in CLAIMS:
        raise ValueError(f"unknown claim {claim!r}: use one of the registry ids {sorted(CLAIMS)}")
    return claim


def check_role(role) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {ROLES}")
    return role


def _consistent(status, verdicts) -> str | None:
    """None if ``status`` is consistent with ``verdicts`` (dicts with role and passed), else why not."""
    failed = {v["role"] for v in verdicts if not v["passed"]}
    passed = {v["role"] for v in verdicts if v["passed"]}
    if status == "not yet tested":
        return "it has verdicts" if verdicts else None
    if not verdicts:
        return "it has no verdict"
    if status == "holds":
        return f"verdicts of role {sorted(failed)} failed" if failed else None
    if status == "holds asymptotically":
        if "paper" in failed:
            return "a paper verdict failed"
        return None if {"finite-size"} & (passed | failed) else "no finite-size verdict quantifies the departure"
    if status == "holds with a constant-level correction":
        return None if "derived" in passed else "no passing derived verdict"
    if status == "the paper's statement needs correction":
        if "paper" not in failed:
            return "no paper verdict failed"
        return None if "derived" in passed else "no passing derived verdict states the correction"
    if status == "refuted":
        return None if "paper" in failed else "no paper verdict failed"
    raise ValueError(f"unknown status {status!r}: use one of {STATUSES}")


def claim_status(claim, verdicts, judgements=()) -> str:
    """The status of ``claim`` from its verdicts (dicts with ``role`` and ``passed``) and the chapters' judgements
    (statuses), by the rule of the module docstring. A ValueError when a judgement contradicts the verdicts or a
    failed verdict has no judgement."""
    check_claim(claim)
    for status in judgements:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}: use one of {STATUSES}")
    if judgements:
        status = max(judgements, key=STATUSES.index)
    elif not verdicts:
        status = "not yet tested"
    elif all(v["passed"] for v in verdicts):
        status = "holds asymptotically" if any(v["role"] == "finite-size" for v in verdicts) else "holds"
    else:
        raise ValueError(f"{claim}: some verdicts failed; the chapter must state its judgement (ledger.judge)")
    problem = _consistent(status, verdicts)
    if problem:
        raise ValueError(f"{claim}: the status {status!r} is inconsistent with its verdicts: {problem}")
    return status
