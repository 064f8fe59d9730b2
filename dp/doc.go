// Package dp is Kairos's differential-privacy layer: the vector Gaussian mechanism over
// L2-clipped vectors (noise from github.com/google/differential-privacy/go/v3), the DP-SGD
// gradient step with Poisson sampling of customers, the Rényi-DP accountant for the
// Poisson-subsampled Gaussian with its (ε, δ) conversion and inverse, the budget filter
// that refuses a release before it would exceed a cap, and DP statistics via the
// library's dpagg aggregations, each stating what it costs.
//
// The privacy unit is one customer of one merchant; neighbouring data sets differ by
// adding or removing one customer. docs/privacy.md explains the choices for a
// compliance reviewer.
//
// The package does no I/O beyond the readers its caller hands it and does not log.
package dp
