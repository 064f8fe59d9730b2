package main

import (
	"log/slog"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimitRatio is the share of the container's memory limit that the Go
// runtime's soft limit takes: the rest is for what the garbage collector does
// not count (stacks, SQLite's page cache, the runtime itself).
const memoryLimitRatio = 0.9

// applyMemoryLimit sets the Go runtime's soft memory limit to
// memoryLimitRatio of the limit provider reports (the cgroup's, in
// production) and returns it. Without a soft limit the heap grows to twice
// what is live before a collection, so a run whose live data fits a
// container twice over is still killed for memory (docs/operations.md,
// "Memory"). GOMEMLIMIT, when set, wins; AUTOMEMLIMIT=off turns this off and
// AUTOMEMLIMIT=0.7 changes the ratio.
func applyMemoryLimit(provider memlimit.Provider) (int64, error) {
	return memlimit.Set(memlimit.WithProvider(provider), memlimit.WithRatio(memoryLimitRatio),
		memlimit.WithLogger(slog.New(slog.DiscardHandler)))
}
