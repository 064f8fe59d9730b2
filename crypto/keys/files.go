package keys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// File names inside a key directory. See the package documentation.
const (
	FileAgeIdentity   = "age-identity"
	FileAgeRecipient  = "age-recipient.pub"
	FileJWTActive     = "jwt-active"
	FileAuditHMAC     = "audit-hmac"
	FileCheckpoint    = "checkpoint.pem"
	FileCheckpointPub = "checkpoint.pub"
	FileMerchantID    = "merchant-id"
	FileSigning       = "signing.pem"
	FileSigningPub    = "signing.pub"
	FilePseudonym     = "pseudonym.key"

	// EncryptedSuffix is appended to a private file's name when it is passphrase-protected.
	EncryptedSuffix = ".age"
)

// DefaultScryptWorkFactor is the scrypt log2(N) used for passphrase-protected files,
// the same as the age command line tool (about a second per file).
const DefaultScryptWorkFactor = 18

// maxKeyFileSize bounds every key file read; the largest real one is an
// armored, encrypted PEM key well under 1 KiB.
const maxKeyFileSize = 16 << 10

// InsecureModeError reports a private file that group or others can access.
// It matches ErrInsecureMode.
type InsecureModeError struct {
	Path string
	Mode fs.FileMode
	// Writable: the file is a shared secret (ReadSecretLine), refused
	// because group or others can write it, not because they can read it.
	Writable bool
}

func (e *InsecureModeError) Error() string {
	if e.Writable {
		return fmt.Sprintf("%s has mode %#o: writable by group or others, who could substitute the secret; chmod go-w it (0600 is best)", e.Path, e.Mode.Perm())
	}
	return fmt.Sprintf("%s has mode %#o: accessible by group or others, want 0600", e.Path, e.Mode.Perm())
}

// Unwrap makes errors.Is(err, ErrInsecureMode) hold.
func (e *InsecureModeError) Unwrap() error { return ErrInsecureMode }

// WriteOptions controls how key files are written.
type WriteOptions struct {
	// Passphrase, when non-nil, protects every private file with age scrypt.
	Passphrase []byte
	// ScryptWorkFactor is scrypt's log2(N); 0 means DefaultScryptWorkFactor.
	ScryptWorkFactor int
}

func (o WriteOptions) validate() error {
	if o.Passphrase != nil && len(o.Passphrase) == 0 {
		return errors.New("empty passphrase")
	}
	if o.ScryptWorkFactor != 0 && (o.ScryptWorkFactor < 10 || o.ScryptWorkFactor > 22) {
		return fmt.Errorf("scrypt work factor %d outside [10, 22]", o.ScryptWorkFactor)
	}
	return nil
}

// WriteAggregator writes a's files into dir (created if missing, set to 0700). A nil
// passphrase writes private files in the clear (mode 0600); otherwise each is
// age-encrypted with scrypt. Files of JWT keys no longer in a are removed.
func WriteAggregator(dir string, a *Aggregator, passphrase []byte) error {
	return WriteAggregatorWithOptions(dir, a, WriteOptions{Passphrase: passphrase})
}

