package evaluate

import (
	"errors"
	"fmt"
	"time"

	"github.com/kairos-fl/kairos/model"
	"github.com/kairos-fl/kairos/model/bgnbd"
	"github.com/kairos-fl/kairos/model/feature"
	"github.com/kairos-fl/kairos/model/hazard"
)

// week is BG/NBD's time unit here, as in the published CDNOW fits.
const week = 7 * model.Day

// bgnbdMethod fits BG/NBD by maximum likelihood on every customer's purchase
// history before each cutoff it is asked about, and predicts P(at least one
// purchase within h days). Customers without a purchase before the cutoff get
// probability 0. The predicted day (for the JData score) is day.
func bgnbdMethod(hist histories, day int) (method, error) {
	return method{name: MethodBGNBD, probs: true, pred: func(rows []feature.Row, tau time.Time) ([]prediction, error) {
		sums := make([]bgnbd.Customer, len(rows))
		has := make([]bool, len(rows))
		var fit []bgnbd.Customer
		for i, r := range rows {
			c, err := bgnbd.SummarizeBefore(hist[r.Customer], tau, week)
			if errors.Is(err, bgnbd.ErrNoPurchases) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("bgnbd: customer %q: %w", r.Customer, err)
			}
			sums[i], has[i] = c, true
			if c.T > 0 {
				fit = append(fit, c)
			}
		}
		p, _, err := bgnbd.Fit(fit, bgnbd.FitOptions{})
		if err != nil {
			return nil, fmt.Errorf("bgnbd: %w", err)
		}
		out := make([]prediction, len(rows))
		for i := range rows {
			out[i].day = day
			if !has[i] {
				continue
			}
			for k, h := range hazard.Horizons {
				out[i].within[k] = p.ProbPurchaseWithin(sums[i], float64(h)/7)
			}
			for k, h := range hazard.LongHorizons {
				out[i].beyond[k] = p.ProbPurchaseWithin(sums[i], float64(h)/7)
			}
			out[i].score = out[i].within[len(hazard.Horizons)-1]
		}
		return out, nil
	}}, nil
}
