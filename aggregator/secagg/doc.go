// Package secagg is the SecAgg+ secure-aggregation protocol (Bell et al. 2020,
// after Bonawitz et al. 2017) as pure logic: the aggregator learns the sum of
// its clients' vectors modulo 2^Bits and nothing else about any one of them,
// and the sum survives clients that drop out, down to a threshold.
//
// A round runs in four stages, each a message from every client and an answer
// computed by the server:
//
//  1. Advertise: each client draws two X25519 key pairs, one to encrypt the
//     shares it sends (c) and one to agree pairwise masks (s), and sends both
//     public keys.
//  2. Share: the server hands each client its neighbours' public keys. The
//     neighbours come from a random Harary graph fixed by the public round seed,
//     so each client talks to Degree others, not to all. A client draws its
//     self-mask seed b, splits b and its mask secret key s into Threshold-of-Degree
//     Shamir shares over GF(2^61−1), and sends each neighbour its pair of shares
//     encrypted (AES-GCM under a key derived from the c keys' X25519 secret).
//  3. Mask: the server delivers each client the encrypted shares addressed to
//     it. The client sends x + PRG(b) + Σ ±PRG(s_uv) mod 2^Bits, the sum over
//     the neighbours that shared, + when its id is the smaller. Pairwise masks
//     cancel in the sum; the self mask keeps a late-arriving input secret.
//  4. Unmask: the server names the survivors (sent a masked input) and the
//     dropouts (shared but sent none). Each client returns, for each neighbour,
//     its share of b if the neighbour survived and of s if it dropped, never
//     both for one neighbour: it answers one unmask request per round and
//     refuses a request that names a client on both sides or one outside the
//     cohort, or whose survivors are fewer than MinSurvivors. The server rebuilds each survivor's b and
//     each dropout's s (hence its pairwise masks with the survivors) and
//     removes them from the sum of the masked inputs.
//
// With Config.Consistency, stage 4 starts with the consistency check of
// Bonawitz et al. (consistency.go): EndMask opens StageConsistency, where each
// survivor attests the request it got to its neighbours (Attest, AddAttest);
// EndConsistency closes it when the attesters can still rebuild every secret
// (at least MinSurvivors of them, and Threshold around every client that
// shared); the server relays each attester the tags addressed to it
// (ConsistencyFor), and the client answers (UnmaskConsistent) only a request
// it attested and Threshold of its neighbours attested too. Without it the
// protocol is secure against an honest-but-curious server only: a server
// that sends different requests to different clients can unmask one
// client's input. The live secure rounds of the aggregator always run it
// (secureplan.Decode).
//
// The package does no I/O and keeps no global state; callers carry the
// messages (sealed and signed, as every protocol message of the aggregator)
// and persist the state. Randomness comes from crypto/rand unless a test
// hands in its own reader.
package secagg