// WriteAggregatorWithOptions is WriteAggregator with a choice of scrypt work factor.
func WriteAggregatorWithOptions(dir string, a *Aggregator, opts WriteOptions) error {
	if err := opts.validate(); err != nil {
		return fmt.Errorf("write aggregator keys: %w", err)
	}
	if err := a.Validate(); err != nil {
		return fmt.Errorf("write aggregator keys: %w", err)
	}
	w := &writer{dir: dir, opts: opts}
	if err := w.mkdir(); err != nil {
		return fmt.Errorf("write aggregator keys: %w", err)
	}
	idStr, _ := identityString(a.Identity)
	w.private(FileAgeIdentity, []byte(idStr+"\n"))
	w.public(FileAgeRecipient, []byte(a.Recipient+"\n"))
	keep := map[string]bool{}
	for _, k := range a.JWT {
		// Public first: a crash in between leaves a harmless extra .pub,
		// never a private key without its public file.
		w.publicKey(jwtPubName(k.ID), k.Private.Public().(ed25519.PublicKey))
		w.privateKey(jwtPrivName(k.ID), k.Private)
		keep[k.ID] = true
	}
	w.metadata(FileJWTActive, []byte(a.ActiveJWT+"\n"))
	w.private(FileAuditHMAC, []byte(hex.EncodeToString(a.AuditHMAC)+"\n"))
	w.privateKey(FileCheckpoint, a.Checkpoint)
	w.publicKey(FileCheckpointPub, a.Checkpoint.Public().(ed25519.PublicKey))
	if w.err == nil {
		w.removeStaleJWT(keep)
	}
	if w.err != nil {
		return fmt.Errorf("write aggregator keys: %w", w.err)
	}
	return nil
}

// LoadAggregator reads the aggregator keys in dir. passphrase must be non-nil
// exactly when the files were written with one.
func LoadAggregator(dir string, passphrase []byte) (*Aggregator, error) {
	if err := checkKeyDir(dir); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	}
	r := &reader{dir: dir, passphrase: passphrase}
	a := &Aggregator{}
	if b, err := r.private(FileAgeIdentity); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	} else if a.Identity, err = parseAgeIdentity(string(trimLine(b))); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %s: %w", r.path(FileAgeIdentity), err)
	}
	a.Recipient, _ = recipientOf(a.Identity)
	kids, err := listJWT(dir, jwtPrivate)
	if err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	}
	for _, kid := range kids {
		name := jwtPrivName(kid)
		b, err := r.private(name)
		if err != nil {
			return nil, fmt.Errorf("load aggregator keys: %w", err)
		}
		priv, err := parsePrivatePEM(b)
		if err != nil {
			return nil, fmt.Errorf("load aggregator keys: %s: %w", r.path(name), err)
		}
		if got := KeyID(priv.Public().(ed25519.PublicKey)); got != kid {
			return nil, fmt.Errorf("load aggregator keys: %s: holds the key with kid %s, not %s", r.path(name), got, kid)
		}
		a.JWT = append(a.JWT, JWTKey{ID: kid, Private: priv})
	}
	b, err := r.metadata(FileJWTActive)
	if err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	}
	if a.ActiveJWT, err = parseKID(b); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %s: %w", r.path(FileJWTActive), err)
	}
	if b, err = r.private(FileAuditHMAC); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	}
	if a.AuditHMAC, err = parseHexKey(b, AuditHMACSize); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %s: %w", r.path(FileAuditHMAC), err)
	}
	if b, err = r.private(FileCheckpoint); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	}
	if a.Checkpoint, err = parsePrivatePEM(b); err != nil {
		return nil, fmt.Errorf("load aggregator keys: %s: %w", r.path(FileCheckpoint), err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("load aggregator keys from %s: %w", dir, err)
	}
	// The .pub files are what enrolment hands out; a stale or replaced one
	// would send merchants to the wrong key, so it must match the private side.
	pub, err := LoadAggregatorPublic(dir)
	if err != nil {
		return nil, fmt.Errorf("load aggregator keys: %w", err)
	}
	if err := samePublic(pub, a.Public()); err != nil {
		return nil, fmt.Errorf("load aggregator keys from %s: public files do not match the private keys: %w", dir, err)
	}
	return a, nil
}

// samePublic checks that every published part of want is in got, unchanged.
// got may list extra JWT keys: a rotation interrupted after writing the new
// .pub file leaves one, and the next write removes it.
func samePublic(got, want AggregatorPublic) error {
	if got.Recipient != want.Recipient {
		return fmt.Errorf("%s differs", FileAgeRecipient)
	}
	if !got.Checkpoint.Equal(want.Checkpoint) {
		return fmt.Errorf("%s differs", FileCheckpointPub)
	}
	for _, w := range want.JWT {
		i := slices.IndexFunc(got.JWT, func(g JWTPublic) bool { return g.ID == w.ID })
		if i < 0 || !got.JWT[i].Key.Equal(w.Key) {
			return fmt.Errorf("%s missing or differs", jwtPubName(w.ID))
		}
	}
	return nil
}

