// Package keys generates the keys the aggregator and each merchant hold and
// stores them in a directory of small, documented files.
//
// # Aggregator directory
//
//	age-identity       age secret key, one line: "AGE-SECRET-KEY-PQ-1…" (ML-KEM-768 + X25519
//	                   hybrid, the default) or "AGE-SECRET-KEY-1…" (X25519, with Classic)
//	age-recipient.pub  the matching age recipient ("age1pq1…" or "age1…"), one line
//	jwt-<kid>.pem      an Ed25519 JWT signing key, PEM "PRIVATE KEY" (PKCS#8)
//	jwt-<kid>.pub      its public key, PEM "PUBLIC KEY" (PKIX)
//	jwt-active         the kid of the key that signs new tokens, one line
//	audit-hmac         the 32-byte audit HMAC key, 64 lower-case hex digits, one line
//	checkpoint.pem     the Ed25519 key that signs audit checkpoints (PKCS#8 PEM)
//	checkpoint.pub     its public key (PKIX PEM)
//
// # Merchant directory
//
//	merchant-id        the merchant id, one line ([A-Za-z0-9._-], at most 64 bytes)
//	signing.pem        the Ed25519 key that signs sealed updates (PKCS#8 PEM)
//	signing.pub        its public key (PKIX PEM), handed over at enrolment
//	pseudonym.key      the 32-byte customer pseudonym HMAC key: a comment line
//	                   "# kairos pseudonym key <key id>", then 64 lower-case hex digits
//	                   (the format of crypto/pseudonym's WriteKeyFile and ReadKeyFile)
//
// A kid is the first 16 hex digits of the SHA-256 of the raw 32-byte Ed25519
// public key (KeyID).
//
// # Protection
//
// Files whose names end in .pub hold only public parts and are written 0644.
// Every other file is written 0600 in a directory created 0700, and is refused
// at load if group or others can access it (InsecureModeError, matching
// ErrInsecureMode). With a passphrase, each private file (age-identity,
// jwt-*.pem, audit-hmac, checkpoint.pem, signing.pem, pseudonym.key) is
// instead stored as <name>.age: an armored age file encrypted to an age scrypt
// recipient. Loading reads armored or binary age files; a wrong passphrase
// gives ErrWrongPassphrase. jwt-active and merchant-id are not secret and are
// never encrypted.
//
// Every secret is derived from the rand the caller passes, including the age
// identity (a 32-byte seed encoded in age's Bech32 format and parsed by age),
// so a deterministic rand gives deterministic keys in tests.
package keys
