package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Role is what an API token may do.
type Role string

// The roles, each allowed what the one after it is, and more.
const (
	// RoleAdmin manages tokens and reads the audit log, besides everything else.
	RoleAdmin Role = "admin"
	// RoleEditor changes connections and pipelines, decides held schema
	// changes and resyncs.
	RoleEditor Role = "editor"
	// RoleViewer reads state, configs (secrets redacted) and metrics.
	RoleViewer Role = "viewer"
)

// Roles lists the roles, most powerful first.
var Roles = []Role{RoleAdmin, RoleEditor, RoleViewer}

func (r Role) rank() int {
	switch r {
	case RoleAdmin:
		return 3
	case RoleEditor:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

// Allows reports whether a token of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() && need.rank() > 0 }

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", fmt.Errorf("role must be admin, editor or viewer, got %q", s)
	}
	return r, nil
}

// TokenName is the rule for token names: printable, so that a listing shows
// them as they are (no control characters or terminal escapes).
var TokenName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:-]{0,63}$`)

// TokenSpec is what a new token is.
type TokenSpec struct {
	Name string
	Role Role
	// ExpiresAt is when the token stops working; zero: never.
	ExpiresAt time.Time
}

// Validate checks s.
func (s TokenSpec) Validate() error {
	var errs []error
	if !TokenName.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name must match %s", TokenName))
	}
	if _, err := ParseRole(string(s.Role)); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Token is an API token. The plaintext is shown once, at creation.
type Token struct {
	ID         string
	Name       string
	Role       Role
	CreatedAt  time.Time
	LastUsedAt time.Time
	// ExpiresAt is when the token stops working; zero: never.
	ExpiresAt time.Time
}

// ErrTokenExpired is returned by VerifyToken for a token past its expiry.
var ErrTokenExpired = errors.New("token expired")

// Tokens keeps API tokens, hashed.
type Tokens interface {
	// CreateToken makes a token and returns its plaintext, which is not stored.
	CreateToken(ctx context.Context, spec TokenSpec) (plaintext string, t Token, err error)
	ListTokens(ctx context.Context) ([]Token, error)
	GetToken(ctx context.Context, id string) (Token, error)
	DeleteToken(ctx context.Context, id string) error
	// VerifyToken returns the token whose plaintext this is: ErrNotFound if
	// none is, ErrTokenExpired if it expired. It records when it was used.
	VerifyToken(ctx context.Context, plaintext string) (Token, error)
	// HasTokens reports whether any token exists (auth is on once one does).
	HasTokens(ctx context.Context) (bool, error)
}

// TokenPrefix starts every API token, so that secret scanners can find leaked ones.
const TokenPrefix = "cdcd_"

func hashToken(plaintext string) string {
	h := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(h[:])
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func (s *sqlStore) CreateToken(ctx context.Context, spec TokenSpec) (string, Token, error) {
	if err := spec.Validate(); err != nil {
		return "", Token{}, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, err
	}
	plaintext := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	id, err := randomHex(6)
	if err != nil {
		return "", Token{}, err
	}
	now := s.micros()
	var exp int64
	if !spec.ExpiresAt.IsZero() {
		exp = spec.ExpiresAt.UnixMicro()
	}
	_, err = s.db.ExecContext(ctx, s.q(`INSERT INTO cdcd_tokens (id, name, hash, role, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		id, spec.Name, hashToken(plaintext), string(spec.Role), exp, now)
	if err != nil {
		return "", Token{}, fmt.Errorf("create token: %w", err)
	}
	return plaintext, Token{ID: id, Name: spec.Name, Role: spec.Role, CreatedAt: fromMicros(now), ExpiresAt: fromMicros(exp)}, nil
}

const tokenCols = `id, name, role, created_at, last_used_at, expires_at`

func scanToken(sc interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var role string
	var c, u, e int64
	if err := sc.Scan(&t.ID, &t.Name, &role, &c, &u, &e); err != nil {
		return t, err
	}
	t.Role, t.CreatedAt, t.LastUsedAt, t.ExpiresAt = Role(role), fromMicros(c), fromMicros(u), fromMicros(e)
	return t, nil
}