// LoadAggregatorPublic reads only the public files in dir (no passphrase needed).
func LoadAggregatorPublic(dir string) (AggregatorPublic, error) {
	r := &reader{dir: dir}
	var p AggregatorPublic
	b, err := r.public(FileAgeRecipient)
	if err != nil {
		return p, fmt.Errorf("load aggregator public keys: %w", err)
	}
	p.Recipient = string(trimLine(b))
	if _, err := ParseRecipient(p.Recipient); err != nil {
		return p, fmt.Errorf("load aggregator public keys: %s: %w", r.path(FileAgeRecipient), err)
	}
	kids, err := listJWT(dir, jwtPublic)
	if err != nil {
		return p, fmt.Errorf("load aggregator public keys: %w", err)
	}
	for _, kid := range kids {
		b, err := r.public(jwtPubName(kid))
		if err != nil {
			return p, fmt.Errorf("load aggregator public keys: %w", err)
		}
		pub, err := parsePublicPEM(b)
		if err != nil {
			return p, fmt.Errorf("load aggregator public keys: %s: %w", r.path(jwtPubName(kid)), err)
		}
		if got := KeyID(pub); got != kid {
			return p, fmt.Errorf("load aggregator public keys: %s: holds the key with kid %s, not %s", r.path(jwtPubName(kid)), got, kid)
		}
		p.JWT = append(p.JWT, JWTPublic{ID: kid, Key: pub})
	}
	if b, err = r.metadata(FileJWTActive); err != nil {
		return p, fmt.Errorf("load aggregator public keys: %w", err)
	}
	if p.ActiveJWT, err = parseKID(b); err != nil {
		return p, fmt.Errorf("load aggregator public keys: %s: %w", r.path(FileJWTActive), err)
	}
	if !slices.ContainsFunc(p.JWT, func(k JWTPublic) bool { return k.ID == p.ActiveJWT }) {
		return p, fmt.Errorf("load aggregator public keys: active jwt key %s: %w", p.ActiveJWT, ErrUnknownKID)
	}
	if b, err = r.public(FileCheckpointPub); err != nil {
		return p, fmt.Errorf("load aggregator public keys: %w", err)
	}
	if p.Checkpoint, err = parsePublicPEM(b); err != nil {
		return p, fmt.Errorf("load aggregator public keys: %s: %w", r.path(FileCheckpointPub), err)
	}
	return p, nil
}

// WriteMerchant writes m's files into dir, like WriteAggregator.
func WriteMerchant(dir string, m *Merchant, passphrase []byte) error {
	return WriteMerchantWithOptions(dir, m, WriteOptions{Passphrase: passphrase})
}

// WriteMerchantWithOptions is WriteMerchant with a choice of scrypt work factor.
func WriteMerchantWithOptions(dir string, m *Merchant, opts WriteOptions) error {
	if err := opts.validate(); err != nil {
		return fmt.Errorf("write merchant keys: %w", err)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("write merchant keys: %w", err)
	}
	w := &writer{dir: dir, opts: opts}
	if err := w.mkdir(); err != nil {
		return fmt.Errorf("write merchant keys: %w", err)
	}
	w.metadata(FileMerchantID, []byte(m.ID+"\n"))
	w.privateKey(FileSigning, m.Signing)
	w.publicKey(FileSigningPub, m.Signing.Public().(ed25519.PublicKey))
	w.private(FilePseudonym, encodePseudonymFile(m))
	if w.err != nil {
		return fmt.Errorf("write merchant keys: %w", w.err)
	}
	return nil
}

