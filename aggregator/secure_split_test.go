package aggregator_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/seal"
)

// splitRequests is a malicious aggregator's messages, as a rewrite of the
// live service's answers to merchant (m1…m6 have SecAgg ids 1…6) — §16's
// construction of docs/privacy.md for six merchants, target X = m1: it
// delivers X only the share boxes of m2, m3 and m4 (X then masks with those
// three pairwise masks only) and sends each other merchant its own unmask
// request, each valid for the merchant that gets it:
//
//	m2: survivors {1, 2, 5, 6}, dropouts {3, 4}
//	m3: survivors {1, 3, 5, 6}, dropouts {2, 4}
//	m4: survivors {1, 4, 5, 6}, dropouts {2, 3}
//	m5, m6: survivors {1, 5, 6}, dropouts {2, 3, 4}
//
// X gets the honest request. Answered, they hold five seed shares of X and
// four key shares each of m2, m3 and m4 (threshold 3): every mask on X's
// masked input. The consistency stage's tags are relayed as the service
// computed them: the aggregator cannot forge them.
func splitRequests(t testing.TB, merchant string, st protocol.SecureStatus) protocol.SecureStatus {
	split := map[string]secagg.UnmaskRequest{
		"m2": {Survivors: []uint32{1, 2, 5, 6}, Dropouts: []uint32{3, 4}},
		"m3": {Survivors: []uint32{1, 3, 5, 6}, Dropouts: []uint32{2, 4}},
		"m4": {Survivors: []uint32{1, 4, 5, 6}, Dropouts: []uint32{2, 3}},
		"m5": {Survivors: []uint32{1, 5, 6}, Dropouts: []uint32{2, 3, 4}},
		"m6": {Survivors: []uint32{1, 5, 6}, Dropouts: []uint32{2, 3, 4}},
	}
	encode := func(m interface{ MarshalBinary() ([]byte, error) }) []byte {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Error(err)
		}
		return b
	}
	req, targeted := split[merchant]
	switch {
	case st.Stage == protocol.StageMask && merchant == "m1" && len(st.Message) > 0:
		var d secagg.DeliveryMsg
		if err := d.UnmarshalBinary(st.Message); err != nil {
			t.Error(err)
			return st
		}
		d.Boxes = slices.DeleteFunc(d.Boxes, func(b secagg.Box) bool { return b.Peer == 5 || b.Peer == 6 })
		st.Message = encode(d)
	case st.Stage == protocol.StageConsistency && targeted && len(st.Message) > 0:
		st.Message = encode(req)
	case st.Stage == protocol.StageUnmask && targeted && len(st.Request) > 0:
		st.Request = encode(req)
	}
	return st
}

// openSecure opens an envelope a merchant sent, as the aggregator does.
func openSecure(t *testing.T, sr *secureRun, env []byte) protocol.SecureMessage {
	t.Helper()
	hdr, err := seal.ParseHeader(env)
	if err != nil {
		t.Fatal(err)
	}
	_, payload, err := seal.Open(env, seal.OpenOptions{
		Identity: sr.f.agg.Identity, Round: hdr.Round, Now: sr.f.clock.Now(), MaxSkew: time.Hour,
		Signers: func(id string) (ed25519.PublicKey, error) {
			return sr.f.merchant[id].Public().(ed25519.PublicKey), nil
		},
		SeenNonce: func(string, [seal.NonceSize]byte) bool { return false },
	})
	if err != nil {
		t.Fatal(err)
	}
	var m protocol.SecureMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// recoverTarget is the malicious aggregator's last step: from every
// message it received, m1's masked input minus the masks the unmask answers
// let it rebuild (m1's self mask; its pairwise masks with m2, m3, m4, called
// dropouts), with the count of unmask answers it received.
func recoverTarget(t *testing.T, sr *secureRun) (x []uint32, answers int, err error) {
	t.Helper()
	u := secagg.Unmasking{
		Survivors: []uint32{1}, Dropouts: []uint32{2, 3, 4},
		Keys: map[uint32]secagg.AdvertiseMsg{}, Seeds: map[uint32][]secagg.Share{}, MaskKeys: map[uint32][]secagg.Share{},
	}
	sr.mu.Lock()
	envs := slices.Clone(sr.envelopes)
	sr.mu.Unlock()
	seen := map[string]bool{}
	for _, env := range envs {
		m := openSecure(t, sr, env)
		if k := m.Merchant + "/" + string(m.Stage); seen[k] {
			continue // a retry of the same message
		} else {
			seen[k] = true
		}
		switch m.Stage {
		case protocol.StageAdvertise:
			var a secagg.AdvertiseMsg
			if err := a.UnmarshalBinary(m.Body); err != nil {
				t.Fatal(err)
			}
			u.Keys[a.From] = a
		case protocol.StageMask:
			var mm secagg.MaskedMsg
			if err := mm.UnmarshalBinary(m.Body); err != nil {
				t.Fatal(err)
			}
			if mm.From == 1 {
				u.Sum = mm.Words
			}
		case protocol.StageUnmask:
			var r secagg.UnmaskResponse
			if err := r.UnmarshalBinary(m.Body); err != nil {
				t.Fatal(err)
			}
			answers++
			for _, o := range r.Seeds {
				u.Seeds[o.Owner] = append(u.Seeds[o.Owner], o.Share)
			}
			for _, o := range r.Keys {
				u.MaskKeys[o.Owner] = append(u.MaskKeys[o.Owner], o.Share)
			}
		}
	}
	if u.Sum == nil {
		t.Fatal("m1's masked input was not received")
	}
	x, err = sr.plan.Config.RemoveMasks(u)
	return x, answers, err
}

// TestSecureSplitRequests: a malicious aggregator — the live service with
// its answers to the merchants rewritten (splitRequests), the messages it
// receives opened with its identity — sends different unmask requests to
// different merchants of a live secure round. With the consistency stage
// every merchant refuses (too few neighbours attested the request it was
// sent), sends no share, and m1's input cannot be rebuilt from what the
// aggregator received; the round fails unpublished. The same attack on
// merchants that answer without the check (the control, so that this test
// can fail) gives m1's input word for word.
func TestSecureSplitRequests(t *testing.T) {
	fresh := backends(t) // a fresh database for the control run
	for i, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			control := playSecure(t, fresh[i], playOpts{split: true, withoutCheck: true})
			x, answers, err := recoverTarget(t, control)
			if err != nil || !slices.Equal(x, control.inputs["m1"]) {
				t.Fatalf("without the check: %d answers, m1's input recovered %v (%v); the attack construction is wrong", answers, slices.Equal(x, control.inputs["m1"]), err)
			}

			sr := playSecure(t, b, playOpts{split: true})
			for _, m := range secureMerchants {
				if got := sr.results[m].Outcome; got != client.OutcomeUnmaskRefused {
					t.Errorf("%s: outcome %q (%s), want %q", m, got, sr.results[m].Reason, client.OutcomeUnmaskRefused)
				}
			}
			x, answers, err = recoverTarget(t, sr)
			if answers != 0 || !errors.Is(err, secagg.ErrTooFewShares) || slices.Equal(x, sr.inputs["m1"]) {
				t.Errorf("with the check: %d unmask answers received, rebuild error %v; want none and ErrTooFewShares", answers, err)
			}
			st, err := sr.svc.Load().SecureStatus(ctx, "m1", sr.round.ID)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != protocol.RoundFailed {
				t.Errorf("round %s: %+v, want failed", sr.round.ID, st)
			}
			if _, err := sr.svc.Load().Model(ctx, 2); err == nil {
				t.Error("a version 2 was published")
			}
		})
	}
}
