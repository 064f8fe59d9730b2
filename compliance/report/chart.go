package report

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/kairos-fl/kairos/compliance"
)

// Chart geometry, in SVG user units. The plot area is the rectangle
// [PlotLeft, PlotLeft+PlotWidth] × [PlotTop, PlotTop+PlotHeight]; time runs
// left to right from the first release to the last, ε bottom (0) to top
// (YMax).
const (
	ChartWidth  = 560
	ChartHeight = 240
	PlotLeft    = 60
	PlotTop     = 30
	PlotWidth   = 470
	PlotHeight  = 170
)

// Axes is the mapping of a chart from data to plot coordinates.
type Axes struct {
	T0, T1 time.Time // times at the left and right edges
	YMax   float64   // ε at the top edge
}

// ChartAxes returns the axes Chart draws b on: time from the first release
// to the last (one hour wide when they coincide or there are none), and ε
// from 0 to 10% above the larger of the cap and the ε spent (1 when both
// are 0).
func ChartAxes(b compliance.Budget) Axes {
	var a Axes
	if len(b.Points) > 0 {
		a.T0, a.T1 = b.Points[0].At, b.Points[len(b.Points)-1].At
	}
	if !a.T1.After(a.T0) {
		a.T1 = a.T0.Add(time.Hour)
	}
	a.YMax = 1.1 * max(b.Cap, b.Epsilon, b.LocalCap)
	if a.YMax <= 0 || math.IsInf(a.YMax, 0) || math.IsNaN(a.YMax) {
		a.YMax = 1
	}
	return a
}

// X maps a time to its horizontal coordinate.
func (a Axes) X(t time.Time) float64 {
	return PlotLeft + PlotWidth*float64(t.Sub(a.T0))/float64(a.T1.Sub(a.T0))
}

// Y maps an ε to its vertical coordinate.
func (a Axes) Y(eps float64) float64 {
	return PlotTop + PlotHeight*(1-math.Min(eps, a.YMax)/a.YMax)
}

// Chart draws b's ε spent over time as a self-contained SVG document: one
// polyline vertex per ledger release at (time, ε after it), a dashed line at
// the federation's cap, a dotted one at the merchant's own cap when known
// (b.LocalCap), axis labels, and a tooltip per release. Coordinates are written with two
// decimals.
func Chart(b compliance.Budget) []byte {
	a := ChartAxes(b)
	var w bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	fmt.Fprintf(&w, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" class="epsilon-over-time" font-family="sans-serif" font-size="11">`,
		ChartWidth, ChartHeight, ChartWidth, ChartHeight)
	fmt.Fprintf(&w, "\n<title>ε spent over time by merchant %s against its caps</title>\n", esc(b.Merchant))
	fmt.Fprintf(&w, `<rect x="%d" y="%d" width="%d" height="%d" fill="#fafafa" stroke="#999"/>`+"\n", PlotLeft, PlotTop, PlotWidth, PlotHeight)
	fmt.Fprintf(&w, `<text x="%d" y="18" font-size="13" font-weight="bold">%s — ε spent over time</text>`+"\n", PlotLeft, esc(b.Merchant))
	// ε axis: 0, half, and the top.
	for _, v := range []float64{0, a.YMax / 2, a.YMax} {
		fmt.Fprintf(&w, `<text x="%d" y="%s" text-anchor="end">%s</text>`+"\n", PlotLeft-6, f(a.Y(v)+4), esc(strconv.FormatFloat(v, 'g', 3, 64)))
	}
	fmt.Fprintf(&w, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">ε at δ = %s</text>`+"\n",
		PlotTop+PlotHeight/2, PlotTop+PlotHeight/2, esc(strconv.FormatFloat(b.Delta, 'g', -1, 64)))
	// time axis: the two ends.
	if len(b.Points) > 0 {
		fmt.Fprintf(&w, `<text x="%d" y="%d">%s</text>`+"\n", PlotLeft, PlotTop+PlotHeight+16, a.T0.UTC().Format("2006-01-02 15:04Z"))
		fmt.Fprintf(&w, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", PlotLeft+PlotWidth, PlotTop+PlotHeight+16, a.T1.UTC().Format("2006-01-02 15:04Z"))
	}
	if b.Cap > 0 {
		y := f(a.Y(b.Cap))
		fmt.Fprintf(&w, `<line class="cap" x1="%d" y1="%s" x2="%d" y2="%s" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n",
			PlotLeft, y, PlotLeft+PlotWidth, y)
		fmt.Fprintf(&w, `<text x="%d" y="%s" text-anchor="end" fill="#c0392b">cap %s</text>`+"\n",
			PlotLeft+PlotWidth-4, f(a.Y(b.Cap)-4), esc(strconv.FormatFloat(b.Cap, 'g', -1, 64)))
	}
	if b.LocalCap > 0 {
		y := f(a.Y(b.LocalCap))
		label := "local cap " + strconv.FormatFloat(b.LocalCap, 'g', -1, 64)
		if b.LocalDelta > 0 && b.LocalDelta != b.Delta {
			label += " at δ " + strconv.FormatFloat(b.LocalDelta, 'g', -1, 64)
		}
		fmt.Fprintf(&w, `<line class="local-cap" x1="%d" y1="%s" x2="%d" y2="%s" stroke="#e67e22" stroke-width="1.5" stroke-dasharray="2 3"/>`+"\n",
			PlotLeft, y, PlotLeft+PlotWidth, y)
		fmt.Fprintf(&w, `<text x="%d" y="%s" fill="#e67e22">%s</text>`+"\n", PlotLeft+4, f(a.Y(b.LocalCap)-4), esc(label))
	}
	if len(b.Points) == 0 {
		fmt.Fprintf(&w, `<text x="%d" y="%d" text-anchor="middle" fill="#666">no releases yet</text>`+"\n", PlotLeft+PlotWidth/2, PlotTop+PlotHeight/2)
	} else {
		w.WriteString(`<polyline class="epsilon" fill="none" stroke="#2c7fb8" stroke-width="2" points="`)
		for i, p := range b.Points {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString(f(a.X(p.At)) + "," + f(a.Y(p.Epsilon)))
		}
		w.WriteString("\"/>\n")
		for _, p := range b.Points {
			fmt.Fprintf(&w, `<circle cx="%s" cy="%s" r="2.5" fill="#2c7fb8"><title>release %d, %s: ε = %.5f</title></circle>`+"\n",
				f(a.X(p.At)), f(a.Y(p.Epsilon)), p.Seq, p.At.UTC().Format(time.RFC3339), p.Epsilon)
		}
	}
	w.WriteString("</svg>\n")
	return w.Bytes()
}
