// Package distributed is the client side of Kairos's distributed differential privacy
// for secure aggregation: it turns one merchant's per-customer contributions into a
// vector of integers mod 2^b that carries a share of discrete Gaussian noise, such that
// the sum of at least min_cohort honest merchants' vectors is differentially private
// for each customer, and decodes such a sum back to real numbers. It follows the
// distributed discrete Gaussian mechanism of Kairouz, Liu and Steinke (ICML 2021,
// arXiv 2102.06387): scale by 1/γ, randomised Hadamard rotation, conditional randomised
// rounding with the paper's norm bound, discrete Gaussian noise, reduction mod 2^b.
//
// The noise is drawn by an exact sampler (Canonne, Kamath and Steinke 2020, arXiv
// 2004.00010) over crypto/rand and integer arithmetic only; the DP library offers no
// discrete Gaussian. The accountant for the mechanism lives in package dp
// (dp.DDGauss); Plan ties the two together.
//
// The package does no I/O beyond reading randomness and does not log.
package distributed