// LoadMerchant reads the merchant keys in dir.
func LoadMerchant(dir string, passphrase []byte) (*Merchant, error) {
	if err := checkKeyDir(dir); err != nil {
		return nil, fmt.Errorf("load merchant keys: %w", err)
	}
	r := &reader{dir: dir, passphrase: passphrase}
	m := &Merchant{}
	b, err := r.metadata(FileMerchantID)
	if err != nil {
		return nil, fmt.Errorf("load merchant keys: %w", err)
	}
	m.ID = string(trimLine(b))
	if err := CheckMerchantID(m.ID); err != nil {
		return nil, fmt.Errorf("load merchant keys: %s: %w", r.path(FileMerchantID), err)
	}
	if b, err = r.private(FileSigning); err != nil {
		return nil, fmt.Errorf("load merchant keys: %w", err)
	}
	if m.Signing, err = parsePrivatePEM(b); err != nil {
		return nil, fmt.Errorf("load merchant keys: %s: %w", r.path(FileSigning), err)
	}
	if b, err = r.private(FilePseudonym); err != nil {
		return nil, fmt.Errorf("load merchant keys: %w", err)
	}
	raw, err := parsePseudonymFile(b)
	if err == nil {
		err = m.SetPseudonym(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("load merchant keys: %s: %w", r.path(FilePseudonym), err)
	}
	pub, err := LoadMerchantPublic(dir)
	if err != nil {
		return nil, fmt.Errorf("load merchant keys: %w", err)
	}
	if !pub.Signing.Equal(m.Signing.Public()) {
		return nil, fmt.Errorf("load merchant keys: %s does not match %s", r.path(FileSigningPub), FileSigning)
	}
	return m, nil
}

// LoadMerchantPublic reads only the merchant's id and public signing key.
func LoadMerchantPublic(dir string) (MerchantPublic, error) {
	r := &reader{dir: dir}
	var p MerchantPublic
	b, err := r.metadata(FileMerchantID)
	if err != nil {
		return p, fmt.Errorf("load merchant public keys: %w", err)
	}
	p.ID = string(trimLine(b))
	if err := CheckMerchantID(p.ID); err != nil {
		return p, fmt.Errorf("load merchant public keys: %s: %w", r.path(FileMerchantID), err)
	}
	if b, err = r.public(FileSigningPub); err != nil {
		return p, fmt.Errorf("load merchant public keys: %w", err)
	}
	if p.Signing, err = parsePublicPEM(b); err != nil {
		return p, fmt.Errorf("load merchant public keys: %s: %w", r.path(FileSigningPub), err)
	}
	return p, nil
}

func jwtPrivName(kid string) string { return "jwt-" + kid + ".pem" }
func jwtPubName(kid string) string  { return "jwt-" + kid + ".pub" }

// Which JWT key files listJWT looks at.
const (
	jwtPrivate = 1 << iota // jwt-<kid>.pem and jwt-<kid>.pem.age
	jwtPublic              // jwt-<kid>.pub
)

// listJWT returns, sorted, the kids named by the JWT key files of the given kinds in dir.
func listJWT(dir string, kinds int) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list jwt keys: %w", err)
	}
	var kids []string
	for _, e := range ents {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, "jwt-")
		if !ok || name == FileJWTActive {
			continue
		}
		var kid string
		switch {
		case kinds&jwtPrivate != 0 && strings.HasSuffix(rest, ".pem"):
			kid = strings.TrimSuffix(rest, ".pem")
		case kinds&jwtPrivate != 0 && strings.HasSuffix(rest, ".pem"+EncryptedSuffix):
			kid = strings.TrimSuffix(rest, ".pem"+EncryptedSuffix)
		case kinds&jwtPublic != 0 && strings.HasSuffix(rest, ".pub"):
			kid = strings.TrimSuffix(rest, ".pub")
		default:
			continue
		}
		if _, err := parseKID([]byte(kid)); err != nil {
			return nil, fmt.Errorf("list jwt keys: %s: unexpected file name", filepath.Join(dir, name))
		}
		kids = append(kids, kid)
	}
	slices.Sort(kids)
	return slices.Compact(kids), nil
}

