package aggregator_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/aggregator/secagg"
	"github.com/kairos-fl/kairos/aggregator/secureplan"
	"github.com/kairos-fl/kairos/client"
	"github.com/kairos-fl/kairos/crypto/keys"
	"github.com/kairos-fl/kairos/policies"
)

// keySubstitution is a malicious aggregator that substitutes keys (the gap
// of docs/privacy.md §14a this change closes), as a rewrite of the live
// service's answers to m1: it runs a SecAgg+ round of its own in which m1's
// five neighbours are fakes it controls (ids 2…6, zero inputs), hands m1 the
// fakes' keys as its neighbours' — each signed with the aggregator's own
// Ed25519 key, the best it can do without the merchants' — and the fakes'
// share boxes as its neighbours'. m1's shares then open with the fakes' keys
// and its pairwise masks are the fakes', so the aggregator's own round
// unmasks m1's masked input, as it received it, to m1's input. With lie set
// it also reports its own key as each neighbour's signing key
// (SecureStatus.Signers). Everything else is relayed as the service computed it.
type keySubstitution struct {
	lie bool

	t      *testing.T
	sr     *secureRun
	signer ed25519.PrivateKey
	srv    *secagg.Server
	fakes  map[uint32]*secagg.Client
	// keys and delivery are the rewritten messages to m1, built once.
	keys, delivery []byte
	// log is m1's log (Write): what it says it checked.
	log bytes.Buffer
	mu  sync.Mutex
}

// Write takes m1's log lines.
func (k *keySubstitution) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.log.Write(p)
}

func (k *keySubstitution) victimLog() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.log.String()
}

