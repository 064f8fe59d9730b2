package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/kairos-fl/kairos/client/ingest"
	"github.com/kairos-fl/kairos/client/livestore"
	"github.com/kairos-fl/kairos/client/stream"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

func newClientStreamCmd() *cobra.Command {
	var (
		natsURL, kafka, streamName, subject, dead, mappingPath, encoding string
		storeAt, modelPath, listen, changes, tz                          string
		threshold                                                        float64
		dr                                                               driftFlags
	)
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Follow a NATS JetStream or Kafka stream of events into live states and local scores",
		Long: `stream reads one event per message (JSON keyed by the mapping's column names, or a
headerless CSV line by index), keeps every customer's live feature state in --store with the
stream position (SQLite file, or a postgres:// URL), sends bad messages to --dead-letter
with the reason, and with --model serves GET /v1/scores/{customer} on --listen (loopback by
default; no authentication) and publishes to --changes when P(buy within 7 days) crosses
--threshold. Give --model the merchant's personalised model where it has one.
With --drift-data and --drift-cutoff it compares every --drift-every the live customers'
features with the training period's (PSI per feature) and, with --model, past predictions
with realised purchases; the reports are logged and served on GET /drift, never sent.

  kairos client stream --nats nats://127.0.0.1:4222 --stream SHOP --subject shop.events \
    --dead-letter shop.dead --mapping mapping.yaml --store live.db --model model.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if (natsURL == "") == (kafka == "") {
				return errors.New("client stream: give exactly one of --nats and --kafka")
			}
			if mappingPath == "" || storeAt == "" {
				return errors.New("client stream: --mapping and --store are required")
			}
			enc, err := ingest.ParseMessageEncoding(encoding)
			if err != nil {
				return fmt.Errorf("client stream: --encoding: %w", err)
			}
			loc, err := time.LoadLocation(tz)
			if err != nil {
				return fmt.Errorf("client stream: --time-zone: %w", err)
			}
			m, err := ingest.LoadMapping(mappingPath)
			if err != nil {
				return fmt.Errorf("client stream: %w", err)
			}
			dec, err := ingest.NewMessageDecoder(m, enc, loc)
			if err != nil {
				return fmt.Errorf("client stream: mapping %s: %w", mappingPath, err)
			}
			eng, err := feature.NewLiveEngine(feature.LiveConfig{Location: loc})
			if err != nil {
				return err
			}
			var model *hazard.Model
			if modelPath != "" {
				b, err := os.ReadFile(modelPath)
				if err != nil {
					return fmt.Errorf("client stream: %w", err)
				}
				if model, err = hazard.Unmarshal(b, eng.Schema().Hash); err != nil {
					return fmt.Errorf("client stream: model %s: %w", modelPath, err)
				}
			}
			st, err := livestore.Open(ctx, storeAt)
			if err != nil {
				return fmt.Errorf("client stream: %w", err)
			}
			defer st.Close()
			cfg := stream.Config{Decoder: dec, Engine: eng, Store: st, Model: model, Threshold: threshold, Logger: clientLogger(os.Stderr, false, 0)}
			if natsURL != "" {
				nc, err := nats.Connect(natsURL)
				if err != nil {
					return fmt.Errorf("client stream: %w", err)
				}
				defer nc.Close()
				if cfg.Source, err = stream.NewNATS(nc, stream.NATSConfig{Stream: streamName, Subject: subject, DeadLetter: dead}); err != nil {
					return fmt.Errorf("client stream: %w", err)
				}
				cfg.Name = "nats:" + streamName + ":" + subject
				if changes != "" {
					cfg.Changes = stream.NATSPublisher{NC: nc, Subject: changes}
				}
			} else {
				k, err := stream.NewKafka(stream.KafkaConfig{Brokers: strings.Split(kafka, ","), Topic: subject, DeadLetter: dead})
				if err != nil {
					return fmt.Errorf("client stream: %w", err)
				}
				defer k.Close()
				cfg.Source, cfg.Name = k, "kafka:"+subject
				if changes != "" {
					cfg.Changes = stream.KafkaPublisher{Source: k, Topic: changes}
				}
			}
			p, err := stream.New(ctx, cfg)
			if err != nil {
				return fmt.Errorf("client stream: %w", err)
			}
			if dr.on() {
				if err := dr.start(ctx, p, m, loc, eng.Schema(), cfg.Logger); err != nil {
					return fmt.Errorf("client stream: %w", err)
				}
			}
			if (model != nil || dr.on()) && listen != "" {
				ln, err := net.Listen("tcp", listen)
				if err != nil {
					return fmt.Errorf("client stream: %w", err)
				}
				srv := localHTTPServer(p.Handler(), localTimeouts())
				go srv.Serve(ln)                               //nolint:errcheck // ends with Shutdown
				defer srv.Shutdown(context.WithoutCancel(ctx)) //nolint:errcheck // best effort at exit
				if model != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "serving scores on http://%s/v1/scores/{customer} (no authentication; %s)\n", ln.Addr(), listenScope(ln.Addr()))
				}
				if dr.on() {
					fmt.Fprintf(cmd.ErrOrStderr(), "serving drift reports on http://%s/drift (no authentication; %s)\n", ln.Addr(), listenScope(ln.Addr()))
				}
			}
			if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("client stream: %w", err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&natsURL, "nats", "", "NATS server URL (JetStream)")
	f.StringVar(&kafka, "kafka", "", "Kafka seed brokers, comma separated")
	f.StringVar(&streamName, "stream", "", "JetStream stream name (NATS)")
	f.StringVar(&subject, "subject", "", "events subject (NATS) or topic (Kafka)")
	f.StringVar(&dead, "dead-letter", "", "dead-letter subject or topic")
	f.StringVar(&mappingPath, "mapping", "", "mapping YAML (as for CSV files)")
	f.StringVar(&encoding, "encoding", "json", "message encoding: json or csv")
	f.StringVar(&storeAt, "store", "", "live store: SQLite file path or postgres:// URL")
	f.StringVar(&modelPath, "model", "", "hazard model file for scores (the personalised one where it exists)")
	f.StringVar(&listen, "listen", "127.0.0.1:8377", "address of the local scores endpoint (with --model)")
	f.StringVar(&changes, "changes", "", "subject or topic for score changes (with --threshold)")
	f.Float64Var(&threshold, "threshold", 0, "P(buy within 7 days) threshold for score changes; 0 = none")
	f.StringVar(&tz, "time-zone", "UTC", "the shop's time zone (IANA name)")
	f.StringVar(&dr.data, "drift-data", "", "the training period's events (CSV under --mapping): watch drift against them, served on GET /drift")
	f.StringSliceVar(&dr.cutoffs, "drift-cutoff", nil, "training cutoff date of the drift reference (repeatable)")
	f.DurationVar(&dr.every, "drift-every", 24*time.Hour, "period of the drift checks")
	return cmd
}

// listenScope says who can reach the unauthenticated scores endpoint at addr.
func listenScope(addr net.Addr) string {
	if a, ok := addr.(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return "loopback only"
	}
	return "WARNING: reachable from other hosts, every customer's score to anyone who can connect; bind 127.0.0.1 unless this interface is private"
}

// serverTimeouts bound how long one connection to a local server may hold
// it: reading the headers, the whole request, writing the answer, and idle
// between requests.
type serverTimeouts struct{ header, read, write, idle time.Duration }

// localTimeouts are those of the merchant's local scores and drift server,
// whose answers are small: a client that opens connections and goes quiet
// (or reads the answer a byte a minute) is dropped instead of holding a
// goroutine and a socket for ever.
func localTimeouts() serverTimeouts {
	return serverTimeouts{header: 10 * time.Second, read: 15 * time.Second, write: 30 * time.Second, idle: 60 * time.Second}
}

// localHTTPServer is the merchant's local HTTP server for h.
func localHTTPServer(h http.Handler, t serverTimeouts) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: t.header, ReadTimeout: t.read, WriteTimeout: t.write,
		IdleTimeout: t.idle, MaxHeaderBytes: 16 << 10}
}