// writer writes key files atomically, remembering the first error.
type writer struct {
	dir  string
	opts WriteOptions
	err  error
}

func (w *writer) mkdir() error {
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return err
	}
	// A key directory holds keys only; close it to group and others even if
	// it existed before (MkdirAll leaves an existing directory's mode alone).
	return os.Chmod(w.dir, 0o700)
}

// private writes a secret, encrypted when a passphrase is set, and removes the
// other form (clear or encrypted) so only one copy exists.
func (w *writer) private(name string, data []byte) {
	if w.err != nil {
		return
	}
	stale := name + EncryptedSuffix
	if w.opts.Passphrase != nil {
		enc, err := encryptPassphrase(data, w.opts)
		if err != nil {
			w.err = fmt.Errorf("%s: %w", filepath.Join(w.dir, name+EncryptedSuffix), err)
			return
		}
		data, stale, name = enc, name, name+EncryptedSuffix
	}
	w.err = writeFileAtomic(filepath.Join(w.dir, name), data, 0o600)
	if w.err == nil {
		w.err = removeIfExists(filepath.Join(w.dir, stale))
	}
}

// privateKey and publicKey write an Ed25519 key as PEM.
func (w *writer) privateKey(name string, k ed25519.PrivateKey) {
	b, err := encodePrivatePEM(k)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.private(name, b)
}

func (w *writer) publicKey(name string, k ed25519.PublicKey) {
	b, err := encodePublicPEM(k)
	if err != nil && w.err == nil {
		w.err = err
	}
	w.public(name, b)
}

func (w *writer) metadata(name string, data []byte) {
	if w.err == nil {
		w.err = writeFileAtomic(filepath.Join(w.dir, name), data, 0o600)
	}
}

func (w *writer) public(name string, data []byte) {
	if w.err == nil {
		w.err = writeFileAtomic(filepath.Join(w.dir, name), data, 0o644)
	}
}

func (w *writer) removeStaleJWT(keep map[string]bool) {
	kids, err := listJWT(w.dir, jwtPrivate|jwtPublic)
	if err != nil {
		w.err = err
		return
	}
	for _, kid := range kids {
		if keep[kid] {
			continue
		}
		for _, name := range []string{jwtPrivName(kid), jwtPrivName(kid) + EncryptedSuffix, jwtPubName(kid)} {
			if err := removeIfExists(filepath.Join(w.dir, name)); err != nil {
				w.err = err
				return
			}
		}
	}
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// writeFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so a crash leaves either the old or the new key.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// checkKeyDir refuses a key directory that group or others may write: the
// files' own modes do not stop whoever may write the directory from renaming
// a key of their own over one of ours.
func checkKeyDir(dir string) error { return CheckNotWritable(dir) }

// CheckNotWritable refuses a file or directory (followed through symlinks)
// that group or others may write, with an *InsecureModeError (Writable set;
// ErrInsecureMode): whoever else may write a directory can rename their own
// file over any in it, and whoever may write a file can edit it. Read access
// is not checked: the caller knows whether the contents are secret.
func CheckNotWritable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o022 != 0 {
		return &InsecureModeError{Path: path, Mode: st.Mode(), Writable: true}
	}
	return nil
}

// reader reads key files, enforcing modes and decrypting when needed.
type reader struct {
	dir        string
	passphrase []byte
}

func (r *reader) path(name string) string { return filepath.Join(r.dir, name) }