// start sets up the aggregator's own round: its config is the live round's
// without the consistency check (the fakes answer whatever it asks).
func (k *keySubstitution) start(t *testing.T, sr *secureRun) {
	k.t, k.sr = t, sr
	var err error
	if _, k.signer, err = ed25519.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	cfg := sr.plan.Config
	cfg.Consistency = false
	if k.srv, err = secagg.NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	k.fakes = map[uint32]*secagg.Client{}
	for id := uint32(2); id <= 6; id++ {
		if k.fakes[id], err = secagg.NewClient(cfg, id, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// victimMessage is m1's first message of stage as the aggregator received
// it (nil if it sent none).
func (k *keySubstitution) victimMessage(stage protocol.SecureStage) []byte {
	k.sr.mu.Lock()
	envs := slices.Clone(k.sr.envelopes)
	k.sr.mu.Unlock()
	for _, env := range envs {
		if m := openSecure(k.t, k.sr, env); m.Merchant == "m1" && m.Stage == stage {
			return m.Body
		}
	}
	return nil
}

// victimStages are the stages m1 sent a message for.
func (k *keySubstitution) victimStages() []protocol.SecureStage {
	var out []protocol.SecureStage
	for _, st := range []protocol.SecureStage{protocol.StageAdvertise, protocol.StageShare, protocol.StageMask, protocol.StageConsistency, protocol.StageUnmask} {
		if k.victimMessage(st) != nil {
			out = append(out, st)
		}
	}
	return out
}

func (k *keySubstitution) deviate(t testing.TB, merchant string, st protocol.SecureStatus) protocol.SecureStatus {
	if merchant != "m1" || len(st.Message) == 0 {
		return st
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var err error
	switch st.Stage {
	case protocol.StageShare:
		if k.keys == nil {
			k.keys, err = k.substituteKeys()
		}
		st.Message = k.keys
		if k.lie {
			for m := range st.Signers {
				st.Signers[m] = k.signer.Public().(ed25519.PublicKey)
			}
		}
	case protocol.StageMask:
		if k.delivery == nil {
			k.delivery, err = k.substituteDelivery()
		}
		st.Message = k.delivery
	}
	if err != nil {
		t.Error(err)
	}
	return st
}

// substituteKeys is m1's keys message in the aggregator's own round: the
// fakes' keys, signed by the aggregator as m2…m6's.
func (k *keySubstitution) substituteKeys() ([]byte, error) {
	var adv secagg.AdvertiseMsg
	if err := adv.UnmarshalBinary(k.victimMessage(protocol.StageAdvertise)); err != nil {
		return nil, err
	}
	if err := k.srv.AddAdvertise(adv); err != nil {
		return nil, err
	}
	r := k.sr.round
	for id := uint32(2); id <= 6; id++ {
		a, err := k.fakes[id].Advertise()
		if err != nil {
			return nil, err
		}
		secureplan.SignAdvert(k.signer, r.Recipient, r.ID, r.Plan.Secure, r.Plan.Secure.Merchants[id-1], &a)
		if err := k.srv.AddAdvertise(a); err != nil {
			return nil, err
		}
	}
	if err := k.srv.EndAdvertise(); err != nil {
		return nil, err
	}
	for id := uint32(2); id <= 6; id++ {
		km, err := k.srv.KeysFor(id)
		if err != nil {
			return nil, err
		}
		sh, err := k.fakes[id].Share(km)
		if err != nil {
			return nil, err
		}
		if err := k.srv.AddShares(sh); err != nil {
			return nil, err
		}
	}
	km, err := k.srv.KeysFor(1)
	if err != nil {
		return nil, err
	}
	return km.MarshalBinary()
}

// substituteDelivery takes m1's shares (sealed to the fakes' keys) into the
// aggregator's round, has the fakes mask zeros, and returns the fakes' boxes
// for m1.
func (k *keySubstitution) substituteDelivery() ([]byte, error) {
	var sh secagg.SharesMsg
	if err := sh.UnmarshalBinary(k.victimMessage(protocol.StageShare)); err != nil {
		return nil, err
	}
	if err := k.srv.AddShares(sh); err != nil {
		return nil, err
	}
	if err := k.srv.EndShare(); err != nil {
		return nil, err
	}
	for id := uint32(2); id <= 6; id++ {
		d, err := k.srv.DeliveryFor(id)
		if err != nil {
			return nil, err
		}
		mm, err := k.fakes[id].Mask(d, make([]uint32, k.srv.Config().Length))
		if err != nil {
			return nil, err
		}
		if err := k.srv.AddMasked(mm); err != nil {
			return nil, err
		}
	}
	d, err := k.srv.DeliveryFor(1)
	if err != nil {
		return nil, err
	}
	return d.MarshalBinary()
}

// errNoMasked: m1 sent the aggregator no masked input.
var errNoMasked = errors.New("m1 sent no masked input")

// recover is the aggregator's last step: m1's masked input, as the live
// service received it, into its own round, unmasked with the fakes' answers.
func (k *keySubstitution) recover() ([]uint32, error) {
	body := k.victimMessage(protocol.StageMask)
	if body == nil {
		return nil, errNoMasked
	}
	var mm secagg.MaskedMsg
	if err := mm.UnmarshalBinary(body); err != nil {
		return nil, err
	}
	if err := k.srv.AddMasked(mm); err != nil {
		return nil, err
	}
	req, err := k.srv.EndMask()
	if err != nil {
		return nil, err
	}
	for id := uint32(2); id <= 6; id++ {
		resp, err := k.fakes[id].Unmask(req)
		if err != nil {
			return nil, err
		}
		if err := k.srv.AddUnmask(resp); err != nil {
			return nil, err
		}
	}
	return k.srv.Result() // m1's input plus five zero inputs
}

// TestSecureKeySubstitution: a malicious aggregator — the live service with
// its answers to m1 rewritten (keySubstitution) — substitutes keys of its
// own for m1's five neighbours in a live secure round of six merchants.
//   - control: merchants that use relayed keys unchecked (as before adverts
//     were signed) give it m1's input word for word, so that this test can fail;
//   - pinned peer keys (secure.peer_keys): m1 refuses the round at the share
//     stage, its only message is its advert, nothing the aggregator received
//     yields its input, and the round publishes the other five merchants' sum;
//   - without pinned keys, the aggregator relaying its substituted keys under
//     the enrolled signing keys it reports: refused the same way;
//   - without pinned keys, the aggregator also reporting its own key as the
//     neighbours': not stopped (the gap §14a states), but m1's log names key
//     ids that differ from those of the enrolled keys in the audit entry that
//     closed the advertise stage — detection after the fact.
func TestSecureKeySubstitution(t *testing.T) {
	fresh := backends(t) // a fresh database for each run
	fresher := backends(t)
	freshest := backends(t)
	for i, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			control := &keySubstitution{lie: true}
			sr := playSecure(t, fresh[i], playOpts{substitute: control, withoutAdvertCheck: true})
			x, err := control.recover()
			if err != nil || !slices.Equal(x, sr.inputs["m1"]) {
				t.Fatalf("without the signature check: m1's input recovered %v (%v); the attack construction is wrong", err == nil && slices.Equal(x, sr.inputs["m1"]), err)
			}

			for _, c := range []struct {
				name   string
				pinned bool
				b      backend
			}{{"pinned", true, b}, {"enrolled keys reported", false, fresher[i]}} {
				t.Run(c.name, func(t *testing.T) {
					attack := &keySubstitution{lie: c.pinned}
					sr := playSecure(t, c.b, playOpts{substitute: attack, pinned: c.pinned})
					if got := sr.results["m1"]; got.Outcome != client.OutcomeKeysRefused || !strings.Contains(got.Reason, "advert signature does not verify") {
						t.Errorf("m1: outcome %q (%s), want %q", got.Outcome, got.Reason, client.OutcomeKeysRefused)
					}
					if got := attack.victimStages(); !slices.Equal(got, []protocol.SecureStage{protocol.StageAdvertise}) {
						t.Errorf("m1 sent messages for %v, want its advert only", got)
					}
					if _, err := attack.recover(); !errors.Is(err, errNoMasked) {
						t.Errorf("the aggregator's rebuild: %v, want nothing to rebuild from", err)
					}
					v2, err := sr.svc.Load().Model(ctx, 2)
					if err != nil {
						t.Fatalf("no version 2 published without m1: %v", err)
					}
					var got []string
					for _, c := range v2.Contributions {
						got = append(got, c.Merchant)
					}
					slices.Sort(got)
					if !slices.Equal(got, []string{"m2", "m3", "m4", "m5", "m6"}) {
						t.Errorf("contributions of %v, want m2…m6", got)
					}
				})
			}

			t.Run("unpinned, signing keys substituted too", func(t *testing.T) {
				attack := &keySubstitution{lie: true}
				sr := playSecure(t, freshest[i], playOpts{substitute: attack})
				x, err := attack.recover()
				if err != nil || !slices.Equal(x, sr.inputs["m1"]) {
					t.Fatalf("m1's input recovered %v (%v); want it read, the gap pinned keys close", err == nil && slices.Equal(x, sr.inputs["m1"]), err)
				}
				es, err := sr.replica.store.AuditEntries(ctx, 1, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				var closed string
				for _, e := range es {
					if e.Action == "round.secure.share" {
						closed = e.Reason
					}
				}
				log := attack.victimLog()
				for id := uint32(2); id <= 6; id++ {
					m := sr.round.Plan.Secure.Merchants[id-1]
					enrolled := keys.KeyID(sr.f.merchant[m].Public().(ed25519.PublicKey))
					used := keys.KeyID(attack.signer.Public().(ed25519.PublicKey))
					if want := fmt.Sprintf("%d=%s", id, enrolled); !strings.Contains(closed, want) {
						t.Errorf("audit entry closing the advertise stage %q: no %s for %s", closed, want, m)
					}
					if !strings.Contains(log, m+"="+used) || strings.Contains(log, m+"="+enrolled) {
						t.Errorf("m1's log does not name the substituted key %s of %s (enrolled %s):\n%s", used, m, enrolled, log)
					}
				}
			})
		})
	}
}

// openSecureRound starts an aggregator on SQLite with the six merchants
// enrolled and returns its secure round 2 in the advertise stage.
func openSecureRound(t *testing.T) (*fed, *replica, protocol.Round, secureplan.Round) {
	t.Helper()
	ctx := context.Background()
	p, err := policies.Parse("secure.yaml", []byte(securePolicy))
	if err != nil {
		t.Fatal(err)
	}
	f := newFedPolicy(t, sqliteBackend(t), secureConfig(), p)
	r := f.start(t)
	f.enrol(t, r, secureMerchants...)
	if err := r.svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	round, err := r.svc.CurrentRound(ctx, "m1")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := secureplan.Decode(round.Plan.Secure)
	if err != nil {
		t.Fatal(err)
	}
	return f, r, round, plan
}

// sealAdvert seals adv as merchant's advertise message of round.
func sealAdvert(t *testing.T, f *fed, round protocol.Round, merchant string, adv secagg.AdvertiseMsg) []byte {
	t.Helper()
	body, err := adv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(protocol.SecureMessage{Version: protocol.Version, Round: round.ID, Merchant: merchant, Stage: protocol.StageAdvertise, Body: body})
	return f.seal(t, protocol.Update{Merchant: merchant, Round: round.ID, BaseVersion: round.BaseVersion}, func(o *sealOpts) { o.payload = payload })
}

// TestSecureAdvertSignatureRefused: an advert whose signature does not
// verify with the merchant's enrolled key — signed by another key, signed for
// another round, signed for another merchant's id, or unsigned — is refused
// on receipt as an invalid message, audited as denied, and stores nothing: the
// merchant's correctly signed advert is accepted after.
func TestSecureAdvertSignatureRefused(t *testing.T) {
	ctx := context.Background()
	f, r, round, plan := openSecureRound(t)
	c, err := secagg.NewClient(plan.Config, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	adv, err := c.Advertise()
	if err != nil {
		t.Fatal(err)
	}
	_, other, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	submit := func(a secagg.AdvertiseMsg) error {
		_, err := r.svc.SubmitSecure(ctx, "m1", sealAdvert(t, f, round, "m1", a))
		return err
	}
	signed := func(key ed25519.PrivateKey, roundID, merchant string, id uint32) secagg.AdvertiseMsg {
		a := adv
		a.Sig = ed25519.Sign(key, secureplan.AdvertStatement(round.Recipient, roundID, round.Plan.Secure, merchant, id, a.CPub, a.SPub))
		return a
	}
	for _, c := range []struct {
		name string
		adv  secagg.AdvertiseMsg
	}{
		{"another key", signed(other, round.ID, "m1", 1)},
		{"another round", signed(f.merchant["m1"], "round-000001", "m1", 1)},
		{"another merchant's statement", signed(f.merchant["m1"], round.ID, "m2", 2)},
		{"another aggregator", func() secagg.AdvertiseMsg {
			a := adv
			a.Sig = ed25519.Sign(f.merchant["m1"], secureplan.AdvertStatement("age1other", round.ID, round.Plan.Secure, "m1", 1, a.CPub, a.SPub))
			return a
		}()},
		{"unsigned", adv},
	} {
		if err := submit(c.adv); !errors.Is(err, protocol.ErrInvalidUpdate) {
			t.Errorf("%s: %v, want an invalid update", c.name, err)
		}
	}
	if n := auditActions(t, r.store)["round.secure.message denied"]; n != 5 {
		t.Errorf("%d denied secure messages audited, want 5", n)
	}
	st, err := r.svc.SecureStatus(ctx, "m1", round.ID)
	if err != nil || st.Sent {
		t.Fatalf("status %+v, %v; want m1's advert not stored", st, err)
	}
	good := adv
	secureplan.SignAdvert(f.merchant["m1"], round.Recipient, round.ID, round.Plan.Secure, "m1", &good)
	if err := submit(good); err != nil {
		t.Fatalf("m1's signed advert: %v", err)
	}
}

// TestSecureUnsignedAdvertsFail: a round in progress at the upgrade that
// signs adverts has stored adverts without a signature; its state no longer
// replays, so it fails at the next tick, unmasking nothing, and the next
// round opens — the tick does not fail on it.
func TestSecureUnsignedAdvertsFail(t *testing.T) {
	_, r, round, plan := openSecureRound(t)
	// The snapshot an older aggregator stored: the same round without signed
	// adverts, two merchants' unsigned keys accepted.
	old := plan.Config
	old.SignedAdverts = false
	srv, err := secagg.NewServer(old)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint32(1); id <= 2; id++ {
		c, err := secagg.NewClient(old, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := c.Advertise()
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddAdvertise(a); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := srv.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	storeAndTickUnrestorable(t, r, round, func([]byte) []byte { return snap }, "without a signature")
}
