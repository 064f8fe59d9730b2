// Package secureplan turns a secure round's public plan (protocol.SecurePlan)
// into what both sides of the round run: the SecAgg+ configuration, the
// distributed-DP encoding and the ledger release, and builds a merchant's
// per-customer contributions in the layout the aggregator decodes. The
// merchant's client and the aggregator import it so that they cannot derive
// different rounds from one plan.
package secureplan

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/dp"
	"github.com/kairos-fl/kairos/dp/distributed"
)

// ErrInvalid is wrapped by every error of Decode.
var ErrInvalid = errors.New("invalid secure plan")

// Round is a decoded secure plan.
type Round struct {
	Config  secagg.Config
	Params  distributed.Params
	Release dp.Release
	// CountScale is each sampled customer's value in the last coordinate.
	CountScale float64
}

// Decode checks p and derives the round from it.
func Decode(p *protocol.SecurePlan) (Round, error) {
	fail := func(format string, a ...any) (Round, error) {
		return Round{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
	}
	if p == nil {
		return fail("none")
	}
	var r Round
	seed, err := hex.DecodeString(p.Seed)
	if err != nil || len(seed) != 32 {
		return fail("seed %q is not 64 hex digits", p.Seed)
	}
	copy(r.Config.Seed[:], seed)
	dec := json.NewDecoder(bytes.NewReader(p.Encoding))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.Params); err != nil {
		return fail("encoding: %v", err)
	}
	if err := r.Params.Validate(); err != nil {
		return fail("encoding: %v", err)
	}
	if r.Params.Seed != distributed.Seed(r.Config.Seed) {
		return fail("the encoding's rotation seed is not the round's")
	}
	dec = json.NewDecoder(bytes.NewReader(p.Release))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r.Release); err != nil {
		return fail("release: %v", err)
	}
	want, err := r.Params.Release(r.Release.Cohort, r.Release.Q, 1)
	if err != nil {
		return fail("release: %v", err)
	}
	if r.Release != want {
		return fail("release %+v is not the encoding's (%+v)", r.Release, want)
	}
	if p.MinSurvivors < r.Release.Cohort {
		// The guarantee counts on Cohort honest noise shares: a sum of fewer
		// must never be unmasked.
		return fail("min survivors %d below the release's cohort %d", p.MinSurvivors, r.Release.Cohort)
	}
	if !(p.CountScale > 0 && p.CountScale < r.Params.Clip) {
		return fail("count scale %v outside (0, clip %v)", p.CountScale, r.Params.Clip)
	}
	r.CountScale = p.CountScale
	r.Config.Clients = make([]uint32, len(p.Merchants))
	for i := range p.Merchants {
		r.Config.Clients[i] = uint32(i + 1)
	}
	r.Config.Degree, r.Config.Threshold, r.Config.MinSurvivors = p.Degree, p.Threshold, p.MinSurvivors
	r.Config.Bits, r.Config.Length = r.Params.Bits, r.Params.PaddedDim()
	// Always on, and not a field of the plan: the aggregator writes the plan,
	// and the check is what keeps an aggregator that deviates (different
	// unmask requests to different merchants) from reading one merchant's
	// input (docs/privacy.md §16).
	r.Config.Consistency = true
	// Always on too: a merchant shares only with neighbours whose keys carry
	// their enrolled signature (AdvertStatement), so that the aggregator
	// cannot substitute keys of its own (docs/privacy.md §14a).
	r.Config.SignedAdverts = true
	if err := r.Config.Validate(); err != nil {
		return fail("%v", err)
	}
	return r, nil
}

// advertDomain separates an advert's signature from every other use of a
// merchant's signing key (envelopes sign other bytes under seal's own domain).
const advertDomain = "kairos secagg advertise v1\x00"

// AdvertStatement is what a merchant signs with its enrolled Ed25519 key for
// its advert in a secure round: a domain label, then, each with its length,
// the aggregator's recipient (the identity the round's messages are sealed
// to), the round id, the round's public seed, the merchant id and its SecAgg
// id, and the two public keys. It binds the keys to this merchant in this
// round of this aggregator, so that they cannot be relayed as another
// merchant's, or another round's.
func AdvertStatement(aggregator, round string, p *protocol.SecurePlan, merchant string, id uint32, cPub, sPub [secagg.KeySize]byte) []byte {
	b := []byte(advertDomain)
	for _, f := range []string{aggregator, round, p.Seed, merchant} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	b = binary.BigEndian.AppendUint32(b, id)
	b = append(b, cPub[:]...)
	return append(b, sPub[:]...)
}

// SignAdvert sets m.Sig: merchant's signature of its advert (AdvertStatement).
func SignAdvert(key ed25519.PrivateKey, aggregator, round string, p *protocol.SecurePlan, merchant string, m *secagg.AdvertiseMsg) {
	m.Sig = ed25519.Sign(key, AdvertStatement(aggregator, round, p, merchant, m.From, m.CPub, m.SPub))
}

// ErrAdvertSignature is wrapped by VerifyAdvert's refusals.
var ErrAdvertSignature = errors.New("advert signature does not verify")

// VerifyAdvert checks that sig is merchant's signature, by key, of keys
// (secagg id id) in round p of aggregator.
func VerifyAdvert(key ed25519.PublicKey, aggregator, round string, p *protocol.SecurePlan, merchant string, id uint32, cPub, sPub [secagg.KeySize]byte, sig []byte) error {
	if len(key) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: %s's signing key has %d bytes", ErrAdvertSignature, merchant, len(key))
	}
	if !ed25519.Verify(key, AdvertStatement(aggregator, round, p, merchant, id, cPub, sPub), sig) {
		return fmt.Errorf("%w: keys of %s (id %d) in round %s, signing key %s", ErrAdvertSignature, merchant, id, round, keys.KeyID(key))
	}
	return nil
}

// ID returns merchant's SecAgg id in the plan (0 when it is not in the cohort).
func ID(p *protocol.SecurePlan, merchant string) uint32 {
	for i, m := range p.Merchants {
		if m == merchant {
			return uint32(i + 1)
		}
	}
	return 0
}

// Contribution lays out one customer's gradient for the sum: the gradient
// clipped to √(C² − s²), then s = CountScale in the last coordinate, so the
// whole vector's norm is at most C and the sum's last coordinate counts the
// sampled customers (times s). grad is not modified.
func (r Round) Contribution(grad []float64) ([]float64, error) {
	if len(grad)+1 != r.Params.Dim {
		return nil, fmt.Errorf("contribution: gradient of %d parameters, the encoding takes %d+1", len(grad), r.Params.Dim-1)
	}
	limit := math.Sqrt(r.Params.Clip*r.Params.Clip - r.CountScale*r.CountScale)
	var n2 float64
	for _, g := range grad {
		n2 += g * g
	}
	scale := 1.0
	if n := math.Sqrt(n2); n > limit {
		scale = limit / n
	}
	out := make([]float64, len(grad)+1)
	for i, g := range grad {
		out[i] = g * scale
	}
	out[len(grad)] = r.CountScale
	return out, nil
}

// Split separates a decoded sum into the summed gradients and the noisy
// number of sampled customers.
func (r Round) Split(sum []float64) (grad []float64, customers float64, err error) {
	if len(sum) != r.Params.Dim {
		return nil, 0, fmt.Errorf("split sum: %d values, want %d", len(sum), r.Params.Dim)
	}
	return sum[:len(sum)-1], sum[len(sum)-1] / r.CountScale, nil
}
