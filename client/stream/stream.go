// Package stream runs a merchant client's live pipeline: it reads events from
// a stream (NATS JetStream or Kafka), decodes each message with the same
// mapping as files (client/ingest), updates the customer's bounded live
// feature state (model/feature.LiveState), persists states with the stream
// position in one transaction (client/livestore), scores the customer with the
// merchant's model, and publishes a score change when P(buy within 7 days)
// crosses a threshold.
//
// Delivery rules. A message that does not decode, or an event the live state
// cannot apply exactly (feature.ErrLate), goes to the dead-letter subject or
// topic with the reason and the stream goes on; the dead-letter publish is
// retried until it succeeds, so a bad message is never silently dropped and
// the stream never stops on one. A good event is applied exactly once: the
// position advances in the same transaction as the states it changed, and a
// restarted processor resumes at the stored position. Dead letters and score
// changes are published at least once (NATS deduplicates dead letters by
// message id).
package stream

import (
	"context"
	"strings"
	"time"
)

// Message is one stream message at a position: Offset within Partition (a
// JetStream stream sequence in partition 0, or a Kafka partition offset).
type Message struct {
	Partition int32
	Offset    int64
	Data      []byte
	// Published is when the broker stored the message.
	Published time.Time
}

// Source is a stream of messages with a dead-letter destination.
type Source interface {
	// Consume sends to out, in order within each partition, every message at
	// or after next[partition] (from the start for a partition next lacks),
	// until ctx ends or the source fails.
	Consume(ctx context.Context, next map[int32]int64, out chan<- Message) error
	// DeadLetter publishes msg's data with reason to the dead-letter
	// destination.
	DeadLetter(ctx context.Context, msg Message, reason string) error
}

// Publisher publishes one message (a score change) to a fixed destination.
type Publisher interface {
	Publish(ctx context.Context, data []byte) error
}

// Header names on dead letters.
const (
	HeaderReason    = "Kairos-Dead-Reason"
	HeaderPartition = "Kairos-Source-Partition"
	HeaderOffset    = "Kairos-Source-Offset"
	// HeaderTruncated, on a dead letter whose body was cut to fit the
	// broker's message size limit, is the message's original length.
	HeaderTruncated = "Kairos-Dead-Truncated"
)

// MaxDeadReasonBytes bounds a dead letter's reason: reasons quote what the
// message holds (a customer id, a time), which can be as long as the message.
const MaxDeadReasonBytes = 1024

// deadHeaderRoom is what a dead letter's body leaves of the broker's message
// size limit for its headers (the reason, at most MaxDeadReasonBytes, and
// four short ones) and the record's framing.
const deadHeaderRoom = 4096

// boundReason cuts reason to MaxDeadReasonBytes at a character boundary,
// marking the cut with "…".
func boundReason(reason string) string {
	if len(reason) <= MaxDeadReasonBytes {
		return reason
	}
	const mark = "…"
	return strings.ToValidUTF8(reason[:MaxDeadReasonBytes-len(mark)], "") + mark
}

// fitBody returns data cut to limit − deadHeaderRoom bytes when it is longer,
// and whether it was cut: a dead letter must fit the broker's limit, or its
// publish, retried until it succeeds, would stop the stream for good.
func fitBody(data []byte, limit int64) ([]byte, bool) {
	room := max(limit-deadHeaderRoom, 0)
	if int64(len(data)) <= room {
		return data, false
	}
	return data[:room], true
}
