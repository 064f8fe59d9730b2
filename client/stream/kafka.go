package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// KafkaConfig names a Kafka source.
type KafkaConfig struct {
	Brokers    []string
	Topic      string
	DeadLetter string // topic for bad messages
}

// Kafka is a Source reading every partition of a topic from stored offsets
// (no consumer group: the position lives in the client's store).
type Kafka struct {
	cfg  KafkaConfig
	prod *kgo.Client
}

var _ Source = (*Kafka)(nil)

// NewKafka returns a source; Close releases its producer.
func NewKafka(cfg KafkaConfig) (*Kafka, error) {
	if len(cfg.Brokers) == 0 || cfg.Topic == "" || cfg.DeadLetter == "" {
		return nil, errors.New("new Kafka source: brokers, topic and dead-letter topic are required")
	}
	if cfg.DeadLetter == cfg.Topic {
		return nil, errors.New("new Kafka source: the dead-letter topic is the events topic")
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return nil, fmt.Errorf("new Kafka source: %w", err)
	}
	return &Kafka{cfg: cfg, prod: prod}, nil
}

// Close releases the producer.
func (k *Kafka) Close() { k.prod.Close() }

// partitions asks the cluster for topic's partition ids.
func (k *Kafka) partitions(ctx context.Context, topic string) ([]int32, error) {
	req := kmsg.NewPtrMetadataRequest()
	t := kmsg.NewMetadataRequestTopic()
	t.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, k.prod)
	if err != nil {
		return nil, err
	}
	if len(resp.Topics) != 1 {
		return nil, fmt.Errorf("metadata names %d topics", len(resp.Topics))
	}
	if err := kerrOf(resp.Topics[0].ErrorCode); err != nil {
		return nil, err
	}
	var ps []int32
	for _, p := range resp.Topics[0].Partitions {
		ps = append(ps, p.Partition)
	}
	if len(ps) == 0 {
		return nil, errors.New("topic has no partitions")
	}
	return ps, nil
}

// checkPosition refuses a stored offset past the end of its partition: a
// topic created again numbers from 0, and the consumer, reset to the start,
// would skip every new record below the old offset as already applied.
func (k *Kafka) checkPosition(ctx context.Context, ps []int32, next map[int32]int64) error {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = k.cfg.Topic
	for _, p := range ps {
		if _, ok := next[p]; ok {
			pp := kmsg.NewListOffsetsRequestTopicPartition()
			pp.Partition, pp.Timestamp = p, -1 // the end
			t.Partitions = append(t.Partitions, pp)
		}
	}
	if len(t.Partitions) == 0 {
		return nil
	}
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, k.prod)
	if err != nil {
		return fmt.Errorf("list offsets: %w", err)
	}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerrOf(rp.ErrorCode); err != nil {
				return fmt.Errorf("list offsets of partition %d: %w", rp.Partition, err)
			}
			if o := next[rp.Partition]; o > rp.Offset {
				return fmt.Errorf("partition %d: the stored position is offset %d, but the partition ends at %d: the topic was created again since; the live store's states are of the old one (start on a new store, or delete this source's states and position)", rp.Partition, o, rp.Offset)
			}
		}
	}
	return nil
}

func kerrOf(code int16) error {
	if code == 0 {
		return nil
	}
	return fmt.Errorf("kafka error code %d: %w", code, kerr.ErrorForCode(code))
}

// Consume implements Source. It fails at once when the dead-letter topic
// does not exist, and when a stored offset is past the end of its partition
// (the topic was created again).
func (k *Kafka) Consume(ctx context.Context, next map[int32]int64, out chan<- Message) error {
	ps, err := k.partitions(ctx, k.cfg.Topic)
	if err != nil {
		return fmt.Errorf("consume %s: %w", k.cfg.Topic, err)
	}
	// A dead letter to a missing topic could never be produced: the first
	// bad message would stop the stream, retried for ever.
	if _, err := k.partitions(ctx, k.cfg.DeadLetter); err != nil {
		return fmt.Errorf("consume %s: dead-letter topic %s: %w", k.cfg.Topic, k.cfg.DeadLetter, err)
	}
	if err := k.checkPosition(ctx, ps, next); err != nil {
		return fmt.Errorf("consume %s: %w", k.cfg.Topic, err)
	}
	offs := make(map[int32]kgo.Offset, len(ps))
	for _, p := range ps {
		if o, ok := next[p]; ok {
			offs[p] = kgo.NewOffset().At(o)
		} else {
			offs[p] = kgo.NewOffset().AtStart()
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{k.cfg.Topic: offs}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", k.cfg.Topic, err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return fmt.Errorf("consume %s partition %d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			r := it.Next()
			select {
			case out <- Message{Partition: r.Partition, Offset: r.Offset, Data: r.Value, Published: kafkaTime(r)}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}

// kafkaTime is when r was stored, or zero when r has no time: a record of
// the old message format without one, or a producer's time before 1970
// (-1 is Kafka's "no timestamp"), which Config.MaxAhead must not read as
// the broker's.
func kafkaTime(r *kgo.Record) time.Time {
	if r.Attrs.TimestampType() < 0 || r.Timestamp.UnixMilli() <= 0 {
		return time.Time{}
	}
	return r.Timestamp
}

// DeadLetter implements Source. A body that would not fit the producer's
// batch limit (ProducerBatchMaxBytes, 1,000,012 bytes by default; the
// broker's message.max.bytes is 1,048,588) with the headers is cut
// (HeaderTruncated holds its length).
func (k *Kafka) DeadLetter(ctx context.Context, msg Message, reason string) error {
	limit, _ := k.prod.OptValue(kgo.ProducerBatchMaxBytes).(int32)
	body, cut := fitBody(msg.Data, int64(limit))
	r := &kgo.Record{Topic: k.cfg.DeadLetter, Value: body, Headers: []kgo.RecordHeader{
		{Key: HeaderReason, Value: []byte(reason)},
		{Key: HeaderPartition, Value: []byte(strconv.Itoa(int(msg.Partition)))},
		{Key: HeaderOffset, Value: []byte(strconv.FormatInt(msg.Offset, 10))},
	}}
	if cut {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(msg.Data)))})
	}
	if err := k.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("dead-letter %s partition %d offset %d: %w", k.cfg.Topic, msg.Partition, msg.Offset, err)
	}
	return nil
}

// KafkaPublisher publishes to a Kafka topic with a source's producer.
type KafkaPublisher struct {
	Source *Kafka
	Topic  string
}

// Publish implements Publisher.
func (p KafkaPublisher) Publish(ctx context.Context, data []byte) error {
	if err := p.Source.prod.ProduceSync(ctx, &kgo.Record{Topic: p.Topic, Value: data}).FirstErr(); err != nil {
		return fmt.Errorf("publish %s: %w", p.Topic, err)
	}
	return nil
}