func (s *sqlStore) ListTokens(ctx context.Context) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+` FROM cdcd_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (s *sqlStore) GetToken(ctx context.Context, id string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM cdcd_tokens WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token %q: %w", id, ErrNotFound)
	}
	return t, err
}

func (s *sqlStore) DeleteToken(ctx context.Context, id string) error {
	return s.exec1(ctx, "token", id, `DELETE FROM cdcd_tokens WHERE id = ?`, id)
}

func (s *sqlStore) VerifyToken(ctx context.Context, plaintext string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM cdcd_tokens WHERE hash = ?`), hashToken(plaintext)))
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("verify token: %w", err)
	}
	now := s.now()
	if !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return t, fmt.Errorf("token %s (%s) expired at %s: %w", t.ID, t.Name, t.ExpiresAt.Format(time.RFC3339), ErrTokenExpired)
	}
	// Record use at most once a minute, so authenticated reads do not all write.
	if now.Sub(t.LastUsedAt) > time.Minute {
		if _, err := s.db.ExecContext(ctx, s.q(`UPDATE cdcd_tokens SET last_used_at = ? WHERE id = ?`), now.UnixMicro(), t.ID); err == nil {
			t.LastUsedAt = now.UTC()
		}
	}
	return t, nil
}

func (s *sqlStore) HasTokens(ctx context.Context) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM cdcd_tokens`).Scan(&n); err != nil {
		return false, fmt.Errorf("count tokens: %w", err)
	}
	return n > 0, nil
}

// AuditEntry is one state-changing request, as the audit log keeps it: who,
// what, on what, when, from where and with what result; never a value sent.
type AuditEntry struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
	// TokenID and TokenName name the token used; both empty in open mode, and
	// TokenName "cli" for what the CLI did on the store directly.
	TokenID   string `json:"token_id"`
	TokenName string `json:"token_name"`
	// Action is the method and route, e.g. "POST /api/v1/pipelines/{name}/pause".
	Action string `json:"action"`
	// Target names the object, e.g. "pipeline orders".
	Target string `json:"target"`
	// Status is the HTTP status of the answer.
	Status int `json:"status"`
	// Error is the answer's error message when it failed (redacted, cut).
	Error string `json:"error,omitempty"`
	// Remote is the client's address.
	Remote string `json:"remote"`
}

// AuditQuery selects audit entries: newest first, at most Limit, older than
// Before when set.
type AuditQuery struct {
	Limit  int
	Before time.Time
}

// Audit keeps the audit log.
type Audit interface {
	RecordAudit(ctx context.Context, e AuditEntry) error
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

// auditRetention is how long audit entries are kept.
const auditRetention = 400 * 24 * time.Hour

// maxAuditError bounds the error text of an audit entry.
const maxAuditError = 1 << 10

func (s *sqlStore) RecordAudit(ctx context.Context, e AuditEntry) error {
	id, err := randomHex(8)
	if err != nil {
		return err
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	if len(e.Error) > maxAuditError {
		e.Error = strings.ToValidUTF8(e.Error[:maxAuditError], "") + "…"
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO cdcd_audit (id, at, token_id, token_name, action, target, status, error, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			id, e.At.UnixMicro(), e.TokenID, e.TokenName, e.Action, e.Target, e.Status, e.Error, e.Remote); err != nil {
			return fmt.Errorf("record audit entry: %w", err)
		}
		// the index on at makes this cheap when there is nothing to drop
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM cdcd_audit WHERE at < ?`), e.At.Add(-auditRetention).UnixMicro())
		return err
	})
}

func (s *sqlStore) ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	before := int64(1<<63 - 1)
	if !q.Before.IsZero() {
		before = q.Before.UnixMicro()
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, at, token_id, token_name, action, target, status, error, remote FROM cdcd_audit
		WHERE at < ? ORDER BY at DESC, id DESC LIMIT ?`), before, q.Limit)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.TokenID, &e.TokenName, &e.Action, &e.Target, &e.Status, &e.Error, &e.Remote); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
