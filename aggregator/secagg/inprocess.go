package secagg

import (
	"context"
	"encoding"
	"fmt"
	"io"
)

// Dropout says at which stage a client of an in-process round stops answering.
type Dropout int

// Stages a client can drop out at; DropNone stays to the end.
const (
	DropNone      Dropout = iota
	DropAdvertise         // never advertises
	DropShare             // advertises, never shares
	DropMask              // shares, never sends its masked input
	DropUnmask            // sends its masked input, never answers the unmask request
)

// InProcessOptions configures InProcess.
type InProcessOptions struct {
	// Inputs holds each client's input (cfg.Length words below 2^cfg.Bits).
	Inputs map[uint32][]uint32
	// Drop says which clients drop out and when (absent: DropNone).
	Drop map[uint32]Dropout
	// Rand is the randomness of every client (nil: crypto/rand).
	Rand io.Reader
}

// InProcessResult is the outcome of InProcess.
type InProcessResult struct {
	// Sum is the survivors' sum modulo 2^Bits.
	Sum []uint32
	// Survivors and Dropouts are those the unmask request named.
	Survivors, Dropouts []uint32
	// Attested are the survivors whose attestation of the unmask request the
	// server accepted (cfg.Consistency; none without it).
	Attested []uint32
	// Bytes counts the encoded messages: sent by clients, sent by the server.
	ClientBytes, ServerBytes int
}

// InProcess runs a whole round between a server and its clients in this
// process, every message through its binary encoding and decoding, as a
// simulation or a benchmark of the protocol does. It returns the server's
// error when the round cannot be unmasked (ErrTooFewSurvivors).
func InProcess(ctx context.Context, cfg Config, opt InProcessOptions) (InProcessResult, error) {
	srv, err := NewServer(cfg)
	if err != nil {
		return InProcessResult{}, err
	}
	var res InProcessResult
	clients := make(map[uint32]*Client, len(cfg.Clients))
	active := func(id uint32, from Dropout) bool { d := opt.Drop[id]; return d == DropNone || d > from }
	for _, id := range cfg.Clients {
		if clients[id], err = NewClient(cfg, id, opt.Rand); err != nil {
			return res, err
		}
		if !active(id, DropAdvertise) {
			continue
		}
		m, err := clients[id].Advertise()
		if err != nil {
			return res, err
		}
		if m, err = relay(m, &AdvertiseMsg{}, &res.ClientBytes); err != nil {
			return res, err
		}
		if err := srv.AddAdvertise(m); err != nil {
			return res, err
		}
	}
	if err := srv.EndAdvertise(); err != nil {
		return res, err
	}
	for _, id := range cfg.Clients {
		if !active(id, DropShare) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("secagg in process: %w", err)
		}
		k, err := srv.KeysFor(id)
		if err != nil {
			return res, err
		}
		if k, err = relay(k, &KeysMsg{}, &res.ServerBytes); err != nil {
			return res, err
		}
		m, err := clients[id].Share(k)
		if err != nil {
			return res, err
		}
		if m, err = relay(m, &SharesMsg{}, &res.ClientBytes); err != nil {
			return res, err
		}
		if err := srv.AddShares(m); err != nil {
			return res, err
		}
	}
	if err := srv.EndShare(); err != nil {
		return res, err
	}
	for _, id := range cfg.Clients {
		if !active(id, DropMask) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("secagg in process: %w", err)
		}
		d, err := srv.DeliveryFor(id)
		if err != nil {
			return res, err
		}
		if d, err = relay(d, &DeliveryMsg{}, &res.ServerBytes); err != nil {
			return res, err
		}
		m, err := clients[id].Mask(d, opt.Inputs[id])
		if err != nil {
			return res, err
		}
		if m, err = relay(m, &MaskedMsg{}, &res.ClientBytes); err != nil {
			return res, err
		}
		if err := srv.AddMasked(m); err != nil {
			return res, err
		}
	}
	req, err := srv.EndMask()
	if err != nil {
		return res, err
	}
	res.Survivors, res.Dropouts = req.Survivors, req.Dropouts
	sent := map[uint32]UnmaskRequest{}
	for _, id := range req.Survivors {
		if !active(id, DropUnmask) {
			continue
		}
		if sent[id], err = relay(req, &UnmaskRequest{}, &res.ServerBytes); err != nil {
			return res, err
		}
		if !cfg.Consistency {
			continue
		}
		a, err := clients[id].Attest(sent[id])
		if err != nil {
			return res, err
		}
		if a, err = relay(a, &AttestMsg{}, &res.ClientBytes); err != nil {
			return res, err
		}
		if err := srv.AddAttest(a); err != nil {
			return res, err
		}
	}
	if cfg.Consistency {
		if err := srv.EndConsistency(); err != nil {
			return res, err
		}
		res.Attested = srv.Attested()
	}
	for _, id := range req.Survivors {
		if !active(id, DropUnmask) {
			continue
		}
		var (
			r   UnmaskResponse
			err error
		)
		if cfg.Consistency {
			var cm ConsistencyMsg
			if cm, err = srv.ConsistencyFor(id); err != nil {
				return res, err
			}
			if cm, err = relay(cm, &ConsistencyMsg{}, &res.ServerBytes); err != nil {
				return res, err
			}
			r, err = clients[id].UnmaskConsistent(sent[id], cm)
		} else {
			r, err = clients[id].Unmask(sent[id])
		}
		if err != nil {
			return res, err
		}
		if r, err = relay(r, &UnmaskResponse{}, &res.ClientBytes); err != nil {
			return res, err
		}
		if err := srv.AddUnmask(r); err != nil {
			return res, err
		}
	}
	if res.Sum, err = srv.Result(); err != nil {
		return res, err
	}
	return res, nil
}

// relay encodes m, counts its bytes and decodes it on the other side. The
// message types encode infallibly and decode what they encoded.
func relay[T encoding.BinaryMarshaler, P interface {
	*T
	encoding.BinaryUnmarshaler
}](m T, into P, count *int) (T, error) {
	b, err := m.MarshalBinary()
	if err == nil {
		*count += len(b)
		err = into.UnmarshalBinary(b)
	}
	if err != nil {
		return m, fmt.Errorf("secagg in process: relay %T: %w", m, err)
	}
	return *into, nil
}
