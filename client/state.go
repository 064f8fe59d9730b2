package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kairos-fl/kairos/aggregator/protocol"
	"github.com/kairos-fl/kairos/dp"
)

// Files in the state directory.
const (
	stateFile = "state.json"
	lockFile  = "lock"
)

// stateVersion is the version of the state file format.
const stateVersion = 1

// ErrLocked is returned by OpenState when another client process holds the
// state directory.
var ErrLocked = errors.New("state directory is in use by another client")

// ErrInsecureStateDir is returned by OpenState for a state directory that
// group or others may write: they could replace state.json, and with it the
// merchant's local privacy ledger.
var ErrInsecureStateDir = errors.New("state directory is writable by group or others")

// Outcomes of a round the client took part in.
const (
	OutcomeAccepted  = "accepted"  // the aggregator returned a receipt
	OutcomeDuplicate = "duplicate" // a re-sent envelope the aggregator already held
	OutcomeRefused   = "refused"   // the aggregator refused the update; the local debit stays
)

// State is what a merchant client keeps between runs: its local privacy ledger,
// the rounds it joined, and the sealed update it has not yet seen accepted.
type State struct {
	Version  int    `json:"version"`
	Merchant string `json:"merchant"`
	// Delta is the merchant's δ when it last trained, at which the rounds'
	// LocalEpsilon values were measured.
	Delta float64 `json:"delta,omitempty"`
	// Releases is the local ledger: every release this merchant made, debited
	// before the update that carries it was sealed.
	Releases []dp.Release `json:"releases"`
	// Rounds lists the rounds the client trained for, oldest first, but for
	// the records pruned into PrunedRounds.
	Rounds []RoundRecord `json:"rounds"`
	// PrunedRounds counts, by outcome, the records of quiet secure rounds
	// (RoundRecord.Quiet) removed beyond the latest MaxQuietRounds.
	PrunedRounds map[string]int `json:"pruned_rounds,omitempty"`
	// Pending is a sealed update whose upload has not ended yet. A restarted
	// client re-sends it instead of training again.
	Pending *Pending `json:"pending,omitempty"`
	// Count is the DP customer count of the latest accepted update that
	// released one; later rounds at the same cutoffs send it again instead of
	// releasing a new one (train.Options.Count).
	Count *CountRecord `json:"count,omitempty"`
}

// CountRecord is a released DP customer count: its value and noise, the round
// whose accepted update carried it, and the training cutoffs it counts at.
type CountRecord struct {
	Value   float64 `json:"value"`
	Sigma   float64 `json:"sigma"`
	Round   string  `json:"round"`
	Cutoffs string  `json:"cutoffs"`
}

// RoundRecord is one round the client trained for.
type RoundRecord struct {
	Round       string `json:"round"`
	Seq         int64  `json:"seq"`
	BaseVersion int    `json:"base_version"`
	Outcome     string `json:"outcome"`
	// Reason is the aggregator's problem when the update was refused.
	Reason string `json:"reason,omitempty"`
	// Receipt is the aggregator's receipt when the update was accepted.
	Receipt *protocol.Receipt `json:"receipt,omitempty"`
	// LocalEpsilon is the local ledger's ε after this round's releases.
	LocalEpsilon float64   `json:"local_epsilon"`
	At           time.Time `json:"at"`
}

// Pending is a sealed update persisted before its first upload attempt.
type Pending struct {
	Round       string `json:"round"`
	Seq         int64  `json:"seq"`
	BaseVersion int    `json:"base_version"`
	// Payload is the sealed protocol.Update (JSON), kept so that an envelope
	// refused as stale can be sealed again without training again.
	Payload  []byte `json:"payload"`
	Envelope []byte `json:"envelope"`
	// Recipient is the aggregator's age recipient the payload was sealed to.
	Recipient string `json:"recipient"`
	// LocalEpsilon is the local ledger's ε including this update's releases.
	LocalEpsilon float64   `json:"local_epsilon"`
	SealedAt     time.Time `json:"sealed_at"`
	// Count is the customer count this update releases, if it releases one;
	// it becomes State.Count once the update is accepted.
	Count *CountRecord `json:"count,omitempty"`
}

// Epsilon returns the local ledger's ε at delta.
func (s *State) Epsilon(delta float64) (float64, error) {
	return ledgerEpsilon(s.Releases, delta)
}

// Joined returns the record of round id, if the client trained for it.
func (s *State) Joined(id string) (RoundRecord, bool) {
	for _, r := range s.Rounds {
		if r.Round == id {
			return r, true
		}
	}
	return RoundRecord{}, false
}

// MaxQuietRounds is how many records of quiet secure rounds the state keeps
// in full (State.Prune); older ones are counted in State.PrunedRounds.
const MaxQuietRounds = 64

