package metrics

import (
	"fmt"
	"math"
	"sort"
)

// JDataEntry is one line of a JData-2018-style submission: a customer predicted
// to buy in the window and the day of the first purchase predicted for them.
type JDataEntry struct {
	User string
	Day  int
}

// JData scores a ranked submission the way the JData 2018 purchase-date task did:
//
//	S  = 0.4·S1 + 0.6·S2
//	S1 = Σᵢ wᵢ·oᵢ / Σᵢ wᵢ,  wᵢ = 1/(1 + ln i),  oᵢ = 1 if the i-th listed user buys
//	S2 = (1/|U_true|)·Σ over listed true buyers of 10/(10 + d²)
//
// where i runs over the list from rank 1, truth maps every user who truly buys in
// the window to the day of their first purchase, and d is the predicted day minus
// the true day. True buyers who are not listed add 0 to S2. A user may be listed once.
func JData(list []JDataEntry, truth map[string]int) (s, s1, s2 float64, err error) {
	const op = "jdata score"
	if len(list) == 0 {
		return 0, 0, 0, fmt.Errorf("%s: empty submission: %w", op, ErrEmpty)
	}
	if len(truth) == 0 {
		return 0, 0, 0, fmt.Errorf("%s: no true buyers: %w", op, ErrOneClass)
	}
	seen := make(map[string]int, len(list))
	var num, den, sum2 float64
	for i, e := range list {
		if prev, dup := seen[e.User]; dup {
			return 0, 0, 0, fmt.Errorf("%s: user %q listed at ranks %d and %d", op, e.User, prev+1, i+1)
		}
		seen[e.User] = i
		w := 1 / (1 + math.Log(float64(i+1)))
		den += w
		day, buys := truth[e.User]
		if !buys {
			continue
		}
		num += w
		d := float64(e.Day - day)
		sum2 += 10 / (10 + d*d)
	}
	s1 = num / den
	s2 = sum2 / float64(len(truth))
	return 0.4*s1 + 0.6*s2, s1, s2, nil
}

// JDataList builds a submission from per-user scores and predicted days: the n
// users with the highest scores, best first, ties broken by user id so the list
// is deterministic. A natural n is the expected number of buyers (the sum of the
// predicted purchase probabilities). n larger than the population lists everyone.
func JDataList(users []string, scores []float64, days []int, n int) ([]JDataEntry, error) {
	const op = "jdata list"
	if len(days) != len(users) {
		return nil, fmt.Errorf("%s: %d users, %d days: %w", op, len(users), len(days), ErrLength)
	}
	if err := checkScores(op, scores, len(users)); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, fmt.Errorf("%s: list length %d, want at least 1", op, n)
	}
	idx := make([]int, len(users))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		ia, ib := idx[a], idx[b]
		if scores[ia] != scores[ib] {
			return scores[ia] > scores[ib]
		}
		return users[ia] < users[ib]
	})
	n = min(n, len(idx))
	out := make([]JDataEntry, n)
	for k := range n {
		out[k] = JDataEntry{User: users[idx[k]], Day: days[idx[k]]}
	}
	return out, nil
}

// DayAccuracy scores predicted first-purchase days against the true ones over
// the customers who truly buy: s2 is the mean of 10/(10 + d²), d = predicted −
// true day (JData 2018's S2 with every true buyer listed), and mae the mean
// |d| in days. pred and truth are parallel; a predicted day may be fractional
// (an expected day).
func DayAccuracy(pred []float64, truth []int) (s2, mae float64, err error) {
	const op = "day accuracy"
	if len(pred) != len(truth) {
		return 0, 0, fmt.Errorf("%s: %d predictions, %d true days: %w", op, len(pred), len(truth), ErrLength)
	}
	if len(pred) == 0 {
		return 0, 0, fmt.Errorf("%s: %w", op, ErrEmpty)
	}
	for i, p := range pred {
		if math.IsNaN(p) || math.IsInf(p, 0) {
			return 0, 0, fmt.Errorf("%s: prediction %d is %v: %w", op, i, p, ErrNotFinite)
		}
		d := p - float64(truth[i])
		s2 += 10 / (10 + d*d)
		mae += math.Abs(d)
	}
	n := float64(len(pred))
	return s2 / n, mae / n, nil
}
