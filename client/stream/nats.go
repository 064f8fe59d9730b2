package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSConfig names a JetStream source.
type NATSConfig struct {
	Stream     string // the JetStream stream holding the events
	Subject    string // the events' subject (a filter within Stream)
	DeadLetter string // subject for bad messages; a stream should capture it
	// BufferBytes bounds the messages the consumer fetches ahead of the
	// processor (its pull requests' max_bytes); DefaultNATSBufferBytes
	// when 0. It is raised to twice the server's max_payload and 64 KiB
	// when below, since a pull whose byte limit is below a message's size
	// stalls on that message.
	BufferBytes int
}

// DefaultNATSBufferBytes is NATSConfig.BufferBytes' default: the library's
// own default is 500 messages whatever their size (500 MiB of 1 MiB
// messages), held before the processor's byte gate (Config.MaxQueuedBytes)
// sees them.
const DefaultNATSBufferBytes = 8 << 20

// NATS is a Source reading a JetStream stream with an ordered consumer from a
// stored sequence, and a Publisher on core NATS.
type NATS struct {
	nc  *nats.Conn
	js  jetstream.JetStream
	cfg NATSConfig
}

var _ Source = (*NATS)(nil)

// NewNATS returns a source over the connection nc.
func NewNATS(nc *nats.Conn, cfg NATSConfig) (*NATS, error) {
	if cfg.Stream == "" || cfg.Subject == "" || cfg.DeadLetter == "" {
		return nil, errors.New("new NATS source: stream, subject and dead-letter subject are required")
	}
	if cfg.DeadLetter == cfg.Subject {
		return nil, errors.New("new NATS source: the dead-letter subject is the events subject")
	}
	if cfg.BufferBytes < 0 {
		return nil, fmt.Errorf("new NATS source: buffer of %d bytes (0 takes the default %d)", cfg.BufferBytes, DefaultNATSBufferBytes)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("new NATS source: %w", err)
	}
	return &NATS{nc: nc, js: js, cfg: cfg}, nil
}

// Consume implements Source. JetStream has one partition, 0, whose offsets
// are stream sequences. It fails at once when no stream captures the
// dead-letter subject, and when the stored position is past the stream's
// last sequence (the stream was created again).
func (n *NATS) Consume(ctx context.Context, next map[int32]int64, out chan<- Message) error {
	// A dead letter no stream captures could never be published: the first
	// bad message would stop the stream, retried for ever.
	if _, err := n.js.StreamNameBySubject(ctx, n.cfg.DeadLetter); err != nil {
		return fmt.Errorf("consume %s: dead-letter subject %s: no JetStream stream captures it (%w)", n.cfg.Stream, n.cfg.DeadLetter, err)
	}
	// A stream created again numbers from 1: a stored position past its last
	// sequence would wait, skipping every new message, until the stream
	// passed it.
	st, err := n.js.Stream(ctx, n.cfg.Stream)
	if err != nil {
		return fmt.Errorf("consume %s: %w", n.cfg.Stream, err)
	}
	if last := st.CachedInfo().State.LastSeq; next[0] > 0 && uint64(next[0]) > last+1 {
		return fmt.Errorf("consume %s: the stored position is sequence %d, but the stream's last sequence is %d: the stream was created again since; the live store's states are of the old one (start on a new store, or delete this source's states and position)", n.cfg.Stream, next[0], last)
	}
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{n.cfg.Subject}}
	if s := next[0]; s > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, uint64(s)
	}
	cons, err := n.js.OrderedConsumer(ctx, n.cfg.Stream, cc)
	if err != nil {
		return fmt.Errorf("consume %s: %w", n.cfg.Stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(n.bufferBytes()))
	if err != nil {
		return fmt.Errorf("consume %s: %w", n.cfg.Stream, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("consume %s: %w", n.cfg.Stream, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("consume %s: %w", n.cfg.Stream, err)
		}
		msg := Message{Offset: int64(md.Sequence.Stream), Data: m.Data(), Published: md.Timestamp}
		select {
		case out <- msg:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// bufferBytes is the pull byte limit: the configured one, at least twice
// the largest message the server takes with room for its subject (each
// refill asks for at least half the limit).
func (n *NATS) bufferBytes() int {
	b := n.cfg.BufferBytes
	if b == 0 {
		b = DefaultNATSBufferBytes
	}
	return max(b, 2*(int(n.nc.MaxPayload())+64<<10))
}

// DeadLetter implements Source. The message id makes JetStream drop a second
// dead letter for the same position within its duplicate window. A body that
// would not fit the server's max_payload with the headers is cut
// (HeaderTruncated holds its length).
func (n *NATS) DeadLetter(ctx context.Context, msg Message, reason string) error {
	m := nats.NewMsg(n.cfg.DeadLetter)
	var cut bool
	m.Data, cut = fitBody(msg.Data, n.nc.MaxPayload())
	if cut {
		m.Header.Set(HeaderTruncated, strconv.Itoa(len(msg.Data)))
	}
	m.Header.Set(HeaderReason, reason)
	m.Header.Set(HeaderPartition, "0")
	m.Header.Set(HeaderOffset, strconv.FormatInt(msg.Offset, 10))
	m.Header.Set(jetstream.MsgIDHeader, n.cfg.Stream+"/"+n.cfg.Subject+"/"+strconv.FormatInt(msg.Offset, 10))
	if _, err := n.js.PublishMsg(ctx, m); err != nil {
		return fmt.Errorf("dead-letter %s offset %d: %w", n.cfg.Subject, msg.Offset, err)
	}
	return nil
}

// NATSPublisher publishes on a core NATS subject.
type NATSPublisher struct {
	NC      *nats.Conn
	Subject string
}

// Publish implements Publisher.
func (p NATSPublisher) Publish(_ context.Context, data []byte) error {
	if err := p.NC.Publish(p.Subject, data); err != nil {
		return fmt.Errorf("publish %s: %w", p.Subject, err)
	}
	return nil
}
