// Package bench measures whole-system figures for `kairos bench`: ingest and
// training throughput (Ingest), the prediction API under load beside a
// Flask peer (Predict) and under a memory-amplification attack (Flood), and
// federated rounds and update acceptance (Federation). Each runs the
// components it measures as they are deployed (the aggregator through
// aggregator/server) and returns a result that is also the command's JSON.
package bench
