package secagg

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSnapshotResume restarts the server from its snapshot after every
// message of a round in which one client drops out after sharing: the
// resumed server must end with the survivors' sum, computed here by adding
// their inputs modulo 2^Bits.
func TestSnapshotResume(t *testing.T) {
	for _, consistency := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "consistency"}[consistency], func(t *testing.T) {
			snapshotResume(t, consistency)
		})
	}
}

// snapshotResume is TestSnapshotResume with or without the consistency
// check (its attestations restored too).
func snapshotResume(t *testing.T, consistency bool) {
	cfg := testConfig(6, 4, 3, 4, 20, 5)
	cfg.Consistency = consistency
	dropped := cfg.Clients[2]
	rng := rand.New(rand.NewPCG(9, 9))
	clients := map[uint32]*Client{}
	inputs := map[uint32][]uint32{}
	want := make([]uint32, cfg.Length)
	for i, id := range cfg.Clients {
		c, err := NewClient(cfg, id, testRand(byte(40+i)))
		if err != nil {
			t.Fatal(err)
		}
		clients[id] = c
		x := make([]uint32, cfg.Length)
		for j := range x {
			x[j] = uint32(rng.Uint64N(1 << cfg.Bits))
			if id != dropped {
				want[j] = (want[j] + x[j]) & (1<<cfg.Bits - 1)
			}
		}
		inputs[id] = x
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	restarts := 0
	// resume replaces srv by the server restored from its snapshot, and
	// checks that the snapshot of the restored server is the same bytes.
	resume := func() {
		t.Helper()
		snap, err := srv.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		stage := srv.Stage()
		if srv, err = RestoreServer(cfg, snap); err != nil {
			t.Fatalf("restart %d in stage %s: %v", restarts, stage, err)
		}
		again, _ := srv.MarshalBinary()
		if !bytes.Equal(snap, again) {
			t.Fatalf("restart %d: snapshot of the restored server differs", restarts)
		}
		restarts++
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range cfg.Clients {
		m, err := clients[id].Advertise()
		must(err)
		must(srv.AddAdvertise(m))
		resume()
	}
	must(srv.EndAdvertise())
	resume()
	for _, id := range cfg.Clients {
		k, err := srv.KeysFor(id)
		must(err)
		m, err := clients[id].Share(k)
		must(err)
		must(srv.AddShares(m))
		resume()
	}
	must(srv.EndShare())
	resume()
	for _, id := range cfg.Clients {
		if id == dropped {
			continue
		}
		d, err := srv.DeliveryFor(id)
		must(err)
		m, err := clients[id].Mask(d, inputs[id])
		must(err)
		must(srv.AddMasked(m))
		resume()
	}
	req, err := srv.EndMask()
	must(err)
	resume()
	if !slices.Equal(req.Dropouts, []uint32{dropped}) || !slices.Equal(srv.Request().Dropouts, req.Dropouts) {
		t.Fatalf("dropouts %v after restart %v, want [%d]", req.Dropouts, srv.Request().Dropouts, dropped)
	}
	if consistency {
		for _, id := range req.Survivors {
			a, err := clients[id].Attest(srv.Request())
			must(err)
			must(srv.AddAttest(a))
			resume()
		}
		must(srv.EndConsistency())
		resume()
	}
	for _, id := range req.Survivors {
		var r UnmaskResponse
		if consistency {
			cons, err := srv.ConsistencyFor(id)
			must(err)
			r, err = clients[id].UnmaskConsistent(srv.Request(), cons)
			must(err)
		} else {
			r, err = clients[id].Unmask(srv.Request())
			must(err)
		}
		must(srv.AddUnmask(r))
		resume()
	}
	got, err := srv.Result()
	must(err)
	if !slices.Equal(got, want) {
		t.Errorf("sum after %d restarts: got %v, want %v", restarts, got, want)
	}
	resume() // a finished round restores too
	if srv.Stage() != StageDone {
		t.Errorf("restored finished round in stage %s", srv.Stage())
	}
}

// TestRestoreRefusesTampering mutates every byte of a snapshot: the restore
// either refuses it or yields a server whose snapshot is the mutated bytes
// (a change that still replays through every check, e.g. a sum word).
func TestRestoreRefusesTampering(t *testing.T) {
	cfg := testConfig(4, 3, 2, 3, 8, 2)
	rd, err := runRound(t, cfg, nil, 8)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := rd.server.MarshalBinary()
	if _, err := RestoreServer(cfg, snap); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.Clients = slices.Clone(cfg.Clients)
	other.Clients[0] = 9999
	if _, err := RestoreServer(other, snap); err == nil {
		t.Error("a snapshot restored under another round's cohort")
	}
	for i := range snap {
		bad := slices.Clone(snap)
		bad[i] ^= 0x41
		s, err := RestoreServer(cfg, bad)
		if err != nil {
			continue
		}
		again, _ := s.MarshalBinary()
		if !bytes.Equal(again, bad) {
			t.Fatalf("byte %d: restored a snapshot that re-encodes differently", i)
		}
	}
	if _, err := RestoreServer(cfg, append(snap, 0)); err == nil {
		t.Error("trailing byte accepted")
	}
}

// FuzzRestoreServer: arbitrary snapshots never panic, and whatever restores
// re-encodes to the same bytes.
func FuzzRestoreServer(f *testing.F) {
	cfg := testConfig(4, 3, 2, 3, 8, 2)
	rd, err := runRound(f, cfg, nil, 8)
	if err != nil {
		f.Fatal(err)
	}
	snap, _ := rd.server.MarshalBinary()
	f.Add(snap)
	fresh, _ := NewServer(cfg)
	empty, _ := fresh.MarshalBinary()
	f.Add(empty)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := RestoreServer(cfg, data)
		if err != nil {
			return
		}
		again, _ := s.MarshalBinary()
		if !bytes.Equal(again, data) {
			t.Fatalf("restored and re-encoded\n%x\nto\n%x", data, again)
		}
	})
}
