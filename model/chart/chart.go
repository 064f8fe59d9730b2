// Package chart draws evaluation charts as standalone SVG files that any
// browser opens without Kairos: the reliability diagram of predicted
// probabilities and the cumulative gain chart of a ranking, several methods
// to a chart.
//
// Every plotted point is an SVG circle of class "point" carrying its series
// and its values as attributes (data-series, data-x, data-y, and data-n for a
// reliability bin), and a <title> a browser shows on hover, so that a reader
// or a test can recover the numbers exactly rather than from pixels.
package chart

import (
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/kairos-fl/kairos/model/metrics"
)

// ReliabilitySeries is one method's calibration table.
type ReliabilitySeries struct {
	Name string
	Bins []metrics.Bin
}

// GainSeries is one method's cumulative gain curve.
type GainSeries struct {
	Name   string
	Points []metrics.GainPoint
}

// Geometry of every chart, in SVG user units.
const (
	width, height = 800, 560
	left, top     = 70, 50
	plotW, plotH  = 420, 420
	legendX       = left + plotW + 30
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

// px maps a value in [0, 1] to the plot's x coordinate.
func px(v float64) float64 { return left + v*plotW }

// py maps a value in [0, 1] to the plot's y coordinate (up is larger).
func py(v float64) float64 { return top + (1-v)*plotH }

// Reliability writes a reliability diagram: per populated bin, the mean
// predicted probability (x) against the observed frequency (y), one line per
// series, the diagonal of perfect calibration, and the bin counts in the
// legend. Empty bins are not drawn.
func Reliability(w io.Writer, title string, series []ReliabilitySeries) error {
	if len(series) == 0 {
		return errors.New("reliability chart: no series")
	}
	var b strings.Builder
	begin(&b, title, "mean predicted probability (30 days)", "observed frequency")
	line(&b, px(0), py(0), px(1), py(1), `stroke="#999" stroke-dasharray="4 4"`)
	for i, s := range series {
		color := palette[i%len(palette)]
		var pts []string
		var counts []string
		for _, bin := range s.Bins {
			if bin.Count == 0 {
				continue
			}
			if !finite01(bin.MeanPred) || !finite01(bin.FracPos) {
				return fmt.Errorf("reliability chart: %s: bin [%g, %g): mean %v, observed %v outside [0, 1]", s.Name, bin.Lo, bin.Hi, bin.MeanPred, bin.FracPos)
			}
			x, y := px(bin.MeanPred), py(bin.FracPos)
			pts = append(pts, coord(x)+","+coord(y))
			counts = append(counts, strconv.Itoa(bin.Count))
			fmt.Fprintf(&b, `<circle class="point" cx="%s" cy="%s" r="4" fill="%s" data-series="%s" data-x="%s" data-y="%s" data-n="%d">`+
				`<title>%s: bin [%.1f, %.1f), n = %d, predicted %.4f, observed %.4f</title></circle>`+"\n",
				coord(x), coord(y), color, esc(s.Name), val(bin.MeanPred), val(bin.FracPos), bin.Count,
				esc(s.Name), bin.Lo, bin.Hi, bin.Count, bin.MeanPred, bin.FracPos)
		}
		polyline(&b, pts, color)
		var notes []string
		for len(counts) > 0 {
			k := min(len(counts), 5)
			notes = append(notes, strings.Join(counts[:k], " "))
			counts = counts[k:]
		}
		if len(notes) > 0 {
			notes[0] = "n per bin: " + notes[0]
		}
		legend(&b, i, s.Name, color, notes...)
	}
	return end(w, &b)
}

// Gain writes a cumulative gain chart: the share of all 30-day buyers found
// (y) when targeting the top share of customers by score (x), one line per
// series from (0, 0), the diagonal of random targeting, and each series' lift
// at the first point in the legend.
func Gain(w io.Writer, title string, series []GainSeries) error {
	if len(series) == 0 {
		return errors.New("gain chart: no series")
	}
	var b strings.Builder
	begin(&b, title, "share of customers targeted, by score", "share of 30-day buyers found")
	line(&b, px(0), py(0), px(1), py(1), `stroke="#999" stroke-dasharray="4 4"`)
	for i, s := range series {
		color := palette[i%len(palette)]
		pts := []string{coord(px(0)) + "," + coord(py(0))}
		for _, p := range s.Points {
			if !finite01(p.Share) || !finite01(p.Captured) {
				return fmt.Errorf("gain chart: %s: point (%v, %v) outside [0, 1]", s.Name, p.Share, p.Captured)
			}
			x, y := px(p.Share), py(p.Captured)
			pts = append(pts, coord(x)+","+coord(y))
			fmt.Fprintf(&b, `<circle class="point" cx="%s" cy="%s" r="3" fill="%s" data-series="%s" data-x="%s" data-y="%s">`+
				`<title>%s: top %.0f%%: %.1f%% of buyers, lift %.2f</title></circle>`+"\n",
				coord(x), coord(y), color, esc(s.Name), val(p.Share), val(p.Captured),
				esc(s.Name), 100*p.Share, 100*p.Captured, p.Lift)
		}
		polyline(&b, pts, color)
		var note []string
		if len(s.Points) > 0 {
			p := s.Points[0]
			note = append(note, fmt.Sprintf("lift %.2f in the top %.0f%%", p.Lift, 100*p.Share))
		}
		legend(&b, i, s.Name, color, note...)
	}
	return end(w, &b)
}

func finite01(v float64) bool { return !math.IsNaN(v) && v >= 0 && v <= 1 }

// coord formats a pixel coordinate; val a data value, exactly (shortest form
// that parses back to the same float64).
func coord(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
func val(v float64) string   { return strconv.FormatFloat(v, 'g', -1, 64) }

func esc(s string) string { return html.EscapeString(s) }

func begin(b *strings.Builder, title, xLabel, yLabel string) {
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		width, height, width, height)
	fmt.Fprintf(b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="15">%s</text>`+"\n", left, top-20, esc(title))
	for k := 0; k <= 10; k++ {
		v := float64(k) / 10
		style := `stroke="#eee"`
		if k == 0 {
			style = `stroke="#333"`
		}
		line(b, px(0), py(v), px(1), py(v), style)
		line(b, px(v), py(0), px(v), py(1), style)
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%.1f</text>`+"\n", coord(px(v)), coord(py(0)+16), v)
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end">%.1f</text>`+"\n", coord(px(0)-6), coord(py(v)+4), v)
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", coord(px(0.5)), coord(py(0)+36), esc(xLabel))
	fmt.Fprintf(b, `<text transform="translate(%d %s) rotate(-90)" text-anchor="middle">%s</text>`+"\n", left-45, coord(py(0.5)), esc(yLabel))
}

func line(b *strings.Builder, x1, y1, x2, y2 float64, style string) {
	fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" %s/>`+"\n", coord(x1), coord(y1), coord(x2), coord(y2), style)
}

func polyline(b *strings.Builder, pts []string, color string) {
	if len(pts) < 2 {
		return
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", strings.Join(pts, " "), color)
}

// legend draws entry i: a swatch, the series name and up to two note lines.
func legend(b *strings.Builder, i int, name, color string, notes ...string) {
	y := top + 10 + i*52
	fmt.Fprintf(b, `<rect x="%d" y="%d" width="12" height="12" fill="%s"/>`+"\n", legendX, y-10, color)
	fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", legendX+18, y, esc(name))
	for k, n := range notes[:min(len(notes), 2)] {
		fmt.Fprintf(b, `<text x="%d" y="%d" font-size="10" fill="#555">%s</text>`+"\n", legendX+18, y+14+12*k, esc(n))
	}
}

func end(w io.Writer, b *strings.Builder) error {
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
