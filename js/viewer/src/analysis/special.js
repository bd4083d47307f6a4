// Special functions for the p-values of the browser's gene ranking: the complementary error
// function (two-sided normal p-values), log-gamma and the regularized incomplete beta
// function (two-sided Student t p-values). Float64 throughout; relative accuracy ~1e-13 or
// better over the ranges the statistics use, including deep tails (checked against scipy in
// js/test/analysis_stats.test.mjs).
//
// Pure module: no DOM, runs in browsers, workers and node.

const SQRT_PI = Math.sqrt(Math.PI);
const HALF_LOG_2PI = 0.5 * Math.log(2 * Math.PI);
const EPS = 1e-16;
const TINY = 1e-300;

/**
 * erfc(x) = 1 − erf(x). For |x| < 2 the positive series
 * erf(x) = 2/√π · e^(−x²) · Σ x·(2x²)^n / (1·3·…·(2n+1)); from 2 on the continued fraction
 * erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) (modified Lentz), which
 * keeps full relative precision in the tail.
 *
 * @param {number} x
 * @returns {number}
 */
export function erfc(x) {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x < 2) {
    const x2 = x * x;
    let term = x;
    let sum = x;
    for (let n = 1; n < 200; n++) {
      term *= (2 * x2) / (2 * n + 1);
      sum += term;
      if (term < sum * EPS) break;
    }
    return 1 - ((2 / SQRT_PI) * Math.exp(-x2) * sum);
  }
  if (x > 27.3) return 0; // e^(−x²) underflows
  // K = 1/(x + a1/(x + a2/(x + …))), a_n = n/2, by modified Lentz on b0 = 0, b_n = x.
  let f = TINY;
  let c = f;
  let d = 0;
  for (let n = 1; n < 5000; n++) {
    const a = n === 1 ? 1 : (n - 1) / 2;
    d = x + a * d;
    d = Math.abs(d) < TINY ? 1 / TINY : 1 / d;
    c = x + a / c;
    if (Math.abs(c) < TINY) c = TINY;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return (Math.exp(-x * x) / SQRT_PI) * f;
}

/**
 * Two-sided p-value of a standard normal score: 2·Φ(−|z|) = erfc(|z|/√2).
 *
 * @param {number} z
 * @returns {number} NaN for NaN
 */
export function normalTwoSided(z) {
  return erfc(Math.abs(z) / Math.SQRT2);
}

// Lanczos approximation (g = 7, 9 terms) for small arguments.
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

// The 1/(12x) − 1/(360x³) + … tail of Stirling's series (enough for x ≥ 10).
function stirlingTail(x) {
  const r = 1 / x;
  const r2 = r * r;
  return r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 * (1 / 1188)))));
}

/**
 * log(Γ(a + b) / Γ(a)) without the cancellation of two large log-gammas when a is large
 * (Student t with many degrees of freedom): (a − ½)·log1p(b/a) + b·log(a + b) − b plus the
 * difference of the Stirling tails.
 */
function lgammaRatio(a, b) {
  if (a < 10) return lgamma(a + b) - lgamma(a);
  return (a - 0.5) * Math.log1p(b / a) + b * Math.log(a + b) - b + stirlingTail(a + b) - stirlingTail(a);
}

/**
 * log Γ(x) for x > 0: Stirling's series from 10 on, Lanczos below (after shifting up by the
 * recurrence for x < 0.5).
 *
 * @param {number} x > 0
 * @returns {number}
 */
export function lgamma(x) {
  if (!(x > 0)) return x === 0 ? Infinity : NaN;
  if (x < 0.5) return lgamma(x + 1) - Math.log(x);
  if (x >= 10) return (x - 0.5) * Math.log(x) - x + HALF_LOG_2PI + stirlingTail(x);
  const y = x - 1;
  let a = LANCZOS[0];
  for (let i = 1; i < LANCZOS.length; i++) a += LANCZOS[i] / (y + i);
  const t = y + LANCZOS_G + 0.5;
  return HALF_LOG_2PI + (y + 0.5) * Math.log(t) - t + Math.log(a);
}

// Continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes betacf).
function betaContinuedFraction(a, b, x) {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m < 100000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < EPS) break;
  }
  return h;
}

/**
 * The regularized incomplete beta function I_x(a, b). `xc` = 1 − x may be given when the
 * caller knows it more precisely than 1 − x (it is used for log(1 − x)).
 *
 * @param {number} a > 0
 * @param {number} b > 0
 * @param {number} x in [0, 1]
 * @param {number} [xc] 1 − x
 * @returns {number}
 */
export function betaIncReg(a, b, x, xc = 1 - x) {
  if (Number.isNaN(x) || Number.isNaN(a) || Number.isNaN(b)) return NaN;
  if (x <= 0) return 0;
  if (xc <= 0) return 1;
  const logBeta = a >= b ? lgammaRatio(a, b) - lgamma(b) : lgammaRatio(b, a) - lgamma(a);
  const logFront = logBeta + a * Math.log(x) + b * Math.log(xc);
  const front = Math.exp(logFront);
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, xc)) / b;
}

/**
 * Two-sided p-value of Student's t with `df` degrees of freedom: 2·sf(|t|, df) =
 * I_{df/(df+t²)}(df/2, 1/2).
 *
 * @param {number} t
 * @param {number} df > 0
 * @returns {number} NaN when t or df is NaN; 0 for infinite t
 */
export function studentTTwoSided(t, df) {
  if (Number.isNaN(t) || !(df > 0)) return NaN;
  if (!Number.isFinite(t)) return 0;
  const t2 = t * t;
  const denom = df + t2;
  return Math.min(1, betaIncReg(df / 2, 0.5, df / denom, t2 / denom));
}
