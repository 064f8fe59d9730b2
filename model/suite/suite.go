// Package suite is Kairos's evaluation data-set suite: which data sets a model
// is measured on, each with its file, reader and time-split protocol (the
// built-in CDNOW, Online Retail and grocery protocols, plus the data sets of a
// user's suite file), and the run that scores every Kairos model and baseline
// on every data set into one result.
package suite

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/evaluate"
)

// Readers a Dataset can name in Format. The package does not read files
// itself (see Loader); it only checks that a Dataset names one of these.
const (
	// FormatCDNOW is CDNOW_master.txt.
	FormatCDNOW = "cdnow"
	// FormatCDNOWSample is CDNOW_sample.txt.
	FormatCDNOWSample = "cdnow-sample"
	// FormatOnlineRetail is the UCI Online Retail export; a purchase is one
	// non-cancelled invoice of a known customer (lines of an invoice merged).
	FormatOnlineRetail = "online-retail"
	// FormatGrocery is the BTYDplus grocery log (cust,date).
	FormatGrocery = "grocery"
	// FormatCSV is a delimited file described by the column mapping in
	// Dataset.Mapping.
	FormatCSV = "csv"
)

// Formats lists the readers a Dataset can name, in a stable order.
func Formats() []string {
	return []string{FormatCDNOW, FormatCDNOWSample, FormatOnlineRetail, FormatGrocery, FormatCSV}
}

// Dataset is one data set of the suite and its protocol: a 30-day purchase
// label, features strictly before each cutoff, the customers scored at a
// cutoff being those with an event before it, and every training label window
// ending at or before TestCutoff.
type Dataset struct {
	Name string
	// Path is the event file. A relative path is resolved by Resolve: against
	// the data directory for a built-in data set, against the suite file's
	// directory for one from a file.
	Path string
	// Format is one of Formats.
	Format string
	// Mapping is the column mapping YAML of a FormatCSV file (resolved like
	// Path); empty otherwise.
	Mapping      string
	TestCutoff   time.Time
	TrainCutoffs []time.Time
	// Location is the shop's zone (a csv mapping's zone; nil = UTC): the
	// cutoffs, dates as a suite file or the default rule gives them, are its
	// midnights, the default rule counts its days, and local-time features
	// are computed in it, as `kairos eval --dataset csv` does.
	Location *time.Location
}

// Builtin returns the suite's reference protocols, as the shared data
// README's suite table gives them, with paths relative to the data directory:
//
//   - cdnow: CDNOW_master.txt, test cutoff 1998-03-01, training cutoffs
//     1997-07-01, -09-01, -11-01, 1998-01-01;
//   - online-retail-full: the complete UCI Online Retail export, test cutoff
//     2011-11-09, training cutoffs the first of every month 2011-05 .. 2011-10;
//   - grocery: the BTYDplus grocery log, test cutoff 2007-12-01, training
//     cutoffs 2007-03-01, -05-01, -07-01, -09-01, -10-01.
func Builtin() []Dataset {
	return []Dataset{
		{Name: "cdnow", Path: "cdnow/CDNOW_master.txt", Format: FormatCDNOW,
			TestCutoff: day("1998-03-01"), TrainCutoffs: days("1997-07-01", "1997-09-01", "1997-11-01", "1998-01-01")},
		{Name: "online-retail-full", Path: "online_retail_full/online_retail.csv.gz", Format: FormatOnlineRetail,
			TestCutoff:   day("2011-11-09"),
			TrainCutoffs: days("2011-05-01", "2011-06-01", "2011-07-01", "2011-08-01", "2011-09-01", "2011-10-01")},
		{Name: "grocery", Path: "grocery_btydplus/groceryElog.csv", Format: FormatGrocery,
			TestCutoff: day("2007-12-01"), TrainCutoffs: days("2007-03-01", "2007-05-01", "2007-07-01", "2007-09-01", "2007-10-01")},
	}
}

// day parses a built-in date; a typo in this file is a programming error.
func day(s string) time.Time {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return t
}

func days(ss ...string) []time.Time {
	out := make([]time.Time, len(ss))
	for i, s := range ss {
		out[i] = day(s)
	}
	return out
}