// private reads name or name.age, whichever exists; the encrypted form needs
// the passphrase and the clear form refuses one.
func (r *reader) private(name string) ([]byte, error) {
	encPath := r.path(name + EncryptedSuffix)
	enc, err := readChecked(encPath, true)
	switch {
	case err == nil:
		if r.passphrase == nil {
			return nil, fmt.Errorf("%s: %w", encPath, ErrPassphraseRequired)
		}
		b, err := decryptPassphrase(enc, r.passphrase, maxScryptWorkFactor)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", encPath, err)
		}
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	b, err := readChecked(r.path(name), true)
	if err != nil {
		return nil, err
	}
	if r.passphrase != nil {
		return nil, fmt.Errorf("%s: %w", r.path(name), ErrNotEncrypted)
	}
	return b, nil
}

func (r *reader) metadata(name string) ([]byte, error) { return readChecked(r.path(name), true) }
func (r *reader) public(name string) ([]byte, error)   { return readChecked(r.path(name), false) }

// ReadSecretFile reads a file holding a credential other than a key (an API
// bearer token) as private key files are read: a regular file of at most
// 16 KiB that group and others cannot access. A file they can access is
// refused with an *InsecureModeError (ErrInsecureMode), as ssh refuses such
// a private key: whoever else could read it holds the credential.
func ReadSecretFile(path string) ([]byte, error) {
	return readChecked(path, true)
}

// ReadSecretLine reads the first line, without its line end, of a file
// holding a secret that is handed over rather than written by Kairos: a key
// passphrase, a database URL. Container runtimes mount such files with the
// host file's mode (compose's file secrets keep it, often 0644), so a file
// that group or others can read is accepted and its mode returned, for the
// command to warn about (ReadableByOthers). One they can write is refused
// with an *InsecureModeError (ErrInsecureMode, Writable set): whoever else
// could write it could substitute the secret, a passphrase of their choosing
// for new key files or a database of their own. The file must be regular and
// at most 16 KiB, as a key file.
func ReadSecretLine(path string) ([]byte, fs.FileMode, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	mode := st.Mode()
	if !mode.IsRegular() {
		return nil, mode, fmt.Errorf("%s: not a regular file", path)
	}
	if mode.Perm()&0o022 != 0 {
		return nil, mode, &InsecureModeError{Path: path, Mode: mode, Writable: true}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, mode, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, mode, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFileSize)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if len(line) == 0 {
		return nil, mode, fmt.Errorf("%s: first line is empty", path)
	}
	return line, mode, nil
}

// ReadableByOthers reports whether a file of mode can be read by group or
// others: a shared secret's command warns about it (ReadSecretLine).
func ReadableByOthers(mode fs.FileMode) bool { return mode.Perm()&0o044 != 0 }

// readChecked reads a key file of bounded size; with private set it refuses a
// file that group or others may access, checking the mode of the opened file.
func readChecked(path string, private bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if private && st.Mode().Perm()&0o077 != 0 {
		return nil, &InsecureModeError{Path: path, Mode: st.Mode()}
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxKeyFileSize)
	}
	return b, nil
}

const armorHeader = "-----BEGIN AGE ENCRYPTED FILE-----"

func encryptPassphrase(data []byte, opts WriteOptions) ([]byte, error) {
	rcpt, err := age.NewScryptRecipient(string(opts.Passphrase))
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	logN := opts.ScryptWorkFactor
	if logN == 0 {
		logN = DefaultScryptWorkFactor
	}
	rcpt.SetWorkFactor(logN)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	ew, err := age.Encrypt(aw, rcpt)
	if err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if _, err := ew.Write(data); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := ew.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	if err := aw.Close(); err != nil {
		return nil, fmt.Errorf("encrypt: %w", err)
	}
	return buf.Bytes(), nil
}

// maxScryptWorkFactor is the largest scrypt log2(N) a key file may demand,
// age's own limit (at 22 scrypt takes about 4 GiB and several seconds).
const maxScryptWorkFactor = 22

