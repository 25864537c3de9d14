package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sealed values are "v2:<key id>:<base64 of nonce and ciphertext>", sealed
// with additional data that names the row and field they are stored in, so
// that a value copied to another row does not open. "v1:" values (no key id,
// no binding) are what cdcd wrote before; only OpenLegacy reads them, to seal
// them again.
const (
	prefixV1 = "v1:"
	prefixV2 = "v2:"
)

// Cipher seals and opens values.
type Cipher struct {
	aead cipher.AEAD
	id   string
}

// New returns a Cipher for a 32-byte key.
func New(key []byte) (*Cipher, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(append([]byte("cdcd key id\x00"), key...))
	return &Cipher{aead: aead, id: hex.EncodeToString(h[:4])}, nil
}

// ID names the key (8 hex digits of a hash of it; the key does not follow
// from it), so that a sealed value says which key it needs.
func (c *Cipher) ID() string { return c.id }

// NewKey returns a fresh random key.
func NewKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return k
}

// EncodeKey renders a key as a key file holds it.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) + "\n" }

// ParseKey decodes a key written as base64 (standard or URL alphabet, padded or not).
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("secret key must be 32 bytes in base64 (generate one with: head -c32 /dev/urandom | base64)")
}

// LoadOrCreateKeyFile reads the base64 key in path, or, when path does not exist,
// writes a fresh random key there with mode 0600. created reports the latter.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("key file %s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read key file: %w", err)
	}
	k := NewKey()
	if err := WriteKeyFile(path, k); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

// WriteKeyFile writes k to a new file at path (mode 0600, synced), creating
// its directory; it fails if the file exists.
func WriteKeyFile(path string, k []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(EncodeKey(k)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Seal encrypts plaintext bound to aad, which names where the value is
// stored (table, field and row key); the result is text safe to store anywhere.
func (c *Cipher) Seal(plaintext []byte, aad string) string {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	out := c.aead.Seal(nonce, nonce, plaintext, []byte(aad))
	return prefixV2 + c.id + ":" + base64.StdEncoding.EncodeToString(out)
}

// ErrWrongKey is returned by Open when a value was sealed under another key or
// was tampered with.
var ErrWrongKey = errors.New("cannot decrypt stored secret: wrong secret key (CDCD_SECRET_KEY / key file) or corrupted data")

// KeyIDOf returns the id of the key sealed was sealed under ("" for a value of
// the first format, which names none).
func KeyIDOf(sealed string) string {
	if rest, ok := strings.CutPrefix(sealed, prefixV2); ok {
		id, _, _ := strings.Cut(rest, ":")
		return id
	}
	return ""
}

// Open decrypts what Seal produced for the same aad.
func (c *Cipher) Open(sealed, aad string) ([]byte, error) {
	rest, ok := strings.CutPrefix(sealed, prefixV2)
	if !ok {
		if strings.HasPrefix(sealed, prefixV1) {
			return nil, errors.New("stored secret is in the format of an older cdcd, which the store upgrades when it opens")
		}
		return nil, errors.New("stored secret has an unknown format")
	}
	id, body, _ := strings.Cut(rest, ":")
	if id != c.id {
		return nil, fmt.Errorf("%w: it is sealed under key %s, and this process has key %s", ErrWrongKey, id, c.id)
	}
	return c.open(body, aad)
}

// OpenLegacy decrypts a value of the first format ("v1:", no binding), so
// that it can be sealed again with Seal.
func (c *Cipher) OpenLegacy(sealed string) ([]byte, error) {
	body, ok := strings.CutPrefix(sealed, prefixV1)
	if !ok {
		return nil, errors.New("not a stored secret of the first format")
	}
	return c.open(body, "")
}

func (c *Cipher) open(body, aad string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(body)
	if err != nil || len(raw) < c.aead.NonceSize() {
		return nil, ErrWrongKey
	}
	n := c.aead.NonceSize()
	var ad []byte
	if aad != "" {
		ad = []byte(aad)
	}
	pt, err := c.aead.Open(nil, raw[:n], raw[n:], ad)
	if err != nil {
		return nil, ErrWrongKey
	}
	return pt, nil
}