// Validate checks that d names a reader and a protocol evaluate can run: a
// name, a path, a mapping exactly for csv, and training cutoffs each of whose
// 30-day label windows ends at or before the test cutoff.
func (d Dataset) Validate() error {
	if d.Name == "" {
		return errors.New("data set without a name")
	}
	if d.Path == "" {
		return fmt.Errorf("data set %s: path is required", d.Name)
	}
	if !slices.Contains(Formats(), d.Format) {
		return fmt.Errorf("data set %s: unknown format %q (want one of %v)", d.Name, d.Format, Formats())
	}
	if (d.Format == FormatCSV) != (d.Mapping != "") {
		return fmt.Errorf("data set %s: a mapping is required for format csv and only for it", d.Name)
	}
	// Cutoffs left out follow evaluate's default rule once the events are
	// read (Dataset.WithDefaultCutoffs); a training cutoff needs a test cutoff
	// to be checked against, so the test cutoff comes first.
	if d.TestCutoff.IsZero() && len(d.TrainCutoffs) > 0 {
		return fmt.Errorf("data set %s: training cutoffs without a test cutoff (give both, only the test cutoff, or neither for the default rule)", d.Name)
	}
	for _, c := range d.TrainCutoffs {
		if end := c.Add(model.Horizon * model.Day); end.After(d.TestCutoff) {
			return fmt.Errorf("data set %s: training cutoff %s: its %d-day label window ends %s, after the test cutoff %s",
				d.Name, c.Format(time.DateOnly), model.Horizon, end.Format(time.DateOnly), d.TestCutoff.Format(time.DateOnly))
		}
	}
	return nil
}

// WithDefaultCutoffs returns d with the cutoffs it leaves out chosen by
// evaluate's default rule from the span of events, as `kairos eval --dataset
// csv` does: no test cutoff means evaluate.DefaultProtocol, a test cutoff
// without training cutoffs means evaluate.DefaultTrainCutoffs, days counted
// in d.Location's calendar. The cutoffs stay dates (UTC midnights) until
// InZone places them at the shop's midnights. chosen names what was filled in
// ("" when nothing was). A log too short for the rule gets evaluate's error,
// which says how long it must be.
func (d Dataset) WithDefaultCutoffs(events []model.Event) (out Dataset, chosen string, err error) {
	if !d.TestCutoff.IsZero() && len(d.TrainCutoffs) > 0 {
		return d, "", nil
	}
	if len(events) == 0 {
		return d, "", fmt.Errorf("data set %s: no events to choose default cutoffs from", d.Name)
	}
	first, last := evaluate.Span(events)
	first, last = evaluate.WallClock(first, d.Location), evaluate.WallClock(last, d.Location)
	if d.TestCutoff.IsZero() {
		p, err := evaluate.DefaultProtocol(first, last, model.Horizon)
		if err != nil {
			return d, "", fmt.Errorf("data set %s: %w", d.Name, err)
		}
		d.TestCutoff, d.TrainCutoffs = p.Test, p.Train
		chosen = "test cutoff and training cutoffs"
	} else {
		if d.TrainCutoffs, err = evaluate.DefaultTrainCutoffs(first, d.TestCutoff, model.Horizon); err != nil {
			return d, "", fmt.Errorf("data set %s: %w", d.Name, err)
		}
		chosen = "training cutoffs"
	}
	return d, fmt.Sprintf("%s by the default rule from the events' span %s .. %s", chosen,
		first.UTC().Format(time.DateOnly), last.UTC().Format(time.DateOnly)), nil
}

// InZone returns d with its cutoffs, dates, placed at the midnights of
// d.Location (evaluate.Protocol.InZone); unchanged without a zone.
func (d Dataset) InZone() Dataset {
	p := evaluate.Protocol{Test: d.TestCutoff, Train: d.TrainCutoffs}.InZone(d.Location)
	d.TestCutoff, d.TrainCutoffs = p.Test, p.Train
	return d
}

// Date formats a cutoff of d as the shop's calendar date.
func (d Dataset) Date(t time.Time) string {
	if d.Location != nil {
		t = t.In(d.Location)
	}
	return t.Format(time.DateOnly)
}

// Merge returns base with every data set of extra added, a data set of extra
// replacing the one of base with the same name in place.
func Merge(base, extra []Dataset) []Dataset {
	out := slices.Clone(base)
	for _, d := range extra {
		i := slices.IndexFunc(out, func(b Dataset) bool { return b.Name == d.Name })
		if i >= 0 {
			out[i] = d
			continue
		}
		out = append(out, d)
	}
	return out
}

// Resolve returns d with a relative Path and Mapping joined to dir.
func (d Dataset) Resolve(dir string) Dataset {
	if d.Path != "" && !filepath.IsAbs(d.Path) {
		d.Path = filepath.Join(dir, d.Path)
	}
	if d.Mapping != "" && !filepath.IsAbs(d.Mapping) {
		d.Mapping = filepath.Join(dir, d.Mapping)
	}
	return d
}
