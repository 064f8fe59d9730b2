package ingest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/kairos-fl/kairos/model"
)

func benchRead(b *testing.B, data []byte, opts Options) {
	b.Helper()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	events := 0
	for b.Loop() {
		rep, err := Read(context.Background(), bytes.NewReader(data), "bench", opts, func(model.Event) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		events += rep.Events
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
}

func benchFile(b *testing.B, rel string) []byte {
	b.Helper()
	data, err := os.ReadFile(sharedData(b, rel))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkReadCDNOW(b *testing.B) {
	benchRead(b, benchFile(b, "cdnow/CDNOW_master.txt"), Options{Format: CDNOW})
}

func BenchmarkReadTaobao(b *testing.B) {
	benchRead(b, benchFile(b, "taobao/UserBehavior_head84k.csv"), Options{Format: Taobao})
}

func BenchmarkReadOnlineRetail(b *testing.B) {
	benchRead(b, benchFile(b, "online_retail/online_retail_sample_20k.csv"), Options{Format: OnlineRetail})
}

// BenchmarkReadCSV reads the generic layout `kairos gen` writes: 200,000 rows
// of 2,000 customers, unix seconds, kind names, amounts on purchases.
func BenchmarkReadCSV(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("customer,time,kind,amount,item,category\n")
	kinds := []string{"view", "view", "view", "cart", "favorite", "purchase"}
	for i := range 200000 {
		k := kinds[i%len(kinds)]
		amount := ""
		if k == "purchase" {
			amount = fmt.Sprintf("%d.%02d", i%200, i%100)
		}
		fmt.Fprintf(&buf, "c%06d,%d,%s,%s,i%d,k%d\n", i%2000, 1700000000+i*7, k, amount, i%5000, i%40)
	}
	m := &Mapping{Header: true, Delimiter: ',', Customer: Column{Name: "customer"}, Time: Column{Name: "time"}, TimeLayout: LayoutUnix,
		Kind: Column{Name: "kind"}, Amount: Column{Name: "amount"}, Item: Column{Name: "item"}, Category: Column{Name: "category"}}
	benchRead(b, buf.Bytes(), Options{Format: CSV, Mapping: m})
}