// Quiet reports whether r is a secure round that ended before this merchant
// released anything: failed, dropped, its neighbours' keys refused, or
// abandoned, with no receipt and no local debit. An aggregator can open such
// rounds at will. Its record only keeps the client from joining the round
// again, which, with fresh keys and noise and a debit of its own if it goes
// as far as masking, gives the aggregator nothing a new round would not.
func (r RoundRecord) Quiet() bool {
	switch r.Outcome {
	case OutcomeFailed, OutcomeDropped, OutcomeKeysRefused, OutcomeAbandoned:
		return r.Receipt == nil && r.LocalEpsilon == 0
	}
	return false
}

// Prune removes the oldest records of quiet rounds beyond the latest
// MaxQuietRounds, counting them by outcome in PrunedRounds, so that a hostile
// aggregator opening and failing secure rounds cannot grow the state (which
// is rewritten whole at every save) without bound. Every record of a round
// that released something or carries a receipt is kept: those guard the
// ledger and are bounded by the ε cap.
func (s *State) Prune() {
	excess := -MaxQuietRounds
	for _, r := range s.Rounds {
		if r.Quiet() {
			excess++
		}
	}
	if excess <= 0 {
		return
	}
	if s.PrunedRounds == nil {
		s.PrunedRounds = map[string]int{}
	}
	kept := s.Rounds[:0]
	for _, r := range s.Rounds {
		if excess > 0 && r.Quiet() {
			s.PrunedRounds[r.Outcome]++
			excess--
			continue
		}
		kept = append(kept, r)
	}
	clear(s.Rounds[len(kept):])
	s.Rounds = kept
}

// RoundsJoined counts the rounds the client took part in, pruned records
// included.
func (s *State) RoundsJoined() int {
	n := len(s.Rounds)
	for _, c := range s.PrunedRounds {
		n += c
	}
	return n
}

// Accepted counts the rounds whose update the aggregator accepted.
func (s *State) Accepted() int {
	n := 0
	for _, r := range s.Rounds {
		if r.Outcome == OutcomeAccepted || r.Outcome == OutcomeDuplicate {
			n++
		}
	}
	return n
}

// LastReceipt returns the most recent receipt, if any.
func (s *State) LastReceipt() (protocol.Receipt, bool) {
	for i := len(s.Rounds) - 1; i >= 0; i-- {
		if rc := s.Rounds[i].Receipt; rc != nil {
			return *rc, true
		}
	}
	return protocol.Receipt{}, false
}

func ledgerEpsilon(rs []dp.Release, delta float64) (float64, error) {
	if len(rs) == 0 {
		return 0, nil
	}
	l, err := dp.NewLedger(dp.AccountantOptions{})
	if err != nil {
		return 0, err
	}
	for _, r := range rs {
		if err := l.Add(r); err != nil {
			return 0, err
		}
	}
	eps, _, err := l.Epsilon(delta)
	return eps, err
}

// StateStore is an open, locked state directory.
type StateStore struct {
	dir  string
	lock *os.File
}

// OpenState opens (creating it 0700 if needed) and locks the state directory of
// merchant, and returns its state. It fails with ErrLocked while another
// process holds the directory, and refuses a state written for another
// merchant.
func OpenState(dir, merchant string) (*StateStore, *State, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("open state: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone. Whoever may write
	// it may rename a state.json of their own (an empty ledger) over ours.
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open state: %w", err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, nil, fmt.Errorf("open state %s: mode %04o: %w, who could replace the privacy ledger (run chmod 700 %s)", dir, fi.Mode().Perm(), ErrInsecureStateDir, dir)
	}
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open state: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil, fmt.Errorf("open state %s: %w", dir, ErrLocked)
		}
		return nil, nil, fmt.Errorf("open state: lock: %w", err)
	}
	st, err := ReadState(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st = &State{Version: stateVersion, Merchant: merchant}
	case err != nil:
		f.Close()
		return nil, nil, err
	case st.Merchant != merchant:
		f.Close()
		return nil, nil, fmt.Errorf("open state %s: written for merchant %q, not %q", dir, st.Merchant, merchant)
	}
	return &StateStore{dir: dir, lock: f}, st, nil
}

// ReadState reads the state in dir without locking it (for status reports). A
// missing state file yields an error wrapping fs.ErrNotExist.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return parseState(filepath.Join(dir, stateFile), b)
}

// parseState decodes the bytes of the state file name.
func parseState(name string, b []byte) (*State, error) {
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read state %s: %w", name, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("read state %s: version %d, want %d", name, st.Version, stateVersion)
	}
	for outcome, n := range st.PrunedRounds {
		if n < 0 || !(RoundRecord{Outcome: outcome}).Quiet() {
			return nil, fmt.Errorf("read state %s: pruned_rounds %q: %d: a count of pruned quiet secure rounds (failed, dropped, keys-refused, abandoned) cannot be negative or of another outcome", name, outcome, n)
		}
	}
	return &st, nil
}

// Save writes st atomically: to a temporary file that is synced and renamed
// over the state file, then the directory is synced. A crash leaves either the
// old or the new state, never a torn one.
func (s *StateStore) Save(st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	tmp, err := os.CreateTemp(s.dir, stateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(s.dir, stateFile)); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: sync directory: %w", err)
	}
	return nil
}

// Close releases the lock.
func (s *StateStore) Close() error {
	return s.lock.Close()
}
