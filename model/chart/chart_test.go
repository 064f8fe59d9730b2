package chart

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/kairos-fl/kairos/model/metrics"
)

// point is a plotted circle as the SVG carries it.
type point struct {
	series     string
	x, y       float64 // data values
	cx, cy     float64 // pixels
	n          int
	hasN       bool
	titleFound bool
}

// parse checks that doc is well-formed XML with an <svg> root and returns its
// plotted points in document order.
func parse(t *testing.T, doc []byte) []point {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(doc))
	var pts []point
	root := ""
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed XML: %v", err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				root = e.Name.Local
				if e.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q, want the SVG namespace", e.Name.Space)
				}
			}
			if e.Name.Local == "title" && len(pts) > 0 {
				pts[len(pts)-1].titleFound = true
			}
			if e.Name.Local != "circle" {
				continue
			}
			a := map[string]string{}
			for _, at := range e.Attr {
				a[at.Name.Local] = at.Value
			}
			if a["class"] != "point" {
				continue
			}
			f := func(k string) float64 {
				v, err := strconv.ParseFloat(a[k], 64)
				if err != nil {
					t.Fatalf("circle attribute %s=%q: %v", k, a[k], err)
				}
				return v
			}
			p := point{series: a["data-series"], x: f("data-x"), y: f("data-y"), cx: f("cx"), cy: f("cy")}
			if s, ok := a["data-n"]; ok {
				p.n, _ = strconv.Atoi(s)
				p.hasN = true
			}
			pts = append(pts, p)
		case xml.EndElement:
			depth--
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return pts
}

// checkPixels: a point's pixel position is its value on the plot's axes.
func checkPixels(t *testing.T, p point) {
	t.Helper()
	if math.Abs(p.cx-(left+p.x*plotW)) > 0.006 || math.Abs(p.cy-(top+(1-p.y)*plotH)) > 0.006 {
		t.Errorf("%s: point (%g, %g) drawn at (%g, %g)", p.series, p.x, p.y, p.cx, p.cy)
	}
}

// TestReliabilityPoints: the diagram is well-formed SVG whose points are, per
// populated bin, the mean prediction and the observed frequency computed here
// directly from the predictions, with the bin's count; empty bins are absent.
func TestReliabilityPoints(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const n = 500
	probs := make([]float64, n)
	labels := make([]bool, n)
	for i := range probs {
		probs[i] = r.Float64() * 0.55 // bins 6..9 stay empty
		labels[i] = r.Float64() < probs[i]*1.2
	}
	bins, err := metrics.Calibration(probs, labels, 10)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Reliability(&buf, "test <&> chart", []ReliabilitySeries{{Name: "hazard", Bins: bins}, {Name: "b&b", Bins: bins[:2]}}); err != nil {
		t.Fatal(err)
	}
	pts := parse(t, buf.Bytes())
	// Independent bin values: bin k holds k/10 ≤ p < (k+1)/10.
	var sum [10]float64
	var cnt, pos [10]int
	for i, p := range probs {
		k := int(math.Floor(p * 10))
		sum[k] += p
		cnt[k]++
		if labels[i] {
			pos[k]++
		}
	}
	var want []point
	for k := range 10 {
		if cnt[k] > 0 {
			want = append(want, point{series: "hazard", x: sum[k] / float64(cnt[k]), y: float64(pos[k]) / float64(cnt[k]), n: cnt[k]})
		}
	}
	if len(want) != 6 {
		t.Fatalf("test data populate %d bins, want 6", len(want))
	}
	if len(pts) != len(want)+2 {
		t.Fatalf("got %d points, want %d", len(pts), len(want)+2)
	}
	for i, w := range want {
		p := pts[i]
		if p.series != w.series || math.Abs(p.x-w.x) > 1e-12 || math.Abs(p.y-w.y) > 1e-12 || !p.hasN || p.n != w.n {
			t.Errorf("point %d: got %s (%g, %g) n=%d, want %s (%g, %g) n=%d", i, p.series, p.x, p.y, p.n, w.series, w.x, w.y, w.n)
		}
		if !p.titleFound {
			t.Errorf("point %d has no title", i)
		}
		checkPixels(t, p)
	}
	if pts[len(want)].series != "b&b" {
		t.Errorf("second series name %q, want b&b (escaped in the file, plain after parsing)", pts[len(want)].series)
	}
	if !strings.Contains(buf.String(), "test &lt;&amp;&gt; chart") {
		t.Error("title not escaped")
	}
}

// TestGainPoints: the gain chart's points are the top-share buyer fractions
// computed here by sorting customers with distinct scores.
func TestGainPoints(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const n = 400
	scores := make([]float64, n)
	labels := make([]bool, n)
	for i := range scores {
		scores[i] = r.Float64()
		labels[i] = r.Float64() < scores[i]*scores[i]
	}
	gain, err := metrics.CumulativeGain(scores, labels, 20)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Gain(&buf, "gain", []GainSeries{{Name: "hazard", Points: gain}}); err != nil {
		t.Fatal(err)
	}
	pts := parse(t, buf.Bytes())
	if len(pts) != 20 {
		t.Fatalf("got %d points, want 20", len(pts))
	}
	// Independent: rank by score (distinct with probability 1), count buyers
	// in the top 20·(k+1) customers.
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < n; i++ { // insertion sort, descending
		for j := i; j > 0 && scores[idx[j]] > scores[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	total := 0
	for _, l := range labels {
		if l {
			total++
		}
	}
	found := 0
	for k := range 20 {
		for _, i := range idx[20*k : 20*(k+1)] {
			if labels[i] {
				found++
			}
		}
		p := pts[k]
		wantX, wantY := float64(k+1)/20, float64(found)/float64(total)
		if math.Abs(p.x-wantX) > 1e-12 || math.Abs(p.y-wantY) > 1e-12 || p.hasN {
			t.Errorf("point %d: got (%g, %g), want (%g, %g)", k, p.x, p.y, wantX, wantY)
		}
		checkPixels(t, p)
	}
}

func TestChartErrors(t *testing.T) {
	if err := Reliability(io.Discard, "x", nil); err == nil {
		t.Error("reliability without series: no error")
	}
	if err := Gain(io.Discard, "x", nil); err == nil {
		t.Error("gain without series: no error")
	}
	bad := []metrics.Bin{{Lo: 0, Hi: 0.1, Count: 3, MeanPred: math.NaN(), FracPos: 0.5}}
	if err := Reliability(io.Discard, "x", []ReliabilitySeries{{Name: "m", Bins: bad}}); err == nil {
		t.Error("NaN mean in a populated bin: no error")
	}
	if err := Gain(io.Discard, "x", []GainSeries{{Name: "m", Points: []metrics.GainPoint{{Share: 0.5, Captured: 1.5}}}}); err == nil {
		t.Error("gain above 1: no error")
	}
}