// decryptPassphrase opens an armored or binary age scrypt file whose work
// factor is at most maxLogN.
func decryptPassphrase(enc, passphrase []byte, maxLogN int) ([]byte, error) {
	if len(passphrase) == 0 {
		return nil, errors.New("empty passphrase")
	}
	id, err := age.NewScryptIdentity(string(passphrase))
	if err != nil {
		return nil, fmt.Errorf("passphrase: %w", err)
	}
	id.SetMaxWorkFactor(maxLogN)
	var src io.Reader = bytes.NewReader(enc)
	if bytes.HasPrefix(bytes.TrimLeft(enc, " \t\r\n"), []byte(armorHeader)) {
		src = armor.NewReader(src)
	}
	dr, err := age.Decrypt(src, id)
	if err != nil {
		if errors.Is(err, age.ErrIncorrectIdentity) {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(dr, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("decrypt: %w", err)
	}
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("decrypt: plaintext larger than %d bytes", maxKeyFileSize)
	}
	return b, nil
}

// trimLine removes one trailing newline (LF or CRLF).
func trimLine(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func encodePrivatePEM(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode ed25519 key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func encodePublicPEM(k ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode ed25519 public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// decodeOnePEM returns the single PEM block of the wanted type in b, refusing
// headers and any other content.
func decodeOnePEM(b []byte, typ string) ([]byte, error) {
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("no PEM %q block", typ)
	}
	if block.Type != typ {
		return nil, fmt.Errorf("PEM block is %q, want %q", block.Type, typ)
	}
	if len(block.Headers) != 0 {
		return nil, errors.New("PEM block has headers")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("data after the PEM block")
	}
	return block.Bytes, nil
}

// parsePrivatePEM parses a PEM "PRIVATE KEY" (PKCS#8) holding an Ed25519 key.
func parsePrivatePEM(b []byte) (ed25519.PrivateKey, error) {
	der, err := decodeOnePEM(b, "PRIVATE KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKCS#8: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("PKCS#8 key is %T, want Ed25519", k)
	}
	return priv, nil
}

// parsePublicPEM parses a PEM "PUBLIC KEY" (PKIX) holding an Ed25519 key.
func parsePublicPEM(b []byte) (ed25519.PublicKey, error) {
	der, err := decodeOnePEM(b, "PUBLIC KEY")
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("parse PKIX: %w", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("PKIX key is %T, want Ed25519", k)
	}
	return pub, nil
}

// parseHexKey parses exactly n bytes written as 2n lower-case hex digits and an optional newline.
func parseHexKey(b []byte, n int) ([]byte, error) {
	s := trimLine(b)
	if len(s) != 2*n {
		return nil, fmt.Errorf("want %d hex digits, got %d bytes", 2*n, len(s))
	}
	for i, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, fmt.Errorf("byte %d (%q) is not a lower-case hex digit", i, c)
		}
	}
	k := make([]byte, n)
	if _, err := hex.Decode(k, s); err != nil {
		return nil, err
	}
	return k, nil
}

// parseKID parses a key id: 16 lower-case hex digits and an optional newline.
func parseKID(b []byte) (string, error) {
	k, err := parseHexKey(b, 8)
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	return hex.EncodeToString(k), nil
}

// pseudonymComment starts the first line of a pseudonym key file, as
// pseudonym.WriteKeyFile writes it, so pseudonym.ReadKeyFile reads our files.
const pseudonymComment = "# kairos pseudonym key "

func encodePseudonymFile(m *Merchant) []byte {
	return []byte(pseudonymComment + m.Pseudonym.ID() + "\n" + hex.EncodeToString(m.pseudonymRaw) + "\n")
}

// parsePseudonymFile reads the key of a pseudonym key file: '#' comment lines
// and exactly one line of 64 lower-case hex digits.
func parsePseudonymFile(b []byte) ([]byte, error) {
	var raw []byte
	for i, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if raw != nil {
			return nil, fmt.Errorf("line %d: more than one key", i+1)
		}
		k, err := parseHexKey(line, PseudonymKeySize)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		raw = k
	}
	if raw == nil {
		return nil, errors.New("no key in file")
	}
	return raw, nil
}
