// Package client is the merchant's side of a Kairos federation: it reads the
// shop's events (files through client/ingest or a PostgreSQL query),
// pseudonymizes customer ids at the source, takes part in the aggregator's
// rounds (fetch the round, build point-in-time features, train with DP-SGD from
// the global model, refuse locally when the merchant's own ε cap would be
// passed, seal, upload with retries) and scores customers locally under the
// merchant's own ids.
//
// # Crash safety
//
// A round's releases are debited from the local ledger and the sealed envelope
// is written to the state directory, in one atomic file replacement, before the
// first upload attempt. A client restarted after a crash re-sends that same
// envelope instead of training again, so a round is never paid for twice; the
// aggregator recognises the re-sent envelope and does not debit it twice
// either. An update the aggregator refuses keeps its local debit: the client
// cannot know what the refused envelope revealed, so it counts it.
package client
