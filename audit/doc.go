// Package audit keeps Kairos's tamper-evident audit log: an append-only,
// hash-chained sequence of entries with periodic Ed25519-signed checkpoints,
// a verifier that names the first bad entry, and a JSON-lines export that can
// be verified offline.
//
// # Entries
//
// Every entry has a 1-based, gapless sequence number, a UTC time with
// millisecond precision, the actor ("role:subject" from the caller's JWT), an
// action, an object, an outcome (ok, denied or error, with a reason),
// identifiers and optional details. Identifier values are never stored in
// clear: each is replaced by "hmac-sha256:<64 lower-case hex>" computed with
// the log's audit key (see [HashIdentifier]), so a reviewer who knows a value
// can compute its HMAC and search for it, while a reader of the log learns
// nothing from it. Details are for non-identifying values only.
//
// # Hashes
//
// The hash of entry n is
//
//	hash(n) = SHA-256(0x00 ‖ prev ‖ canonical(n))
//
// where prev is hash(n−1), or 32 zero bytes for entry 1, and canonical(n) is
// the concatenation, in this order, of
//
//	u64(seq) ‖ i64(time in Unix milliseconds) ‖ str(actor) ‖ str(action) ‖
//	str(object) ‖ str(outcome) ‖ str(reason) ‖ map(identifiers) ‖ map(details)
//
// with all integers big-endian, str(s) = u32(len(s)) ‖ the UTF-8 bytes of s,
// and map(m) = u32(number of pairs) ‖ str(key) ‖ str(value) for each pair in
// increasing byte order of key. Identifier values enter the hash in their
// stored "hmac-sha256:…" form.
//
// # Checkpoints
//
// Every CheckpointEvery entries, every CheckpointInterval in which it moved,
// when the log is opened and when it is closed, the log signs its head, and
// pushes each checkpoint to its Witness once the checkpoint is durable. When
// opened, before signing, it re-verifies the stored entries from its last
// signed checkpoint (in the store or the witness) and refuses a log that
// disagrees with one (ErrStartRefused). The Ed25519 signature covers the message
//
//	0x01 ‖ str(log id) ‖ u64(seq) ‖ hash(seq) ‖ i64(checkpoint time in Unix milliseconds)
//
// (same encodings as above). The leading 0x01 separates checkpoint messages
// from entry hash inputs, which begin with 0x00. A checkpoint pins the whole
// chain up to its seq: rewriting any earlier entry, even with every later hash
// recomputed, changes hash(seq). Checkpoints are only as good as the copy of
// them the verifier trusts: publish them (or the latest one) outside the
// database, because an attacker who can delete rows can delete trailing
// checkpoints together with the entries they cover.
//
// # Verification
//
// [Verify] walks the entries in seq order and, at each seq, checks the entry
// (seq continuity, prev hash, recomputed hash, field syntax) and then every
// checkpoint at that seq (signature, then hash). Checkpoints beyond the last
// entry mean a truncated tail. The first failure is returned as a
// *[VerifyError] naming the seq and the reason.
package audit
