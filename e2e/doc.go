// Package e2e holds Kairos's end-to-end tests: they build the kairos binary
// once, run an aggregator and merchant clients as real processes on loopback
// (through package federation/harness, which kairos demo uses too), inject
// faults (kill -9 of the aggregator or of a client at an upload, a
// client clock hours off, re-sent and replayed envelopes) and check that
// nothing accepted is lost, nothing is debited twice, and the audit log
// verifies. They run on SQLite, and also on PostgreSQL when
// KAIROS_TEST_POSTGRES_URL names a server where a fresh database may be
// created. `go test -short` skips them.
package e2e
